"""A delivery's status record, written after its answer, coalesced per CronWorkflow.

On the hot path (:mod:`qstash_operator.services.runs` with a recorder) a delivery's only API call
is the Job create; what the record says (``lastScheduleTime``, ``nextScheduleTime``,
``status.active``) is queued here and written a moment later, one write per CronWorkflow for
everything that arrived in that moment. The write is the same as the inline one: decided by
``domain.runs.status_after_run`` from the status read and the live Jobs, and conditional on the
``resourceVersion`` it was decided from (:func:`~qstash_operator.services.status_writes.
write_status`), so it can neither drop another writer's reservation nor move
``lastScheduleTime`` back; a conflict reads again and decides again.

What a crash between the create and the write loses: nothing the Jobs do not say. The Job
exists, so the tick's next delivery is a duplicate by name (or by message id); the operator's
mirror recomputes ``status.active`` from the Jobs on the Job's ADDED event and carries
``lastScheduleTime`` forward from the Job's ``scheduled-time`` annotation
(:mod:`qstash_operator.services.observe`).

Events and history pruning ride the same queue (:meth:`StatusRecorder.later`), after the status
writes of the same round, best effort.

When: not while deliveries keep arriving. A minute boundary's burst is the Job creates QStash is
waiting on, and each write queued here (a status PATCH, an Event POST) that the API server serves
during it delays the last of those creates. So the queue is written once no record has come for
``delay`` seconds (the burst is over), and a record waits at most ``max_delay`` seconds however
busy it stays (the operator's mirror takes over Jobs left unrecorded after its record grace,
60 s by default: keep ``max_delay`` well inside it). :func:`due` decides, pure; one task waits
for it and starts each round. Writes run ``concurrency`` at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Final

from qstash_operator.adapters.kube import Kube
from qstash_operator.domain import builders, runs
from qstash_operator.domain.errors import ConflictError, NotFoundError, QStashOperatorError
from qstash_operator.domain.model import CronWorkflow, JsonDict
from qstash_operator.domain.runs import JobView
from qstash_operator.services.runs import RunReads
from qstash_operator.services.status_writes import write_status

logger = logging.getLogger(__name__)

DEFAULT_DELAY_SECONDS: Final = 1.0
"""The pause in records that says a burst is over: QStash's deliveries of one minute arrive back
to back (hundreds in flight), so a second without one is the end of them."""
DEFAULT_MAX_DELAY_SECONDS: Final = 15.0
"""The longest a record waits while deliveries keep arriving (how far the status may lag the Job
at worst): longer than a minute's burst of 2,000 deliveries on two cores (about 9 s), whose
records written at 5 s competed with the creates still to come; a quarter of the operator's
default record grace."""
DEFAULT_CONCURRENCY: Final = 4
"""Deferred writes in flight at once (out of the client's 64 connections)."""


@dataclasses.dataclass(frozen=True)
class Due:
    """What :func:`due` decided: which queued items to write now, and when to look again."""

    items: frozenset[int]
    """Indices into the queued times given: the items to write now."""
    wake_in: float | None
    """Seconds until the next of the others may be due (None: none is left waiting)."""


def due(
    queued: Iterable[float], *, last_record: float, now: float, delay: float, max_delay: float
) -> Due:
    """Which of the items queued at the (monotonic) times ``queued`` to write at ``now``: all of
    them once no record has come for ``delay`` seconds since ``last_record``, else those that
    have waited ``max_delay``."""
    times = list(queued)
    quiet_at = last_record + delay
    if now >= quiet_at:
        return Due(frozenset(range(len(times))), None)
    ready = frozenset(index for index, at in enumerate(times) if now >= at + max_delay)
    waiting = [at + max_delay for index, at in enumerate(times) if index not in ready]
    return Due(ready, min([quiet_at, *waiting]) - now if waiting else None)


@dataclasses.dataclass(frozen=True)
class _Created:
    """One Job a delivery made: what its slot in ``recentSlots`` records."""

    view: JobView
    tick: datetime | None
    attempt: int | None
    at: datetime


@dataclasses.dataclass
class _Pending:
    body: JsonDict
    cw: CronWorkflow
    queued_at: float
    created: list[_Created] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class _Later:
    work: Callable[[], Awaitable[None]]
    queued_at: float


class StatusRecorder:
    """The per-CronWorkflow queue of deferred status records (a
    :class:`~qstash_operator.services.runs.RunRecorder`)."""

    def __init__(
        self,
        kube: Kube,
        *,
        clock: Callable[[], datetime],
        reads: RunReads | None = None,
        delay: float = DEFAULT_DELAY_SECONDS,
        max_delay: float = DEFAULT_MAX_DELAY_SECONDS,
        concurrency: int = DEFAULT_CONCURRENCY,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._clock = clock
        self._reads = reads
        self._delay = delay
        self._max_delay = max(max_delay, delay)
        self._monotonic = monotonic
        self._slots = asyncio.Semaphore(concurrency)
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._later: list[_Later] = []
        self._last_record = float("-inf")
        self._in_round = 0
        """Records taken by a round and not written yet."""
        self._writing: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}
        """One write at a time per CronWorkflow (a record of a later round waits for the write of
        an earlier one): the lock and how many writes hold or wait for it."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiter: asyncio.Task[None] | None = None
        self._nudge = asyncio.Event()
        self.written = 0
        """Status writes made (for tests and metrics)."""

    # -- RunRecorder ---------------------------------------------------------------------

    def record(
        self,
        body: JsonDict,
        cw: CronWorkflow,
        created: JobView,
        *,
        tick: datetime | None,
        attempt: int | None,
        at: datetime,
    ) -> None:
        key = (cw.namespace, cw.name)
        moment = self._monotonic()
        self._last_record = moment
        pending = self._pending.get(key)
        if pending is None or pending.cw.uid != cw.uid:
            pending = self._pending[key] = _Pending(body=body, cw=cw, queued_at=moment)
        pending.created.append(_Created(created, tick, attempt, at))
        self._wake()

    def later(self, work: Callable[[], Awaitable[None]]) -> None:
        self._later.append(_Later(work, self._monotonic()))
        self._wake()

    # -- state ---------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """CronWorkflows with a record not written yet."""
        return len(self._pending) + self._in_round

    async def drain(self, within: float) -> bool:
        """Write everything queued now (no more waiting); False if not done ``within`` seconds."""
        self._delay = self._max_delay = 0.0
        self._wake()
        self._nudge.set()
        try:
            async with asyncio.timeout(within):
                while self._tasks or self._pending or self._later:
                    if self._tasks:
                        await asyncio.gather(*list(self._tasks), return_exceptions=True)
                    else:
                        await asyncio.sleep(0)
        except TimeoutError:
            logger.warning("%d status records not written at shutdown", self.pending)
            return False
        return True

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- when ----------------------------------------------------------------------------

    def _wake(self) -> None:
        """Start the waiting task if it is not running. A running one needs no nudge: a record
        only moves the end of the burst later, and its own deadline comes after the others'."""
        if self._waiter is None:
            self._waiter = self._spawn(self._wait_and_start_rounds())

    async def _wait_and_start_rounds(self) -> None:
        """The one task that waits until queued work is due and starts its round."""
        try:
            while self._pending or self._later:
                keys = list(self._pending)
                verdict = due(
                    [self._pending[key].queued_at for key in keys]
                    + [item.queued_at for item in self._later],
                    last_record=self._last_record,
                    now=self._monotonic(),
                    delay=self._delay,
                    max_delay=self._max_delay,
                )
                if verdict.items:
                    records = [
                        self._pending.pop(key)
                        for index, key in enumerate(keys)
                        if index in verdict.items
                    ]
                    later = [
                        item.work
                        for index, item in enumerate(self._later, start=len(keys))
                        if index in verdict.items
                    ]
                    self._later = [
                        item
                        for index, item in enumerate(self._later, start=len(keys))
                        if index not in verdict.items
                    ]
                    self._in_round += len(records)
                    self._spawn(self._round(records, later))
                    continue
                self._nudge.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._nudge.wait(), timeout=verdict.wake_in)
        finally:
            self._waiter = None

    async def _round(
        self, records: list[_Pending], later: list[Callable[[], Awaitable[None]]]
    ) -> None:
        """One round: its status writes, then its events and pruning, a slot each."""
        await asyncio.gather(*(self._write_when_free(pending) for pending in records))
        await asyncio.gather(*(self._one_later(work) for work in later))

    # -- work ----------------------------------------------------------------------------

    def _spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _write_when_free(self, pending: _Pending) -> None:
        key = (pending.cw.namespace, pending.cw.name)
        lock, users = self._writing.get(key, (asyncio.Lock(), 0))
        self._writing[key] = (lock, users + 1)
        try:
            async with lock, self._slots:
                await self._write(pending)
        finally:
            self._in_round -= 1
            lock, users = self._writing[key]
            if users <= 1:
                del self._writing[key]
            else:
                self._writing[key] = (lock, users - 1)

    async def _write(self, pending: _Pending) -> None:
        cw, created = pending.cw, pending.created
        names = {made.view.name for made in created}

        async def decide(current: JsonDict, write_try: int) -> JsonDict | None:
            live = await self._live_jobs(cw)
            live = [view for view in live if view.name not in names] + [
                made.view for made in created
            ]
            # Each Job gets its own slot in the ledger: apply the records in the order they
            # were made, each to the status the previous one left (one write for all of them).
            status = dict(current.get("status") or {})
            patch: JsonDict = {}
            for made in created:
                step = runs.status_after_run(
                    cw,
                    status,
                    live,
                    created=made.view.name,
                    tick=made.tick,
                    manual=None,
                    now=made.at,
                    attempt=made.attempt,
                )
                status.update(step)
                patch.update(step)
            return patch

        body = self._body(cw) or pending.body
        try:
            await write_status(self._kube, cw.namespace, cw.name, decide, body=body)
            self.written += 1
        except NotFoundError:
            logger.info("CronWorkflow %s went away after its Job was created", cw.key)
        except QStashOperatorError as exc:  # the Jobs exist: the mirror catches up
            level = logging.WARNING if isinstance(exc, ConflictError) else logging.INFO
            logger.log(
                level,
                "created Job(s) %s but could not record them yet: %s",
                ", ".join(sorted(names)),
                exc,
            )

    def _body(self, cw: CronWorkflow) -> JsonDict | None:
        """The freshest copy of the CronWorkflow we hold, if it is this incarnation."""
        if self._reads is None:
            return None
        copy = self._reads.cronworkflow(cw.namespace, cw.name)
        if copy is None or (copy.get("metadata") or {}).get("uid") != cw.uid:
            return None
        return copy

    async def _live_jobs(self, cw: CronWorkflow) -> list[JobView]:
        if self._reads is not None:
            views = self._reads.jobs(cw.namespace, cw.uid)
            if views is not None:
                return views
        selector = builders.label_selector(builders.selector_labels(cw))
        return [runs.job_view(job) for job in await self._kube.list_jobs(cw.namespace, selector)]

    async def _one_later(self, work: Callable[[], Awaitable[None]]) -> None:
        async with self._slots:
            try:
                await work()
            except QStashOperatorError as exc:
                logger.info("deferred work after a run failed: %s", exc)
