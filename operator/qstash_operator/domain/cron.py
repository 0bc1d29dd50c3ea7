"""Cron maths: validate a schedule, list fire times, find the tick a delivery belongs to.

Pure functions over croniter; every "now" is an argument (timezone-aware). Shared by the operator
(``nextScheduleTime``), the webhook (deriving the tick of a delivery) and the QStash-compatible
server (when to fire), so all three agree to the minute.

The accepted language is what both backends understand: five fields (minute hour day-of-month
month day-of-week) with numbers, ``*``, ``,``, ``-``, ``/``, month and weekday names and ``?``, or
one of the macros ``@hourly @daily @midnight @weekly @monthly @yearly @annually``. croniter's
extensions (``L``, ``W``, ``#``, ``H``, a seconds or year field) are refused, because QStash's
parser (robfig/cron, per the wire reference section 2.4) and the CronJob controller reject them.

Daylight-saving time, one rule for both directions (Vixie cron's, which people expect):

- spring forward: a tick whose local time does not exist runs at the first instant after the gap
  (``30 2 * * *`` in Europe/Berlin on the last Sunday of March runs at 03:00 local);
- fall back: a schedule with a fixed hour runs once, at the first occurrence of the repeated local
  time; a schedule whose hour field is ``*`` (or ``*/n``) keeps every tick, as the clock says.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from qstash_operator.domain.errors import InvalidSpecError
from qstash_operator.domain.vocabulary import REASON_INVALID_SCHEDULE, REASON_UNKNOWN_TIME_ZONE

MACROS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_FIELD = re.compile(r"^[0-9A-Za-z*,/?-]+$")
_FORBIDDEN_EXTENSIONS = re.compile(r"[LWH#]")  # croniter-only: last, weekday, hash, nth
_NAMES = re.compile(r"[A-Za-z]{3}")
_FIELD_NAMES: Final = ("minute", "hour", "day of month", "month", "day of week")

MAX_MISSED_TICKS: Final = 100
"""Upper bound when enumerating ticks in a window, as the CronJob controller caps missed starts:
a schedule wedged for days must not make one call walk thousands of minutes."""


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A validated schedule in its time zone. Build it with :func:`parse`."""

    expression: str  # the five fields, macros expanded
    time_zone: str  # IANA name
    original: str  # what the user wrote

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def fixed_hour(self) -> bool:
        """True when the hour field names hours (then a repeated DST hour fires once)."""
        hour = self.expression.split()[1]
        return not (hour == "*" or hour.startswith("*/"))

    def qstash_cron(self) -> str:
        """The ``Upstash-Cron`` header value: ``CRON_TZ=<zone> <five fields>``."""
        return f"CRON_TZ={self.time_zone} {self.expression}"


def load_zone(time_zone: str, *, field: str = "spec.timeZone") -> ZoneInfo:
    """The zone for an IANA name, or an :class:`InvalidSpecError` naming ``field``."""
    if not time_zone or time_zone.startswith(("/", ".")) or ".." in time_zone:
        raise InvalidSpecError(
            field,
            f"{time_zone!r} is not an IANA time zone name",
            "Use a name such as UTC, Europe/Berlin or America/New_York.",
            reason=REASON_UNKNOWN_TIME_ZONE,
        )
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidSpecError(
            field,
            f"unknown time zone {time_zone!r}",
            "Use an IANA name such as UTC, Europe/Berlin or America/New_York "
            "(see `timedatectl list-timezones`).",
            reason=REASON_UNKNOWN_TIME_ZONE,
        ) from exc


def parse(expression: str, time_zone: str = "UTC", *, field: str = "spec.schedule") -> Schedule:
    """Validate ``expression`` in ``time_zone``; an :class:`InvalidSpecError` names the field."""
    original = expression
    text = " ".join(expression.split())

    def bad(problem: str, fix: str) -> InvalidSpecError:
        return InvalidSpecError(field, problem, fix, reason=REASON_INVALID_SCHEDULE)

    if not text:
        raise bad("the schedule is empty", 'Write five cron fields, e.g. "*/5 * * * *".')
    if text.upper().startswith(("CRON_TZ=", "TZ=")):
        raise bad(
            "the time zone must not be written inside the schedule",
            "Remove the CRON_TZ=/TZ= prefix and set spec.timeZone instead.",
        )
    if text.startswith("@"):
        expanded = MACROS.get(text.lower())
        if expanded is None:
            raise bad(
                f"unknown macro {text!r}",
                "Use one of " + ", ".join(sorted(MACROS)) + ", or five cron fields.",
            )
        text = expanded
    fields = text.split(" ")
    if len(fields) != 5:
        hint = (
            " QStash's resolution is one minute: remove the seconds field."
            if len(fields) == 6
            else ""
        )
        raise bad(
            f"expected exactly 5 fields, found {len(fields)}",
            "Write minute hour day-of-month month day-of-week, e.g. '0 3 * * *'." + hint,
        )
    for name, value in zip(_FIELD_NAMES, fields, strict=True):
        without_names = _NAMES.sub("", value)
        if not _FIELD.match(value) or _FORBIDDEN_EXTENSIONS.search(without_names):
            raise bad(
                f"the {name} field {value!r} uses syntax QStash and CronJobs do not accept",
                "Use numbers, names, '*', ',', '-' and '/' only (no L, W, # or H).",
            )
    zone = load_zone(time_zone)
    try:
        croniter(text, datetime(2000, 1, 1, tzinfo=zone))
    except (ValueError, KeyError, TypeError) as exc:
        raise bad(
            f"{original!r} is not a valid cron expression ({exc})", "Check each field's range."
        ) from exc
    if not croniter.is_valid(text):
        raise bad(f"{original!r} is not a valid cron expression", "Check each field's range.")
    schedule = Schedule(expression=text, time_zone=time_zone, original=original)
    # A valid expression that can never fire (e.g. 30 February) is a spec error too.
    try:
        next(_raw_ticks_after(schedule, datetime(2000, 1, 1, tzinfo=UTC)))
    except (StopIteration, ValueError, KeyError) as exc:
        raise bad(f"{original!r} never fires", "Check the day-of-month and month fields.") from exc
    return schedule


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("cron maths needs timezone-aware datetimes")


def _raw_ticks_after(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    it = croniter(schedule.expression, after.astimezone(schedule.zone))
    while True:
        yield it.get_next(datetime)


def _is_repeat(tick: datetime) -> bool:
    """True for the second occurrence of an ambiguous local time (the hour after a fall back).

    ``fold`` alone is not enough: croniter sets it on times that are not ambiguous at all.
    """
    if tick.fold != 1:
        return False
    return tick.replace(fold=0).utcoffset() != tick.replace(fold=1).utcoffset()


def _keep(schedule: Schedule, tick: datetime) -> bool:
    """The fall-back rule: drop the repeat of a fixed-hour tick."""
    return not (schedule.fixed_hour and _is_repeat(tick))


def ticks_after(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    """Fire times strictly after ``after``, in UTC, without end."""
    _require_aware(after)
    for tick in _raw_ticks_after(schedule, after):
        if _keep(schedule, tick):
            yield tick.astimezone(UTC)


def next_ticks(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times strictly after ``after``, in UTC."""
    result: list[datetime] = []
    for tick in ticks_after(schedule, after):
        if len(result) >= count:
            break
        result.append(tick)
    return result


def next_tick(schedule: Schedule, after: datetime) -> datetime:
    """The first fire time strictly after ``after``, in UTC."""
    return next(ticks_after(schedule, after))


def latest_tick(schedule: Schedule, at: datetime) -> datetime | None:
    """The most recent fire time at or before ``at`` (UTC), or None if there is none in a year.

    Walks backwards with croniter's ``get_prev`` from just after ``at`` so a tick exactly at ``at``
    counts; repeated fixed-hour ticks are skipped as in :func:`ticks_after`.
    """
    _require_aware(at)
    start = (at + timedelta(microseconds=1)).astimezone(schedule.zone)
    it = croniter(schedule.expression, start)
    floor = at - timedelta(days=366 * 5)  # @yearly on 29 February needs up to four years
    while True:
        tick: datetime = it.get_prev(datetime)
        if tick < floor:
            return None
        if _keep(schedule, tick):
            return tick.astimezone(UTC)


def tick_for_delivery(
    schedule: Schedule, delivered_at: datetime, *, early_tolerance: timedelta
) -> datetime | None:
    """The tick a delivery at ``delivered_at`` belongs to.

    QStash does not say which tick it is delivering (wire reference section 3.1), so the tick is
    the latest one at or before the delivery time. A delivery that arrives up to
    ``early_tolerance`` *before* a tick (QStash's clock ahead of ours) belongs to that coming tick.
    """
    _require_aware(delivered_at)
    upcoming = next_tick(schedule, delivered_at)
    if upcoming - delivered_at <= early_tolerance:
        return upcoming
    return latest_tick(schedule, delivered_at)


def ticks_between(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Ticks in ``(start, end]`` in UTC: the first :data:`MAX_MISSED_TICKS` of them at most."""
    result: list[datetime] = []
    for tick in ticks_after(schedule, start):
        if tick > end or len(result) >= MAX_MISSED_TICKS:
            break
        result.append(tick)
    return result
