"""Validity windows and run limits: parsing, the phase at named instants, and what reconcile and
the 30 s refresh do about them (steps rendered as in ``test_reconcile``).

The schedule is the factories' ``0 * * * *``; the instants are ``tests/unit/instants.py``'s
(10:00 UTC on Monday 2026-06-01 is TOP_OF_THE_HOUR).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import pytest

from qstash_operator.domain import model, reconcile, vocabulary, window
from qstash_operator.domain.errors import InvalidSpecError
from qstash_operator.domain.reconcile import CreateCronJob, ReplaceCronJob
from tests.unit.domain.factories import body, cronworkflow
from tests.unit.domain.test_reconcile import (
    PRODUCTION,
    SID,
    applied,
    condition,
    merge,
    rendered,
)
from tests.unit.instants import JUST_AFTER_THE_HOUR, JUST_BEFORE_THE_HOUR, TOP_OF_THE_HOUR

HALF_PAST_TEN: Final = "2026-06-01T10:30:00Z"
TEN: Final = "2026-06-01T10:00:00Z"
NOON: Final = "2026-06-01T12:00:00Z"
ELEVEN_O_ONE: Final = datetime(2026, 6, 1, 11, 0, 1, tzinfo=UTC)
UPSERT_PAUSED: Final = (f"upsert {SID} 'CRON_TZ=UTC 0 * * * *'", f"pause {SID}")
UPSERT_RESUMED: Final = (f"upsert {SID} 'CRON_TZ=UTC 0 * * * *'", f"resume {SID}")


# -- parsing ---------------------------------------------------------------------------------------


def test_the_three_fields_are_read() -> None:
    spec = model.parse(
        body({"activeFrom": "2026-06-01T12:00:00+02:00", "activeUntil": NOON, "maxRuns": 2})
    ).spec
    assert spec.active_from == datetime(2026, 6, 1, 10, tzinfo=UTC)
    assert spec.active_until == datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert spec.max_runs == 2


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        pytest.param({"activeFrom": "2026-06-01"}, "spec.activeFrom", "RFC 3339", id="a date"),
        pytest.param(
            {"activeUntil": "2026-06-01T12:00:00"}, "spec.activeUntil", "offset", id="no offset"
        ),
        pytest.param(
            {"activeFrom": "2026-02-30T00:00:00Z"}, "spec.activeFrom", "exists", id="30 February"
        ),
        pytest.param(
            {"activeFrom": NOON, "activeUntil": TEN}, "spec.activeUntil", "after", id="backwards"
        ),
        pytest.param({"activeFrom": TEN, "activeUntil": TEN}, "spec.activeUntil", "after", id="0s"),
        pytest.param({"maxRuns": 0}, "spec.maxRuns", ">= 1", id="no runs at all"),
        pytest.param({"maxRuns": "2"}, "spec.maxRuns", "integer", id="a string"),
    ],
)
def test_bad_limits_are_refused_naming_the_field(
    spec: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        model.parse(body(spec))
    assert caught.value.field == field
    assert words in str(caught.value)


# -- the phase ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class At:
    spec: dict[str, Any]
    now: datetime
    phase: window.Phase
    backend_on: bool = True
    switch_at: datetime | None = None
    runs: int = 0


PHASES = {
    "no limits: active, no edge": At({}, JUST_AFTER_THE_HOUR, window.Phase.ACTIVE),
    "two hours before the window: waiting, paused until the 11:00 tick has passed": At(
        {"activeFrom": NOON},
        JUST_AFTER_THE_HOUR,
        window.Phase.WAITING,
        backend_on=False,
        switch_at=ELEVEN_O_ONE,
    ),
    "before the window, its last outside tick passed: waiting, but switched on": At(
        {"activeFrom": HALF_PAST_TEN},
        JUST_AFTER_THE_HOUR,
        window.Phase.WAITING,
        switch_at=datetime(2026, 6, 1, 10, 30, tzinfo=UTC),
    ),
    "exactly at activeFrom: active": At({"activeFrom": TEN}, TOP_OF_THE_HOUR, window.Phase.ACTIVE),
    "inside the window: active until its end": At(
        {"activeUntil": NOON},
        JUST_AFTER_THE_HOUR,
        window.Phase.ACTIVE,
        switch_at=datetime(2026, 6, 1, 12, tzinfo=UTC),
    ),
    "exactly at activeUntil: ended": At(
        {"activeUntil": TEN}, TOP_OF_THE_HOUR, window.Phase.ENDED, backend_on=False
    ),
    "one run of two made: active": At(
        {"maxRuns": 2}, JUST_AFTER_THE_HOUR, window.Phase.ACTIVE, runs=1
    ),
    "two runs of two made: exhausted": At(
        {"maxRuns": 2}, JUST_AFTER_THE_HOUR, window.Phase.EXHAUSTED, backend_on=False, runs=2
    ),
    "exhausted before the window even opened: exhausted wins": At(
        {"maxRuns": 1, "activeFrom": NOON},
        JUST_AFTER_THE_HOUR,
        window.Phase.EXHAUSTED,
        backend_on=False,
        runs=1,
    ),
}


@pytest.mark.parametrize("case", PHASES.values(), ids=PHASES.keys())
def test_phase(case: At) -> None:
    state = window.phase(cronworkflow(case.spec).spec, case.runs, case.now)
    assert (state.phase, state.backend_on, state.switch_at) == (
        case.phase,
        case.backend_on,
        case.switch_at,
    )


def test_the_first_tick_the_window_lets_run() -> None:
    spec = cronworkflow({"activeFrom": NOON, "activeUntil": "2026-06-01T14:00:00Z"}).spec
    assert window.first_tick(spec, JUST_AFTER_THE_HOUR) == datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert window.first_tick(spec, datetime(2026, 6, 1, 13, 0, 1, tzinfo=UTC)) is None


# -- reconcile -------------------------------------------------------------------------------


def runs_made(status: Mapping[str, Any], count: int) -> dict[str, Any]:
    return {**status, "scheduledRuns": count}


EXHAUSTED_ON_QSTASH: Final = runs_made(applied({"maxRuns": 2}), 2)
COMPLETED: Final = merge(
    EXHAUSTED_ON_QSTASH,
    reconcile.plan(
        body({"maxRuns": 2}, status=EXHAUSTED_ON_QSTASH), PRODUCTION, now=TOP_OF_THE_HOUR
    ).status,
)


@dataclasses.dataclass(frozen=True)
class Case:
    spec: dict[str, Any]
    steps: tuple[str, ...]
    """After the dry run of the Job, when there is one (a completed object makes none)."""
    before: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    now: datetime = JUST_AFTER_THE_HOUR
    ready: tuple[str, str] = ("True", vocabulary.REASON_READY)
    status: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    requeue: float | None = None


CASES = {
    "two hours before the window: the QStash schedule is created paused": Case(
        {"activeFrom": NOON},
        steps=(*UPSERT_PAUSED, "Normal ScheduleUpserted"),
        ready=("True", vocabulary.REASON_NOT_YET_ACTIVE),
        status={"nextScheduleTime": NOON},
        requeue=3599.0,
    ),
    "before the window but past its last outside tick: resumed ahead of activeFrom": Case(
        {"activeFrom": HALF_PAST_TEN},
        steps=(*UPSERT_RESUMED, "Normal ScheduleUpserted"),
        status={"nextScheduleTime": "2026-06-01T11:00:00Z"},
        requeue=1798.0,
    ),
    "inside the window: scheduled as usual, looked at again at its end": Case(
        {"activeUntil": NOON},
        steps=(*UPSERT_RESUMED, "Normal ScheduleUpserted"),
        status={"nextScheduleTime": "2026-06-01T11:00:00Z"},
        requeue=7198.0,
    ),
    "inside the window after its last tick: no next run": Case(
        {"activeUntil": HALF_PAST_TEN},
        steps=(*UPSERT_RESUMED, "Normal ScheduleUpserted"),
        status={"nextScheduleTime": None},
        requeue=1798.0,
    ),
    "maxRuns made on QStash: the schedule is deleted and the object Completed": Case(
        {"maxRuns": 2},
        before=EXHAUSTED_ON_QSTASH,
        steps=(f"delete schedule {SID}", "Normal ScheduleDeleted", "Normal Completed"),
        ready=("False", vocabulary.REASON_COMPLETED),
        status={"scheduleId": None, "appliedScheduleHash": None, "nextScheduleTime": None},
    ),
    "the window ended on the CronJob backend: Jobs adopted, the CronJob deleted": Case(
        {"backend": "CronJob", "activeUntil": TEN},
        before=applied({"backend": "CronJob", "activeUntil": TEN}, now=JUST_BEFORE_THE_HOUR),
        steps=(
            "adopt Jobs",
            "delete CronJob report orphaning its Jobs",
            "adopt Jobs",
            "Normal CronJobDeleted",
            "sweep marker CronJobs",
            "Normal Completed",
        ),
        ready=("False", vocabulary.REASON_COMPLETED),
        status={"cronJobName": None, "appliedScheduleHash": None},
    ),
    "already Completed: no backend call, no event": Case(
        {"maxRuns": 2},
        before=COMPLETED,
        steps=(),
        ready=("False", vocabulary.REASON_COMPLETED),
    ),
    "maxRuns raised after completion: the schedule is applied again": Case(
        {"maxRuns": 3},
        before=COMPLETED,
        steps=(*UPSERT_RESUMED, "Normal ScheduleUpserted"),
        status={"scheduleId": SID, "nextScheduleTime": "2026-06-01T11:00:00Z"},
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_reconcile_with_limits(case: Case) -> None:
    done = reconcile.plan(body(case.spec, status=dict(case.before)), PRODUCTION, now=case.now)
    assert done.error is None
    steps = rendered(done)
    if steps and steps[0] == "dry-run Job":
        steps = steps[1:]
    assert steps == case.steps
    assert condition(done.status, "Ready") == case.ready
    for key, value in case.status.items():
        assert done.status.get(key) == value, key
    assert done.requeue_after == case.requeue


def test_a_cronjob_waiting_for_its_window_is_suspended() -> None:
    done = reconcile.plan(
        body({"backend": "CronJob", "activeFrom": NOON}), PRODUCTION, now=JUST_AFTER_THE_HOUR
    )
    [create] = [s for s in done.steps if isinstance(s, CreateCronJob | ReplaceCronJob)]
    assert create.manifest["spec"]["suspend"] is True
    assert condition(done.status, "Ready") == ("True", vocabulary.REASON_NOT_YET_ACTIVE)


def test_a_user_suspend_inside_the_window_still_reads_suspended() -> None:
    done = reconcile.plan(
        body({"suspend": True, "activeUntil": NOON}), PRODUCTION, now=JUST_AFTER_THE_HOUR
    )
    assert condition(done.status, "Ready") == ("True", vocabulary.REASON_SUSPENDED)
    assert done.status["nextScheduleTime"] is None


# -- the refresh timer: the edges come by the clock or by the run count -------------------------


WAITING_FOR_HALF_PAST: Final = applied({"activeFrom": HALF_PAST_TEN}, now=JUST_BEFORE_THE_HOUR)


@dataclasses.dataclass(frozen=True)
class Tick:
    spec: dict[str, Any]
    before: Mapping[str, Any]
    now: datetime
    steps: tuple[str, ...]
    ready: tuple[str, str] | None = None
    """The Ready condition in the patch (None: the refresh writes none)."""


REFRESHES = {
    "the run count reached maxRuns since the last reconcile: completes": Tick(
        {"maxRuns": 2},
        EXHAUSTED_ON_QSTASH,
        JUST_AFTER_THE_HOUR,
        steps=(f"delete schedule {SID}", "Normal ScheduleDeleted", "Normal Completed"),
        ready=("False", vocabulary.REASON_COMPLETED),
    ),
    "waiting, and the last tick before the window has passed: resumes": Tick(
        {"activeFrom": HALF_PAST_TEN},
        WAITING_FOR_HALF_PAST,
        JUST_AFTER_THE_HOUR,
        steps=("dry-run Job", *UPSERT_RESUMED, "Normal ScheduleUpserted"),
        ready=("True", vocabulary.REASON_READY),
    ),
    "waiting, and that tick has not passed yet: nothing": Tick(
        {"activeFrom": HALF_PAST_TEN}, WAITING_FOR_HALF_PAST, TOP_OF_THE_HOUR, steps=()
    ),
    "the window ended: completes": Tick(
        {"activeUntil": TEN},
        applied({"activeUntil": TEN}),
        JUST_AFTER_THE_HOUR,
        steps=(f"delete schedule {SID}", "Normal ScheduleDeleted", "Normal Completed"),
        ready=("False", vocabulary.REASON_COMPLETED),
    ),
    "suspended when the window ended: completes too": Tick(
        {"activeUntil": TEN, "suspend": True},
        applied({"activeUntil": TEN, "suspend": True}),
        JUST_AFTER_THE_HOUR,
        steps=(f"delete schedule {SID}", "Normal ScheduleDeleted", "Normal Completed"),
        ready=("False", vocabulary.REASON_COMPLETED),
    ),
    "inside the window with runs left: nothing": Tick(
        {"maxRuns": 2, "activeUntil": NOON},
        runs_made(applied({"maxRuns": 2, "activeUntil": NOON}), 1),
        JUST_AFTER_THE_HOUR,
        steps=(),
    ),
    "completed already: nothing": Tick({"maxRuns": 2}, COMPLETED, JUST_AFTER_THE_HOUR, steps=()),
}


@pytest.mark.parametrize("case", REFRESHES.values(), ids=REFRESHES.keys())
def test_refresh_at_the_edges(case: Tick) -> None:
    done = reconcile.plan_refresh(
        body(case.spec, status=dict(case.before)), PRODUCTION, now=case.now
    )
    assert done.error is None
    assert rendered(done) == case.steps
    assert condition(done.status, "Ready") == case.ready


def test_no_limits_means_the_refresh_never_replans() -> None:
    before = applied()
    done = reconcile.plan_refresh(body(status=before), PRODUCTION, now=JUST_AFTER_THE_HOUR)
    assert rendered(done) == ()
    assert condition(done.status, "Ready") is None  # the plain refresh path: no replan


def test_reconcile_and_drift_repair_apply_the_same_paused_schedule_while_waiting() -> None:
    waiting = cronworkflow({"activeFrom": NOON})
    assert window.as_applied(waiting, {}, JUST_AFTER_THE_HOUR).spec.suspend is True
    assert window.as_applied(waiting, {}, ELEVEN_O_ONE).spec.suspend is False
    plain = cronworkflow()
    assert window.as_applied(plain, {}, JUST_AFTER_THE_HOUR) is plain
