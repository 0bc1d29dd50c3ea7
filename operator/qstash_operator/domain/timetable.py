"""When a CronWorkflow runs: one schedule (``spec.schedule``) or several (``spec.schedules``).

A :class:`Timetable` is the ordered list of a CronWorkflow's schedule entries, all read in the
object's one time zone. Everything that asks "which ticks are there" (the slot ledger, the
missed-run audit, catch-up, backfill, ``activeFrom``/``activeUntil``/``maxRuns``,
``status.nextScheduleTime``, ``qstash-operator next``) asks the timetable, and the timetable
answers over the *union* of its entries: a tick is an instant at least one entry fires at, and
two entries firing at the same instant make one tick, not two.

**One Job per tick, and whose parameters.** The Job of a tick is still named
``<name>-<unix minutes>`` (the lock), whichever entry's delivery (or CronJob marker) arrives
first. Its parameters are those of the *winning entry*: the first entry, in list order, whose
cron contains the tick (:meth:`Timetable.entry_for`). Every delivery of that tick computes the
identical Job, so the first create wins and the others are duplicates; which delivery came
first never changes what ran.

**Which tick a delivery is for** is judged against the delivering entry's own cron
(:meth:`Timetable.entry`): its first attempt belongs to that entry's latest tick at or before
its arrival, a retry to the entry's tick of the message's ``createdAt``. The union's neighbours
do not narrow that window: entry ``a`` at :00 and entry ``b`` at :01 are separate schedules
each with their own hour between ticks.

A single ``spec.schedule`` is a timetable of one unnamed entry (``name`` None), and behaves
exactly as the single schedule always did.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from qstash_operator.domain import cron, parameters

MAX_ENTRIES: Final = 10
"""``spec.schedules`` holds at most this many entries (the CRD's ``maxItems``): each is one
QStash schedule (or CronJob) to keep in step, and ten covers every case people asked for."""
MAX_ENTRY_NAME: Final = 32
"""Entry names are DNS labels of at most this many characters, so schedule ids stay short."""

_TICK_PROBE: Final = timedelta(seconds=1)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One schedule of a CronWorkflow."""

    name: str | None
    """``spec.schedules[].name``; None for the single ``spec.schedule``."""
    schedule: cron.Schedule
    parameters: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """The entry's own parameter values, checked against ``spec.parameters``."""

    @property
    def label(self) -> str:
        """How people read it: the entry's name, or ``schedule`` for the single one."""
        return self.name if self.name is not None else "schedule"

    def fires_at(self, tick: datetime) -> bool:
        """Whether this entry's cron has a tick at exactly ``tick``."""
        return cron.next_tick(self.schedule, tick - _TICK_PROBE) == tick


@dataclasses.dataclass(frozen=True)
class Timetable:
    """The entries in list order (at least one); see the module docstring."""

    entries: tuple[Entry, ...]

    @classmethod
    def single(cls, schedule: cron.Schedule) -> Timetable:
        return cls((Entry(None, schedule),))

    @property
    def multiple(self) -> bool:
        """Whether this is ``spec.schedules`` (named entries), not one ``spec.schedule``."""
        return self.entries[0].name is not None

    @property
    def first(self) -> cron.Schedule:
        return self.entries[0].schedule

    @property
    def zone(self) -> ZoneInfo:
        return self.first.zone

    @property
    def time_zone(self) -> str:
        return self.first.time_zone

    @property
    def expression(self) -> str:
        """What ``status.resolvedSchedule`` shows: the cron the backends run (for several
        entries, ``<name>: <cron>`` joined by ``; ``)."""
        if not self.multiple:
            return self.first.expression
        return "; ".join(f"{entry.name}: {entry.schedule.expression}" for entry in self.entries)

    @property
    def original(self) -> str:
        if not self.multiple:
            return self.first.original
        return "; ".join(f"{entry.name}: {entry.schedule.original}" for entry in self.entries)

    def applied(self) -> str:
        """What ``status.appliedSchedule`` records: the cron and zone as QStash reads them."""
        if not self.multiple:
            return self.first.qstash_cron()
        return "; ".join(f"{entry.name}: {entry.schedule.qstash_cron()}" for entry in self.entries)

    @property
    def shortest_interval(self) -> timedelta:
        """A lower bound of the time between two consecutive ticks of the union (as
        :attr:`cron.Schedule.shortest_interval`, over every entry's minutes and hours)."""
        if not self.multiple:
            return self.first.shortest_interval
        times = sorted(
            {
                hour * 60 + minute
                for entry in self.entries
                for hour in _values(entry.schedule.hour_bits, 23)
                for minute in _values(entry.schedule.minute_bits, 59)
            }
        )
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        gaps.append(times[0] + 24 * 60 - times[-1])
        return timedelta(minutes=min(gaps))

    # -- entries -------------------------------------------------------------------------

    def entry(self, name: str | None) -> Entry | None:
        """The entry named ``name`` (None: the single schedule's); None when there is none."""
        for entry in self.entries:
            if entry.name == name:
                return entry
        return None

    def entry_for(self, tick: datetime) -> Entry | None:
        """The winning entry of ``tick``: the first in list order whose cron contains it."""
        if not self.multiple:
            return self.entries[0] if self.entries[0].fires_at(tick) else None
        for entry in self.entries:
            if entry.fires_at(tick):
                return entry
        return None

    def values_for(
        self, declared: Sequence[parameters.Parameter], tick: datetime | None
    ) -> dict[str, str]:
        """The parameters a scheduled run of ``tick`` gets: the winning entry's values over the
        defaults (the defaults alone for a single schedule, or a tick no entry contains)."""
        winner = None if tick is None else self.entry_for(tick)
        base = winner.parameters if winner is not None else None
        return parameters.values(declared, base=base)

    # -- the union's ticks ---------------------------------------------------------------

    def ticks_after(self, after: datetime) -> Iterator[datetime]:
        """Ticks of the union strictly after ``after``, in time order, each once."""
        if not self.multiple:
            yield from cron.ticks_after(self.first, after)
            return
        previous: datetime | None = None
        merged = heapq.merge(*(cron.ticks_after(entry.schedule, after) for entry in self.entries))
        for tick in merged:
            if tick != previous:
                yield tick
            previous = tick

    def next_ticks(self, after: datetime, count: int) -> list[datetime]:
        return list(itertools.islice(self.ticks_after(after), count))

    def next_tick(self, after: datetime) -> datetime:
        for tick in self.ticks_after(after):
            return tick
        raise ValueError(f"{self.original!r} has no tick within {cron.YEARS_SEARCHED} years")

    def latest_tick(self, at: datetime) -> datetime | None:
        """The union's most recent tick at or before ``at``."""
        found = [cron.latest_tick(entry.schedule, at) for entry in self.entries]
        return max((tick for tick in found if tick is not None), default=None)

    def ticks_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Ticks in ``(start, end]``: the first :data:`cron.MAX_MISSED_TICKS` at most."""
        result: list[datetime] = []
        for tick in self.ticks_after(start):
            if tick > end or len(result) >= cron.MAX_MISSED_TICKS:
                break
            result.append(tick)
        return result

    def tick_for_delivery(
        self, delivered_at: datetime, *, early_tolerance: timedelta, first_attempt: bool
    ) -> datetime | None:
        """:func:`cron.tick_for_delivery` over the union (for a delivery of no current entry,
        e.g. of the schedule being retired while ``spec.schedule`` moves to ``schedules``)."""
        if not self.multiple:
            return cron.tick_for_delivery(
                self.first,
                delivered_at,
                early_tolerance=early_tolerance,
                first_attempt=first_attempt,
            )
        latest = self.latest_tick(delivered_at)
        if first_attempt:
            upcoming = self.next_tick(delivered_at)
            window = min(early_tolerance, self.shortest_interval / cron.EARLY_WINDOW_SHARE)
            if latest is not None:
                window = min(window, (upcoming - latest) / cron.EARLY_WINDOW_SHARE)
            if upcoming - delivered_at <= window:
                return upcoming
        return latest

    def daylight_saving_days(
        self, now: datetime, horizon: timedelta = cron.DAYLIGHT_SAVING_HORIZON
    ) -> list[cron.DaylightSavingDay]:
        """Every entry's daylight-saving days (:func:`cron.daylight_saving_days`), in order."""
        if not self.multiple:
            return cron.daylight_saving_days(self.first, now, horizon)
        days = [
            day
            for entry in self.entries
            for day in cron.daylight_saving_days(entry.schedule, now, horizon)
        ]
        unique = {(day.first_instant, day.effect, day.times): day for day in days}
        return sorted(unique.values(), key=lambda day: (day.first_instant, day.effect.value))

    def next_daylight_saving_day(self, now: datetime) -> cron.DaylightSavingDay | None:
        days = self.daylight_saving_days(now)
        return days[0] if days else None


def of(schedule: cron.Schedule | Timetable) -> Timetable:
    """A timetable, from a timetable or one schedule (for callers that hold either)."""
    return schedule if isinstance(schedule, Timetable) else Timetable.single(schedule)


def _values(bits: int, high: int) -> list[int]:
    return [value for value in range(high + 1) if bits >> value & 1]
