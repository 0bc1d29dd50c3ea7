"""Marker Jobs (``spec.schedules`` on the CronJob backend), each run once, retried while the
failure is transient.

An entry's CronJob makes a marker Job per tick; :meth:`RunService.run_marker` turns it into the
tick's Job and deletes it. The operator's Job watch hands every marker it sees here, when it first
appears (``ADDED``) and when the watch lists it on start (a marker made while the operator was
down). kopf's ``on.create``/``on.resume`` did this before, but a change-detecting handler on Jobs
made kopf deep-copy the body of *every* Job event to compare it with the last one it handled:
about an eighth of the operator's samples in a burst of 500 deliveries, for markers that are
none of those Jobs (py-spy, ``python -m bench tick-to-job``).

A marker is run by one task at a time (by uid); a transient failure waits the domain's retry
delay and tries again, a permanent one is logged (``run_marker`` has already deleted the marker
if the Job itself was refused), and an error that is not ours is logged with its traceback and
retried after :data:`BUG_RETRY_SECONDS`, as kopf would have.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Final

from qstash_operator.domain.errors import QStashOperatorError, TransientError
from qstash_operator.domain.model import JsonDict
from qstash_operator.domain.retry import retry_delay

logger = logging.getLogger(__name__)

BUG_RETRY_SECONDS: Final = 60.0
"""kopf's default back-off for an error that is not a kopf one."""

RunMarker = Callable[[JsonDict], Awaitable[object]]


class MarkerRuns:
    def __init__(
        self,
        run: RunMarker,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._run = run
        self._sleep = sleep
        self._draw = draw
        self._running: dict[str, asyncio.Task[None]] = {}

    @property
    def running(self) -> int:
        return len(self._running)

    def seen(self, marker: JsonDict, *, event: str | None) -> None:
        """A marker Job's watch event (``event``: its type; None for the listing on start).
        Only its arrival counts (``ADDED``, or listed); one being deleted is done with."""
        meta = marker.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        if event not in (None, "ADDED") or meta.get("deletionTimestamp") or not uid:
            return
        if uid in self._running:
            return
        task = asyncio.ensure_future(self._until_done(marker, str(meta.get("name"))))
        self._running[uid] = task
        task.add_done_callback(lambda _: self._running.pop(uid, None))

    async def _until_done(self, marker: JsonDict, name: str) -> None:
        attempt = 0
        while True:
            try:
                await self._run(marker)
                return
            except TransientError as exc:
                delay = retry_delay(exc, attempt, self._draw())
                logger.warning("marker Job %s: %s; retrying in %.0fs", name, exc, delay)
            except QStashOperatorError as exc:
                logger.error("marker Job %s not run: %s", name, exc)
                return
            except Exception:  # a bug or a library surprise: worth its traceback, and a retry
                logger.exception("marker Job %s failed; retrying in %.0fs", name, BUG_RETRY_SECONDS)
                delay = BUG_RETRY_SECONDS
            attempt += 1
            await self._sleep(delay)

    async def close(self) -> None:
        """Cancel the runs under way (shutdown, leadership lost): markers stay for the next."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
