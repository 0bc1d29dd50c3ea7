"""Turn one tick (a QStash delivery) or one manual request into at most one Job.

Shared by the webhook (deliveries, the trigger endpoint) and the operator (the ``run-now``
annotation), so every Job is made by one path: read the CronWorkflow and its live Jobs, let
:mod:`qstash_operator.domain.runs` decide, then act through the Kubernetes adapter.

Exactly-once, and why it holds:

- the tick's Job name ``<name>-<unix minutes>`` is the lock: two replicas, a QStash retry after a
  lost response, or the fallback CronJob during a handover all race for one name, and the API
  server lets one create win (``AlreadyExists`` is a duplicate, answered 200);
- the message id on the Job catches a redelivered message even when its tick would be derived
  differently the second time;
- ``status.lastScheduleTime`` only moves forward after a create, so a tick whose Job was already
  pruned by the history limits is not run again; the record is a conditional write too (decided
  again from a fresh read on a conflict), so a stale read cannot move it back or drop another
  run's reservation, and it sets ``nextScheduleTime`` to the tick after the one just run;
- for ``Forbid`` and ``Replace`` the decision is *reserved* with a conditional status write
  (``metadata.resourceVersion`` precondition) before the Job is created, so a manual run racing a
  tick cannot both see "nothing active": the loser re-reads and decides again. Under ``Replace``
  the loser then finds a reservation whose Job does not exist yet, and has nothing to delete:
  it raises ``RunInFlightError`` (a 503 for QStash to retry) rather than run beside it.

The hot path (the webhook): given :class:`RunReads` (watch-fed caches) and a
:class:`RunRecorder`, a delivery's first attempt decides from the caches and, under ``Allow``,
makes one API call, the Job create (its name is still the lock, so a stale cache can cost a
duplicate answer, never a duplicate Job). The status record, the event and the history pruning
are handed to the recorder, which writes them after the answer, coalesced per CronWorkflow and
still conditional. A CronWorkflow missing from the cache, or with another uid, is read from the
API server; so is everything on a retry after a lost race. Under ``Forbid``/``Replace``, a Job
that ``status.active`` names but the Job cache has not seen yet sends the Job list to the API
server too, so a replica whose Job watch lags cannot see "nothing active".
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Final, Protocol

from qstash_operator.adapters.kube import Kube
from qstash_operator.domain import builders, model, runs, vocabulary
from qstash_operator.domain.errors import (
    AlreadyExistsError,
    ApiRejectedError,
    ConflictError,
    InvalidSpecError,
    NotFoundError,
    PermanentDeliveryError,
    QuotaExceededError,
)
from qstash_operator.domain.model import Backend, CronWorkflow, JsonDict
from qstash_operator.domain.runs import JobView, Outcome, RunPlan
from qstash_operator.services.status_writes import write_status

logger = logging.getLogger(__name__)

MAX_RESERVATION_ATTEMPTS: Final = 5
"""Conditional status writes lost to concurrent writers before giving up (then the caller answers
503 and QStash retries). Five covers a manual run, a tick and the operator writing at once."""


class RunObserver(Protocol):
    """Where outcomes are counted (metrics); the webhook and operator pass their own."""

    def observed(self, outcome: Outcome, *, seconds: float | None) -> None: ...


class RunReads(Protocol):
    """Watch-fed copies of the CronWorkflows and their Jobs (the webhook's caches); None where
    a copy cannot answer (not synced yet, over its bound, another namespace)."""

    def cronworkflow(self, namespace: str, name: str) -> JsonDict | None: ...

    def jobs(self, namespace: str, uid: str) -> list[JobView] | None: ...

    def job_created(self, job: JsonDict) -> None:
        """A Job this process just created, so the next decision sees it before its event."""


class RunRecorder(Protocol):
    """Writes a delivery's status record, event and pruning after the answer."""

    def record(
        self, body: JsonDict, cw: CronWorkflow, created: JobView, *, tick: datetime | None
    ) -> None: ...

    def later(self, work: Callable[[], Awaitable[None]]) -> None: ...


class _NoObserver:
    def observed(self, outcome: Outcome, *, seconds: float | None) -> None:
        return None


@dataclasses.dataclass(frozen=True)
class _Request:
    """The Idempotency-Key a manual run was asked with, and its request's fingerprint."""

    key: str
    fingerprint: str


@dataclasses.dataclass(frozen=True)
class RunResult:
    outcome: Outcome
    job_name: str | None
    tick: datetime | None
    message: str
    namespace: str
    name: str


class RunService:
    def __init__(
        self,
        kube: Kube,
        *,
        component: str,
        tolerance: timedelta,
        observer: RunObserver | None = None,
        reads: RunReads | None = None,
        recorder: RunRecorder | None = None,
    ) -> None:
        self._kube = kube
        self._reads = reads
        self._recorder = recorder
        self._component = component
        self._tolerance = tolerance
        self._observer: RunObserver = observer or _NoObserver()

    # -- public ------------------------------------------------------------------------

    async def run_delivery(
        self,
        *,
        namespace: str,
        name: str,
        uid: str,
        message_id: str | None,
        delivered_at: datetime,
        retried: int,
    ) -> RunResult:
        """A verified QStash delivery for ``namespace/name`` (uid from the schedule's body).

        ``retried`` is ``Upstash-Retried``: the attempts QStash made before this one.
        """
        started = time.perf_counter()
        for attempt in range(MAX_RESERVATION_ATTEMPTS):
            cached = attempt == 0 and self._reads is not None  # a lost race reads afresh
            body = await self._load(namespace, name, uid, cached=cached)
            cw = self._parse(body)
            jobs = await self._jobs(cw, cached=cached, body=body)
            status = body.get("status") or {}
            plan = runs.plan_tick(
                cw,
                jobs=jobs,
                last_schedule_time=runs.parse_time(status.get("lastScheduleTime")),
                schedule_since=runs.parse_time(status.get("scheduleSince")),
                delivered_at=delivered_at,
                message_id=message_id,
                tolerance=self._tolerance,
                first_attempt=retried == 0,
                reserved=runs.reserved_names(status.get("active"), now=delivered_at),
            )
            try:
                return await self._execute(
                    body,
                    cw,
                    jobs,
                    plan,
                    now=delivered_at,
                    message_id=message_id,
                    requested_by=None,
                    started=started,
                    deferred=self._recorder is not None,
                )
            except ConflictError:
                logger.info(
                    "run reservation for %s/%s lost a race; deciding again", namespace, name
                )
        raise ConflictError(f"{namespace}/{name}: too many concurrent writers", retry_after=1.0)

    async def run_manual(
        self,
        *,
        namespace: str,
        name: str,
        requested_by: str,
        seed: str,
        now: datetime,
        key: str | None = None,
        fingerprint: str | None = None,
    ) -> RunResult:
        """A person (or the run-now annotation) asked for a run now; same Job path as ticks.

        ``seed`` names the Job (the same request twice is one Job). A request with an
        Idempotency-Key passes the ``key`` and its ``fingerprint``, recorded on the Job and
        checked against the Job a retry finds (:mod:`qstash_operator.domain.idempotency`).
        """
        request = (
            _Request(key=key, fingerprint=fingerprint)
            if key is not None and fingerprint is not None
            else None
        )
        for _ in range(MAX_RESERVATION_ATTEMPTS):
            body = await self._load(namespace, name, None)
            cw = self._parse(body)
            jobs = await self._jobs(cw)
            reserved = runs.reserved_names((body.get("status") or {}).get("active"), now=now)
            plan = runs.plan_manual(
                cw, jobs=jobs, seed=seed, reserved=reserved, key=key, fingerprint=fingerprint
            )
            try:
                return await self._execute(
                    body,
                    cw,
                    jobs,
                    plan,
                    now=now,
                    message_id=None,
                    requested_by=requested_by,
                    started=time.perf_counter(),
                    request=request,
                )
            except ConflictError:
                logger.info("manual run of %s/%s lost a race; deciding again", namespace, name)
        raise ConflictError(f"{namespace}/{name}: too many concurrent writers", retry_after=1.0)

    # -- steps -------------------------------------------------------------------------

    async def _load(
        self, namespace: str, name: str, uid: str | None, *, cached: bool = False
    ) -> JsonDict:
        if cached and self._reads is not None:
            copy = self._reads.cronworkflow(namespace, name)
            if copy is not None and (uid is None or (copy.get("metadata") or {}).get("uid") == uid):
                return copy
        try:
            body = await self._kube.get_cronworkflow(namespace, name)
        except NotFoundError:
            raise PermanentDeliveryError(
                "CronWorkflowGone", f"CronWorkflow {namespace}/{name} does not exist"
            ) from None
        actual = (body.get("metadata") or {}).get("uid")
        if uid is not None and actual != uid:
            raise PermanentDeliveryError(
                "UidMismatch",
                f"CronWorkflow {namespace}/{name} was recreated (uid {actual}, schedule for {uid})",
            )
        return body

    def _parse(self, body: JsonDict) -> CronWorkflow:
        try:
            return model.parse(body)
        except InvalidSpecError as exc:
            meta = body.get("metadata") or {}
            raise PermanentDeliveryError(
                vocabulary.REASON_INVALID_SPEC,
                f"CronWorkflow {meta.get('namespace')}/{meta.get('name')} is invalid: {exc}",
            ) from exc

    async def _jobs(
        self, cw: CronWorkflow, *, cached: bool = False, body: JsonDict | None = None
    ) -> list[JobView]:
        if cached and self._reads is not None:
            views = self._reads.jobs(cw.namespace, cw.uid)
            if views is not None and not _unseen_active(cw, body, views):
                return views
        selector = builders.label_selector(builders.selector_labels(cw))
        return [runs.job_view(job) for job in await self._kube.list_jobs(cw.namespace, selector)]

    async def _execute(
        self,
        body: JsonDict,
        cw: CronWorkflow,
        jobs: Sequence[JobView],
        plan: RunPlan,
        *,
        now: datetime,
        message_id: str | None,
        requested_by: str | None,
        started: float,
        request: _Request | None = None,
        deferred: bool = False,
    ) -> RunResult:
        def result(outcome: Outcome, message: str) -> RunResult:
            return RunResult(
                outcome=outcome,
                job_name=plan.job_name,
                tick=plan.tick,
                message=message,
                namespace=cw.namespace,
                name=cw.name,
            )

        if plan.outcome is not Outcome.RUN:
            await self._event(body, plan.outcome.reason, plan.message, now, warning=False)
            self._observer.observed(plan.outcome, seconds=None)
            return result(plan.outcome, plan.message)
        assert plan.job_name is not None  # RUN plans always name their Job

        if cw.spec.concurrency_policy is not model.ConcurrencyPolicy.ALLOW:
            body = await self._reserve(body, cw, jobs, plan.job_name, now=now)
        for doomed in plan.delete_first:
            await self._kube.delete_job(cw.namespace, doomed)
            await self._event(
                body,
                vocabulary.REASON_REPLACED_ACTIVE,
                f"deleted active Job {doomed} (concurrencyPolicy Replace)",
                now,
                warning=False,
            )

        backend = _backend_of(body)
        job = builders.build_job(
            cw,
            name=plan.job_name,
            trigger=vocabulary.TRIGGER_MANUAL if requested_by else vocabulary.TRIGGER_SCHEDULE,
            backend=backend,
            scheduled_time=plan.tick,
            message_id=message_id,
            requested_by=requested_by,
            idempotency_key=request.key if request else None,
            fingerprint=request.fingerprint if request else None,
        )
        try:
            created = await self._kube.create_job(job)
        except ApiRejectedError as exc:
            await self._event(
                body,
                vocabulary.REASON_FAILED_CREATE,
                f"the API server rejected Job {plan.job_name}: {exc.detail}",
                now,
                warning=True,
            )
            raise
        except QuotaExceededError as exc:  # the CronJob controller says FailedCreate too
            await self._event(
                body,
                vocabulary.REASON_FAILED_CREATE,
                f"could not create Job {plan.job_name} (retried in {exc.retry_after:.0f}s): {exc}",
                now,
                warning=True,
            )
            raise
        except AlreadyExistsError:
            # Another replica (or a crashed attempt of ours) made this name first.
            message = f"Job {plan.job_name} already exists"
            duplicate = Outcome.DUPLICATE_TICK if plan.tick else Outcome.DUPLICATE_MESSAGE
            if request is not None:  # made by this request's retry, or by another request?
                for existing in await self._jobs(cw):  # (a list: no `get` on Jobs in RBAC)
                    if existing.name == plan.job_name:
                        runs.check_same_request(
                            existing, key=request.key, fingerprint=request.fingerprint
                        )
            self._observer.observed(duplicate, seconds=None)
            return result(duplicate, message)

        # Tick to Job created: how late the delivery came, plus how long we took to create the
        # Job (a duration, so no second reading of the wall clock).
        seconds = (
            (now - plan.tick).total_seconds() + (time.perf_counter() - started)
            if plan.tick
            else None
        )
        self._observer.observed(Outcome.RUN, seconds=seconds)
        view = runs.job_view(created)
        all_jobs = [job for job in jobs if job.name not in plan.delete_first] + [view]
        what = (
            f"for tick {builders.rfc3339(plan.tick)}" if plan.tick else f"asked by {requested_by}"
        )
        if deferred and self._recorder is not None:
            if self._reads is not None:
                self._reads.job_created(created)
            self._recorder.record(body, cw, view, tick=plan.tick)
            self._recorder.later(
                lambda: self._event(
                    body,
                    Outcome.RUN.reason,
                    f"created Job {plan.job_name} {what}",
                    now,
                    warning=False,
                )
            )
            self._recorder.later(lambda: self._prune(cw, all_jobs, now=now))
            return result(Outcome.RUN, f"created Job {plan.job_name}")
        await self._record(body, cw, all_jobs, plan, now=now, requested_by=requested_by)
        await self._event(
            body, Outcome.RUN.reason, f"created Job {plan.job_name} {what}", now, warning=False
        )
        await self._prune(cw, all_jobs, now=now)
        return result(Outcome.RUN, f"created Job {plan.job_name}")

    async def _reserve(
        self,
        body: JsonDict,
        cw: CronWorkflow,
        jobs: Sequence[JobView],
        job_name: str,
        *,
        now: datetime,
    ) -> JsonDict:
        """Claim the run with a write that fails if the CronWorkflow changed since we read it;
        returns the CronWorkflow as written (its resourceVersion conditions the record)."""
        status = runs.reserve_status(
            body.get("status") or {}, jobs, cw.namespace, job_name=job_name, now=now
        )
        patch = {
            "metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
            "status": status,
        }
        return await self._kube.patch_cronworkflow(cw.namespace, cw.name, patch, status=True)

    async def _record(
        self,
        body: JsonDict,
        cw: CronWorkflow,
        jobs: Sequence[JobView],
        plan: RunPlan,
        *,
        now: datetime,
        requested_by: str | None,
    ) -> None:
        """Record the created Job: conditional on the resourceVersion of ``body`` (the read, or
        the reservation's write), decided again from a fresh read and Job list on a conflict,
        so a stale body can neither drop another run's reservation nor move
        ``lastScheduleTime`` back."""
        assert plan.job_name is not None
        created = plan.job_name
        manual = (
            {"jobName": created, "requestedBy": requested_by, "time": builders.rfc3339(now)}
            if requested_by is not None
            else None
        )

        async def decide(current: JsonDict, attempt: int) -> JsonDict | None:
            live = jobs if attempt == 0 else await self._jobs(cw)
            return runs.status_after_run(
                cw,
                current.get("status") or {},
                live,
                created=created,
                tick=plan.tick,
                manual=manual,
                now=now,
            )

        try:
            await write_status(self._kube, cw.namespace, cw.name, decide, body=body)
        except NotFoundError:
            logger.info("CronWorkflow %s went away after its Job was created", cw.key)
        except ConflictError as exc:  # the Job exists: that is the run; the mirror catches up
            logger.warning("created Job %s but could not record it: %s", created, exc)

    async def _prune(self, cw: CronWorkflow, jobs: Sequence[JobView], *, now: datetime) -> None:
        for doomed in runs.history_to_prune(
            jobs,
            successful_limit=cw.spec.successful_jobs_history_limit,
            failed_limit=cw.spec.failed_jobs_history_limit,
            now=now,
        ):
            await self._kube.delete_job(cw.namespace, doomed)

    async def _event(
        self, body: JsonDict, reason: str, message: str, now: datetime, *, warning: bool
    ) -> None:
        await self._kube.post_event(
            body,
            type_="Warning" if warning else "Normal",
            reason=reason,
            message=message,
            now=now,
            component=self._component,
        )


def _unseen_active(cw: CronWorkflow, body: JsonDict | None, jobs: Sequence[JobView]) -> bool:
    """Forbid/Replace decide on the active Jobs: does ``status.active`` name a Job (not a
    reservation) the cached ``jobs`` lack? Then the cache is behind the status and the Jobs are
    listed from the API server instead."""
    if cw.spec.concurrency_policy is model.ConcurrencyPolicy.ALLOW or body is None:
        return False
    seen = {job.name for job in jobs}
    for entry in (body.get("status") or {}).get("active") or ():
        if not isinstance(entry, dict):
            continue
        uid = str(entry.get("uid", ""))
        if not uid.startswith(runs.RESERVATION_PREFIX) and entry.get("name") not in seen:
            return True
    return False


def _backend_of(body: JsonDict) -> Backend | None:
    value = (body.get("status") or {}).get("backend")
    try:
        return Backend(value) if value else None
    except ValueError:
        return None
