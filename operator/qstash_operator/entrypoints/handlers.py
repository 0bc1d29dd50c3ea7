"""kopf handlers: thin. Read the clock once, call a service, write one status patch, map errors.

Handlers are registered on an explicit registry (:func:`build_registry`) so tests and the CLI
build the same operator without import-time side effects. Handler ids are persisted state in
kopf's progress annotations: renaming a handler is a migration.

Error mapping (the edge of the error hierarchy): ``InvalidSpecError`` and other permanent errors
→ ``kopf.PermanentError`` (no retry until the spec changes); ``TransientError`` →
``kopf.TemporaryError(delay=...)`` from ``domain.retry``: the error's hint, growing with kopf's
retry count for outages and rate limits, and spread so a QStash outage is not hammered in step.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final, cast

import kopf

from qstash_operator.adapters.kube import Kube
from qstash_operator.adapters.operator_metrics import OperatorMetrics
from qstash_operator.adapters.qstash_api import QStashSchedules
from qstash_operator.domain import parameters, reconcile, vocabulary
from qstash_operator.domain.errors import NotFoundError, QStashOperatorError, TransientError
from qstash_operator.domain.model import JsonDict
from qstash_operator.domain.projection import Projection
from qstash_operator.domain.retry import retry_delay
from qstash_operator.services.drift import DriftRepair
from qstash_operator.services.job_index import JobEvents
from qstash_operator.services.markers import MarkerRuns
from qstash_operator.services.observe import JobIndex, StatusMirror
from qstash_operator.services.periodic import Look, PeriodicLooks, Watched
from qstash_operator.services.reconcile import Reconciler, Result
from qstash_operator.services.runs import RunService
from qstash_operator.services.slots import SlotAudit
from qstash_operator.settings import Settings

logger = logging.getLogger(__name__)

RESOURCE: Final = (vocabulary.GROUP, vocabulary.VERSION, vocabulary.PLURAL)
REFRESH_SECONDS: Final = 30.0
"""How often each CronWorkflow's nextScheduleTime is recomputed and a due handover finished.
Pure computation unless something changed; 30 s keeps 1,000 objects well under 1 % CPU."""
KOPF_PREFIX: Final = f"kopf.{vocabulary.GROUP}"
WORKER_IDLE_SECONDS: Final = 1.0
"""How long a per-object worker waits for more events before giving its slot up. With a worker
limit of 50, kopf's default 5 s made a 1,000-object cold start take 102 s instead of 28 s (a
one-off sweep of the bench's cold start; the figures are in the commit that set this)."""
RUN_NOW: Final = {vocabulary.ANNOTATION_RUN_NOW: kopf.PRESENT}
DUE_FRACTION: Final = 0.9
"""A periodic job sharing an object's look counts as due once 90 % of its period has passed: a
look comes slightly late or early, and an exact comparison would skip every other tick."""
LIST_CHUNK: Final = 500
"""Objects per page of kopf's initial lists."""
MANAGED_KINDS: Final = ("cronjobs",)
"""The batch/v1 kinds kopf watches, only those carrying our managed-by label. Jobs (with the same
selector) are watched by the operator's own informer, not kopf (``services.job_index``)."""
MANAGED_SELECTOR: Final = f"{vocabulary.LABEL_MANAGED_BY}={vocabulary.MANAGED_BY}"
AUDIT_SECONDS: Final = 30.0
"""The slot audit's default period (``Settings.slot_audit_seconds``)."""


@dataclasses.dataclass
class OperatorServices:
    """Everything handlers need, built once at start and handed over through kopf's memo."""

    settings: Settings
    kube: Kube
    qstash: QStashSchedules | None
    reconciler: Reconciler
    drift: DriftRepair | None
    mirror: StatusMirror
    runs: RunService
    metrics: OperatorMetrics
    clock: Callable[[], datetime]
    audit: SlotAudit | None = None
    looks: PeriodicLooks | None = None
    """The one loop of every CronWorkflow's periodic jobs (:func:`periodic_look`)."""
    job_index: JobIndex | None = None
    """The operator's Job index once it is synced (:mod:`qstash_operator.services.job_index`)."""
    markers: MarkerRuns | None = None
    """Marker Jobs being run as their ticks' Jobs (while this replica leads)."""


def _services(memo: Any) -> OperatorServices:
    services: OperatorServices = memo.services
    return services


def _backoff(exc: TransientError, retry: int) -> float:
    """The domain's retry delay (growing for outages and rate limits, spread so objects that
    failed together do not retry together), with this retry's random draw."""
    return retry_delay(exc, retry, random.random())  # noqa: S311  # spreading load, not a secret


def _due(memo: Any, field: str, period: float, moment: float, *, tick: float) -> bool:
    """Whether a periodic job of one object, looked at every ``tick`` seconds, is due at
    ``moment`` (monotonic); remembered in ``memo`` (the loop's entry) when it is. The first look
    comes ``tick`` after the watch first delivered the object, so each job first runs ``period``
    after that, as it would on a timer of its own."""
    last: float | None = getattr(memo, field, None)
    if last is None:
        last = moment - tick
    if moment - last < period * DUE_FRACTION:
        setattr(memo, field, last)
        return False
    setattr(memo, field, moment)
    return True


def _raise_for(result: Result, retry: int) -> None:
    error = result.error
    if error is None:
        return
    if isinstance(error, TransientError):
        raise kopf.TemporaryError(str(error), delay=_backoff(error, retry))
    raise kopf.PermanentError(str(error))


def look_tick(audit_seconds: float = AUDIT_SECONDS) -> float:
    """How often the periodic loop looks at each CronWorkflow: often enough for both jobs."""
    return min(REFRESH_SECONDS, audit_seconds)


def periodic_look(services: OperatorServices, *, audit_seconds: float = AUDIT_SECONDS) -> Look:
    """Each CronWorkflow's two periodic jobs, for the one loop over all of them
    (``services.periodic``; a kopf timer each was 10,000 tasks and 10,000 held bodies at 10,000
    objects): every ``REFRESH_SECONDS`` the nextScheduleTime is recomputed and a due handover
    finished; every ``audit_seconds`` the slot audit runs (``services.slots``), from the watch
    caches, no list. The loop's entry remembers when each last ran for this object."""
    tick = look_tick(audit_seconds)

    async def look(held: Watched, moment: float) -> None:
        body = held.body
        meta = body["metadata"]
        key = (str(meta.get("namespace")), str(meta.get("name")))
        now = services.clock()
        if _due(held, "refreshed_at", REFRESH_SECONDS, moment, tick=tick):
            result = await services.reconciler.refresh(dict(body), now=now)
            if result.status:
                try:
                    await services.kube.patch_cronworkflow(
                        *key, {"status": result.status}, status=True
                    )
                except NotFoundError:
                    return
                except TransientError as exc:
                    logger.warning("refresh of %s/%s not written: %s", *key, exc)
            if isinstance(result.error, TransientError):
                logger.warning("refresh of %s failed: %s", meta.get("name"), result.error)
        index = services.job_index
        # The audit is not due while there is no index yet (the Jobs are still being listed: an
        # audit then would find every recent slot without its Job), nor while the tick just due
        # is being recorded (the webhook's deferred write brings its slot with it; at 2,000
        # deliveries the audit wrote the same slot first for about half the CronWorkflows, and
        # the record then conflicted; after reconcile.RECORD_GRACE the audit goes ahead).
        if (
            services.audit is not None
            and index is not None
            and not reconcile.tick_being_recorded(body.get("status") or {}, now)
            and _due(held, "audited_at", audit_seconds, moment, tick=tick)
        ):
            jobs = [entry.slot for entry in index.get(key, ())]
            try:
                await services.audit.audit(dict(body), jobs, now=now)
            except TransientError as exc:
                logger.info("slot audit of %s/%s deferred: %s", *key, exc)

    return look


class CronWorkflowDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf's diff base, built for CronWorkflows only.

    kopf builds the essence of every object of every kind it watches (a deep copy of the body)
    on every event, whether or not the kind has a change-detecting handler to use it. Only
    CronWorkflows have one (``on.create``/``on.update``/``on.resume``); CronJobs have an
    ``on.event`` handler, which never reads it. In a minute's burst of 500 Job events (when kopf
    still watched Jobs) that copy was about an eighth of the operator's samples (py-spy), so for
    every other kind the essence is empty: what kopf would compute from it (a diff) is never
    looked at."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        api_version = str(body.get("apiVersion", ""))
        if not api_version.startswith(f"{vocabulary.GROUP}/"):
            return cast(kopf.BodyEssence, {})
        return super().build(body=body, extra_fields=extra_fields)


def configure_kopf(settings: kopf.OperatorSettings, ours: Settings) -> None:
    """kopf's settings for this operator (the startup handler applies them)."""
    # Progress and the last-handled spec live in annotations (the structural schema would
    # prune unknown status fields). Their prefix must differ from ours: kopf hides annotations
    # under its storage prefix from diffs, and run-now is one of ours that must be seen.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = CronWorkflowDiffBase(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{vocabulary.GROUP}/finalizer"
    # Our events use one vocabulary (domain.vocabulary); kopf's "Handler succeeded" posts
    # would only add noise next to them.
    settings.posting.enabled = False
    # Watches: reconnect well before intermediaries drop an idle stream (kopf issue #232).
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    # The initial lists in pages (client-go's informers use 500 too): at a cold start over
    # 10,000 CronWorkflows one unpaged list is a single response of 100+ MiB to parse at once.
    settings.watching.chunk_size = LIST_CHUNK
    # Bounded workers: a cold start over many objects otherwise runs every handler at once
    # (memory grows with them, and they slow each other down). An idle worker leaves after
    # WORKER_IDLE_SECONDS instead of kopf's 5 s, so the slot goes to a waiting object.
    settings.queueing.worker_limit = ours.worker_limit
    settings.queueing.idle_timeout = WORKER_IDLE_SECONDS
    # CronJobs: only ours, filtered by the API server. Every handler filters on these labels
    # anyway, but kopf applies handler filters after it has parsed the event, so without this
    # the operator would parse every CronJob in the cluster.
    for plural in MANAGED_KINDS:
        settings.watching.label_selectors["batch", plural] = MANAGED_SELECTOR


def build_registry() -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(memo: kopf.Memo, **kwargs: Any) -> kopf.ConnectionInfo | None:
        in_pod = kopf.login_with_service_account(memo=memo, **kwargs)
        if in_pod is None:
            return kopf.login_with_kubeconfig(memo=memo, **kwargs)
        kube = memo.services.kube
        if kube.in_cluster:
            # kopf names the API server https://kubernetes.default.svc, which only cluster DNS
            # resolves; talk to the address our own client uses (KUBERNETES_SERVICE_HOST/PORT,
            # client-go's rule), so one process never splits across two endpoints.
            return dataclasses.replace(in_pod, server=kube.server)
        return in_pod

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        configure_kopf(settings, _services(memo).settings)

    @kopf.on.resume(*RESOURCE, id="schedule", registry=registry)
    @kopf.on.create(*RESOURCE, id="schedule", registry=registry)
    @kopf.on.update(*RESOURCE, id="schedule", field="spec", registry=registry)
    async def schedule(
        body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int, **_: Any
    ) -> None:
        services = _services(memo)
        now = services.clock()
        with services.metrics.reconcile_seconds.time():
            result = await services.reconciler.reconcile(dict(body), now=now)
        patch.status.update(result.status)
        _raise_for(result, retry)

    @kopf.on.delete(*RESOURCE, id="unschedule", registry=registry)
    async def unschedule(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
        services = _services(memo)
        try:
            await services.reconciler.finalize(dict(body), now=services.clock())
        except TransientError as exc:
            raise kopf.TemporaryError(str(exc), delay=_backoff(exc, retry)) from exc
        if services.audit is not None:
            services.audit.forget(str(body.meta.get("namespace")), str(body.meta.get("name")))

    @kopf.on.resume(*RESOURCE, id="run_now", annotations=RUN_NOW, registry=registry)
    @kopf.on.create(*RESOURCE, id="run_now", annotations=RUN_NOW, registry=registry)
    @kopf.on.update(*RESOURCE, id="run_now", annotations=RUN_NOW, registry=registry)
    async def run_now(
        body: kopf.Body, meta: kopf.Meta, patch: kopf.Patch, memo: kopf.Memo, retry: int, **_: Any
    ) -> None:
        """``kubectl annotate qcwf x qstash-operator.dev/run-now=<request id>``: one manual Job.

        The value is the request's id, not a switch: the Job's name derives from the uid and the
        value, so a crash between creating the Job and clearing the annotation cannot make a
        second Job, and annotating again with a value whose Job still exists runs nothing. A new
        run takes a new value (``"$(date +%s)"``).
        """
        services = _services(memo)
        annotations = meta.get("annotations", {})
        value = str(annotations.get(vocabulary.ANNOTATION_RUN_NOW, ""))
        companions = (
            vocabulary.ANNOTATION_RUN_NOW_PARAMETERS,
            vocabulary.ANNOTATION_RUN_NOW_REASON,
        )
        try:
            overrides = parameters.from_annotation(
                annotations.get(vocabulary.ANNOTATION_RUN_NOW_PARAMETERS),
                field=f"metadata.annotations[{vocabulary.ANNOTATION_RUN_NOW_PARAMETERS}]",
            )
            result = await services.runs.run_manual(
                namespace=str(meta["namespace"]),
                name=str(meta["name"]),
                requested_by="annotation:" + vocabulary.ANNOTATION_RUN_NOW,
                seed=f"{meta.get('uid')}/{value}",
                now=services.clock(),
                overrides=overrides,
                reason=annotations.get(vocabulary.ANNOTATION_RUN_NOW_REASON) or None,
            )
        except TransientError as exc:
            raise kopf.TemporaryError(str(exc), delay=_backoff(exc, retry)) from exc
        except QStashOperatorError as exc:  # permanent: the CronWorkflow cannot run now
            services.metrics.manual_runs.labels(outcome="error").inc()
            for annotation in (vocabulary.ANNOTATION_RUN_NOW, *companions):
                patch.metadata.annotations[annotation] = None
            raise kopf.PermanentError(str(exc)) from exc
        services.metrics.manual_runs.labels(outcome=result.outcome.value).inc()
        for annotation in (vocabulary.ANNOTATION_RUN_NOW, *companions):
            patch.metadata.annotations[annotation] = None

    managed = {vocabulary.LABEL_MANAGED_BY: vocabulary.MANAGED_BY}

    @kopf.on.event(*RESOURCE, id="cronworkflow_event", registry=registry)
    async def cronworkflow_event(
        body: kopf.Body, memo: kopf.Memo, type: str | None, **_: Any
    ) -> None:
        """The periodic loop and the mirror hold the latest projection the watch delivered
        (one compact copy, shared): they decide from it instead of reading the CronWorkflow."""
        services = _services(memo)
        deleted = type == "DELETED"
        projection = Projection.of(dict(body))
        if services.looks is not None:
            services.looks.seen(projection, deleted=deleted)
        services.mirror.cronworkflow_seen(projection, deleted=deleted, clock=services.clock)
        services.metrics.mirror_cached.set(services.mirror.cached)

    @kopf.on.event("batch", "v1", "cronjobs", id="cronjob_event", labels=managed, registry=registry)
    async def cronjob_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        services = _services(memo)
        try:
            await services.mirror.cronjob_changed(dict(body), now=services.clock())
        except TransientError as exc:
            logger.info("status mirror for CronJob %s deferred: %s", body.meta.get("name"), exc)

    return registry


def job_events(services: OperatorServices) -> JobEvents:
    """What each event of a Job of ours does, from the operator's Job watch
    (:mod:`qstash_operator.services.job_index`; ``event`` None: listed): the status mirror
    gathers it, and a marker Job of an entry's CronJob (``spec.schedules`` on the CronJob
    backend) is run as its tick's Job (``services.markers``; on its arrival, or listed on start
    if it came while we were down)."""

    def seen(job: JsonDict, event: str | None) -> None:
        # Called from the Job watch's loop: a failure here is logged and the watch goes on (as
        # kopf logged a failing handler), never ending the watch and freezing the index.
        try:
            services.mirror.job_changed_soon(job, clock=services.clock)
            labels = (job.get("metadata") or {}).get("labels") or {}
            if labels.get(vocabulary.LABEL_TICK_MARKER) == "true" and services.markers is not None:
                services.markers.seen(job, event=event)
        except Exception:
            name = (job.get("metadata") or {}).get("name")
            logger.exception("Job %s: its %s event was not handled", name, event or "listed")

    return seen


def use_job_index(services: OperatorServices, index: JobIndex | None) -> None:
    """The slot audit and the status mirror read ``index`` from now on (None: there is none,
    leadership was lost; the mirror lists Jobs and the audit waits)."""
    services.job_index = index
    services.mirror.use_index(index)
