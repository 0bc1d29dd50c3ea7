"""Python's cyclic garbage collector held off through each minute's burst (``domain.quiet``).

A minute's deliveries allocate fast (a request, a plan, a Job body, a response each), so the
collector's allocation counters trip over and over inside the burst. Each pass walks every
object the caches hold, and it finds nothing to free there: the hot path's garbage is freed by
reference counting. With 500 CronWorkflows due at one minute in ``python -m bench tick-to-job``,
the collector ran 100 times in the burst's first second and took 81 ms, about a sixth of the
webhook's CPU in that second, for 128 objects of cyclic garbage in the whole burst
(``gc.callbacks``). So the collector is off from :data:`~qstash_operator.domain.quiet.BEFORE`
before each minute to :data:`~qstash_operator.domain.quiet.AFTER` after it and on for the rest
of the minute, where its first pass frees what the burst left. Reference counting still frees
everything else at once, so memory does not grow with the burst.

One task per process: the webhook starts it with its caches (:mod:`qstash_webhook.app`), the
operator with its other work once it leads (``entrypoints.operator_main``: its Job index, kopf's
per-object state and each CronWorkflow's projection are a larger heap still, and its Job watch
reads the burst's events in the same seconds). Stopping it switches the collector back on.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from qstash_operator.domain import quiet


class Collector(Protocol):
    """What the task needs of :mod:`gc` (tests pass a recorder)."""

    def disable(self) -> None: ...

    def enable(self) -> None: ...


async def hold_through_bursts(
    *,
    clock: Callable[[], datetime],
    collector: Collector = gc,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Forever: the collector off inside each quiet window, on outside; on again when cancelled."""
    try:
        while True:
            now = clock()
            start, end = quiet.window(now)
            if now < start:
                await sleep((start - now).total_seconds())
                continue
            collector.disable()
            await sleep((end - now).total_seconds())
            collector.enable()
    finally:
        collector.enable()
