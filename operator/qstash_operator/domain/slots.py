"""The per-slot ledger (``status.recentSlots``), missed slots, catch-up and freshness.

A *slot* is one tick of the schedule (or one manual run). The ledger says, newest first and
bounded by ``spec.slotHistoryLimit``, what became of each: ``Succeeded``, ``Failed``,
``Running``, ``Skipped`` (why: ``Suspended``, ``ConcurrencyForbid``, ``PastDeadline``,
``BeforeScheduleChange``), ``Missed`` (no delivery and no CronJob run arrived) or ``CaughtUp``
(run late by the catch-up policy), with its Job, the backend that ran it, its delay from the tick
and, when known, the QStash attempt that ran it. The words are :mod:`vocabulary`'s, shared with
the ``MissedSchedule`` event and ``qstash_operator_slots_total{outcome,reason}``.

Everything here is pure: the operator's audit hands in the expected schedule, the CronWorkflow's
Jobs (from its watch cache), the previous ledger (which carries what writers recorded: the
webhook's runs and skips, whose Jobs may since have been pruned by the history limits), the
suspension intervals and ``status.scheduleSince``, and ``now``.

Who decides a slot's fate, in order:

1. a Job for the slot exists: its state (``CaughtUp`` when the catch-up policy made it);
2. the previous ledger has the slot: kept (a ``Running`` entry whose Job went away reads
   ``Failed/JobDeleted``);
3. the slot fell inside a suspension: ``Skipped/Suspended``;
4. otherwise, once ``now`` is past the slot plus the grace: ``Missed``, except where nothing can
   tell a missed slot from one whose Job was pruned: slots at or before ``lastScheduleTime``
   that the previous ledger does not cover (a ledger just starting), and on the CronJob backend
   (whose controller ran them while nobody recorded).

Slots before ``status.scheduleSince`` are not expected at all (editing a schedule never owes a
tick of the new one in the past); a delivery for one reads ``Skipped/BeforeScheduleChange``.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from qstash_operator.domain import cron, timetable, vocabulary
from qstash_operator.domain.errors import InvalidSpecError

JsonDict = dict[str, Any]

DEFAULT_HISTORY_LIMIT: Final = 20
MAX_HISTORY_LIMIT: Final = 100
MAX_LEDGER_BYTES: Final = 56_000
"""The most ``status.recentSlots`` can weigh, as compact JSON: 100 entries with every field at
its longest (the CRD's maxLength) is 55,301 bytes; 20 typical entries are about 3.1 kB."""
MAX_SUSPENSIONS: Final = 5
"""Suspension intervals kept in ``status.suspensions``: older ones lie beyond any ledger."""
FORWARD_WALK_FACTOR: Final = 4
"""Walk forward from the newest known slot while that is at most this many ledgers of ticks;
beyond it (a long outage) walk back from now instead, which costs one ledger's worth."""

_DURATION = re.compile(r"^([1-9][0-9]*)([smhd])$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}

FINAL_FATES: Final = frozenset(
    {
        vocabulary.FATE_SUCCEEDED,
        vocabulary.FATE_FAILED,
        vocabulary.FATE_SKIPPED,
        vocabulary.FATE_MISSED,
        vocabulary.FATE_CAUGHT_UP,
    }
)


# -- options (spec.slotHistoryLimit, spec.catchUp, spec.freshness) ---------------------------------


class CatchUpPolicy(enum.Enum):
    NONE = "None"
    LATEST = "Latest"
    ALL = "All"


@dataclasses.dataclass(frozen=True)
class CatchUp:
    """``spec.catchUp``; unset: ``Latest`` within ``startingDeadlineSeconds`` when that is set,
    else ``None`` (what a CronJob does after its controller was down)."""

    policy: CatchUpPolicy
    max_runs: int
    window: timedelta | None  # None: as far back as the ledger reaches


@dataclasses.dataclass(frozen=True)
class Freshness:
    """``spec.freshness``: stale once the last success is older than ``max_age``, or once the
    latest ``missed_slots`` slots all failed to succeed."""

    max_age: timedelta | None = None
    missed_slots: int | None = None


@dataclasses.dataclass(frozen=True)
class SlotOptions:
    history_limit: int = DEFAULT_HISTORY_LIMIT
    catch_up: CatchUp = CatchUp(CatchUpPolicy.NONE, 0, None)
    freshness: Freshness | None = None


def parse_duration(value: Any, field: str) -> timedelta:
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidSpecError(
            field, f"{value!r} is not a duration", "Write a number and a unit s, m, h or d: '26h'."
        )
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def _whole(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidSpecError(
            field, f"must be an integer from {low} to {high}, got {value!r}", f"Set {low}..{high}."
        )
    return value


def parse_options(spec: Mapping[str, Any], *, starting_deadline_seconds: int | None) -> SlotOptions:
    """The ledger's, catch-up's and freshness's part of a raw spec (the CRD checks it first)."""
    raw_limit = spec.get("slotHistoryLimit")
    limit = (
        DEFAULT_HISTORY_LIMIT
        if raw_limit is None
        else _whole(raw_limit, "spec.slotHistoryLimit", 1, MAX_HISTORY_LIMIT)
    )
    deadline = (
        None if starting_deadline_seconds is None else timedelta(seconds=starting_deadline_seconds)
    )
    raw_catch_up = spec.get("catchUp")
    if raw_catch_up is None:
        policy = CatchUpPolicy.LATEST if deadline is not None else CatchUpPolicy.NONE
        catch_up = CatchUp(policy, 1 if deadline is not None else 0, deadline)
    else:
        if not isinstance(raw_catch_up, Mapping):
            raise InvalidSpecError("spec.catchUp", "must be an object", "Give policy: Latest.")
        try:
            policy = CatchUpPolicy(raw_catch_up.get("policy") or "Latest")
        except ValueError:
            raise InvalidSpecError(
                "spec.catchUp.policy",
                f"unknown value {raw_catch_up.get('policy')!r}",
                "Use None, Latest or All.",
            ) from None
        raw_max = raw_catch_up.get("maxRuns")
        max_runs = {
            CatchUpPolicy.NONE: 0,
            CatchUpPolicy.LATEST: 1,
            CatchUpPolicy.ALL: limit
            if raw_max is None
            else _whole(raw_max, "spec.catchUp.maxRuns", 1, MAX_HISTORY_LIMIT),
        }[policy]
        raw_window = raw_catch_up.get("window")
        window = (
            deadline if raw_window is None else parse_duration(raw_window, "spec.catchUp.window")
        )
        catch_up = CatchUp(policy, max_runs, window)
    raw_fresh = spec.get("freshness")
    freshness = None
    if raw_fresh is not None:
        if not isinstance(raw_fresh, Mapping) or not (
            raw_fresh.get("maxAge") is not None or raw_fresh.get("missedSlots") is not None
        ):
            raise InvalidSpecError(
                "spec.freshness",
                "names neither maxAge nor missedSlots",
                "Set maxAge (e.g. '26h') or missedSlots (e.g. 3).",
            )
        max_age = raw_fresh.get("maxAge")
        missed = raw_fresh.get("missedSlots")
        freshness = Freshness(
            max_age=None if max_age is None else parse_duration(max_age, "spec.freshness.maxAge"),
            missed_slots=None
            if missed is None
            else _whole(missed, "spec.freshness.missedSlots", 1, MAX_HISTORY_LIMIT),
        )
    return SlotOptions(history_limit=limit, catch_up=catch_up, freshness=freshness)


# -- the Jobs, as the ledger needs them ------------------------------------------------------------


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else None


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class SlotJob:
    """One Job of a CronWorkflow: small enough to keep for every Job in the operator's index."""

    name: str
    cronworkflow_uid: str
    slot: datetime | None  # the tick it ran; None for a manual run
    created_at: datetime | None
    fate: str  # Succeeded, Failed or Running
    reason: str
    backend: str | None
    manual: bool
    requested_by: str | None
    catch_up: bool
    attempt: int | None


def _slot_of(name: str, annotations: Mapping[str, str], cronworkflow: str) -> datetime | None:
    """Our annotation, else the CronJob controller's, else the ``<name>-<unix minutes>`` name."""
    for key in (vocabulary.ANNOTATION_SCHEDULED_TIME, vocabulary.ANNOTATION_K8S_SCHEDULED_TIME):
        moment = parse_time(annotations.get(key))
        if moment is not None:
            return moment
    suffix = name[len(cronworkflow) + 1 :] if name.startswith(cronworkflow + "-") else ""
    if suffix.isdigit():
        return datetime.fromtimestamp(int(suffix) * 60, tz=UTC)
    return None


def slot_job(job: Mapping[str, Any]) -> SlotJob:
    meta = job.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    name = str(meta.get("name", ""))
    conditions = {
        c.get("type"): c
        for c in (job.get("status") or {}).get("conditions") or []
        if c.get("status") == "True"
    }
    if "Complete" in conditions:
        fate, reason = vocabulary.FATE_SUCCEEDED, vocabulary.SLOT_REASON_JOB_COMPLETE
    elif "Failed" in conditions:
        fate = vocabulary.FATE_FAILED
        reason = str(conditions["Failed"].get("reason") or vocabulary.SLOT_REASON_JOB_FAILED)
    elif meta.get("deletionTimestamp"):
        fate, reason = vocabulary.FATE_FAILED, vocabulary.SLOT_REASON_JOB_DELETED
    else:
        fate, reason = vocabulary.FATE_RUNNING, vocabulary.SLOT_REASON_JOB_ACTIVE
    manual = labels.get(vocabulary.LABEL_TRIGGER) == vocabulary.TRIGGER_MANUAL
    attempt = annotations.get(vocabulary.ANNOTATION_ATTEMPT)
    return SlotJob(
        name=name,
        cronworkflow_uid=str(labels.get(vocabulary.LABEL_CRONWORKFLOW_UID, "")),
        slot=None
        if manual
        else _slot_of(name, annotations, str(labels.get(vocabulary.LABEL_CRONWORKFLOW, ""))),
        created_at=parse_time(meta.get("creationTimestamp")),
        fate=fate,
        reason=reason,
        backend=annotations.get(vocabulary.ANNOTATION_BACKEND),
        manual=manual,
        requested_by=annotations.get(vocabulary.ANNOTATION_TRIGGERED_BY),
        catch_up=annotations.get(vocabulary.ANNOTATION_CATCH_UP) == "true",
        attempt=int(attempt) if isinstance(attempt, str) and attempt.isdigit() else None,
    )


# -- ledger entries --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Slot:
    """One entry of ``status.recentSlots``."""

    time: datetime  # the tick; for a manual run, when its Job was made
    fate: str
    reason: str
    job: str | None = None
    backend: str | None = None
    delay_seconds: int | None = None
    attempts: int | None = None
    manual: bool = False
    requested_by: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """A tick has one entry; a manual run one per Job."""
        return ("manual", self.job or "") if self.manual else ("tick", rfc3339(self.time))

    def as_status(self) -> JsonDict:
        entry: JsonDict = {"time": rfc3339(self.time), "fate": self.fate, "reason": self.reason}
        optional = {
            "job": self.job,
            "backend": self.backend,
            "delaySeconds": self.delay_seconds,
            "attempts": self.attempts,
            "requestedBy": self.requested_by,
        }
        entry.update({key: value for key, value in optional.items() if value is not None})
        if self.manual:
            entry["manual"] = True
        return entry


def parse_slot(raw: Any) -> Slot | None:
    if not isinstance(raw, Mapping):
        return None
    moment = parse_time(raw.get("time"))
    fate, reason = raw.get("fate"), raw.get("reason")
    if moment is None or not isinstance(fate, str) or not isinstance(reason, str):
        return None
    delay, attempts = raw.get("delaySeconds"), raw.get("attempts")
    return Slot(
        time=moment,
        fate=fate,
        reason=reason,
        job=raw.get("job") if isinstance(raw.get("job"), str) else None,
        backend=raw.get("backend") if isinstance(raw.get("backend"), str) else None,
        delay_seconds=delay if isinstance(delay, int) else None,
        attempts=attempts if isinstance(attempts, int) else None,
        manual=raw.get("manual") is True,
        requested_by=raw.get("requestedBy") if isinstance(raw.get("requestedBy"), str) else None,
    )


def parse_ledger(raw: Any) -> list[Slot]:
    if not isinstance(raw, list):
        return []
    return [slot for slot in (parse_slot(item) for item in raw) if slot is not None]


_RAN: Final = frozenset(
    {
        vocabulary.FATE_SUCCEEDED,
        vocabulary.FATE_FAILED,
        vocabulary.FATE_RUNNING,
        vocabulary.FATE_CAUGHT_UP,
    }
)


def ran_ticks(raw: Any) -> frozenset[datetime]:
    """The ticks ``status.recentSlots`` records as run: a Job was made for each, even if the
    history limits have pruned it since (so a late retry of one must not run it again)."""
    return frozenset(
        slot.time for slot in parse_ledger(raw) if not slot.manual and slot.fate in _RAN
    )


def ledger_status(ledger: Sequence[Slot]) -> list[JsonDict]:
    return [slot.as_status() for slot in ledger]


def _ordered(entries: Iterable[Slot], limit: int) -> list[Slot]:
    """Newest first (a manual run after a tick at the same instant), at most ``limit``."""
    return sorted(entries, key=lambda s: (s.time, s.manual, s.job or ""), reverse=True)[:limit]


def from_job(job: SlotJob) -> Slot:
    time = job.slot if job.slot is not None else job.created_at
    assert time is not None, "a manual Job without a creation time is not listed"
    delay = (
        int((job.created_at - job.slot).total_seconds())
        if job.slot is not None and job.created_at is not None
        else None
    )
    return Slot(
        time=time,
        fate=vocabulary.FATE_CAUGHT_UP if job.catch_up else job.fate,
        reason=job.reason,
        job=job.name,
        backend=job.backend,
        delay_seconds=delay,
        attempts=job.attempt,
        manual=job.manual,
        requested_by=job.requested_by if job.manual else None,
    )


def record(ledger: Sequence[Slot], entry: Slot, *, limit: int) -> list[Slot]:
    """``entry`` written into ``ledger`` (replacing the entry of its slot): what the webhook does
    when it runs or skips a tick, so the fact survives its Job being pruned."""
    kept = [slot for slot in ledger if slot.key != entry.key]
    return _ordered([*kept, entry], limit)


# -- suspensions -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Suspension:
    since: datetime
    until: datetime | None  # None: still suspended

    def covers(self, moment: datetime) -> bool:
        return self.since <= moment and (self.until is None or moment < self.until)


def parse_suspensions(raw: Any) -> list[Suspension]:
    result = []
    for item in raw if isinstance(raw, list) else []:
        since = parse_time(item.get("since")) if isinstance(item, Mapping) else None
        if since is not None:
            result.append(Suspension(since, parse_time(item.get("until"))))
    return result


def suspensions_after(raw: Any, *, suspended: bool, now: datetime) -> list[JsonDict] | None:
    """``status.suspensions`` after the reconciler saw ``spec.suspend``; None: unchanged.

    Suspending opens an interval at ``now``; resuming closes it. Its slots read
    ``Skipped/Suspended`` and are never caught up: resuming does not replay the suspended time.
    """
    current = parse_suspensions(raw)
    is_open = bool(current) and current[-1].until is None
    if suspended == is_open:
        return None
    if suspended:
        current.append(Suspension(now, None))
    else:
        current[-1] = Suspension(current[-1].since, now)
    out: list[JsonDict] = []
    for item in current[-MAX_SUSPENSIONS:]:
        entry = {"since": rfc3339(item.since)}
        if item.until is not None:
            entry["until"] = rfc3339(item.until)
        out.append(entry)
    return out


# -- the expected slots ----------------------------------------------------------------------------


def expected_ticks(
    schedule: cron.Schedule | timetable.Timetable,
    *,
    since: datetime,
    through: datetime,
    newest_known: datetime | None,
    limit: int,
) -> list[datetime]:
    """The latest ``limit`` ticks in ``[since, through]``, oldest first, that are newer than
    ``newest_known`` when that is given (older ones were judged by an earlier audit).

    Walks forward from the newest known slot when that is cheap (the usual case: zero or one
    new tick), else back from ``through``, one tick at a time.
    """
    if through < since:
        return []
    table = timetable.of(schedule)
    start = since if newest_known is None or newest_known < since else newest_known
    span = through - start
    if newest_known is not None and span <= table.shortest_interval * FORWARD_WALK_FACTOR * limit:
        found: list[datetime] = []
        for tick in table.ticks_after(newest_known if newest_known >= since else since - _MICRO):
            if tick > through:
                break
            found.append(tick)
        return found[-limit:]
    backwards: list[datetime] = []
    at = through
    while len(backwards) < limit:
        latest = table.latest_tick(at)
        if (
            latest is None
            or latest < since
            or (newest_known is not None and latest <= newest_known)
        ):
            break
        backwards.append(latest)
        at = latest - _MICRO
    return backwards[::-1]


_MICRO: Final = timedelta(microseconds=1)


# -- the ledger ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LedgerInputs:
    schedule: cron.Schedule | timetable.Timetable
    cronworkflow_uid: str
    previous: Sequence[Slot]
    jobs: Sequence[SlotJob]
    schedule_since: datetime | None
    suspensions: Sequence[Suspension]
    suspended_now: bool
    last_schedule_time: datetime | None
    backend: str | None
    limit: int
    grace: timedelta


def build_ledger(inputs: LedgerInputs, *, now: datetime) -> list[Slot]:
    """``status.recentSlots`` as of ``now`` (rules in the module docstring)."""
    jobs = [
        job
        for job in inputs.jobs
        if job.cronworkflow_uid in ("", inputs.cronworkflow_uid)
        and (job.slot is not None or job.created_at is not None)
    ]
    previous = {slot.key: slot for slot in inputs.previous}
    ticks_known = [slot.time for slot in inputs.previous if not slot.manual]
    entries: dict[tuple[str, str], Slot] = dict(previous)
    for key, slot in previous.items():
        started = slot.time + timedelta(seconds=max(slot.delay_seconds or 0, 0))
        if slot.fate == vocabulary.FATE_RUNNING and now - started > inputs.grace:
            # its Job went away unfinished (Replace, a person), unless it turns up below; a
            # Job younger than the grace may just not be in the watch cache yet
            entries[key] = dataclasses.replace(
                slot, fate=vocabulary.FATE_FAILED, reason=vocabulary.SLOT_REASON_JOB_DELETED
            )
    for job in jobs:
        slot = from_job(job)
        entries[slot.key] = slot
    if inputs.schedule_since is not None:
        oldest_known = min(ticks_known, default=None)
        for tick in expected_ticks(
            inputs.schedule,
            since=inputs.schedule_since,
            through=now - inputs.grace,
            newest_known=max(ticks_known, default=None),
            limit=inputs.limit,
        ):
            key = ("tick", rfc3339(tick))
            if key in entries:
                continue
            if _suspended(tick, inputs):
                entries[key] = Slot(tick, vocabulary.FATE_SKIPPED, vocabulary.SLOT_REASON_SUSPENDED)
                continue
            recorded = inputs.last_schedule_time
            if recorded is not None and tick <= recorded:
                unknowable = (
                    inputs.backend == "CronJob" or oldest_known is None or tick < oldest_known
                )
                if unknowable:
                    continue  # maybe ran, its Job pruned before anyone recorded it
            entries[key] = Slot(tick, vocabulary.FATE_MISSED, vocabulary.SLOT_REASON_NO_RUN)
    return _ordered(entries.values(), inputs.limit)


def with_jobs(
    previous: Sequence[Slot], jobs: Sequence[SlotJob], *, cronworkflow_uid: str, limit: int
) -> list[Slot]:
    """``previous`` with each Job's entry brought up to date (the Job mirror's part, written as a
    Job changes): no slot is judged missed here, that is the audit's alone, so its event and
    count happen once."""
    entries = {slot.key: slot for slot in previous}
    for job in jobs:
        if job.cronworkflow_uid in ("", cronworkflow_uid) and (
            job.slot is not None or job.created_at is not None
        ):
            slot = from_job(job)
            entries[slot.key] = slot
    return _ordered(entries.values(), limit)


def _suspended(tick: datetime, inputs: LedgerInputs) -> bool:
    if any(interval.covers(tick) for interval in inputs.suspensions):
        return True
    still_open = bool(inputs.suspensions) and inputs.suspensions[-1].until is None
    return inputs.suspended_now and not still_open


# -- catch-up --------------------------------------------------------------------------------------


def catch_up_slots(ledger: Sequence[Slot], catch_up: CatchUp, *, now: datetime) -> list[datetime]:
    """The missed slots to run now, oldest first.

    Per outage, a run of consecutive slots that read ``Missed`` or ``CaughtUp`` (newest first in
    the ledger, manual runs aside): its latest ``max_runs`` slots within the window are owed a
    run, and those still ``Missed`` get one. So a pass after some of them ran does not reach
    further back, and the older slots of the outage stay ``Missed``.
    """
    if catch_up.policy is CatchUpPolicy.NONE or catch_up.max_runs <= 0:
        return []
    owed: list[datetime] = []
    outage: list[Slot] = []
    for slot in [*[s for s in ledger if not s.manual], None]:
        if slot is not None and slot.fate in (vocabulary.FATE_MISSED, vocabulary.FATE_CAUGHT_UP):
            outage.append(slot)
            continue
        owed.extend(
            entry.time
            for entry in outage[: catch_up.max_runs]
            if entry.fate == vocabulary.FATE_MISSED
            and (catch_up.window is None or now - entry.time <= catch_up.window)
        )
        outage = []
    return sorted(owed)


# -- what changed (events, metrics) ----------------------------------------------------------------


def is_settled(slot: Slot) -> bool:
    """A fate that will not change by itself (a catch-up run still going will)."""
    return slot.fate in FINAL_FATES and not (
        slot.fate == vocabulary.FATE_CAUGHT_UP and slot.reason == vocabulary.SLOT_REASON_JOB_ACTIVE
    )


def settled(ledger: Iterable[Slot]) -> set[tuple[tuple[str, str], str, str]]:
    """(slot, fate, reason) of every settled entry: what has been counted."""
    return {(slot.key, slot.fate, slot.reason) for slot in ledger if is_settled(slot)}


def newly_settled(
    ledger: Sequence[Slot], seen: set[tuple[tuple[str, str], str, str]]
) -> list[Slot]:
    """Entries whose final fate is not in ``seen`` yet, oldest first."""
    return [
        slot
        for slot in reversed(ledger)
        if is_settled(slot) and (slot.key, slot.fate, slot.reason) not in seen
    ]


# -- freshness -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FreshnessVerdict:
    fresh: bool
    reason: str
    message: str
    age_seconds: float | None  # since the last success; None: none yet


def judge_freshness(
    freshness: Freshness,
    ledger: Sequence[Slot],
    *,
    last_success: datetime | None,
    since: datetime | None,
    suspended: bool,
    now: datetime,
) -> FreshnessVerdict:
    """``Fresh``: the last success is within ``maxAge`` (counting from ``since``, when the
    schedule took effect, before the first one), and not all of the latest ``missedSlots``
    scheduled slots failed, were missed or skipped for a reason other than suspension."""
    age = None if last_success is None else (now - last_success).total_seconds()
    if suspended:
        return FreshnessVerdict(
            True, vocabulary.SLOT_REASON_SUSPENDED, "suspended: not judged", age
        )
    if freshness.max_age is not None:
        reference = last_success or since
        if reference is not None and now - reference > freshness.max_age:
            what = (
                f"no success since {rfc3339(reference)}"
                if last_success is not None
                else f"no success since the schedule took effect at {rfc3339(reference)}"
            )
            return FreshnessVerdict(
                False,
                vocabulary.REASON_STALE,
                f"{what}, longer ago than freshness.maxAge {_human(freshness.max_age)}",
                age,
            )
    if freshness.missed_slots is not None:
        scheduled = [
            slot for slot in ledger if not slot.manual and slot.fate != vocabulary.FATE_RUNNING
        ]
        latest = scheduled[: freshness.missed_slots]
        bad = [
            slot
            for slot in latest
            if slot.fate in (vocabulary.FATE_FAILED, vocabulary.FATE_MISSED)
            or (
                slot.fate == vocabulary.FATE_SKIPPED
                and slot.reason != vocabulary.SLOT_REASON_SUSPENDED
            )
            or (
                slot.fate == vocabulary.FATE_CAUGHT_UP
                and slot.reason != vocabulary.SLOT_REASON_JOB_COMPLETE
            )
        ]
        if len(latest) == freshness.missed_slots and len(bad) == len(latest):
            fates = ", ".join(f"{slot.fate}/{slot.reason}" for slot in latest)
            return FreshnessVerdict(
                False,
                vocabulary.REASON_MISSED_SLOTS,
                f"the latest {len(latest)} slots did not succeed ({fates})",
                age,
            )
    return FreshnessVerdict(True, vocabulary.REASON_FRESH, "within freshness", age)


def _human(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if (seconds >= size and seconds % size == 0) or seconds >= size * 10:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
