"""Differential test: ``domain/cron.py`` against the real robfig/cron v3, built from Go modules.

Both backends fire by robfig's ``ParseStandard`` and ``Next`` (issue 12), so every answer of ours
must be robfig's: the same accept/refuse decision and the same next 50 fire times, from start
instants around every clock change of the zones below in 2026-2028. Cases come from a fixed table
(the examples people meet) and from a derandomised hypothesis search over every construct of
the standard parser (:func:`specs`), at least :data:`PROPERTY_CASES` of them per run.

Where we refuse what robfig accepts, the refusal must be one of the module's documented
choices, checked against robfig's own answer: a schedule that "never fires" must be one whose
``Next`` returns the zero time at once, and ``@every`` is refused by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qstash_devstack import robfig
from qstash_operator.domain import cron
from qstash_operator.domain.errors import InvalidSpecError

pytestmark = pytest.mark.slow

ZONES: Final = (
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/St_Johns",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "Africa/Casablanca",
    "UTC",
)
TICKS: Final = 50
PROPERTY_CASES: Final = 20_000
CASES_PER_TEXT: Final = 4
"""Each generated schedule text is tried in four (zone, start) pairs: generating the text costs
more than both models' answers, and four places per text keep a run near half a minute."""
FIRST: Final = datetime(2026, 1, 1, tzinfo=UTC)
LAST: Final = datetime(2029, 1, 1, tzinfo=UTC)
DAY: Final = 86_400


@pytest.fixture(scope="module")
def helper() -> Iterator[robfig.Robfig]:
    with robfig.running() as process:
        yield process


@cache
def changes(zone: str) -> tuple[int, ...]:
    """The zone's offset changes in 2026-2028, as Unix seconds."""
    found = cron.offset_changes(cron.load_zone(zone), FIRST, LAST)
    return tuple(int(change.timestamp()) for change in found)


@dataclass(frozen=True)
class Case:
    """``spec_schedule``: ``text`` is ``spec.schedule`` read in ``zone`` (:func:`cron.parse`,
    robfig gets ``TZ=<zone> <text>`` as the CronJob controller writes it); otherwise ``text`` is
    a whole ``Upstash-Cron`` value read in UTC (:func:`cron.parse_standard`)."""

    text: str
    zone: str
    start: int
    spec_schedule: bool = True

    def __str__(self) -> str:
        when = datetime.fromtimestamp(self.start, UTC).isoformat()
        path = "spec.schedule" if self.spec_schedule else "Upstash-Cron"
        return f"{path} {self.text!r} in {self.zone} from {when}"


def disagreement(helper: robfig.Robfig, case: Case) -> str | None:
    """None when we answer as robfig does (or refuse by a documented choice), else why not."""
    if case.spec_schedule:
        theirs = helper.ask(f"TZ={case.zone} {case.text}", "UTC", case.start, TICKS)
    else:
        theirs = helper.ask(case.text, "UTC", case.start, TICKS)
    try:
        if case.spec_schedule:
            schedule = cron.parse(case.text, case.zone)
        else:
            schedule = cron.parse_standard(case.text, local_zone="UTC")
    except InvalidSpecError as exc:
        if theirs.error is not None:
            return None
        if "never fires" in exc.problem and theirs.zero and not theirs.times:
            return None
        if "fixed interval" in exc.problem and "@every " in case.text:
            return None
        return f"{case}: we refuse ({exc.problem}), robfig fires at {list(theirs.times[:3])}..."
    if theirs.error is not None:
        return f"{case}: we accept, robfig refuses: {theirs.error}"
    start = datetime.fromtimestamp(case.start, UTC)
    ours = tuple(int(tick.timestamp()) for tick in cron.next_ticks(schedule, start, TICKS))
    if ours == theirs.times and (len(ours) == TICKS) != theirs.zero:
        return None
    index = next(
        (i for i, (a, b) in enumerate(zip(ours, theirs.times, strict=False)) if a != b),
        min(len(ours), len(theirs.times)),
    )

    def show(times: tuple[int, ...]) -> list[str]:
        return [
            datetime.fromtimestamp(t, UTC).astimezone(schedule.zone).isoformat()
            for t in times[max(index - 1, 0) : index + 2]
        ]

    return f"{case}: fire time {index} differs: ours {show(ours)}, robfig {show(theirs.times)}"


# -- the same zone data on both sides -----------------------------------------------------------


def test_python_and_go_read_the_same_zone_files() -> None:
    # Go's time.LoadLocation reads $ZONEINFO (the helper runs without it), then
    # /usr/share/zoneinfo/; main.go does not import time/tzdata, so no embedded copy is used.
    assert "time/tzdata" not in (robfig.SOURCE / "main.go").read_text()
    for zone in ZONES:
        assert robfig.same_zone_data(zone), f"Python does not read {zone} from /usr/share/zoneinfo"


# -- named cases -----------------------------------------------------------------------------


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


NAMED: Final = {
    "the issue's Berlin spring forward (29 March does not run)": Case(
        "30 2 * * *", "Europe/Berlin", at("2026-03-28T12:00:00+00:00")
    ),
    "the issue's New York fall back (01:30 runs twice)": Case(
        "30 1 * * *", "America/New_York", at("2026-10-31T12:00:00+00:00")
    ),
    "Berlin fall back, 02:30 twice": Case(
        "30 2 * * *", "Europe/Berlin", at("2026-10-24T12:00:00+00:00")
    ),
    "every 30 minutes across the Berlin gap": Case(
        "*/30 * * * *", "Europe/Berlin", at("2026-03-29T00:00:00+00:00")
    ),
    "Lord Howe's half-hour fall back": Case(
        "0 5 * * *", "Australia/Lord_Howe", at("2026-04-03T12:00:00+00:00")
    ),
    "Lord Howe's half-hour spring forward, hourly": Case(
        "0 * * * *", "Australia/Lord_Howe", at("2026-10-03T12:00:00+00:00")
    ),
    "Santiago's midnight gap": Case(
        "0 1 * * 6", "America/Santiago", at("2026-09-04T00:00:00+00:00")
    ),
    "Santiago's midnight repeat": Case(
        "0 0 * * *", "America/Santiago", at("2026-04-03T00:00:00+00:00")
    ),
    "Chatham's 02:45": Case("45 2 * * *", "Pacific/Chatham", at("2026-09-26T00:00:00+00:00")),
    "St John's half-hour zone": Case(
        "30 1 * * *", "America/St_Johns", at("2026-10-31T00:00:00+00:00")
    ),
    "Casablanca's Ramadan change": Case(
        "30 2 * * *", "Africa/Casablanca", at("2026-02-10T00:00:00+00:00")
    ),
    "monthly on the 31st": Case("0 0 31 * *", "Europe/Berlin", at("2026-01-15T00:00:00+00:00")),
    "leap day": Case("0 0 29 2 *", "UTC", at("2026-01-01T00:00:00+00:00")),
    "*/1 keeps the star bit": Case("0 0 13 * */1", "UTC", at("2026-01-01T00:00:00+00:00")),
    "*/2 drops the star bit": Case("0 0 13 * */2", "UTC", at("2026-01-01T00:00:00+00:00")),
    "step beyond the range": Case("*/61 */25 * * *", "UTC", at("2026-01-01T00:00:00+00:00")),
    "robfig ignores what follows a star": Case("*-5 * * * *", "UTC", at("2026-01-01T00:00:00Z")),
    "a signed number": Case("+5 * * * *", "UTC", at("2026-01-01T00:00:00+00:00")),
    "weekday 7 is refused": Case("0 0 * * 7", "UTC", at("2026-01-01T00:00:00+00:00")),
    "30 February never fires": Case("0 0 30 2 *", "UTC", at("2026-01-01T00:00:00+00:00")),
    "an empty field never fires": Case(", * * * *", "UTC", at("2026-01-01T00:00:00+00:00")),
    "descriptors are lower case": Case("@Daily", "UTC", at("2026-01-01T00:00:00+00:00")),
    "@every is our refusal": Case("@every 1h", "UTC", at("2026-01-01T00:00:00+00:00")),
    "a tab between fields": Case("0\t3 * * *", "Europe/Berlin", at("2026-03-28T00:00:00Z")),
    "Upstash-Cron with CRON_TZ": Case(
        "CRON_TZ=Europe/Berlin 30 2 * * *", "UTC", at("2026-03-28T12:00:00Z"), False
    ),
    "Upstash-Cron with TZ and a descriptor": Case(
        "TZ=America/New_York @daily", "UTC", at("2026-11-01T00:00:00Z"), False
    ),
    "Upstash-Cron with an empty zone is UTC": Case(
        "TZ= 0 1 * * *", "UTC", at("2026-11-01T00:00:00Z"), False
    ),
    "Upstash-Cron with a prefix and no schedule": Case(
        "CRON_TZ=UTC", "UTC", at("2026-11-01T00:00:00Z"), False
    ),
    "Upstash-Cron without a prefix is UTC": Case(
        "30 2 * * *", "UTC", at("2026-03-28T00:00:00Z"), False
    ),
}


@pytest.mark.parametrize("case", list(NAMED.values()), ids=list(NAMED))
def test_named_cases_agree_with_robfig(helper: robfig.Robfig, case: Case) -> None:
    assert disagreement(helper, case) is None, disagreement(helper, case)


# -- generated cases -------------------------------------------------------------------------


_MONTH_NAMES: Final = ("jan", "Feb", "MAR", "apr", "May", "jun", "JUL", "aug", "sep", "Oct", "nov")
_DAY_NAMES: Final = ("sun", "Mon", "TUE", "wed", "thu", "Fri", "sat")
_JUNK: Final = ("L", "1#2", "x", "**", "5-", "-5", "*/", "1/2/3", "1-2-3", "0x5", "", "W", "?/0")


def _item(low: int, high: int, names: tuple[str, ...]) -> st.SearchStrategy[str]:
    """One comma item of a field: every form getRange knows, and some it refuses."""
    # Mostly in range, sometimes just outside (7 for weekdays, 60 minutes, day 0), sometimes
    # with a leading zero or a sign (strconv.Atoi takes both), sometimes a name in any case.
    plain = st.integers(low, high).map(str)
    number = st.one_of(
        plain,
        plain,
        st.integers(low - 1, high + 1).map(str),
        st.tuples(st.sampled_from(("0", "+")), plain).map("".join),
        *([st.sampled_from(names)] if names else []),
    )
    ordered = st.tuples(st.integers(low, high), st.integers(low, high)).map(
        lambda pair: f"{min(pair)}-{max(pair)}"
    )
    star = st.sampled_from(("*", "?"))
    # Hypothesis favours small numbers, so a step of 0 (refused) would come up far too often.
    step = st.one_of(st.integers(1, 70), st.integers(1, 70), st.integers(0, 70)).map(str)
    return st.one_of(
        star,
        number,
        number,
        ordered,
        ordered,
        st.tuples(number, number).map("-".join),
        st.tuples(star, step).map("/".join),
        st.tuples(star, step).map("/".join),
        st.tuples(number, step).map("/".join),
        st.tuples(ordered, step).map("/".join),
        st.tuples(number, number, step).map(lambda parts: f"{parts[0]}-{parts[1]}/{parts[2]}"),
        st.sampled_from(("*-5", "?-x", "*-1-2", "*/1", "*/2", "*/61")),
        st.sampled_from(_JUNK),
    )


def _field(
    low: int, high: int, names: tuple[str, ...] = (), *, likely: tuple[str, ...]
) -> st.SearchStrategy[str]:
    """A field: often a value that matters around clock changes, else a list of 1-3 items."""
    items = st.lists(_item(low, high, names), min_size=1, max_size=3).map(",".join)
    common = st.sampled_from(likely)
    # Two in three: one_of would weigh branches alike (and merge equal ones).
    return st.integers(0, 2).flatmap(lambda pick: common if pick else items)


MINUTES = _field(0, 59, likely=("0", "30", "15", "45", "0,30", "*/15", "*", "59", "*/7"))
HOURS = _field(0, 23, likely=("*", "0", "1", "2", "3", "1-3", "*/2", "2,3", "0-4", "23"))
DAYS = _field(1, 31, likely=("*", "*", "?", "1", "13", "*/2", "29", "31", "1-7"))
MONTHS = _field(1, 12, _MONTH_NAMES, likely=("*", "*", "3", "10", "*/2", "mar,oct", "4,9"))
WEEKDAYS = _field(0, 6, _DAY_NAMES, likely=("*", "*", "0", "1-5", "*/2", "*/1", "sat", "6"))


@st.composite
def specs(draw: st.DrawFn) -> str:
    """A schedule text: five fields (odd whitespace sometimes), a descriptor, or a wrong count."""
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return draw(
            st.sampled_from(
                (
                    *cron.MACROS,
                    "@DAILY",
                    "@Hourly",
                    "@every 1h",
                    "@every 90s",
                    "@every x",
                    "@reboot",
                )
            )
        )
    fields = [draw(MINUTES), draw(HOURS), draw(DAYS), draw(MONTHS), draw(WEEKDAYS)]
    if kind == 1:
        fields = fields[: draw(st.integers(0, 4))]
    elif kind == 2:
        fields.append(draw(st.sampled_from(("0", "*", "2026"))))
    separator = draw(st.sampled_from((" ",) * 8 + ("  ", "\t", " \t", "\u00a0", "\u2003", "\x1c")))
    text = separator.join(fields)
    if draw(st.integers(0, 9)) == 0:
        text = draw(st.sampled_from((" ", "\t", "\n"))) + text + draw(st.sampled_from(("", " ")))
    return text


@st.composite
def _zone_and_start(draw: st.DrawFn) -> tuple[str, int]:
    zone = draw(st.sampled_from(ZONES))
    around = changes(zone)
    if around and draw(st.integers(0, 4)) > 0:
        return zone, draw(st.sampled_from(around)) + draw(st.integers(-3 * DAY, DAY))
    return zone, draw(st.integers(int(FIRST.timestamp()), int(LAST.timestamp())))


@st.composite
def cases(draw: st.DrawFn) -> tuple[Case, ...]:
    """One schedule text, each time in :data:`CASES_PER_TEXT` (zone, start) pairs."""
    text = draw(specs())
    places = draw(st.lists(_zone_and_start(), min_size=CASES_PER_TEXT, max_size=CASES_PER_TEXT))
    if draw(st.integers(0, 9)) == 0:  # a whole Upstash-Cron value, as the QStash server reads it
        prefix = draw(st.sampled_from(("CRON_TZ=", "TZ=", "cron_tz=", "")))
        return tuple(
            Case((prefix + zone + " " if prefix else "") + text, "UTC", start, spec_schedule=False)
            for zone, start in places
        )
    return tuple(Case(text, zone, start) for zone, start in places)


def test_generated_cases_agree_with_robfig(helper: robfig.Robfig) -> None:
    checked: list[Case] = []

    @settings(
        max_examples=PROPERTY_CASES // CASES_PER_TEXT,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(group=cases())
    def agrees(group: tuple[Case, ...]) -> None:
        checked.extend(group)
        problems = [problem for case in group if (problem := disagreement(helper, case))]
        assert not problems, problems[0]

    agrees()
    accepted = sum(1 for case in checked if _accepted(case))
    texts = len({case.text for case in checked})
    print(
        f"\n{len(checked)} generated cases ({texts} schedule texts; {accepted} cases accepted, "
        f"{TICKS} fire times each) in {len(ZONES)} zones agree with robfig/cron "
        f"{robfig.version()}"
    )
    assert len(checked) >= PROPERTY_CASES
    assert accepted >= PROPERTY_CASES * 4 // 10, "too few valid schedules to compare fire times"


def _accepted(case: Case) -> bool:
    try:
        if case.spec_schedule:
            cron.parse(case.text, case.zone)
        else:
            cron.parse_standard(case.text)
    except InvalidSpecError:
        return False
    return True
