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
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Final

import cachetools

from qstash_operator.adapters.kube import Kube
from qstash_operator.domain import builders, model, runs, vocabulary
from qstash_operator.domain.errors import InvalidSpecError, NotFoundError
from qstash_operator.domain.model import JsonDict
from qstash_operator.services.status_writes import write_status

logger = logging.getLogger(__name__)


MIRRORED_JOBS: Final = 100_000
"""Jobs whose last mirrored state is remembered (least recently seen forgotten first: a
forgotten one is mirrored once more on its next event, nothing worse)."""

_State = tuple[bool, bool, bool, datetime | None]


class StatusMirror:
    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._mirrored: cachetools.LRUCache[str, _State] = cachetools.LRUCache(MIRRORED_JOBS)

    async def job_changed(self, job: JsonDict, *, now: datetime) -> JsonDict | None:
        """A Job of ours changed; returns the status patch written (None: nothing to write)."""
        labels = (job.get("metadata") or {}).get("labels") or {}
        namespace = (job.get("metadata") or {}).get("namespace")
        name = labels.get(vocabulary.LABEL_CRONWORKFLOW)
        if not namespace or not name:
            return None
        view = runs.job_view(job)
        state: _State = (view.active, view.succeeded, view.failed, view.finished_at)
        if view.uid and self._mirrored.get(view.uid) == state:
            return None

        async def decide(body: JsonDict, attempt: int) -> JsonDict | None:
            try:
                cw = model.parse(body)
            except InvalidSpecError:
                return None
            selector = builders.label_selector(builders.selector_labels(cw))
            items = await self._kube.list_jobs(namespace, selector)
            jobs = [runs.job_view(item) for item in items]
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
            latest = _latest_tick(items)
            if latest is not None:
                patch.update(runs.status_after_cronjob_ran(cw, status, scheduled=latest, now=now))
            return patch

        try:
            written = await write_status(self._kube, namespace, name, decide)
        except NotFoundError:
            return None  # the CronWorkflow is gone; garbage collection takes its Jobs
        if view.uid:
            self._mirrored[view.uid] = state
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
