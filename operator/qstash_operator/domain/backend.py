"""Which backend runs a CronWorkflow, and how a switch between backends is timed.

Choice: ``spec.backend`` wins; ``Auto`` means the cluster's default (``QSTASH_OPERATOR_BACKEND``),
and an ``Auto`` default means QStash when the operator can use it, else CronJob (development mode,
the seed's in-process fallback).

Switching (credentials appear or vanish, ``spec.backend`` changes) follows one rule, so the tick
in between runs once, not twice and not zero times:

1. the new backend's schedule is created first;
2. the old one stays live until ``remove_after`` = the first tick at or after ``now + grace``, plus
   a settling margin; ``grace`` covers the new backend's start-up (QStash may take up to 60 s to
   load a new schedule, wire reference 2.2; a CronJob is live as soon as it exists);
3. ticks up to that one may be served by both backends, and the Job name
   ``<name>-<unix minutes>`` lets only one Job exist per tick; after it, only the new one fires;
4. then the old schedule is deleted.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Final

from qstash_operator.domain import cron, timetable, vocabulary
from qstash_operator.domain.model import Backend, BackendChoice

QSTASH_LOAD_GRACE: Final = timedelta(seconds=60)
"""QStash documents that a new or updated schedule may take up to 60 s to fire the first time."""
SETTLE: Final = timedelta(seconds=30)
"""Margin after the shared tick before the old schedule goes: a delivery of that tick may still be
in flight (QStash retries, CronJob controller sync) and must find its Job name taken."""


@dataclasses.dataclass(frozen=True)
class BackendDecision:
    backend: Backend | None  # None: the requested backend cannot run here
    reason: str
    message: str


def decide(
    requested: BackendChoice,
    *,
    cluster_default: BackendChoice,
    qstash_problem: str | None,
    destination_refused: str | None = None,
) -> BackendDecision:
    """Pick the backend for one CronWorkflow.

    ``qstash_problem`` is why this operator cannot use QStash at all (settings);
    ``destination_refused`` is QStash's refusal of this one CronWorkflow's webhook destination,
    learned in this cycle. Either makes ``Auto`` fall back to a CronJob; an explicit QStash
    (``spec.backend`` or the cluster default) cannot run then.
    """
    effective = requested if requested is not BackendChoice.AUTO else cluster_default
    source = "spec.backend" if requested is not BackendChoice.AUTO else "QSTASH_OPERATOR_BACKEND"
    refusal = (
        f"QStash refused the destination: {destination_refused}" if destination_refused else None
    )
    problem = qstash_problem or refusal
    if effective is BackendChoice.CRONJOB:
        return BackendDecision(
            Backend.CRONJOB, vocabulary.REASON_BACKEND_SELECTED, f"{source} is CronJob"
        )
    if effective is BackendChoice.QSTASH:
        if problem is None:
            return BackendDecision(
                Backend.QSTASH, vocabulary.REASON_BACKEND_SELECTED, f"{source} is QStash"
            )
        return BackendDecision(
            None,
            vocabulary.REASON_BACKEND_UNAVAILABLE,
            f"{source} is QStash but {problem}. Configure QStash on the operator, or set "
            "spec.backend to Auto to fall back to a CronJob.",
        )
    if problem is None:
        return BackendDecision(
            Backend.QSTASH, vocabulary.REASON_BACKEND_SELECTED, "QStash is configured (Auto)"
        )
    if qstash_problem is None:
        return BackendDecision(
            Backend.CRONJOB,
            vocabulary.REASON_FALLBACK_TO_CRONJOB,
            f"{refusal}, so a native CronJob runs this CronWorkflow's schedule; QStash is asked "
            "again at its next reconcile",
        )
    return BackendDecision(
        Backend.CRONJOB,
        vocabulary.REASON_FALLBACK_TO_CRONJOB,
        f"development mode: {qstash_problem}, so a native CronJob runs the schedule",
    )


def handover_deadline(
    schedule: cron.Schedule | timetable.Timetable, *, now: datetime, to: Backend
) -> datetime:
    """When the old backend may be removed after switching to ``to`` (rule in the docstring).
    For several schedules the shared tick is the union's: the first tick of any entry."""
    grace = QSTASH_LOAD_GRACE if to is Backend.QSTASH else timedelta(0)
    shared_tick = timetable.of(schedule).next_tick(now + grace - timedelta(microseconds=1))
    return shared_tick + SETTLE
