"""When does a schedule fire? Pure decisions over the project's cron maths.

The rules (QStash's behaviour as documented, and what the operator relies on):

- a schedule never fires for a tick at or before the moment it was created or last updated:
  every schedule carries a cursor, "ticks up to here are decided", set to "now" on create, upsert
  and resume;
- each tick fires at most once: the cursor moves past it;
- a paused schedule skips its ticks (the cursor moves, nothing fires), so resuming does not
  replay the pause (section 2.2: "triggers that fall while paused are ignored");
- a scheduler that wakes late (a busy loop, a restart) fires only the *latest* missed tick, not
  every one of them, like QStash after an outage;
- a test that advances the driven clock gets every tick in between, in time order (then by
  schedule id), because that is what a test of "three minutes pass" means.

Times are timezone-aware datetimes; the cursor is stored in milliseconds by the caller.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterator, Mapping
from datetime import datetime

from qstash_operator.domain import cron


def due_tick(
    schedule: cron.Schedule, *, considered_until: datetime, now: datetime
) -> datetime | None:
    """The latest tick in ``(considered_until, now]``, or None: what a waking scheduler fires."""
    if now <= considered_until:
        return None
    latest = cron.latest_tick(schedule, now)
    if latest is None or latest <= considered_until:
        return None
    return latest


def next_due(schedule: cron.Schedule, *, considered_until: datetime) -> datetime:
    """The first tick after the cursor: when the scheduler must next look at this schedule."""
    return cron.next_tick(schedule, considered_until)


@dataclasses.dataclass(frozen=True, order=True)
class PlannedFire:
    tick: datetime
    schedule_id: str


class TooManyTicksError(ValueError):
    """Advancing that far would fire more than the caller allowed."""


def plan_advance(
    schedules: Mapping[str, tuple[cron.Schedule, datetime]],
    *,
    until: datetime,
    limit: int,
) -> list[PlannedFire]:
    """Every tick in ``(cursor, until]`` of each schedule, merged in time order, then id order.

    ``schedules`` maps id -> (schedule, cursor) for the schedules that may fire (paused ones are
    left out by the caller). More than ``limit`` ticks raise :class:`TooManyTicksError` before
    anything is returned, so an accidental "advance a year" cannot flood the destination.
    """

    def ticks(schedule_id: str, schedule: cron.Schedule, cursor: datetime) -> Iterator[PlannedFire]:
        for tick in cron.ticks_after(schedule, cursor):
            if tick > until:
                return
            yield PlannedFire(tick=tick, schedule_id=schedule_id)

    merged = heapq.merge(
        *(ticks(sid, schedule, cursor) for sid, (schedule, cursor) in sorted(schedules.items()))
    )
    planned: list[PlannedFire] = []
    for fire in merged:
        if len(planned) >= limit:
            raise TooManyTicksError(
                f"advancing to {until.isoformat()} would fire more than {limit} ticks; "
                "advance in smaller steps"
            )
        planned.append(fire)
    return planned
