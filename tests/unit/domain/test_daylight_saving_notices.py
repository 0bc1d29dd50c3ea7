"""Daylight-saving days shown before they happen (issue 12): ``status.daylightSaving`` and events.

Tables over the reconcile plans with named instants: what the plan writes to status, and which
Normal events it posts, once per spec generation.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any, Final

import pytest

from qstash_operator.domain import reconcile, vocabulary
from qstash_operator.domain.reconcile import Context, PostEvent, ReconcilePlan
from tests.unit.domain.factories import body
from tests.unit.instants import TOP_OF_THE_HOUR

PRODUCTION: Final = Context(
    cluster_name="prod", public_url="https://cron.example.com", has_qstash_token=True
)
JUNE: Final = TOP_OF_THE_HOUR  # 2026-06-01 10:00 UTC: summer time in Europe and America
DAY_AFTER_BERLIN_FALL_BACK: Final = datetime(2026, 10, 26, 12, 0, tzinfo=UTC)
UNCHANGED: Final = object()

BERLIN_REPEAT: Final = {
    "date": "2026-10-25",
    "effect": "Repeat",
    "localTimes": ["02:30"],
    "message": "runs twice: 02:30 happens twice in Europe/Berlin on 2026-10-25 "
    "(the clocks go back)",
}
BERLIN_SKIP: Final = {
    "date": "2027-03-28",
    "effect": "Skip",
    "localTimes": ["02:30"],
    "message": "skipped: 02:30 does not exist in Europe/Berlin on 2027-03-28 "
    "(the clocks go forward)",
}
BERLIN_0230: Final = {"schedule": "30 2 * * *", "timeZone": "Europe/Berlin"}


@dataclasses.dataclass(frozen=True)
class Case:
    spec: dict[str, Any]
    status: dict[str, Any] = dataclasses.field(default_factory=dict)
    generation: int = 1
    now: datetime = JUNE
    refresh: bool = False  # the 30 s timer's plan instead of a reconcile
    shown: Any = UNCHANGED  # status.daylightSaving written (None: cleared)
    events: tuple[tuple[str, str], ...] = ()  # (reason, message)


CASES = {
    "Berlin 02:30, first reconcile: the fall-back repeat shown, both days told": Case(
        BERLIN_0230,
        shown=BERLIN_REPEAT,
        events=(
            (vocabulary.REASON_DAYLIGHT_SAVING_SKIP, BERLIN_SKIP["message"]),
            (vocabulary.REASON_DAYLIGHT_SAVING_REPEAT, BERLIN_REPEAT["message"]),
        ),
    ),
    "Berlin 02:30, a resume of the same generation: shown, not told again": Case(
        BERLIN_0230, status={"observedGeneration": 1}, shown=BERLIN_REPEAT
    ),
    "Berlin 02:30, already shown: nothing to write, nothing to tell": Case(
        BERLIN_0230, status={"observedGeneration": 1, "daylightSaving": BERLIN_REPEAT}
    ),
    "a new generation tells again": Case(
        BERLIN_0230,
        status={"observedGeneration": 1, "daylightSaving": BERLIN_REPEAT},
        generation=2,
        events=(
            (vocabulary.REASON_DAYLIGHT_SAVING_SKIP, BERLIN_SKIP["message"]),
            (vocabulary.REASON_DAYLIGHT_SAVING_REPEAT, BERLIN_REPEAT["message"]),
        ),
    ),
    "New York 01:30: runs twice on 2026-11-01": Case(
        {"schedule": "30 1 * * *", "timeZone": "America/New_York"},
        shown={
            "date": "2026-11-01",
            "effect": "Repeat",
            "localTimes": ["01:30"],
            "message": "runs twice: 01:30 happens twice in America/New_York on 2026-11-01 "
            "(the clocks go back)",
        },
        events=(
            (
                vocabulary.REASON_DAYLIGHT_SAVING_REPEAT,
                "runs twice: 01:30 happens twice in America/New_York on 2026-11-01 "
                "(the clocks go back)",
            ),
        ),
    ),
    "Berlin 09:00 is never affected: nothing shown or told": Case(
        {"schedule": "0 9 * * *", "timeZone": "Europe/Berlin"}
    ),
    "UTC is never affected": Case({"schedule": "30 2 * * *"}),
    "edited to UTC: the day shown before is cleared": Case(
        {"schedule": "30 2 * * *"},
        status={"observedGeneration": 1, "daylightSaving": BERLIN_REPEAT},
        generation=2,
        shown=None,
    ),
    "the timer, the day shown still ahead: not computed again": Case(
        BERLIN_0230,
        status={"observedGeneration": 1, "daylightSaving": BERLIN_REPEAT},
        refresh=True,
    ),
    "the timer, the day shown has passed: the next one": Case(
        BERLIN_0230,
        status={"observedGeneration": 1, "daylightSaving": BERLIN_REPEAT},
        now=DAY_AFTER_BERLIN_FALL_BACK,
        refresh=True,
        shown=BERLIN_SKIP,
    ),
    "the timer never tells": Case(BERLIN_0230, refresh=True),
}


def make_plan(case: Case) -> ReconcilePlan:
    status = {"backend": "QStash", "scheduleId": "prod.team-a.report", **case.status}
    manifest = body(case.spec, status=status, generation=case.generation)
    if case.refresh:
        return reconcile.plan_refresh(manifest, PRODUCTION, now=case.now)
    return reconcile.plan(manifest, PRODUCTION, now=case.now)


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_daylight_saving_notices(case: Case) -> None:
    planned = make_plan(case)
    assert planned.status.get("daylightSaving", UNCHANGED) == case.shown
    told = tuple(
        (step.event.reason, step.event.message)
        for step in planned.steps
        if isinstance(step, PostEvent) and step.event.reason.startswith("DaylightSaving")
    )
    assert told == case.events
    assert all(
        step.event.type == "Normal"
        for step in planned.steps
        if isinstance(step, PostEvent) and step.event.reason.startswith("DaylightSaving")
    )
