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
writes, best effort. Writes run ``concurrency`` at a time so they do not take the API server
from the creates of a busy minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
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
"""How long a record waits for others of the same CronWorkflow before it is written (and how
far the status may lag the Job). A minute boundary's creates take about a second on two cores
at 500 deliveries; waiting that long keeps the status writes out of their way."""
DEFAULT_CONCURRENCY: Final = 4
"""Deferred writes in flight at once (out of the client's 64 connections)."""


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
    created: list[_Created] = dataclasses.field(default_factory=list)


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
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self._kube = kube
        self._clock = clock
        self._reads = reads
        self._delay = delay
        self._slots = asyncio.Semaphore(concurrency)
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._writing: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}
        """One write at a time per CronWorkflow (a record queued during a write waits for it):
        the lock and how many flushes hold or wait for it."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._later: list[Callable[[], Awaitable[None]]] = []
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
        pending = self._pending.get(key)
        if pending is None or pending.cw.uid != cw.uid:
            pending = self._pending[key] = _Pending(body=body, cw=cw)
            self._spawn(self._flush_after_delay(key))
        pending.created.append(_Created(created, tick, attempt, at))

    def later(self, work: Callable[[], Awaitable[None]]) -> None:
        self._later.append(work)
        if len(self._later) == 1:
            self._spawn(self._run_later())

    # -- state ---------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """CronWorkflows with a record not written yet."""
        return len(self._pending)

    async def drain(self, within: float) -> bool:
        """Write everything queued now (no more waiting); False if not done ``within`` seconds."""
        self._delay = 0.0
        try:
            async with asyncio.timeout(within):
                while self._tasks:
                    await asyncio.gather(*list(self._tasks), return_exceptions=True)
        except TimeoutError:
            logger.warning("%d status records not written at shutdown", len(self._pending))
            return False
        return True

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- work ----------------------------------------------------------------------------

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush_after_delay(self, key: tuple[str, str]) -> None:
        if self._delay > 0:
            await asyncio.sleep(self._delay)
        lock, users = self._writing.get(key, (asyncio.Lock(), 0))
        self._writing[key] = (lock, users + 1)
        try:
            async with lock:
                pending = self._pending.pop(key, None)
                if pending is None:
                    return
                async with self._slots:
                    await self._write(pending)
        finally:
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

    async def _run_later(self) -> None:
        """Events and pruning: after the status writes of the same moment, a slot each."""
        if self._delay > 0:
            await asyncio.sleep(self._delay)
        while self._later:
            batch, self._later = self._later, []
            await asyncio.gather(*(self._one_later(work) for work in batch))

    async def _one_later(self, work: Callable[[], Awaitable[None]]) -> None:
        async with self._slots:
            try:
                await work()
            except QStashOperatorError as exc:
                logger.info("deferred work after a run failed: %s", exc)
