"""When the operator's background work holds off: the seconds around each minute boundary (pure).

Cron ticks fall on whole minutes (five-field crons, as QStash and the CronJob controller run them),
so a platform's deliveries arrive together in a minute's first seconds, and each is a Job create
on the API server. The operator's own background work has no deadline within seconds: each
CronWorkflow's refresh and slot audit (every 30 s, ``services.periodic``), the drift pass (every
resync period). When it happens to fall into the burst it takes the API server's CPU, and the
node's when they share one, from the creates: in ``python -m bench tick-to-job`` at 500
CronWorkflows the periodic looks were a fifth of the operator's samples in the burst (py-spy).
So that work waits from :data:`BEFORE` before each boundary to :data:`AFTER` after it, and runs
in the rest of the minute. Nothing the burst needs waits: Job events, reconciles of changed
specs and the status mirror are not background work.

Every time zone in use today is a whole number of minutes from UTC, so a UTC minute boundary is
everyone's.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

BEFORE: Final = timedelta(seconds=2)
"""Quiet before the boundary: the webhook opens its connections then (``domain.warmup.LEAD``)."""
AFTER: Final = timedelta(seconds=12)
"""Quiet after it: a minute of 2,000 deliveries is over in about 10 s on two cores."""
MINUTE: Final = timedelta(minutes=1)


def window(moment: datetime) -> tuple[datetime, datetime]:
    """The quiet window ``moment`` (aware) falls in, or else the next one: ``(start, end)``,
    with ``start <= moment`` exactly when ``moment`` is inside it."""
    start = moment.replace(second=0, microsecond=0)
    if moment < start + AFTER:
        return start - BEFORE, start + AFTER
    return start + MINUTE - BEFORE, start + MINUTE + AFTER


def quiet_until(moment: datetime) -> datetime | None:
    """The end of the quiet window ``moment`` (aware) falls in; None outside every window."""
    start, end = window(moment)
    return end if start <= moment else None


def wait_outside(now: datetime, wait: float) -> float:
    """``wait`` seconds from ``now``, lengthened to the end of the quiet window the wait would
    end in (so ``wait_outside(now, 0.0)`` is how long to hold off right now)."""
    end = quiet_until(now + timedelta(seconds=wait))
    return wait if end is None else (end - now).total_seconds()
