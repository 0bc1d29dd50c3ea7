"""When does a schedule fire? Pure decisions over the project's cron maths (robfig's walk, so
a tick in a spring-forward gap does not fire that day and one in a repeated hour fires twice,
as QStash and the CronJob controller do).

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

import bisect
import dataclasses
from collections.abc import Mapping
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

    Ticks are enumerated once per distinct schedule (from the earliest cursor among the ids that
    share it), not once per id: a thousand CronWorkflows on ``0 * * * *`` cost one cron walk.
    """
    groups: dict[cron.Schedule, list[tuple[str, datetime]]] = {}
    for schedule_id, (schedule, cursor) in schedules.items():
        groups.setdefault(schedule, []).append((schedule_id, cursor))
    planned: list[PlannedFire] = []
    for schedule, members in groups.items():
        earliest = min(cursor for _, cursor in members)
        ticks: list[datetime] = []
        for tick in cron.ticks_after(schedule, earliest):
            if tick > until or len(ticks) > limit:
                break
            ticks.append(tick)
        for schedule_id, cursor in members:
            for tick in ticks[bisect.bisect_right(ticks, cursor) :]:
                planned.append(PlannedFire(tick=tick, schedule_id=schedule_id))
                if len(planned) > limit:
                    raise TooManyTicksError(
                        f"advancing to {until.isoformat()} would fire more than {limit} ticks; "
                        "advance in smaller steps"
                    )
    planned.sort()
    return planned


class TickCache:
    """:func:`due_tick` and :func:`next_due` memoised for one scheduler pass.

    In one pass every schedule is asked about the same "now", so schedules that share a cron
    expression and zone share the answer instead of each walking the same fields again.
    """

    def __init__(self) -> None:
        self._latest: dict[tuple[cron.Schedule, datetime], datetime | None] = {}
        self._next: dict[tuple[cron.Schedule, datetime], datetime] = {}

    def due_tick(
        self, schedule: cron.Schedule, *, considered_until: datetime, now: datetime
    ) -> datetime | None:
        if now <= considered_until:
            return None
        key = (schedule, now)
        if key not in self._latest:
            self._latest[key] = cron.latest_tick(schedule, now)
        latest = self._latest[key]
        if latest is None or latest <= considered_until:
            return None
        return latest

    def next_due(self, schedule: cron.Schedule, *, considered_until: datetime) -> datetime:
        key = (schedule, considered_until)
        if key not in self._next:
            self._next[key] = next_due(schedule, considered_until=considered_until)
        return self._next[key]
