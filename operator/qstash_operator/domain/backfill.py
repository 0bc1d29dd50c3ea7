"""Backfill: run the slots of a past time range that have no Job, through the tick run path.

``qstash-operator backfill <ns>/<name> --from T1 --to T2`` and
``POST /api/cron/backfill/{ns}/{name}`` list the slots in ``[T1, T2]`` by the cron model (the
ticks both backends would have fired, ``H`` resolved, in ``spec.timeZone``), skip every slot
whose Job exists (a slot's Job is named ``<name>-<unix minutes>`` whoever makes it, so a slot that
ran, or that another backfill is running, is recognised by name), and create the rest as the
ticks' own Jobs: same names, same ``scheduled-time`` annotation, planned by
``runs.plan_backfill`` and made by the run service's create path, as deliveries are.

How many at a time (:func:`batch`): without ``parallel``, ``concurrencyPolicy`` decides: ``Allow``
creates every missing slot at once; ``Forbid`` and ``Replace`` one at a time, the next only once
no Job of the CronWorkflow is active (the CLI calls again until done), so a backfill never runs
beside, or replaces, a live run. With ``parallel = N`` the policy is set aside and up to N Jobs of
the CronWorkflow run at once. Slots are taken oldest first. The range must be in the past (a
backfill is not a schedule) and hold at most :data:`MAX_SLOTS` slots.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Final

from qstash_operator.domain import naming
from qstash_operator.domain.errors import InvalidSpecError
from qstash_operator.domain.model import ConcurrencyPolicy, CronWorkflow

MAX_SLOTS: Final = 1000
"""A backfill names its slots in one answer; a range with more is refused (split it)."""
REASON_INVALID_RANGE: Final = "InvalidBackfillRange"
_SECOND: Final = timedelta(seconds=1)


@dataclasses.dataclass(frozen=True)
class BackfillPlan:
    slots: tuple[datetime, ...]
    """Every slot in the range, oldest first."""
    existing: tuple[datetime, ...]
    """Slots whose Job exists: skipped."""
    missing: tuple[datetime, ...]
    """Slots without a Job, oldest first."""
    now: tuple[datetime, ...]
    """The ones to create in this call (:func:`batch`)."""

    @property
    def pending(self) -> tuple[datetime, ...]:
        """Missing slots left for a later call (concurrency allowed fewer now)."""
        return self.missing[len(self.now) :]


def slots(cw: CronWorkflow, start: datetime, end: datetime, *, now: datetime) -> list[datetime]:
    """The ticks in ``[start, end]`` (both ends included), checked: a past, bounded range."""
    if end < start:
        raise InvalidSpecError(
            "to", f"{end.isoformat()} is before from {start.isoformat()}", "Swap them.",
            reason=REASON_INVALID_RANGE,
        )  # fmt: skip
    if end > now:
        raise InvalidSpecError(
            "to",
            f"{end.isoformat()} is in the future",
            "Backfill past slots only; the schedule runs the coming ones.",
            reason=REASON_INVALID_RANGE,
        )
    found: list[datetime] = []
    for tick in cw.spec.timetable.ticks_after(start - _SECOND):
        if tick > end:
            break
        if len(found) == MAX_SLOTS:
            raise InvalidSpecError(
                "to",
                f"the range holds more than {MAX_SLOTS} slots",
                "Backfill it in parts.",
                reason=REASON_INVALID_RANGE,
            )
        found.append(tick)
    return found


def batch(
    cw: CronWorkflow, missing: list[datetime], *, active: int, parallel: int | None
) -> list[datetime]:
    """Which missing slots to create now, given ``active`` running Jobs (rule in the docstring)."""
    if parallel is not None:
        return missing[: max(parallel - active, 0)]
    if cw.spec.concurrency_policy is ConcurrencyPolicy.ALLOW:
        return missing
    return missing[:1] if active == 0 else []


def plan(
    cw: CronWorkflow,
    *,
    start: datetime,
    end: datetime,
    job_names: Iterable[str],
    active: int,
    parallel: int | None,
    now: datetime,
) -> BackfillPlan:
    """The slots of ``[start, end]``, which have Jobs, and which to create in this call."""
    if parallel is not None and parallel < 1:
        raise InvalidSpecError(
            "parallel", f"{parallel} is below 1", "Give 1 or more.", reason=REASON_INVALID_RANGE
        )
    every = slots(cw, start, end, now=now)
    names = set(job_names)
    existing = [slot for slot in every if naming.job_name(cw.name, slot) in names]
    missing = [slot for slot in every if naming.job_name(cw.name, slot) not in names]
    return BackfillPlan(
        slots=tuple(every),
        existing=tuple(existing),
        missing=tuple(missing),
        now=tuple(batch(cw, missing, active=active, parallel=parallel)),
    )
