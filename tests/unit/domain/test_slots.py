"""The per-slot ledger, catch-up choice and freshness: table tests with named instants.

The schedule is every minute from TOP_OF_THE_HOUR (10:00); ``at(n)`` is the tick n minutes later.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest

from qstash_operator.domain import cron, naming, runs, slots
from qstash_operator.domain.errors import InvalidSpecError
from qstash_operator.domain.slots import (
    CatchUp,
    CatchUpPolicy,
    Freshness,
    LedgerInputs,
    Slot,
    SlotJob,
    Suspension,
)
from tests.unit.domain import factories
from tests.unit.domain.factories import UID, cronworkflow
from tests.unit.instants import TOP_OF_THE_HOUR

EVERY_MINUTE = cron.parse("* * * * *")
GRACE = timedelta(seconds=90)


def at(minutes: float) -> datetime:
    return TOP_OF_THE_HOUR + timedelta(minutes=minutes)


def job(
    minute: int,
    fate: str = "Succeeded",
    *,
    reason: str = "JobComplete",
    delay: int = 1,
    catch_up: bool = False,
    backend: str = "QStash",
    attempt: int | None = None,
) -> SlotJob:
    tick = at(minute)
    return SlotJob(
        name=naming.job_name("report", tick),
        cronworkflow_uid=UID,
        slot=tick,
        created_at=tick + timedelta(seconds=delay),
        fate=fate,
        reason=reason,
        backend=backend,
        manual=False,
        requested_by=None,
        catch_up=catch_up,
        attempt=attempt,
    )


def inputs(**overrides: Any) -> LedgerInputs:
    values: dict[str, Any] = {
        "schedule": EVERY_MINUTE,
        "cronworkflow_uid": UID,
        "previous": (),
        "jobs": (),
        "schedule_since": at(0),
        "suspensions": (),
        "suspended_now": False,
        "last_schedule_time": None,
        "backend": "QStash",
        "limit": 20,
        "grace": GRACE,
    }
    values.update(overrides)
    return LedgerInputs(**values)


def fates(ledger: list[Slot]) -> list[tuple[str, str, str]]:
    """(HH:MM, fate, reason), newest first."""
    return [(s.time.strftime("%H:%M"), s.fate, s.reason) for s in ledger]


# -- the ledger ------------------------------------------------------------------------------------

LEDGER_CASES = [
    pytest.param(
        {
            "jobs": [
                job(0),
                job(1, "Failed", reason="BackoffLimitExceeded"),
                job(2, "Running", reason="JobActive"),
            ]
        },
        at(3) + timedelta(seconds=10),
        [
            ("10:02", "Running", "JobActive"),
            ("10:01", "Failed", "BackoffLimitExceeded"),
            ("10:00", "Succeeded", "JobComplete"),
        ],
        id="each Job's state",
    ),
    pytest.param(
        {"jobs": [job(0)]},
        at(3) + timedelta(seconds=1),
        # 10:01 is past the grace: Missed; 10:02 and 10:03 are not due yet
        [("10:01", "Missed", "NoRun"), ("10:00", "Succeeded", "JobComplete")],
        id="no run after the grace is Missed, within the grace nothing yet",
    ),
    pytest.param(
        {"schedule_since": at(2), "jobs": []},
        at(5),
        [("10:03", "Missed", "NoRun"), ("10:02", "Missed", "NoRun")],
        id="nothing is owed before scheduleSince",
    ),
    pytest.param(
        {"suspensions": [Suspension(at(1), at(3))]},
        at(4) + timedelta(seconds=30),
        [
            ("10:03", "Missed", "NoRun"),
            ("10:02", "Skipped", "Suspended"),
            ("10:01", "Skipped", "Suspended"),
            ("10:00", "Missed", "NoRun"),
        ],
        id="suspended slots are Skipped, not Missed",
    ),
    pytest.param(
        {"suspended_now": True, "schedule_since": at(0)},
        at(2),
        [("10:00", "Skipped", "Suspended")],
        id="suspended without an interval recorded yet",
    ),
    pytest.param(
        {"jobs": [job(1, catch_up=True)]},
        at(2) + timedelta(seconds=30),
        [("10:01", "CaughtUp", "JobComplete"), ("10:00", "Missed", "NoRun")],
        id="a catch-up run reads CaughtUp",
    ),
    pytest.param(
        {"last_schedule_time": at(3), "jobs": [job(3)]},
        at(4) + timedelta(seconds=30),
        [("10:03", "Succeeded", "JobComplete")],
        id="a new ledger does not guess about slots before lastScheduleTime",
    ),
    pytest.param(
        {
            "last_schedule_time": at(3),
            "jobs": [job(3)],
            "previous": [Slot(at(0), "Succeeded", "JobComplete", job="report-x")],
        },
        at(4) + timedelta(seconds=30),
        [
            ("10:03", "Succeeded", "JobComplete"),
            ("10:02", "Missed", "NoRun"),
            ("10:01", "Missed", "NoRun"),
            ("10:00", "Succeeded", "JobComplete"),
        ],
        id="a ledger that covers them says those slots were missed",
    ),
    pytest.param(
        {
            "backend": "CronJob",
            "last_schedule_time": at(3),
            "jobs": [job(3, backend="CronJob")],
            "previous": [Slot(at(0), "Succeeded", "JobComplete", job="report-x")],
        },
        at(4) + timedelta(seconds=30),
        [("10:03", "Succeeded", "JobComplete"), ("10:00", "Succeeded", "JobComplete")],
        id="on the CronJob backend a pruned run is not told from a missed one",
    ),
    pytest.param(
        {
            "previous": [
                Slot(at(0), "Skipped", "ConcurrencyForbid"),
                Slot(at(1), "Succeeded", "JobComplete", job="report-1"),
            ]
        },
        at(2) + timedelta(seconds=30),
        [("10:01", "Succeeded", "JobComplete"), ("10:00", "Skipped", "ConcurrencyForbid")],
        id="what writers recorded is kept once the Jobs are pruned",
    ),
    pytest.param(
        {"previous": [Slot(at(0), "Running", "JobActive", job="report-0", delay_seconds=1)]},
        at(0) + timedelta(seconds=30),
        [("10:00", "Running", "JobActive")],
        id="a Running entry whose Job is not in the cache yet stays Running",
    ),
    pytest.param(
        {"previous": [Slot(at(0), "Running", "JobActive", job="report-0", delay_seconds=1)]},
        at(3),
        [("10:01", "Missed", "NoRun"), ("10:00", "Failed", "JobDeleted")],
        id="a Running entry whose Job went away is Failed",
    ),
    pytest.param({}, at(0) + timedelta(seconds=30), [], id="nothing due yet"),
]


@pytest.mark.parametrize(("overrides", "now", "expected"), LEDGER_CASES)
def test_the_ledger(
    overrides: dict[str, Any], now: datetime, expected: list[tuple[str, str, str]]
) -> None:
    assert fates(slots.build_ledger(inputs(**overrides), now=now)) == expected


def test_jobs_of_a_namesake_that_was_deleted_do_not_count() -> None:
    stranger = dataclasses.replace(job(0), cronworkflow_uid="another-uid")
    ledger = slots.build_ledger(inputs(jobs=[stranger]), now=at(2))
    assert fates(ledger) == [("10:00", "Missed", "NoRun")]


def test_the_ledger_is_bounded_newest_first() -> None:
    ledger = slots.build_ledger(inputs(limit=3), now=at(10))
    assert [s.time for s in ledger] == [at(8), at(7), at(6)]


def test_a_long_outage_walks_back_one_ledger_not_the_whole_outage() -> None:
    previous = [Slot(at(0), "Succeeded", "JobComplete", job="report-0")]
    ledger = slots.build_ledger(inputs(previous=previous, limit=5), now=at(60 * 24 * 3))
    assert [s.fate for s in ledger] == ["Missed"] * 5
    assert ledger[0].time == at(60 * 24 * 3 - 2)


def test_manual_runs_are_listed_with_who_asked() -> None:
    manual = SlotJob(
        name="report-manual-abcde",
        cronworkflow_uid=UID,
        slot=None,
        created_at=at(0) + timedelta(seconds=20),
        fate="Succeeded",
        reason="JobComplete",
        backend="QStash",
        manual=True,
        requested_by="alice",
        catch_up=False,
        attempt=None,
    )
    ledger = slots.build_ledger(inputs(jobs=[manual, job(0)]), now=at(0) + timedelta(seconds=40))
    assert [entry.as_status() for entry in ledger] == [
        {
            "time": "2026-06-01T10:00:20Z",
            "fate": "Succeeded",
            "reason": "JobComplete",
            "job": "report-manual-abcde",
            "backend": "QStash",
            "requestedBy": "alice",
            "manual": True,
        },
        {
            "time": "2026-06-01T10:00:00Z",
            "fate": "Succeeded",
            "reason": "JobComplete",
            "job": naming.job_name("report", at(0)),
            "backend": "QStash",
            "delaySeconds": 1,
        },
    ]


def test_entries_round_trip_through_status() -> None:
    entry = Slot(
        at(3), "CaughtUp", "JobActive", job="j", backend="CronJob", delay_seconds=95, attempts=2
    )
    assert slots.parse_ledger([entry.as_status(), {"garbage": 1}, "x"]) == [entry]


# -- reading a Job --------------------------------------------------------------------------------


def raw_job(
    name: str, *, annotations: dict[str, str] | None = None, **labels: str
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": "2026-06-01T10:03:02Z",
            "labels": {"qstash-operator.dev/cronworkflow": "report", **labels},
            "annotations": annotations or {},
        },
        "status": {
            "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]
        },
    }


@pytest.mark.parametrize(
    ("annotations", "slot"),
    [
        ({"qstash-operator.dev/scheduled-time": "2026-06-01T10:03:00Z"}, at(3)),
        ({"batch.kubernetes.io/cronjob-scheduled-timestamp": "2026-06-01T12:03:00+02:00"}, at(3)),
        ({}, at(3)),  # from the name: <name>-<unix minutes>, the CronJob controller's rule
    ],
    ids=["our annotation", "the CronJob controller's", "the name"],
)
def test_a_jobs_slot(annotations: dict[str, str], slot: datetime) -> None:
    view = slots.slot_job(raw_job(naming.job_name("report", at(3)), annotations=annotations))
    assert (view.slot, view.fate, view.reason) == (slot, "Failed", "DeadlineExceeded")


# -- suspensions ----------------------------------------------------------------------------------


def test_suspending_and_resuming_record_an_interval() -> None:
    opened = slots.suspensions_after(None, suspended=True, now=at(1))
    assert opened == [{"since": "2026-06-01T10:01:00Z"}]
    assert slots.suspensions_after(opened, suspended=True, now=at(2)) is None
    closed = slots.suspensions_after(opened, suspended=False, now=at(3))
    assert closed == [{"since": "2026-06-01T10:01:00Z", "until": "2026-06-01T10:03:00Z"}]
    assert slots.suspensions_after(closed, suspended=False, now=at(4)) is None


def test_only_the_latest_suspensions_are_kept() -> None:
    raw: Any = None
    for minute in range(0, 20, 2):
        raw = slots.suspensions_after(raw, suspended=True, now=at(minute))
        raw = slots.suspensions_after(raw, suspended=False, now=at(minute + 1))
    assert len(raw) == slots.MAX_SUSPENSIONS
    assert raw[-1] == {"since": "2026-06-01T10:18:00Z", "until": "2026-06-01T10:19:00Z"}


# -- options ---------------------------------------------------------------------------------------

OPTION_CASES = [
    pytest.param(
        {}, None, CatchUp(CatchUpPolicy.NONE, 0, None), id="default without a deadline: None"
    ),
    pytest.param(
        {},
        300,
        CatchUp(CatchUpPolicy.LATEST, 1, timedelta(seconds=300)),
        id="default with a deadline: Latest within it",
    ),
    pytest.param(
        {"catchUp": {"policy": "All", "maxRuns": 3}},
        None,
        CatchUp(CatchUpPolicy.ALL, 3, None),
        id="All, maxRuns",
    ),
    pytest.param(
        {"catchUp": {"policy": "All"}},
        60,
        CatchUp(CatchUpPolicy.ALL, 20, timedelta(seconds=60)),
        id="All: the ledger, within the deadline",
    ),
    pytest.param(
        {"catchUp": {"policy": "Latest", "window": "2h"}},
        60,
        CatchUp(CatchUpPolicy.LATEST, 1, timedelta(hours=2)),
        id="a window of its own",
    ),
    pytest.param(
        {"catchUp": {"policy": "None"}},
        60,
        CatchUp(CatchUpPolicy.NONE, 0, timedelta(seconds=60)),
        id="None",
    ),
]


@pytest.mark.parametrize(("spec", "deadline", "expected"), OPTION_CASES)
def test_catch_up_options(spec: dict[str, Any], deadline: int | None, expected: CatchUp) -> None:
    assert slots.parse_options(spec, starting_deadline_seconds=deadline).catch_up == expected


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"slotHistoryLimit": 0}, "spec.slotHistoryLimit"),
        ({"slotHistoryLimit": 101}, "spec.slotHistoryLimit"),
        ({"catchUp": {"policy": "Some"}}, "spec.catchUp.policy"),
        ({"catchUp": {"policy": "All", "maxRuns": 0}}, "spec.catchUp.maxRuns"),
        ({"catchUp": {"window": "soon"}}, "spec.catchUp.window"),
        ({"freshness": {}}, "spec.freshness"),
        ({"freshness": {"maxAge": "26"}}, "spec.freshness.maxAge"),
        ({"freshness": {"missedSlots": 0}}, "spec.freshness.missedSlots"),
    ],
)
def test_bad_options_name_their_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        slots.parse_options(spec, starting_deadline_seconds=None)
    assert caught.value.field == field


def test_the_cronworkflow_carries_its_options() -> None:
    cw = cronworkflow({"slotHistoryLimit": 5, "freshness": {"maxAge": "26h", "missedSlots": 3}})
    assert cw.spec.slot_options.history_limit == 5
    assert cw.spec.slot_options.freshness == Freshness(timedelta(hours=26), 3)


# -- catch-up --------------------------------------------------------------------------------------

MISSED_FIVE = [Slot(at(m), "Missed", "NoRun") for m in (5, 4, 3, 2, 1)] + [
    Slot(at(0), "Succeeded", "JobComplete", job="j")
]


@pytest.mark.parametrize(
    ("catch_up", "expected"),
    [
        (CatchUp(CatchUpPolicy.ALL, 3, None), [at(3), at(4), at(5)]),
        (CatchUp(CatchUpPolicy.ALL, 20, None), [at(1), at(2), at(3), at(4), at(5)]),
        (CatchUp(CatchUpPolicy.LATEST, 1, None), [at(5)]),
        (CatchUp(CatchUpPolicy.NONE, 0, None), []),
        (CatchUp(CatchUpPolicy.ALL, 20, timedelta(minutes=3)), [at(4), at(5)]),
    ],
    ids=["All maxRuns 3: the latest three, oldest first", "All", "Latest", "None", "a window"],
)
def test_catch_up_chooses(catch_up: CatchUp, expected: list[datetime]) -> None:
    assert slots.catch_up_slots(MISSED_FIVE, catch_up, now=at(7)) == expected


def test_a_catch_up_run_uses_the_slots_job_name_and_the_run_rules() -> None:
    cw = cronworkflow({"schedule": "* * * * *", "startingDeadlineSeconds": 120})
    plan = runs.plan_catch_up(cw, jobs=[], tick=at(5), schedule_since=at(0), now=at(6))
    assert (plan.outcome, plan.job_name) == (runs.Outcome.RUN, naming.job_name("report", at(5)))
    late = runs.plan_catch_up(cw, jobs=[], tick=at(1), schedule_since=at(0), now=at(6))
    assert late.outcome is runs.Outcome.SKIPPED_DEADLINE
    since = at(5) + timedelta(seconds=1)
    early = runs.plan_catch_up(cw, jobs=[], tick=at(5), schedule_since=since, now=at(6))
    assert early.outcome is runs.Outcome.SKIPPED_RETROACTIVE


def test_a_catch_up_run_and_a_late_retry_cannot_both_run() -> None:
    from tests.unit.domain.factories import job as job_view

    cw = cronworkflow({"schedule": "* * * * *"})
    name = naming.job_name("report", at(5))
    plan = runs.plan_catch_up(
        cw, jobs=[job_view(name, active=True)], tick=at(5), schedule_since=at(0), now=at(7)
    )
    assert plan.outcome is runs.Outcome.DUPLICATE_TICK


def test_suspended_slots_are_not_caught_up_after_resuming() -> None:
    ledger = slots.build_ledger(inputs(suspensions=[Suspension(at(0), at(4))]), now=at(6))
    assert [s.fate for s in ledger if s.time < at(4)] == ["Skipped"] * 4
    assert slots.catch_up_slots(ledger, CatchUp(CatchUpPolicy.ALL, 20, None), now=at(6)) == [
        at(4)  # the slot after the resume, missed; none of the suspended ones
    ]


# -- recording runs and skips ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delivered_after", "created_after", "recorded_delay"),
    [
        pytest.param(0.2, None, 0, id="no Job view: the delivery's instant"),
        pytest.param(0.2, 0, 0, id="created in the tick's second"),
        pytest.param(0.2, 2, 2, id="created two seconds on: the Job's second, not the arrival's"),
    ],
)
def test_a_run_records_the_delay_the_mirror_reads_from_its_job(
    delivered_after: float, created_after: int | None, recorded_delay: int
) -> None:
    cw = cronworkflow({"schedule": "* * * * *"})
    created = None if created_after is None else at(1) + timedelta(seconds=created_after)
    jobs = [] if created is None else [factories.job("report-1", active=True, created_at=created)]
    patch = runs.status_after_run(
        cw,
        {"backend": "QStash"},
        jobs,
        created="report-1",
        tick=at(1),
        manual=None,
        now=at(1) + timedelta(seconds=delivered_after),
        attempt=1,
    )
    assert patch["recentSlots"][0]["delaySeconds"] == recorded_delay
    if created is not None:  # the mirror's entry from the same Job is the same entry
        job = slots.SlotJob(
            name="report-1",
            cronworkflow_uid="",
            slot=at(1),
            created_at=created,
            fate="Running",
            reason="JobActive",
            backend="QStash",
            manual=False,
            requested_by=None,
            catch_up=False,
            attempt=1,
        )
        mirrored = slots.ledger_status(
            slots.with_jobs(
                slots.parse_ledger(patch["recentSlots"]), [job], cronworkflow_uid="", limit=10
            )
        )
        assert mirrored == patch["recentSlots"]


def test_a_run_and_a_skip_are_recorded_by_their_writer() -> None:
    cw = cronworkflow({"schedule": "* * * * *", "slotHistoryLimit": 2})
    status: dict[str, Any] = {"backend": "QStash"}
    patch = runs.status_after_run(
        cw,
        status,
        [],
        created="report-1",
        tick=at(1),
        manual=None,
        now=at(1) + timedelta(seconds=3),
        attempt=2,
    )
    assert patch["recentSlots"] == [
        {
            "time": "2026-06-01T10:01:00Z",
            "fate": "Running",
            "reason": "JobActive",
            "job": "report-1",
            "backend": "QStash",
            "delaySeconds": 3,
            "attempts": 2,
        }
    ]
    status.update(patch)
    skip = runs.RunPlan(runs.Outcome.SKIPPED_FORBID, tick=at(2))
    patch = runs.status_after_skip(cw, status, skip)
    assert [(e["time"][11:16], e["fate"], e["reason"]) for e in patch["recentSlots"]] == [
        ("10:02", "Skipped", "ConcurrencyForbid"),
        ("10:01", "Running", "JobActive"),
    ]
    status.update(patch)
    assert runs.status_after_skip(cw, status, skip) == {}  # a retry skipped again
    assert (
        runs.status_after_skip(cw, status, runs.RunPlan(runs.Outcome.DUPLICATE_TICK, tick=at(2)))
        == {}
    )


# -- counting -------------------------------------------------------------------------------------


def test_each_settled_slot_is_counted_once() -> None:
    first = [Slot(at(1), "Missed", "NoRun"), Slot(at(0), "Running", "JobActive", job="j")]
    seen: set[Any] = set()
    assert [s.fate for s in slots.newly_settled(first, seen)] == ["Missed"]
    seen |= slots.settled(first)
    later = [
        Slot(at(1), "CaughtUp", "JobComplete", job="k"),
        Slot(at(0), "Succeeded", "JobComplete", job="j"),
    ]
    assert [s.fate for s in slots.newly_settled(later, seen)] == ["Succeeded", "CaughtUp"]


# -- freshness ------------------------------------------------------------------------------------

FRESH_CASES = [
    pytest.param(
        Freshness(max_age=timedelta(hours=26)),
        at(0),
        at(60 * 25),
        True,
        "Fresh",
        id="within maxAge",
    ),
    pytest.param(
        Freshness(max_age=timedelta(hours=26)), at(0), at(60 * 27), False, "Stale", id="past maxAge"
    ),
    pytest.param(
        Freshness(max_age=timedelta(hours=1)),
        None,
        at(30),
        True,
        "Fresh",
        id="no success yet, young",
    ),
    pytest.param(
        Freshness(max_age=timedelta(hours=1)),
        None,
        at(61),
        False,
        "Stale",
        id="no success in maxAge",
    ),
    pytest.param(
        Freshness(missed_slots=2),
        at(5),
        at(6),
        False,
        "MissedSlots",
        id="the latest N did not succeed",
    ),
    pytest.param(
        Freshness(missed_slots=3), at(5), at(6), True, "Fresh", id="one of the latest N succeeded"
    ),
]


@pytest.mark.parametrize(("freshness", "last_success", "now", "fresh", "reason"), FRESH_CASES)
def test_freshness(
    freshness: Freshness, last_success: datetime | None, now: datetime, fresh: bool, reason: str
) -> None:
    ledger = [
        Slot(at(3), "Failed", "BackoffLimitExceeded", job="c"),
        Slot(at(2), "Missed", "NoRun"),
        Slot(at(1), "Succeeded", "JobComplete", job="a"),
    ]
    verdict = slots.judge_freshness(
        freshness, ledger, last_success=last_success, since=at(0), suspended=False, now=now
    )
    assert (verdict.fresh, verdict.reason) == (fresh, reason)


def test_a_suspended_cronworkflow_is_not_judged() -> None:
    verdict = slots.judge_freshness(
        Freshness(max_age=timedelta(minutes=1)),
        [],
        last_success=None,
        since=at(0),
        suspended=True,
        now=at(60),
    )
    assert (verdict.fresh, verdict.reason) == (True, "Suspended")


def test_a_later_pass_does_not_reach_further_back_into_the_same_outage() -> None:
    after_one_pass = [
        Slot(at(5), "CaughtUp", "JobComplete", job="e"),
        Slot(at(4), "CaughtUp", "JobComplete", job="d"),
        Slot(at(3), "CaughtUp", "JobActive", job="c"),
        Slot(at(2), "Missed", "NoRun"),
        Slot(at(1), "Missed", "NoRun"),
    ]
    assert (
        slots.catch_up_slots(after_one_pass, CatchUp(CatchUpPolicy.ALL, 3, None), now=at(7)) == []
    )


def test_each_outage_is_owed_its_own_runs() -> None:
    ledger = [
        Slot(at(9), "Missed", "NoRun"),
        Slot(at(8), "Succeeded", "JobComplete", job="h"),
        Slot(at(7), "Missed", "NoRun"),
        Slot(at(6), "Missed", "NoRun"),
        Slot(at(5), "Succeeded", "JobComplete", job="m", manual=True),  # not an outage break
        Slot(at(5), "Missed", "NoRun"),
    ]
    latest = CatchUp(CatchUpPolicy.LATEST, 1, None)
    assert slots.catch_up_slots(ledger, latest, now=at(10)) == [at(7), at(9)]


def test_the_job_mirror_updates_entries_but_never_judges_a_slot_missed() -> None:
    previous = [Slot(at(0), "Running", "JobActive", job=naming.job_name("report", at(0)))]
    ledger = slots.with_jobs(
        previous, [job(0), job(2, "Running", reason="JobActive")], cronworkflow_uid=UID, limit=20
    )
    assert fates(ledger) == [
        ("10:02", "Running", "JobActive"),
        ("10:00", "Succeeded", "JobComplete"),
    ]
