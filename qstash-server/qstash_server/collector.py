"""The server's cyclic garbage collector held off while it fires a burst of schedules.

When many schedules share a tick (a platform's hourly jobs at minute 0), one scheduler pass
starts hundreds of deliveries at once: a message record, events, a signed token, a request and
its response each. Those allocations trip the collector's counters again and again, and each
pass walks the server's whole heap (the schedules, and the delivery, event and API-call logs of
up to ``log_limit`` entries each) to find almost nothing: reference counting frees the burst's
garbage. In ``python -m bench tick-to-job`` at 500 schedules on one minute, the collector ran
82 times in the server from the tick to the last delivery (74 young passes, 7 middle ones and
one full pass of 27.5 ms), 49 ms in all, about 12 % of the server's CPU in the burst, for 412
objects of cyclic garbage (a ``gc.callbacks`` probe, 2026-12-07). The operator and the webhook
already hold theirs through each minute (``qstash_operator.services.collector``).

So a scheduler pass with a tick due switches the collector off before it fires, and the
collector comes back on :data:`HOLD_SECONDS` after the last such pass: the first collection
after that frees what the burst left. The server is QStash's stand-in and not on a production
node, but in the bench and on a development cluster it shares the node's cores with the API
server and the webhook. A driven clock (tests) fires without the scheduler loop and never holds
the collector.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Final, Protocol

from qstash_operator.domain import quiet

HOLD_SECONDS: Final = quiet.AFTER.total_seconds()
"""How long after a firing pass the collector stays off: as long as the operator's and the
webhook's hold after a minute boundary (a minute of 2,000 deliveries is over in about 10 s)."""


class Collector(Protocol):
    """What the hold needs of :mod:`gc` (tests pass a recorder)."""

    def disable(self) -> None: ...

    def enable(self) -> None: ...


class Timer(Protocol):
    def cancel(self) -> None: ...


CallLater = Callable[[float, Callable[[], None]], Timer]
"""``loop.call_later`` without its extra arguments (tests pass a recorder)."""


def _loop_call_later(delay: float, callback: Callable[[], None]) -> Timer:
    return asyncio.get_running_loop().call_later(delay, callback)


class BurstHold:
    """Off from :meth:`firing` to ``seconds`` after its last call; on again at :meth:`close`."""

    def __init__(
        self,
        *,
        seconds: float = HOLD_SECONDS,
        collector: Collector = gc,
        call_later: CallLater = _loop_call_later,
    ) -> None:
        if seconds <= 0:
            raise ValueError("the hold must last a positive number of seconds")
        self._seconds = seconds
        self._collector = collector
        self._call_later = call_later
        self._release: Timer | None = None

    @property
    def holding(self) -> bool:
        return self._release is not None

    def firing(self) -> None:
        """A pass is about to fire: off now (if not already) and until ``seconds`` from now."""
        if self._release is None:
            self._collector.disable()
        else:
            self._release.cancel()
        self._release = self._call_later(self._seconds, self._end)

    def _end(self) -> None:
        self._release = None
        self._collector.enable()

    def close(self) -> None:
        """The scheduler stops: the collector is on again, whatever the timer says."""
        if self._release is not None:
            self._release.cancel()
            self._end()
