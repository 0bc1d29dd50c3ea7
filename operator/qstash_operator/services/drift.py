"""Drift repair: once per resync period, make QStash match the CronWorkflows again.

Schedules can change behind the operator's back (deleted or edited in the QStash console, a
second cluster with the same name, a CronWorkflow deleted while the operator was down). One pass
costs one QStash list call and one Kubernetes list, however many CronWorkflows exist; the list is
read in pages of :data:`LIST_PAGE` and each page checked and dropped before the next is read, so
a pass holds one page of bodies, not all of them (a whole list of 10,000 CronWorkflows, managed
fields included, is over 100 MiB of parsed JSON, and the operator's peak RSS is what it is
sized by):

- a CronWorkflow on the QStash backend whose schedule is missing or differs → upsert (an event
  ``DriftRepaired`` on the object, a metric);
- a schedule of this cluster name *in a namespace this operator watches* whose CronWorkflow no
  longer exists, or that is not on QStash and not being handed over → delete (a log line and a
  metric: there is no object left to carry an event). Schedules of namespaces it does not watch
  belong to another release sharing the QStash account and the cluster name: never touched
  (the rule is :func:`qstash_operator.domain.drift.orphans`).

Order matters: schedules are listed *before* CronWorkflows, so a schedule created by a reconcile
in flight always has its CronWorkflow in the second list and is never taken for an orphan. The
pages of one list are one snapshot (the API server serves a continuation at the first page's
resourceVersion), and orphans are decided only once every page has been read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Final, Protocol

from qstash_operator.adapters.kube import Kube
from qstash_operator.adapters.operator_metrics import OperatorMetrics
from qstash_operator.adapters.qstash_api import ObservedSchedule, QStashSchedules
from qstash_operator.domain import builders, model, naming, quiet, vocabulary, window
from qstash_operator.domain import drift as drift_rules
from qstash_operator.domain import reconcile as reconcile_rules
from qstash_operator.domain.errors import InvalidSpecError, QStashOperatorError
from qstash_operator.domain.model import Backend, JsonDict
from qstash_operator.settings import Settings

logger = logging.getLogger(__name__)

LIST_PAGE: Final = 500
"""CronWorkflows per page of a drift pass's list (kopf lists in pages of 500 too)."""


@dataclasses.dataclass(frozen=True)
class DriftReport:
    checked: int
    recreated: tuple[str, ...]
    updated: tuple[str, ...]
    orphans_deleted: tuple[str, ...]


class DriftRepair:
    def __init__(
        self,
        *,
        settings: Settings,
        kube: Kube,
        qstash: QStashSchedules,
        metrics: OperatorMetrics,
    ) -> None:
        self._settings = settings
        self._kube = kube
        self._qstash = qstash
        self._metrics = metrics

    async def run_once(self, *, now: datetime) -> DriftReport:
        prefix = naming.schedule_id_prefix(self._settings.cluster_name)
        observed = {
            s.schedule_id: s for s in await self._qstash.list() if s.schedule_id.startswith(prefix)
        }
        self._metrics.qstash_calls.labels(operation="list", outcome="ok").inc()

        checked = 0
        recreated: list[str] = []
        updated: list[str] = []
        keep: set[str] = set()
        async for page in self._pages():
            checked += len(page)
            for body in page:
                await self._check(body, observed, keep, recreated, updated, now=now)
            del page  # not held while the next is read

        orphans = drift_rules.orphans(
            observed,
            keep,
            cluster=self._settings.cluster_name,
            namespaces=self._settings.namespaces,
        )
        for orphan in orphans:
            await self._qstash.delete(orphan)
            self._metrics.qstash_calls.labels(operation="delete", outcome="ok").inc()
            self._metrics.drift_repairs.labels(kind="orphan").inc()
            logger.warning(
                "deleted QStash schedule %s: no CronWorkflow on this cluster (%s) uses it",
                orphan,
                self._settings.cluster_name,
            )
        return DriftReport(
            checked=checked,
            recreated=tuple(recreated),
            updated=tuple(updated),
            orphans_deleted=tuple(orphans),
        )

    async def _check(
        self,
        body: JsonDict,
        observed: dict[str, ObservedSchedule],
        keep: set[str],
        recreated: list[str],
        updated: list[str],
        *,
        now: datetime,
    ) -> None:
        """One listed CronWorkflow: add the ids it needs to ``keep``, repair what differs."""
        status = body.get("status") or {}
        meta = body.get("metadata") or {}
        # Every id the object may have: the single one, each spec.schedules entry's, and
        # those status records (applied, or being retired after an edit).
        owned = reconcile_rules.known_schedule_ids(body, self._settings.cluster_name)
        on_qstash = status.get("backend") == Backend.QSTASH.value
        retiring_qstash = (status.get("handover") or {}).get("from") == Backend.QSTASH.value
        if retiring_qstash or meta.get("deletionTimestamp"):
            keep.update(owned)  # the handover or the finalizer owns them
            return
        if status.get("observedGeneration") != meta.get("generation"):
            # Not reconciled at this generation yet (a new object, or an edit in flight): its
            # reconcile may already have made the schedule without having written the status
            # that says so, and it applies the spec itself. Deleting its ids here deleted live
            # schedules of objects being created (seen at 2,000 with a pass every 20 s).
            keep.update(owned)
            return
        if not on_qstash:
            return
        try:
            cw = model.parse(body)
        except InvalidSpecError:
            keep.update(owned)
            return  # reconcile reports it; nothing to repair toward
        retiring = (status.get("retiring") or {}).get("scheduleIds") or ()
        keep.update(sid for sid in retiring if isinstance(sid, str))
        cw = window.as_applied(cw, status, now)  # paused while waiting for its window
        every = builders.build_schedules(
            cw, cluster=self._settings.cluster_name, public_url=self._public_url()
        )
        keep.update(desired.schedule_id for desired in every)
        if status.get("appliedScheduleHash") != builders.schedules_fingerprint(every):
            keep.update(owned)  # a reconcile is due (or running) and applies the spec itself
            return
        for desired in every:
            sid = desired.schedule_id
            current = observed.get(sid)
            differences = ["missing"] if current is None else current.differs_from(desired)
            if not differences:
                continue
            await self._repair(body, desired, current, differences, now=now)
            (recreated if current is None else updated).append(sid)

    async def _pages(self) -> AsyncIterator[list[JsonDict]]:
        """The CronWorkflows of every watched namespace (or all), a page at a time."""
        for namespace in self._settings.namespaces or (None,):
            token: str | None = None
            while True:
                page, _, token = await self._kube.list_cronworkflows_page(
                    namespace, limit=LIST_PAGE, token=token
                )
                yield page
                del page  # not held while the next is read
                if token is None:
                    break

    def _public_url(self) -> str:
        url = self._settings.public_url
        assert url is not None, "drift repair runs only when QStash is usable"
        return url

    async def _repair(
        self,
        body: JsonDict,
        desired: builders.DesiredSchedule,
        current: ObservedSchedule | None,
        differences: list[str],
        *,
        now: datetime,
    ) -> None:
        await self._qstash.upsert(desired)
        self._metrics.qstash_calls.labels(operation="upsert", outcome="ok").inc()
        if current is None or current.paused != desired.paused:
            await self._qstash.set_paused(desired.schedule_id, desired.paused)
            self._metrics.qstash_calls.labels(
                operation="pause" if desired.paused else "resume", outcome="ok"
            ).inc()
        kind = "missing" if current is None else "changed"
        self._metrics.drift_repairs.labels(kind=kind).inc()
        what = (
            "was missing; recreated it"
            if current is None
            else f"differed in {', '.join(differences)}; restored it"
        )
        await self._kube.post_event(
            body,
            type_="Warning",
            reason=vocabulary.REASON_DRIFT_REPAIRED,
            message=f"QStash schedule {desired.schedule_id} {what}",
            now=now,
            component="qstash-operator",
        )


class DriftPass(Protocol):
    async def run_once(self, *, now: datetime) -> DriftReport: ...


class DriftLoop:
    """One drift pass per resync period for as long as this replica leads; never dies of a pass.

    Whatever a pass raises is logged (a traceback for errors that are not ours) and counted in
    ``qstash_operator_drift_passes_total{result}``; the next pass follows after the domain's
    :func:`~qstash_operator.domain.drift.failure_delay`. A completed pass sets
    ``qstash_operator_drift_last_success_timestamp_seconds``. :meth:`problem` is what readiness
    reports when passes have failed for more than three periods.
    """

    def __init__(
        self,
        repair: DriftPass,
        *,
        period: float,
        clock: Callable[[], datetime],
        metrics: OperatorMetrics,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._repair = repair
        self._period = period
        self._clock = clock
        self._metrics = metrics
        self._sleep = sleep
        self._draw = draw
        self._started: datetime | None = None
        self._failures = 0
        self.last_success: datetime | None = None
        self.last_error: str | None = None

    async def run(self) -> None:
        """Until cancelled (leadership lost, shutdown): wait a period, pass, repeat."""
        self._started = self._clock()
        try:
            delay = quiet.wait_outside(self._started, self._period)
            while True:
                await self._sleep(delay)
                delay = await self.run_pass()
        finally:
            self._started = None  # not running: a standby has no drift to report on

    async def run_pass(self) -> float:
        """One pass; returns the seconds to wait before the next."""
        now = self._clock()
        try:
            report = await self._repair.run_once(now=now)
        except Exception as exc:  # any error: the loop must outlive it
            return self._failed(exc)
        self._failures = 0
        self.last_success = now
        self.last_error = None
        self._metrics.drift_passes.labels(result="ok").inc()
        self._metrics.drift_last_success.set(now.timestamp())
        if report.recreated or report.updated or report.orphans_deleted:
            logger.info(
                "drift check: %d CronWorkflows, recreated %s, updated %s, deleted orphans %s",
                report.checked,
                list(report.recreated),
                list(report.updated),
                list(report.orphans_deleted),
            )
        # Not at a minute's burst of deliveries (domain.quiet): the pass lists and may write.
        return quiet.wait_outside(now, self._period)

    def _failed(self, exc: Exception) -> float:
        self._failures += 1
        delay = drift_rules.failure_delay(
            exc, failures=self._failures, period=self._period, draw=self._draw()
        )
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._metrics.drift_passes.labels(result=type(exc).__name__).inc()
        if isinstance(exc, QStashOperatorError):
            logger.warning(
                "drift pass failed (%d in a row): %s; next try in %.0fs",
                self._failures,
                self.last_error,
                delay,
            )
        else:  # not an error of ours: a bug or a library surprise, worth its traceback
            logger.exception(
                "drift pass failed (%d in a row) unexpectedly; next try in %.0fs",
                self._failures,
                delay,
            )
        return delay

    def problem(self, now: datetime) -> str | None:
        """Why drift repair is not working (readiness fails with it), or None."""
        if self._started is None:
            return None
        return drift_rules.staleness(
            last_success=self.last_success,
            since=self._started,
            now=now,
            period=self._period,
            last_error=self.last_error,
        )
