"""The true tick of a retried delivery (issue 13): its message's ``createdAt``, not its arrival.

Tables with named instants. The schedule is the CronWorkflow ``team-a/report``; its QStash
schedule id is ``c.team-a.report``. QStash retries after about 12 s, 2.5 min and 30 min by default
(or after ``retryDelay``), so a retry's arrival says nothing about its tick.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from qstash_operator.domain import cron, naming, runs
from qstash_operator.domain.errors import PermanentDeliveryError
from qstash_operator.domain.runs import JobView, MessageOrigin, Outcome
from tests.unit.domain.factories import cronworkflow, job
from tests.unit.instants import TOP_OF_THE_HOUR

TOLERANCE = timedelta(seconds=30)
SCHEDULE_ID = "c.team-a.report"
EVERY_MINUTE = {"schedule": "* * * * *"}
MINUTE = timedelta(minutes=1)

# An every-minute schedule around 10:00 (TOP_OF_THE_HOUR).
T = TOP_OF_THE_HOUR
FIRED_AT_T = T + timedelta(milliseconds=180)  # QStash made the 10:00 message 180 ms late
QSTASH_AHEAD = T - timedelta(seconds=2)  # QStash's clock two seconds ahead of ours
SLOW_FIRE = T + timedelta(seconds=14)  # QStash took 14 s to load the schedule and fire
RETRY_AFTER_150_S = T + timedelta(seconds=150)  # the retry of the 10:00 message, at 10:02:30


def job_for(tick: datetime, **kwargs: Any) -> JobView:
    return job(naming.job_name("report", tick), **kwargs)


def origin(created_at: datetime, schedule_id: str | None = SCHEDULE_ID) -> MessageOrigin:
    return MessageOrigin(created_at=created_at, schedule_id=schedule_id)


# -- cron.tick_for_message ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TickCase:
    schedule: str
    created_at: datetime
    tick: datetime
    time_zone: str = "UTC"


TICK_CASES = {
    "every minute, made on the tick": TickCase("* * * * *", T, T),
    "every minute, made 180 ms after the tick": TickCase("* * * * *", FIRED_AT_T, T),
    "every minute, QStash's clock 2 s ahead": TickCase("* * * * *", QSTASH_AHEAD, T),
    "every minute, made 14 s late (a slow fire) is still its tick": TickCase(
        "* * * * *", SLOW_FIRE, T
    ),
    "every minute, 16 s early is the previous tick (window: a quarter of a minute)": TickCase(
        "* * * * *", T - timedelta(seconds=16), T - MINUTE
    ),
    "hourly, 20 s early is within the 30 s tolerance": TickCase(
        "0 * * * *", T - timedelta(seconds=20), T
    ),
    "hourly, made 40 minutes after is still that hour's tick": TickCase(
        "0 * * * *", T + timedelta(minutes=40), T
    ),
    # 2026-11-01 in New York: 01:30 EDT is 05:30 UTC, 01:30 EST is 06:30 UTC; robfig runs both.
    "fall back, the first 01:30 (EDT)": TickCase(
        "30 1 * * *",
        datetime(2026, 11, 1, 5, 30, 0, 200_000, tzinfo=UTC),
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
        "America/New_York",
    ),
    "fall back, the second 01:30 (EST)": TickCase(
        "30 1 * * *",
        datetime(2026, 11, 1, 6, 30, 0, 200_000, tzinfo=UTC),
        datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
        "America/New_York",
    ),
}


@pytest.mark.parametrize("case", list(TICK_CASES.values()), ids=list(TICK_CASES))
def test_tick_for_message(case: TickCase) -> None:
    schedule = cron.parse(case.schedule, case.time_zone)
    assert cron.tick_for_message(schedule, case.created_at, clock_tolerance=TOLERANCE) == case.tick


# -- runs.plan_tick with a message origin -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    origin: MessageOrigin | None
    delivered_at: datetime = RETRY_AFTER_150_S
    spec: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(EVERY_MINUTE))
    last_schedule_time: datetime | None = None
    schedule_since: datetime | None = None
    jobs: tuple[JobView, ...] = ()
    first_attempt: bool = False
    ran: tuple[datetime, ...] = ()  # ticks status.recentSlots records as run
    outcome: Outcome = Outcome.RUN
    tick: datetime | None = T


CASES = {
    "the issue: an every-minute retry 150 s late runs its own 10:00 tick, not 10:02": Case(
        origin(FIRED_AT_T)
    ),
    "before the fix, judged by arrival, that retry was the 10:02 tick": Case(
        None, tick=T + 2 * MINUTE
    ),
    "a retry of 10:00 after 10:01 and 10:02 ran: the history proves 10:00 never ran": Case(
        origin(FIRED_AT_T),
        last_schedule_time=T + 2 * MINUTE,
        jobs=(
            job_for(T + MINUTE, succeeded=True, finished_at=T + MINUTE + timedelta(seconds=3)),
            job_for(T + 2 * MINUTE, active=True),
        ),
    ),
    "the history proves nothing ran, but the ledger says 10:00 was caught up (Job pruned)": Case(
        origin(FIRED_AT_T),
        last_schedule_time=T + 2 * MINUTE,
        jobs=(
            job_for(T + MINUTE, succeeded=True, finished_at=T + MINUTE + timedelta(seconds=3)),
            job_for(T + 2 * MINUTE, active=True),
        ),
        ran=(T,),
        outcome=Outcome.DUPLICATE_TICK,
    ),
    "a retry of 10:00 when 10:00's Job exists: a duplicate": Case(
        origin(FIRED_AT_T),
        last_schedule_time=T + MINUTE,
        jobs=(job_for(T, succeeded=True, finished_at=T + timedelta(seconds=3), message_id="m0"),),
        outcome=Outcome.DUPLICATE_TICK,
    ),
    "history full of newer Jobs: 10:00's may have been pruned, a duplicate": Case(
        origin(FIRED_AT_T),
        spec={**EVERY_MINUTE, "successfulJobsHistoryLimit": 1},
        last_schedule_time=T + 2 * MINUTE,
        jobs=(job_for(T + 2 * MINUTE, succeeded=True, finished_at=T + 2 * MINUTE),),
        outcome=Outcome.DUPLICATE_TICK,
    ),
    "history full, but it kept a Job older than 10:00: 10:00 never ran": Case(
        origin(FIRED_AT_T),
        spec={**EVERY_MINUTE, "successfulJobsHistoryLimit": 2},
        last_schedule_time=T + 2 * MINUTE,
        jobs=(
            job_for(T - MINUTE, succeeded=True, finished_at=T - timedelta(seconds=50)),
            job_for(T + 2 * MINUTE, succeeded=True, finished_at=T + 2 * MINUTE),
        ),
    ),
    "the kept older Job finished within the tolerance before 10:00: no proof, a duplicate": Case(
        origin(FIRED_AT_T),
        spec={**EVERY_MINUTE, "successfulJobsHistoryLimit": 2},
        last_schedule_time=T + 2 * MINUTE,
        jobs=(
            # 10:00's own Job, had an early first attempt made it, could have finished first
            job_for(T - MINUTE, succeeded=True, finished_at=T - timedelta(seconds=5)),
            job_for(T + 2 * MINUTE, succeeded=True, finished_at=T + 2 * MINUTE),
        ),
        outcome=Outcome.DUPLICATE_TICK,
    ),
    "no failed history kept (limit 0): nothing proves it, a duplicate": Case(
        origin(FIRED_AT_T),
        spec={**EVERY_MINUTE, "failedJobsHistoryLimit": 0},
        last_schedule_time=T + MINUTE,
        outcome=Outcome.DUPLICATE_TICK,
    ),
    "Replace may have deleted 10:00's Job: a duplicate": Case(
        origin(FIRED_AT_T),
        spec={**EVERY_MINUTE, "concurrencyPolicy": "Replace"},
        last_schedule_time=T + MINUTE,
        outcome=Outcome.DUPLICATE_TICK,
    ),
    "a TTL may have removed 10:00's Job: a duplicate": Case(
        origin(FIRED_AT_T),
        spec={
            **EVERY_MINUTE,
            "jobTemplate": {
                "spec": {
                    "ttlSecondsAfterFinished": 60,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "main", "image": "busybox:1.36"}],
                        }
                    },
                }
            },
        },
        last_schedule_time=T + MINUTE,
        outcome=Outcome.DUPLICATE_TICK,
    ),
    "a retry of the tick lastScheduleTime records, Job gone: a duplicate": Case(
        origin(FIRED_AT_T), last_schedule_time=T, outcome=Outcome.DUPLICATE_TICK
    ),
    "startingDeadlineSeconds is judged against the true tick": Case(
        origin(FIRED_AT_T),
        spec={**EVERY_MINUTE, "startingDeadlineSeconds": 60},
        outcome=Outcome.SKIPPED_DEADLINE,
    ),
    "a message made before the schedule took effect is not run": Case(
        origin(FIRED_AT_T),
        schedule_since=T + timedelta(seconds=30),
        outcome=Outcome.SKIPPED_RETROACTIVE,
    ),
    "QStash's clock ahead: the message made at 09:59:58 is the 10:00 tick": Case(
        origin(QSTASH_AHEAD)
    ),
}


def plan(case: Case) -> runs.RunPlan:
    return runs.plan_tick(
        cronworkflow(case.spec),
        jobs=case.jobs,
        last_schedule_time=case.last_schedule_time,
        schedule_since=case.schedule_since,
        delivered_at=case.delivered_at,
        message_id="m1",
        tolerance=TOLERANCE,
        first_attempt=case.first_attempt,
        origin=case.origin,
        schedule_ids=(SCHEDULE_ID, "c.team-a.report-recorded"),
        ran=case.ran,
    )


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_plan_tick_of_a_retry(case: Case) -> None:
    result = plan(case)
    assert result.outcome is case.outcome, result.message
    assert result.tick == case.tick


@pytest.mark.parametrize(
    "schedule_id", ["c.team-a.other", "other-cluster.team-a.report", None], ids=repr
)
def test_a_message_of_another_schedule_is_refused(schedule_id: str | None) -> None:
    with pytest.raises(PermanentDeliveryError) as caught:
        plan(Case(origin(FIRED_AT_T, schedule_id)))
    assert caught.value.reason == runs.REASON_SCHEDULE_MISMATCH
    assert SCHEDULE_ID in str(caught.value)


def test_the_schedule_id_status_records_is_accepted_too() -> None:
    """A webhook whose cluster name differs from the operator's still places the retry."""
    result = plan(Case(origin(FIRED_AT_T, "c.team-a.report-recorded")))
    assert (result.outcome, result.tick) == (Outcome.RUN, T)


@pytest.mark.parametrize(
    ("first_attempt", "jobs", "message_id", "expected"),
    [
        (True, (), "m1", False),
        (False, (), "m1", True),
        (False, (job_for(T, active=True, message_id="m1"),), "m1", False),
        (False, (job_for(T, active=True, message_id="m0"),), "m1", True),
        (False, (), None, True),
    ],
    ids=[
        "a first attempt is judged by its arrival",
        "a retry no Job ran: ask QStash",
        "a retry whose message already ran: no need to ask",
        "a retry whose tick has another message's Job: ask",
        "a retry without a message id: ask (and fail)",
    ],
)
def test_needs_origin(
    first_attempt: bool, jobs: tuple[JobView, ...], message_id: str | None, expected: bool
) -> None:
    assert runs.needs_origin(jobs, message_id=message_id, first_attempt=first_attempt) is expected
