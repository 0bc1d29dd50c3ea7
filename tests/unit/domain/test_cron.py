"""Cron maths: what is accepted, when it fires, and which tick a delivery belongs to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from qstash_operator.domain import cron
from qstash_operator.domain.errors import InvalidSpecError
from tests.unit.instants import (
    BERLIN_FALL_BACK,
    BERLIN_SPRING_FORWARD,
    HALF_PAST,
    JUST_AFTER_THE_HOUR,
    JUST_BEFORE_THE_HOUR,
    TOP_OF_THE_HOUR,
)

TOLERANCE = timedelta(seconds=30)


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        pytest.param("*/5 * * * *", "*/5 * * * *", id="steps are kept as written"),
        pytest.param("0 3 * * 1-5", "0 3 * * 1-5", id="weekday ranges"),
        pytest.param("0 0 1 JAN *", "0 0 1 JAN *", id="month names"),
        pytest.param("0 9 * * MON,FRI", "0 9 * * MON,FRI", id="weekday names"),
        pytest.param("  0   3 * *   *  ", "0 3 * * *", id="extra spaces are squeezed"),
        pytest.param("@hourly", "0 * * * *", id="hourly macro"),
        pytest.param("@daily", "0 0 * * *", id="daily macro"),
        pytest.param("@midnight", "0 0 * * *", id="midnight macro"),
        pytest.param("@weekly", "0 0 * * 0", id="weekly macro"),
        pytest.param("@monthly", "0 0 1 * *", id="monthly macro"),
        pytest.param("@yearly", "0 0 1 1 *", id="yearly macro"),
        pytest.param("@ANNUALLY", "0 0 1 1 *", id="macros ignore case"),
    ],
)
def test_accepted_schedules_expand_to_five_fields(text: str, expanded: str) -> None:
    assert cron.parse(text).expression == expanded


@pytest.mark.parametrize(
    ("text", "zone", "field", "phrase"),
    [
        pytest.param("", "UTC", "spec.schedule", "empty", id="empty"),
        pytest.param(
            "* * * * * *", "UTC", "spec.schedule", "remove the seconds", id="seconds field"
        ),
        pytest.param("* * * *", "UTC", "spec.schedule", "found 4", id="four fields"),
        pytest.param("@reboot", "UTC", "spec.schedule", "unknown macro", id="reboot macro"),
        pytest.param(
            "61 * * * *", "UTC", "spec.schedule", "not a valid cron", id="minute out of range"
        ),
        pytest.param(
            "0 0 L * *", "UTC", "spec.schedule", "no L, W, # or H", id="croniter last day"
        ),
        pytest.param("0 0 * * 1#2", "UTC", "spec.schedule", "no L, W, # or H", id="nth weekday"),
        pytest.param("H * * * *", "UTC", "spec.schedule", "no L, W, # or H", id="jenkins hash"),
        pytest.param(
            "0 0 30 2 *", "UTC", "spec.schedule", "never fires", id="thirtieth of february"
        ),
        pytest.param(
            "CRON_TZ=UTC 0 * * * *", "UTC", "spec.schedule", "spec.timeZone", id="zone in the cron"
        ),
        pytest.param(
            "0 * * * *", "Mars/Olympus", "spec.timeZone", "unknown time zone", id="unknown zone"
        ),
        pytest.param(
            "0 * * * *", "../etc/passwd", "spec.timeZone", "not an IANA", id="path as zone"
        ),
    ],
)
def test_refused_schedules_name_the_field_and_the_fix(
    text: str, zone: str, field: str, phrase: str
) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        cron.parse(text, zone)
    assert caught.value.field == field
    assert phrase in str(caught.value)


def test_qstash_cron_carries_the_zone_prefix() -> None:
    schedule = cron.parse("@daily", "Europe/Berlin")
    assert schedule.qstash_cron() == "CRON_TZ=Europe/Berlin 0 0 * * *"


@pytest.mark.parametrize(
    ("text", "zone", "after", "expected"),
    [
        pytest.param(
            "0 * * * *",
            "UTC",
            JUST_BEFORE_THE_HOUR,
            [TOP_OF_THE_HOUR, TOP_OF_THE_HOUR + timedelta(hours=1)],
            id="hourly, just before the hour",
        ),
        pytest.param(
            "0 * * * *",
            "UTC",
            TOP_OF_THE_HOUR,
            [TOP_OF_THE_HOUR + timedelta(hours=1), TOP_OF_THE_HOUR + timedelta(hours=2)],
            id="a tick exactly at now is not next",
        ),
        pytest.param(
            "*/30 * * * *",
            "UTC",
            JUST_AFTER_THE_HOUR,
            [HALF_PAST, TOP_OF_THE_HOUR + timedelta(hours=1)],
            id="every thirty minutes",
        ),
        pytest.param(
            "0 12 * * *",
            "Europe/Berlin",
            TOP_OF_THE_HOUR,
            [datetime(2026, 6, 2, 10, 0, tzinfo=UTC), datetime(2026, 6, 3, 10, 0, tzinfo=UTC)],
            id="noon in Berlin is 10:00 UTC in summer",
        ),
        pytest.param(
            "0 12 * * *",
            "America/New_York",
            TOP_OF_THE_HOUR,
            [datetime(2026, 6, 1, 16, 0, tzinfo=UTC), datetime(2026, 6, 2, 16, 0, tzinfo=UTC)],
            id="noon in New York is 16:00 UTC in summer",
        ),
    ],
)
def test_next_ticks_in_utc(text: str, zone: str, after: datetime, expected: list[datetime]) -> None:
    assert cron.next_ticks(cron.parse(text, zone), after, 2) == expected


def test_spring_forward_runs_a_missing_local_time_right_after_the_gap() -> None:
    schedule = cron.parse("30 2 * * *", "Europe/Berlin")
    ticks = cron.next_ticks(schedule, BERLIN_SPRING_FORWARD - timedelta(hours=6), 2)
    # 02:30 does not exist on 29 March; the tick is 03:00 CEST (01:00 UTC), then 02:30 CEST.
    assert ticks == [
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
    ]


def test_fall_back_runs_a_fixed_hour_once() -> None:
    schedule = cron.parse("30 2 * * *", "Europe/Berlin")
    ticks = cron.next_ticks(schedule, BERLIN_FALL_BACK - timedelta(hours=6), 2)
    # 02:30 happens twice on 25 October (00:30 and 01:30 UTC); it runs at the first only.
    assert ticks == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
    ]


def test_fall_back_keeps_every_tick_of_a_wildcard_hour() -> None:
    schedule = cron.parse("*/30 * * * *", "Europe/Berlin")
    ticks = cron.next_ticks(schedule, BERLIN_FALL_BACK - timedelta(minutes=61), 5)
    assert [tick - ticks[0] for tick in ticks] == [timedelta(minutes=30 * i) for i in range(5)]


@pytest.mark.parametrize(
    ("text", "at", "expected"),
    [
        pytest.param(
            "0 * * * *", TOP_OF_THE_HOUR, TOP_OF_THE_HOUR, id="a tick at the instant counts"
        ),
        pytest.param("0 * * * *", HALF_PAST, TOP_OF_THE_HOUR, id="half an hour later"),
        pytest.param(
            "0 * * * *",
            JUST_BEFORE_THE_HOUR,
            TOP_OF_THE_HOUR - timedelta(hours=1),
            id="just before the hour gives the previous one",
        ),
        pytest.param(
            "0 0 29 2 *", TOP_OF_THE_HOUR, datetime(2024, 2, 29, tzinfo=UTC), id="leap day"
        ),
    ],
)
def test_latest_tick(text: str, at: datetime, expected: datetime) -> None:
    assert cron.latest_tick(cron.parse(text), at) == expected


@pytest.mark.parametrize(
    ("delivered_at", "expected"),
    [
        pytest.param(JUST_AFTER_THE_HOUR, TOP_OF_THE_HOUR, id="on time"),
        pytest.param(
            TOP_OF_THE_HOUR + timedelta(minutes=4, seconds=59),
            TOP_OF_THE_HOUR,
            id="a retry five minutes late still belongs to its tick",
        ),
        pytest.param(
            TOP_OF_THE_HOUR - timedelta(seconds=20),
            TOP_OF_THE_HOUR,
            id="early within tolerance: QStash's clock is ahead",
        ),
        pytest.param(
            TOP_OF_THE_HOUR - timedelta(seconds=45),
            TOP_OF_THE_HOUR - timedelta(hours=1),
            id="early beyond tolerance belongs to the previous tick",
        ),
    ],
)
def test_tick_for_delivery(delivered_at: datetime, expected: datetime) -> None:
    schedule = cron.parse("0 * * * *")
    assert cron.tick_for_delivery(schedule, delivered_at, early_tolerance=TOLERANCE) == expected


def test_ticks_between_is_capped() -> None:
    schedule = cron.parse("* * * * *")
    ticks = cron.ticks_between(schedule, TOP_OF_THE_HOUR, TOP_OF_THE_HOUR + timedelta(days=1))
    assert len(ticks) == cron.MAX_MISSED_TICKS
    assert ticks[0] == TOP_OF_THE_HOUR + timedelta(minutes=1)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cron.next_tick(cron.parse("* * * * *"), datetime(2026, 1, 1))
