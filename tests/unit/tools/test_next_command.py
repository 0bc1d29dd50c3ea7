"""``qstash-operator next``: the listing marks the runs daylight saving skips or repeats."""

from __future__ import annotations

from datetime import UTC, datetime

from qstash_operator.entrypoints import tools_main
from tests.unit.domain.factories import cronworkflow

BERLIN = {"schedule": "30 2 * * *", "timeZone": "Europe/Berlin"}


def test_a_skipped_run_gets_a_line_of_its_own() -> None:
    cw = cronworkflow(BERLIN)
    lines = tools_main.format_next(cw, datetime(2027, 3, 26, 12, tzinfo=UTC), 3)
    assert lines == [
        "2027-03-27 02:30 CET (Europe/Berlin)   2027-03-27T01:30:00Z (UTC)",
        "  skipped: 02:30 does not exist in Europe/Berlin on 2027-03-28 (the clocks go forward)",
        "2027-03-29 02:30 CEST (Europe/Berlin)   2027-03-29T00:30:00Z (UTC)",
        "2027-03-30 02:30 CEST (Europe/Berlin)   2027-03-30T00:30:00Z (UTC)",
    ]


def test_both_runs_of_a_repeated_hour_say_so() -> None:
    cw = cronworkflow(BERLIN)
    lines = tools_main.format_next(cw, datetime(2026, 10, 24, 12, tzinfo=UTC), 3)
    note = "runs twice: 02:30 happens twice in Europe/Berlin on 2026-10-25 (the clocks go back)"
    assert lines == [
        f"2026-10-25 02:30 CEST (Europe/Berlin)   2026-10-25T00:30:00Z (UTC)   {note}",
        f"2026-10-25 02:30 CET (Europe/Berlin)   2026-10-25T01:30:00Z (UTC)   {note}",
        "2026-10-26 02:30 CET (Europe/Berlin)   2026-10-26T01:30:00Z (UTC)",
    ]


def test_a_listing_that_ends_before_the_change_does_not_mention_it() -> None:
    cw = cronworkflow(BERLIN)
    lines = tools_main.format_next(cw, datetime(2027, 3, 25, 12, tzinfo=UTC), 2)
    assert not any("skipped" in line for line in lines)
    assert len(lines) == 2


def test_json_carries_the_notes_and_the_days() -> None:
    cw = cronworkflow(BERLIN)
    answer = tools_main.next_json(cw, datetime(2027, 3, 26, 12, tzinfo=UTC), 2)
    assert [tick["utc"] for tick in answer["next"]] == [
        "2027-03-27T01:30:00Z",
        "2027-03-29T00:30:00Z",
    ]
    assert answer["daylightSaving"] == [
        {
            "date": "2027-03-28",
            "effect": "Skip",
            "localTimes": ["02:30"],
            "message": "skipped: 02:30 does not exist in Europe/Berlin on 2027-03-28 "
            "(the clocks go forward)",
        }
    ]


def test_next_lists_only_the_ticks_the_window_and_max_runs_allow() -> None:
    cw = cronworkflow(
        {
            "schedule": "0 * * * *",
            "activeFrom": "2027-01-01T10:30:00Z",
            "activeUntil": "2027-01-01T14:00:00Z",
            "maxRuns": 5,
        }
    )
    now = datetime(2027, 1, 1, 8, tzinfo=UTC)
    utc = [entry["utc"] for entry in tools_main.next_json(cw, now, 10)["next"]]
    assert utc == ["2027-01-01T11:00:00Z", "2027-01-01T12:00:00Z", "2027-01-01T13:00:00Z"]
    three_made = [e["utc"] for e in tools_main.next_json(cw, now, 10, runs=3)["next"]]
    assert three_made == ["2027-01-01T11:00:00Z", "2027-01-01T12:00:00Z"]
    assert tools_main.next_json(cw, now, 10, runs=5)["next"] == []


SEVERAL = {
    "schedule": None,
    "schedules": [
        {"name": "hourly", "cron": "0 * * * *"},
        {"name": "sixhourly", "cron": "0 */6 * * *"},
        {"name": "late", "cron": "30 11 * * *"},
    ],
}


def test_next_with_several_schedules_names_the_entries_and_the_winner() -> None:
    cw = cronworkflow(SEVERAL)
    lines = tools_main.format_next(cw, datetime(2026, 6, 1, 10, 30, tzinfo=UTC), 3)
    assert lines == [
        "2026-06-01 11:00 UTC (UTC)   2026-06-01T11:00:00Z (UTC)   [hourly]",
        "2026-06-01 11:30 UTC (UTC)   2026-06-01T11:30:00Z (UTC)   [late]",
        "2026-06-01 12:00 UTC (UTC)   2026-06-01T12:00:00Z (UTC)   [hourly wins; also: sixhourly]",
    ]
    answer = tools_main.next_json(cw, datetime(2026, 6, 1, 10, 30, tzinfo=UTC), 3)
    assert [(t["entries"], t["winner"]) for t in answer["next"]] == [
        (["hourly"], "hourly"),
        (["late"], "late"),
        (["hourly", "sixhourly"], "hourly"),
    ]
    assert [s["name"] for s in answer["schedules"]] == ["hourly", "sixhourly", "late"]
