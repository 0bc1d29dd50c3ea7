"""Polling with a deadline, the only way cluster tests wait.

Why: controllers act "soon", never at a known instant, so a test that sleeps a fixed time is either
slow or flaky. ``poll_until`` asks a question repeatedly until it has an answer or the deadline
passes, and on timeout says what it was waiting for and what it saw last.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class PollTimeoutError(AssertionError):
    """The condition did not hold before the deadline."""


def poll_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.25,
    describe_last: Callable[[], object] | None = None,
) -> T:
    """Call `check` until it returns something truthy, and return that.

    `describe_last`, if given, is called on timeout to add the state seen last to the message.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = f"; last seen: {describe_last()}" if describe_last is not None else ""
            raise PollTimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)
