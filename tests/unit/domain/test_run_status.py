"""What a status write says, given the status read, the live Jobs and now (pure, named instants).

The services write these patches conditionally on the resourceVersion read and decide again on a
conflict; the table checks each decision: reservations survive the Job mirror, lastScheduleTime
never moves back, nextScheduleTime is never the run that just happened.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest

from qstash_operator.domain import builders, cron, naming, runs
from qstash_operator.domain.runs import JobView
from tests.unit.domain.factories import cronworkflow, job
from tests.unit.instants import JUST_AFTER_THE_HOUR, TOP_OF_THE_HOUR

NS = "team-a"
MINUTE = timedelta(minutes=1)
TWELVE = TOP_OF_THE_HOUR  # 10:00 UTC; "12:00" in the words: any tick will do
TWELVE_01 = TWELVE + MINUTE
TWELVE_02 = TWELVE + 2 * MINUTE
OLD_JOB = naming.job_name("report", TWELVE)
NEW_JOB = naming.job_name("report", TWELVE_01)


def t(moment: datetime) -> str:
    return builders.rfc3339(moment)


def reference(view: JobView) -> dict[str, Any]:
    return view.reference(NS)


def reservation(name: str, at: datetime) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": name,
        "namespace": NS,
        "uid": runs.reservation_uid(at),
    }


RUNNING_OLD = job(OLD_JOB, active=True)
DELETING_OLD = job(OLD_JOB, active=False)  # deletionTimestamp set: job_view says not active
RUNNING_NEW = job(NEW_JOB, active=True)
FINISHED_NEW = job(NEW_JOB, succeeded=True, finished_at=TWELVE_01 + 5 * MINUTE)


@dataclasses.dataclass(frozen=True)
class MirrorCase:
    active: tuple[dict[str, Any], ...]
    jobs: tuple[JobView, ...]
    now: datetime
    expected_active: list[dict[str, Any]] | None  # None: the patch leaves active alone
    last_successful: str | None = None
    expected_last_successful: str | None = None


MIRROR_CASES = {
    "Replace deleted the old Job, the new one is reserved but not created: keep the reservation": (
        MirrorCase(
            active=(reference(RUNNING_OLD), reservation(NEW_JOB, TWELVE_01)),
            jobs=(DELETING_OLD,),
            now=TWELVE_01 + timedelta(seconds=1),
            expected_active=[reservation(NEW_JOB, TWELVE_01)],
        )
    ),
    "a reservation whose writer died a minute ago: dropped": MirrorCase(
        active=(reservation(NEW_JOB, TWELVE_01),),
        jobs=(),
        now=TWELVE_01 + runs.RESERVATION_TTL + timedelta(seconds=1),
        expected_active=[],
    ),
    "the reserved Job exists now: its reference replaces the reservation": MirrorCase(
        active=(reservation(NEW_JOB, TWELVE_01),),
        jobs=(RUNNING_NEW,),
        now=TWELVE_01 + timedelta(seconds=1),
        expected_active=[reference(RUNNING_NEW)],
    ),
    "the reserved Job exists and already finished: neither is active": MirrorCase(
        active=(reservation(NEW_JOB, TWELVE_01),),
        jobs=(FINISHED_NEW,),
        now=TWELVE_01 + 6 * MINUTE,
        expected_active=[],
        expected_last_successful=t(TWELVE_01 + 5 * MINUTE),
    ),
    "nothing changed: no patch": MirrorCase(
        active=(reference(RUNNING_OLD),),
        jobs=(RUNNING_OLD,),
        now=TWELVE_01,
        expected_active=None,
    ),
    "lastSuccessfulTime never moves back": MirrorCase(
        active=(),
        jobs=(FINISHED_NEW,),
        now=TWELVE_01 + 6 * MINUTE,
        expected_active=None,
        last_successful=t(TWELVE_01 + 10 * MINUTE),
        expected_last_successful=None,
    ),
}


@pytest.mark.parametrize("case", MIRROR_CASES.values(), ids=MIRROR_CASES.keys())
def test_the_job_mirror(case: MirrorCase) -> None:
    status: dict[str, Any] = {"active": list(case.active)}
    if case.last_successful:
        status["lastSuccessfulTime"] = case.last_successful
    patch = runs.status_after_jobs_changed(status, case.jobs, NS, now=case.now)
    if case.expected_active is None:
        assert "active" not in patch
    else:
        assert patch["active"] == (case.expected_active or None)
    assert patch.get("lastSuccessfulTime") == case.expected_last_successful


@dataclasses.dataclass(frozen=True)
class RunCase:
    schedule: str = "* * * * *"
    last_schedule_time: datetime | None = None
    active: tuple[dict[str, Any], ...] = ()
    jobs: tuple[JobView, ...] = (RUNNING_NEW,)
    created: str = NEW_JOB
    tick: datetime | None = TWELVE_01
    now: datetime = TWELVE_01 + timedelta(seconds=2)
    manual: dict[str, Any] | None = None
    # expectations (None: the field is not in the patch)
    last: datetime | None = TWELVE_01
    next: datetime | None = TWELVE_02
    expected_active: list[dict[str, Any]] | None = dataclasses.field(
        default_factory=lambda: [reference(RUNNING_NEW)]
    )


RUN_CASES = {
    "first run: last is the tick, next the one after": RunCase(),
    "a stale read said 12:00, the fresh one says 12:01: a 12:00 run leaves it at 12:01": RunCase(
        last_schedule_time=TWELVE_01,
        created=OLD_JOB,
        tick=TWELVE,
        jobs=(job(OLD_JOB, active=True), RUNNING_NEW),
        now=TWELVE_01 + timedelta(seconds=5),
        last=None,
        next=None,
        expected_active=[reference(job(OLD_JOB, active=True)), reference(RUNNING_NEW)],
    ),
    "the same tick again: nothing moves": RunCase(
        last_schedule_time=TWELVE_01, last=None, next=None
    ),
    "early delivery (clock tolerance): next is after the tick, not the tick": RunCase(
        now=TWELVE_01 - timedelta(seconds=10), last=TWELVE_01, next=TWELVE_02
    ),
    "late delivery: next is after now, not after the tick": RunCase(
        now=TWELVE_01 + timedelta(minutes=5, seconds=30), next=TWELVE_01 + 6 * MINUTE
    ),
    "hourly: next is the next hour": RunCase(
        schedule="0 * * * *",
        created=OLD_JOB,
        tick=TWELVE,
        jobs=(job(OLD_JOB, active=True),),
        now=JUST_AFTER_THE_HOUR,
        last=TWELVE,
        next=TWELVE + timedelta(hours=1),
        expected_active=[reference(job(OLD_JOB, active=True))],
    ),
    "our own reservation goes, another's stays": RunCase(
        active=(reservation(NEW_JOB, TWELVE_01), reservation("report-manual-x", TWELVE_01)),
        expected_active=[reference(RUNNING_NEW), reservation("report-manual-x", TWELVE_01)],
    ),
    "our own reservation goes even when our Job is already gone (Replaced)": RunCase(
        active=(reservation(NEW_JOB, TWELVE_01),),
        jobs=(),
        expected_active=[],
    ),
    "a manual run records who asked and leaves the schedule times alone": RunCase(
        tick=None,
        created="report-manual-abcde",
        jobs=(job("report-manual-abcde", active=True),),
        manual={"jobName": "report-manual-abcde", "requestedBy": "alice", "time": "x"},
        last=None,
        next=None,
        expected_active=[reference(job("report-manual-abcde", active=True))],
    ),
}


@pytest.mark.parametrize("case", RUN_CASES.values(), ids=RUN_CASES.keys())
def test_recording_a_run(case: RunCase) -> None:
    cw = cronworkflow({"schedule": case.schedule})
    status: dict[str, Any] = {"active": list(case.active)}
    if case.last_schedule_time is not None:
        status["lastScheduleTime"] = t(case.last_schedule_time)
    patch = runs.status_after_run(
        cw,
        status,
        case.jobs,
        created=case.created,
        tick=case.tick,
        manual=case.manual,
        now=case.now,
    )
    assert patch.get("lastScheduleTime") == (None if case.last is None else t(case.last))
    assert patch.get("nextScheduleTime") == (None if case.next is None else t(case.next))
    if case.expected_active is not None:
        assert patch.get("active", status["active"] or None) == (case.expected_active or None)
    assert patch.get("lastManualRun") == case.manual
    if "lastScheduleTime" in patch:  # the issue-12 promise, whatever the case
        assert patch["nextScheduleTime"] > patch["lastScheduleTime"]


@pytest.mark.parametrize(
    ("last", "now", "expected"),
    [
        pytest.param(None, TWELVE, TWELVE_01, id="now exactly on a tick: the next one"),
        pytest.param(TWELVE, TWELVE + timedelta(seconds=2), TWELVE_01, id="just after a run"),
        pytest.param(
            TWELVE_01, TWELVE + timedelta(seconds=50), TWELVE_02, id="a tick recorded early"
        ),
        pytest.param(TWELVE, TWELVE + timedelta(minutes=5), TWELVE + 6 * MINUTE, id="long after"),
    ],
)
def test_next_schedule_time_is_after_both_last_and_now(
    last: datetime | None, now: datetime, expected: datetime
) -> None:
    schedule = cron.parse("* * * * *")
    got = runs.next_schedule_time(schedule, suspended=False, last_schedule_time=last, now=now)
    assert got == expected


def test_next_schedule_time_of_a_suspended_schedule_is_none() -> None:
    schedule = cron.parse("* * * * *")
    assert (
        runs.next_schedule_time(schedule, suspended=True, last_schedule_time=TWELVE, now=TWELVE)
        is None
    )


@pytest.mark.parametrize(
    ("recorded", "scheduled", "now", "expected"),
    [
        pytest.param(
            TWELVE,
            TWELVE_01,
            TWELVE_01 + timedelta(seconds=3),
            {
                "lastScheduleTime": t(TWELVE_01),
                "nextScheduleTime": t(TWELVE_02),
                "scheduledRuns": 1,
            },
            id="the CronJob ran a newer tick: carried over with the next one, and counted",
        ),
        pytest.param(TWELVE_01, TWELVE, TWELVE_01, {}, id="an older tick: nothing moves back"),
        pytest.param(TWELVE_01, TWELVE_01, TWELVE_01, {}, id="the same tick: nothing to write"),
    ],
)
def test_a_cronjobs_last_schedule_time(
    recorded: datetime, scheduled: datetime, now: datetime, expected: dict[str, str]
) -> None:
    cw = cronworkflow({"schedule": "* * * * *"})
    status = {"lastScheduleTime": t(recorded)}
    assert runs.status_after_cronjob_ran(cw, status, scheduled=scheduled, now=now) == expected


def test_a_reservation_keeps_the_others_still_in_force() -> None:
    other = reservation("report-manual-x", TWELVE_01)
    patch = runs.reserve_status(
        {"active": [reference(RUNNING_OLD), other]},
        [RUNNING_OLD],
        NS,
        job_name=NEW_JOB,
        now=TWELVE_01 + timedelta(seconds=1),
    )
    assert patch["active"] == [
        reference(RUNNING_OLD),
        other,
        reservation(NEW_JOB, TWELVE_01 + timedelta(seconds=1)),
    ]
