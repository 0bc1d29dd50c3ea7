"""The quiet windows around minute boundaries (``domain.quiet``): when background work holds off
and for how long. Named instants; windows from 2 s before a minute to 12 s after it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from qstash_operator.domain import quiet
from tests.unit.instants import TOP_OF_THE_HOUR

S = timedelta(seconds=1)
NEXT_MINUTE = TOP_OF_THE_HOUR + timedelta(minutes=1)


@pytest.mark.parametrize(
    ("moment", "until"),
    [
        pytest.param(TOP_OF_THE_HOUR, TOP_OF_THE_HOUR + 12 * S, id="at the boundary"),
        pytest.param(TOP_OF_THE_HOUR + 11.9 * S, TOP_OF_THE_HOUR + 12 * S, id="late in the burst"),
        pytest.param(TOP_OF_THE_HOUR + 12 * S, None, id="the burst's window has ended"),
        pytest.param(TOP_OF_THE_HOUR + 30 * S, None, id="mid-minute"),
        pytest.param(TOP_OF_THE_HOUR + 57.9 * S, None, id="just before the lead"),
        pytest.param(TOP_OF_THE_HOUR + 58 * S, NEXT_MINUTE + 12 * S, id="the lead: the next burst"),
        pytest.param(
            NEXT_MINUTE - 0.001 * S, NEXT_MINUTE + 12 * S, id="a millisecond before the minute"
        ),
    ],
)
def test_quiet_until(moment: datetime, until: datetime | None) -> None:
    assert quiet.quiet_until(moment) == until


@pytest.mark.parametrize(
    ("now", "wait", "expected"),
    [
        pytest.param(TOP_OF_THE_HOUR + 30 * S, 10.0, 10.0, id="ends mid-minute: unchanged"),
        pytest.param(TOP_OF_THE_HOUR + 30 * S, 0.0, 0.0, id="nothing to hold off now"),
        pytest.param(TOP_OF_THE_HOUR + 3 * S, 0.0, 9.0, id="in a burst: hold off to its end"),
        pytest.param(TOP_OF_THE_HOUR + 50 * S, 15.0, 22.0, id="would end in the next burst"),
        pytest.param(TOP_OF_THE_HOUR + 50 * S, 59.0, 59.0, id="jumps the next burst entirely"),
        pytest.param(TOP_OF_THE_HOUR + 30 * S, 600.0, 600.0, id="a resync period ends mid-minute"),
        pytest.param(TOP_OF_THE_HOUR + 5 * S, 595.0, 607.0, id="a period landing at :00 waits"),
    ],
)
def test_wait_outside(now: datetime, wait: float, expected: float) -> None:
    assert quiet.wait_outside(now, wait) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("moment", "start", "end"),
    [
        pytest.param(
            TOP_OF_THE_HOUR, TOP_OF_THE_HOUR - 2 * S, TOP_OF_THE_HOUR + 12 * S, id="at the boundary"
        ),
        pytest.param(
            TOP_OF_THE_HOUR + 11.9 * S,
            TOP_OF_THE_HOUR - 2 * S,
            TOP_OF_THE_HOUR + 12 * S,
            id="late in the burst",
        ),
        pytest.param(
            TOP_OF_THE_HOUR + 12 * S,
            NEXT_MINUTE - 2 * S,
            NEXT_MINUTE + 12 * S,
            id="ended: the next one",
        ),
        pytest.param(
            TOP_OF_THE_HOUR + 30 * S,
            NEXT_MINUTE - 2 * S,
            NEXT_MINUTE + 12 * S,
            id="mid-minute: the next one",
        ),
        pytest.param(
            NEXT_MINUTE - 2 * S,
            NEXT_MINUTE - 2 * S,
            NEXT_MINUTE + 12 * S,
            id="the lead's first instant",
        ),
        pytest.param(
            NEXT_MINUTE - 0.001 * S,
            NEXT_MINUTE - 2 * S,
            NEXT_MINUTE + 12 * S,
            id="a millisecond before",
        ),
    ],
)
def test_window(moment: datetime, start: datetime, end: datetime) -> None:
    assert quiet.window(moment) == (start, end)
