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

What it reads (the operator's path, :meth:`StatusMirror.job_changed_soon`): nothing, in the
common case. The Jobs come from the operator's Job index (:func:`indexed_job`, kept by kopf from
its Job watch), the CronWorkflow from the latest copy its own watch delivered
(:meth:`StatusMirror.cronworkflow_seen`: the compact projection the periodic loop holds too,
``domain.projection``, bounded);
only a CronWorkflow it holds no copy of is read (GET), and Jobs are listed only when the status
names a Job the index does not have (the index lags, or the Job is gone). It writes only when the
decision differs from the status it holds, conditionally on that copy's resourceVersion, so a
copy that is behind costs a 409 and a read, never a wrong write. A copy behind in the other
direction (it already looks right, but a write since made it wrong) is caught by the watch: a
CronWorkflow event arriving soon after a pass that wrote nothing is mirrored once more.

Gathering: a CronWorkflow is mirrored ``delay`` seconds after the first of its Job events, once
for all of them, a few CronWorkflows at a time. And a Job the webhook made for a tick is the
webhook's to record (``services.deferred_status``, once the minute's burst is over): while such a
Job is younger than ``record_grace`` seconds, a pass that finds it unrecorded writes nothing and
looks again when the grace is over (by when the webhook's record has arrived by the watch, and
there is nothing to write), so the two writers do not both write, or conflict, for every
delivery. The first event of such a Job is therefore gathered for a pass at the end of its grace,
not ``delay`` later: that pass would only have held, and at a busy minute it would have taken
the operator's CPU from the creates (an event of another kind brings the pass forward). A
webhook that died before recording is repaired once the grace is over.

An event that changes nothing the status is made of is not mirrored: the mirror remembers, per
Job uid, the state it last mirrored (active, succeeded, failed, finished at), and a Job event
with the same state (the job controller marking a Job suspended, a label edit) costs nothing.
The first event of each Job after a restart is always mirrored, and a state is remembered only
once its mirror pass succeeded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from datetime import datetime
from typing import Final

import cachetools

from qstash_operator.adapters.kube import Kube
from qstash_operator.domain import builders, model, runs, slots, vocabulary
from qstash_operator.domain.errors import InvalidSpecError, NotFoundError, QStashOperatorError
from qstash_operator.domain.model import JsonDict
from qstash_operator.domain.projection import Projection
from qstash_operator.services.status_writes import write_status

logger = logging.getLogger(__name__)


MIRRORED_JOBS: Final = 100_000
"""Jobs whose last mirrored state is remembered (least recently seen forgotten first: a
forgotten one is mirrored once more on its next event, nothing worse)."""

MIRROR_DELAY_SECONDS: Final = 2.0
"""How long a CronWorkflow's Job events are gathered before one mirror pass: past the webhook's
status delay (1 s), so its record is usually there already."""
RECORD_GRACE_SECONDS: Final = 60.0
"""How long a Job the webhook made for a tick is left for the webhook to record before the
mirror records it itself (``Settings.mirror_record_grace_seconds``): past the webhook's longest
wait (``deferred_status.DEFAULT_MAX_DELAY_SECONDS``) plus the time the records of a large
minute take to write (at 2,000 deliveries a 10 s grace ran out while the webhook was still
writing, and both wrote: 2.5 status PATCHes per delivery)."""
RECHECK_SECONDS: Final = 1.0
"""After a pass that wrote nothing from a held copy, a CronWorkflow event within the gathering
delay plus this long is mirrored again (the copy may have been behind a write)."""
MIRROR_CONCURRENCY: Final = 8
"""Gathered mirror passes running at once."""
CACHED_CRONWORKFLOWS: Final = 50_000
"""CronWorkflows whose latest watched copy the mirror holds (``Settings.mirror_cache_max``)."""

_State = tuple[bool, bool, bool, datetime | None]
Key = tuple[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class IndexedJob:
    """One Job of ours as the operator's Job index keeps it: what the mirror and the slot audit
    read, instead of listing Jobs (a few hundred bytes, not the Job's body)."""

    view: runs.JobView
    slot: slots.SlotJob
    tick: datetime | None
    """Its ``scheduled-time`` annotation: the tick it was made for."""


def indexed_job(job: JsonDict) -> IndexedJob:
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    return IndexedJob(
        view=runs.job_view(job),
        slot=slots.slot_job(job),
        tick=runs.parse_time(annotations.get(vocabulary.ANNOTATION_SCHEDULED_TIME)),
    )


JobIndex = Mapping[Key, Collection[IndexedJob]]
"""The operator's Job index (``services.job_index``): the Jobs of ours by (namespace,
CronWorkflow)."""


@dataclasses.dataclass
class _Gathered:
    events: list[tuple[str, _State]]
    """The gathered Job events as what is remembered of each once mirrored (uid, state): not
    the Jobs' bodies, which a busy minute's Jobs would hold for the whole grace."""
    due: float


class StatusMirror:
    def __init__(
        self,
        kube: Kube,
        *,
        delay: float = MIRROR_DELAY_SECONDS,
        record_grace: float = RECORD_GRACE_SECONDS,
        concurrency: int = MIRROR_CONCURRENCY,
        cache_max: int = CACHED_CRONWORKFLOWS,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._kube = kube
        self._mirrored: cachetools.LRUCache[str, _State] = cachetools.LRUCache(MIRRORED_JOBS)
        self._first_seen: cachetools.LRUCache[str, float] = cachetools.LRUCache(MIRRORED_JOBS)
        self._delay = delay
        self._grace = record_grace
        self._slots = asyncio.Semaphore(concurrency)
        self._gathered: dict[Key, _Gathered] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._bodies: cachetools.LRUCache[Key, Projection] = cachetools.LRUCache(cache_max)
        self._recheck: dict[Key, float] = {}
        """CronWorkflows a pass decided from a held copy and wrote nothing for: a watch event of
        theirs until the given (monotonic) time is mirrored once more."""
        self._index: JobIndex | None = None
        self._monotonic = monotonic
        self._sleep = sleep

    # -- inputs --------------------------------------------------------------------------

    def use_index(self, index: JobIndex | None) -> None:
        """Read Jobs from the operator's Job index from now on (None: list them)."""
        self._index = index

    @property
    def cached(self) -> int:
        """CronWorkflows whose watched copy is held."""
        return len(self._bodies)

    def cronworkflow_seen(
        self, projection: Projection, *, deleted: bool, clock: Callable[[], datetime]
    ) -> None:
        """A CronWorkflow event from the operator's watch: hold its projection (or drop it),
        the same object the periodic loop holds."""
        key = projection.key
        if deleted:
            self._bodies.pop(key, None)
            self._recheck.pop(key, None)
            return
        self._bodies[key] = projection
        until = self._recheck.pop(key, None)
        if until is not None and self._monotonic() < until:
            self._gather(key, None, clock)
        if len(self._recheck) > 4 * MIRROR_CONCURRENCY:
            now = self._monotonic()
            for stale in [k for k, t in self._recheck.items() if t <= now]:
                del self._recheck[stale]

    def job_changed_soon(self, job: JsonDict, *, clock: Callable[[], datetime]) -> None:
        """Mirror ``job``'s CronWorkflow ``delay`` seconds from the first event gathered for it
        (see the module docstring); failures are logged and left to the next event."""
        meta = job.get("metadata") or {}
        name = (meta.get("labels") or {}).get(vocabulary.LABEL_CRONWORKFLOW)
        namespace = meta.get("namespace")
        if not namespace or not name or self._unchanged(job):
            return
        uid = str(meta.get("uid") or "")
        now = self._monotonic()
        due = now + self._delay
        if uid and uid not in self._first_seen:
            self._first_seen[uid] = now
            if _webhooks_to_record(job):
                # Its first pass would only find it young and hold (see _young_until): no pass
                # until the grace is over, so the minute's burst of creates costs no passes.
                due = max(due, now + self._grace)
        self._gather((str(namespace), str(name)), job, clock, due=due)

    def _gather(
        self,
        key: Key,
        job: JsonDict | None,
        clock: Callable[[], datetime],
        *,
        due: float | None = None,
    ) -> None:
        """Gather ``job`` into ``key``'s coming pass, due at ``due`` (default ``delay`` from
        now) or earlier if an event gathered before is due earlier."""
        due = self._monotonic() + self._delay if due is None else due
        gathered = self._gathered.get(key)
        if gathered is None:
            gathered = self._gathered[key] = _Gathered([], due)
            task = asyncio.ensure_future(self._mirror_gathered(key, clock))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            gathered.due = min(gathered.due, due)
        if job is not None:
            gathered.events.append(self._state(job))

    # -- the gathered pass ---------------------------------------------------------------

    async def _mirror_gathered(self, key: Key, clock: Callable[[], datetime]) -> None:
        while True:
            gathered = self._gathered.get(key)
            if gathered is None:
                return
            wait = gathered.due - self._monotonic()
            if wait > 0:  # in steps of at most the delay: a later event may bring it forward
                await self._sleep(min(wait, self._delay) if self._delay > 0 else wait)
                continue
            async with self._slots:
                gathered = self._gathered.pop(key, None)
                if gathered is None:
                    return
                try:
                    held = await self._mirror(key, now=clock())
                except QStashOperatorError as exc:  # the next event of its Jobs mirrors it again
                    logger.info("status mirror for %s/%s deferred: %s", *key, exc)
                    return
            if held is not None:  # a young Job left for the webhook to record: look again
                newer = self._gathered.get(key)
                if newer is not None:  # events came during the pass; their own task looks
                    newer.events[:0] = gathered.events
                    return
                gathered.due = held
                self._gathered[key] = gathered
                continue
            for uid, state in gathered.events:
                self._remember_state(uid, state)
            return

    def _state(self, job: JsonDict) -> tuple[str, _State]:
        view = runs.job_view(job)
        return view.uid, (view.active, view.succeeded, view.failed, view.finished_at)

    def _unchanged(self, job: JsonDict) -> bool:
        uid, state = self._state(job)
        return bool(uid) and self._mirrored.get(uid) == state

    def _remember(self, job: JsonDict) -> None:
        self._remember_state(*self._state(job))

    def _remember_state(self, uid: str, state: _State) -> None:
        if uid:
            self._mirrored[uid] = state

    def _indexed(self, cw: model.CronWorkflow) -> list[IndexedJob] | None:
        if self._index is None:
            return None
        return [
            entry
            for entry in self._index.get((cw.namespace, cw.name), ())
            if entry.slot.cronworkflow_uid == cw.uid
        ]

    def _young_until(self, jobs: Iterable[IndexedJob]) -> float | None:
        """Until when (monotonic) a still active Job among ``jobs`` that a QStash delivery made
        (a tick's Job carrying its message id: the webhook records those after answering) is
        the webhook's to record; None when there is none."""
        latest: float | None = None
        for job in jobs:
            view = job.view
            if not view.active or view.trigger != vocabulary.TRIGGER_SCHEDULE:
                continue
            seen = self._first_seen.get(view.uid) if view.message_id else None
            if seen is not None and seen + self._grace > self._monotonic():
                until = seen + self._grace
                latest = until if latest is None else max(latest, until)
        return latest

    async def _mirror(self, key: Key, *, now: datetime) -> float | None:
        """One pass over one CronWorkflow from what is held; returns when to look again if a
        young Job was left for the webhook to record, else None."""
        projection = self._bodies.get(key)
        body = projection.body() if projection is not None else None
        held: list[float] = []
        try:
            written = await self._write(key, body, now=now, hold=held)
        except NotFoundError:
            self._bodies.pop(key, None)
            return None
        if held:
            return held[0]
        if written is None and body is not None:
            self._recheck[key] = self._monotonic() + self._delay + RECHECK_SECONDS
        return None

    async def job_changed(
        self, job: JsonDict, *, now: datetime, force: bool = False
    ) -> JsonDict | None:
        """A Job of ours changed; returns the status patch written (None: nothing to write, or
        an event that changed nothing mirrored, unless ``force``). Reads the CronWorkflow."""
        labels = (job.get("metadata") or {}).get("labels") or {}
        namespace = (job.get("metadata") or {}).get("namespace")
        name = labels.get(vocabulary.LABEL_CRONWORKFLOW)
        if not namespace or not name:
            return None
        if not force and self._unchanged(job):
            return None
        try:
            written = await self._write((str(namespace), str(name)), None, now=now, hold=None)
        except NotFoundError:
            return None  # the CronWorkflow is gone; garbage collection takes its Jobs
        self._remember(job)
        return written

    async def _write(
        self, key: Key, body: JsonDict | None, *, now: datetime, hold: list[float] | None
    ) -> JsonDict | None:
        """Decide from ``body`` (read when None) and the Jobs, write only what changed.

        With ``hold``, a pass that would write while a webhook-made Job is young writes nothing
        and appends when to look again."""
        namespace, name = key

        async def decide(current: JsonDict, attempt: int) -> JsonDict | None:
            try:
                cw = model.parse(current)
            except InvalidSpecError:
                return None
            status = current.get("status") or {}
            entries = self._indexed(cw)
            if entries is None or _names_unknown(status, entries):
                selector = builders.label_selector(builders.selector_labels(cw))
                entries = [
                    indexed_job(item) for item in await self._kube.list_jobs(namespace, selector)
                ]
            jobs = [entry.view for entry in entries]
            if attempt == 0:  # prune once per pass; a retry only re-reads
                doomed = runs.history_to_prune(
                    jobs,
                    successful_limit=cw.spec.successful_jobs_history_limit,
                    failed_limit=cw.spec.failed_jobs_history_limit,
                    now=now,
                )
                for doomed_job in doomed:
                    await self._kube.delete_job(namespace, doomed_job)
                entries = [entry for entry in entries if entry.view.name not in doomed]
                jobs = [entry.view for entry in entries]
            patch = runs.status_after_jobs_changed(status, jobs, namespace, now=now)
            # The ledger follows the Jobs at once (the audit does too, every period).
            ledger = slots.ledger_status(
                slots.with_jobs(
                    slots.parse_ledger(status.get("recentSlots")),
                    [entry.slot for entry in entries],
                    cronworkflow_uid=cw.uid,
                    limit=cw.spec.slot_options.history_limit,
                )
            )
            if ledger != (status.get("recentSlots") or []):
                patch["recentSlots"] = ledger
            latest = max((e.tick for e in entries if e.tick is not None), default=None)
            if latest is not None:
                patch.update(runs.status_after_cronjob_ran(cw, status, scheduled=latest, now=now))
            if patch and hold is not None and attempt == 0:
                until = self._young_until(entries)
                if until is not None:
                    hold.append(until)
                    return None
            return patch

        return await write_status(self._kube, namespace, name, decide, body=body)

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


def _webhooks_to_record(job: JsonDict) -> bool:
    """A Job the webhook made for a tick and records itself (see :meth:`StatusMirror._young_until`):
    active, made by the schedule, carrying its QStash message id."""
    view = runs.job_view(job)
    return view.active and view.trigger == vocabulary.TRIGGER_SCHEDULE and bool(view.message_id)


def _names_unknown(status: JsonDict, entries: Iterable[IndexedJob]) -> bool:
    """``status.active`` names a Job (not a reservation) the index does not have: the index is
    behind, or the Job is gone; either way the Jobs are listed rather than trusted."""
    known = {entry.view.name for entry in entries}
    for entry in status.get("active") or ():
        if not isinstance(entry, dict):
            continue
        uid = entry.get("uid", "")
        if isinstance(uid, str) and uid.startswith(runs.RESERVATION_PREFIX):
            continue
        if entry.get("name") not in known:
            return True
    return False
