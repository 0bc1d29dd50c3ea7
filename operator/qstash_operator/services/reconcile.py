"""Keep exactly one live schedule per CronWorkflow, on the right backend, and say so in status.

``Reconciler.reconcile(body, now)`` is the whole cycle for one object: validate, pick the backend,
apply the schedule there (only when its fingerprint changed), time a handover if the backend
changed, and compute the status. It returns a :class:`Result` (one status patch, an error to
surface, when to look again) instead of acting on kopf, so the kopf handlers stay thin and the
cycle can be tested without kopf.

``now`` is read once by the caller and passed down; every time in the result derives from it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from datetime import datetime
from typing import Any, Final

from qstash_operator.adapters.kube import Kube
from qstash_operator.adapters.operator_metrics import OperatorMetrics
from qstash_operator.adapters.qstash_api import QStashSchedules
from qstash_operator.domain import backend as backend_rules
from qstash_operator.domain import builders, conditions, cron, model, naming, runs, vocabulary
from qstash_operator.domain.conditions import Condition
from qstash_operator.domain.errors import (
    ApiRejectedError,
    ForbiddenError,
    InvalidSpecError,
    KubernetesUnavailableError,
    NotFoundError,
    QStashAuthError,
    QStashOperatorError,
    QStashRateLimitedError,
    QStashRejectedError,
    QStashUnavailableError,
    TransientError,
)
from qstash_operator.domain.model import Backend, CronWorkflow, JsonDict
from qstash_operator.settings import Settings

logger = logging.getLogger(__name__)

COMPONENT: Final = "qstash-operator"


@dataclasses.dataclass
class Result:
    """What one cycle decided: a status patch, perhaps an error, perhaps a time to look again."""

    status: JsonDict
    error: QStashOperatorError | None = None
    retry_after: float | None = None  # seconds; for a handover due later, or a transient error

    @property
    def permanent(self) -> bool:
        return self.error is not None and not isinstance(self.error, TransientError)


class QStashAvailability:
    """Whether this process can use QStash: settings decide, QStash may overrule at run time.

    If QStash answers an upsert with "invalid destination url" (a public URL that resolves to a
    private address, which the text check cannot see), QStash is unusable for every CronWorkflow,
    not just one: remember it, log it once, and let ``Auto`` fall back to CronJobs.
    """

    def __init__(self, settings: Settings) -> None:
        self._configured_problem = settings.qstash_problem()
        self._runtime_problem: str | None = None

    @property
    def problem(self) -> str | None:
        return self._configured_problem or self._runtime_problem

    def refuse(self, message: str) -> None:
        if self._runtime_problem is None:
            logger.error(
                "QStash refused the webhook destination (%s); CronWorkflows with backend Auto fall "
                "back to CronJobs until the operator restarts with a reachable WEBHOOK_PUBLIC_URL",
                message,
            )
        self._runtime_problem = f"QStash refused the destination: {message}"


QSTASH_HEADER_FIELDS: Final = (
    ("upstash-retry-delay", "spec.qstash.retryDelay"),
    ("upstash-retries", "spec.qstash.retries"),
    ("upstash-timeout", "spec.qstash.timeout"),
    ("upstash-cron", "spec.schedule"),
    ("cron expression", "spec.schedule"),
)
"""QStash names the request header it refused (wire reference 2.1, 2.6); users know the field."""


def rejected_field(message: str) -> str:
    """The spec field behind the header QStash's refusal names ("spec" when it names none)."""
    lowered = message.lower()
    for header, field in QSTASH_HEADER_FIELDS:
        if header in lowered:
            return field
    return "spec"


def fingerprint(manifest: JsonDict) -> str:
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


class Reconciler:
    def __init__(
        self,
        *,
        settings: Settings,
        kube: Kube,
        qstash: QStashSchedules | None,
        availability: QStashAvailability,
        metrics: OperatorMetrics,
    ) -> None:
        self._settings = settings
        self._kube = kube
        self._qstash = qstash
        self._availability = availability
        self._metrics = metrics

    # -- the cycle ----------------------------------------------------------------------

    async def reconcile(self, body: JsonDict, *, now: datetime) -> Result:
        status = dict(body.get("status") or {})
        generation = int((body.get("metadata") or {}).get("generation") or 0)
        try:
            cw = model.parse(body)
            await self._dry_run_job(cw)
        except InvalidSpecError as exc:
            return await self._invalid(body, status, exc, now=now, generation=generation)
        except TransientError as exc:  # the API server could not answer the dry run
            return await self._transient(body, status, exc, now=now, generation=generation)

        decision = backend_rules.decide(
            cw.spec.backend,
            cluster_default=self._settings.backend,
            qstash_problem=self._availability.problem,
        )
        if decision.backend is None:
            await self._event(body, "Warning", decision.reason, decision.message, now)
            patch = self._conditions_patch(
                status,
                now=now,
                generation=generation,
                updates=[
                    Condition("SpecValid", True, vocabulary.REASON_SPEC_VALID, "the spec is valid"),
                    Condition("ScheduleSynced", False, decision.reason, decision.message),
                    Condition("Ready", False, decision.reason, decision.message),
                ],
            )
            error = InvalidSpecError("spec.backend", decision.message, "", reason=decision.reason)
            return Result(patch, error=error)

        try:
            return await self._apply(body, cw, status, decision, now=now, generation=generation)
        except QStashRejectedError as exc:
            if (
                "destination" in str(exc).lower()
                and cw.spec.backend is not model.BackendChoice.QSTASH
            ):
                self._availability.refuse(str(exc))
                return await self.reconcile(body, now=now)
            field = rejected_field(str(exc))
            spec_error = InvalidSpecError(
                field,
                f"QStash rejected the schedule: {exc}",
                f"Fix {field}." if field != "spec" else "Fix the field QStash names.",
                reason=vocabulary.REASON_QSTASH_REJECTED,
            )
            return await self._invalid(body, status, spec_error, now=now, generation=generation)
        except TransientError as exc:
            return await self._transient(body, status, exc, now=now, generation=generation)

    async def refresh(self, body: JsonDict, *, now: datetime) -> Result:
        """The periodic look: finish a due handover, keep ``nextScheduleTime`` current.

        Calls no backend unless a handover is due, so it is cheap for thousands of objects.
        """
        status = dict(body.get("status") or {})
        patch: JsonDict = {}
        try:
            cw = model.parse(body)
        except InvalidSpecError:
            return Result(patch)
        handover = status.get("handover") or {}
        remove_after = runs.parse_time(handover.get("removeAfter"))
        if remove_after is not None and remove_after <= now:
            try:
                await self._retire(body, cw, Backend(handover["from"]), now=now)
            except TransientError as exc:
                return Result(patch, error=exc, retry_after=exc.retry_after)
            patch["handover"] = None
        elif remove_after is not None:
            return Result(patch, retry_after=(remove_after - now).total_seconds())
        next_time = self._next_time(cw, now)
        if status.get("nextScheduleTime") != next_time:
            patch["nextScheduleTime"] = next_time
        return Result(patch)

    async def finalize(self, body: JsonDict, *, now: datetime) -> None:
        """The CronWorkflow is being deleted: remove its schedule on every backend it may have.

        The CronJob is owned and would be garbage-collected anyway; deleting it here makes the
        schedule stop at once rather than when the collector gets to it. A schedule that does not
        exist counts as deleted. Without a QStash token a QStash schedule cannot be deleted; that
        is said in a log line (the webhook refuses its deliveries: the CronWorkflow is gone).
        """
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        await self._delete_owned_cronjob(namespace, name, str(meta.get("uid")))
        schedule_id = naming.schedule_id(self._settings.cluster_name, namespace, name)
        status = body.get("status") or {}
        used_qstash = status.get("backend") == Backend.QSTASH.value or (
            (status.get("handover") or {}).get("from") == Backend.QSTASH.value
        )
        if self._qstash is None:
            if used_qstash:
                logger.warning(
                    "cannot delete QStash schedule %s: QSTASH_TOKEN is not set; delete it in the "
                    "QStash console",
                    schedule_id,
                )
            return
        await self._call("delete", self._qstash.delete(schedule_id))

    # -- steps --------------------------------------------------------------------------

    async def _dry_run_job(self, cw: CronWorkflow) -> None:
        """Ask the API server whether the Job template would be accepted (server-side dry run)."""
        job = builders.build_job(
            cw,
            name=naming.manual_job_name(cw.name, "dry-run"),
            trigger=vocabulary.TRIGGER_MANUAL,
            backend=None,
        )
        try:
            await self._kube.create_job(job, dry_run=True)
        except ApiRejectedError as exc:
            raise InvalidSpecError(
                "spec.jobTemplate",
                f"the API server would reject the Job: {exc.detail}",
                "Fix the Job template (try `kubectl create --dry-run=server -f job.yaml`).",
                reason=vocabulary.REASON_INVALID_JOB_TEMPLATE,
            ) from exc
        except NotFoundError as exc:  # the namespace is being deleted
            raise KubernetesUnavailableError(str(exc)) from exc

    async def _apply(
        self,
        body: JsonDict,
        cw: CronWorkflow,
        status: JsonDict,
        decision: backend_rules.BackendDecision,
        *,
        now: datetime,
        generation: int,
    ) -> Result:
        target = decision.backend
        assert target is not None
        current = _backend(status.get("backend"))
        handover = status.get("handover") or {}
        patch: JsonDict = {}
        synced_reason = vocabulary.REASON_SCHEDULE_UP_TO_DATE

        if target is Backend.QSTASH:
            desired = builders.build_schedule(
                cw, cluster=self._settings.cluster_name, public_url=self._require_public_url()
            )
            applied = desired.fingerprint()
            if current is not Backend.QSTASH or status.get("appliedScheduleHash") != applied:
                await self._upsert(desired)
                synced_reason = vocabulary.REASON_SCHEDULE_UPSERTED
                await self._event(
                    body,
                    "Normal",
                    synced_reason,
                    f"QStash schedule {desired.schedule_id} set to {desired.cron!r}"
                    + (" (paused)" if desired.paused else ""),
                    now,
                )
            patch.update(scheduleId=desired.schedule_id, cronJobName=None)
        else:
            manifest = builders.build_cronjob(cw)
            applied = fingerprint(manifest)
            if current is not Backend.CRONJOB or status.get("appliedScheduleHash") != applied:
                synced_reason = await self._put_cronjob(manifest)
                await self._event(
                    body,
                    "Normal",
                    synced_reason,
                    f"CronJob {manifest['metadata']['name']} runs {cw.spec.schedule.expression!r} "
                    f"in {cw.spec.time_zone}" + (" (suspended)" if cw.spec.suspend else ""),
                    now,
                )
            patch.update(cronJobName=manifest["metadata"]["name"], scheduleId=None)

        retry_after: float | None = None
        if current is not None and current is not target:
            # A switch: the new schedule exists now; the old one stays until the shared tick.
            remove_after = backend_rules.handover_deadline(cw.spec.schedule, now=now, to=target)
            message = (
                f"backend changes from {current.value} to {target.value} ({decision.message}); "
                f"the {current.value} schedule stays until {builders.rfc3339(remove_after)} so "
                "the tick in between runs once"
            )
            if cw.spec.suspend:
                await self._retire(body, cw, current, now=now)
                patch["handover"] = None
            else:
                patch["handover"] = {
                    "from": current.value,
                    "removeAfter": builders.rfc3339(remove_after),
                }
                retry_after = (remove_after - now).total_seconds()
            self._metrics.backend_switches.labels(to=target.value).inc()
            await self._event(body, "Normal", vocabulary.REASON_BACKEND_CHANGED, message, now)
        elif handover.get("from") == target.value:
            patch["handover"] = None  # switched back before the old one was retired: keep it
        elif handover:
            pending = runs.parse_time(handover.get("removeAfter"))
            if pending is not None and pending > now:
                retry_after = (pending - now).total_seconds()
        elif current is None and decision.reason == vocabulary.REASON_FALLBACK_TO_CRONJOB:
            await self._event(body, "Normal", decision.reason, decision.message, now)

        applied_schedule = cw.spec.schedule.qstash_cron()
        patch.update(
            backend=target.value,
            appliedScheduleHash=applied,
            appliedSchedule=applied_schedule,
            nextScheduleTime=self._next_time(cw, now),
            observedGeneration=generation,
        )
        if status.get("appliedSchedule") != applied_schedule or not status.get("scheduleSince"):
            patch["scheduleSince"] = builders.rfc3339(now)
        ready = (
            Condition(
                "Ready",
                True,
                vocabulary.REASON_SUSPENDED,
                "suspended: no runs until spec.suspend is false",
            )
            if cw.spec.suspend
            else Condition(
                "Ready",
                True,
                vocabulary.REASON_READY,
                f"scheduled on {target.value}: {decision.message}",
            )
        )
        patch["conditions"] = conditions.merge(
            status.get("conditions"),
            [
                Condition("SpecValid", True, vocabulary.REASON_SPEC_VALID, "the spec is valid"),
                Condition(
                    "ScheduleSynced",
                    True,
                    synced_reason,
                    f"{target.value} schedule matches the spec",
                ),
                ready,
            ],
            now=now,
            generation=generation,
        )
        self._metrics.reconciles.labels(result=synced_reason).inc()
        return Result(patch, retry_after=retry_after)

    def _require_public_url(self) -> str:
        url = self._settings.public_url
        assert url is not None, "QStash is only chosen when WEBHOOK_PUBLIC_URL is set"
        return url

    async def _upsert(self, desired: builders.DesiredSchedule) -> None:
        assert self._qstash is not None, "QStash is only chosen when QSTASH_TOKEN is set"
        await self._call("upsert", self._qstash.upsert(desired))
        # Upsert semantics for the paused flag are undocumented (wire reference 2.5): set it.
        await self._call(
            "pause" if desired.paused else "resume",
            self._qstash.set_paused(desired.schedule_id, desired.paused),
        )

    async def _call(self, operation: str, awaitable: Any) -> Any:
        try:
            result = await awaitable
        except QStashOperatorError as exc:
            self._metrics.qstash_calls.labels(operation=operation, outcome=type(exc).__name__).inc()
            raise
        self._metrics.qstash_calls.labels(operation=operation, outcome="ok").inc()
        return result

    async def _put_cronjob(self, manifest: JsonDict) -> str:
        meta = manifest["metadata"]
        try:
            existing = await self._kube.get_cronjob(meta["namespace"], meta["name"])
        except NotFoundError:
            await self._kube.create_cronjob(manifest)
            return vocabulary.REASON_CRONJOB_CREATED
        owners = (existing.get("metadata") or {}).get("ownerReferences") or []
        if not any(owner.get("uid") == meta["ownerReferences"][0]["uid"] for owner in owners):
            raise InvalidSpecError(
                "metadata.name",
                f"a CronJob named {meta['name']} already exists and is not owned by this "
                "CronWorkflow",
                "Rename the CronWorkflow or delete the other CronJob.",
            )
        # Replace rather than merge-patch: a merge patch would keep template keys the user removed.
        replacement = {
            **manifest,
            "metadata": {**meta, "resourceVersion": existing["metadata"]["resourceVersion"]},
        }
        await self._kube.replace_cronjob(replacement)
        return vocabulary.REASON_CRONJOB_UPDATED

    async def _delete_owned_cronjob(
        self, namespace: str, cronworkflow: str, owner_uid: str, *, orphan: bool = False
    ) -> None:
        """Delete the CronWorkflow's CronJob, and only if it really is its own."""
        name = naming.cronjob_name(cronworkflow)
        try:
            existing = await self._kube.get_cronjob(namespace, name)
        except NotFoundError:
            return
        meta = existing.get("metadata") or {}
        if any(ref.get("uid") == owner_uid for ref in meta.get("ownerReferences") or []):
            await self._kube.delete_cronjob(namespace, name, uid=meta.get("uid"), orphan=orphan)

    async def _adopt_jobs(self, cw: CronWorkflow) -> None:
        """Make the CronWorkflow the owner of Jobs its CronJob made, before the CronJob goes.

        Deleting a CronJob garbage-collects its Jobs: a running one would be killed and the
        history lost. Re-parented Jobs outlive the handover and still go with the CronWorkflow.
        """
        owner = builders.owner_reference(cw)
        selector = builders.label_selector(builders.selector_labels(cw))
        for job in await self._kube.list_jobs(cw.namespace, selector):
            refs = (job.get("metadata") or {}).get("ownerReferences") or []
            if any(ref.get("uid") == cw.uid for ref in refs):
                continue
            try:
                await self._kube.patch_job(
                    cw.namespace,
                    job["metadata"]["name"],
                    {"metadata": {"ownerReferences": [owner]}},
                )
            except NotFoundError:
                continue

    async def _retire(
        self, body: JsonDict, cw: CronWorkflow, old: Backend, *, now: datetime
    ) -> None:
        """Delete the previous backend's schedule after a handover."""
        if old is Backend.CRONJOB:
            # Adopt, delete orphaning, adopt again: a Job the CronJob made in between is kept too.
            await self._adopt_jobs(cw)
            await self._delete_owned_cronjob(cw.namespace, cw.name, cw.uid, orphan=True)
            await self._adopt_jobs(cw)
            what = f"CronJob {naming.cronjob_name(cw.name)}"
            reason = vocabulary.REASON_HANDOVER_COMPLETE
        elif self._qstash is not None:
            schedule_id = naming.schedule_id(self._settings.cluster_name, cw.namespace, cw.name)
            await self._call("delete", self._qstash.delete(schedule_id))
            what = f"QStash schedule {schedule_id}"
            reason = vocabulary.REASON_HANDOVER_COMPLETE
        else:
            schedule_id = naming.schedule_id(self._settings.cluster_name, cw.namespace, cw.name)
            await self._event(
                body,
                "Warning",
                vocabulary.REASON_QSTASH_SCHEDULE_LEFT_BEHIND,
                f"QStash schedule {schedule_id} could not be deleted: QSTASH_TOKEN is not set. "
                "Its deliveries are deduplicated by Job name; delete it in the QStash console.",
                now,
            )
            return
        await self._event(body, "Normal", reason, f"removed the previous backend's {what}", now)

    def _next_time(self, cw: CronWorkflow, now: datetime) -> str | None:
        if cw.spec.suspend:
            return None
        return builders.rfc3339(cron.next_tick(cw.spec.schedule, now))

    # -- failure paths ----------------------------------------------------------------------

    async def _invalid(
        self,
        body: JsonDict,
        status: JsonDict,
        exc: InvalidSpecError,
        *,
        now: datetime,
        generation: int,
    ) -> Result:
        await self._event(body, "Warning", exc.reason, str(exc), now)
        patch = self._conditions_patch(
            status,
            now=now,
            generation=generation,
            updates=[
                Condition("SpecValid", False, exc.reason, str(exc)),
                Condition("Ready", False, exc.reason, f"the spec cannot be served: {exc}"),
            ],
        )
        self._metrics.reconciles.labels(result=exc.reason).inc()
        return Result(patch, error=exc)

    async def _transient(
        self,
        body: JsonDict,
        status: JsonDict,
        exc: TransientError,
        *,
        now: datetime,
        generation: int,
    ) -> Result:
        reason = {
            QStashAuthError: vocabulary.REASON_QSTASH_AUTH_FAILED,
            QStashRateLimitedError: vocabulary.REASON_QSTASH_RATE_LIMITED,
            QStashUnavailableError: vocabulary.REASON_QSTASH_UNAVAILABLE,
            ForbiddenError: vocabulary.REASON_FORBIDDEN,
        }.get(type(exc), vocabulary.REASON_KUBERNETES_UNAVAILABLE)
        fix = {
            vocabulary.REASON_QSTASH_AUTH_FAILED: " Check QSTASH_TOKEN in the operator's Secret.",
            vocabulary.REASON_FORBIDDEN: " The operator's RBAC lacks a rule (see the chart).",
        }.get(reason, "")
        message = f"{exc}.{fix} Retrying in {int(exc.retry_after)}s."
        await self._event(body, "Warning", reason, message, now)
        patch = self._conditions_patch(
            status,
            now=now,
            generation=generation,
            updates=[
                Condition("ScheduleSynced", False, reason, message),
                Condition("Ready", False, reason, message),
            ],
        )
        self._metrics.reconciles.labels(result=reason).inc()
        return Result(patch, error=exc, retry_after=exc.retry_after)

    def _conditions_patch(
        self, status: JsonDict, *, now: datetime, generation: int, updates: list[Condition]
    ) -> JsonDict:
        return {
            "conditions": conditions.merge(
                status.get("conditions"), updates, now=now, generation=generation
            ),
            "observedGeneration": generation,
        }

    async def _event(
        self, body: JsonDict, type_: str, reason: str, message: str, now: datetime
    ) -> None:
        await self._kube.post_event(
            body, type_=type_, reason=reason, message=message, now=now, component=COMPONENT
        )


def _backend(value: Any) -> Backend | None:
    try:
        return Backend(value) if value else None
    except ValueError:
        return None
