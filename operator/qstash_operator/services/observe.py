"""Mirror what Jobs and CronJobs report into the CronWorkflow's status, for both backends.

Whoever made a Job (the webhook, the fallback CronJob, a manual run), its CronWorkflow's
``status.active`` and ``status.lastSuccessfulTime`` are recomputed from the live Jobs when one of
them changes, and history limits are enforced; a CronJob's ``lastScheduleTime`` is carried over
when it moves forward. Recomputing from live objects (not from the event alone) keeps the status
right however events are merged, lost or replayed after a restart.
"""

from __future__ import annotations

import logging
from datetime import datetime

from qstash_operator.adapters.kube import Kube
from qstash_operator.domain import builders, model, runs, vocabulary
from qstash_operator.domain.errors import InvalidSpecError, NotFoundError
from qstash_operator.domain.model import JsonDict

logger = logging.getLogger(__name__)


class StatusMirror:
    def __init__(self, kube: Kube) -> None:
        self._kube = kube

    async def job_changed(self, job: JsonDict, *, now: datetime) -> JsonDict | None:
        """A Job of ours changed; returns the status patch written (None: nothing to write)."""
        labels = (job.get("metadata") or {}).get("labels") or {}
        namespace = (job.get("metadata") or {}).get("namespace")
        name = labels.get(vocabulary.LABEL_CRONWORKFLOW)
        if not namespace or not name:
            return None
        try:
            body = await self._kube.get_cronworkflow(namespace, name)
        except NotFoundError:
            return None  # the CronWorkflow is gone; garbage collection takes its Jobs
        try:
            cw = model.parse(body)
        except InvalidSpecError:
            return None
        selector = builders.label_selector(builders.selector_labels(cw))
        jobs = [runs.job_view(item) for item in await self._kube.list_jobs(namespace, selector)]
        for doomed in runs.history_to_prune(
            jobs,
            successful_limit=cw.spec.successful_jobs_history_limit,
            failed_limit=cw.spec.failed_jobs_history_limit,
        ):
            await self._kube.delete_job(namespace, doomed)
        status = body.get("status") or {}
        patch: JsonDict = {}
        active = runs.active_references(jobs, namespace)
        if active != (status.get("active") or []):
            patch["active"] = active or None
        last_success = runs.last_successful_time(jobs)
        recorded = runs.parse_time(status.get("lastSuccessfulTime"))
        if last_success is not None and (recorded is None or last_success > recorded):
            patch["lastSuccessfulTime"] = builders.rfc3339(last_success)
        if patch:
            try:
                await self._kube.patch_cronworkflow(namespace, name, {"status": patch}, status=True)
            except NotFoundError:
                return None
        return patch or None

    async def cronjob_changed(self, cronjob: JsonDict, *, now: datetime) -> JsonDict | None:
        """The fallback CronJob's controller scheduled a Job: carry lastScheduleTime over."""
        meta = cronjob.get("metadata") or {}
        name = (meta.get("labels") or {}).get(vocabulary.LABEL_CRONWORKFLOW)
        namespace = meta.get("namespace")
        scheduled = runs.parse_time((cronjob.get("status") or {}).get("lastScheduleTime"))
        if not name or not namespace or scheduled is None:
            return None
        try:
            body = await self._kube.get_cronworkflow(namespace, name)
        except NotFoundError:
            return None
        recorded = runs.parse_time((body.get("status") or {}).get("lastScheduleTime"))
        if recorded is not None and recorded >= scheduled:
            return None
        patch = {"lastScheduleTime": builders.rfc3339(scheduled)}
        try:
            await self._kube.patch_cronworkflow(namespace, name, {"status": patch}, status=True)
        except NotFoundError:
            return None
        return patch
