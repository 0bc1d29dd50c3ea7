"""The driven clock moves only forward, and only when told."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from qstash_server import clock
from tests.unit.instants import HALF_PAST, TOP_OF_THE_HOUR


def test_driven_clock_stands_still_and_advances() -> None:
    driven = clock.DrivenClock(TOP_OF_THE_HOUR)
    assert driven.now() == driven.now() == TOP_OF_THE_HOUR
    assert driven.advance(90) == TOP_OF_THE_HOUR + timedelta(seconds=90)
    driven.set(HALF_PAST)
    assert driven.now() == HALF_PAST


def test_driven_clock_never_goes_back() -> None:
    driven = clock.DrivenClock(HALF_PAST)
    with pytest.raises(ValueError, match="does not go back"):
        driven.set(TOP_OF_THE_HOUR)
    with pytest.raises(ValueError, match="does not go back"):
        driven.advance(-1)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.DrivenClock(datetime(2026, 1, 1))


def test_milliseconds_round_trip() -> None:
    assert clock.from_ms(clock.to_ms(TOP_OF_THE_HOUR)) == TOP_OF_THE_HOUR
    assert clock.to_ms(TOP_OF_THE_HOUR) == 1_780_308_000_000
