"""The server's sense of "now": the wall clock, or a clock that tests drive.

QStash fires schedules on the minute; tests cannot wait for the minute, and must not be surprised
by one either. So the scheduler asks a :class:`Clock`, never ``datetime.now``:

- :class:`RealClock` is the wall clock (``qstash-server`` without test controls);
- :class:`DrivenClock` stands still until a test moves it (``advance`` / ``set``), so a test that
  fires a schedule sees exactly the deliveries it caused, even if a wall-clock minute passes.

Only *when schedules fire* (and the times reported in schedule JSON) follow this clock. The
tokens the server signs carry the wall time by default (see ``ServerConfig.signing_clock``),
because real receivers, the SDK's among them, check ``iat``/``exp`` against their own wall clock.
Waits inside a delivery (retry backoff, ``Upstash-Delay``) run on the event loop's time, scaled by
``backoff_factor``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    @property
    def driven(self) -> bool:
        """True when time moves only on request (then the scheduler loop does not run)."""
        ...

    def now(self) -> datetime:
        """Timezone-aware UTC."""
        ...


class RealClock:
    driven = False

    def now(self) -> datetime:
        return datetime.now(UTC)


class DrivenClock:
    """Frozen time that moves forward on request. It never goes back: ticks fire once."""

    driven = True

    def __init__(self, start: datetime | None = None) -> None:
        moment = start if start is not None else datetime.now(UTC)
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("the driven clock needs a timezone-aware start")
        self._now = moment.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("the driven clock needs timezone-aware times")
        moment = moment.astimezone(UTC)
        if moment < self._now:
            raise ValueError(f"the clock does not go back ({moment} is before {self._now})")
        self._now = moment

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the clock does not go back")
        self._now = self._now + timedelta(seconds=seconds)
        return self._now


def to_ms(moment: datetime) -> int:
    """Unix milliseconds, QStash's unit for schedule times."""
    return int(moment.timestamp() * 1000)


def from_ms(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds / 1000, UTC)
