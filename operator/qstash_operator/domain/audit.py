"""The slot audit's decision for one CronWorkflow: its ledger, what to catch up, how fresh it is.

Pure: the operator's audit timer hands in the CronWorkflow as its watch saw it and the Jobs its
index holds (no API call), and gets back the status patch to write (empty when nothing
changed, so a steady CronWorkflow costs no write), the missed slots to run now, oldest first,
and the freshness verdict for the gauges. The rules are :mod:`qstash_operator.domain.slots`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from qstash_operator.domain import conditions, slots, vocabulary
from qstash_operator.domain.conditions import Condition
from qstash_operator.domain.model import CronWorkflow, JsonDict


@dataclasses.dataclass(frozen=True)
class AuditPlan:
    ledger: list[slots.Slot]
    patch: JsonDict
    catch_up: list[datetime]
    freshness: slots.FreshnessVerdict | None
    last_success: datetime | None


def plan_audit(
    cw: CronWorkflow,
    status: Mapping[str, Any],
    jobs: Sequence[slots.SlotJob],
    *,
    now: datetime,
    grace: timedelta,
) -> AuditPlan:
    options = cw.spec.slot_options
    parsed = slots.parse_ledger(status.get("recentSlots"))
    schedule_since = slots.parse_time(status.get("scheduleSince"))
    ledger = slots.build_ledger(
        slots.LedgerInputs(
            schedule=cw.spec.timetable,
            cronworkflow_uid=cw.uid,
            previous=parsed,
            jobs=jobs,
            schedule_since=schedule_since,
            suspensions=slots.parse_suspensions(status.get("suspensions")),
            suspended_now=cw.spec.suspend,
            last_schedule_time=slots.parse_time(status.get("lastScheduleTime")),
            backend=status.get("backend"),
            limit=options.history_limit,
            grace=grace,
        ),
        now=now,
    )
    patch: JsonDict = {}
    written = slots.ledger_status(ledger)
    if written != (status.get("recentSlots") or []):
        patch["recentSlots"] = written
    last_success = slots.parse_time(status.get("lastSuccessfulTime"))
    verdict = None
    existing = conditions.find(status.get("conditions"), vocabulary.CONDITION_FRESH)
    if options.freshness is not None:
        verdict = slots.judge_freshness(
            options.freshness,
            ledger,
            last_success=last_success,
            since=schedule_since,
            suspended=cw.spec.suspend,
            now=now,
        )
        update = Condition(
            vocabulary.CONDITION_FRESH, verdict.fresh, verdict.reason, verdict.message
        )
        if existing is None or (
            existing.get("status"),
            existing.get("reason"),
            existing.get("message"),
        ) != (
            update.status_text,
            update.reason,
            update.message,
        ):
            patch["conditions"] = conditions.merge(
                status.get("conditions"), [update], now=now, generation=cw.generation
            )
    elif existing is not None:  # spec.freshness was removed: so is its verdict
        patch["conditions"] = [
            item
            for item in status.get("conditions") or []
            if isinstance(item, dict) and item.get("type") != vocabulary.CONDITION_FRESH
        ]
    return AuditPlan(
        ledger=ledger,
        patch=patch,
        # Suspended: nothing runs, and the suspended time is never replayed on resume.
        catch_up=[] if cw.spec.suspend else slots.catch_up_slots(ledger, options.catch_up, now=now),
        freshness=verdict,
        last_success=last_success,
    )
