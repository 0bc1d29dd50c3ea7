"""Decisions about runs: should this delivery (or manual request) become a Job, and which Job?

Pure functions over a :class:`CronWorkflow`, views of its live Jobs and an injected ``now``. The
webhook and the operator's run-now path call them through ``services.runs``; tests call them
directly with named instants.

The rules, in the order they are checked for a QStash delivery:

1. A Job already carries this delivery's message id → ``DUPLICATE_MESSAGE`` (QStash redelivered a
   message we ran: one Job per message).
2. The tick (QStash does not send it). A first attempt (``Upstash-Retried: 0``) is judged by its
   arrival (:func:`cron.tick_for_delivery`, with the early window). A retry is judged by the
   message QStash says it is (:class:`MessageOrigin`, from ``GET /v2/messages/{id}``): a message
   of another schedule is refused (``PermanentDeliveryError`` ``ScheduleMismatch``), otherwise
   the tick is the one its ``createdAt`` was made for (:func:`cron.tick_for_message`), however
   late the retry comes. No tick at all → ``NO_TICK``.
3. The tick's Job already exists, or the tick is not after ``status.lastScheduleTime`` →
   ``DUPLICATE_TICK`` (another replica, another message, or the other backend during a handover
   ran it: at most one Job per (uid, tick)). One exception: a retry of an *older* tick whose Job
   the history proves was never made (:func:`never_ran`) is not a duplicate; it is the delivery
   that failed while later ticks ran, and it runs now.
4. The tick is before ``status.scheduleSince`` (when the current cron and zone took effect) →
   ``SKIPPED_RETROACTIVE``: editing a schedule never runs a tick of the new one in the past.
5. ``spec.suspend`` → ``SKIPPED_SUSPENDED``.
5a. Outside ``[spec.activeFrom, spec.activeUntil)`` or with ``spec.maxRuns`` scheduled runs made
   → ``SKIPPED_INACTIVE`` (before the window) or ``SKIPPED_COMPLETED`` (:mod:`window`).
6. Later than ``startingDeadlineSeconds`` after the tick → ``SKIPPED_DEADLINE``.
7. ``Forbid`` with an active Job → ``SKIPPED_FORBID``; ``Replace`` → run, deleting active Jobs,
   unless another run has reserved a Job it has not created yet: then ``RunInFlightError``
   (retry shortly, and replace that Job once it exists, rather than run beside it).
   A reservation counts as active under ``Forbid`` too.
8. Otherwise ``RUN``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from qstash_operator.domain import (
    builders,
    cron,
    idempotency,
    naming,
    slots,
    timetable,
    vocabulary,
    window,
)
from qstash_operator.domain.errors import (
    IdempotencyConflictError,
    PermanentDeliveryError,
    RunInFlightError,
)
from qstash_operator.domain.model import ConcurrencyPolicy, CronWorkflow, JsonDict

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Outcome(enum.Enum):
    """What became of a delivery or request; the value is the metric label and the event word."""

    RUN = "run"
    DUPLICATE_MESSAGE = "duplicate_message"
    DUPLICATE_TICK = "duplicate_tick"
    NO_TICK = "no_tick"
    SKIPPED_SUSPENDED = "skipped_suspended"
    SKIPPED_DEADLINE = "skipped_deadline"
    SKIPPED_FORBID = "skipped_forbid"
    SKIPPED_RETROACTIVE = "skipped_retroactive"
    SKIPPED_INACTIVE = "skipped_inactive"  # before spec.activeFrom
    SKIPPED_COMPLETED = "skipped_completed"  # at/after spec.activeUntil, or spec.maxRuns made

    @property
    def skipped(self) -> bool:
        return self is not Outcome.RUN

    @property
    def reason(self) -> str:
        return _REASONS[self]


_REASONS = {
    Outcome.RUN: vocabulary.REASON_SUCCESSFUL_CREATE,
    Outcome.DUPLICATE_MESSAGE: vocabulary.REASON_DUPLICATE_DELIVERY,
    Outcome.DUPLICATE_TICK: vocabulary.REASON_DUPLICATE_DELIVERY,
    Outcome.NO_TICK: vocabulary.REASON_SKIPPED_DEADLINE,
    Outcome.SKIPPED_SUSPENDED: vocabulary.REASON_SKIPPED_SUSPENDED,
    Outcome.SKIPPED_DEADLINE: vocabulary.REASON_SKIPPED_DEADLINE,
    Outcome.SKIPPED_FORBID: vocabulary.REASON_SKIPPED_FORBID,
    Outcome.SKIPPED_RETROACTIVE: vocabulary.REASON_SKIPPED_DEADLINE,
    Outcome.SKIPPED_INACTIVE: vocabulary.REASON_SKIPPED_INACTIVE,
    Outcome.SKIPPED_COMPLETED: vocabulary.REASON_COMPLETED,
}


@dataclasses.dataclass(frozen=True)
class JobView:
    """What the run rules need to know about one live Job."""

    name: str
    uid: str
    created_at: datetime | None
    active: bool
    succeeded: bool
    failed: bool
    finished_at: datetime | None
    message_id: str | None
    trigger: str | None
    idempotency_key: str | None = None
    fingerprint: str | None = None

    def kept_for_a_key(self, now: datetime) -> bool:
        """A manual Job made with an Idempotency-Key, within the key's window: not pruned, so a
        retry of its request finds it (:mod:`qstash_operator.domain.idempotency`)."""
        return (
            self.idempotency_key is not None
            and self.created_at is not None
            and now < self.created_at + idempotency.WINDOW
        )

    def reference(self, namespace: str) -> JsonDict:
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": self.name,
            "namespace": namespace,
            "uid": self.uid,
        }


def parse_time(text: Any) -> datetime | None:
    """An RFC 3339 timestamp as Kubernetes writes it, or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def job_view(job: JsonDict) -> JobView:
    meta = job.get("metadata") or {}
    status = job.get("status") or {}
    conditions = {
        condition.get("type"): condition
        for condition in status.get("conditions") or []
        if condition.get("status") == "True"
    }
    succeeded = "Complete" in conditions
    failed = "Failed" in conditions
    finished = conditions.get("Complete") or conditions.get("Failed")
    finished_at = parse_time(status.get("completionTime")) or (
        parse_time(finished.get("lastTransitionTime")) if finished else None
    )
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    return JobView(
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        created_at=parse_time(meta.get("creationTimestamp")),
        active=not (succeeded or failed) and not meta.get("deletionTimestamp"),
        succeeded=succeeded,
        failed=failed,
        finished_at=finished_at,
        message_id=annotations.get(vocabulary.ANNOTATION_MESSAGE_ID),
        trigger=labels.get(vocabulary.LABEL_TRIGGER),
        idempotency_key=annotations.get(vocabulary.ANNOTATION_IDEMPOTENCY_KEY),
        fingerprint=annotations.get(vocabulary.ANNOTATION_REQUEST_FINGERPRINT),
    )


@dataclasses.dataclass(frozen=True)
class MessageOrigin:
    """What QStash says about a message it is retrying (``GET /v2/messages/{messageId}``)."""

    created_at: datetime
    """``createdAt``: when QStash made the message, i.e. when its schedule fired."""
    schedule_id: str | None
    """``scheduleId``: the schedule that made it (None: a message published by hand)."""


REASON_SCHEDULE_MISMATCH: Final = "ScheduleMismatch"
"""489: QStash says the retried message was made by another schedule than this CronWorkflow's."""
REASON_MESSAGE_UNKNOWN: Final = "MessageUnknown"
"""489: QStash no longer knows the retried message, so its tick cannot be known."""


def needs_origin(jobs: Sequence[JobView], *, message_id: str | None, first_attempt: bool) -> bool:
    """Must QStash be asked which message this is? Only for a retry no Job has run yet."""
    if first_attempt:
        return False
    return message_id is None or not any(job.message_id == message_id for job in jobs)


def never_ran(
    cw: CronWorkflow,
    jobs: Sequence[JobView],
    tick: datetime,
    *,
    now: datetime,
    tolerance: timedelta,
) -> bool:
    """Does the Job history prove that no Job was ever made for ``tick``?

    Its Job would be named for the tick and would still be listed, unless the history limits
    pruned it (:func:`history_to_prune`: oldest finished first, per kind), ``Replace`` deleted it
    while active, or ``ttlSecondsAfterFinished`` removed it. So the proof holds when the policy
    is not ``Replace``, the template has no TTL, and for each kind (succeeded, failed) the kept
    Jobs are fewer than its limit or include one that finished before the tick's Job could have
    started (the tick less the clock tolerance, the most an early first attempt gets), so the
    tick's Job would have outlived that one. A Job deleted by hand is not seen: that is the one
    case where a late retry may run a tick again.
    """
    if cw.spec.concurrency_policy is ConcurrencyPolicy.REPLACE:
        return False
    if (cw.spec.job_template.get("spec") or {}).get("ttlSecondsAfterFinished") is not None:
        return False
    earliest = tick - tolerance
    counted = [job for job in jobs if not job.kept_for_a_key(now)]
    for finished, limit in (
        ([job for job in counted if job.succeeded], cw.spec.successful_jobs_history_limit),
        ([job for job in counted if job.failed], cw.spec.failed_jobs_history_limit),
    ):
        older = any(job.finished_at is not None and job.finished_at < earliest for job in finished)
        if len(finished) >= limit and not older:
            return False
    return True


@dataclasses.dataclass(frozen=True)
class RunPlan:
    outcome: Outcome
    tick: datetime | None = None
    job_name: str | None = None
    delete_first: tuple[str, ...] = ()  # Replace: active Jobs to delete before creating
    message: str = ""


RESERVATION_PREFIX: Final = "reserved:"
"""``status.active`` entries written before their Job exists carry ``uid: reserved:<time>``."""
RESERVATION_TTL: Final = timedelta(seconds=60)
"""A reservation whose Job never appeared (its writer crashed) stops counting after a minute; a
Job create takes milliseconds, so a live reservation is always far younger."""


def reservation_uid(now: datetime) -> str:
    return RESERVATION_PREFIX + now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def reserved_names(active: Sequence[Any] | None, *, now: datetime) -> tuple[str, ...]:
    """Names of runs another writer has reserved and is about to create (Forbid/Replace)."""
    names = []
    for entry in active or ():
        reservation = _reservation_stamp(entry)
        if reservation is not None and _unexpired(reservation[1], now):
            names.append(reservation[0])
    return tuple(names)


def _unexpired(stamp: datetime, now: datetime) -> bool:
    return now - RESERVATION_TTL <= stamp <= now + RESERVATION_TTL


def _reservation_stamp(entry: Any) -> tuple[str, datetime] | None:
    """(name, time) of a ``reserved:`` entry of ``status.active``; None for a Job's reference."""
    if not isinstance(entry, dict):
        return None
    uid = entry.get("uid", "")
    if not isinstance(uid, str) or not uid.startswith(RESERVATION_PREFIX):
        return None
    stamp = parse_time(uid[len(RESERVATION_PREFIX) :])
    return None if stamp is None else (str(entry.get("name", "")), stamp)


def _concurrency(
    cw: CronWorkflow,
    jobs: Sequence[JobView],
    *,
    tick: datetime | None,
    name: str,
    reserved: Sequence[str] = (),
) -> RunPlan:
    live = {job.name for job in jobs}
    pending = sorted(other for other in reserved if other not in live and other != name)
    active = [job.name for job in jobs if job.active] + pending
    policy = cw.spec.concurrency_policy
    if pending and policy is ConcurrencyPolicy.REPLACE:
        raise RunInFlightError(
            f"{', '.join(pending)} is reserved by another run and not created yet; "
            "concurrencyPolicy Replace waits to replace it instead of running beside it"
        )
    if active and policy is ConcurrencyPolicy.FORBID:
        return RunPlan(
            Outcome.SKIPPED_FORBID,
            tick=tick,
            message=f"concurrencyPolicy is Forbid and {', '.join(sorted(active))} is still active",
        )
    replace = (
        tuple(sorted(job.name for job in jobs if job.active))
        if policy is ConcurrencyPolicy.REPLACE
        else ()
    )
    return RunPlan(Outcome.RUN, tick=tick, job_name=name, delete_first=replace)


def plan_tick(
    cw: CronWorkflow,
    *,
    jobs: Sequence[JobView],
    last_schedule_time: datetime | None,
    schedule_since: datetime | None,
    delivered_at: datetime,
    message_id: str | None,
    tolerance: timedelta,
    first_attempt: bool,
    reserved: Sequence[str] = (),
    runs_made: int = 0,
    origin: MessageOrigin | None = None,
    schedule_ids: Collection[str] = (),
    ran: Collection[datetime] = (),
    entry: str | None = None,
) -> RunPlan:
    """Decide what a QStash delivery at ``delivered_at`` does (rules in the module docstring).

    ``first_attempt`` is ``Upstash-Retried: 0``: only a first attempt may be early for its tick.
    ``runs_made`` is ``status.scheduledRuns`` (for ``spec.maxRuns``).
    ``origin`` is what QStash said about a retried message (:func:`needs_origin`), whose
    ``scheduleId`` must be one of ``schedule_ids``: this CronWorkflow's QStash schedule id, as
    the cluster name makes it and as ``status.scheduleId`` records it. ``ran`` are the ticks
    the slot ledger records as run (:func:`slots.ran_ticks`): a late retry of one is a duplicate
    even when its Job has been pruned and the history alone would say it never ran.

    ``entry`` is the ``spec.schedules`` entry whose schedule delivered (the body's ``entry``;
    None: the single ``spec.schedule``). The tick is judged against that entry's own cron; the
    Job is the tick's (``<name>-<unix minutes>``, the winning entry's parameters, whichever
    entry delivered). A delivery of an entry the spec no longer has (one being retired after
    an edit) is judged against the union of the current entries.
    """
    if message_id is not None:
        for job in jobs:
            if job.message_id == message_id:
                return RunPlan(
                    Outcome.DUPLICATE_MESSAGE,
                    job_name=job.name,
                    message=f"message {message_id} already ran as Job {job.name}",
                )
    delivering = cw.spec.timetable.entry(entry)
    judged = (
        cw.spec.timetable if delivering is None else timetable.Timetable.single(delivering.schedule)
    )
    if origin is None:
        tick = judged.tick_for_delivery(
            delivered_at, early_tolerance=tolerance, first_attempt=first_attempt
        )
    else:
        if origin.schedule_id is None or origin.schedule_id not in schedule_ids:
            expected = " or ".join(repr(known) for known in sorted(schedule_ids)) or "none known"
            raise PermanentDeliveryError(
                REASON_SCHEDULE_MISMATCH,
                f"QStash says message {message_id} was made by schedule {origin.schedule_id!r}, "
                f"not by the schedule of CronWorkflow {cw.key} ({expected})",
            )
        tick = judged.tick_for_delivery(
            origin.created_at, early_tolerance=tolerance, first_attempt=True
        )
    if tick is None:
        return RunPlan(Outcome.NO_TICK, message="the schedule has no tick before this delivery")
    name = naming.job_name(cw.name, tick)
    duplicate = _already_ran(
        cw,
        jobs,
        tick=tick,
        name=name,
        last_schedule_time=last_schedule_time,
        ran=ran,
        may_be_late=origin is not None,  # only a retry can be for a tick older than the last
        now=delivered_at,
        tolerance=tolerance,
    )
    if duplicate is not None:
        return duplicate
    return _judge_tick(
        cw,
        jobs,
        tick=tick,
        name=name,
        schedule_since=schedule_since,
        now=delivered_at,
        reserved=reserved,
        runs_made=runs_made,
    )


def _already_ran(
    cw: CronWorkflow,
    jobs: Sequence[JobView],
    *,
    tick: datetime,
    name: str,
    last_schedule_time: datetime | None,
    ran: Collection[datetime],
    may_be_late: bool,
    now: datetime,
    tolerance: timedelta,
) -> RunPlan | None:
    """The duplicate verdict shared by deliveries and CronJob markers, None when ``tick`` may run.

    Its Job exists: a duplicate. At or before ``lastScheduleTime``: a duplicate, unless the tick
    ``may_be_late`` (a QStash retry, a marker handled out of order), is strictly older, is not in
    the ledger's ``ran`` and the Job history proves it never ran (:func:`never_ran`)."""
    if any(job.name == name for job in jobs):
        return RunPlan(
            Outcome.DUPLICATE_TICK, tick=tick, job_name=name, message=f"Job {name} already exists"
        )
    if last_schedule_time is None or tick > last_schedule_time:
        return None
    proven_missing = (
        may_be_late
        and tick < last_schedule_time
        and tick not in ran
        and never_ran(cw, jobs, tick, now=now, tolerance=tolerance)
    )
    if proven_missing:
        return None
    return RunPlan(
        Outcome.DUPLICATE_TICK,
        tick=tick,
        job_name=name,
        message=f"the tick {tick.isoformat()} already ran (lastScheduleTime "
        f"{last_schedule_time.isoformat()})",
    )


def _judge_tick(
    cw: CronWorkflow,
    jobs: Sequence[JobView],
    *,
    tick: datetime,
    name: str,
    schedule_since: datetime | None,
    now: datetime,
    reserved: Sequence[str],
    runs_made: int,
) -> RunPlan:
    """Rules 4 to 8 for a tick whose Job does not exist yet, as of ``now``."""
    if schedule_since is not None and tick < schedule_since:
        return RunPlan(
            Outcome.SKIPPED_RETROACTIVE,
            tick=tick,
            message=f"the tick {tick.isoformat()} is before the schedule took effect "
            f"({schedule_since.isoformat()})",
        )
    if cw.spec.suspend:
        return RunPlan(Outcome.SKIPPED_SUSPENDED, tick=tick, message="spec.suspend is true")
    refusal = window.tick_refusal(cw.spec, tick, runs_made)
    if refusal is not None:
        completed, why = refusal
        outcome = Outcome.SKIPPED_COMPLETED if completed else Outcome.SKIPPED_INACTIVE
        return RunPlan(outcome, tick=tick, message=why)
    deadline = cw.spec.starting_deadline_seconds
    if deadline is not None and now - tick > timedelta(seconds=deadline):
        late = int((now - tick).total_seconds())
        return RunPlan(
            Outcome.SKIPPED_DEADLINE,
            tick=tick,
            message=f"delivered {late}s after its tick, past startingDeadlineSeconds={deadline}",
        )
    return _concurrency(cw, jobs, tick=tick, name=name, reserved=reserved)


def plan_catch_up(
    cw: CronWorkflow,
    *,
    jobs: Sequence[JobView],
    tick: datetime,
    schedule_since: datetime | None,
    now: datetime,
    reserved: Sequence[str] = (),
    runs_made: int = 0,
) -> RunPlan:
    """Run a slot the ledger reads ``Missed`` (:func:`slots.catch_up_slots` chose it), late.

    The same rules as a delivery of that tick, with its Job name (so a late QStash retry of the
    slot and this run race for one name and only one runs), except ``lastScheduleTime``: a later
    tick may have run since, and the ledger, not that field, says this one never did.
    """
    name = naming.job_name(cw.name, tick)
    if any(job.name == name for job in jobs):
        return RunPlan(
            Outcome.DUPLICATE_TICK, tick=tick, job_name=name, message=f"Job {name} already exists"
        )
    return _judge_tick(
        cw,
        jobs,
        tick=tick,
        name=name,
        schedule_since=schedule_since,
        now=now,
        reserved=reserved,
        runs_made=runs_made,
    )


def marker_tick(marker: JsonDict) -> datetime | None:
    """The tick a CronJob's marker Job stands for: the CronJob controller's
    ``batch.kubernetes.io/cronjob-scheduled-timestamp`` (RFC 3339 in the CronJob's zone)."""
    annotations = (marker.get("metadata") or {}).get("annotations") or {}
    stamp = parse_time(annotations.get(vocabulary.ANNOTATION_K8S_SCHEDULED_TIME))
    return None if stamp is None or stamp.tzinfo is None else stamp.astimezone(UTC)


def plan_marker(
    cw: CronWorkflow,
    *,
    jobs: Sequence[JobView],
    tick: datetime,
    entry: str | None,
    last_schedule_time: datetime | None,
    schedule_since: datetime | None,
    now: datetime,
    tolerance: timedelta,
    reserved: Sequence[str] = (),
    runs_made: int = 0,
    ran: Collection[datetime] = (),
) -> RunPlan:
    """A marker of entry ``entry``'s CronJob says its tick ``tick`` came (``spec.schedules`` on
    the CronJob backend, :func:`builders.build_marker_cronjob`): decide it as a delivery of that
    tick is decided, under the tick's Job name and with the winner's parameters.

    The marker names its tick, so nothing is derived from its arrival; ``now`` (when the operator
    looks, which may be long after, if it was down) is held to ``startingDeadlineSeconds`` like a
    late delivery. A tick the current spec does not have (an entry edited or removed since the
    marker was made) is ``NO_TICK``. Markers of two entries may be handled out of order, so a tick
    before ``lastScheduleTime`` is a duplicate only when the ledger says it ran or the Job history
    cannot prove it never ran (:func:`never_ran`), as for a late QStash retry."""
    table = cw.spec.timetable
    delivering = table.entry(entry)
    if (delivering is None or not delivering.fires_at(tick)) and table.entry_for(tick) is None:
        return RunPlan(
            Outcome.NO_TICK,
            tick=tick,
            message=f"the tick {tick.isoformat()} is not one of the current spec.schedules",
        )
    name = naming.job_name(cw.name, tick)
    duplicate = _already_ran(
        cw,
        jobs,
        tick=tick,
        name=name,
        last_schedule_time=last_schedule_time,
        ran=ran,
        may_be_late=True,  # markers of two entries may be handled out of order
        now=now,
        tolerance=tolerance,
    )
    if duplicate is not None:
        return duplicate
    return _judge_tick(
        cw,
        jobs,
        tick=tick,
        name=name,
        schedule_since=schedule_since,
        now=now,
        reserved=reserved,
        runs_made=runs_made,
    )


SKIP_REASONS: Final = {
    Outcome.SKIPPED_SUSPENDED: vocabulary.SLOT_REASON_SUSPENDED,
    Outcome.SKIPPED_FORBID: vocabulary.SLOT_REASON_CONCURRENCY_FORBID,
    Outcome.SKIPPED_DEADLINE: vocabulary.SLOT_REASON_PAST_DEADLINE,
    Outcome.SKIPPED_RETROACTIVE: vocabulary.SLOT_REASON_BEFORE_SCHEDULE_CHANGE,
}
"""The ledger's reason for a tick a run rule skipped (a duplicate is no fate of its own)."""


def plan_manual(
    cw: CronWorkflow,
    *,
    jobs: Sequence[JobView],
    seed: str,
    reserved: Sequence[str] = (),
    key: str | None = None,
    fingerprint: str | None = None,
) -> RunPlan:
    """A manual run honours concurrencyPolicy (not suspend: asking explicitly overrides it).

    ``seed`` names the Job, so the same request twice is one Job (``DUPLICATE_MESSAGE`` names
    it). A request with an Idempotency-Key also brings its ``fingerprint``: the Job its key names
    must have been made by the same request, else :class:`IdempotencyConflictError`.
    """
    name = naming.manual_job_name(cw.name, seed)
    for job in jobs:
        if job.name == name:
            check_same_request(job, key=key, fingerprint=fingerprint)
            return RunPlan(
                Outcome.DUPLICATE_MESSAGE,
                job_name=name,
                message=f"Job {name} already exists for this request",
            )
    return _concurrency(cw, jobs, tick=None, name=name, reserved=reserved)


def plan_backfill(
    cw: CronWorkflow,
    *,
    jobs: Sequence[JobView],
    slot: datetime,
    parallel: bool,
    reserved: Sequence[str] = (),
) -> RunPlan:
    """One slot of a backfill (:mod:`backfill`): the tick's own Job, once. Unlike a delivery it
    is not held to ``lastScheduleTime``, ``scheduleSince``, suspend, the window or the deadline:
    someone asked for this past slot by name. ``concurrencyPolicy`` holds unless ``parallel``."""
    name = naming.job_name(cw.name, slot)
    if any(job.name == name for job in jobs):
        return RunPlan(
            Outcome.DUPLICATE_TICK, tick=slot, job_name=name, message=f"Job {name} already exists"
        )
    if parallel:
        return RunPlan(Outcome.RUN, tick=slot, job_name=name)
    return _concurrency(cw, jobs, tick=slot, name=name, reserved=reserved)


def check_same_request(job: JobView, *, key: str | None, fingerprint: str | None) -> None:
    """``job`` has the name this request's key gives; was it made by this very request?"""
    if fingerprint is not None and job.fingerprint != fingerprint:
        raise IdempotencyConflictError(key or "", job.name)


def active_references(jobs: Iterable[JobView], namespace: str) -> list[JsonDict]:
    return [job.reference(namespace) for job in sorted(jobs, key=lambda j: j.name) if job.active]


def last_successful_time(jobs: Iterable[JobView]) -> datetime | None:
    times = [job.finished_at for job in jobs if job.succeeded and job.finished_at is not None]
    return max(times, default=None)


def history_to_prune(
    jobs: Sequence[JobView], *, successful_limit: int, failed_limit: int, now: datetime
) -> list[str]:
    """Finished Jobs beyond the history limits, oldest first (as the CronJob controller does).

    A manual Job still inside its Idempotency-Key's window is neither pruned nor counted: a retry
    of its request must find it (:meth:`JobView.kept_for_a_key`).
    """
    jobs = [job for job in jobs if not job.kept_for_a_key(now)]

    def age_key(job: JobView) -> tuple[datetime, str]:
        return (job.finished_at or job.created_at or _EPOCH, job.name)

    doomed: list[str] = []
    for finished, limit in (
        ([job for job in jobs if job.succeeded], successful_limit),
        ([job for job in jobs if job.failed], failed_limit),
    ):
        ordered = sorted(finished, key=age_key)
        excess = len(ordered) - limit
        doomed.extend(job.name for job in ordered[: max(excess, 0)])
    return doomed


# -- status after an event: what to write, given the status read, the live Jobs and now ----------
#
# Every status write of a run or of the Job mirror is conditional on the resourceVersion it read
# (the services re-read and call these again on a conflict), so each function only has to be
# right for the status it is given. Three rules hold for all of them:
#
# - ``status.active`` is the live active Jobs *plus* every unexpired reservation whose Job does
#   not exist yet: a reservation is another writer's claim (Forbid/Replace), and dropping it
#   lets a concurrent run see "nothing active" and start beside it;
# - ``lastScheduleTime`` never moves backwards (a late run of an older tick leaves it alone);
# - when ``lastScheduleTime`` is written, ``nextScheduleTime`` is written with it, strictly
#   after both the recorded tick and now, so "next run" is never the run that just happened.


def pending_reservations(
    active: Sequence[Any] | None,
    jobs: Iterable[JobView],
    *,
    now: datetime,
    created: str | None = None,
) -> list[JsonDict]:
    """The ``reserved:`` entries of ``active`` still in force: not expired (see
    :data:`RESERVATION_TTL`), and whose Job neither exists (then the Job itself counts) nor is
    ``created`` (the run recording its own Job)."""
    live = {job.name for job in jobs}
    kept: list[JsonDict] = []
    for entry in active or ():
        reservation = _reservation_stamp(entry)
        if reservation is None:
            continue
        name, stamp = reservation
        if name in live or name == created:
            continue
        if _unexpired(stamp, now):
            kept.append(dict(entry))
    return kept


def active_status(
    active: Sequence[Any] | None,
    jobs: Iterable[JobView],
    namespace: str,
    *,
    now: datetime,
    created: str | None = None,
) -> list[JsonDict]:
    """``status.active``: the active Jobs by name, then the reservations still in force."""
    jobs = list(jobs)
    return active_references(jobs, namespace) + pending_reservations(
        active, jobs, now=now, created=created
    )


def next_schedule_time(
    schedule: cron.Schedule | timetable.Timetable,
    *,
    suspended: bool,
    last_schedule_time: datetime | None,
    now: datetime,
) -> datetime | None:
    """The next tick strictly after both ``last_schedule_time`` and ``now`` (None: suspended).

    A delivery up to the clock tolerance early records the coming tick before the clock reaches
    it; the next run is the one after that tick, not the tick itself.
    """
    if suspended:
        return None
    after = now if last_schedule_time is None else max(now, last_schedule_time)
    return timetable.of(schedule).next_tick(after)


def _schedule_times(cw: CronWorkflow, status: JsonDict, tick: datetime, now: datetime) -> JsonDict:
    """``lastScheduleTime`` moved to ``tick`` if that is forward, with its ``nextScheduleTime``
    and ``scheduledRuns`` counted up (:mod:`window`)."""
    recorded = parse_time(status.get("lastScheduleTime"))
    if recorded is not None and tick <= recorded:
        return {}
    runs = window.runs_made(status) + 1
    following = next_schedule_time(
        cw.spec.timetable, suspended=cw.spec.suspend, last_schedule_time=tick, now=now
    )
    if window.limited(cw.spec) and following is not None:
        exhausted = cw.spec.max_runs is not None and runs >= cw.spec.max_runs
        following = None if exhausted else window.first_tick(cw.spec, max(tick, now))
    return {
        "lastScheduleTime": builders.rfc3339(tick),
        "nextScheduleTime": None if following is None else builders.rfc3339(following),
        window.RUNS_FIELD: runs,
    }


def reserve_status(
    status: JsonDict,
    jobs: Iterable[JobView],
    namespace: str,
    *,
    job_name: str,
    now: datetime,
) -> JsonDict:
    """The status patch that claims ``job_name`` before it is created (Forbid/Replace)."""
    active = active_status(status.get("active"), jobs, namespace, now=now)
    active.append(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": job_name,
            "namespace": namespace,
            "uid": reservation_uid(now),
        }
    )
    return {"active": active}


def status_after_run(
    cw: CronWorkflow,
    status: JsonDict,
    jobs: Iterable[JobView],
    *,
    created: str,
    tick: datetime | None,
    manual: JsonDict | None,
    now: datetime,
    catch_up: bool = False,
    attempt: int | None = None,
) -> JsonDict:
    """The status patch recording that Job ``created`` exists (tick ``tick``, or a manual run
    described by ``manual``), given the status read and the live Jobs. Only changed fields.

    The run goes into ``recentSlots`` too (``Running``; the operator's audit follows its Job),
    so the ledger knows the slot ran even once the history limits prune its Job. Its delay is
    the created Job's ``creationTimestamp`` minus the tick when ``jobs`` has it (else ``now``):
    what the mirror derives from the same Job (``slots.from_job``), so the mirror, deciding
    after the record, finds the entry as it would write it and writes nothing."""
    jobs = list(jobs)
    made = next((job.created_at for job in jobs if job.name == created and job.created_at), None)
    started = made if made is not None else now
    patch: JsonDict = {}
    entry = slots.Slot(
        time=tick if tick is not None else now,
        fate=vocabulary.FATE_CAUGHT_UP if catch_up else vocabulary.FATE_RUNNING,
        reason=vocabulary.SLOT_REASON_JOB_ACTIVE,
        job=created,
        backend=status.get("backend"),
        delay_seconds=None if tick is None else int((started - tick).total_seconds()),
        attempts=attempt,
        manual=manual is not None,
        requested_by=None if manual is None else manual.get("requestedBy"),
    )
    patch["recentSlots"] = _recorded(cw, status, entry)
    active = active_status(status.get("active"), jobs, cw.namespace, now=now, created=created)
    if active != (status.get("active") or []):
        patch["active"] = active or None
    if tick is not None:
        patch.update(_schedule_times(cw, status, tick, now))
    if manual is not None:
        patch["lastManualRun"] = manual
    return patch


def status_after_jobs_changed(
    status: JsonDict, jobs: Iterable[JobView], namespace: str, *, now: datetime
) -> JsonDict:
    """The mirror's patch when a Job changed: ``active`` (reservations kept) and a
    ``lastSuccessfulTime`` that only moves forward. Only changed fields."""
    jobs = list(jobs)
    patch: JsonDict = {}
    active = active_status(status.get("active"), jobs, namespace, now=now)
    if active != (status.get("active") or []):
        patch["active"] = active or None
    last_success = last_successful_time(jobs)
    recorded = parse_time(status.get("lastSuccessfulTime"))
    if last_success is not None and (recorded is None or last_success > recorded):
        patch["lastSuccessfulTime"] = builders.rfc3339(last_success)
    return patch


def status_after_cronjob_ran(
    cw: CronWorkflow, status: JsonDict, *, scheduled: datetime, now: datetime
) -> JsonDict:
    """The fallback CronJob scheduled ``scheduled``: carry it over if it is forward."""
    return _schedule_times(cw, status, scheduled, now)


def _recorded(cw: CronWorkflow, status: JsonDict, entry: slots.Slot) -> list[JsonDict]:
    ledger = slots.parse_ledger(status.get("recentSlots"))
    return slots.ledger_status(
        slots.record(ledger, entry, limit=cw.spec.slot_options.history_limit)
    )


def status_after_skip(cw: CronWorkflow, status: JsonDict, plan: RunPlan) -> JsonDict:
    """A run rule skipped ``plan.tick``: record it in ``recentSlots`` (``Skipped`` and why), so
    the audit does not read the slot as ``Missed``. Empty when there is nothing to record."""
    reason = SKIP_REASONS.get(plan.outcome)
    if reason is None or plan.tick is None:
        return {}
    ledger = slots.parse_ledger(status.get("recentSlots"))
    key = ("tick", slots.rfc3339(plan.tick))
    if any(slot.key == key and slot.fate != vocabulary.FATE_MISSED for slot in ledger):
        return {}  # already has a fate (a retry skipped again)
    entry = slots.Slot(plan.tick, vocabulary.FATE_SKIPPED, reason, backend=status.get("backend"))
    return {"recentSlots": _recorded(cw, status, entry)}
