"""Open the API connections a minute's burst will need, just before it (``domain.warmup``).

One task per webhook, started with the caches: ``LEAD`` before each minute boundary it counts
the cached CronWorkflows due then and, if any, sends that many ``GET /version`` at once (up to
the pool's size) on the client deliveries use, so their Job creates find the connections open.
Nothing is sent for a minute nothing is due at; a CronWorkflow the cache lacks only costs its
delivery a handshake, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Protocol

from qstash_operator.domain import warmup

logger = logging.getLogger(__name__)


class Due(Protocol):
    def next_schedule_times(self) -> Iterable[object]:
        """Each cached CronWorkflow's ``status.nextScheduleTime`` as written."""


class Pool(Protocol):
    async def ready(self) -> bool: ...


async def keep_warm(
    due: Due,
    pool: Pool,
    *,
    size: int,
    clock: Callable[[], datetime],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Forever: before each boundary, open a connection for each CronWorkflow due at it."""
    while True:
        now = clock()
        boundary = warmup.next_boundary(now)
        if boundary - now < warmup.LEAD:  # already inside the lead: the next one
            boundary += timedelta(minutes=1)
        await sleep((boundary - warmup.LEAD - now).total_seconds())
        try:
            await warm_for(due, pool, boundary=boundary, size=size)
        except Exception:  # best effort: a delivery without a warm connection still runs
            logger.warning("warming the API connections for %s failed", boundary, exc_info=True)


async def warm_for(due: Due, pool: Pool, *, boundary: datetime, size: int) -> int:
    """Open the connections for the burst at ``boundary``; returns how many were asked for."""
    count = warmup.connections_to_open(due.next_schedule_times(), boundary=boundary, pool=size)
    if count:
        await asyncio.gather(*(pool.ready() for _ in range(count)))
        logger.debug("opened %d API connections for the deliveries due at %s", count, boundary)
    return count
