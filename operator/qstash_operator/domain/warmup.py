"""How many API connections the webhook opens before a minute boundary (pure).

A minute's deliveries arrive together, and each needs a connection to the API server for its Job
create. An idle pool has none (aiohttp closes idle connections after 15 s), so without a warm-up
the first creates of a burst wait for TCP and TLS handshakes, dozens at once on both sides (256
requests over 64 cold connections to the local API server: first answer after 0.28-0.46 s, against
0.04-0.07 s warm, in a probe on two cores). The webhook knows the burst in advance: every cached
CronWorkflow says its ``status.nextScheduleTime``. So shortly before a boundary it opens as many
connections as CronWorkflows are due then, up to its pool size, and none when nothing is due.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Final

from qstash_operator.domain.builders import rfc3339

LEAD: Final = timedelta(seconds=2)
"""How long before the boundary the connections are opened: well inside aiohttp's 15 s idle
timeout, and early enough for dozens of handshakes to finish on a busy machine."""


def next_boundary(now: datetime) -> datetime:
    """The first whole minute after ``now`` (aware)."""
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def connections_to_open(
    next_schedule_times: Iterable[object], *, boundary: datetime, pool: int
) -> int:
    """How many connections to open for the burst at ``boundary``: the CronWorkflows whose
    ``status.nextScheduleTime`` (as written: RFC 3339, UTC, ``Z``) is that instant, up to ``pool``.
    Anything that is not such a string (unset, malformed) counts as not due."""
    wanted = rfc3339(boundary)
    due = 0
    for value in next_schedule_times:
        if value == wanted:
            due += 1
            if due >= pool:
                return pool
    return due
