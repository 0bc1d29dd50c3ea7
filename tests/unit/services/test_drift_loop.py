"""The drift loop outlives any failed pass, and says when passes have failed for too long.

The pass is a stand-in (the loop's contract is only ``run_once(now=...)``); the clock and the
sleep are injected, so the loop runs as many periods as a test wants without waiting for any.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from qstash_operator.adapters.operator_metrics import OperatorMetrics
from qstash_operator.domain.errors import ApiRejectedError, QStashRejectedError
from qstash_operator.services.drift import DriftLoop, DriftReport
from tests.unit.instants import TOP_OF_THE_HOUR

PERIOD = 60.0
START = TOP_OF_THE_HOUR + timedelta(seconds=30)
"""Mid-minute: a period from here ends outside every quiet window (``domain.quiet``)."""
CLEAN = DriftReport(checked=1, recreated=(), updated=(), orphans_deleted=())


class Script:
    """Passes that raise or succeed in order; the clock advances by each sleep."""

    def __init__(self, outcomes: list[BaseException | None]) -> None:
        self.outcomes: Iterator[BaseException | None] = iter(outcomes)
        self.now = START
        self.passes: list[datetime] = []
        self.sleeps: list[float] = []

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)

    async def run_once(self, *, now: datetime) -> DriftReport:
        self.passes.append(now)
        try:
            outcome = next(self.outcomes)
        except StopIteration:
            raise asyncio.CancelledError from None  # the script is over: stop the loop
        if outcome is not None:
            raise outcome
        return CLEAN


def loop_for(script: Script, metrics: OperatorMetrics) -> DriftLoop:
    return DriftLoop(
        script,
        period=PERIOD,
        clock=script.clock,
        metrics=metrics,
        sleep=script.sleep,
        draw=lambda: 0.0,
    )


def sample(metrics: OperatorMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(QStashRejectedError("list refused", status=400), id="QStashRejectedError"),
        pytest.param(ApiRejectedError("list refused", detail="bad"), id="ApiRejectedError"),
        pytest.param(KeyError("schedules"), id="an error that is not ours"),
    ],
)
async def test_after_a_failed_pass_the_next_pass_still_runs(error: BaseException) -> None:
    script = Script([error, None])
    metrics = OperatorMetrics()
    loop = loop_for(script, metrics)
    with pytest.raises(asyncio.CancelledError):
        await loop.run()
    assert len(script.passes) == 3  # failed, succeeded, and the one the script stopped
    assert script.sleeps == [PERIOD, 2.0, PERIOD]  # a period, the first retry delay, a period
    assert sample(metrics, "qstash_operator_drift_passes_total", result=type(error).__name__) == 1
    assert sample(metrics, "qstash_operator_drift_passes_total", result="ok") == 1
    assert sample(metrics, "qstash_operator_drift_last_success_timestamp_seconds") == (
        script.passes[1].timestamp()
    )


async def test_readiness_flips_after_three_failing_periods_and_back_on_success() -> None:
    failures = 6  # after the first period: 2 + 4 + 8 + 16 + 32 + 60 s, just over three periods
    script = Script([QStashRejectedError("list refused", status=400)] * failures + [None])
    seen: list[tuple[float, str | None]] = []

    async def sleep_and_look(seconds: float) -> None:
        await script.sleep(seconds)
        seen.append(((script.now - START).total_seconds(), loop.problem(script.now)))

    loop = DriftLoop(
        script,
        period=PERIOD,
        clock=script.clock,
        metrics=OperatorMetrics(),
        sleep=sleep_and_look,
        draw=lambda: 0.0,
    )
    assert loop.problem(script.now) is None  # not running: a standby reports nothing
    with pytest.raises(asyncio.CancelledError):
        await loop.run()

    assert [at for at, _ in seen] == [60, 62, 66, 74, 90, 122, 182, 242]
    assert [problem is None for _, problem in seen] == [True] * 6 + [False, True]
    stale = seen[6][1]
    assert stale is not None
    assert "drift repair has not completed a pass since it started (182s" in stale
    assert "last error: QStashRejectedError: list refused" in stale
    assert loop.problem(script.now) is None  # stopped again


async def test_a_pass_due_at_a_minutes_burst_waits_for_its_end() -> None:
    """Started 5 s past a minute, with a 10-minute period: the first pass would come at :00 of a
    minute, when that minute's deliveries arrive; it comes 12 s later (``domain.quiet``). The next,
    a period after it, would come at 7 s past a minute: it waits to 12 s past too."""
    script = Script([None, None])
    script.now = TOP_OF_THE_HOUR + timedelta(seconds=5)
    loop = DriftLoop(
        script,
        period=595.0,
        clock=script.clock,
        metrics=OperatorMetrics(),
        sleep=script.sleep,
        draw=lambda: 0.0,
    )
    with pytest.raises(asyncio.CancelledError):
        await loop.run()
    assert script.passes[:2] == [
        TOP_OF_THE_HOUR + timedelta(minutes=10, seconds=12),
        TOP_OF_THE_HOUR + timedelta(minutes=20, seconds=12),
    ]
