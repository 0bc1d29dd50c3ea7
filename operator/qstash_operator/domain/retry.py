"""How long to wait before retrying a transient failure. Pure: the random draw is passed in.

Two rules shape the delay:

* Outages and rate limits grow: the error's own hint (2 s after a 5xx, the window's reset after a
  429) doubles with each attempt, up to five minutes, so a long outage costs a handful of calls
  an hour. Other hints (a conflict, a refused token's slow retry) are taken as they are.
* Every delay is spread: up to half again, drawn per retry. A thousand CronWorkflows that failed
  together on one QStash outage would otherwise come back in the same second, every time.

The spread only ever adds: a retry never comes earlier than the error said it may.
"""

from __future__ import annotations

from typing import Final

from qstash_operator.domain.errors import (
    KubernetesUnavailableError,
    QStashRateLimitedError,
    QStashUnavailableError,
    TransientError,
)

MAX_GROWN_SECONDS: Final = 300.0
"""A growing delay stops doubling here (before the spread is added)."""
MAX_DOUBLINGS: Final = 6
JITTER: Final = 0.5
"""The largest spread, as a fraction of the delay."""

_GROWING: Final = (QStashUnavailableError, KubernetesUnavailableError, QStashRateLimitedError)


def retry_delay(error: TransientError, attempt: int, draw: float) -> float:
    """Seconds before retry number ``attempt + 1`` (``attempt`` is 0 for the first failure).

    ``draw`` is a uniform random number in [0, 1): 0 gives the bare delay, values near 1 give
    half again as much.
    """
    if not 0.0 <= draw < 1.0:
        raise ValueError(f"draw must be in [0, 1), got {draw}")
    if attempt < 0:
        raise ValueError(f"attempt must not be negative, got {attempt}")
    delay = error.retry_after
    if isinstance(error, _GROWING):
        delay = min(MAX_GROWN_SECONDS, delay * 2 ** min(attempt, MAX_DOUBLINGS))
    return delay * (1.0 + JITTER * draw)
