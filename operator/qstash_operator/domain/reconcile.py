"""What one cycle over a CronWorkflow does, decided as data: the plan ``services.reconcile`` runs.

The domain decides and the service acts, as ``runs.plan_tick`` and ``services.runs`` do for
deliveries. One entry point per kopf handler:

- :func:`plan` (create, spec update, resume): validate, choose the backend, apply the schedule
  there when its fingerprint changed, time a handover, compute the status;
- :func:`plan_refresh` (the 30 s timer): finish a due handover, keep ``nextScheduleTime`` current;
- :func:`plan_finalize` (deletion): remove the schedule from every backend it may be on.

Each returns a :class:`ReconcilePlan`: the ``steps`` the service carries out in order (QStash and
Kubernetes calls, events), the ``status`` patch written once they all succeeded, when to look
again, and the error to surface to kopf. The clock is read once by the caller and passed in.

**One decision point after acting.** A plan is made from what the object says about itself (spec
and status) and what the operator's settings say (:class:`Context`); the world can differ, and
only acting finds out. So a failed step brings the service back here once, through
:func:`after_failure`, which says what the failure means and returns the plan to carry out
instead. It is the only other way into the domain from the service, and it decides:

- a spec problem found by the API server (the Job dry run) or QStash (a 400 naming a header)
  → ``SpecValid=False`` naming the field, a Warning event, no retry until the spec changes;
- QStash refused the webhook destination of an ``Auto`` CronWorkflow → *this* CronWorkflow falls
  back to a CronJob: the same plan made again knowing the refusal, recorded in its status
  (condition ``DestinationAccepted=False``); the next reconcile asks QStash again, and a success
  flips it back. Nothing is remembered process-wide (defect 10.9);
- the CronJob is not where status said: the create found one (ours, left by an interrupted cycle,
  or someone else's) → plan again knowing it exists; the replace found none → plan again knowing it
  does not; it exists but another owner holds it → ``SpecValid=False`` on ``metadata.name``;
- anything transient → ``ScheduleSynced=False``, a Warning event and a retry after the error's
  hint; during deletion, retries only until ``Context.finalizer_timeout`` after the deletion
  timestamp, then the step is given up with a Warning naming what is left behind, so the
  finalizer goes and namespaces can be deleted (defect 10.4).

Why these live here and not in the service: each turns a fact into status, events and a next
action, which is exactly what the table tests in ``tests/unit/domain/test_reconcile.py`` pin down
with named instants, without a control plane or a fake adapter.

**Termination.** A plan made again after a failure has learned one more fact (:class:`Learned`),
and each fact is learned at most once per cycle; every other answer is terminal (its only steps
are events, which never fail) or, during deletion, drops the failed step. So a cycle makes at most
:data:`MAX_PLANS_PER_CYCLE` plans.

**Where coming work plugs in** (as more decisions, not more service code):

- several schedules per object (issue 14): more ``UpsertSchedule``/``PutCronJob`` steps, one per
  entry, and ``DeleteSchedule`` for entries gone from the spec (status names the applied ones);
- validity windows and run limits (issue 14): the window decides ``paused`` in the desired
  schedule and ``suspend`` in the CronJob, and its next edge is one more ``requeue_after``
  (:func:`_sooner`); the last allowed run turns into ``Ready=False, Completed`` plus the retire
  steps of :func:`_retire`;
- the slot ledger and missed-run audit (issue 13): a :class:`Contribution` folded into
  :func:`plan_refresh` from the watch caches' Job views (a new field of :class:`PlanInputs`);
- daylight-saving notices (issue 12): :func:`_notices`, folded into every healthy plan.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal, TypeAlias

from qstash_operator.domain import backend as backend_rules
from qstash_operator.domain import (
    builders,
    conditions,
    cron,
    model,
    naming,
    slots,
    vocabulary,
    window,
)
from qstash_operator.domain.builders import DesiredSchedule, rfc3339
from qstash_operator.domain.conditions import Condition
from qstash_operator.domain.errors import (
    AlreadyExistsError,
    ApiRejectedError,
    ForbiddenError,
    InvalidSpecError,
    KubernetesUnavailableError,
    NotFoundError,
    NotOwnedError,
    QStashAuthError,
    QStashOperatorError,
    QStashRateLimitedError,
    QStashRejectedError,
    QStashUnavailableError,
    TransientError,
)
from qstash_operator.domain.model import Backend, BackendChoice, CronWorkflow, JsonDict
from qstash_operator.domain.runs import next_schedule_time, parse_time

DEFAULT_FINALIZER_TIMEOUT: Final = timedelta(minutes=5)
"""How long deletion keeps retrying a backend that does not answer. Five minutes rides out a QStash
blip or a token being rotated, yet a namespace deletion does not hang for an afternoon; what is
left behind then is harmless: drift repair deletes the schedule once QStash answers, and the
webhook answers its deliveries 489 (the CronWorkflow is gone), so QStash stops retrying them."""

MIN_FINALIZER_RETRY_SECONDS: Final = 1.0
"""A finalizer retry never comes sooner than this, even with the bound a moment away."""

RECORD_GRACE: Final = timedelta(seconds=30)
"""How long after a tick the refresh leaves ``nextScheduleTime`` to the tick's own record (the
webhook's deferred write, the CronJob mirror), which moves it together with
``lastScheduleTime``. Moving it first would be a second status write for every CronWorkflow in
the seconds a minute's Jobs are being created, and would make the record's conditional write
lose (409, read, write again). A tick nobody records is moved on by a refresh after this; a
suspended CronWorkflow (no next run, nothing will record) is written at once."""
MAX_PLANS_PER_CYCLE: Final = 4
"""The first plan, one made again per fact learned (a refused destination, where the CronJob
is), and a terminal one (see Termination in the module docstring). Deletion makes at most three:
the first, and one per failed step it gives up."""

QSTASH_HEADER_FIELDS: Final = (
    ("upstash-retry-delay", "spec.qstash.retryDelay"),
    ("upstash-retries", "spec.qstash.retries"),
    ("upstash-timeout", "spec.qstash.timeout"),
    ("upstash-cron", "spec.schedule"),
    ("cron expression", "spec.schedule"),
)
"""QStash names the request header it refused (wire reference 2.1, 2.6); users know the field."""

EventType: TypeAlias = Literal["Normal", "Warning"]


# -- what the plans are made from ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Context:
    """The operator's settings as the plans need them; built once at start."""

    cluster_name: str
    cluster_default: BackendChoice = BackendChoice.AUTO
    """What ``spec.backend: Auto`` means on this cluster (``QSTASH_OPERATOR_BACKEND``)."""
    qstash_problem: str | None = None
    """Why this operator cannot use QStash at all (no token, no keys, a bad public URL)."""
    public_url: str | None = None
    has_qstash_token: bool = False
    """Without a token no schedule can be deleted, even where none would be created."""
    finalizer_timeout: timedelta = DEFAULT_FINALIZER_TIMEOUT


@dataclasses.dataclass(frozen=True)
class Learned:
    """Facts a failed step taught this cycle; a plan made again believes them over status."""

    destination_refused: str | None = None
    """QStash's words refusing this CronWorkflow's webhook destination."""
    cronjob_exists: bool | None = None
    """Whether a CronJob of the CronWorkflow's name exists (None: as status says)."""
    template_accepted: bool = False
    """The dry run of the Job passed earlier in this cycle; a plan made again skips it."""


@dataclasses.dataclass(frozen=True)
class PlanInputs:
    """What a plan was made from, kept so :func:`after_failure` can decide again."""

    body: Mapping[str, Any]
    context: Context
    learned: Learned = Learned()


# -- what the service does ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Event:
    type: EventType
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class CheckJobTemplate:
    """A server-side dry run of the CronWorkflow's Job: would the API server accept it?"""

    job: JsonDict
    reuse_key: str | None = None
    """Equal for Jobs the API server answers alike (``builders.dry_run_key``): the service may
    take a recent acceptance of the same key for this one's. None: always ask."""


@dataclasses.dataclass(frozen=True)
class UpsertSchedule:
    """Create or overwrite the QStash schedule (QStash's upsert by schedule id)."""

    schedule: DesiredSchedule


@dataclasses.dataclass(frozen=True)
class PauseSchedule:
    """Set the schedule's paused flag: an upsert's effect on it is undocumented (wire reference
    2.5), so every upsert is followed by this."""

    schedule_id: str
    paused: bool


@dataclasses.dataclass(frozen=True)
class DeleteSchedule:
    """Delete the QStash schedule; one that does not exist counts as deleted."""

    schedule_id: str


@dataclasses.dataclass(frozen=True)
class CreateCronJob:
    """Create the CronWorkflow's CronJob (it exists already: ``AlreadyExistsError``)."""

    manifest: JsonDict


@dataclasses.dataclass(frozen=True)
class ReplaceCronJob:
    """Replace the CronJob whole (a merge patch would keep template keys the user removed), at the
    ``resourceVersion`` read, and only if ``owner_uid`` owns it (else ``NotOwnedError``; none at
    all: ``NotFoundError``)."""

    manifest: JsonDict
    owner_uid: str


@dataclasses.dataclass(frozen=True)
class PutCronJob:
    """Create the CronJob, or replace it whole if it exists and ``owner_uid`` owns it (else
    ``NotOwnedError``): an entry's marker CronJob, whose existence status does not track."""

    manifest: JsonDict
    owner_uid: str


@dataclasses.dataclass(frozen=True)
class DeleteCronJob:
    """Delete the CronJob if ``owner_uid`` owns it (that very object: a uid precondition); gone or
    someone else's counts as done. ``orphan`` keeps its Jobs (a handover adopts them)."""

    namespace: str
    name: str
    owner_uid: str
    orphan: bool


NAME_SLOT: Final = "{cronjob}"
"""Where a swept CronJob's name goes in :attr:`SweepMarkerCronJobs.said`."""


@dataclasses.dataclass(frozen=True)
class SweepMarkerCronJobs:
    """Delete every marker CronJob ``selector`` finds that ``owner_uid`` owns and ``keep`` does
    not name, posting a Normal ``reason`` event for each.

    Status records the marker CronJobs it made, but a record can be rewritten (a backend switch
    replaces ``status.schedules`` with QStash ids) or never written (a crash between the create
    and the status patch); the labels every marker CronJob carries are the truth, so a
    reconcile that changes them, a retirement and a deletion look them up by label."""

    namespace: str
    selector: str
    owner_uid: str
    keep: tuple[str, ...]
    reason: str
    said: str
    """The event's message, with :data:`NAME_SLOT` where the CronJob's name goes."""


@dataclasses.dataclass(frozen=True)
class AdoptJobs:
    """Make ``owner`` (an ownerReference) the owner of every Job matching ``selector`` that it
    does not own yet: deleting a CronJob would otherwise garbage-collect the Jobs it made."""

    namespace: str
    selector: str
    owner: JsonDict


@dataclasses.dataclass(frozen=True)
class PostEvent:
    """A Kubernetes Event on the CronWorkflow (best effort: posting never fails a cycle)."""

    event: Event


Step: TypeAlias = (
    CheckJobTemplate
    | UpsertSchedule
    | PauseSchedule
    | DeleteSchedule
    | CreateCronJob
    | ReplaceCronJob
    | PutCronJob
    | DeleteCronJob
    | SweepMarkerCronJobs
    | AdoptJobs
    | PostEvent
)


class Purpose(enum.Enum):
    """Which handler a plan is for: it decides what a failure means."""

    RECONCILE = "reconcile"
    REFRESH = "refresh"
    FINALIZE = "finalize"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReconcilePlan:
    purpose: Purpose
    inputs: PlanInputs = dataclasses.field(repr=False)
    steps: tuple[Step, ...] = ()
    status: JsonDict = dataclasses.field(default_factory=dict)
    """The ``.status`` merge patch, written after the steps (also when ``error`` is set)."""
    requeue_after: float | None = None
    """Seconds until the object should be looked at again (a handover due, a retry)."""
    error: QStashOperatorError | None = None
    """What kopf should hear: transient (retry) or permanent (wait for a spec change)."""
    result: str | None = None
    """The reason counted in ``qstash_operator_reconciles_total`` (None: not counted)."""
    switch_to: Backend | None = None
    """Counted in ``qstash_operator_backend_switches_total`` once the plan has run."""


@dataclasses.dataclass(frozen=True)
class Contribution:
    """Part of a plan from one decision: steps, status fields, conditions, a time to look again.
    Plans are folded from these, so a new rule adds a contribution, not a branch in the service."""

    steps: tuple[Step, ...] = ()
    status: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    conditions: tuple[Condition, ...] = ()
    requeue_after: float | None = None
    switch_to: Backend | None = None


# -- the record status keeps -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Record:
    """What the object says about itself beyond its spec."""

    status: JsonDict
    generation: int
    backend: Backend | None
    handover: JsonDict
    handover_from: Backend | None
    remove_after: datetime | None


def _as_backend(value: Any) -> Backend | None:
    try:
        return Backend(value) if value else None
    except ValueError:
        return None


def _record(body: Mapping[str, Any]) -> _Record:
    status = dict(body.get("status") or {})
    handover = dict(status.get("handover") or {})
    return _Record(
        status=status,
        generation=int((body.get("metadata") or {}).get("generation") or 0),
        backend=_as_backend(status.get("backend")),
        handover=handover,
        handover_from=_as_backend(handover.get("from")),
        remove_after=parse_time(handover.get("removeAfter")),
    )


# -- small pure rules ------------------------------------------------------------------------------


def rejected_field(message: str) -> str:
    """The spec field behind the header QStash's refusal names ("spec" when it names none)."""
    lowered = message.lower()
    for header, field in QSTASH_HEADER_FIELDS:
        if header in lowered:
            return field
    return "spec"


def refuses_destination(message: str) -> bool:
    """QStash's 400 is about the webhook URL ("invalid destination url: endpoint resolves to a
    loopback address"), not about the schedule: no spec field can fix it."""
    return "destination" in message.lower()


def fingerprint(manifest: JsonDict) -> str:
    """A hash of an applied manifest; the backend is called only when it changes."""
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _sooner(*delays: float | None) -> float | None:
    known = [delay for delay in delays if delay is not None]
    return min(known, default=None)


def _combine(*parts: Contribution) -> Contribution:
    status: dict[str, Any] = {}
    for part in parts:
        status.update(part.status)
    switches = [part.switch_to for part in parts if part.switch_to is not None]
    return Contribution(
        steps=tuple(step for part in parts for step in part.steps),
        status=status,
        conditions=tuple(condition for part in parts for condition in part.conditions),
        requeue_after=_sooner(*(part.requeue_after for part in parts)),
        switch_to=switches[-1] if switches else None,
    )


def _event(type_: EventType, reason: str, message: str) -> PostEvent:
    return PostEvent(Event(type_, reason, message))


def tick_being_recorded(status: JsonDict, now: datetime) -> bool:
    """``nextScheduleTime`` passed less than :data:`RECORD_GRACE` ago and its tick is not
    recorded yet (``lastScheduleTime`` before it): its record is on the way. The refresh leaves
    ``nextScheduleTime`` alone then, and the slot audit waits (``entrypoints.handlers``)."""
    due = parse_time(status.get("nextScheduleTime"))
    if due is None or not due <= now < due + RECORD_GRACE:
        return False
    last = parse_time(status.get("lastScheduleTime"))
    return last is None or last < due


def _next_time(cw: CronWorkflow, status: JsonDict, now: datetime) -> str | None:
    """After now and after the recorded tick: an early delivery may have run the coming tick."""
    following = next_schedule_time(
        cw.spec.timetable,
        suspended=cw.spec.suspend,
        last_schedule_time=parse_time(status.get("lastScheduleTime")),
        now=now,
    )
    return None if following is None else rfc3339(following)


def _conditions_status(record: _Record, updates: Sequence[Condition], *, now: datetime) -> JsonDict:
    return {
        "conditions": conditions.merge(
            record.status.get("conditions"), updates, now=now, generation=record.generation
        ),
        "observedGeneration": record.generation,
    }


def _dry_run(cw: CronWorkflow) -> CheckJobTemplate:
    job = builders.build_job(
        cw,
        name=naming.manual_job_name(cw.name, "dry-run"),
        trigger=vocabulary.TRIGGER_MANUAL,
        backend=None,
    )
    return CheckJobTemplate(job, reuse_key=builders.dry_run_key(cw, job))


_DAYLIGHT_SAVING_REASONS: Final = {
    cron.DaylightSavingEffect.SKIP: vocabulary.REASON_DAYLIGHT_SAVING_SKIP,
    cron.DaylightSavingEffect.REPEAT: vocabulary.REASON_DAYLIGHT_SAVING_REPEAT,
    cron.DaylightSavingEffect.EXTRA: vocabulary.REASON_DAYLIGHT_SAVING_EXTRA,
}


def _daylight_saving_due(
    cw: CronWorkflow, status: Mapping[str, Any], now: datetime, *, reconcile: bool
) -> bool:
    """Whether ``status.daylightSaving`` must be computed again: on every reconcile (create,
    spec change, resume), and on the timer only once the date it shows has passed, so the timer
    stays cheap for thousands of objects (the walk costs up to ~70 ms for ``* * * * *``)."""
    if reconcile:
        return True
    shown = status.get("daylightSaving")
    if not isinstance(shown, Mapping):
        return False
    try:
        day = date.fromisoformat(str(shown.get("date")))
    except ValueError:
        return True
    return day < now.astimezone(cw.spec.timetable.zone).date()


def _notices(
    cw: CronWorkflow, status: Mapping[str, Any], now: datetime, *, reconcile: bool
) -> Contribution:
    """Things worth telling about a healthy schedule, folded into every healthy plan.

    Daylight-saving days (issue 12): ``status.daylightSaving`` is the next local date within 400
    days on which the schedule skips, repeats or adds a run (:func:`cron.next_daylight_saving_day`;
    null when none). On the first reconcile of a spec generation (``cw.generation`` differs from
    ``status.observedGeneration``; a resume after a restart sees them equal) each kind of
    deviation ahead is told once, as a Normal event naming its local dates.
    """
    if not _daylight_saving_due(cw, status, now, reconcile=reconcile):
        return Contribution()
    days = cw.spec.timetable.daylight_saving_days(now)
    shown = days[0].as_status() if days else None
    fields: JsonDict = {}
    if shown != status.get("daylightSaving"):
        fields["daylightSaving"] = shown
    steps: list[Step] = []
    if reconcile and status.get("observedGeneration") != cw.generation:
        for effect, reason in _DAYLIGHT_SAVING_REASONS.items():
            concerned = [day.message for day in days if day.effect is effect]
            if concerned:
                steps.append(_event("Normal", reason, "; ".join(concerned)))
    return Contribution(steps=tuple(steps), status=fields)


# -- reconcile: create, spec update, resume --------------------------------------------------------


def plan(
    body: Mapping[str, Any],
    context: Context,
    *,
    now: datetime,
    learned: Learned = Learned(),
) -> ReconcilePlan:
    """The whole cycle for one object, as steps and a status patch."""
    inputs = PlanInputs(body, context, learned)
    record = _record(body)
    try:
        cw = model.parse(body)
    except InvalidSpecError as exc:
        return _invalid(inputs, record, exc, now=now)
    check: tuple[Step, ...] = () if learned.template_accepted else (_dry_run(cw),)
    decision = backend_rules.decide(
        cw.spec.backend,
        cluster_default=context.cluster_default,
        qstash_problem=context.qstash_problem,
        destination_refused=learned.destination_refused,
    )
    if decision.backend is None:
        return _unavailable(inputs, record, decision, check, now=now)
    state = window.phase(cw.spec, window.runs_made(record.status), now)
    if state.phase.completed:
        return _completed(inputs, record, cw, state, now=now)
    return _apply(inputs, record, cw, decision, check, now=now, state=state)


def _apply(
    inputs: PlanInputs,
    record: _Record,
    cw: CronWorkflow,
    decision: backend_rules.BackendDecision,
    check: tuple[Step, ...],
    *,
    now: datetime,
    state: window.WindowState,
) -> ReconcilePlan:
    target = decision.backend
    assert target is not None
    ready_reason = _expected_ready(cw, state)
    user_suspended = cw.spec.suspend
    cw = window.as_applied(cw, record.status, now)  # waiting for activeFrom: paused, not absent
    if target is Backend.QSTASH:
        sync, synced_reason = _sync_qstash(inputs.context, record, cw)
    else:
        sync, synced_reason = _sync_cronjob(inputs.learned, record, cw)
    refusal = _refusal(inputs.learned)
    handover = _handover(inputs.context, record, cw, decision, now=now)
    if target is Backend.QSTASH:
        handover = _combine(handover, _retiring(inputs.context, record, cw, now=now))
    notices = _notices(cw, record.status, now, reconcile=True)
    edge = Contribution(
        requeue_after=None if state.switch_at is None else (state.switch_at - now).total_seconds()
    )
    parts = _combine(Contribution(steps=check), sync, refusal, handover, notices, edge)

    applied_schedule = cw.spec.timetable.applied()
    status: JsonDict = dict(parts.status)
    status.update(
        backend=target.value,
        appliedSchedule=applied_schedule,
        resolvedSchedule=cw.spec.timetable.expression,
        nextScheduleTime=_next_time(cw, record.status, now),
    )
    if window.limited(cw.spec) and not user_suspended:
        following = window.first_tick(cw.spec, now)
        status["nextScheduleTime"] = None if following is None else rfc3339(following)
    status["schedules"] = entries_status(
        cw, record.status, now=now, backend=target, cluster=inputs.context.cluster_name
    )
    if record.status.get("appliedSchedule") != applied_schedule or not record.status.get(
        "scheduleSince"
    ):
        status["scheduleSince"] = rfc3339(now)
    suspensions = slots.suspensions_after(
        record.status.get("suspensions"), suspended=cw.spec.suspend, now=now
    )
    if suspensions is not None:  # the ledger's Skipped/Suspended slots, never caught up
        status["suspensions"] = suspensions
    ready = (
        Condition(
            vocabulary.CONDITION_READY,
            True,
            vocabulary.REASON_SUSPENDED,
            "suspended: no runs until spec.suspend is false",
        )
        if ready_reason == vocabulary.REASON_SUSPENDED
        else Condition(
            vocabulary.CONDITION_READY,
            True,
            vocabulary.REASON_NOT_YET_ACTIVE,
            f"{state.message}; the {target.value} schedule is paused until then",
        )
        if ready_reason == vocabulary.REASON_NOT_YET_ACTIVE
        else Condition(
            vocabulary.CONDITION_READY,
            True,
            vocabulary.REASON_READY,
            f"scheduled on {target.value}: {decision.message}",
        )
    )
    updates = [
        Condition(
            vocabulary.CONDITION_SPEC_VALID, True, vocabulary.REASON_SPEC_VALID, "the spec is valid"
        ),
        Condition(
            vocabulary.CONDITION_SCHEDULE_SYNCED,
            True,
            synced_reason,
            f"{target.value} schedule matches the spec",
        ),
        ready,
        *parts.conditions,
    ]
    status.update(_conditions_status(record, updates, now=now))
    return ReconcilePlan(
        purpose=Purpose.RECONCILE,
        inputs=inputs,
        steps=parts.steps,
        status=status,
        requeue_after=parts.requeue_after,
        result=synced_reason,
        switch_to=parts.switch_to,
    )


def _completed(
    inputs: PlanInputs,
    record: _Record,
    cw: CronWorkflow,
    state: window.WindowState,
    *,
    now: datetime,
) -> ReconcilePlan:
    """The window has ended or the last allowed run was made: remove the backend schedule.

    ``status.backend`` stays (which backend ran it); ``appliedScheduleHash`` goes, so drift
    repair does not recreate the schedule and a spec that allows more runs applies it afresh.
    Removal is asked only while something is applied, so a completed object costs no calls.
    """
    steps: list[Step] = []
    applied = bool(record.status.get("appliedScheduleHash"))
    live = (
        {b for b in (record.backend, record.handover_from) if b is not None} if applied else set()
    )
    for backend in sorted(live, key=lambda b: b.value):
        steps.extend(_remove(inputs.context, record, cw, backend, state.message))
    previous = conditions.find(record.status.get("conditions"), vocabulary.CONDITION_READY)
    if live or previous is None or previous.get("reason") != vocabulary.REASON_COMPLETED:
        steps.append(_event("Normal", vocabulary.REASON_COMPLETED, state.message))
    status: JsonDict = {
        "scheduleId": None,
        "cronJobName": None,
        "appliedScheduleHash": None,
        "appliedSchedule": None,
        "nextScheduleTime": None,
        "handover": None,
        "retiring": None,
        "schedules": None,
        "resolvedSchedule": cw.spec.timetable.expression,
    }
    updates = [
        Condition(
            vocabulary.CONDITION_SPEC_VALID, True, vocabulary.REASON_SPEC_VALID, "the spec is valid"
        ),
        Condition(
            vocabulary.CONDITION_SCHEDULE_SYNCED,
            True,
            vocabulary.REASON_SCHEDULE_DELETED,
            "no backend schedule: the CronWorkflow has completed",
        ),
        Condition(vocabulary.CONDITION_READY, False, vocabulary.REASON_COMPLETED, state.message),
    ]
    status.update(_conditions_status(record, updates, now=now))
    return ReconcilePlan(
        purpose=Purpose.RECONCILE,
        inputs=inputs,
        steps=tuple(steps),
        status=status,
        result=vocabulary.REASON_COMPLETED,
    )


def _remove(
    context: Context, record: _Record, cw: CronWorkflow, backend: Backend, why: str
) -> tuple[Step, ...]:
    """Delete ``backend``'s schedule for good (a CronJob's Jobs are adopted first, as in a
    handover, so their history survives it)."""
    return _delete_schedule(
        context,
        record,
        cw,
        backend,
        reason_cronjob=vocabulary.REASON_CRONJOB_DELETED,
        reason_qstash=vocabulary.REASON_SCHEDULE_DELETED,
        done=lambda what: f"deleted {what}: {why}",
        left_behind="The webhook refuses its deliveries",
    )


def _delete_schedule(
    context: Context,
    record: _Record,
    cw: CronWorkflow,
    backend: Backend,
    *,
    reason_cronjob: str,
    reason_qstash: str,
    done: Callable[[str], str],
    left_behind: str,
) -> tuple[Step, ...]:
    """The steps that delete ``backend``'s schedule of ``cw``, and the Normal event saying so
    (``done`` words it from what was deleted). A CronJob is deleted orphaning its Jobs between
    two adoptions, so a Job it made in between is kept too; a QStash schedule without a token
    cannot be deleted, which a Warning says (``left_behind``: what happens to its deliveries)."""
    if backend is Backend.CRONJOB:
        name = naming.cronjob_name(cw.name)
        markers = tuple(
            step
            for marker in entry_cronjobs(record.status, cw)
            for step in (
                DeleteCronJob(cw.namespace, marker, cw.uid, orphan=False),
                _event("Normal", reason_cronjob, done(f"CronJob {marker}")),
            )
        )
        stray = sweep_markers(
            cw.namespace, cw.name, cw.uid, keep=(), reason=reason_cronjob, said=done(CRONJOB_SLOT)
        )
        return (*_delete_single_cronjob(cw, name, reason_cronjob, done), *markers, stray)
    ids = qstash_ids(context.cluster_name, record.status, cw)
    if not context.has_qstash_token:
        return tuple(
            _event(
                "Warning",
                vocabulary.REASON_QSTASH_SCHEDULE_LEFT_BEHIND,
                f"QStash schedule {schedule_id} could not be deleted: QSTASH_TOKEN is not set. "
                f"{left_behind}; delete it in the QStash console.",
            )
            for schedule_id in ids
        )
    steps: list[Step] = []
    for schedule_id in ids:
        steps.append(DeleteSchedule(schedule_id))
        steps.append(_event("Normal", reason_qstash, done(f"QStash schedule {schedule_id}")))
    return tuple(steps)


def _recorded_ids(status: Mapping[str, Any]) -> list[str]:
    """The QStash schedule ids status says were applied: ``scheduleId`` (one schedule) and each
    ``schedules[].scheduleId`` (several), then those still being retired."""
    found: list[str] = []
    candidates: list[Any] = [status.get("scheduleId")]
    candidates.extend(
        item.get("scheduleId") for item in status.get("schedules") or () if isinstance(item, dict)
    )
    candidates.extend((status.get("retiring") or {}).get("scheduleIds") or ())
    for candidate in candidates:
        if isinstance(candidate, str) and candidate and candidate not in found:
            found.append(candidate)
    return found


def desired_ids(cluster: str, cw: CronWorkflow) -> list[str]:
    """One QStash schedule id per timetable entry, in list order."""
    return [
        naming.schedule_id(cluster, cw.namespace, cw.name, entry.name)
        for entry in cw.spec.timetable.entries
    ]


def qstash_ids(cluster: str, status: Mapping[str, Any], cw: CronWorkflow) -> list[str]:
    """Every QStash schedule the object may have: the spec's, then those status records."""
    ids = desired_ids(cluster, cw)
    return ids + [sid for sid in _recorded_ids(status) if sid not in ids]


def _retiring(
    context: Context, record: _Record, cw: CronWorkflow, *, now: datetime
) -> Contribution:
    """QStash schedules applied before but no longer in the spec (an entry removed or renamed,
    ``spec.schedule`` moved to ``spec.schedules`` or back) stay live until the first tick of the
    new set after QStash's load grace has passed (``status.retiring``), so no tick falls between
    the old schedules going and the new ones firing; the Job name keeps an overlap from running a
    tick twice. Then the refresh deletes them (:func:`_retire_entries`). Suspended: at once."""
    wanted = set(desired_ids(context.cluster_name, cw))
    previous = record.status.get("retiring") or {}
    leftover = [sid for sid in _recorded_ids(record.status) if sid not in wanted]
    if not leftover:
        return Contribution(status={"retiring": None}) if previous else Contribution()
    if cw.spec.suspend:
        return Contribution(steps=_retire_entries(context, leftover), status={"retiring": None})
    before = [sid for sid in previous.get("scheduleIds") or () if isinstance(sid, str)]
    remove_after = parse_time(previous.get("removeAfter"))
    if remove_after is None or set(leftover) - set(before):
        remove_after = backend_rules.handover_deadline(
            cw.spec.timetable, now=now, to=Backend.QSTASH
        )
    retiring = {"scheduleIds": leftover, "removeAfter": rfc3339(remove_after)}
    return Contribution(
        status={"retiring": retiring} if retiring != previous else {},
        requeue_after=max((remove_after - now).total_seconds(), 0.0),
    )


def _retire_entries(context: Context, ids: Sequence[str]) -> tuple[Step, ...]:
    """Delete QStash schedules the spec no longer has, each with its Normal event."""
    steps: list[Step] = []
    for schedule_id in ids:
        if not context.has_qstash_token:
            steps.append(
                _event(
                    "Warning",
                    vocabulary.REASON_QSTASH_SCHEDULE_LEFT_BEHIND,
                    f"QStash schedule {schedule_id} could not be deleted: QSTASH_TOKEN is not "
                    "set. Its deliveries are deduplicated by Job name; delete it in the QStash "
                    "console.",
                )
            )
            continue
        steps.append(DeleteSchedule(schedule_id))
        steps.append(
            _event(
                "Normal",
                vocabulary.REASON_SCHEDULE_DELETED,
                f"deleted QStash schedule {schedule_id}: no longer in the spec",
            )
        )
    return tuple(steps)


def entries_status(
    cw: CronWorkflow,
    status: Mapping[str, Any],
    *,
    now: datetime,
    backend: Backend | None,
    cluster: str,
) -> list[JsonDict] | None:
    """``status.schedules``: per entry of ``spec.schedules`` its name, resolved cron, QStash
    schedule id or CronJob, and next tick (None for a single ``spec.schedule``)."""
    table = cw.spec.timetable
    if not table.multiple:
        return None
    last = parse_time(status.get("lastScheduleTime"))
    after = now if last is None else max(now, last)
    runs_left = cw.spec.max_runs is None or window.runs_made(status) < cw.spec.max_runs
    out: list[JsonDict] = []
    for entry in table.entries:
        assert entry.name is not None
        item: JsonDict = {"name": entry.name, "resolvedSchedule": entry.schedule.expression}
        if backend is Backend.QSTASH:
            item["scheduleId"] = naming.schedule_id(cluster, cw.namespace, cw.name, entry.name)
        elif backend is Backend.CRONJOB:
            item["cronJob"] = naming.entry_cronjob_name(cw.name, entry.name)
        following = None
        if not cw.spec.suspend and runs_left:
            start = after
            if cw.spec.active_from is not None and start < cw.spec.active_from:
                start = cw.spec.active_from - timedelta(seconds=1)
            following = cron.next_tick(entry.schedule, start)
            if cw.spec.active_until is not None and following >= cw.spec.active_until:
                following = None
        item["nextScheduleTime"] = None if following is None else rfc3339(following)
        out.append(item)
    return out


def _sync_qstash(context: Context, record: _Record, cw: CronWorkflow) -> tuple[Contribution, str]:
    """The QStash schedules (one per timetable entry), upserted (and their pause state set)
    when what was applied differs."""
    assert context.public_url is not None, "QStash is only chosen when WEBHOOK_PUBLIC_URL is set"
    every = builders.build_schedules(
        cw, cluster=context.cluster_name, public_url=context.public_url
    )
    desired = every[0]
    applied = builders.schedules_fingerprint(every)
    status = {
        "scheduleId": None if cw.spec.timetable.multiple else desired.schedule_id,
        "cronJobName": None,
        "appliedScheduleHash": applied,
    }
    if record.backend is Backend.QSTASH and record.status.get("appliedScheduleHash") == applied:
        return Contribution(status=status), vocabulary.REASON_SCHEDULE_UP_TO_DATE
    upserted = tuple(
        _event(
            "Normal",
            vocabulary.REASON_SCHEDULE_UPSERTED,
            f"QStash schedule {item.schedule_id} set to {item.cron!r}"
            + (" (paused)" if item.paused else ""),
        )
        for item in every
    )
    previously_refused = conditions.find(
        record.status.get("conditions"), vocabulary.CONDITION_DESTINATION_ACCEPTED
    )
    accepted: tuple[Condition, ...] = ()
    if previously_refused is not None and previously_refused.get("status") == "False":
        accepted = (
            Condition(
                vocabulary.CONDITION_DESTINATION_ACCEPTED,
                True,
                vocabulary.REASON_DESTINATION_ACCEPTED,
                f"QStash accepted the destination {desired.destination} again",
            ),
        )
    steps: tuple[Step, ...] = tuple(
        step
        for item, told in zip(every, upserted, strict=True)
        for step in (UpsertSchedule(item), PauseSchedule(item.schedule_id, item.paused), told)
    )
    return (
        Contribution(steps=steps, status=status, conditions=accepted),
        vocabulary.REASON_SCHEDULE_UPSERTED,
    )


def _delete_single_cronjob(
    cw: CronWorkflow, name: str, reason: str, done: Callable[[str], str]
) -> tuple[Step, ...]:
    """Delete the CronJob that made the run's Jobs itself, orphaning them between two adoptions
    so that its Jobs (and one it makes in between) stay the CronWorkflow's."""
    adopt = AdoptJobs(
        cw.namespace,
        builders.label_selector(builders.selector_labels(cw)),
        builders.owner_reference(cw),
    )
    return (
        adopt,
        DeleteCronJob(cw.namespace, name, cw.uid, orphan=True),
        adopt,
        _event("Normal", reason, done(f"CronJob {name}")),
    )


def entry_cronjobs(status: Mapping[str, Any], cw: CronWorkflow | None) -> list[str]:
    """Every marker CronJob the object may have: each ``spec.schedules`` entry's, then those
    ``status.schedules`` records."""
    names: list[str] = []
    if cw is not None:
        names.extend(
            naming.entry_cronjob_name(cw.name, entry.name)
            for entry in cw.spec.timetable.entries
            if entry.name is not None
        )
    for item in status.get("schedules") or ():
        recorded = item.get("cronJob") if isinstance(item, dict) else None
        if isinstance(recorded, str) and recorded and recorded not in names:
            names.append(recorded)
    return names


CRONJOB_SLOT: Final = f"CronJob {NAME_SLOT}"


def sweep_markers(
    namespace: str, name: str, uid: str, *, keep: Sequence[str], reason: str, said: str
) -> SweepMarkerCronJobs:
    """The step deleting ``namespace/name``'s marker CronJobs that ``keep`` does not name."""
    return SweepMarkerCronJobs(
        namespace,
        builders.label_selector(builders.marker_cronjob_labels(name)),
        uid,
        keep=tuple(sorted(keep)),
        reason=reason,
        said=said,
    )


def _recorded_cronjobs(status: Mapping[str, Any]) -> list[str]:
    return [
        str(item["cronJob"])
        for item in status.get("schedules") or ()
        if isinstance(item, dict) and isinstance(item.get("cronJob"), str)
    ]


def _sync_marker_cronjobs(record: _Record, cw: CronWorkflow) -> tuple[Contribution, str]:
    """``spec.schedules`` on the CronJob backend: one marker CronJob per entry
    (:func:`builders.build_marker_cronjob`), put whole when what was applied differs; marker
    CronJobs of entries gone are deleted with their markers, and a single ``spec.schedule``'s
    CronJob left from before is deleted keeping its Jobs. A CronJob is live as soon as it
    exists, so the new ones are made first and the old ones go in the same cycle."""
    manifests = [builders.build_marker_cronjob(cw, entry) for entry in cw.spec.timetable.entries]
    applied = fingerprint({"markers": manifests})
    status = {"cronJobName": None, "scheduleId": None, "appliedScheduleHash": applied}
    wanted = {str(manifest["metadata"]["name"]) for manifest in manifests}
    retire: list[Step] = []
    on_cronjob = Backend.CRONJOB in (record.backend, record.handover_from)
    single = record.status.get("cronJobName")
    if on_cronjob and isinstance(single, str) and single:
        retire.extend(
            _delete_single_cronjob(
                cw,
                single,
                vocabulary.REASON_CRONJOB_DELETED,
                lambda what: f"deleted {what}: spec.schedules replaced spec.schedule",
            )
        )
    for gone in _recorded_cronjobs(record.status):
        if gone not in wanted:
            retire.append(DeleteCronJob(cw.namespace, gone, cw.uid, orphan=False))
            retire.append(
                _event(
                    "Normal",
                    vocabulary.REASON_CRONJOB_DELETED,
                    f"deleted CronJob {gone}: its entry is no longer in spec.schedules",
                )
            )
    if record.backend is Backend.CRONJOB and record.status.get("appliedScheduleHash") == applied:
        return (
            Contribution(steps=tuple(retire), status=status),
            vocabulary.REASON_SCHEDULE_UP_TO_DATE,
        )
    steps: list[Step] = []
    for manifest, entry in zip(manifests, cw.spec.timetable.entries, strict=True):
        steps.append(PutCronJob(manifest, cw.uid))
        steps.append(
            _event(
                "Normal",
                vocabulary.REASON_CRONJOB_UPDATED,
                f"CronJob {manifest['metadata']['name']} marks the ticks of entry {entry.name} "
                f"({entry.schedule.expression!r} in {cw.spec.time_zone})"
                + (" (suspended)" if cw.spec.suspend else ""),
            )
        )
    stray = sweep_markers(
        cw.namespace,
        cw.name,
        cw.uid,
        keep=sorted(wanted),
        reason=vocabulary.REASON_CRONJOB_DELETED,
        said=f"deleted {CRONJOB_SLOT}: no entry of spec.schedules names it",
    )
    return (
        Contribution(steps=(*steps, *retire, stray), status=status),
        vocabulary.REASON_CRONJOB_UPDATED,
    )


def _sync_cronjob(learned: Learned, record: _Record, cw: CronWorkflow) -> tuple[Contribution, str]:
    """The CronJob, created or replaced when what was applied differs.

    Whether it exists is what status says (it is on the CronJob backend, or being handed over from
    it), unless this cycle learned otherwise; a wrong belief fails the step and is corrected by
    :func:`after_failure`. With ``spec.schedules``, :func:`_sync_marker_cronjobs` instead.
    """
    if cw.spec.timetable.multiple:
        return _sync_marker_cronjobs(record, cw)
    manifest = builders.build_cronjob(cw)
    applied = fingerprint(manifest)
    name = str(manifest["metadata"]["name"])
    status = {"cronJobName": name, "scheduleId": None, "appliedScheduleHash": applied}
    markers_gone: tuple[Step, ...] = tuple(
        step
        for marker in _recorded_cronjobs(record.status)
        for step in (
            DeleteCronJob(cw.namespace, marker, cw.uid, orphan=False),
            _event(
                "Normal",
                vocabulary.REASON_CRONJOB_DELETED,
                f"deleted CronJob {marker}: spec.schedule replaced spec.schedules",
            ),
        )
    )
    if record.backend is Backend.CRONJOB and record.status.get("appliedScheduleHash") == applied:
        return (
            Contribution(steps=markers_gone, status=status),
            vocabulary.REASON_SCHEDULE_UP_TO_DATE,
        )
    exists = learned.cronjob_exists
    if exists is None:
        exists = Backend.CRONJOB in (record.backend, record.handover_from)
    put: Step = ReplaceCronJob(manifest, cw.uid) if exists else CreateCronJob(manifest)
    reason = vocabulary.REASON_CRONJOB_UPDATED if exists else vocabulary.REASON_CRONJOB_CREATED
    told = _event(
        "Normal",
        reason,
        f"CronJob {name} runs {cw.spec.timetable.expression!r} in {cw.spec.time_zone}"
        + (" (suspended)" if cw.spec.suspend else ""),
    )
    # Markers status does not name (one made before a lost status write) go with the rest.
    stray: tuple[Step, ...] = (
        (
            sweep_markers(
                cw.namespace,
                cw.name,
                cw.uid,
                keep=(),
                reason=vocabulary.REASON_CRONJOB_DELETED,
                said=f"deleted {CRONJOB_SLOT}: spec.schedule replaced spec.schedules",
            ),
        )
        if markers_gone
        else ()
    )
    return Contribution(steps=(put, told, *markers_gone, *stray), status=status), reason


def _refusal(learned: Learned) -> Contribution:
    """The per-object record of a refused destination (defect 10.9): a condition, not a flag."""
    if learned.destination_refused is None:
        return Contribution()
    return Contribution(
        conditions=(
            Condition(
                vocabulary.CONDITION_DESTINATION_ACCEPTED,
                False,
                vocabulary.REASON_DESTINATION_REFUSED,
                f"QStash refused the webhook destination: {learned.destination_refused}. A CronJob "
                "runs the schedule; QStash is asked again at the next reconcile (a spec change, "
                "an operator restart).",
            ),
        )
    )


def _handover(
    context: Context,
    record: _Record,
    cw: CronWorkflow,
    decision: backend_rules.BackendDecision,
    *,
    now: datetime,
) -> Contribution:
    """Time the retirement of the previous backend (rule in ``domain/backend.py``)."""
    target = decision.backend
    assert target is not None
    current = record.backend
    if current is not None and current is not target:
        remove_after = backend_rules.handover_deadline(cw.spec.timetable, now=now, to=target)
        changed = _event(
            "Normal",
            vocabulary.REASON_BACKEND_CHANGED,
            f"backend changes from {current.value} to {target.value} ({decision.message}); "
            f"the {current.value} schedule stays until {rfc3339(remove_after)} so the tick in "
            "between runs once",
        )
        if cw.spec.suspend:  # nothing fires while suspended: nothing to hand over
            return Contribution(
                steps=(*_retire(context, record, cw, current), changed),
                status={"handover": None},
                switch_to=target,
            )
        return Contribution(
            steps=(changed,),
            status={"handover": {"from": current.value, "removeAfter": rfc3339(remove_after)}},
            requeue_after=(remove_after - now).total_seconds(),
            switch_to=target,
        )
    if record.handover.get("from") == target.value:
        # Switched back before the old one was retired: it is the live one again; keep it.
        return Contribution(status={"handover": None})
    if record.handover:
        if record.remove_after is not None and record.remove_after > now:
            return Contribution(requeue_after=(record.remove_after - now).total_seconds())
        return Contribution()
    if current is None and decision.reason == vocabulary.REASON_FALLBACK_TO_CRONJOB:
        return Contribution(steps=(_event("Normal", decision.reason, decision.message),))
    return Contribution()


def _retire(context: Context, record: _Record, cw: CronWorkflow, old: Backend) -> tuple[Step, ...]:
    """Delete the previous backend's schedule after a handover."""
    return _delete_schedule(
        context,
        record,
        cw,
        old,
        reason_cronjob=vocabulary.REASON_HANDOVER_COMPLETE,
        reason_qstash=vocabulary.REASON_HANDOVER_COMPLETE,
        done=lambda what: f"removed the previous backend's {what}",
        left_behind="Its deliveries are deduplicated by Job name",
    )


def _invalid(
    inputs: PlanInputs, record: _Record, exc: InvalidSpecError, *, now: datetime
) -> ReconcilePlan:
    return ReconcilePlan(
        purpose=Purpose.RECONCILE,
        inputs=inputs,
        steps=(_event("Warning", exc.reason, str(exc)),),
        status=_conditions_status(
            record,
            [
                Condition(vocabulary.CONDITION_SPEC_VALID, False, exc.reason, str(exc)),
                Condition(
                    vocabulary.CONDITION_READY,
                    False,
                    exc.reason,
                    f"the spec cannot be served: {exc}",
                ),
            ],
            now=now,
        ),
        error=exc,
        result=exc.reason,
    )


def _unavailable(
    inputs: PlanInputs,
    record: _Record,
    decision: backend_rules.BackendDecision,
    check: tuple[Step, ...],
    *,
    now: datetime,
) -> ReconcilePlan:
    """The requested backend cannot run here: say how to fix it, and wait for a spec change."""
    return ReconcilePlan(
        purpose=Purpose.RECONCILE,
        inputs=inputs,
        steps=(*check, _event("Warning", decision.reason, decision.message)),
        status=_conditions_status(
            record,
            [
                Condition(
                    vocabulary.CONDITION_SPEC_VALID,
                    True,
                    vocabulary.REASON_SPEC_VALID,
                    "the spec is valid",
                ),
                Condition(
                    vocabulary.CONDITION_SCHEDULE_SYNCED, False, decision.reason, decision.message
                ),
                Condition(vocabulary.CONDITION_READY, False, decision.reason, decision.message),
            ],
            now=now,
        ),
        error=InvalidSpecError("spec.backend", decision.message, "", reason=decision.reason),
        result=decision.reason,
    )


_TRANSIENT_REASONS: Final[Mapping[type[TransientError], str]] = {
    QStashAuthError: vocabulary.REASON_QSTASH_AUTH_FAILED,
    QStashRateLimitedError: vocabulary.REASON_QSTASH_RATE_LIMITED,
    QStashUnavailableError: vocabulary.REASON_QSTASH_UNAVAILABLE,
    ForbiddenError: vocabulary.REASON_FORBIDDEN,
}
_TRANSIENT_FIXES: Final[Mapping[str, str]] = {
    vocabulary.REASON_QSTASH_AUTH_FAILED: " Check QSTASH_TOKEN in the operator's Secret.",
    vocabulary.REASON_FORBIDDEN: " The operator's RBAC lacks a rule (see the chart).",
}


def transient_reason(error: TransientError) -> str:
    """The condition and event reason for a transient failure: the vocabulary's word for QStash's
    and RBAC's failures, else the word the error carries for itself (its 503 reason), else
    ``KubernetesUnavailable``."""
    if type(error) in _TRANSIENT_REASONS:
        return _TRANSIENT_REASONS[type(error)]
    if error.reason != TransientError.reason:
        return error.reason
    return vocabulary.REASON_KUBERNETES_UNAVAILABLE


def _transient(
    inputs: PlanInputs, record: _Record, exc: TransientError, *, now: datetime
) -> ReconcilePlan:
    reason = transient_reason(exc)
    message = f"{exc}.{_TRANSIENT_FIXES.get(reason, '')} Retrying in {int(exc.retry_after)}s."
    return ReconcilePlan(
        purpose=Purpose.RECONCILE,
        inputs=inputs,
        steps=(_event("Warning", reason, message),),
        status=_conditions_status(
            record,
            [
                Condition(vocabulary.CONDITION_SCHEDULE_SYNCED, False, reason, message),
                Condition(vocabulary.CONDITION_READY, False, reason, message),
            ],
            now=now,
        ),
        error=exc,
        requeue_after=exc.retry_after,
        result=reason,
    )


# -- refresh: the periodic look --------------------------------------------------------------------


def plan_refresh(body: Mapping[str, Any], context: Context, *, now: datetime) -> ReconcilePlan:
    """Finish a due handover, keep ``nextScheduleTime`` current. No backend call unless a handover
    is due, so the timer stays cheap for thousands of objects."""
    inputs = PlanInputs(body, context)
    record = _record(body)
    try:
        cw = model.parse(body)
    except InvalidSpecError:
        return ReconcilePlan(purpose=Purpose.REFRESH, inputs=inputs)  # reconcile reported it
    if _window_moved(cw, record, now):
        return plan(body, context, now=now)
    retire = Contribution()
    retiring = record.status.get("retiring") or {}
    retire_entries_at = parse_time(retiring.get("removeAfter"))
    if retire_entries_at is not None and retire_entries_at <= now:
        ids = [sid for sid in retiring.get("scheduleIds") or () if isinstance(sid, str)]
        retire = Contribution(steps=_retire_entries(context, ids), status={"retiring": None})
    elif retire_entries_at is not None:
        retire = Contribution(requeue_after=(retire_entries_at - now).total_seconds())
    if record.remove_after is not None and record.remove_after <= now:
        if record.handover_from is not None:
            retire = _combine(
                retire,
                Contribution(
                    steps=_retire(context, record, cw, record.handover_from),
                    status={"handover": None},
                ),
            )
        else:  # nothing we know how to retire
            retire = _combine(retire, Contribution(status={"handover": None}))
    elif record.remove_after is not None:
        return ReconcilePlan(
            purpose=Purpose.REFRESH,
            inputs=inputs,
            requeue_after=(record.remove_after - now).total_seconds(),
        )
    next_time = _next_time(cw, record.status, now)
    current = (
        Contribution(status={"nextScheduleTime": next_time})
        if record.status.get("nextScheduleTime") != next_time
        and not (next_time is not None and tick_being_recorded(record.status, now))
        else Contribution()
    )
    entries = entries_status(
        cw, record.status, now=now, backend=record.backend, cluster=context.cluster_name
    )
    if entries is not None and entries != record.status.get("schedules"):
        current = _combine(current, Contribution(status={"schedules": entries}))
    parts = _combine(retire, current, _notices(cw, record.status, now, reconcile=False))
    status = dict(parts.status)
    if parts.conditions:
        status.update(_conditions_status(record, parts.conditions, now=now))
    return ReconcilePlan(
        purpose=Purpose.REFRESH,
        inputs=inputs,
        steps=parts.steps,
        status=status,
        requeue_after=parts.requeue_after,
    )


def _expected_ready(cw: CronWorkflow, state: window.WindowState) -> str:
    """The Ready reason the spec, the run count and the clock call for."""
    if state.phase.completed:
        return vocabulary.REASON_COMPLETED
    if cw.spec.suspend:
        return vocabulary.REASON_SUSPENDED
    if not state.backend_on:
        return vocabulary.REASON_NOT_YET_ACTIVE
    return vocabulary.REASON_READY


_WINDOW_REASONS: Final = (
    vocabulary.REASON_READY,
    vocabulary.REASON_SUSPENDED,
    vocabulary.REASON_NOT_YET_ACTIVE,
    vocabulary.REASON_COMPLETED,
)


def _window_moved(cw: CronWorkflow, record: _Record, now: datetime) -> bool:
    """Whether the clock or the run count moved the CronWorkflow across a window edge since the
    last reconcile (what its Ready condition says), so the timer must apply the spec again: the
    backend switched on once the last tick before ``spec.activeFrom`` has passed, removed once
    the window ended or ``spec.maxRuns`` runs were made."""
    if not window.limited(cw.spec) or not record.status.get("backend"):
        return False  # never reconciled: the reconcile handler owns it
    ready = conditions.find(record.status.get("conditions"), vocabulary.CONDITION_READY) or {}
    reason = ready.get("reason")
    if reason not in _WINDOW_REASONS:
        return False  # not servable or not synced: the reconcile handler reports and retries
    state = window.phase(cw.spec, window.runs_made(record.status), now)
    return bool(reason != _expected_ready(cw, state))


# -- finalize: deletion --------------------------------------------------------------------------


def may_have_used_qstash(status: Mapping[str, Any]) -> bool:
    """Could a QStash schedule exist for this object? Not when status names another backend and
    no handover from QStash; yes when it names QStash, and when it names nothing (a cycle may have
    upserted and then failed before status was written)."""
    record_backend = _as_backend(status.get("backend"))
    handover_from = _as_backend((status.get("handover") or {}).get("from"))
    return Backend.QSTASH in (record_backend, handover_from) or record_backend is None


def give_up_at(body: Mapping[str, Any], context: Context, *, now: datetime) -> datetime:
    """When deletion stops waiting for a backend: the bound after the deletion timestamp."""
    asked = parse_time((body.get("metadata") or {}).get("deletionTimestamp")) or now
    return asked + context.finalizer_timeout


def known_schedule_ids(body: Mapping[str, Any], cluster: str) -> list[str]:
    """Every QStash schedule a CronWorkflow being deleted may have: the single id, each entry's
    of ``spec.schedules`` (read leniently: the spec may be invalid), and those status records."""
    meta = body.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    ids: list[str] = [naming.schedule_id(cluster, namespace, name)]
    for raw in (body.get("spec") or {}).get("schedules") or ():
        entry = raw.get("name") if isinstance(raw, Mapping) else None
        try:
            ids.append(naming.schedule_id(cluster, namespace, name, str(entry)))
        except ValueError:
            continue  # not an entry name this project could have used
    ids.extend(_recorded_ids(body.get("status") or {}))
    return list(dict.fromkeys(ids))


def plan_finalize(body: Mapping[str, Any], context: Context, *, now: datetime) -> ReconcilePlan:
    """Remove the CronWorkflow's schedule from every backend it may be on.

    The CronJob is owned and would be garbage-collected anyway; deleting it here stops the
    schedule at once rather than when the collector gets to it. QStash is asked only when the
    object may have used it (:func:`may_have_used_qstash`): one that never did can be deleted
    while QStash is down.
    """
    meta = body.get("metadata") or {}
    namespace, name, uid = str(meta.get("namespace")), str(meta.get("name")), str(meta.get("uid"))
    steps: list[Step] = [DeleteCronJob(namespace, naming.cronjob_name(name), uid, orphan=False)]
    try:
        parsed: CronWorkflow | None = model.parse(body)
    except InvalidSpecError:
        parsed = None
    steps.extend(
        DeleteCronJob(namespace, marker, uid, orphan=False)
        for marker in entry_cronjobs(body.get("status") or {}, parsed)
    )
    if may_have_used_qstash(body.get("status") or {}):
        for schedule_id in known_schedule_ids(body, context.cluster_name):
            if context.has_qstash_token:
                steps.append(DeleteSchedule(schedule_id))
                continue
            steps.append(
                _event(
                    "Warning",
                    vocabulary.REASON_QSTASH_SCHEDULE_LEFT_BEHIND,
                    f"QStash schedule {schedule_id} could not be deleted: QSTASH_TOKEN is not "
                    "set; delete it in the QStash console (its deliveries are refused meanwhile: "
                    "the CronWorkflow is gone).",
                )
            )
    return ReconcilePlan(
        purpose=Purpose.FINALIZE, inputs=PlanInputs(body, context), steps=tuple(steps)
    )


# -- the decision point after a failed step --------------------------------------------------------


def after_failure(
    failed: ReconcilePlan, failed_at: int, error: QStashOperatorError, *, now: datetime
) -> ReconcilePlan:
    """Step ``failed_at`` of ``failed`` raised ``error``: what now? (Answers in the module
    docstring.) The steps before it have been carried out; the returned plan replaces the rest."""
    step = failed.steps[failed_at]
    if failed.purpose is Purpose.FINALIZE:
        return _finalize_failed(failed, failed_at, step, error, now=now)
    transient = error if isinstance(error, TransientError) else _as_transient(step, error)
    if failed.purpose is Purpose.REFRESH:
        return ReconcilePlan(
            purpose=Purpose.REFRESH,
            inputs=failed.inputs,
            error=transient,
            requeue_after=transient.retry_after,
        )
    return _reconcile_failed(failed, step, error, transient, now=now)


def _reconcile_failed(
    failed: ReconcilePlan,
    step: Step,
    error: QStashOperatorError,
    transient: TransientError,
    *,
    now: datetime,
) -> ReconcilePlan:
    inputs = failed.inputs
    record = _record(inputs.body)
    learned = dataclasses.replace(inputs.learned, template_accepted=True)

    def again(**facts: Any) -> ReconcilePlan:
        return plan(
            inputs.body, inputs.context, now=now, learned=dataclasses.replace(learned, **facts)
        )

    match step, error:
        case CheckJobTemplate(), ApiRejectedError():
            return _invalid(
                inputs,
                record,
                InvalidSpecError(
                    "spec.jobTemplate",
                    f"the API server would reject the Job: {error.detail}",
                    "Fix the Job template (try `kubectl create --dry-run=server -f job.yaml`).",
                    reason=vocabulary.REASON_INVALID_JOB_TEMPLATE,
                ),
                now=now,
            )
        case CheckJobTemplate(), NotFoundError():  # the namespace is being deleted
            return _transient(inputs, record, KubernetesUnavailableError(str(error)), now=now)
        case UpsertSchedule() | PauseSchedule(), QStashRejectedError():
            message = str(error)
            backend_requested = model.parse(inputs.body).spec.backend
            if (
                refuses_destination(message)
                and backend_requested is not BackendChoice.QSTASH
                and inputs.learned.destination_refused is None
            ):
                return again(destination_refused=message)
            field = rejected_field(message)
            return _invalid(
                inputs,
                record,
                InvalidSpecError(
                    field,
                    f"QStash rejected the schedule: {message}",
                    f"Fix {field}." if field != "spec" else "Fix the field QStash names.",
                    reason=vocabulary.REASON_QSTASH_REJECTED,
                ),
                now=now,
            )
        case CreateCronJob(), AlreadyExistsError() if inputs.learned.cronjob_exists is None:
            return again(cronjob_exists=True)
        case ReplaceCronJob(), NotFoundError() if inputs.learned.cronjob_exists is None:
            return again(cronjob_exists=False)
        case ReplaceCronJob(manifest=manifest) | PutCronJob(manifest=manifest), NotOwnedError():
            name = manifest["metadata"]["name"]
            return _invalid(
                inputs,
                record,
                InvalidSpecError(
                    "metadata.name",
                    f"a CronJob named {name} already exists and is not owned by this CronWorkflow",
                    "Rename the CronWorkflow or delete the other CronJob.",
                ),
                now=now,
            )
        case CreateCronJob() | ReplaceCronJob() | PutCronJob(), ApiRejectedError():
            return _invalid(
                inputs,
                record,
                InvalidSpecError(
                    "spec",
                    f"the API server rejected the CronJob: {error.detail}",
                    "Fix the field it names.",
                ),
                now=now,
            )
    return _transient(inputs, record, transient, now=now)


_QSTASH_STEPS: Final = (UpsertSchedule, PauseSchedule, DeleteSchedule)


def _as_transient(step: Step, error: QStashOperatorError) -> TransientError:
    """An answer no rule expects (a schedule gone between upsert and pause, a lost create race):
    retried like an outage of whoever gave it."""
    if isinstance(step, _QSTASH_STEPS):
        return QStashUnavailableError(f"QStash answered unexpectedly: {error}")
    return KubernetesUnavailableError(f"the API server answered unexpectedly: {error}")


def _finalize_failed(
    failed: ReconcilePlan,
    failed_at: int,
    step: Step,
    error: QStashOperatorError,
    *,
    now: datetime,
) -> ReconcilePlan:
    """Retry a failed clean-up until the bound, then give it up with a Warning naming what is
    left behind and go on with the rest, so the finalizer is removed."""
    context = failed.inputs.context
    deadline = give_up_at(failed.inputs.body, context, now=now)
    if isinstance(error, TransientError) and now < deadline:
        waited = (now - (deadline - context.finalizer_timeout)).total_seconds()
        remaining = (deadline - now).total_seconds()
        # Wait as long as we have waited (the hint at least), never past the bound: the delay
        # doubles like an outage's backoff, and the last retry lands on the bound.
        delay = max(MIN_FINALIZER_RETRY_SECONDS, min(max(error.retry_after, waited), remaining))
        return ReconcilePlan(
            purpose=Purpose.FINALIZE,
            inputs=failed.inputs,
            error=TransientError(f"{error}; retrying until {rfc3339(deadline)}", retry_after=delay),
            requeue_after=delay,
        )
    return dataclasses.replace(
        failed,
        steps=(_left_behind(step, error, context), *failed.steps[failed_at + 1 :]),
    )


def _left_behind(step: Step, error: QStashOperatorError, context: Context) -> PostEvent:
    bound = f"{int(context.finalizer_timeout.total_seconds())}s"
    if isinstance(step, DeleteSchedule):
        return _event(
            "Warning",
            vocabulary.REASON_QSTASH_SCHEDULE_LEFT_BEHIND,
            f"QStash schedule {step.schedule_id} could not be deleted ({error}); the CronWorkflow "
            f"is deleted anyway (QSTASH_OPERATOR_FINALIZER_TIMEOUT is {bound}). Drift repair "
            "deletes the schedule once QStash answers, and the webhook refuses its deliveries "
            "(489) meanwhile.",
        )
    if isinstance(step, DeleteCronJob):
        reason = (
            transient_reason(error)
            if isinstance(error, TransientError)
            else vocabulary.REASON_KUBERNETES_UNAVAILABLE
        )
        return _event(
            "Warning",
            reason,
            f"CronJob {step.name} could not be deleted ({error}); the garbage collector removes "
            "it with the CronWorkflow.",
        )
    return _event("Warning", vocabulary.REASON_KUBERNETES_UNAVAILABLE, f"gave up: {error}")
