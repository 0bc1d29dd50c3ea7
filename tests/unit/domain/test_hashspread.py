"""Hash-spread times (Jenkins' H): resolved per object, stable, within the field, refused elsewhere.

The expected values are sha256 of ``team-a/report|minute`` (first 8 bytes: 18 mod 60, 3 mod 15,
8 mod 10) and ``team-a/report|hour`` (14 mod 24, 2 mod 6, 1 mod 5), worked out once by hand with
hashlib and written down, so a change of the derivation (another hash, another seed text) fails
here instead of moving every user's schedule silently.
"""

from __future__ import annotations

import hashlib

import pytest

from qstash_operator.domain import cron, hashspread, model
from qstash_operator.domain.errors import InvalidSpecError
from tests.unit.domain.factories import body

KEY = "team-a/report"


@pytest.mark.parametrize(
    ("expression", "resolved"),
    [
        pytest.param("H * * * *", "18 * * * *", id="H-minute-whole-hour"),
        pytest.param("H H * * *", "18 14 * * *", id="H-minute-and-hour-hash-independently"),
        pytest.param("H/15 * * * *", "3-59/15 * * * *", id="H-step-15-offset-below-15"),
        pytest.param("H(0-29) * * * *", "18 * * * *", id="H-range-first-half-hour"),
        pytest.param("H(0-29)/10 * * * *", "8-29/10 * * * *", id="H-range-with-step"),
        pytest.param("0 H(1-5) * * *", "0 2 * * *", id="H-range-in-hour-field"),
        pytest.param("H H/6 * * 1-5", "18 2-23/6 * * 1-5", id="H-step-in-hour-field"),
        pytest.param("H/1 * * * *", "0-59/1 * * * *", id="H-step-one-is-every-value"),
        pytest.param("H(7-7) * * * *", "7 * * * *", id="H-range-of-one-value"),
        pytest.param("H,30 * * * *", "18,30 * * * *", id="H-in-a-list-beside-a-number"),
        pytest.param("0 9 * * THU", "0 9 * * THU", id="weekday-name-with-h-is-not-a-hash"),
        pytest.param("*/5  *  * * *", "*/5  *  * * *", id="no-H-comes-back-byte-for-byte"),
        pytest.param("@hourly", "@hourly", id="macro-untouched"),
    ],
)
def test_resolves_into_plain_cron(expression: str, resolved: str) -> None:
    assert hashspread.resolve(expression, KEY) == resolved
    cron.parse(resolved)  # and robfig (the model) accepts the result


def test_the_seed_is_sha256_of_key_and_field_not_a_process_hash() -> None:
    digest = hashlib.sha256(b"team-a/report|minute").digest()
    assert hashspread.seed(KEY, "minute") == int.from_bytes(digest[:8], "big")
    assert hashspread.seed(KEY, "minute") % 60 == 18


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        pytest.param("0 0 H * *", ["day-of-month", "minute and hour"], id="H-in-day-of-month"),
        pytest.param("0 0 * H *", ["month"], id="H-in-month"),
        pytest.param("0 0 * * H", ["day-of-week"], id="H-in-day-of-week"),
        pytest.param("H(30-10) * * * *", ["minute", "30-10", "backwards"], id="range-backwards"),
        pytest.param("H(0-60) * * * *", ["minute", "0-59"], id="range-past-the-field"),
        pytest.param("0 H(0-24) * * *", ["hour", "0-23"], id="hour-range-past-the-field"),
        pytest.param("H/0 * * * *", ["step 0", "1 to 60"], id="step-zero"),
        pytest.param("H/61 * * * *", ["step 61"], id="step-beyond-the-field"),
        pytest.param("H(0-9)/11 * * * *", ["step 11", "1 to 10"], id="step-beyond-the-range"),
        pytest.param("H-5 * * * *", ["'H-5'", "H(a-b)"], id="H-as-a-range-start"),
        pytest.param("HH * * * *", ["'HH'"], id="doubled-H"),
    ],
)
def test_malformed_hashes_are_refused_naming_the_field(expression: str, words: list[str]) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        hashspread.resolve(expression, KEY)
    assert caught.value.field == "spec.schedule"
    assert caught.value.reason == "InvalidSchedule"
    for word in words:
        assert word in str(caught.value)


def test_the_same_object_resolves_the_same_after_delete_and_re_create() -> None:
    first = model.parse(body({"schedule": "H H * * *"}))
    again = model.parse(body({"schedule": "H H * * *"}) | {"status": {}})
    assert (
        first.spec.timetable.first.expression
        == again.spec.timetable.first.expression
        == "18 14 * * *"
    )


def test_the_parsed_spec_runs_the_resolution_and_remembers_what_was_written() -> None:
    schedule = model.parse(body({"schedule": "H/15 * * * *", "timeZone": "Europe/Berlin"}))
    assert schedule.spec.timetable.first.expression == "3-59/15 * * * *"
    assert schedule.spec.timetable.first.original == "H/15 * * * *"
    assert schedule.spec.timetable.first.qstash_cron() == "CRON_TZ=Europe/Berlin 3-59/15 * * * *"


def test_other_names_spread_over_the_hour() -> None:
    minutes = {
        hashspread.resolve("H * * * *", f"default/job-{index}").split()[0] for index in range(600)
    }
    # 600 names over 60 minutes: a hash that ignored the key, or took only a few values, fails.
    assert len(minutes) == 60
    assert all(0 <= int(minute) <= 59 for minute in minutes)


def test_a_bad_hash_through_the_model_names_spec_schedule() -> None:
    with pytest.raises(InvalidSpecError, match=r"^spec\.schedule: .*day-of-week"):
        model.parse(body({"schedule": "0 0 * * H"}))
