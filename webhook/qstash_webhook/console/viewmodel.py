"""What the console shows, computed from raw objects and an injected "now": no I/O, no clock.

Every page is JSON shaped for display, so the browser only places text (``textContent``) and
never decides anything: the words for a spec, the next fire times in the zone and in UTC, the
recent Jobs and their durations, the timeline of recent slots, the conditions and events, and
which buttons the caller may press (with the reason when not). The service
(:mod:`qstash_webhook.console.service`) fetches the objects and the access decisions; this module
is tested as tables (``tests/unit/webhook/test_console_viewmodel.py``).

The timeline reads the slot ledger (``status.recentSlots``) when the CronWorkflow has one, and
otherwise rebuilds what it can from the Jobs still there: the schedule's latest ticks, each
coloured by the Job made for it, and manual runs between them. Without a ledger a tick whose Job
is gone (pruned by the history limits, skipped or never delivered) cannot be told apart, and says
so (``NoJob``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from cron_descriptor import ExpressionDescriptor, Options

from qstash_operator.domain import cron, model, runs, timetable, vocabulary
from qstash_operator.domain.errors import InvalidSpecError
from qstash_operator.domain.model import ConcurrencyPolicy, JsonDict

Json = dict[str, Any]

FIRE_TIMES: Final = 10
"""The detail page's "next 10 fire times"."""
TIMELINE_SLOTS: Final = 24
"""Slots on the timeline strip: a day of an hourly schedule, 24 minutes of an every-minute one."""
RECENT_JOBS: Final = 20
RECENT_EVENTS: Final = 20
DUE_GRACE: Final = timedelta(seconds=90)
"""A tick this recent without a Job is "due", not "no Job": QStash delivers a second or two after
the minute and may take up to a minute to load a new schedule."""
DESCRIPTIONS_CACHED: Final = 1024
"""Distinct cron expressions whose words are kept (a few hundred bytes each)."""
CONDITION_FRESH: Final = "Fresh"
"""The freshness condition (issue 13's SLO); shown where a CronWorkflow reports it."""

# -- the slot ledger's shape (status.recentSlots, newest first), in one place -------------------
LEDGER: Final = "recentSlots"
LEDGER_TIME: Final = "time"
LEDGER_OUTCOME: Final = "outcome"
LEDGER_REASON: Final = "reason"
LEDGER_JOB: Final = "jobName"
LEDGER_MANUAL: Final = "manual"
LEDGER_REQUESTED_BY: Final = "requestedBy"

# -- outcomes of a slot (the ledger's words, plus what a Job-only view can say) -----------------
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"
RUNNING: Final = "Running"
SKIPPED: Final = "Skipped"
MISSED: Final = "Missed"
CAUGHT_UP: Final = "CaughtUp"
NO_JOB: Final = "NoJob"
DUE: Final = "Due"
PENDING: Final = "Pending"
OUTCOME_WORDS: Final = {
    SUCCEEDED: "succeeded",
    FAILED: "failed",
    RUNNING: "running",
    PENDING: "pending",
    SKIPPED: "skipped",
    MISSED: "missed",
    CAUGHT_UP: "caught up (run late)",
    NO_JOB: "no Job left (pruned by the history limits, skipped or missed)",
    DUE: "due (the delivery may still be on its way)",
}
KNOWN_OUTCOMES: Final = frozenset(OUTCOME_WORDS)


# -- time in words ----------------------------------------------------------------------------


def _ago(delta: timedelta) -> str:
    """``in 5 min``, ``3 h ago``, ``2 days ago``: rounded, as people say it."""
    seconds = delta.total_seconds()
    size = abs(seconds)
    if size < 45:
        return "in a moment" if seconds > 0 else "just now"
    if size < 90 * 60:
        text = f"{round(size / 60)} min"
    elif size < 36 * 3600:
        text = f"{round(size / 3600)} h"
    else:
        days = round(size / 86400)
        text = f"{days} day" + ("" if days == 1 else "s")
    return f"in {text}" if seconds > 0 else f"{text} ago"


def moment(when: datetime, zone: ZoneInfo, now: datetime) -> Json:
    """One instant as the console prints it: UTC, the schedule's local time, and how far off."""
    local = when.astimezone(zone)
    return {
        "iso": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "utc": when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "local": local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or str(zone)),
        "relative": _ago(when - now),
    }


def duration(seconds: float) -> str:
    """``2 s``, ``1 min 5 s``, ``2 h 3 min``: how long a Job ran."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _zone(name: str) -> ZoneInfo:
    try:
        return cron.load_zone(name)
    except InvalidSpecError:
        return ZoneInfo("UTC")


# -- the spec in words ------------------------------------------------------------------------


@functools.lru_cache(maxsize=DESCRIPTIONS_CACHED)
def describe_schedule(expression: str) -> str:
    """Five cron fields in English, 24-hour clock (``At 06:30, Monday through Friday``).

    The words come from ``cron-descriptor``; an expression it cannot read is shown as written.
    Cached: a list of 200 rows shares a handful of expressions, and describing one costs about
    0.2 ms.
    """
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        text = str(ExpressionDescriptor(expression, options).get_description())
    except Exception:  # the describer's own parse errors; the expression passed ours already
        return expression
    return text


def _seconds_in_words(seconds: int) -> str:
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _backend_words(choice: model.BackendChoice, running: str | None) -> str:
    now = f"; it runs on {running} now" if running else "; the operator has not chosen yet"
    if choice is model.BackendChoice.AUTO:
        return "Backend Auto: QStash when the cluster has it, else a native CronJob" + now + "."
    if choice is model.BackendChoice.QSTASH:
        return "Backend QStash: a QStash schedule calls the webhook at each tick" + now + "."
    return "Backend CronJob: a native CronJob owned by this CronWorkflow" + now + "."


_CONCURRENCY_WORDS: Final = {
    ConcurrencyPolicy.ALLOW: "Runs may overlap (concurrencyPolicy Allow).",
    ConcurrencyPolicy.FORBID: (
        "A tick is skipped while an earlier run is still active (concurrencyPolicy Forbid)."
    ),
    ConcurrencyPolicy.REPLACE: (
        "A new run stops the one still active (concurrencyPolicy Replace)."
    ),
}


def spec_in_words(cw: model.CronWorkflow, *, running: str | None) -> list[str]:
    """The spec as sentences, most important first. ``running`` is ``status.backend``."""
    spec = cw.spec
    zone = spec.timetable.time_zone
    sentences = [
        (f"{entry.name}: " if entry.name is not None else "")
        + f"{describe_schedule(entry.schedule.expression)}, {zone} time "
        f"(cron {entry.schedule.original!r})."
        for entry in spec.timetable.entries
    ]
    if spec.timetable.multiple:
        sentences.append(
            "A tick two schedules share runs once, with the first listed schedule's parameters."
        )
    if spec.suspend:
        sentences.append("Suspended: no tick runs until it is activated; Run now still works.")
    sentences.append(_CONCURRENCY_WORDS[spec.concurrency_policy])
    if spec.starting_deadline_seconds is not None:
        late = _seconds_in_words(spec.starting_deadline_seconds)
        sentences.append(
            f"A tick that cannot start within {late} of its time is skipped "
            f"(startingDeadlineSeconds {spec.starting_deadline_seconds})."
        )
    sentences.append(
        f"Keeps the last {spec.successful_jobs_history_limit} successful and "
        f"{spec.failed_jobs_history_limit} failed Jobs."
    )
    sentences.append(_backend_words(spec.backend, running))
    options = spec.qstash
    if options.retries is not None or options.retry_delay or options.timeout:
        parts = []
        if options.retries is not None:
            parts.append(f"retries a failed delivery {options.retries} times")
        if options.retry_delay:
            delay = options.retry_delay.strip()
            parts.append(f"{delay} ms apart" if delay.isdigit() else f"waiting {delay} ms")
        if options.timeout:
            parts.append(f"gives each attempt {options.timeout}")
        sentences.append("QStash " + ", ".join(parts) + ".")
    pod = (spec.job_template.get("spec") or {}).get("template", {}).get("spec", {})
    containers = [c for c in pod.get("containers") or [] if isinstance(c, Mapping)]
    if containers:
        images = ", ".join(f"{c.get('image', '?')} ({c.get('name', '?')})" for c in containers)
        sentences.append(f"Each run is a Job with {images}.")
    return sentences


# -- fire times -------------------------------------------------------------------------------


def daylight_saving_marks(
    schedule: cron.Schedule | timetable.Timetable, now: datetime, ticks: Sequence[datetime]
) -> dict[datetime, str]:
    """A note for each of ``ticks`` that a clock change concerns, from the cron model's
    :func:`~qstash_operator.domain.cron.daylight_saving_days`: a repeated (or extra) run carries
    the day's message; a skipped one, which is not among the ticks, marks the first tick after it.
    """
    if not ticks:
        return {}
    notes: dict[datetime, list[str]] = {}
    horizon = ticks[-1] - now + timedelta(days=1)
    for day in timetable.of(schedule).daylight_saving_days(now, horizon=horizon):
        if day.effect is cron.DaylightSavingEffect.SKIP:
            after = next((tick for tick in ticks if tick > day.first_instant), None)
            if after is not None:
                notes.setdefault(after, []).append(f"before this run, {day.message}")
            continue
        for tick in ticks:
            local = tick.astimezone(timetable.of(schedule).zone)
            if local.date() == day.date and local.time().replace(second=0) in day.times:
                notes.setdefault(tick, []).append(day.message)
    return {tick: "; ".join(messages) for tick, messages in notes.items()}


def next_daylight_saving(schedule: cron.Schedule | timetable.Timetable, now: datetime) -> str:
    """The next day a clock change makes the schedule skip, repeat or add a run, in words."""
    day = timetable.of(schedule).next_daylight_saving_day(now)
    if day is None:
        days = cron.DAYLIGHT_SAVING_HORIZON.days
        return f"No clock change skips or repeats a run in the next {days} days."
    return f"Next daylight-saving effect: {day.message}."


def fire_times(
    schedule: cron.Schedule | timetable.Timetable, now: datetime, *, count: int = FIRE_TIMES
) -> list[Json]:
    """The next ``count`` fire times after ``now``, each in the zone and in UTC, with a note on
    those a daylight-saving change concerns."""
    zone = schedule.zone
    ticks = timetable.of(schedule).next_ticks(now, count)
    notes = daylight_saving_marks(schedule, now, ticks)
    return [{**moment(tick, zone, now), "mark": notes.get(tick)} for tick in ticks]


# -- Jobs -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class JobRow:
    name: str
    manual: bool
    requested_by: str | None
    scheduled: datetime | None  # the tick it ran for (None for a manual run)
    created: datetime | None
    started: datetime | None
    finished: datetime | None
    outcome: str  # SUCCEEDED | FAILED | RUNNING | PENDING

    @property
    def when(self) -> datetime | None:
        return self.scheduled or self.created


def job_row(job: JsonDict) -> JobRow:
    view = runs.job_view(job)
    meta = job.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    status = job.get("status") or {}
    scheduled = runs.parse_time(annotations.get(vocabulary.ANNOTATION_SCHEDULED_TIME)) or (
        runs.parse_time(annotations.get(vocabulary.ANNOTATION_K8S_SCHEDULED_TIME))
    )
    if view.succeeded:
        outcome = SUCCEEDED
    elif view.failed:
        outcome = FAILED
    elif status.get("active") or status.get("ready"):
        outcome = RUNNING
    else:
        outcome = PENDING
    manual = view.trigger == vocabulary.TRIGGER_MANUAL
    return JobRow(
        name=view.name,
        manual=manual,
        requested_by=annotations.get(vocabulary.ANNOTATION_TRIGGERED_BY),
        scheduled=None if manual else scheduled.astimezone(UTC) if scheduled else None,
        created=view.created_at,
        started=runs.parse_time(status.get("startTime")),
        finished=view.finished_at,
        outcome=outcome,
    )


def _newest_first(rows: Iterable[JobRow]) -> list[JobRow]:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return sorted(rows, key=lambda row: (row.when or epoch, row.name), reverse=True)


def jobs_json(rows: Sequence[JobRow], zone: ZoneInfo, now: datetime) -> list[Json]:
    out = []
    for row in _newest_first(rows)[:RECENT_JOBS]:
        took: str | None = None
        if row.started is not None:
            end = row.finished or now
            took = duration((end - row.started).total_seconds())
            if row.finished is None:
                took += " so far"
        out.append(
            {
                "name": row.name,
                "trigger": "manual" if row.manual else "schedule",
                "requestedBy": row.requested_by,
                "scheduled": moment(row.scheduled, zone, now) if row.scheduled else None,
                "created": moment(row.created, zone, now) if row.created else None,
                "outcome": row.outcome,
                "outcomeWords": OUTCOME_WORDS[row.outcome],
                "duration": took,
            }
        )
    return out


# -- the timeline -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Slot:
    time: datetime
    outcome: str  # one of KNOWN_OUTCOMES
    job: str | None = None
    manual: bool = False
    reason: str | None = None
    requested_by: str | None = None


def ledger_slots(status: Mapping[str, Any]) -> list[Slot] | None:
    """The slot ledger, oldest first; None when the CronWorkflow has none (then use the Jobs)."""
    entries = status.get(LEDGER)
    if not isinstance(entries, list):
        return None
    slots = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        when = runs.parse_time(entry.get(LEDGER_TIME))
        if when is None:
            continue
        outcome = str(entry.get(LEDGER_OUTCOME) or "")
        slots.append(
            Slot(
                time=when.astimezone(UTC),
                outcome=outcome if outcome in KNOWN_OUTCOMES else NO_JOB,
                job=entry.get(LEDGER_JOB) or None,
                manual=bool(entry.get(LEDGER_MANUAL)),
                reason=entry.get(LEDGER_REASON) or None,
                requested_by=entry.get(LEDGER_REQUESTED_BY) or None,
            )
        )
    return sorted(slots, key=lambda slot: slot.time)[-TIMELINE_SLOTS:]


def recent_ticks(
    schedule: cron.Schedule | timetable.Timetable,
    now: datetime,
    *,
    since: datetime | None,
    count: int,
) -> list[datetime]:
    """The latest ``count`` ticks at or before ``now`` and not before ``since``, oldest first."""
    ticks: list[datetime] = []
    at = now
    while len(ticks) < count:
        tick = timetable.of(schedule).latest_tick(at)
        if tick is None or (since is not None and tick < since):
            break
        ticks.append(tick)
        at = tick - timedelta(microseconds=1)
    return ticks[::-1]


def job_slots(
    schedule: cron.Schedule | timetable.Timetable | None,
    jobs: Sequence[JobRow],
    now: datetime,
    *,
    since: datetime | None,
    count: int = TIMELINE_SLOTS,
) -> list[Slot]:
    """The timeline without a ledger: the latest ticks coloured by their Jobs, plus manual runs
    in between (oldest first). Without a valid schedule, the Jobs alone."""
    by_tick = {row.scheduled: row for row in jobs if row.scheduled is not None}
    slots: list[Slot] = []
    ticks = recent_ticks(schedule, now, since=since, count=count) if schedule else []
    for tick in ticks:
        row = by_tick.get(tick)
        if row is not None:
            slots.append(Slot(time=tick, outcome=row.outcome, job=row.name))
        else:
            slots.append(Slot(time=tick, outcome=DUE if now - tick < DUE_GRACE else NO_JOB))
    oldest = ticks[0] if ticks else None
    for row in jobs:
        when = row.when
        if when is None or (row.scheduled is not None and row.scheduled in ticks):
            continue
        if oldest is not None and when < oldest:
            continue  # before the strip starts: the Jobs table still lists it
        slots.append(
            Slot(
                time=when,
                outcome=row.outcome,
                job=row.name,
                manual=row.manual,
                requested_by=row.requested_by,
            )
        )
    return sorted(slots, key=lambda slot: slot.time)[-count:]


def timeline_json(slots: Sequence[Slot], *, source: str, zone: ZoneInfo, now: datetime) -> Json:
    note = (
        "from the slot ledger (status.recentSlots)"
        if source == "ledger"
        else "from the Jobs still in the cluster: a tick whose Job was pruned, skipped or "
        "missed shows as \u201cno Job\u201d"
    )
    items = []
    for slot in slots:
        words = OUTCOME_WORDS[slot.outcome]
        if slot.reason:
            words += f": {slot.reason}"
        label = f"{moment(slot.time, zone, now)['local']}: " + (
            f"manual run by {slot.requested_by or 'someone'}, {words}" if slot.manual else words
        )
        items.append(
            {
                "time": moment(slot.time, zone, now),
                "outcome": slot.outcome,
                "manual": slot.manual,
                "job": slot.job,
                "label": label + (f" (Job {slot.job})" if slot.job else ""),
            }
        )
    return {"source": source, "note": note, "slots": items}


# -- status -----------------------------------------------------------------------------------


def condition(status: Mapping[str, Any], kind: str) -> Json | None:
    for item in status.get("conditions") or []:
        if isinstance(item, Mapping) and item.get("type") == kind:
            return {
                "type": kind,
                "status": str(item.get("status", "Unknown")),
                "reason": str(item.get("reason", "")),
                "message": str(item.get("message", "")),
            }
    return None


def conditions_json(status: Mapping[str, Any], zone: ZoneInfo, now: datetime) -> list[Json]:
    out = []
    for item in status.get("conditions") or []:
        if not isinstance(item, Mapping):
            continue
        changed = runs.parse_time(item.get("lastTransitionTime"))
        out.append(
            {
                "type": str(item.get("type", "")),
                "status": str(item.get("status", "Unknown")),
                "reason": str(item.get("reason", "")),
                "message": str(item.get("message", "")),
                "since": moment(changed, zone, now) if changed else None,
            }
        )
    return out


def events_json(events: Sequence[JsonDict], zone: ZoneInfo, now: datetime) -> list[Json]:
    """Events about the CronWorkflow, newest first."""

    def last(event: JsonDict) -> datetime | None:
        return (
            runs.parse_time(event.get("lastTimestamp"))
            or runs.parse_time(event.get("eventTime"))
            or runs.parse_time((event.get("metadata") or {}).get("creationTimestamp"))
        )

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    ordered = sorted(events, key=lambda e: last(e) or epoch, reverse=True)[:RECENT_EVENTS]
    out = []
    for event in ordered:
        when = last(event)
        out.append(
            {
                "type": str(event.get("type", "")),
                "reason": str(event.get("reason", "")),
                "message": str(event.get("message", "")),
                "count": int(event.get("count") or 1),
                "last": moment(when, zone, now) if when else None,
            }
        )
    return out


LastRun = tuple[datetime, str, str | None]
"""When, the outcome, and the Job (if one is known)."""


def last_run(status: Mapping[str, Any], jobs: Sequence[JobRow] | None) -> LastRun | None:
    """The latest run and its outcome: from the ledger, else the newest Job, else the status
    (``lastScheduleTime``, outcome unknown)."""
    slots = ledger_slots(status)
    if slots:
        latest = slots[-1]
        return latest.time, latest.outcome, latest.job
    if jobs:
        newest = _newest_first(jobs)[0]
        if newest.when is not None:
            return newest.when, newest.outcome, newest.name
    scheduled = runs.parse_time(status.get("lastScheduleTime"))
    if scheduled is not None:
        return scheduled, NO_JOB, None
    return None


# -- permissions --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Permission:
    """An access decision with the sentence to show when it is a no."""

    allowed: bool
    denial: str = ""


def action_states(
    *, state: str, problem: str | None, patch: Permission, trigger: Permission
) -> Json:
    """Activate, Deactivate and Run now: enabled, or disabled with the reason.

    RBAC comes first (a caller who may not patch learns that, not that the button would do
    nothing); then what the object's state makes pointless or impossible.
    """

    def button(allowed: Permission, blocked: str | None) -> Json:
        if not allowed.allowed:
            return {"enabled": False, "reason": allowed.denial}
        if blocked:
            return {"enabled": False, "reason": blocked}
        return {"enabled": True, "reason": None}

    return {
        "activate": button(patch, "already active" if state == "active" else None),
        "deactivate": button(patch, "already suspended" if state == "suspended" else None),
        "run": button(trigger, f"the spec is invalid: {problem}" if problem else None),
    }


# -- pages ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Parsed:
    """A raw CronWorkflow, parsed once for every part of a page."""

    body: JsonDict
    cw: model.CronWorkflow | None
    problem: str | None

    @classmethod
    def of(cls, body: JsonDict) -> Parsed:
        try:
            return cls(body, model.parse(body), None)
        except InvalidSpecError as exc:
            return cls(body, None, str(exc))

    @property
    def meta(self) -> Mapping[str, Any]:
        return self.body.get("metadata") or {}

    @property
    def status(self) -> Mapping[str, Any]:
        return self.body.get("status") or {}

    @property
    def namespace(self) -> str:
        return str(self.meta.get("namespace", ""))

    @property
    def name(self) -> str:
        return str(self.meta.get("name", ""))

    @property
    def zone(self) -> ZoneInfo:
        return _zone(str((self.body.get("spec") or {}).get("timeZone") or "UTC"))

    @property
    def state(self) -> str:
        if self.cw is None:
            return "invalid"
        return "suspended" if self.cw.spec.suspend else "active"

    @property
    def since(self) -> datetime | None:
        """The first instant a tick of the current schedule could run."""
        created = runs.parse_time(self.meta.get("creationTimestamp"))
        since = runs.parse_time(self.status.get("scheduleSince"))
        known = [moment for moment in (created, since) if moment is not None]
        return max(known) if known else None


def _schedule_words(cw: model.CronWorkflow) -> str:
    table = cw.spec.timetable
    if not table.multiple:
        return describe_schedule(table.first.expression)
    return f"{len(table.entries)} schedules: " + "; ".join(
        f"{entry.name} {describe_schedule(entry.schedule.expression)}" for entry in table.entries
    )


def row_json(parsed: Parsed, jobs: Sequence[JobRow] | None, now: datetime) -> Json:
    """One CronWorkflow as the list shows it."""
    spec = parsed.body.get("spec") or {}
    zone = parsed.zone
    status = parsed.status
    next_run = None
    if parsed.cw is not None and not parsed.cw.spec.suspend:
        next_run = moment(parsed.cw.spec.timetable.next_tick(now), zone, now)
    latest = last_run(status, jobs)
    last = None
    if latest is not None:
        when, outcome, job = latest
        last = {
            "time": moment(when, zone, now),
            "outcome": outcome,
            "outcomeWords": OUTCOME_WORDS[outcome] if job or outcome != NO_JOB else "unknown",
            "job": job,
        }
    schedule_words = _schedule_words(parsed.cw) if parsed.cw is not None else None
    ready = condition(status, vocabulary.CONDITION_READY) or {
        "type": vocabulary.CONDITION_READY,
        "status": "Unknown",
        "reason": "",
        "message": "the operator has not reported yet",
    }
    return {
        "namespace": parsed.namespace,
        "name": parsed.name,
        "href": f"#/cronworkflows/{parsed.namespace}/{parsed.name}",
        "schedule": str(spec.get("schedule") or "")
        or f"{len(spec.get('schedules') or [])} schedules",
        "scheduleWords": schedule_words,
        "timeZone": str(spec.get("timeZone") or "UTC"),
        "backend": status.get("backend") or None,
        "state": parsed.state,
        "lastRun": last,
        "nextRun": next_run,
        "ready": ready,
        "freshness": condition(status, CONDITION_FRESH),
        "problem": parsed.problem,
    }


def list_json(
    rows: Sequence[Json], *, user: str, now: datetime, namespaces: Sequence[str], note: str | None
) -> Json:
    return {
        "time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "user": user,
        "namespaces": list(namespaces),
        "showFreshness": any(row["freshness"] is not None for row in rows),
        "note": note,
        "items": list(rows),
    }


@dataclasses.dataclass(frozen=True)
class DetailInputs:
    """What the service fetched for one detail page (None where the caller may not read)."""

    parsed: Parsed
    jobs: Sequence[JsonDict] | None
    jobs_denied: str
    events: Sequence[JsonDict] | None
    events_denied: str
    patch: Permission
    trigger: Permission


def detail_json(inputs: DetailInputs, *, user: str, now: datetime) -> Json:
    parsed = inputs.parsed
    zone = parsed.zone
    rows = [job_row(job) for job in inputs.jobs] if inputs.jobs is not None else None
    cw = parsed.cw
    if cw is not None:
        words = spec_in_words(cw, running=parsed.status.get("backend") or None)
        fires = fire_times(cw.spec.timetable, now)
        daylight_saving = next_daylight_saving(cw.spec.timetable, now)
    else:
        words = [f"The spec is invalid: {parsed.problem}"]
        fires = []
        daylight_saving = ""
    ledger = ledger_slots(parsed.status)
    if ledger is not None:
        timeline: Json | None = timeline_json(ledger, source="ledger", zone=zone, now=now)
    elif rows is not None:
        slots = job_slots(cw.spec.timetable if cw else None, rows, now, since=parsed.since)
        timeline = timeline_json(slots, source="jobs", zone=zone, now=now)
    else:
        timeline = None
    return {
        "time": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "user": user,
        "cronWorkflow": row_json(parsed, rows, now),
        "words": words,
        "fireTimes": fires,
        "daylightSaving": daylight_saving,
        "jobs": {
            "allowed": rows is not None,
            "denied": inputs.jobs_denied or None,
            "items": jobs_json(rows, zone, now) if rows is not None else [],
        },
        "timeline": timeline,
        "timelineDenied": inputs.jobs_denied if timeline is None else None,
        "conditions": conditions_json(parsed.status, zone, now),
        "events": {
            "allowed": inputs.events is not None,
            "denied": inputs.events_denied or None,
            "items": events_json(inputs.events, zone, now) if inputs.events is not None else [],
        },
        "actions": action_states(
            state=parsed.state, problem=parsed.problem, patch=inputs.patch, trigger=inputs.trigger
        ),
    }
