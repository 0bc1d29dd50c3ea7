"""Cron maths: what is accepted, when it fires, which tick a delivery belongs to, DST days.

Named instants only. Every expected fire time around a clock change below is what robfig/cron
v3.0.1 answers for the same case (``test_cron_robfig.py`` asks it); the comments say why.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

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
NEW_YORK_FALL_BACK = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)  # 02:00 EDT becomes 01:00 EST
NEW_YORK_SPRING_FORWARD = datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 02:00 EST becomes 03:00 EDT
LORD_HOWE_FALL_BACK = datetime(2026, 4, 4, 15, 0, tzinfo=UTC)  # 02:00 +11 becomes 01:30 +1030
SANTIAGO_SPRING_FORWARD = datetime(2026, 9, 6, 4, 0, tzinfo=UTC)  # 00:00 -04 becomes 01:00 -03
NOON = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # a Monday


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)  # type: ignore[misc]


# -- what is accepted ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        pytest.param("*/5 * * * *", "*/5 * * * *", id="steps are kept as written"),
        pytest.param("0 3 * * 1-5", "0 3 * * 1-5", id="weekday ranges"),
        pytest.param("0 0 1 JAN *", "0 0 1 JAN *", id="month names"),
        pytest.param("0 9 * * mon,Fri", "0 9 * * mon,Fri", id="names in any case"),
        pytest.param("0 0 ? * ?", "0 0 ? * ?", id="question mark is a star"),
        pytest.param("*/61 * * * *", "*/61 * * * *", id="a step beyond the range"),
        pytest.param("0 1,,2 * * *", "0 1,,2 * * *", id="empty list items are dropped"),
        pytest.param("+5 05 * * *", "+5 05 * * *", id="a sign and a leading zero"),
        pytest.param("*-7 * * * *", "*-7 * * * *", id="robfig ignores what follows a star"),
        pytest.param("  0   3 * *\t*  ", "0 3 * * *", id="whitespace is squeezed"),
        pytest.param("@hourly", "0 * * * *", id="hourly"),
        pytest.param("@daily", "0 0 * * *", id="daily"),
        pytest.param("@midnight", "0 0 * * *", id="midnight"),
        pytest.param("@weekly", "0 0 * * 0", id="weekly"),
        pytest.param("@monthly", "0 0 1 * *", id="monthly"),
        pytest.param("@yearly", "0 0 1 1 *", id="yearly"),
        pytest.param(" @annually ", "0 0 1 1 *", id="annually, around spaces"),
    ],
)
def test_accepted_schedules_expand_to_five_fields(text: str, expanded: str) -> None:
    assert cron.parse(text).expression == expanded


@pytest.mark.parametrize(
    ("text", "zone", "field", "phrase"),
    [
        pytest.param("", "UTC", "spec.schedule", "empty", id="empty"),
        pytest.param("  ", "UTC", "spec.schedule", "empty", id="blank"),
        pytest.param(
            "* * * * * *", "UTC", "spec.schedule", "remove the seconds", id="seconds field"
        ),
        pytest.param("* * * *", "UTC", "spec.schedule", "found 4: [* * * *]", id="four fields"),
        pytest.param("@reboot", "UTC", "spec.schedule", "unrecognized descriptor", id="reboot"),
        pytest.param("@DAILY", "UTC", "spec.schedule", "(lower case)", id="descriptor case"),
        pytest.param("@every 5m", "UTC", "spec.schedule", "fixed interval", id="every"),
        pytest.param(
            "61 * * * *",
            "UTC",
            "spec.schedule",
            "minute field '61': end of range (61) above maximum (59)",
            id="minute out of range",
        ),
        pytest.param(
            "0 0 * * 7", "UTC", "spec.schedule", "robfig/cron, which QStash", id="weekday 7"
        ),
        pytest.param("0 0 0 * *", "UTC", "spec.schedule", "below minimum (1)", id="day 0"),
        pytest.param("0 0 * 13 *", "UTC", "spec.schedule", "above maximum (12)", id="month 13"),
        pytest.param("5-1 * * * *", "UTC", "spec.schedule", "beyond end", id="reversed range"),
        pytest.param("*/0 * * * *", "UTC", "spec.schedule", "positive number", id="step 0"),
        pytest.param("*/-1 * * * *", "UTC", "spec.schedule", "negative number", id="step -1"),
        pytest.param("1-2-3 * * * *", "UTC", "spec.schedule", "too many hyphens", id="hyphens"),
        pytest.param("*/2/3 * * * *", "UTC", "spec.schedule", "too many slashes", id="slashes"),
        pytest.param(
            "0 0 * JANUARY *", "UTC", "spec.schedule", "failed to parse int", id="long name"
        ),
        pytest.param("0 0 L * *", "UTC", "spec.schedule", "L, W, # and H", id="croniter L"),
        pytest.param("0 0 * * 1#2", "UTC", "spec.schedule", "L, W, # and H", id="nth weekday"),
        pytest.param("H * * * *", "UTC", "spec.schedule", "L, W, # and H", id="jenkins hash"),
        pytest.param("0 0 30 2 *", "UTC", "spec.schedule", "never fires", id="30 February"),
        pytest.param("0 0 31 4,6 *", "UTC", "spec.schedule", "never fires", id="31 June"),
        pytest.param(", * * * *", "UTC", "spec.schedule", "never fires", id="empty field"),
        pytest.param(
            "0 0 30 2 */1", "UTC", "spec.schedule", "never fires", id="star step keeps AND"
        ),
        pytest.param(
            "CRON_TZ=UTC 0 * * * *", "UTC", "spec.schedule", "spec.timeZone", id="zone prefix"
        ),
        pytest.param("TZ=UTC 0 * * * *", "UTC", "spec.schedule", "spec.timeZone", id="TZ="),
        pytest.param(
            "0 * * * *", "Mars/Olympus", "spec.timeZone", "unknown time zone", id="unknown zone"
        ),
        pytest.param("0 * * * *", "Local", "spec.timeZone", "unknown time zone", id="Local"),
        pytest.param("0 * * * *", "Europe", "spec.timeZone", "unknown time zone", id="directory"),
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


def test_a_step_above_one_is_not_refused_as_never_firing() -> None:
    # "*/2" clears the star bit, so day-of-month 30 *or* an even weekday matches: it fires, on
    # the first Sunday, Tuesday, Thursday or Saturday of February (2027-02-02 is a Tuesday).
    assert cron.next_tick(cron.parse("0 0 30 2 */2"), NOON) == utc(2027, 2, 2)


@pytest.mark.parametrize(
    ("text", "expression", "zone"),
    [
        pytest.param("*/5 * * * *", "*/5 * * * *", "UTC", id="no prefix: the local zone"),
        pytest.param("CRON_TZ=Asia/Tokyo 0 4 * * *", "0 4 * * *", "Asia/Tokyo", id="CRON_TZ"),
        pytest.param("TZ=Europe/Berlin  30 2 * * *", "30 2 * * *", "Europe/Berlin", id="TZ"),
        pytest.param("TZ= @hourly", "0 * * * *", "UTC", id="an empty zone is UTC, as in Go"),
    ],
)
def test_parse_standard_reads_the_zone_prefix(text: str, expression: str, zone: str) -> None:
    schedule = cron.parse_standard(text)
    assert (schedule.expression, schedule.time_zone) == (expression, zone)


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        pytest.param("", "empty spec string", id="empty"),
        pytest.param("CRON_TZ=UTC", "not followed by a space", id="robfig panics on this"),
        pytest.param(
            "CRON_TZ=Mars/Olympus * * * * *",
            "provided bad location Mars/Olympus: unknown time zone Mars/Olympus",
            id="unknown zone",
        ),
        pytest.param("cron_tz=UTC * * * * *", "found 6", id="the prefix is case-sensitive"),
    ],
)
def test_parse_standard_refusals(text: str, phrase: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        cron.parse_standard(text, field="Upstash-Cron")
    assert caught.value.field == "Upstash-Cron"
    assert phrase in caught.value.problem


def test_qstash_cron_carries_the_zone_prefix() -> None:
    schedule = cron.parse("@daily", "Europe/Berlin")
    assert schedule.qstash_cron() == "CRON_TZ=Europe/Berlin 0 0 * * *"


# -- when it fires ------------------------------------------------------------------------------


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
            [utc(2026, 6, 2, 10), utc(2026, 6, 3, 10)],
            id="noon in Berlin is 10:00 UTC in summer",
        ),
        pytest.param(
            "0 12 * * *",
            "America/New_York",
            TOP_OF_THE_HOUR,
            [utc(2026, 6, 1, 16), utc(2026, 6, 2, 16)],
            id="noon in New York is 16:00 UTC in summer",
        ),
        pytest.param(
            "30 9 * * *",
            "Asia/Kolkata",
            TOP_OF_THE_HOUR,
            [utc(2026, 6, 2, 4), utc(2026, 6, 3, 4)],
            id="a half-hour zone",
        ),
        pytest.param(
            "*/61 * * * *",
            "UTC",
            JUST_AFTER_THE_HOUR,
            [TOP_OF_THE_HOUR + timedelta(hours=1), TOP_OF_THE_HOUR + timedelta(hours=2)],
            id="*/61 is minute 0 only",
        ),
        pytest.param(
            "0 0 29 2 *",
            "UTC",
            NOON,
            [utc(2028, 2, 29), utc(2032, 2, 29)],
            id="a leap day",
        ),
    ],
)
def test_next_ticks_in_utc(text: str, zone: str, after: datetime, expected: list[datetime]) -> None:
    assert cron.next_ticks(cron.parse(text, zone), after, 2) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("0 0 13 * *", utc(2026, 6, 13), id="day of month alone"),
        pytest.param("0 0 * * 1", utc(2026, 6, 8), id="day of week alone"),
        pytest.param("0 0 13 * 1", utc(2026, 6, 8), id="both restricted: either matches"),
        pytest.param("0 0 13 * */1", utc(2026, 6, 13), id="*/1 keeps the star: both must"),
        pytest.param("0 0 13 * */2", utc(2026, 6, 2), id="*/2 drops the star: either"),
        pytest.param("0 0 13,* * 1", utc(2026, 6, 8), id="a star in a list is a star"),
        pytest.param("0 0 1-31 * 1", utc(2026, 6, 2), id="1-31 is no star: every day"),
        pytest.param("0 0 ? * 1", utc(2026, 6, 8), id="question mark is a star"),
    ],
)
def test_day_of_month_and_day_of_week_follow_robfigs_star_bit(
    text: str, expected: datetime
) -> None:
    # From Monday 2026-06-01 noon; the 2nd is a Tuesday, the 8th a Monday.
    assert cron.next_tick(cron.parse(text), NOON) == expected


@pytest.mark.parametrize(
    ("text", "zone", "after", "expected"),
    [
        pytest.param(
            "30 2 * * *",
            "Europe/Berlin",
            BERLIN_SPRING_FORWARD - timedelta(hours=12),
            [utc(2026, 3, 30, 0, 30), utc(2026, 3, 31, 0, 30)],
            id="Berlin spring forward: 02:30 does not exist, so 29 March does not run",
        ),
        pytest.param(
            "30 2 * * *",
            "Europe/Berlin",
            BERLIN_FALL_BACK - timedelta(hours=12),
            [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)],
            id="Berlin fall back: 02:30 CEST and 02:30 CET both run",
        ),
        pytest.param(
            "30 1 * * *",
            "America/New_York",
            NEW_YORK_FALL_BACK - timedelta(hours=12),
            [utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 30)],
            id="New York fall back: 01:30 EDT and 01:30 EST both run",
        ),
        pytest.param(
            "30 2 * * *",
            "America/New_York",
            NEW_YORK_SPRING_FORWARD - timedelta(hours=12),
            [utc(2026, 3, 9, 6, 30), utc(2026, 3, 10, 6, 30)],
            id="New York spring forward: 8 March does not run",
        ),
        pytest.param(
            "*/30 * * * *",
            "Europe/Berlin",
            BERLIN_SPRING_FORWARD - timedelta(minutes=31),
            [utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 0)],
            id="an every-hour schedule keeps its interval across the gap (01:30 CET, 03:00 CEST)",
        ),
        pytest.param(
            "*/30 * * * *",
            "Europe/Berlin",
            BERLIN_FALL_BACK - timedelta(minutes=1),
            [utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 1, 30)],
            id="an every-hour schedule keeps its interval across the repeat",
        ),
        pytest.param(
            "0 5 * * *",
            "Australia/Lord_Howe",
            LORD_HOWE_FALL_BACK - timedelta(hours=24),
            [utc(2026, 4, 3, 18), utc(2026, 4, 5, 18, 30)],
            id="Lord Howe's 30-minute fall back loses that day's 05:00 (hours step from :30)",
        ),
        pytest.param(
            "0 1 * * 6",
            "America/Santiago",
            SANTIAGO_SPRING_FORWARD - timedelta(hours=24),
            [utc(2026, 9, 5, 5), utc(2026, 9, 6, 4)],
            id="Santiago skips midnight: Saturday's 01:00 walk lands on Sunday 01:00 and fires",
        ),
    ],
)
def test_daylight_saving_follows_robfigs_walk(
    text: str, zone: str, after: datetime, expected: list[datetime]
) -> None:
    assert cron.next_ticks(cron.parse(text, zone), after, 2) == expected


# -- ticks at or before an instant, and deliveries ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "zone", "at", "expected"),
    [
        pytest.param(
            "0 * * * *", "UTC", TOP_OF_THE_HOUR, TOP_OF_THE_HOUR, id="a tick at the instant counts"
        ),
        pytest.param("0 * * * *", "UTC", HALF_PAST, TOP_OF_THE_HOUR, id="half an hour later"),
        pytest.param(
            "0 * * * *",
            "UTC",
            JUST_BEFORE_THE_HOUR,
            TOP_OF_THE_HOUR - timedelta(hours=1),
            id="just before the hour gives the previous one",
        ),
        pytest.param(
            "0 0 29 2 *", "UTC", TOP_OF_THE_HOUR, utc(2024, 2, 29), id="a leap day, years back"
        ),
        pytest.param(
            "30 2 * * *",
            "Europe/Berlin",
            utc(2026, 10, 25, 1, 0),
            utc(2026, 10, 25, 0, 30),
            id="between the two runs of a repeated hour: the first",
        ),
        pytest.param(
            "30 2 * * *",
            "Europe/Berlin",
            utc(2026, 10, 25, 1, 45),
            utc(2026, 10, 25, 1, 30),
            id="after the second run of a repeated hour: the second",
        ),
    ],
)
def test_latest_tick(text: str, zone: str, at: datetime, expected: datetime) -> None:
    assert cron.latest_tick(cron.parse(text, zone), at) == expected


@pytest.mark.parametrize(
    ("text", "delivered_at", "first_attempt", "expected"),
    [
        pytest.param("0 * * * *", JUST_AFTER_THE_HOUR, True, TOP_OF_THE_HOUR, id="on time"),
        pytest.param(
            "0 * * * *",
            TOP_OF_THE_HOUR + timedelta(minutes=4, seconds=59),
            False,
            TOP_OF_THE_HOUR,
            id="a retry five minutes late still belongs to its tick",
        ),
        pytest.param(
            "0 * * * *",
            TOP_OF_THE_HOUR - timedelta(seconds=20),
            True,
            TOP_OF_THE_HOUR,
            id="a first attempt early within tolerance: QStash's clock is ahead",
        ),
        pytest.param(
            "0 * * * *",
            TOP_OF_THE_HOUR - timedelta(seconds=20),
            False,
            TOP_OF_THE_HOUR - timedelta(hours=1),
            id="a retry is never early: the previous tick",
        ),
        pytest.param(
            "0 * * * *",
            TOP_OF_THE_HOUR - timedelta(seconds=45),
            True,
            TOP_OF_THE_HOUR - timedelta(hours=1),
            id="early beyond tolerance belongs to the previous tick",
        ),
        pytest.param(
            "* * * * *",
            TOP_OF_THE_HOUR + timedelta(seconds=31),
            False,
            TOP_OF_THE_HOUR,
            id="every minute: a retry 31 s late is its own tick, not the next (issue 10.2)",
        ),
        pytest.param(
            "* * * * *",
            TOP_OF_THE_HOUR + timedelta(seconds=31),
            True,
            TOP_OF_THE_HOUR,
            id="every minute: the window is 15 s, a quarter minute, not the 30 s tolerance",
        ),
        pytest.param(
            "* * * * *",
            TOP_OF_THE_HOUR + timedelta(seconds=46),
            True,
            TOP_OF_THE_HOUR + timedelta(minutes=1),
            id="every minute: 14 s before the next tick is early for it",
        ),
        pytest.param(
            "0,1 * * * *",
            TOP_OF_THE_HOUR + timedelta(seconds=31),
            True,
            TOP_OF_THE_HOUR,
            id="the shortest interval caps the window even when the next gap is long",
        ),
    ],
)
def test_tick_for_delivery(
    text: str, delivered_at: datetime, first_attempt: bool, expected: datetime
) -> None:
    tick = cron.tick_for_delivery(
        cron.parse(text), delivered_at, early_tolerance=TOLERANCE, first_attempt=first_attempt
    )
    assert tick == expected


def test_the_two_runs_of_a_repeated_hour_are_two_ticks_for_deliveries() -> None:
    schedule = cron.parse("30 1 * * *", "America/New_York")
    ticks = {
        cron.tick_for_delivery(schedule, at, early_tolerance=TOLERANCE, first_attempt=True)
        for at in (utc(2026, 11, 1, 5, 30, 3), utc(2026, 11, 1, 6, 29, 50))
    }
    assert ticks == {utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 30)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("* * * * *", timedelta(minutes=1), id="every minute"),
        pytest.param("0,1 * * * *", timedelta(minutes=1), id="the closest pair"),
        pytest.param("*/61 * * * *", timedelta(hours=1), id="hourly"),
        pytest.param("0 0,23 * * *", timedelta(hours=1), id="across midnight"),
        pytest.param("30 2 * * *", timedelta(days=1), id="daily"),
        pytest.param("@yearly", timedelta(days=1), id="a bound, not the real gap"),
    ],
)
def test_shortest_interval(text: str, expected: timedelta) -> None:
    assert cron.parse(text).shortest_interval == expected


def test_ticks_between_is_capped() -> None:
    schedule = cron.parse("* * * * *")
    ticks = cron.ticks_between(schedule, TOP_OF_THE_HOUR, TOP_OF_THE_HOUR + timedelta(days=1))
    assert len(ticks) == cron.MAX_MISSED_TICKS
    assert ticks[0] == TOP_OF_THE_HOUR + timedelta(minutes=1)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cron.next_tick(cron.parse("* * * * *"), datetime(2026, 1, 1))


# -- daylight-saving days, ahead of time ----------------------------------------------------------


def test_offset_changes_of_a_year_in_berlin() -> None:
    changes = cron.offset_changes(cron.load_zone("Europe/Berlin"), utc(2026, 1, 1), utc(2027, 1, 1))
    assert changes == [BERLIN_SPRING_FORWARD, BERLIN_FALL_BACK]


SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        pytest.param(
            BERLIN_SPRING_FORWARD - SECOND, BERLIN_SPRING_FORWARD, [BERLIN_SPRING_FORWARD],
            id="the change is the window's last second: in",
        ),
        pytest.param(
            BERLIN_SPRING_FORWARD, BERLIN_FALL_BACK - SECOND, [],
            id="the window starts on one change and ends a second before the next: none",
        ),
        pytest.param(
            BERLIN_SPRING_FORWARD - timedelta(hours=7, seconds=13), BERLIN_FALL_BACK,
            [BERLIN_SPRING_FORWARD, BERLIN_FALL_BACK],
            id="odd seconds at both ends, both changes",
        ),
        pytest.param(
            BERLIN_FALL_BACK + timedelta(minutes=30), BERLIN_FALL_BACK + timedelta(days=400),
            [BERLIN_SPRING_FORWARD.replace(year=2027, day=28),
             BERLIN_FALL_BACK.replace(year=2027, day=31)],
            id="a reconcile's 400 days from half an hour after a change",
        ),
    ],
)  # fmt: skip
def test_offset_changes_cut_from_whole_days_are_the_windows_own(
    start: datetime, end: datetime, expected: list[datetime]
) -> None:
    zone = cron.load_zone("Europe/Berlin")
    assert cron.offset_changes(zone, start, end) == expected
    # what probing exactly the window finds, without the days remembered
    assert cron._probe_offset_changes(zone, start, end) == expected


@pytest.mark.parametrize(
    ("text", "zone", "now", "expected"),
    [
        pytest.param(
            "30 2 * * *",
            "Europe/Berlin",
            BERLIN_FALL_BACK + timedelta(days=1),
            [
                "skipped: 02:30 does not exist in Europe/Berlin on 2027-03-28 "
                "(the clocks go forward)",
                "runs twice: 02:30 happens twice in Europe/Berlin on 2027-10-31 "
                "(the clocks go back)",
            ],
            id="a daily tick in the hour of the change",
        ),
        pytest.param(
            "0 2 * * *",
            "America/New_York",
            NEW_YORK_SPRING_FORWARD - timedelta(days=2),
            [
                "skipped: 02:00 does not exist in America/New_York on 2026-03-08 "
                "(the clocks go forward)",
                # 02:00 EST does not repeat (01:00 does), so fall back changes nothing.
                "skipped: 02:00 does not exist in America/New_York on 2027-03-14 "
                "(the clocks go forward)",
            ],
            id="the first minute of the gap",
        ),
        pytest.param(
            "15 * * * *",
            "Europe/London",
            utc(2026, 10, 1),
            [
                "runs twice: 01:15 happens twice in Europe/London on 2026-10-25 "
                "(the clocks go back)",
                "skipped: 01:15 does not exist in Europe/London on 2027-03-28 "
                "(the clocks go forward)",
                "runs twice: 01:15 happens twice in Europe/London on 2027-10-31 "
                "(the clocks go back)",
            ],
            id="hourly",
        ),
        pytest.param(
            "0 5 * * *",
            "Australia/Lord_Howe",
            utc(2026, 9, 1),
            [
                "skipped: 05:00 in Australia/Lord_Howe on 2026-10-04 "
                "(the cron walk loses it after the clocks change)",
                "skipped: 05:00 in Australia/Lord_Howe on 2027-04-04 "
                "(the cron walk loses it after the clocks change)",
                "skipped: 05:00 in Australia/Lord_Howe on 2027-10-03 "
                "(the cron walk loses it after the clocks change)",
            ],
            id="Lord Howe's half-hour shift",
        ),
        pytest.param("30 2 * * *", "UTC", NOON, [], id="UTC has no clock changes"),
        pytest.param("0 12 * * *", "Europe/Berlin", NOON, [], id="noon is never affected"),
        pytest.param("30 2 * * *", "Asia/Kolkata", NOON, [], id="no daylight saving"),
    ],
)
def test_daylight_saving_days(text: str, zone: str, now: datetime, expected: list[str]) -> None:
    days = cron.daylight_saving_days(cron.parse(text, zone), now)
    assert [day.message for day in days] == expected


def test_daylight_saving_days_are_ahead_of_now_only() -> None:
    schedule = cron.parse("30 2 * * *", "Europe/Berlin")
    after_the_first_run = utc(2026, 10, 25, 1, 0)  # between 02:30 CEST and 02:30 CET
    first = cron.daylight_saving_days(schedule, after_the_first_run)[0]
    assert (first.date, first.effect) == (date(2027, 3, 28), cron.DaylightSavingEffect.SKIP)


def test_a_daylight_saving_day_as_status() -> None:
    schedule = cron.parse("30 2 * * *", "Europe/Berlin")
    day = cron.next_daylight_saving_day(schedule, BERLIN_FALL_BACK + timedelta(days=1))
    assert day is not None
    assert day.times == (time(2, 30),)
    assert day.first_instant == utc(2027, 3, 28, 1, 30)
    assert day.as_status() == {
        "date": "2027-03-28",
        "effect": "Skip",
        "localTimes": ["02:30"],
        "message": "skipped: 02:30 does not exist in Europe/Berlin on 2027-03-28 "
        "(the clocks go forward)",
    }


def test_many_times_are_summarised() -> None:
    schedule = cron.parse("*/5 * * * *", "Europe/Berlin")
    days = cron.daylight_saving_days(schedule, BERLIN_FALL_BACK - timedelta(days=2))
    assert days[0].message == (
        "runs twice: 02:00-02:55 (12 ticks) happen twice in Europe/Berlin on 2026-10-25 "
        "(the clocks go back)"
    )
