"""One loop for every CronWorkflow's periodic looks (refresh and slot audit).

A kopf timer is a task per object, and kopf keeps each object's whole latest body for it (its
``metadata.managedFields`` and every annotation included) next to the task's own state: at
2,000 CronWorkflows the operator's peak RSS was 221 MiB with a timer each and 154 MiB with this
loop (75 and 41 KiB per object over its idle 74 MiB; ``python -m bench operator-memory``), and
each object cost one status PATCH and 0.4 metadata PATCH fewer while converging. Here the
CronWorkflows the watch delivered are held as compact projections of the latest event (only what
the looks read, as JSON text: ``domain.projection``), and one task sleeps until the next look is
due.

Timing is the per-object timer's: an object's first look comes ``tick`` seconds after it was
first seen, the next ``tick`` seconds after the previous one ended; an object being deleted is
not looked at any more (kopf stopped its timers then), and a deleted one is forgotten. Looks
run a few at a time, so one slow object (a handover's QStash call) does not hold the others up.
A look that raises is logged, and the object looked at again a tick later.

Looks hold off around each minute boundary (``domain.quiet``): a look due then waits for the
minute's burst of deliveries to be over, and the ones that came due meanwhile run after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

from qstash_operator.domain import quiet
from qstash_operator.domain.model import JsonDict
from qstash_operator.domain.projection import Key, Projection

logger = logging.getLogger(__name__)

LOOK_CONCURRENCY: Final = 16
"""Looks running at once."""


@dataclasses.dataclass(slots=True)
class Watched:
    """One CronWorkflow as the loop holds it. ``refreshed_at`` and ``audited_at`` are the
    look's own memory (monotonic seconds; see ``entrypoints.handlers._due``)."""

    projection: Projection
    due: float
    refreshed_at: float | None = None
    audited_at: float | None = None
    looking: bool = False

    @property
    def body(self) -> JsonDict:
        """The latest projection, parsed (a new tree each time: read it once per look)."""
        return self.projection.body()


Look = Callable[[Watched, float], Awaitable[None]]
"""Given the object and the (monotonic) moment its look fired: do it."""


class PeriodicLooks:
    def __init__(
        self,
        look: Look,
        *,
        tick: float,
        concurrency: int = LOOK_CONCURRENCY,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._look = look
        self._wall = wall
        self._sleep = sleep
        self._tick = tick
        self._slots = asyncio.Semaphore(concurrency)
        self._monotonic = monotonic
        self._watched: dict[Key, Watched] = {}
        self._queue: list[tuple[float, Key]] = []
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._watched)

    def get(self, key: Key) -> Watched | None:
        return self._watched.get(key)

    def seen(self, projection: Projection, *, deleted: bool) -> None:
        """A CronWorkflow event from the watch: hold its latest projection; one deleted, or
        being deleted, is forgotten."""
        key = projection.key
        if deleted or projection.deleting:
            self._watched.pop(key, None)
            return
        held = self._watched.get(key)
        if held is not None and held.projection.uid == projection.uid:
            held.projection = projection
            return
        due = self._monotonic() + self._tick
        self._watched[key] = Watched(projection, due)
        heapq.heappush(self._queue, (due, key))
        if self._queue[0][0] == due:  # the loop sleeps until an earlier look otherwise
            self._changed.set()

    def due_now(self) -> list[Watched]:
        """The objects whose look is due (taken off the queue; each goes back once looked at)."""
        now = self._monotonic()
        found = []
        while self._queue and self._queue[0][0] <= now:
            due, key = heapq.heappop(self._queue)
            held = self._watched.get(key)
            if held is None or held.due != due or held.looking:
                continue  # forgotten, or seen again as a new object (its own entry is queued)
            held.looking = True
            found.append(held)
        return found

    def looked(self, held: Watched) -> None:
        """A look ended: the next comes a tick from now (unless the object was forgotten)."""
        held.looking = False
        key = held.projection.key
        if self._watched.get(key) is not held:
            return
        held.due = self._monotonic() + self._tick
        heapq.heappush(self._queue, (held.due, key))
        if self._queue[0][0] == held.due:  # the loop may be asleep with nothing queued
            self._changed.set()

    def next_due(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    async def _one(self, held: Watched, moment: float) -> None:
        try:
            await self._look(held, moment)
        except Exception:  # one object's failure must not end everyone's looks
            logger.exception("periodic look at %s/%s failed", *held.projection.key)
        finally:
            self._slots.release()
            self.looked(held)

    async def run(self) -> None:
        """Until cancelled (then the looks under way are cancelled too)."""
        try:
            while True:
                hold = quiet.wait_outside(self._wall(), 0.0)
                if hold > 0:  # a minute's burst: what comes due meanwhile runs after it
                    await self._sleep(hold)
                    continue
                for held in self.due_now():
                    await self._slots.acquire()
                    task = asyncio.ensure_future(self._one(held, self._monotonic()))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                following = self.next_due()
                self._changed.clear()
                wait = None if following is None else max(0.0, following - self._monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
