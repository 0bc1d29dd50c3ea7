"""Cron maths equal to robfig/cron v3, the parser and walk both of our backends run.

The Kubernetes CronJob controller parses ``TZ=<spec.timeZone> <spec.schedule>`` with
``cron.ParseStandard`` and fires at ``Schedule.Next``; QStash's ``CRON_TZ=`` syntax and error
texts are robfig's too (wire reference section 2.4). So this module is one model of
``ParseStandard`` (robfig/cron v3.0.1, ``parser.go``) and ``SpecSchedule.Next`` (``spec.go``),
used by the operator (``status.nextScheduleTime``, ``qstash-operator next``), the webhook (the
tick a delivery belongs to) and the QStash-compatible server (when to fire), so all of them fire
when the real engines fire. ``tests/unit/domain/test_cron_robfig.py`` compares it with robfig
itself, compiled from the Go module proxy, on tens of thousands of generated cases.

What robfig's standard parser accepts, and so do we: five fields (minute hour day-of-month month
day-of-week) split on whitespace; in each field a comma list (empty items dropped) of ``*`` or
``?``, a number, a range ``a-b``, each optionally with a step ``/n`` (``a/n`` means ``a-max/n``;
a step beyond the range, ``*/61``, is allowed and selects the start only); month names JAN-DEC
and weekday names SUN-SAT in any case; weekdays 0-6 (``7`` is refused); the descriptors
``@yearly @annually @monthly @weekly @daily @midnight @hourly`` (exactly so, lower case); and a
``CRON_TZ=<zone> `` or ``TZ=<zone> `` prefix (:func:`parse_standard`). Day of month and day of
week: when either field contains a ``*`` or ``?`` with no step or step 1 (robfig's *star bit*)
a day must match both; when both are restricted a day matches either. So ``0 0 13 * */1`` is
every 13th, while ``0 0 13 * */2`` is every 13th *and* every Sunday, Tuesday, Thursday and
Saturday (a step above 1 clears the star bit).

Refusals robfig does not make, each a choice: ``@every <duration>`` (a fixed interval is not a
cron schedule and the CronJob backend would drift from QStash's); schedules that never fire (30
February, an empty field such as ``,``), where robfig's ``Next`` would just return the zero time;
a time zone written inside ``spec.schedule`` (``spec.timeZone`` carries it, as for CronJobs, whose
API refuses ``TZ=`` in the schedule too); and the zone name ``Local`` (Kubernetes refuses it
too). The CRD's admission rules are a little stricter still, so a typo fails at ``kubectl apply``:
fields of ASCII letters, digits and ``* , / ? -`` only (no ``+5``), separated by ASCII whitespace.

Daylight-saving time is robfig's literal walk, not a rule of ours. ``Next`` looks for matching
fields in local time, stepping months and days by the calendar and hours, minutes and seconds by
elapsed time; Go's ``time.Date`` resolves a wall time in a gap or a repeat by the offset found at
that wall time read as UTC (east of Greenwich a gap moves forward, west of it backward), and a
result that lands in another hour fails to match and walks on. The effects people meet:

- spring forward: a tick whose local time falls in the gap **does not run that day**
  (``30 2 * * *`` in Europe/Berlin skips the last Sunday of March, robfig's doc says as much);
- fall back: a tick in the repeated hour **runs twice**, once per occurrence (``30 1 * * *`` in
  America/New_York runs at 01:30 EDT and at 01:30 EST), whatever the hour field says;
- a zone that shifts by 30 minutes (Australia/Lord_Howe) or changes at midnight
  (America/Santiago) can also lose a tick later that day or fire one on the following day,
  because the walk steps whole hours from a shifted clock.

:func:`daylight_saving_days` lists the days a schedule is affected, ahead of time. To avoid all
of it, schedule in UTC; or, in Europe and North America, whose clocks change between 01:00 and
03:00 local time, keep the hour field outside 01-02. Some zones change at other hours (Chile at
midnight, Pacific/Chatham at 02:45-03:45) and Lord Howe's 30-minute shift costs fixed-minute
schedules the rest of that day, so there only UTC is safe.

Every "now" is an argument (timezone-aware); results are UTC datetimes to the second.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import functools
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
"""robfig's descriptors and the five fields each stands for (the same bits, star bits included)."""

MAX_MISSED_TICKS: Final = 100
"""Upper bound when enumerating ticks in a window, as the CronJob controller caps missed starts:
a schedule wedged for days must not make one call walk thousands of minutes."""

EARLY_WINDOW_SHARE: Final = 4
"""A first delivery counts as early for the coming tick only within a quarter of the schedule's
shortest interval (and within the clock tolerance): well below the half-way point, so a late
delivery of the previous tick is never booked to the next one."""

DAYLIGHT_SAVING_HORIZON: Final = timedelta(days=400)
"""How far :func:`daylight_saving_days` looks ahead: every zone's next two transitions."""

YEARS_SEARCHED: Final = 5
"""robfig's ``Next`` gives up (returns the zero time) when no tick is found within five years."""

STAR_BIT: Final = 1 << 63
"""robfig sets this bit on a field whose list has a ``*``/``?`` item with no step (or step 1)."""

_SECOND: Final = timedelta(seconds=1)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_DAY_SECONDS: Final = 86_400
_INT64_MAX: Final = (1 << 63) - 1

# Go's unicode.IsSpace, which strings.Fields and strings.TrimSpace use (Python's str.split also
# splits on the ASCII separators 0x1c-0x1f, which Go does not).
_GO_SPACE: Final = (
    "\t\n\v\f\r \x85\xa0\u1680"
    + "".join(chr(code) for code in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_GO_FIELDS: Final = re.compile(f"[{re.escape(_GO_SPACE)}]+")
_ATOI: Final = re.compile(r"[+-]?[0-9]+")  # strconv.Atoi in base 10: a sign, ASCII digits


@dataclasses.dataclass(frozen=True)
class _Field:
    """One of the five fields: its bounds, names and what to tell someone who got it wrong."""

    label: str
    low: int
    high: int
    names: Mapping[str, int]
    fix: str


_MINUTE: Final = _Field("minute", 0, 59, {}, "Minutes are 0-59.")
_HOUR: Final = _Field("hour", 0, 23, {}, "Hours are 0-23.")
_DAY_OF_MONTH: Final = _Field("day-of-month", 1, 31, {}, "Days of the month are 1-31.")
_MONTH: Final = _Field(
    "month",
    1,
    12,
    {
        name: number
        for number, name in enumerate(
            ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
            start=1,
        )
    },
    "Months are 1-12 or JAN-DEC.",
)
_DAY_OF_WEEK: Final = _Field(
    "day-of-week",
    0,
    6,
    {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
    "Days of the week are 0-6 (0 is Sunday) or SUN-SAT; robfig/cron, which QStash and CronJobs "
    "use, refuses 7.",
)
_FIELDS: Final = (_MINUTE, _HOUR, _DAY_OF_MONTH, _MONTH, _DAY_OF_WEEK)
_UNSUPPORTED_SYNTAX: Final = re.compile(r"[LW#H]")
_NAME: Final = re.compile(
    "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|sun|mon|tue|wed|thu|fri|sat", re.IGNORECASE
)


class _RangeError(ValueError):
    """robfig's message for one bad range (``getRange``); the caller names the field."""


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A validated schedule in its time zone. Build it with :func:`parse` or :func:`parse_standard`.

    The ``*_bits`` are robfig's bit sets: bit ``n`` set when value ``n`` matches, plus
    :data:`STAR_BIT` as robfig sets it.
    """

    expression: str  # the five fields, macros expanded, single spaces: what the backends are sent
    time_zone: str  # IANA name
    original: str  # what the user wrote
    minute_bits: int = dataclasses.field(repr=False)
    hour_bits: int = dataclasses.field(repr=False)
    day_bits: int = dataclasses.field(repr=False)
    month_bits: int = dataclasses.field(repr=False)
    weekday_bits: int = dataclasses.field(repr=False)
    zone: ZoneInfo = dataclasses.field(repr=False, compare=False, hash=False)

    def qstash_cron(self) -> str:
        """The ``Upstash-Cron`` header value: ``CRON_TZ=<zone> <five fields>``."""
        return f"CRON_TZ={self.time_zone} {self.expression}"

    @property
    def shortest_interval(self) -> timedelta:
        """A lower bound of the time between two consecutive ticks on an ordinary day.

        From the minute and hour fields alone, counting the step from the day's last tick to the
        next day's first as if every day ran (so it can only be too short, never too long).
        Daylight-saving days can bring two ticks closer (a repeated hour); callers that care
        also look at the actual neighbours (:func:`tick_for_delivery` does).
        """
        minutes = _values(self.minute_bits, 0, 59)
        times = [
            hour * 60 + minute for hour in _values(self.hour_bits, 0, 23) for minute in minutes
        ]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        gaps.append(times[0] + 24 * 60 - times[-1])
        return timedelta(minutes=min(gaps))


def _values(bits: int, low: int, high: int) -> list[int]:
    return [value for value in range(low, high + 1) if bits >> value & 1]


# -- parsing ------------------------------------------------------------------------------------


def load_zone(time_zone: str, *, field: str = "spec.timeZone") -> ZoneInfo:
    """The zone for an IANA name, or an :class:`InvalidSpecError` naming ``field``.

    Python's zoneinfo and Go's ``time`` read the same files (``/usr/share/zoneinfo`` first), so
    both sides of a comparison see the same rules.
    """
    if not time_zone or time_zone.startswith(("/", ".", "\\")) or ".." in time_zone:
        raise InvalidSpecError(
            field,
            f"{time_zone!r} is not an IANA time zone name",
            "Use a name such as UTC, Europe/Berlin or America/New_York.",
            reason=REASON_UNKNOWN_TIME_ZONE,
        )
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidSpecError(
            field,
            f"unknown time zone {time_zone!r}",
            "Use an IANA name such as UTC, Europe/Berlin or America/New_York "
            "(see `timedatectl list-timezones`).",
            reason=REASON_UNKNOWN_TIME_ZONE,
        ) from exc


def parse(expression: str, time_zone: str = "UTC", *, field: str = "spec.schedule") -> Schedule:
    """``spec.schedule`` read in ``spec.timeZone``, as the CronJob controller reads it.

    Accepts exactly what robfig accepts for ``TZ=<time_zone> <expression>`` except the refusals
    the module docstring lists; an :class:`InvalidSpecError` names ``field`` (``spec.timeZone``
    for a bad zone) and says what to write instead.
    """
    text = expression.strip(_GO_SPACE)
    if text.upper().startswith(("CRON_TZ=", "TZ=")):
        raise _bad(
            field,
            "the time zone must not be written inside the schedule",
            "Remove the CRON_TZ=/TZ= prefix and set spec.timeZone instead.",
        )
    if not text:
        raise _bad(field, "the schedule is empty", 'Write five cron fields, e.g. "*/5 * * * *".')
    zone = load_zone(time_zone)
    return _parse_spec(text, time_zone, zone, original=expression, field=field)


def parse_standard(spec: str, *, local_zone: str = "UTC", field: str = "Upstash-Cron") -> Schedule:
    """robfig's ``ParseStandard(spec)``, with ``local_zone`` standing for Go's ``time.Local``.

    For texts that carry their zone, such as QStash's ``Upstash-Cron`` (``CRON_TZ=<zone> ...``,
    read in UTC without the prefix). robfig's quirks are kept: the prefix is case-sensitive, the
    zone ends at the first space and ``TZ= ...`` (an empty name) is UTC. A bad zone is reported
    against ``field``, like everything else here.
    """
    if not spec:
        raise _bad(field, "empty spec string", 'Write five cron fields, e.g. "*/5 * * * *".')
    time_zone = local_zone
    text = spec
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")
        if space < 0:
            raise _bad(
                field,
                f"the time zone prefix of {spec!r} is not followed by a space and a schedule",
                'Write e.g. "CRON_TZ=Europe/Berlin 0 3 * * *".',
            )
        time_zone = spec[spec.index("=") + 1 : space] or "UTC"
        text = spec[space:].strip(_GO_SPACE)
    try:
        zone = load_zone(time_zone, field=field)
    except InvalidSpecError as exc:
        invalid = time_zone.startswith(("/", "\\")) or ".." in time_zone
        cause = "time: invalid location name" if invalid else f"unknown time zone {time_zone}"
        raise InvalidSpecError(
            field, f"provided bad location {time_zone}: {cause}", exc.fix, reason=exc.reason
        ) from exc
    return _parse_spec(text, time_zone, zone, original=spec, field=field)


def _bad(field: str, problem: str, fix: str) -> InvalidSpecError:
    return InvalidSpecError(field, problem, fix, reason=REASON_INVALID_SCHEDULE)


def _parse_spec(
    text: str, time_zone: str, zone: ZoneInfo, *, original: str, field: str
) -> Schedule:
    """robfig's parser after the zone prefix: a descriptor, or five fields (``Parser.Parse``)."""
    if text.startswith("@"):
        expression = MACROS.get(text)
        if expression is None:
            if text.startswith("@every "):
                raise _bad(
                    field,
                    f"{text!r} is a fixed interval, which this operator does not accept",
                    'Write it as cron fields, e.g. "*/15 * * * *" for @every 15m.',
                )
            raise _bad(
                field,
                f"unrecognized descriptor: {text}",
                "Use one of " + ", ".join(sorted(MACROS)) + " (lower case), or five cron fields.",
            )
        fields = expression.split(" ")
    else:
        fields = [item for item in _GO_FIELDS.split(text) if item]
        if len(fields) != 5:
            hint = (
                " QStash's resolution is one minute: remove the seconds field."
                if len(fields) == 6
                else ""
            )
            raise _bad(
                field,
                f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]",
                "Write minute hour day-of-month month day-of-week, e.g. '0 3 * * *'." + hint,
            )
    bits = []
    for spec_field, value in zip(_FIELDS, fields, strict=True):
        try:
            bits.append(_field_bits(value, spec_field))
        except _RangeError as exc:
            fix = spec_field.fix
            if _UNSUPPORTED_SYNTAX.search(_NAME.sub("", value).upper()):
                fix += (
                    " L, W, # and H (croniter's and Quartz's extensions) are not cron syntax here."
                )
            raise _bad(field, f"the {spec_field.label} field {value!r}: {exc}", fix) from None
    minute_bits, hour_bits, day_bits, month_bits, weekday_bits = bits
    schedule = Schedule(
        expression=" ".join(fields),
        time_zone=time_zone,
        original=original,
        minute_bits=minute_bits,
        hour_bits=hour_bits,
        day_bits=day_bits,
        month_bits=month_bits,
        weekday_bits=weekday_bits,
        zone=zone,
    )
    never = _never_fires(schedule)
    if never:
        raise _bad(field, f"{original!r} never fires: {never}", "Check the fields named.")
    return schedule


def _field_bits(value: str, spec_field: _Field) -> int:
    """robfig's ``getField``: the union of the comma-separated ranges (empty items are dropped)."""
    bits = 0
    for item in value.split(","):
        if item:
            bits |= _range_bits(item, spec_field)
    return bits


def _range_bits(expr: str, spec_field: _Field) -> int:
    """robfig's ``getRange``: ``*``, ``?``, ``n``, ``a-b``, each with an optional ``/step``."""
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    single = len(low_and_high) == 1
    extra = 0
    if low_and_high[0] in ("*", "?"):
        # Anything after "*-" is ignored, as robfig ignores it.
        start, end, extra = spec_field.low, spec_field.high, STAR_BIT
    else:
        start = _int_or_name(low_and_high[0], spec_field.names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _int_or_name(low_and_high[1], spec_field.names)
        else:
            raise _RangeError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _atoi(range_and_step[1])
        if single:  # "n/step" means "n-max/step"
            end = spec_field.high
        if step > 1:
            extra = 0
    else:
        raise _RangeError(f"too many slashes: {expr}")
    if start < spec_field.low:
        raise _RangeError(f"beginning of range ({start}) below minimum ({spec_field.low}): {expr}")
    if end > spec_field.high:
        raise _RangeError(f"end of range ({end}) above maximum ({spec_field.high}): {expr}")
    if start > end:
        raise _RangeError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise _RangeError(f"step of range should be a positive number: {expr}")
    bits = 0
    for number in range(start, end + 1, step):
        bits |= 1 << number
    return bits | extra


def _int_or_name(text: str, names: Mapping[str, int]) -> int:
    if names:
        # strings.ToLower maps U+0130 to a plain "i"; Python's lower() adds a combining dot.
        named = names.get(text.replace("\u0130", "i").lower())
        if named is not None:
            return named
    return _atoi(text)


def _atoi(text: str) -> int:
    """robfig's ``mustParseInt``: ``strconv.Atoi`` (optional sign, ASCII digits), not negative."""
    if not _ATOI.fullmatch(text):
        raise _RangeError(
            f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax'
        )
    number = int(text)
    if not -_INT64_MAX - 1 <= number <= _INT64_MAX:
        raise _RangeError(
            f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": value out of range'
        )
    if number < 0:
        raise _RangeError(f"negative number ({number}) not allowed: {text}")
    return number


_LONGEST_MONTH: Final = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _never_fires(schedule: Schedule) -> str:
    """Why the schedule can never fire (robfig would accept it and never run it), or ''."""
    if not schedule.minute_bits & ~STAR_BIT:
        return "the minute field selects no minute"
    if not schedule.hour_bits & ~STAR_BIT:
        return "the hour field selects no hour"
    months = _values(schedule.month_bits, 1, 12)
    if not months:
        return "the month field selects no month"
    longest = max(_LONGEST_MONTH[month] for month in months)
    days = _values(schedule.day_bits, 1, longest)
    weekdays = _values(schedule.weekday_bits, 0, 6)
    if (schedule.day_bits | schedule.weekday_bits) & STAR_BIT:
        # Both fields must match; a star field matches every day, so the other one decides.
        if not days:
            return "no day of the month it names exists in the months it names"
        if not weekdays:
            return "the day-of-week field selects no day"
    elif not days and not weekdays:
        return "no day of the month it names exists in the months it names"
    return ""


# -- robfig's walk --------------------------------------------------------------------------------
#
# Instants are Unix seconds; a "local" is the aware datetime of an instant in the schedule's zone.
# Each loop below is one of SpecSchedule.Next's, with the same resets, steps and wrap-arounds
# (robfig's "goto WRAP" is the outer loop's `continue`). Where robfig steps one hour (minute,
# second, day) at a time, we jump straight to the next candidate when the UTC offset is the same
# at both ends of the jump, which is exact unless a zone changed its offset and back within the
# jump (at most a month; no zone has done so since tzdata began), and otherwise take robfig's step.


def _local(zone: tzinfo, instant: int) -> datetime:
    return datetime.fromtimestamp(instant, zone)


def _offset(zone: tzinfo, instant: int) -> int:
    offset = datetime.fromtimestamp(instant, zone).utcoffset()
    return 0 if offset is None else offset // _SECOND


def _go_date(
    zone: tzinfo, year: int, month: int, day: int, hour: int, minute: int, second: int
) -> int:
    """Go's ``time.Date`` in ``zone``: fields normalised, a wall time in a gap or repeat resolved
    by Go's rule (look up the offset at the wall time read as UTC, then once more at the result).
    """
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    wall = (date(year, month, 1).toordinal() - _EPOCH_ORDINAL + day - 1) * _DAY_SECONDS
    wall += hour * 3600 + minute * 60 + second
    first = _offset(zone, wall)
    if first == 0:
        return wall
    return wall - _offset(zone, wall - first)


def _next_bit(bits: int, start: int, end: int) -> int:
    """The smallest set bit in ``[start, end)``, or ``end``."""
    window = (bits >> start) & ((1 << (end - start)) - 1)
    if not window:
        return end
    return start + (window & -window).bit_length() - 1


def _day_matches(schedule: Schedule, local: datetime) -> bool:
    """robfig's ``dayMatches``: both fields when either has the star bit, else either."""
    day = schedule.day_bits >> local.day & 1
    weekday = schedule.weekday_bits >> (local.weekday() + 1) % 7 & 1
    if (schedule.day_bits | schedule.weekday_bits) & STAR_BIT:
        return bool(day and weekday)
    return bool(day or weekday)


def _days_in_month(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (date(year, month + 1, 1) - date(year, month, 1)).days


def _next_matching_day(schedule: Schedule, local: datetime) -> int:
    """The first day after ``local``'s that ``dayMatches`` in its month, else the length + 1."""
    last = _days_in_month(local.year, local.month)
    weekday = (local.weekday() + 1) % 7
    star = (schedule.day_bits | schedule.weekday_bits) & STAR_BIT
    for day in range(local.day + 1, last + 1):
        weekday = (weekday + 1) % 7
        day_ok = schedule.day_bits >> day & 1
        weekday_ok = schedule.weekday_bits >> weekday & 1
        if (day_ok and weekday_ok) if star else (day_ok or weekday_ok):
            return day
    return last + 1


def _walk_next(schedule: Schedule, after: datetime) -> int | None:
    """robfig's ``SpecSchedule.Next(after)`` as Unix seconds, or None for its zero time."""
    zone = schedule.zone
    instant = (after - _EPOCH) // _SECOND + 1  # the upcoming whole second
    local = _local(zone, instant)
    year_limit = local.year + YEARS_SEARCHED
    added = False
    while True:  # WRAP
        if local.year > year_limit:
            return None

        if not schedule.month_bits >> local.month & 1:
            if not added:
                added = True
                instant = _go_date(zone, local.year, local.month, 1, 0, 0, 0)
                local = _local(zone, instant)
            wrapped = False
            while True:
                instant = _go_date(
                    zone,
                    local.year,
                    local.month + 1,
                    local.day,
                    local.hour,
                    local.minute,
                    local.second,
                )
                local = _local(zone, instant)
                if local.month == 1:
                    wrapped = True
                    break
                if schedule.month_bits >> local.month & 1:
                    break
            if wrapped:
                continue

        if not _day_matches(schedule, local):
            if not added:
                added = True
                instant = _go_date(zone, local.year, local.month, local.day, 0, 0, 0)
                local = _local(zone, instant)
            wrapped = False
            while True:
                jumped = False
                if local.hour == local.minute == local.second == 0:
                    target = _next_matching_day(schedule, local)
                    if target > local.day + 1:
                        jump = _go_date(zone, local.year, local.month, target, 0, 0, 0)
                        landed = _local(zone, jump)
                        if (
                            landed.utcoffset() == local.utcoffset()
                            and landed.hour == landed.minute == landed.second == 0
                            and landed.day in (target, 1)
                        ):
                            instant, local, jumped = jump, landed, True
                if not jumped:
                    instant = _go_date(
                        zone,
                        local.year,
                        local.month,
                        local.day + 1,
                        local.hour,
                        local.minute,
                        local.second,
                    )
                    local = _local(zone, instant)
                    # robfig: "Notice if the hour is no longer midnight due to DST."
                    if local.hour != 0:
                        if local.hour > 12:
                            instant += (24 - local.hour) * 3600
                        else:
                            instant -= local.hour * 3600
                        local = _local(zone, instant)
                if local.day == 1:
                    wrapped = True
                    break
                if _day_matches(schedule, local):
                    break
            if wrapped:
                continue

        if not schedule.hour_bits >> local.hour & 1:
            if not added:
                added = True
                instant = _go_date(zone, local.year, local.month, local.day, local.hour, 0, 0)
                local = _local(zone, instant)
            wrapped = False
            while True:
                steps = _next_bit(schedule.hour_bits, local.hour + 1, 24) - local.hour
                if steps > 1:
                    landed = _local(zone, instant + steps * 3600)
                    if landed.utcoffset() != local.utcoffset():
                        steps = 1
                if steps == 1:
                    landed = _local(zone, instant + 3600)
                instant += steps * 3600
                local = landed
                if local.hour == 0:
                    wrapped = True
                    break
                if schedule.hour_bits >> local.hour & 1:
                    break
            if wrapped:
                continue

        if not schedule.minute_bits >> local.minute & 1:
            if not added:
                added = True
                instant -= instant % 60  # Truncate(time.Minute), on absolute time
                local = _local(zone, instant)
            wrapped = False
            while True:
                steps = _next_bit(schedule.minute_bits, local.minute + 1, 60) - local.minute
                if steps > 1:
                    landed = _local(zone, instant + steps * 60)
                    if landed.utcoffset() != local.utcoffset():
                        steps = 1
                if steps == 1:
                    landed = _local(zone, instant + 60)
                instant += steps * 60
                local = landed
                if local.minute == 0:
                    wrapped = True
                    break
                if schedule.minute_bits >> local.minute & 1:
                    break
            if wrapped:
                continue

        if local.second != 0:  # the standard parser's seconds field is "0"
            added = True
            steps = 60 - local.second
            landed = _local(zone, instant + steps)
            if landed.utcoffset() == local.utcoffset():
                instant, local = instant + steps, landed
            else:
                while local.second != 0:
                    instant += 1
                    local = _local(zone, instant)
            continue

        return instant


# -- the public maths ---------------------------------------------------------------------------


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("cron maths needs timezone-aware datetimes")


def _utc(instant: int) -> datetime:
    return datetime.fromtimestamp(instant, UTC)


def ticks_after(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    """Fire times strictly after ``after``, in UTC: robfig's ``Next``, each from the last one.

    Ends only if robfig's walk finds nothing within five years (never, for a parsed schedule,
    until the leap day of 2100 is missed).
    """
    _require_aware(after)
    moment = after
    while True:
        instant = _walk_next(schedule, moment)
        if instant is None:
            return
        moment = _utc(instant)
        yield moment


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
    for tick in ticks_after(schedule, after):
        return tick
    raise ValueError(f"{schedule.original!r} has no tick within {YEARS_SEARCHED} years")


def latest_tick(schedule: Schedule, at: datetime) -> datetime | None:
    """The most recent fire time at or before ``at`` (UTC), or None if none in five years.

    robfig has no backward walk, so this walks forward from ever earlier starts (a schedule's
    shortest interval before ``at``, then four times as far, ...) until a tick at or before
    ``at`` turns up; the last such tick of that walk is the answer, as the CronJob controller
    finds its most recent schedule time.
    """
    _require_aware(at)
    limit = timedelta(days=366 * YEARS_SEARCHED)
    reach = schedule.shortest_interval
    while True:
        found = None
        for tick in ticks_after(schedule, at - reach):
            if tick > at:
                break
            found = tick
        if found is not None:
            return found
        if reach >= limit:
            return None
        reach = min(reach * 4, limit)


def tick_for_delivery(
    schedule: Schedule,
    delivered_at: datetime,
    *,
    early_tolerance: timedelta,
    first_attempt: bool,
) -> datetime | None:
    """The tick a delivery at ``delivered_at`` belongs to.

    QStash does not say which tick it is delivering (wire reference section 3.1), so the tick is
    the latest one at or before the delivery time. A *first* attempt (``Upstash-Retried: 0``)
    that arrives shortly before a tick (QStash's clock ahead of ours) belongs to that coming tick:
    "shortly" is ``early_tolerance``, capped at a quarter of the shortest interval between this
    schedule's ticks (and of the gap around this delivery), so a late first attempt is not
    booked to the next tick. A retry is always late, never early: it gets the latest tick.
    """
    _require_aware(delivered_at)
    latest = latest_tick(schedule, delivered_at)
    if first_attempt:
        upcoming = next_tick(schedule, delivered_at)
        window = min(early_tolerance, schedule.shortest_interval / EARLY_WINDOW_SHARE)
        if latest is not None:
            window = min(window, (upcoming - latest) / EARLY_WINDOW_SHARE)
        if upcoming - delivered_at <= window:
            return upcoming
    return latest


def tick_for_message(
    schedule: Schedule, created_at: datetime, *, clock_tolerance: timedelta
) -> datetime | None:
    """The tick a QStash message was created for, from its ``createdAt``.

    QStash makes a schedule's message when the tick comes, so ``createdAt`` is the tick plus the
    time QStash took to fire, or a little before it when QStash's clock runs ahead of ours. The
    tick is the latest one at or before ``createdAt`` plus the clock tolerance, the tolerance
    capped as for an early first attempt (a quarter of the shortest interval and of the gap
    around ``createdAt``), so a message made late for one tick is never booked to the next. This
    is what a *retry* is judged by: its arrival says nothing about its tick (QStash retries after
    about 12 s, 2.5 min and 30 min by default). The two runs of a fall-back repeated hour have
    different ``createdAt`` instants, so they stay two ticks.
    """
    return tick_for_delivery(
        schedule, created_at, early_tolerance=clock_tolerance, first_attempt=True
    )


def ticks_between(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Ticks in ``(start, end]`` in UTC: the first :data:`MAX_MISSED_TICKS` of them at most."""
    result: list[datetime] = []
    for tick in ticks_after(schedule, start):
        if tick > end or len(result) >= MAX_MISSED_TICKS:
            break
        result.append(tick)
    return result


# -- daylight-saving days, ahead of time --------------------------------------------------------


_PROBE: Final = timedelta(hours=6)
"""Offset changes are found by probing every six hours and bisecting to the second: no zone has
changed its offset and back within six hours."""


def offset_changes(zone: tzinfo, start: datetime, end: datetime) -> list[datetime]:
    """The instants in ``(start, end]`` at which ``zone``'s UTC offset changes, in UTC.

    Probed over the whole UTC days around the window (:func:`_day_offset_changes`, remembered
    per zone and days: every reconcile asks for the 400 days from its own second, and the walk
    was three quarters of a create's planning at 10,000 CronWorkflows), then cut to it; the
    probe finds every change in what it covers, so the cut is what probing the window finds."""
    _require_aware(start)
    _require_aware(end)
    first_day = start.astimezone(UTC).date().toordinal()
    last_day = end.astimezone(UTC).date().toordinal() + 1
    return [
        change for change in _day_offset_changes(zone, first_day, last_day) if start < change <= end
    ]


@functools.lru_cache(maxsize=64)
def _day_offset_changes(zone: tzinfo, first_day: int, last_day: int) -> tuple[datetime, ...]:
    """The offset changes from 00:00 UTC of day ``first_day`` (a proleptic ordinal) to 00:00 UTC
    of ``last_day``: the day-aligned window :func:`offset_changes` cuts from."""
    begin = datetime.combine(date.fromordinal(first_day), time(0), tzinfo=UTC)
    finish = datetime.combine(date.fromordinal(last_day), time(0), tzinfo=UTC)
    return tuple(_probe_offset_changes(zone, begin, finish))


def _probe_offset_changes(zone: tzinfo, start: datetime, end: datetime) -> list[datetime]:
    first = (start - _EPOCH) // _SECOND
    last = (end - _EPOCH) // _SECOND
    step = _PROBE // _SECOND
    changes: list[datetime] = []
    low, low_offset = first, _offset(zone, first)
    while low < last:
        high = min(low + step, last)
        high_offset = _offset(zone, high)
        if high_offset != low_offset:
            before, after = low, high  # offset(before) == low_offset != offset(after)
            while after - before > 1:
                middle = (before + after) // 2
                if _offset(zone, middle) == low_offset:
                    before = middle
                else:
                    after = middle
            changes.append(_utc(after))
            low, low_offset = after, _offset(zone, after)
            continue
        low = high
    return changes


class DaylightSavingEffect(enum.Enum):
    """What a clock change does to a schedule's runs on one local date (the value is the word
    ``status.daylightSaving.effect`` and the events carry)."""

    SKIP = "Skip"  # a local time the schedule names does not run that day
    REPEAT = "Repeat"  # a local time runs twice that day
    EXTRA = "Extra"  # a run at a local time (or on a day) the schedule does not name


@dataclasses.dataclass(frozen=True)
class DaylightSavingDay:
    """One local date on which a clock change makes the schedule deviate from its wall clock."""

    date: date
    effect: DaylightSavingEffect
    times: tuple[time, ...]  # the local times concerned, in order
    time_zone: str
    nonexistent: bool  # SKIP: every one of the times falls in the clocks' gap
    first_instant: datetime  # UTC: when the first concerned run is (or would have been) due

    @property
    def message(self) -> str:
        """One line for people: ``skipped: 02:30 does not exist in Europe/Berlin on 2027-03-28``."""
        times = _format_times(self.times)
        where = f"in {self.time_zone} on {self.date.isoformat()}"
        if self.effect is DaylightSavingEffect.SKIP:
            if self.nonexistent:
                verb = "do not exist" if len(self.times) > 1 else "does not exist"
                return f"skipped: {times} {verb} {where} (the clocks go forward)"
            return f"skipped: {times} {where} (the cron walk loses it after the clocks change)"
        if self.effect is DaylightSavingEffect.REPEAT:
            verb = "happen" if len(self.times) > 1 else "happens"
            return f"runs twice: {times} {verb} twice {where} (the clocks go back)"
        return f"extra run: {times} {where}, which the schedule does not name (the clocks change)"

    def as_status(self) -> dict[str, Any]:
        """The ``status.daylightSaving`` object (see the CRD)."""
        return {
            "date": self.date.isoformat(),
            "effect": self.effect.value,
            "localTimes": [moment.strftime("%H:%M") for moment in self.times],
            "message": self.message,
        }


def _format_times(times: Sequence[time]) -> str:
    labels = [moment.strftime("%H:%M") for moment in times]
    if len(labels) <= 3:
        return ", ".join(labels)
    return f"{labels[0]}-{labels[-1]} ({len(labels)} ticks)"


def _wall_instant(day: date, moment: time, zone: tzinfo) -> datetime:
    return datetime.combine(day, moment, tzinfo=zone).astimezone(UTC)


def _exists(day: date, moment: time, zone: tzinfo) -> bool:
    naive = datetime.combine(day, moment)
    return _wall_instant(day, moment, zone).astimezone(zone).replace(tzinfo=None) == naive


def _named_times(schedule: Schedule, day: date) -> list[time]:
    """The local times the schedule's fields name on ``day`` (empty when the day does not match)."""
    probe = datetime.combine(day, time(12), tzinfo=UTC)
    if not schedule.month_bits >> day.month & 1 or not _day_matches(schedule, probe):
        return []
    minutes = _values(schedule.minute_bits, 0, 59)
    return [time(hour, minute) for hour in _values(schedule.hour_bits, 0, 23) for minute in minutes]


def daylight_saving_days(
    schedule: Schedule, now: datetime, horizon: timedelta = DAYLIGHT_SAVING_HORIZON
) -> list[DaylightSavingDay]:
    """The local dates within ``horizon`` after ``now`` on which clock changes make the schedule
    skip, repeat or add a run, compared with what its fields name on the wall clock.

    For each offset change of the zone, the runs robfig's walk makes on the day before, the day
    (or days) of the change and the day after are compared with the local times the fields name
    on those days. Only deviations still ahead of ``now`` are reported, in time order.
    """
    _require_aware(now)
    zone = schedule.zone
    found: dict[tuple[date, DaylightSavingEffect], DaylightSavingDay] = {}
    for change in offset_changes(zone, now, now + horizon):
        first_day = (change - _SECOND).astimezone(zone).date() - timedelta(days=1)
        last_day = change.astimezone(zone).date() + timedelta(days=1)
        runs: dict[date, collections.Counter[time]] = collections.defaultdict(collections.Counter)
        window_start = _wall_instant(first_day, time(0), zone) - timedelta(hours=3)
        window_end = _wall_instant(last_day + timedelta(days=1), time(0), zone) + timedelta(hours=3)
        instants: dict[tuple[date, time], list[datetime]] = collections.defaultdict(list)
        for tick in ticks_after(schedule, window_start):
            if tick > window_end:
                break
            local = tick.astimezone(zone)
            key = (local.date(), local.time().replace(second=0))
            runs[key[0]][key[1]] += 1
            instants[key].append(tick)
        day = first_day
        while day <= last_day:
            named = set(_named_times(schedule, day))
            ran = runs[day]
            effects: dict[DaylightSavingEffect, list[tuple[time, datetime]]] = {
                DaylightSavingEffect.SKIP: [
                    (moment, _wall_instant(day, moment, zone))
                    for moment in sorted(named - set(ran))
                ],
                DaylightSavingEffect.REPEAT: [
                    (moment, instants[(day, moment)][0])
                    for moment in sorted(ran)
                    if ran[moment] > 1 and moment in named
                ],
                DaylightSavingEffect.EXTRA: [
                    (moment, instants[(day, moment)][0]) for moment in sorted(set(ran) - named)
                ],
            }
            for effect, concerned in effects.items():
                ahead = [(moment, instant) for moment, instant in concerned if instant > now]
                if not ahead or (day, effect) in found:
                    continue
                found[(day, effect)] = DaylightSavingDay(
                    date=day,
                    effect=effect,
                    times=tuple(moment for moment, _ in ahead),
                    time_zone=schedule.time_zone,
                    nonexistent=all(not _exists(day, moment, zone) for moment, _ in ahead),
                    first_instant=min(instant for _, instant in ahead),
                )
            day += timedelta(days=1)
    return sorted(found.values(), key=lambda entry: (entry.first_instant, entry.effect.value))


def next_daylight_saving_day(schedule: Schedule, now: datetime) -> DaylightSavingDay | None:
    """The first of :func:`daylight_saving_days` (what ``status.daylightSaving`` shows), or None."""
    days = daylight_saving_days(schedule, now)
    return days[0] if days else None
