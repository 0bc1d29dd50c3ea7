"""Backfill decisions: the slots of a range, which have Jobs, and how many to create now.

Instants: TOP_OF_THE_HOUR is 10:00 UTC on 2026-06-01; the schedules are every minute or hourly.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any, Final

import pytest

from qstash_operator.domain import backfill, naming, runs
from qstash_operator.domain.errors import InvalidSpecError
from qstash_operator.domain.runs import Outcome
from tests.unit.domain.factories import cronworkflow, job
from tests.unit.instants import TOP_OF_THE_HOUR

TEN_NINE: Final = TOP_OF_THE_HOUR + timedelta(minutes=9)
LATER: Final = TOP_OF_THE_HOUR + timedelta(hours=2)
MINUTES: Final = [TOP_OF_THE_HOUR + timedelta(minutes=n) for n in range(10)]


def names(*minutes: int) -> set[str]:
    return {naming.job_name("report", MINUTES[m]) for m in minutes}


@dataclasses.dataclass(frozen=True)
class Case:
    spec: dict[str, Any]
    have: set[str]
    active: int = 0
    parallel: int | None = None
    existing: tuple[int, ...] = ()
    now: tuple[int, ...] = ()


EVERY_MINUTE: Final = {"schedule": "* * * * *"}
CASES = {
    "ten slots, three ran, Allow: the other seven now": Case(
        EVERY_MINUTE, names(0, 4, 7), existing=(0, 4, 7), now=(1, 2, 3, 5, 6, 8, 9)
    ),
    "Forbid with nothing active: the oldest missing slot only": Case(
        {**EVERY_MINUTE, "concurrencyPolicy": "Forbid"}, names(0), existing=(0,), now=(1,)
    ),
    "Forbid with a Job active: none now": Case(
        {**EVERY_MINUTE, "concurrencyPolicy": "Forbid"}, names(0), active=1, existing=(0,)
    ),
    "Replace is held to one at a time too (a backfill never replaces a live run)": Case(
        {**EVERY_MINUTE, "concurrencyPolicy": "Replace"}, set(), now=(0,)
    ),
    "--parallel 3 over Forbid with one active: two now": Case(
        {**EVERY_MINUTE, "concurrencyPolicy": "Forbid"}, set(), active=1, parallel=3, now=(0, 1)
    ),
    "--parallel 2 already saturated: none now": Case(EVERY_MINUTE, set(), active=2, parallel=2),
    "every slot ran: nothing to do": Case(
        EVERY_MINUTE, names(*range(10)), existing=tuple(range(10))
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_plan(case: Case) -> None:
    plan = backfill.plan(
        cronworkflow(case.spec),
        start=TOP_OF_THE_HOUR,
        end=TEN_NINE,
        job_names=case.have,
        active=case.active,
        parallel=case.parallel,
        now=LATER,
    )
    assert plan.slots == tuple(MINUTES)  # both ends included
    assert plan.existing == tuple(MINUTES[m] for m in case.existing)
    assert plan.now == tuple(MINUTES[m] for m in case.now)
    assert len(plan.missing) == 10 - len(case.existing)
    assert plan.pending == plan.missing[len(plan.now) :]


def test_slots_follow_the_cron_model_in_the_zone() -> None:
    cw = cronworkflow({"schedule": "30 2 * * *", "timeZone": "Europe/Berlin"})
    start = datetime.fromisoformat("2026-03-28T00:00:00+00:00")
    end = datetime.fromisoformat("2026-03-31T00:00:00+00:00")
    found = backfill.slots(cw, start, end, now=LATER)
    # 02:30 does not exist in Berlin on 2026-03-29 (spring forward): that day has no slot.
    assert [slot.isoformat() for slot in found] == [
        "2026-03-28T01:30:00+00:00",
        "2026-03-30T00:30:00+00:00",
    ]


@pytest.mark.parametrize(
    ("start", "end", "field", "words"),
    [
        pytest.param(TEN_NINE, TOP_OF_THE_HOUR, "to", "before from", id="backwards"),
        pytest.param(TOP_OF_THE_HOUR, LATER + timedelta(minutes=1), "to", "future", id="future"),
        pytest.param(
            TOP_OF_THE_HOUR - timedelta(days=1), TOP_OF_THE_HOUR, "to", "more than 1000",
            id="too-many-slots",
        ),
    ],
)  # fmt: skip
def test_bad_ranges_name_the_field(start: datetime, end: datetime, field: str, words: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        backfill.slots(cronworkflow(EVERY_MINUTE), start, end, now=LATER)
    assert caught.value.field == field
    assert words in str(caught.value)


def test_parallel_below_one_is_refused() -> None:
    with pytest.raises(InvalidSpecError, match="parallel"):
        backfill.plan(
            cronworkflow(EVERY_MINUTE),
            start=TOP_OF_THE_HOUR,
            end=TEN_NINE,
            job_names=(),
            active=0,
            parallel=0,
            now=LATER,
        )


@pytest.mark.parametrize(
    ("spec", "jobs", "parallel", "outcome"),
    [
        pytest.param({}, (), False, Outcome.RUN, id="a past slot runs, lastScheduleTime or not"),
        pytest.param({"suspend": True}, (), False, Outcome.RUN, id="asked by name: even suspended"),
        pytest.param(
            {}, (job(naming.job_name("report", TOP_OF_THE_HOUR)),), False, Outcome.DUPLICATE_TICK,
            id="its Job exists: the name is the lock",
        ),
        pytest.param(
            {"concurrencyPolicy": "Forbid"}, (job("report-1", active=True),), False,
            Outcome.SKIPPED_FORBID, id="Forbid with an active Job",
        ),
        pytest.param(
            {"concurrencyPolicy": "Forbid"}, (job("report-1", active=True),), True, Outcome.RUN,
            id="parallel sets the policy aside",
        ),
    ],
)  # fmt: skip
def test_plan_backfill_slot(
    spec: dict[str, Any], jobs: tuple[runs.JobView, ...], parallel: bool, outcome: Outcome
) -> None:
    plan = runs.plan_backfill(
        cronworkflow(spec), jobs=jobs, slot=TOP_OF_THE_HOUR, parallel=parallel
    )
    assert plan.outcome is outcome, plan.message
    assert plan.tick == TOP_OF_THE_HOUR
    if outcome is Outcome.RUN:
        assert plan.job_name == naming.job_name("report", TOP_OF_THE_HOUR)
