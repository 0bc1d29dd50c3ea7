"""The slot audit: keep each CronWorkflow's ledger, flag missed slots, catch up, judge freshness.

Runs on the operator's timer for every CronWorkflow, from what the operator already watches: the
CronWorkflow's body from its watch, its Jobs from the operator's Job index. It costs no API
request unless something changed: a status write (conditional on the resourceVersion the body
carries, :mod:`qstash_operator.services.status_writes`) when a slot's fate or the Fresh verdict
moved, a Warning event ``MissedSchedule`` per newly missed slot, and the catch-up runs, which go
through :class:`~qstash_operator.services.runs.RunService` like any delivery.

Counting: ``qstash_operator_slots_total`` counts each slot once per settled fate. What counts as
already counted is kept per object in memory, seeded from the ledger the first time the object is
seen, so an operator restart does not count the same slots again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from qstash_operator.adapters.kube import Kube
from qstash_operator.adapters.operator_metrics import OperatorMetrics
from qstash_operator.domain import audit as audit_rules
from qstash_operator.domain import model, slots, vocabulary
from qstash_operator.domain.errors import (
    ConflictError,
    InvalidSpecError,
    NotFoundError,
    QStashOperatorError,
)
from qstash_operator.domain.model import JsonDict
from qstash_operator.domain.runs import Outcome
from qstash_operator.services.runs import RunService
from qstash_operator.services.status_writes import write_status

logger = logging.getLogger(__name__)

Seen = set[tuple[tuple[str, str], str, str]]


class SlotAudit:
    def __init__(
        self,
        kube: Kube,
        runs: RunService,
        metrics: OperatorMetrics,
        *,
        grace: timedelta,
        component: str = "qstash-operator",
    ) -> None:
        self._kube = kube
        self._runs = runs
        self._metrics = metrics
        self._grace = grace
        self._component = component
        self._seen: dict[tuple[str, str, str], Seen] = {}

    async def audit(
        self, body: JsonDict, jobs: Sequence[slots.SlotJob], *, now: datetime
    ) -> audit_rules.AuditPlan | None:
        """One pass over one CronWorkflow; returns what it decided (None: an invalid spec,
        which the reconciler reports)."""
        try:
            cw = model.parse(body)
        except InvalidSpecError:
            return None
        key = (cw.namespace, cw.name, cw.uid)
        decided: list[audit_rules.AuditPlan] = []

        async def decide(current: JsonDict, attempt: int) -> JsonDict | None:
            fresh = model.parse(current) if attempt else cw
            plan = audit_rules.plan_audit(
                fresh, current.get("status") or {}, jobs, now=now, grace=self._grace
            )
            decided.append(plan)
            return plan.patch

        if key not in self._seen:
            previous = slots.parse_ledger((body.get("status") or {}).get("recentSlots"))
            self._seen[key] = slots.settled(previous)
        try:
            written = await write_status(self._kube, cw.namespace, cw.name, decide, body=body)
        except (NotFoundError, ConflictError) as exc:
            self._metrics.slot_audits.labels(result=type(exc).__name__).inc()
            logger.info("slot audit of %s deferred: %s", cw.key, exc)
            return None
        plan = decided[-1]
        self._metrics.slot_audits.labels(result="written" if written else "unchanged").inc()
        await self._settle(body, key, plan.ledger, now=now)
        self._gauges(cw, plan, now=now)
        await self._catch_up(cw, plan.catch_up, now=now)
        return plan

    def forget(self, namespace: str, name: str) -> None:
        """The CronWorkflow is gone: drop its gauges and what was counted for it."""
        for key in [key for key in self._seen if key[:2] == (namespace, name)]:
            del self._seen[key]
        for gauge in (self._metrics.fresh, self._metrics.last_success_age):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name)

    async def _settle(
        self,
        body: JsonDict,
        key: tuple[str, str, str],
        ledger: Sequence[slots.Slot],
        *,
        now: datetime,
    ) -> None:
        seen = self._seen[key]
        for slot in slots.newly_settled(ledger, seen):
            self._metrics.slots.labels(outcome=slot.fate, reason=slot.reason).inc()
            if slot.fate == vocabulary.FATE_MISSED:
                await self._kube.post_event(
                    body,
                    type_="Warning",
                    reason=vocabulary.REASON_MISSED_SCHEDULE,
                    message=f"no run came for the slot {slots.rfc3339(slot.time)} within "
                    f"{int(self._grace.total_seconds())}s (no QStash delivery, no CronJob run)",
                    now=now,
                    component=self._component,
                )
        self._seen[key] = slots.settled(ledger)

    def _gauges(
        self, cw: model.CronWorkflow, plan: audit_rules.AuditPlan, *, now: datetime
    ) -> None:
        if plan.last_success is not None:
            age = max((now - plan.last_success).total_seconds(), 0.0)
            self._metrics.last_success_age.labels(cw.namespace, cw.name).set(age)
        if plan.freshness is not None:
            self._metrics.fresh.labels(cw.namespace, cw.name).set(1 if plan.freshness.fresh else 0)
        else:
            with contextlib.suppress(KeyError):
                self._metrics.fresh.remove(cw.namespace, cw.name)

    async def _catch_up(
        self, cw: model.CronWorkflow, ticks: Sequence[datetime], *, now: datetime
    ) -> None:
        """Run the chosen missed slots oldest first; stop at one that must wait (Forbid)."""
        for tick in ticks:
            try:
                result = await self._runs.run_catch_up(
                    namespace=cw.namespace, name=cw.name, tick=tick, now=now
                )
            except QStashOperatorError as exc:
                logger.warning("catch-up of %s at %s failed: %s", cw.key, slots.rfc3339(tick), exc)
                return
            logger.info(
                "catch-up of %s at %s: %s", cw.key, slots.rfc3339(tick), result.outcome.value
            )
            if result.outcome is Outcome.SKIPPED_FORBID:
                return
