"""Decisions about runs: should this delivery (or manual request) become a Job, and which Job?

Pure functions over a :class:`CronWorkflow`, views of its live Jobs and an injected ``now``. The
webhook and the operator's run-now path call them through ``services.runs``; tests call them
directly with named instants.

The rules, in the order they are checked for a QStash delivery:

1. A Job already carries this delivery's message id → ``DUPLICATE_MESSAGE`` (QStash redelivered a
   message we ran: one Job per message).
2. The tick is derived from the cron, the zone, the delivery time and whether this is the first
   attempt (QStash does not send the tick; :func:`cron.tick_for_delivery`). No tick at all →
   ``NO_TICK``.
3. The tick's Job already exists, or the tick is not after ``status.lastScheduleTime`` →
   ``DUPLICATE_TICK`` (another replica, another message, or the other backend during a handover
   ran it: at most one Job per (uid, tick)).
4. The tick is before ``status.scheduleSince`` (when the current cron and zone took effect) →
   ``SKIPPED_RETROACTIVE``: editing a schedule never runs a tick of the new one in the past.
5. ``spec.suspend`` → ``SKIPPED_SUSPENDED``.
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
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from qstash_operator.domain import cron, naming, vocabulary
from qstash_operator.domain.errors import RunInFlightError
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
    )


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
        uid = entry.get("uid", "") if isinstance(entry, dict) else ""
        if not isinstance(uid, str) or not uid.startswith(RESERVATION_PREFIX):
            continue
        stamp = parse_time(uid[len(RESERVATION_PREFIX) :])
        if stamp is not None and now - RESERVATION_TTL <= stamp <= now + RESERVATION_TTL:
            names.append(str(entry.get("name", "")))
    return tuple(names)


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
) -> RunPlan:
    """Decide what a QStash delivery at ``delivered_at`` does (rules in the module docstring).

    ``first_attempt`` is ``Upstash-Retried: 0``: only a first attempt may be early for its tick.
    """
    if message_id is not None:
        for job in jobs:
            if job.message_id == message_id:
                return RunPlan(
                    Outcome.DUPLICATE_MESSAGE,
                    job_name=job.name,
                    message=f"message {message_id} already ran as Job {job.name}",
                )
    tick = cron.tick_for_delivery(
        cw.spec.schedule, delivered_at, early_tolerance=tolerance, first_attempt=first_attempt
    )
    if tick is None:
        return RunPlan(Outcome.NO_TICK, message="the schedule has no tick before this delivery")
    name = naming.job_name(cw.name, tick)
    if any(job.name == name for job in jobs):
        return RunPlan(
            Outcome.DUPLICATE_TICK, tick=tick, job_name=name, message=f"Job {name} already exists"
        )
    if last_schedule_time is not None and tick <= last_schedule_time:
        return RunPlan(
            Outcome.DUPLICATE_TICK,
            tick=tick,
            job_name=name,
            message=f"the tick {tick.isoformat()} already ran (lastScheduleTime "
            f"{last_schedule_time.isoformat()})",
        )
    if schedule_since is not None and tick < schedule_since:
        return RunPlan(
            Outcome.SKIPPED_RETROACTIVE,
            tick=tick,
            message=f"the tick {tick.isoformat()} is before the schedule took effect "
            f"({schedule_since.isoformat()})",
        )
    if cw.spec.suspend:
        return RunPlan(Outcome.SKIPPED_SUSPENDED, tick=tick, message="spec.suspend is true")
    deadline = cw.spec.starting_deadline_seconds
    if deadline is not None and delivered_at - tick > timedelta(seconds=deadline):
        late = int((delivered_at - tick).total_seconds())
        return RunPlan(
            Outcome.SKIPPED_DEADLINE,
            tick=tick,
            message=f"delivered {late}s after its tick, past startingDeadlineSeconds={deadline}",
        )
    return _concurrency(cw, jobs, tick=tick, name=name, reserved=reserved)


def plan_manual(
    cw: CronWorkflow, *, jobs: Sequence[JobView], seed: str, reserved: Sequence[str] = ()
) -> RunPlan:
    """A manual run honours concurrencyPolicy (not suspend: asking explicitly overrides it)."""
    name = naming.manual_job_name(cw.name, seed)
    if any(job.name == name for job in jobs):
        return RunPlan(
            Outcome.DUPLICATE_MESSAGE, job_name=name, message=f"Job {name} already exists"
        )
    return _concurrency(cw, jobs, tick=None, name=name, reserved=reserved)


def active_references(jobs: Iterable[JobView], namespace: str) -> list[JsonDict]:
    return [job.reference(namespace) for job in sorted(jobs, key=lambda j: j.name) if job.active]


def last_successful_time(jobs: Iterable[JobView]) -> datetime | None:
    times = [job.finished_at for job in jobs if job.succeeded and job.finished_at is not None]
    return max(times, default=None)


def history_to_prune(
    jobs: Sequence[JobView], *, successful_limit: int, failed_limit: int
) -> list[str]:
    """Finished Jobs beyond the history limits, oldest first (as the CronJob controller does)."""

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
