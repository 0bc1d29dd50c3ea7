"""Token buckets for failed token reviews: per client address, and for all clients together.

Pure over a monotonic ``now`` the caller reads (once per request), so the rules are table-tested
with named instants. A bucket starts full (``burst``), each failure takes one token, and tokens
come back at ``per_second``; an empty bucket says how long until the next token.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from cachetools import LRUCache


@dataclasses.dataclass(frozen=True)
class Rate:
    burst: int
    """How many at once, from a full bucket."""
    per_second: float
    """How fast spent tokens come back."""


class TokenBucket:
    def __init__(self, rate: Rate, *, now: float) -> None:
        self.rate = rate
        self._tokens = float(rate.burst)
        self._stamp = now

    def _refill(self, now: float) -> None:
        elapsed = max(now - self._stamp, 0.0)  # a clock that steps back refills nothing
        self._tokens = min(float(self.rate.burst), self._tokens + elapsed * self.rate.per_second)
        self._stamp = max(self._stamp, now)

    def wait(self, now: float) -> float:
        """Seconds until a token is there (0.0: one is there now)."""
        self._refill(now)
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate.per_second

    def take(self, now: float) -> None:
        self._refill(now)
        self._tokens -= 1.0

    def give_back(self, now: float) -> None:
        self._refill(now)
        self._tokens = min(float(self.rate.burst), self._tokens + 1.0)


CLIENTS_TRACKED: Final = 4096
"""Client addresses whose buckets are kept (least recently seen ones go first). Forgetting one
refills it, which the shared bucket still bounds."""


class FailureLimiter:
    """May ``client`` spend a review on a token nobody has vouched for yet? Both its own bucket
    and the shared one must have a token; :meth:`take` spends one of each up front (so a burst
    of concurrent requests cannot all pass the check), :meth:`give_back` returns them when the
    review turns out not to be a failure."""

    def __init__(self, *, per_client: Rate, in_all: Rate, now: float) -> None:
        self._per_client = per_client
        self._shared = TokenBucket(in_all, now=now)
        self._clients: LRUCache[str, TokenBucket] = LRUCache(maxsize=CLIENTS_TRACKED)

    def _bucket(self, client: str, now: float) -> TokenBucket:
        bucket = self._clients.get(client)
        if bucket is None:
            bucket = self._clients[client] = TokenBucket(self._per_client, now=now)
        return bucket

    def take(self, client: str, *, now: float) -> float:
        """0.0 and one token spent from each bucket, or the seconds to wait (nothing spent)."""
        own = self._bucket(client, now)
        wait = max(own.wait(now), self._shared.wait(now))
        if wait > 0.0:
            return wait
        own.take(now)
        self._shared.take(now)
        return 0.0

    def give_back(self, client: str, *, now: float) -> None:
        self._bucket(client, now).give_back(now)
        self._shared.give_back(now)
