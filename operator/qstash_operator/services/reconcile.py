"""Carry out reconciliation plans: the calls to QStash and Kubernetes, in the order planned.

``domain.reconcile`` decides what one cycle over a CronWorkflow does (:func:`plan` for create,
update and resume, :func:`plan_refresh` for the timer, :func:`plan_finalize` for deletion) and what
a failed step means (:func:`after_failure`). This module only acts: it runs a plan's steps, and
when one raises one of the project's errors it hands that back to the domain and runs the plan it
gets instead. So following a CronWorkflow through :meth:`Reconciler.reconcile` enters the domain
once for the plan, and once more per failed step (at most ``MAX_PLANS_PER_CYCLE`` plans), and
reaches the adapters only from here.

The result is a :class:`Result` (one status patch, an error to surface, when to look again)
rather than kopf calls, so the handlers stay thin and tests need no kopf. ``now`` is read once by
the caller and passed down; every time in the result derives from it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Final, TypeVar, assert_never

from qstash_operator.adapters.kube import Kube
from qstash_operator.adapters.operator_metrics import OperatorMetrics
from qstash_operator.adapters.qstash_api import QStashSchedules
from qstash_operator.domain import reconcile
from qstash_operator.domain.errors import (
    NotFoundError,
    NotOwnedError,
    QStashOperatorError,
    TransientError,
)
from qstash_operator.domain.model import JsonDict
from qstash_operator.domain.reconcile import (
    AdoptJobs,
    CheckJobTemplate,
    CreateCronJob,
    DeleteCronJob,
    DeleteSchedule,
    PauseSchedule,
    PostEvent,
    PutCronJob,
    ReconcilePlan,
    ReplaceCronJob,
    Step,
    SweepMarkerCronJobs,
    UpsertSchedule,
)
from qstash_operator.settings import Settings

logger = logging.getLogger(__name__)

COMPONENT: Final = "qstash-operator"
T = TypeVar("T")
TEMPLATE_REUSE_SECONDS: Final = 60.0
"""How long an accepted dry run of a Job answers for others of the same reuse key (the same
template in the same namespace). Long enough that a burst of creates asks once a minute, short
enough that a changed admission policy (Pod Security labels, a quota, a webhook) is asked
again soon; an accepted CronWorkflow is not asked again when its namespace's policy changes
anyway."""
TEMPLATE_MEMORY: Final = 1024
"""Reuse keys remembered at most (the least recently accepted go first)."""


@dataclasses.dataclass
class Result:
    """What one cycle decided: a status patch, perhaps an error, perhaps a time to look again."""

    status: JsonDict
    error: QStashOperatorError | None = None
    retry_after: float | None = None  # seconds; for a handover due later, or a transient error

    @property
    def permanent(self) -> bool:
        return self.error is not None and not isinstance(self.error, TransientError)


class AcceptedTemplates:
    """Dry runs the API server accepted lately, by reuse key (``CheckJobTemplate.reuse_key``).

    An acceptance answers for ``seconds`` from the dry run that earned it; a reuse does not
    prolong it, so each key is asked again at least that often while CronWorkflows keep coming.
    A rejection is never remembered (the next object asks for itself)."""

    def __init__(
        self, *, seconds: float = TEMPLATE_REUSE_SECONDS, size: int = TEMPLATE_MEMORY
    ) -> None:
        self._for = timedelta(seconds=seconds)
        self._size = size
        self._accepted: OrderedDict[str, datetime] = OrderedDict()

    def __len__(self) -> int:
        return len(self._accepted)

    def answers(self, key: str, now: datetime) -> bool:
        """Whether an acceptance of ``key`` answers for a dry run at ``now``."""
        at = self._accepted.get(key)
        if at is None:
            return False
        if timedelta(0) <= now - at < self._for:
            return True
        del self._accepted[key]  # expired, or from a clock that went back since
        return False

    def accepted(self, key: str, now: datetime) -> None:
        self._accepted[key] = now
        self._accepted.move_to_end(key)
        while len(self._accepted) > self._size:
            self._accepted.popitem(last=False)


def context_from(settings: Settings) -> reconcile.Context:
    """What the plans need to know of the settings."""
    return reconcile.Context(
        cluster_name=settings.cluster_name,
        cluster_default=settings.backend,
        qstash_problem=settings.qstash_problem(),
        public_url=settings.public_url,
        has_qstash_token=settings.qstash.token is not None,
        finalizer_timeout=timedelta(seconds=settings.finalizer_timeout_seconds),
    )


def _name(body: JsonDict) -> str:
    meta = body.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def _owned_by(obj: JsonDict, uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid for ref in refs)


class Reconciler:
    def __init__(
        self,
        *,
        settings: Settings,
        kube: Kube,
        qstash: QStashSchedules | None,
        metrics: OperatorMetrics,
    ) -> None:
        self._context = context_from(settings)
        self._kube = kube
        self._qstash = qstash
        self._metrics = metrics
        self._templates = AcceptedTemplates()

    # -- the three cycles -----------------------------------------------------------------

    async def reconcile(self, body: JsonDict, *, now: datetime) -> Result:
        done = await self._carry_out(body, reconcile.plan(body, self._context, now=now), now=now)
        if done.result is not None:
            self._metrics.reconciles.labels(result=done.result).inc()
        if done.switch_to is not None:
            self._metrics.backend_switches.labels(to=done.switch_to.value).inc()
        return Result(done.status, error=done.error, retry_after=done.requeue_after)

    async def refresh(self, body: JsonDict, *, now: datetime) -> Result:
        """The periodic look (see ``domain.reconcile.plan_refresh``)."""
        planned = reconcile.plan_refresh(body, self._context, now=now)
        done = await self._carry_out(body, planned, now=now)
        return Result(done.status, error=done.error, retry_after=done.requeue_after)

    async def finalize(self, body: JsonDict, *, now: datetime) -> None:
        """The CronWorkflow is being deleted; raises a TransientError while kopf should retry."""
        planned = reconcile.plan_finalize(body, self._context, now=now)
        done = await self._carry_out(body, planned, now=now)
        if isinstance(done.error, TransientError):
            raise done.error

    # -- carrying a plan out ----------------------------------------------------------------

    async def _carry_out(
        self, body: JsonDict, plan: ReconcilePlan, *, now: datetime
    ) -> ReconcilePlan:
        """Run the steps in order; when one fails, run what the domain says to do instead."""
        for _ in range(reconcile.MAX_PLANS_PER_CYCLE):
            for index, step in enumerate(plan.steps):
                try:
                    await self._do(body, step, now=now)
                except QStashOperatorError as exc:
                    logger.debug("%s: %s failed: %s", _name(body), type(step).__name__, exc)
                    plan = reconcile.after_failure(plan, index, exc, now=now)
                    break
            else:
                return plan
        raise RuntimeError(
            f"reconciling {_name(body)} made more than "
            f"{reconcile.MAX_PLANS_PER_CYCLE} plans; domain.reconcile promises it never does"
        )

    async def _do(self, body: JsonDict, step: Step, *, now: datetime) -> None:
        match step:
            case CheckJobTemplate(job=job, reuse_key=key):
                if key is not None and self._templates.answers(key, now):
                    return
                await self._kube.create_job(job, dry_run=True)
                if key is not None:
                    self._templates.accepted(key, now)
            case UpsertSchedule(schedule=desired):
                await self._call("upsert", self._client().upsert(desired))
            case PauseSchedule(schedule_id=schedule_id, paused=paused):
                operation = "pause" if paused else "resume"
                await self._call(operation, self._client().set_paused(schedule_id, paused))
            case DeleteSchedule(schedule_id=schedule_id):
                await self._call("delete", self._client().delete(schedule_id))
            case CreateCronJob(manifest=manifest):
                await self._kube.create_cronjob(manifest)
            case ReplaceCronJob(manifest=manifest, owner_uid=owner_uid):
                await self._replace_cronjob(manifest, owner_uid)
            case PutCronJob(manifest=manifest, owner_uid=owner_uid):
                try:
                    await self._replace_cronjob(manifest, owner_uid)
                except NotFoundError:
                    await self._kube.create_cronjob(manifest)
            case DeleteCronJob():
                await self._delete_cronjob(step)
            case SweepMarkerCronJobs():
                await self._sweep_markers(body, step, now=now)
            case AdoptJobs():
                await self._adopt_jobs(step)
            case PostEvent(event=event):
                await self._kube.post_event(
                    body,
                    type_=event.type,
                    reason=event.reason,
                    message=event.message,
                    now=now,
                    component=COMPONENT,
                )
            case _:
                assert_never(step)

    def _client(self) -> QStashSchedules:
        assert self._qstash is not None, "plans call QStash only when QSTASH_TOKEN is set"
        return self._qstash

    async def _call(self, operation: str, awaitable: Awaitable[T]) -> T:
        try:
            result = await awaitable
        except QStashOperatorError as exc:
            self._metrics.qstash_calls.labels(operation=operation, outcome=type(exc).__name__).inc()
            raise
        self._metrics.qstash_calls.labels(operation=operation, outcome="ok").inc()
        return result

    async def _replace_cronjob(self, manifest: JsonDict, owner_uid: str) -> None:
        meta = manifest["metadata"]
        existing = await self._kube.get_cronjob(meta["namespace"], meta["name"])
        if not _owned_by(existing, owner_uid):
            raise NotOwnedError(f"CronJob {meta['namespace']}/{meta['name']} has another owner")
        resource_version = existing["metadata"]["resourceVersion"]
        await self._kube.replace_cronjob(
            {**manifest, "metadata": {**meta, "resourceVersion": resource_version}}
        )

    async def _delete_cronjob(self, step: DeleteCronJob) -> None:
        try:
            existing = await self._kube.get_cronjob(step.namespace, step.name)
        except NotFoundError:
            return
        if _owned_by(existing, step.owner_uid):
            await self._kube.delete_cronjob(
                step.namespace,
                step.name,
                uid=(existing.get("metadata") or {}).get("uid"),
                orphan=step.orphan,
            )

    async def _sweep_markers(
        self, body: JsonDict, step: SweepMarkerCronJobs, *, now: datetime
    ) -> None:
        for cronjob in await self._kube.list_cronjobs(step.namespace, step.selector):
            meta = cronjob.get("metadata") or {}
            name = str(meta.get("name"))
            if (
                name in step.keep
                or meta.get("deletionTimestamp")
                or not _owned_by(cronjob, step.owner_uid)
            ):
                continue
            await self._kube.delete_cronjob(step.namespace, name, uid=meta.get("uid"))
            await self._kube.post_event(
                body,
                type_="Normal",
                reason=step.reason,
                message=step.said.replace(reconcile.NAME_SLOT, name),
                now=now,
                component=COMPONENT,
            )

    async def _adopt_jobs(self, step: AdoptJobs) -> None:
        for job in await self._kube.list_jobs(step.namespace, step.selector):
            if _owned_by(job, step.owner["uid"]):
                continue
            try:
                await self._kube.patch_job(
                    step.namespace,
                    job["metadata"]["name"],
                    {"metadata": {"ownerReferences": [step.owner]}},
                )
            except NotFoundError:
                continue
