"""The garbage collector's hold through each minute's burst (``services.collector``): off
from 2 s before a minute boundary to 12 s after it, on in between and once the task stops."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from qstash_operator.services import collector
from tests.unit.instants import TOP_OF_THE_HOUR

S = timedelta(seconds=1)


class Recorder:
    """Stands in for :mod:`gc`, writing its switches into the same list as the sleeps."""

    def __init__(self, steps: list[object]) -> None:
        self.steps = steps

    def disable(self) -> None:
        self.steps.append("off")

    def enable(self) -> None:
        self.steps.append("on")


class StopLoopError(Exception):
    pass


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        pytest.param(
            TOP_OF_THE_HOUR + 30 * S,
            [("sleep", 28.0), "off", ("sleep", 14.0), "on", ("sleep", 46.0), "off"],
            id="mid-minute: on until the lead, off through the burst",
        ),
        pytest.param(
            TOP_OF_THE_HOUR + 3 * S,
            ["off", ("sleep", 9.0), "on", ("sleep", 46.0), "off"],
            id="started inside a burst: off at once, to the window's end",
        ),
        pytest.param(
            TOP_OF_THE_HOUR + 58 * S,
            ["off", ("sleep", 14.0), "on", ("sleep", 46.0), "off"],
            id="started at the lead's first instant",
        ),
    ],
)
async def test_the_collector_is_off_exactly_through_each_window(
    start: datetime, expected: list[object]
) -> None:
    now = [start]
    steps: list[object] = []

    async def sleep(seconds: float) -> None:
        steps.append(("sleep", round(seconds, 3)))
        if steps.count("off") == 2:  # stopped inside the second window
            raise StopLoopError
        now[0] += seconds * S

    with pytest.raises(StopLoopError):
        await collector.hold_through_bursts(
            clock=lambda: now[0], collector=Recorder(steps), sleep=sleep
        )
    assert steps[: len(expected)] == expected
    assert steps[-1] == "on"  # stopped with the collector off: it is switched back on
