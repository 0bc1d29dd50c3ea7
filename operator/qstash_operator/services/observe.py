"""Mirror what Jobs and CronJobs report into the CronWorkflow's status, for both backends.

Whoever made a Job (the webhook, the fallback CronJob, a manual run), its CronWorkflow's
``status.active`` and ``status.lastSuccessfulTime`` are recomputed from the live Jobs when one of
them changes, and history limits are enforced; a CronJob's ``lastScheduleTime`` is carried over
when it moves forward (with the ``nextScheduleTime`` after it). Recomputing from live objects (not
from the event alone) keeps the status right however events are merged, lost or replayed after a
restart.

The mirror is one of several status writers: its writes are conditional on the resourceVersion
read (:mod:`qstash_operator.services.status_writes`), and it keeps the reservations other writers
made for Jobs not created yet (``domain.runs.status_after_jobs_changed``). Under ``Replace`` the
run's own delete of the old Job triggers a mirror write before the new Job exists; dropping the
run's reservation there would let a concurrent run see nothing active and start a second Job.

The mirror also carries ``lastScheduleTime`` forward to the latest tick a live Job was made for
(its ``scheduled-time`` annotation; ``domain.runs.status_after_cronjob_ran`` decides, as for a
CronJob's): the webhook records a run after answering (``services.deferred_status``), and a
webhook that dies in between leaves a Job whose record is repaired here.

An event that changes nothing the status is made of is not mirrored: the mirror remembers, per
Job uid, the state it last mirrored (active, succeeded, failed, finished at), and a Job event
with the same state (the job controller marking a Job suspended, a label edit) costs no API call.
At a minute boundary that halves the operator's reads (each new Job gets two events: its creation
and the job controller's first status write). The first event of each Job after a restart is
always mirrored, and a state is remembered only once its mirror pass succeeded.

The operator's Job events go through :meth:`StatusMirror.job_changed_soon`: the CronWorkflow is
mirrored ``delay`` seconds after the first of its Job events, once for all of them (one read of
it, one list of its Jobs), a few CronWorkflows at a time. At a minute boundary that keeps the
mirror's reads out of the way of the webhook's Job creates, and by then the webhook's own record
has usually landed, so the mirror finds nothing to write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Final

import cachetools

from qstash_operator.adapters.kube import Kube
from qstash_operator.domain import builders, model, runs, slots, vocabulary
from qstash_operator.domain.errors import InvalidSpecError, NotFoundError, QStashOperatorError
from qstash_operator.domain.model import JsonDict
from qstash_operator.services.status_writes import write_status

logger = logging.getLogger(__name__)


MIRRORED_JOBS: Final = 100_000
"""Jobs whose last mirrored state is remembered (least recently seen forgotten first: a
forgotten one is mirrored once more on its next event, nothing worse)."""

MIRROR_DELAY_SECONDS: Final = 2.0
"""How long a CronWorkflow's Job events are gathered before one mirror pass: past the webhook's
status delay (1 s), so its record is usually there already."""
MIRROR_CONCURRENCY: Final = 8
"""Gathered mirror passes running at once."""

_State = tuple[bool, bool, bool, datetime | None]


class StatusMirror:
    def __init__(
        self,
        kube: Kube,
        *,
        delay: float = MIRROR_DELAY_SECONDS,
        concurrency: int = MIRROR_CONCURRENCY,
    ) -> None:
        self._kube = kube
        self._mirrored: cachetools.LRUCache[str, _State] = cachetools.LRUCache(MIRRORED_JOBS)
        self._delay = delay
        self._slots = asyncio.Semaphore(concurrency)
        self._gathered: dict[tuple[str, str], list[JsonDict]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def job_changed_soon(self, job: JsonDict, *, clock: Callable[[], datetime]) -> None:
        """Mirror ``job``'s CronWorkflow ``delay`` seconds from the first event gathered for it
        (see the module docstring); failures are logged and left to the next event."""
        meta = job.get("metadata") or {}
        name = (meta.get("labels") or {}).get(vocabulary.LABEL_CRONWORKFLOW)
        namespace = meta.get("namespace")
        if not namespace or not name or self._unchanged(job):
            return
        key = (str(namespace), str(name))
        gathered = self._gathered.get(key)
        if gathered is not None:
            gathered.append(job)
            return
        self._gathered[key] = [job]
        task = asyncio.ensure_future(self._mirror_gathered(key, clock))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _mirror_gathered(self, key: tuple[str, str], clock: Callable[[], datetime]) -> None:
        await asyncio.sleep(self._delay)
        async with self._slots:
            jobs = self._gathered.pop(key, [])
            if not jobs:
                return
            try:
                await self.job_changed(jobs[-1], now=clock(), force=True)
            except QStashOperatorError as exc:  # the next event of its Jobs mirrors it again
                logger.info("status mirror for %s/%s deferred: %s", *key, exc)
                return
            for job in jobs[:-1]:
                self._remember(job)

    def _state(self, job: JsonDict) -> tuple[str, _State]:
        view = runs.job_view(job)
        return view.uid, (view.active, view.succeeded, view.failed, view.finished_at)

    def _unchanged(self, job: JsonDict) -> bool:
        uid, state = self._state(job)
        return bool(uid) and self._mirrored.get(uid) == state

    def _remember(self, job: JsonDict) -> None:
        uid, state = self._state(job)
        if uid:
            self._mirrored[uid] = state

    async def job_changed(
        self, job: JsonDict, *, now: datetime, force: bool = False
    ) -> JsonDict | None:
        """A Job of ours changed; returns the status patch written (None: nothing to write, or
        an event that changed nothing mirrored, unless ``force``)."""
        labels = (job.get("metadata") or {}).get("labels") or {}
        namespace = (job.get("metadata") or {}).get("namespace")
        name = labels.get(vocabulary.LABEL_CRONWORKFLOW)
        if not namespace or not name:
            return None
        if not force and self._unchanged(job):
            return None

        async def decide(body: JsonDict, attempt: int) -> JsonDict | None:
            try:
                cw = model.parse(body)
            except InvalidSpecError:
                return None
            selector = builders.label_selector(builders.selector_labels(cw))
            raw = await self._kube.list_jobs(namespace, selector)
            jobs = [runs.job_view(item) for item in raw]
            if attempt == 0:  # prune once per event; a retry only re-reads
                doomed = runs.history_to_prune(
                    jobs,
                    successful_limit=cw.spec.successful_jobs_history_limit,
                    failed_limit=cw.spec.failed_jobs_history_limit,
                    now=now,
                )
                for doomed_job in doomed:
                    await self._kube.delete_job(namespace, doomed_job)
                jobs = [view for view in jobs if view.name not in doomed]
            status = body.get("status") or {}
            patch = runs.status_after_jobs_changed(status, jobs, namespace, now=now)
            # The ledger follows the Jobs at once (the audit does too, every period).
            live = {view.name for view in jobs}
            ledger = slots.ledger_status(
                slots.with_jobs(
                    slots.parse_ledger(status.get("recentSlots")),
                    [slots.slot_job(item) for item in raw if item["metadata"]["name"] in live],
                    cronworkflow_uid=cw.uid,
                    limit=cw.spec.slot_options.history_limit,
                )
            )
            if ledger != (status.get("recentSlots") or []):
                patch["recentSlots"] = ledger
            latest = _latest_tick(raw)
            if latest is not None:
                patch.update(runs.status_after_cronjob_ran(cw, status, scheduled=latest, now=now))
            return patch

        try:
            written = await write_status(self._kube, namespace, name, decide)
        except NotFoundError:
            return None  # the CronWorkflow is gone; garbage collection takes its Jobs
        self._remember(job)
        return written

    async def cronjob_changed(self, cronjob: JsonDict, *, now: datetime) -> JsonDict | None:
        """The fallback CronJob's controller scheduled a Job: carry lastScheduleTime over."""
        meta = cronjob.get("metadata") or {}
        name = (meta.get("labels") or {}).get(vocabulary.LABEL_CRONWORKFLOW)
        namespace = meta.get("namespace")
        scheduled = runs.parse_time((cronjob.get("status") or {}).get("lastScheduleTime"))
        if not name or not namespace or scheduled is None:
            return None

        async def decide(body: JsonDict, attempt: int) -> JsonDict | None:
            try:
                cw = model.parse(body)
            except InvalidSpecError:
                return None
            return runs.status_after_cronjob_ran(
                cw, body.get("status") or {}, scheduled=scheduled, now=now
            )

        try:
            return await write_status(self._kube, namespace, name, decide)
        except NotFoundError:
            return None


def _latest_tick(jobs: list[JsonDict]) -> datetime | None:
    """The latest tick a Job was made for (its ``scheduled-time`` annotation)."""
    ticks = [
        runs.parse_time(
            ((job.get("metadata") or {}).get("annotations") or {}).get(
                vocabulary.ANNOTATION_SCHEDULED_TIME
            )
        )
        for job in jobs
    ]
    return max((tick for tick in ticks if tick is not None), default=None)
