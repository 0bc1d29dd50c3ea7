"""Which tick fires when: the scheduler's decisions, at named instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from qstash_operator.domain import cron
from qstash_server import firing
from tests.unit.instants import (
    BERLIN_FALL_BACK,
    BERLIN_SPRING_FORWARD,
    HALF_PAST,
    JUST_AFTER_THE_HOUR,
    JUST_BEFORE_THE_HOUR,
    TOP_OF_THE_HOUR,
)

EVERY_MINUTE = cron.parse("* * * * *")
HOURLY = cron.parse("0 * * * *")
MINUTE = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("schedule", "cursor", "now", "expected"),
    [
        pytest.param(HOURLY, JUST_BEFORE_THE_HOUR, TOP_OF_THE_HOUR, TOP_OF_THE_HOUR, id="on time"),
        pytest.param(
            HOURLY, JUST_BEFORE_THE_HOUR, JUST_AFTER_THE_HOUR, TOP_OF_THE_HOUR, id="woke 2 s late"
        ),
        pytest.param(HOURLY, TOP_OF_THE_HOUR, JUST_AFTER_THE_HOUR, None, id="tick already decided"),
        pytest.param(HOURLY, JUST_AFTER_THE_HOUR, HALF_PAST, None, id="created after the tick"),
        pytest.param(
            HOURLY, JUST_BEFORE_THE_HOUR, JUST_BEFORE_THE_HOUR, None, id="nothing elapsed"
        ),
        pytest.param(
            EVERY_MINUTE,
            TOP_OF_THE_HOUR,
            TOP_OF_THE_HOUR + 3 * MINUTE + timedelta(seconds=5),
            TOP_OF_THE_HOUR + 3 * MINUTE,
            id="three missed: only the latest",
        ),
        pytest.param(
            HOURLY,
            TOP_OF_THE_HOUR - timedelta(days=2),
            HALF_PAST,
            TOP_OF_THE_HOUR,
            id="down two days: the latest only",
        ),
    ],
)
def test_due_tick(
    schedule: cron.Schedule, cursor: datetime, now: datetime, expected: datetime | None
) -> None:
    assert firing.due_tick(schedule, considered_until=cursor, now=now) == expected


def test_next_due_is_strictly_after_the_cursor() -> None:
    assert (
        firing.next_due(HOURLY, considered_until=TOP_OF_THE_HOUR) == TOP_OF_THE_HOUR + 60 * MINUTE
    )
    assert firing.next_due(HOURLY, considered_until=JUST_BEFORE_THE_HOUR) == TOP_OF_THE_HOUR


def test_plan_advance_merges_in_time_then_id_order() -> None:
    every_two = cron.parse("*/2 * * * *")
    plan = firing.plan_advance(
        {
            "b": (EVERY_MINUTE, TOP_OF_THE_HOUR),
            "a": (every_two, TOP_OF_THE_HOUR),
        },
        until=TOP_OF_THE_HOUR + 4 * MINUTE,
        limit=100,
    )
    assert [(p.tick - TOP_OF_THE_HOUR, p.schedule_id) for p in plan] == [
        (1 * MINUTE, "b"),
        (2 * MINUTE, "a"),
        (2 * MINUTE, "b"),
        (3 * MINUTE, "b"),
        (4 * MINUTE, "a"),
        (4 * MINUTE, "b"),
    ]


def test_plan_advance_respects_each_cursor() -> None:
    plan = firing.plan_advance(
        {"late": (EVERY_MINUTE, TOP_OF_THE_HOUR + 2 * MINUTE)},
        until=TOP_OF_THE_HOUR + 3 * MINUTE,
        limit=10,
    )
    assert [p.tick for p in plan] == [TOP_OF_THE_HOUR + 3 * MINUTE]


def test_plan_advance_refuses_a_flood() -> None:
    with pytest.raises(firing.TooManyTicksError, match="more than 10 ticks"):
        firing.plan_advance(
            {"s": (EVERY_MINUTE, TOP_OF_THE_HOUR)}, until=TOP_OF_THE_HOUR + 11 * MINUTE, limit=10
        )


def test_plan_advance_exactly_at_the_limit() -> None:
    plan = firing.plan_advance(
        {"s": (EVERY_MINUTE, TOP_OF_THE_HOUR)}, until=TOP_OF_THE_HOUR + 10 * MINUTE, limit=10
    )
    assert len(plan) == 10


def test_time_zone_shifts_the_tick() -> None:
    four_in_new_york = cron.parse("0 4 * * *", "America/New_York")
    start = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
    plan = firing.plan_advance(
        {"ny": (four_in_new_york, start)}, until=start + timedelta(days=1), limit=10
    )
    assert [p.tick for p in plan] == [datetime(2026, 6, 1, 8, 0, tzinfo=UTC)]  # EDT is UTC-4


def test_spring_forward_skips_the_missing_time_as_robfig_does() -> None:
    half_two_berlin = cron.parse("30 2 * * *", "Europe/Berlin")
    start = BERLIN_SPRING_FORWARD - timedelta(hours=2)
    plan = firing.plan_advance(
        {"s": (half_two_berlin, start)}, until=start + timedelta(hours=4), limit=10
    )
    assert plan == []  # 02:30 does not exist on 29 March: robfig's walk does not run it that day


def test_fall_back_fires_a_fixed_hour_twice_as_robfig_does() -> None:
    half_two_berlin = cron.parse("30 2 * * *", "Europe/Berlin")
    start = BERLIN_FALL_BACK - timedelta(hours=2)
    plan = firing.plan_advance(
        {"s": (half_two_berlin, start)}, until=start + timedelta(hours=4), limit=10
    )
    # 02:30 CEST (00:30 UTC) and 02:30 CET (01:30 UTC): two deliveries, as two CronJob runs.
    assert [p.tick for p in plan] == [
        BERLIN_FALL_BACK - timedelta(minutes=30),
        BERLIN_FALL_BACK + timedelta(minutes=30),
    ]
