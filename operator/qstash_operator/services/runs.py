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

A retry (``Upstash-Retried`` >= 1) no Job has run yet is matched to its tick by asking QStash
which message it is (:class:`MessageLookup`, ``GET /v2/messages/{id}``), once per delivery; when
QStash cannot answer, the delivery answers 503 and QStash retries: the tick is never guessed.

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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from qstash_operator.adapters.kube import Kube
from qstash_operator.domain import (
    backfill,
    builders,
    model,
    naming,
    parameters,
    runs,
    slots,
    vocabulary,
    window,
)
from qstash_operator.domain.errors import (
    AlreadyExistsError,
    ApiRejectedError,
    ConflictError,
    InvalidSpecError,
    NotFoundError,
    PermanentDeliveryError,
    QStashOperatorError,
    QStashUnavailableError,
    QuotaExceededError,
    TransientError,
)
from qstash_operator.domain.model import Backend, CronWorkflow, JsonDict
from qstash_operator.domain.runs import JobView, MessageOrigin, Outcome, RunPlan
from qstash_operator.services.status_writes import write_status

logger = logging.getLogger(__name__)

MAX_RESERVATION_ATTEMPTS: Final = 5
"""Conditional status writes lost to concurrent writers before giving up (then the caller answers
503 and QStash retries). Five covers a manual run, a tick and the operator writing at once."""


class RunObserver(Protocol):
    """Where outcomes are counted (metrics); the webhook and operator pass their own."""

    def observed(self, outcome: Outcome, *, seconds: float | None) -> None: ...


class MessageLookup(Protocol):
    """QStash's word on a message (``adapters.qstash_api.QStashMessages`` in the webhook)."""

    async def origin(self, message_id: str) -> MessageOrigin: ...


class RunReads(Protocol):
    """Watch-fed copies of the CronWorkflows and their Jobs (the webhook's caches); None where
    a copy cannot answer (not synced yet, over its bound, another namespace)."""

    def cronworkflow(self, namespace: str, name: str) -> JsonDict | None: ...

    def jobs(self, namespace: str, uid: str) -> list[JobView] | None: ...

    def parsed(self, body: JsonDict) -> CronWorkflow | None:
        """The model of ``body`` if it is a copy :meth:`cronworkflow` gave and was parsed when
        it came (None: parse it)."""

    def job_created(self, job: JsonDict) -> None:
        """A Job this process just created, so the next decision sees it before its event."""


class RunRecorder(Protocol):
    """Writes a delivery's status record, event and pruning after the answer."""

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
        """Job ``created`` (tick ``tick``, QStash attempt ``attempt``) was made at ``at``."""

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
class _Asked:
    """What a manual run was asked with: checked parameter values, the overrides, why."""

    values: Mapping[str, str]
    overrides: Mapping[str, str]
    reason: str | None


@dataclasses.dataclass(frozen=True)
class BackfillResult:
    """What one backfill call found and did."""

    plan: backfill.BackfillPlan
    created: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # "<slot>: why" for slots the run path did not run


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
        messages: MessageLookup | None = None,
        cluster: str | None = None,
        reads: RunReads | None = None,
        recorder: RunRecorder | None = None,
    ) -> None:
        """``messages`` and ``cluster`` serve deliveries: which message a retry is, and the
        cluster name of this CronWorkflow's schedule id, which that message must come from."""
        self._kube = kube
        self._reads = reads
        self._recorder = recorder
        self._component = component
        self._tolerance = tolerance
        self._observer: RunObserver = observer or _NoObserver()
        self._messages = messages
        self._cluster = cluster

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
        entry: str | None = None,
    ) -> RunResult:
        """A verified QStash delivery for ``namespace/name`` (uid from the schedule's body).

        ``retried`` is ``Upstash-Retried``: the attempts QStash made before this one. ``entry``
        is the ``spec.schedules`` entry whose schedule delivered (the body's; None: the single
        ``spec.schedule``): its cron judges the tick, its schedule id must have made a retry.
        """
        started = time.perf_counter()
        origin: MessageOrigin | None = None

        async def once(attempt: int) -> RunResult:
            nonlocal origin
            cached = attempt == 0 and self._reads is not None  # a lost race reads afresh
            body = await self._load(namespace, name, uid, cached=cached)
            cw = self._parse(body)
            jobs = await self._jobs(cw, cached=cached, body=body)
            status = body.get("status") or {}
            if origin is None and runs.needs_origin(
                jobs, message_id=message_id, first_attempt=retried == 0
            ):
                origin = await self._origin(message_id)
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
                runs_made=window.runs_made(status),
                origin=origin,
                schedule_ids=self._schedule_ids(cw, status, entry),
                ran=slots.ran_ticks(status.get("recentSlots")),
                entry=entry,
            )
            return await self._execute(
                body,
                cw,
                jobs,
                plan,
                now=delivered_at,
                message_id=message_id,
                requested_by=None,
                started=started,
                attempt=retried + 1,
                deferred=self._recorder is not None,
            )

        return await _deciding_again("delivery", namespace, name, once)

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
        overrides: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> RunResult:
        """A person (or the run-now annotation) asked for a run now; same Job path as ticks.

        ``seed`` names the Job (the same request twice is one Job). A request with an
        Idempotency-Key passes the ``key`` and its ``fingerprint``, recorded on the Job and
        checked against the Job a retry finds (:mod:`qstash_operator.domain.idempotency`).
        ``overrides`` of ``spec.parameters`` are checked against their types before anything
        is written (:class:`InvalidSpecError` naming ``parameters.<name>``: no Job); they and
        ``reason`` are recorded on the Job and in ``status.lastManualRun``.
        """
        request = (
            _Request(key=key, fingerprint=fingerprint)
            if key is not None and fingerprint is not None
            else None
        )

        async def once(_: int) -> RunResult:
            body = await self._load(namespace, name, None)
            cw = self._parse(body)
            try:
                chosen = parameters.values(cw.spec.parameters, overrides)
            except InvalidSpecError as exc:  # before any write: no Job with a bad value
                await self._event(body, exc.reason, f"manual run refused: {exc}", now, warning=True)
                raise
            asked = _Asked(
                values=chosen,
                overrides={name: chosen[name] for name in overrides or {}},
                reason=reason,
            )
            jobs = await self._jobs(cw)
            reserved = runs.reserved_names((body.get("status") or {}).get("active"), now=now)
            plan = runs.plan_manual(
                cw, jobs=jobs, seed=seed, reserved=reserved, key=key, fingerprint=fingerprint
            )
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
                asked=asked,
            )

        return await _deciding_again("manual run", namespace, name, once)

    async def run_backfill(
        self,
        *,
        namespace: str,
        name: str,
        start: datetime,
        end: datetime,
        parallel: int | None,
        dry_run: bool,
        requested_by: str,
        now: datetime,
    ) -> BackfillResult:
        """The slots of ``[start, end]`` without a Job, created as their ticks' Jobs, as many as
        concurrency allows now (:mod:`qstash_operator.domain.backfill`); call again for the rest."""
        body = await self._load(namespace, name, None)
        cw = self._parse(body)
        jobs = await self._jobs(cw)
        reserved = runs.reserved_names((body.get("status") or {}).get("active"), now=now)
        live = {job.name for job in jobs}
        active = sum(job.active for job in jobs) + sum(n not in live for n in reserved)
        plan = backfill.plan(
            cw,
            start=start,
            end=end,
            job_names=live,
            active=active,
            parallel=parallel,
            now=now,
        )
        if dry_run:
            return BackfillResult(plan)
        created: list[str] = []
        skipped: list[str] = []
        for slot in plan.now:
            if created:  # the previous create changed status and the Job list: read again
                body = await self._load(namespace, name, None)
                jobs = await self._jobs(cw)
            slot_plan = runs.plan_backfill(
                cw,
                jobs=jobs,
                slot=slot,
                parallel=parallel is not None,
                reserved=runs.reserved_names((body.get("status") or {}).get("active"), now=now),
            )
            result = await self._execute(
                body,
                cw,
                jobs,
                slot_plan,
                now=now,
                message_id=None,
                requested_by=None,
                started=time.perf_counter(),
                backfilled_by=requested_by,
            )
            if result.outcome is Outcome.RUN and result.job_name is not None:
                created.append(result.job_name)
            else:
                skipped.append(f"{builders.rfc3339(slot)}: {result.message}")
        return BackfillResult(plan, created=tuple(created), skipped=tuple(skipped))

    async def run_catch_up(
        self, *, namespace: str, name: str, tick: datetime, now: datetime
    ) -> RunResult:
        """Run the missed slot ``tick`` late (the operator's catch-up policy chose it): the
        delivery's path and rules, under the slot's Job name (``domain.runs.plan_catch_up``)."""
        started = time.perf_counter()

        async def once(_: int) -> RunResult:
            body = await self._load(namespace, name, None)
            cw = self._parse(body)
            jobs = await self._jobs(cw)
            status = body.get("status") or {}
            plan = runs.plan_catch_up(
                cw,
                jobs=jobs,
                tick=tick,
                schedule_since=runs.parse_time(status.get("scheduleSince")),
                now=now,
                reserved=runs.reserved_names(status.get("active"), now=now),
                runs_made=window.runs_made(status),
            )
            return await self._execute(
                body,
                cw,
                jobs,
                plan,
                now=now,
                message_id=None,
                requested_by=None,
                started=started,
                catch_up=True,
            )

        return await _deciding_again("catch-up", namespace, name, once)

    async def run_marker(self, *, marker: JsonDict, now: datetime) -> RunResult:
        """A marker Job of an entry's CronJob (``spec.schedules`` on the CronJob backend): run its
        tick through the delivery's rules (``domain.runs.plan_marker``), then delete the marker,
        whatever became of the tick. A CronWorkflow gone, recreated or invalid deletes it too; a
        transient failure raises and keeps it, so the caller's retry finds it again."""
        meta = marker.get("metadata") or {}
        labels = meta.get("labels") or {}
        namespace = str(meta.get("namespace", ""))
        name = str(labels.get(vocabulary.LABEL_MARKER_OF, ""))
        entry = labels.get(vocabulary.LABEL_SCHEDULE_ENTRY)
        uid = (meta.get("annotations") or {}).get(vocabulary.ANNOTATION_MARKER_UID)
        tick = runs.marker_tick(marker)
        started = time.perf_counter()

        async def once(_: int) -> RunResult:
            assert tick is not None
            body = await self._load(namespace, name, uid if isinstance(uid, str) else None)
            cw = self._parse(body)
            jobs = await self._jobs(cw)
            status = body.get("status") or {}
            plan = runs.plan_marker(
                cw,
                jobs=jobs,
                tick=tick,
                entry=entry if isinstance(entry, str) else None,
                last_schedule_time=runs.parse_time(status.get("lastScheduleTime")),
                schedule_since=runs.parse_time(status.get("scheduleSince")),
                now=now,
                tolerance=self._tolerance,
                reserved=runs.reserved_names(status.get("active"), now=now),
                runs_made=window.runs_made(status),
                ran=slots.ran_ticks(status.get("recentSlots")),
            )
            return await self._execute(
                body, cw, jobs, plan, now=now, message_id=None, requested_by=None, started=started
            )

        try:
            if tick is None or not name:
                raise PermanentDeliveryError(
                    vocabulary.REASON_INVALID_SPEC,
                    f"marker Job {meta.get('name')} names no CronWorkflow or no scheduled time",
                )
            result = await _deciding_again("marker", namespace, name, once)
        except PermanentDeliveryError as exc:
            logger.info("dropping marker Job %s: %s", meta.get("name"), exc)
            await self._kube.delete_job(namespace, str(meta.get("name", "")))
            return RunResult(Outcome.NO_TICK, None, tick, str(exc), namespace, name)
        except TransientError:
            raise  # the marker stays for the retry
        except QStashOperatorError:  # refused for good (the Job itself): do not retry forever
            await self._kube.delete_job(namespace, str(meta.get("name", "")))
            raise
        await self._kube.delete_job(namespace, str(meta.get("name", "")))
        return result

    # -- steps -------------------------------------------------------------------------

    def _schedule_ids(
        self, cw: CronWorkflow, status: JsonDict, entry: str | None = None
    ) -> frozenset[str]:
        """The ids a retried message of ``cw``'s schedule ``entry`` may come from: the one this
        cluster's name makes, and the one the operator recorded (so a webhook whose cluster name
        differs from the operator's still places retries, rather than refusing every one)."""
        ids: set[str] = set()
        if self._cluster is not None:
            ids.add(naming.schedule_id(self._cluster, cw.namespace, cw.name, entry))
        recorded = [status.get("scheduleId")] if entry is None else []
        recorded.extend(
            item.get("scheduleId")
            for item in status.get("schedules") or ()
            if isinstance(item, dict) and item.get("name") == entry and entry is not None
        )
        ids.update(sid for sid in recorded if isinstance(sid, str) and sid)
        return frozenset(ids)

    async def _origin(self, message_id: str | None) -> MessageOrigin:
        """Which message a retry is, or why that cannot be known (never a guess)."""
        if message_id is None:
            raise PermanentDeliveryError(
                runs.REASON_MESSAGE_UNKNOWN,
                "a retry without Upstash-Message-Id cannot be matched to its tick",
            )
        if self._messages is None:
            raise QStashUnavailableError(
                f"message {message_id} is a retry, and without a QStash token its tick "
                "cannot be looked up"
            )
        try:
            return await self._messages.origin(message_id)
        except NotFoundError:
            raise PermanentDeliveryError(
                runs.REASON_MESSAGE_UNKNOWN,
                f"QStash does not know message {message_id} (delivered or given up), so the "
                "tick of this retry cannot be known",
            ) from None

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
        if self._reads is not None:
            known = self._reads.parsed(body)
            if known is not None:
                return known
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
        asked: _Asked | None = None,
        backfilled_by: str | None = None,
        catch_up: bool = False,
        attempt: int | None = None,
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
            # A catch-up that finds a Job active under Forbid waits for the next audit instead.
            if not (catch_up and plan.outcome is Outcome.SKIPPED_FORBID):
                await self._record_skip(body, cw, plan)
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
            values=asked.values if asked else None,
            overrides=asked.overrides if asked else None,
            reason=asked.reason if asked else None,
            backfilled_by=backfilled_by,
            catch_up=catch_up,
            attempt=attempt,
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
        if catch_up:
            what += ", a missed slot run late by spec.catchUp"
        if deferred and self._recorder is not None:
            if self._reads is not None:
                self._reads.job_created(created)
            self._recorder.record(body, cw, view, tick=plan.tick, attempt=attempt, at=now)
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
        await self._record(
            body,
            cw,
            all_jobs,
            plan,
            now=now,
            requested_by=requested_by,
            asked=asked,
            catch_up=catch_up,
            attempt=attempt,
        )
        await self._event(
            body,
            vocabulary.REASON_CAUGHT_UP if catch_up else Outcome.RUN.reason,
            f"created Job {plan.job_name} {what}",
            now,
            warning=False,
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
        asked: _Asked | None = None,
        catch_up: bool = False,
        attempt: int | None = None,
    ) -> None:
        """Record the created Job: conditional on the resourceVersion of ``body`` (the read, or
        the reservation's write), decided again from a fresh read and Job list on a conflict,
        so a stale body can neither drop another run's reservation nor move
        ``lastScheduleTime`` back."""
        assert plan.job_name is not None
        created = plan.job_name
        manual: JsonDict | None = (
            {"jobName": created, "requestedBy": requested_by, "time": builders.rfc3339(now)}
            if requested_by is not None
            else None
        )
        if manual is not None and asked is not None:
            manual["reason"] = asked.reason  # None clears the previous run's
            manual["parameters"] = dict(asked.overrides) or None

        async def decide(current: JsonDict, write_try: int) -> JsonDict | None:
            live = jobs if write_try == 0 else await self._jobs(cw)
            return runs.status_after_run(
                cw,
                current.get("status") or {},
                live,
                created=created,
                tick=plan.tick,
                manual=manual,
                now=now,
                catch_up=catch_up,
                attempt=attempt,
            )

        try:
            await write_status(self._kube, cw.namespace, cw.name, decide, body=body)
        except NotFoundError:
            logger.info("CronWorkflow %s went away after its Job was created", cw.key)
        except ConflictError as exc:  # the Job exists: that is the run; the mirror catches up
            logger.warning("created Job %s but could not record it: %s", created, exc)

    async def _record_skip(self, body: JsonDict, cw: CronWorkflow, plan: RunPlan) -> None:
        """A skipped tick goes into ``recentSlots`` (``Skipped`` and why), so the audit does not
        read it as ``Missed``; best effort: the delivery's answer does not depend on it."""

        async def decide(current: JsonDict, attempt: int) -> JsonDict | None:
            return runs.status_after_skip(cw, current.get("status") or {}, plan)

        try:
            await write_status(self._kube, cw.namespace, cw.name, decide, body=body)
        except (NotFoundError, ConflictError) as exc:
            logger.info("could not record the skipped tick of %s: %s", cw.key, exc)

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


async def _deciding_again(
    what: str, namespace: str, name: str, once: Callable[[int], Awaitable[RunResult]]
) -> RunResult:
    """Decide and act (``once(attempt)``) until the write is not lost to a concurrent writer:
    a ``ConflictError`` (the reservation's resourceVersion moved) means the facts changed, so
    everything is read and decided again, at most ``MAX_RESERVATION_ATTEMPTS`` times."""
    for attempt in range(MAX_RESERVATION_ATTEMPTS):
        try:
            return await once(attempt)
        except ConflictError:
            logger.info("%s of %s/%s lost a race; deciding again", what, namespace, name)
    raise ConflictError(f"{namespace}/{name}: too many concurrent writers", retry_after=1.0)


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
