"""The webhook's warm-up task (``qstash_webhook.warmup``): when it wakes, and what it opens."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from qstash_webhook import warmup

BOUNDARY = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
DUE = "2026-12-03T09:00:00Z"


class Cache:
    def __init__(self, times: list[object]) -> None:
        self.times = times

    def next_schedule_times(self) -> Iterable[object]:
        return list(self.times)


class Pool:
    def __init__(self) -> None:
        self.opened = 0

    async def ready(self) -> bool:
        self.opened += 1
        return True


class StopLoopError(Exception):
    pass


async def test_each_cronworkflow_due_gets_a_connection_up_to_the_pool() -> None:
    pool = Pool()
    assert await warmup.warm_for(Cache([DUE] * 3 + [None]), pool, boundary=BOUNDARY, size=2) == 2
    assert pool.opened == 2


async def test_nothing_due_opens_nothing() -> None:
    pool = Pool()
    assert await warmup.warm_for(Cache([None]), pool, boundary=BOUNDARY, size=64) == 0
    assert pool.opened == 0


@pytest.mark.parametrize(
    ("now", "slept"),
    [
        pytest.param(BOUNDARY - timedelta(seconds=30), 28.0, id="wakes two seconds before"),
        pytest.param(
            BOUNDARY - timedelta(seconds=1), 59.0, id="inside the lead: the next boundary"
        ),
    ],
)
async def test_the_task_wakes_the_lead_before_the_boundary(now: datetime, slept: float) -> None:
    sleeps: list[float] = []
    pool = Pool()

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) > 1:
            raise StopLoopError

    with pytest.raises(StopLoopError):
        await warmup.keep_warm(Cache([DUE]), pool, size=64, clock=lambda: now, sleep=sleep)
    assert sleeps[0] == pytest.approx(slept)
    assert pool.opened == (1 if slept == 28.0 else 0)  # the 09:01 boundary has nothing due
