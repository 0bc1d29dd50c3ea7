"""Reconcile decisions, as tables: spec, what status says, the operator's settings, the instant.

Every branch that used to need a control plane or a fake adapter to reach is a row here: a state
is what earlier plans wrote (``applied``), a failure is the error an adapter would raise, handed to
``after_failure`` as the service does. Steps are shown the way the service carries them out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

import pytest

from qstash_operator.domain import reconcile, vocabulary
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
from qstash_operator.domain.model import Backend, BackendChoice, JsonDict
from qstash_operator.domain.reconcile import (
    AdoptJobs,
    CheckJobTemplate,
    Context,
    Contribution,
    CreateCronJob,
    DeleteCronJob,
    DeleteSchedule,
    Event,
    PauseSchedule,
    PostEvent,
    PutCronJob,
    ReconcilePlan,
    ReplaceCronJob,
    Step,
    SweepMarkerCronJobs,
    UpsertSchedule,
)
from tests.unit.domain.factories import UID, body
from tests.unit.instants import (
    HALF_PAST,
    JUST_AFTER_THE_HOUR,
    JUST_BEFORE_THE_HOUR,
    TOP_OF_THE_HOUR,
    WEEK_AFTER_THE_HOUR,
)

PRODUCTION: Final = Context(
    cluster_name="prod",
    public_url="https://cron.example.com",
    has_qstash_token=True,
)
DEVELOPMENT: Final = Context(cluster_name="prod", qstash_problem="QSTASH_TOKEN is not set")
DEFAULT_QSTASH: Final = dataclasses.replace(PRODUCTION, cluster_default=BackendChoice.QSTASH)
SID: Final = "prod.team-a.report"
REFUSED: Final = "invalid destination url: endpoint resolves to a loopback address"

HALF_A_MINUTE_BEFORE_THE_HOUR: Final = TOP_OF_THE_HOUR - timedelta(seconds=30)
"""A switch here shows the grace: a CronJob is live at once, so the tick at the hour is the
shared one; QStash may need 60 s to load a schedule, so the shared tick is the next hour's."""
ELEVEN: Final = TOP_OF_THE_HOUR + timedelta(hours=1)
LEAVE_QSTASH_AT: Final = "2026-06-01T11:00:30Z"  # a switch just after ten: the 11:00 tick + 30 s


# -- helpers -------------------------------------------------------------------------------------


def render(step: Step) -> str:
    """A step as a person reading the operator's log would say it."""
    match step:
        case CheckJobTemplate():
            return "dry-run Job"
        case UpsertSchedule(schedule=schedule):
            return f"upsert {schedule.schedule_id} {schedule.cron!r}"
        case PauseSchedule(schedule_id=sid, paused=paused):
            return f"{'pause' if paused else 'resume'} {sid}"
        case DeleteSchedule(schedule_id=sid):
            return f"delete schedule {sid}"
        case CreateCronJob(manifest=manifest):
            return f"create CronJob {manifest['metadata']['name']}"
        case ReplaceCronJob(manifest=manifest):
            return f"replace CronJob {manifest['metadata']['name']}"
        case PutCronJob(manifest=manifest):
            return f"put CronJob {manifest['metadata']['name']}"
        case DeleteCronJob(name=name, orphan=orphan):
            return f"delete CronJob {name}" + (" orphaning its Jobs" if orphan else "")
        case SweepMarkerCronJobs(keep=keep):
            return "sweep marker CronJobs" + (f" but {', '.join(keep)}" if keep else "")
        case AdoptJobs():
            return "adopt Jobs"
        case PostEvent(event=event):
            return f"{event.type} {event.reason}"
    raise AssertionError(step)


def rendered(plan: ReconcilePlan) -> tuple[str, ...]:
    return tuple(render(step) for step in plan.steps)


def merge(status: Mapping[str, Any], patch: Mapping[str, Any]) -> JsonDict:
    """A JSON merge patch applied to status, as the API server does."""
    result = dict(status)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def applied(
    spec: dict[str, Any] | None = None,
    *,
    context: Context = PRODUCTION,
    now: Any = JUST_BEFORE_THE_HOUR,
    status: Mapping[str, Any] | None = None,
    generation: int = 1,
) -> JsonDict:
    """Status after a reconcile of ``spec`` went through (from ``status``, default nothing)."""
    done = reconcile.plan(
        body(spec, status=dict(status or {}), generation=generation), context, now=now
    )
    assert done.error is None, done.error
    return merge(status or {}, done.status)


def condition(status: Mapping[str, Any], kind: str) -> tuple[str, str] | None:
    for item in status.get("conditions") or []:
        if item["type"] == kind:
            return (item["status"], item["reason"])
    return None


def events(plan: ReconcilePlan) -> list[Event]:
    return [step.event for step in plan.steps if isinstance(step, PostEvent)]


def fail(
    plan: ReconcilePlan, kind: type[Step], error: QStashOperatorError, **kw: Any
) -> ReconcilePlan:
    """The first step of ``kind`` raised ``error``: what the service gets back from the domain."""
    index = next(i for i, step in enumerate(plan.steps) if isinstance(step, kind))
    return reconcile.after_failure(plan, index, error, **kw)


ON_QSTASH = applied()
ON_QSTASH_SUSPENDED = applied({"suspend": True})
ON_CRONJOB = applied({"backend": "CronJob"})
IN_DEVELOPMENT = applied(context=DEVELOPMENT)
LEAVING_QSTASH = applied({"backend": "CronJob"}, now=JUST_AFTER_THE_HOUR, status=ON_QSTASH)


# -- reconcile -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    steps: tuple[str, ...]
    """After the dry run of the Job, which every reconcile starts with."""
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    before: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    context: Context = PRODUCTION
    now: Any = JUST_AFTER_THE_HOUR
    status: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Fields the patch must hold (None: it removes them)."""
    absent: tuple[str, ...] = ()
    """Fields the patch must not touch."""
    ready: tuple[str, str] = ("True", vocabulary.REASON_READY)
    synced: tuple[str, str] | None = None
    requeue: float | None = None
    switch_to: Backend | None = None


UPSERT = (f"upsert {SID} 'CRON_TZ=UTC 0 * * * *'", f"resume {SID}", "Normal ScheduleUpserted")

CASES = {
    "first apply, QStash configured: upsert, then set the pause state": Case(
        steps=UPSERT,
        status={
            "backend": "QStash",
            "scheduleId": SID,
            "cronJobName": None,
            "appliedSchedule": "CRON_TZ=UTC 0 * * * *",
            "nextScheduleTime": "2026-06-01T11:00:00Z",
            "scheduleSince": "2026-06-01T10:00:02Z",
            "observedGeneration": 1,
        },
        synced=("True", vocabulary.REASON_SCHEDULE_UPSERTED),
    ),
    "first apply in development mode: a CronJob, and why": Case(
        context=DEVELOPMENT,
        steps=("create CronJob report", "Normal CronJobCreated", "Normal FallbackToCronJob"),
        status={"backend": "CronJob", "cronJobName": "report", "scheduleId": None},
        synced=("True", vocabulary.REASON_CRONJOB_CREATED),
    ),
    "first apply of spec.backend CronJob beside QStash: no fallback to explain": Case(
        spec={"backend": "CronJob"},
        steps=("create CronJob report", "Normal CronJobCreated"),
        status={"backend": "CronJob", "cronJobName": "report"},
    ),
    "nothing changed on QStash: no QStash call, scheduleSince kept": Case(
        before=ON_QSTASH,
        steps=(),
        absent=("scheduleSince", "handover"),
        synced=("True", vocabulary.REASON_SCHEDULE_UP_TO_DATE),
    ),
    "nothing changed on the CronJob": Case(
        spec={"backend": "CronJob"},
        before=ON_CRONJOB,
        steps=(),
        synced=("True", vocabulary.REASON_SCHEDULE_UP_TO_DATE),
    ),
    "edit on QStash: upsert, and the new cron takes effect now": Case(
        spec={"schedule": "*/5 * * * *"},
        before=ON_QSTASH,
        steps=(
            f"upsert {SID} 'CRON_TZ=UTC */5 * * * *'",
            f"resume {SID}",
            "Normal ScheduleUpserted",
        ),
        status={
            "scheduleSince": "2026-06-01T10:00:02Z",
            "nextScheduleTime": "2026-06-01T10:05:00Z",
        },
    ),
    "H on QStash: the resolved cron is upserted and shown in resolvedSchedule": Case(
        spec={"schedule": "H H * * *"},
        steps=(
            f"upsert {SID} 'CRON_TZ=UTC 18 14 * * *'",
            f"resume {SID}",
            "Normal ScheduleUpserted",
        ),
        status={
            "resolvedSchedule": "18 14 * * *",
            "appliedSchedule": "CRON_TZ=UTC 18 14 * * *",
            "nextScheduleTime": "2026-06-01T14:18:00Z",
        },
        synced=("True", vocabulary.REASON_SCHEDULE_UPSERTED),
    ),
    "H on the CronJob backend: the same resolved cron": Case(
        spec={"schedule": "H H * * *", "backend": "CronJob"},
        steps=("create CronJob report", "Normal CronJobCreated"),
        status={"resolvedSchedule": "18 14 * * *", "nextScheduleTime": "2026-06-01T14:18:00Z"},
    ),
    "edit of QStash options only: upsert, the cron's start stays": Case(
        spec={"qstash": {"retries": 5}},
        before=ON_QSTASH,
        steps=UPSERT,
        absent=("scheduleSince",),
    ),
    "edit on the CronJob: replaced whole": Case(
        spec={"backend": "CronJob", "schedule": "*/5 * * * *"},
        before=ON_CRONJOB,
        steps=("replace CronJob report", "Normal CronJobUpdated"),
        synced=("True", vocabulary.REASON_CRONJOB_UPDATED),
    ),
    "suspend on QStash: paused, no next run": Case(
        spec={"suspend": True},
        before=ON_QSTASH,
        steps=(f"upsert {SID} 'CRON_TZ=UTC 0 * * * *'", f"pause {SID}", "Normal ScheduleUpserted"),
        status={"nextScheduleTime": None},
        ready=("True", vocabulary.REASON_SUSPENDED),
    ),
    "resume on QStash: resumed, next run back": Case(
        before=ON_QSTASH_SUSPENDED,
        steps=UPSERT,
        status={"nextScheduleTime": "2026-06-01T11:00:00Z"},
    ),
    "suspend on the CronJob: the CronJob is suspended": Case(
        spec={"backend": "CronJob", "suspend": True},
        before=ON_CRONJOB,
        steps=("replace CronJob report", "Normal CronJobUpdated"),
        ready=("True", vocabulary.REASON_SUSPENDED),
    ),
    "switch QStash to CronJob: the CronJob first, QStash stays for the shared tick": Case(
        spec={"backend": "CronJob"},
        before=ON_QSTASH,
        steps=("create CronJob report", "Normal CronJobCreated", "Normal BackendChanged"),
        status={
            "backend": "CronJob",
            "scheduleId": None,
            "handover": {"from": "QStash", "removeAfter": LEAVE_QSTASH_AT},
        },
        requeue=3628.0,
        switch_to=Backend.CRONJOB,
    ),
    "switch CronJob to QStash: the schedule first, the CronJob stays for the shared tick": Case(
        before=ON_CRONJOB,
        steps=(*UPSERT, "Normal BackendChanged"),
        status={
            "backend": "QStash",
            "cronJobName": None,
            "handover": {"from": "CronJob", "removeAfter": LEAVE_QSTASH_AT},
        },
        requeue=3628.0,
        switch_to=Backend.QSTASH,
    ),
    "switch to a CronJob 30 s before a tick: that tick is the shared one": Case(
        spec={"backend": "CronJob"},
        before=ON_QSTASH,
        now=HALF_A_MINUTE_BEFORE_THE_HOUR,
        steps=("create CronJob report", "Normal CronJobCreated", "Normal BackendChanged"),
        status={"handover": {"from": "QStash", "removeAfter": "2026-06-01T10:00:30Z"}},
        requeue=60.0,
        switch_to=Backend.CRONJOB,
    ),
    "switch to QStash 30 s before a tick: it may load late, so the next tick is shared": Case(
        before=ON_CRONJOB,
        now=HALF_A_MINUTE_BEFORE_THE_HOUR,
        steps=(*UPSERT, "Normal BackendChanged"),
        status={"handover": {"from": "CronJob", "removeAfter": "2026-06-01T11:00:30Z"}},
        requeue=3660.0,
        switch_to=Backend.QSTASH,
    ),
    "switch while suspended: nothing fires, so the old one goes at once": Case(
        spec={"backend": "CronJob", "suspend": True},
        before=ON_QSTASH_SUSPENDED,
        steps=(
            "create CronJob report",
            "Normal CronJobCreated",
            f"delete schedule {SID}",
            "Normal HandoverComplete",
            "Normal BackendChanged",
        ),
        status={"handover": None, "backend": "CronJob"},
        ready=("True", vocabulary.REASON_SUSPENDED),
        switch_to=Backend.CRONJOB,
    ),
    "switch back during a handover: the schedule being retired is the live one again": Case(
        before=LEAVING_QSTASH,
        now=HALF_PAST,
        steps=(*UPSERT, "Normal BackendChanged"),
        status={"backend": "QStash", "handover": {"from": "CronJob"}},
        requeue=1830.0,
        switch_to=Backend.QSTASH,
    ),
    "an edit during a handover: the CronJob follows it, the handover still waits": Case(
        spec={"backend": "CronJob", "schedule": "30 * * * *"},
        before=LEAVING_QSTASH,
        now=HALF_PAST,
        steps=("replace CronJob report", "Normal CronJobUpdated"),
        absent=("handover",),
        requeue=1830.0,
    ),
    "a status that names the target as the one handed over: nothing to retire": Case(
        before={**ON_QSTASH, "handover": {"from": "QStash", "removeAfter": LEAVE_QSTASH_AT}},
        steps=(),
        status={"handover": None},
        synced=("True", vocabulary.REASON_SCHEDULE_UP_TO_DATE),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_reconcile(case: Case) -> None:
    done = reconcile.plan(body(case.spec, status=dict(case.before)), case.context, now=case.now)
    assert done.error is None
    check, *steps = rendered(done)
    assert check == "dry-run Job"  # every reconcile asks the API server about the Job first
    assert tuple(steps) == case.steps
    for key, value in case.status.items():
        if isinstance(value, dict):
            assert {k: done.status[key][k] for k in value} == value, key
        else:
            assert done.status[key] == value, key
    for key in case.absent:
        assert key not in done.status, key
    assert condition(done.status, "Ready") == case.ready
    assert condition(done.status, "SpecValid") == ("True", vocabulary.REASON_SPEC_VALID)
    if case.synced is not None:
        assert condition(done.status, "ScheduleSynced") == case.synced
    assert done.requeue_after == case.requeue
    assert done.switch_to is case.switch_to


def test_the_dry_run_job_is_the_cronworkflows_own_and_named_like_a_manual_run() -> None:
    [check] = [
        s
        for s in reconcile.plan(body(), PRODUCTION, now=TOP_OF_THE_HOUR).steps
        if isinstance(s, CheckJobTemplate)
    ]
    assert check.job["metadata"]["ownerReferences"][0]["uid"] == UID
    assert check.job["metadata"]["name"].startswith("report-manual-")


def test_the_cronjob_carries_the_suspend_flag_and_replaces_only_our_own() -> None:
    done = reconcile.plan(
        body({"backend": "CronJob", "suspend": True}, status=ON_CRONJOB),
        PRODUCTION,
        now=TOP_OF_THE_HOUR,
    )
    [replace] = [s for s in done.steps if isinstance(s, ReplaceCronJob)]
    assert replace.manifest["spec"]["suspend"] is True
    assert replace.owner_uid == UID


def test_a_retire_of_the_cronjob_adopts_its_jobs_before_and_after_deleting_it() -> None:
    done = reconcile.plan(
        body({"suspend": True}, status=applied({"backend": "CronJob", "suspend": True})),
        PRODUCTION,
        now=TOP_OF_THE_HOUR,
    )
    retire = [s for s in done.steps if isinstance(s, AdoptJobs | DeleteCronJob)]
    assert [render(s) for s in retire] == [
        "adopt Jobs",
        "delete CronJob report orphaning its Jobs",
        "adopt Jobs",
    ]
    adopt = retire[0]
    assert isinstance(adopt, AdoptJobs)
    assert adopt.owner["uid"] == UID
    assert f"qstash-operator.dev/cronworkflow-uid={UID}" in adopt.selector


@dataclasses.dataclass(frozen=True)
class Refusal:
    spec: dict[str, Any]
    context: Context
    steps: tuple[str, ...]
    field: str
    reason: str


REFUSALS = {
    "an unknown time zone": Refusal(
        spec={"timeZone": "Mars/Olympus_Mons"},
        context=PRODUCTION,
        steps=("Warning UnknownTimeZone",),
        field="spec.timeZone",
        reason=vocabulary.REASON_UNKNOWN_TIME_ZONE,
    ),
    "a cron QStash and CronJobs refuse": Refusal(
        spec={"schedule": "0 0 L * *"},
        context=PRODUCTION,
        steps=("Warning InvalidSchedule",),
        field="spec.schedule",
        reason=vocabulary.REASON_INVALID_SCHEDULE,
    ),
    "spec.backend QStash without QStash: say how to fix it": Refusal(
        spec={"backend": "QStash"},
        context=DEVELOPMENT,
        steps=("dry-run Job", "Warning BackendUnavailable"),
        field="spec.backend",
        reason=vocabulary.REASON_BACKEND_UNAVAILABLE,
    ),
}


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_a_spec_that_cannot_be_served_is_said_once_and_not_retried(case: Refusal) -> None:
    done = reconcile.plan(body(case.spec), case.context, now=TOP_OF_THE_HOUR)
    assert rendered(done) == case.steps
    assert isinstance(done.error, InvalidSpecError)
    assert (done.error.field, done.error.reason) == (case.field, case.reason)
    assert condition(done.status, "Ready") == ("False", case.reason)
    assert done.result == case.reason
    assert done.requeue_after is None
    assert "backend" not in done.status


# -- after a step failed -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Failure:
    step: type[Step]
    error: QStashOperatorError
    steps: tuple[str, ...]
    """What runs instead (after the steps before the failed one)."""
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    before: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    context: Context = PRODUCTION
    spec_error: tuple[str, str] | None = None
    """(field, reason) of the InvalidSpecError surfaced; None: no spec error."""
    transient: tuple[str, float] | None = None
    """(reason, retry after) of the transient failure surfaced."""
    status: Mapping[str, Any] = dataclasses.field(default_factory=dict)


FAILURES = {
    "the API server refuses the Job template: SpecValid=False on the template": Failure(
        step=CheckJobTemplate,
        error=ApiRejectedError("POST jobs: 422", detail="spec.template.spec.containers[0].name"),
        steps=("Warning InvalidJobTemplate",),
        spec_error=("spec.jobTemplate", vocabulary.REASON_INVALID_JOB_TEMPLATE),
    ),
    "the namespace is being deleted under the dry run: retry": Failure(
        step=CheckJobTemplate,
        error=NotFoundError("namespaces t not found"),
        steps=("Warning KubernetesUnavailable",),
        transient=(vocabulary.REASON_KUBERNETES_UNAVAILABLE, 10.0),
    ),
    "QStash rejects a header: the field behind it": Failure(
        step=UpsertSchedule,
        error=QStashRejectedError("invalid Upstash-Retry-Delay: unknown variable", status=400),
        spec={"qstash": {"retryDelay": "nonsense"}},
        steps=("Warning QStashRejected",),
        spec_error=("spec.qstash.retryDelay", vocabulary.REASON_QSTASH_REJECTED),
    ),
    "QStash rejects the cron: spec.schedule": Failure(
        step=UpsertSchedule,
        error=QStashRejectedError("Invalid cron expression empty spec string", status=400),
        steps=("Warning QStashRejected",),
        spec_error=("spec.schedule", vocabulary.REASON_QSTASH_REJECTED),
    ),
    "QStash rejects without naming a header: the spec": Failure(
        step=UpsertSchedule,
        error=QStashRejectedError("body too large", status=413),
        steps=("Warning QStashRejected",),
        spec_error=("spec", vocabulary.REASON_QSTASH_REJECTED),
    ),
    "QStash refuses the destination of an Auto CronWorkflow: this one falls back": Failure(
        step=UpsertSchedule,
        error=QStashRejectedError(REFUSED, status=400),
        steps=("create CronJob report", "Normal CronJobCreated", "Normal FallbackToCronJob"),
        status={"backend": "CronJob", "cronJobName": "report", "scheduleId": None},
    ),
    "QStash refuses the destination of an Auto CronWorkflow on QStash: a switch": Failure(
        step=UpsertSchedule,
        error=QStashRejectedError(REFUSED, status=400),
        spec={"schedule": "*/5 * * * *"},
        before=ON_QSTASH,
        steps=("create CronJob report", "Normal CronJobCreated", "Normal BackendChanged"),
        status={"backend": "CronJob", "handover": {"from": "QStash"}},
    ),
    "QStash refuses the destination of spec.backend QStash: no fallback asked for": Failure(
        step=UpsertSchedule,
        error=QStashRejectedError(REFUSED, status=400),
        spec={"backend": "QStash"},
        steps=("Warning QStashRejected",),
        spec_error=("spec", vocabulary.REASON_QSTASH_REJECTED),
    ),
    "QStash refuses the destination where the cluster's default is QStash: unavailable": Failure(
        step=UpsertSchedule,
        error=QStashRejectedError(REFUSED, status=400),
        context=DEFAULT_QSTASH,
        steps=("Warning BackendUnavailable",),
        spec_error=("spec.backend", vocabulary.REASON_BACKEND_UNAVAILABLE),
    ),
    "QStash refuses the token: a slow retry and what to check": Failure(
        step=UpsertSchedule,
        error=QStashAuthError("upsert: QStash refused the token (HTTP 401)"),
        steps=("Warning QStashAuthFailed",),
        transient=(vocabulary.REASON_QSTASH_AUTH_FAILED, 300.0),
    ),
    "QStash is down: retry from its hint": Failure(
        step=UpsertSchedule,
        error=QStashUnavailableError("upsert: QStash HTTP 503"),
        steps=("Warning QStashUnavailable",),
        transient=(vocabulary.REASON_QSTASH_UNAVAILABLE, 2.0),
    ),
    "QStash rate-limits the pause: retry at the reset": Failure(
        step=PauseSchedule,
        error=QStashRateLimitedError("resume: rate limit", retry_after=7.0),
        steps=("Warning QStashRateLimited",),
        transient=(vocabulary.REASON_QSTASH_RATE_LIMITED, 7.0),
    ),
    "the schedule vanished between upsert and pause: retried like an outage": Failure(
        step=PauseSchedule,
        error=NotFoundError("resume: schedule not found"),
        steps=("Warning QStashUnavailable",),
        transient=(vocabulary.REASON_QSTASH_UNAVAILABLE, 2.0),
    ),
    "RBAC forbids the CronJob: a slow retry naming the chart": Failure(
        step=CreateCronJob,
        error=ForbiddenError("POST cronjobs: HTTP 403"),
        context=DEVELOPMENT,
        steps=("Warning Forbidden",),
        transient=(vocabulary.REASON_FORBIDDEN, 300.0),
    ),
    "the API server is down: retry": Failure(
        step=CheckJobTemplate,
        error=KubernetesUnavailableError("POST jobs: ConnectionRefused"),
        steps=("Warning KubernetesUnavailable",),
        transient=(vocabulary.REASON_KUBERNETES_UNAVAILABLE, 10.0),
    ),
    "the CronJob to create exists (an interrupted cycle made it): replace it": Failure(
        step=CreateCronJob,
        error=AlreadyExistsError("POST cronjobs: HTTP 409 AlreadyExists"),
        context=DEVELOPMENT,
        steps=("replace CronJob report", "Normal CronJobUpdated", "Normal FallbackToCronJob"),
        status={"backend": "CronJob"},
    ),
    "the CronJob to replace is gone (deleted by hand): create it": Failure(
        step=ReplaceCronJob,
        error=NotFoundError("GET cronjobs/report: HTTP 404"),
        spec={"backend": "CronJob", "schedule": "*/5 * * * *"},
        before=ON_CRONJOB,
        steps=("create CronJob report", "Normal CronJobCreated"),
    ),
    "the CronJob of our name is someone else's: rename": Failure(
        step=ReplaceCronJob,
        error=NotOwnedError("CronJob team-a/report has another owner"),
        spec={"backend": "CronJob", "schedule": "*/5 * * * *"},
        before=ON_CRONJOB,
        steps=("Warning InvalidSpec",),
        spec_error=("metadata.name", vocabulary.REASON_INVALID_SPEC),
    ),
    "the API server refuses the CronJob: the spec": Failure(
        step=CreateCronJob,
        error=ApiRejectedError("POST cronjobs: 422", detail="spec.jobTemplate: Invalid value"),
        spec={"backend": "CronJob"},
        steps=("Warning InvalidSpec",),
        spec_error=("spec", vocabulary.REASON_INVALID_SPEC),
    ),
    "a retire fails: retry, the switch is not recorded yet": Failure(
        step=DeleteSchedule,
        error=QStashUnavailableError("delete: QStash unreachable"),
        spec={"backend": "CronJob", "suspend": True},
        before=ON_QSTASH_SUSPENDED,
        steps=("Warning QStashUnavailable",),
        transient=(vocabulary.REASON_QSTASH_UNAVAILABLE, 2.0),
    ),
}


@pytest.mark.parametrize("case", FAILURES.values(), ids=FAILURES.keys())
def test_after_a_failed_step(case: Failure) -> None:
    first = reconcile.plan(
        body(case.spec, status=dict(case.before)), case.context, now=JUST_AFTER_THE_HOUR
    )
    done = fail(first, case.step, case.error, now=JUST_AFTER_THE_HOUR)
    assert rendered(done) == case.steps
    if case.spec_error is not None:
        assert isinstance(done.error, InvalidSpecError)
        assert (done.error.field, done.error.reason) == case.spec_error
        assert condition(done.status, "Ready") == ("False", case.spec_error[1])
        assert done.result == case.spec_error[1]
    elif case.transient is not None:
        assert isinstance(done.error, TransientError)
        assert (done.result, done.requeue_after) == case.transient
        assert condition(done.status, "ScheduleSynced") == ("False", case.transient[0])
        assert condition(done.status, "Ready") == ("False", case.transient[0])
        assert "backend" not in done.status, "nothing recorded until it went through"
    else:
        assert done.error is None
        assert condition(done.status, "Ready") == ("True", vocabulary.REASON_READY)
    for key, value in case.status.items():
        if isinstance(value, dict):
            assert {k: done.status[key][k] for k in value} == value, key
        else:
            assert done.status[key] == value, key


def test_a_refused_token_says_what_to_check_and_when_it_retries() -> None:
    first = reconcile.plan(body(), PRODUCTION, now=TOP_OF_THE_HOUR)
    done = fail(first, UpsertSchedule, QStashAuthError("upsert: HTTP 401"), now=TOP_OF_THE_HOUR)
    [warning] = events(done)
    assert "Check QSTASH_TOKEN in the operator's Secret" in warning.message
    assert warning.message.endswith("Retrying in 300s.")


def test_a_refused_destination_is_recorded_on_the_object_with_qstashs_words() -> None:
    first = reconcile.plan(body(), PRODUCTION, now=TOP_OF_THE_HOUR)
    done = fail(
        first, UpsertSchedule, QStashRejectedError(REFUSED, status=400), now=TOP_OF_THE_HOUR
    )
    assert condition(done.status, "DestinationAccepted") == ("False", "DestinationRefused")
    [fallback] = [e for e in events(done) if e.reason == vocabulary.REASON_FALLBACK_TO_CRONJOB]
    assert REFUSED in fallback.message
    assert "development mode" not in fallback.message


def test_a_later_success_flips_a_refused_cronworkflow_back_to_qstash() -> None:
    first = reconcile.plan(body(), PRODUCTION, now=JUST_BEFORE_THE_HOUR)
    refused = merge(
        {},
        fail(
            first,
            UpsertSchedule,
            QStashRejectedError(REFUSED, status=400),
            now=JUST_BEFORE_THE_HOUR,
        ).status,
    )
    # The next reconcile (an edit, a restart) asks QStash again; nothing process-wide remembers.
    again = reconcile.plan(body(status=refused, generation=2), PRODUCTION, now=JUST_AFTER_THE_HOUR)
    assert rendered(again)[:3] == ("dry-run Job", *UPSERT[:2])
    assert again.status["backend"] == "QStash"
    assert again.status["handover"]["from"] == "CronJob"
    assert condition(again.status, "DestinationAccepted") == ("True", "DestinationAccepted")
    # Another CronWorkflow never heard of the refusal.
    other = reconcile.plan(body(name="other"), PRODUCTION, now=JUST_AFTER_THE_HOUR)
    assert other.status["backend"] == "QStash"
    assert condition(other.status, "DestinationAccepted") is None


class QuotaExceededError(TransientError):
    """A transient error that names itself, as the API adapter's classified 403s do."""

    reason = "QuotaExceeded"


def test_a_transient_error_that_names_itself_gives_its_word_to_the_condition() -> None:
    first = reconcile.plan(body(), DEVELOPMENT, now=TOP_OF_THE_HOUR)
    done = fail(
        first, CreateCronJob, QuotaExceededError("exceeded quota: jobs"), now=TOP_OF_THE_HOUR
    )
    assert condition(done.status, "Ready") == ("False", "QuotaExceeded")
    assert rendered(done) == ("Warning QuotaExceeded",)


def test_a_second_surprise_about_the_cronjob_is_a_race_retried() -> None:
    first = reconcile.plan(body(), DEVELOPMENT, now=TOP_OF_THE_HOUR)
    exists = fail(first, CreateCronJob, AlreadyExistsError("409"), now=TOP_OF_THE_HOUR)
    gone_again = fail(exists, ReplaceCronJob, NotFoundError("404"), now=TOP_OF_THE_HOUR)
    assert rendered(gone_again) == ("Warning KubernetesUnavailable",)
    assert isinstance(gone_again.error, TransientError)


ERRORS: Final[tuple[QStashOperatorError, ...]] = (
    QStashRejectedError(REFUSED, status=400),
    QStashRejectedError("invalid Upstash-Retries", status=400),
    QStashUnavailableError("down"),
    AlreadyExistsError("409"),
    NotFoundError("404"),
    NotOwnedError("theirs"),
    ApiRejectedError("422", detail="no"),
    ForbiddenError("403"),
)


@pytest.mark.parametrize("context", [PRODUCTION, DEVELOPMENT, DEFAULT_QSTASH], ids=str)
@pytest.mark.parametrize("error", ERRORS, ids=repr)
@pytest.mark.parametrize(
    "before",
    [{}, ON_QSTASH, ON_CRONJOB, LEAVING_QSTASH],
    ids=["new", "qstash", "cronjob", "leaving"],
)
def test_a_world_that_fails_every_call_ends_within_the_bound(
    context: Context, error: QStashOperatorError, before: Mapping[str, Any]
) -> None:
    """Every call the service would make fails the same way: a cycle still ends, in a plan with
    nothing left to fail, after at most MAX_PLANS_PER_CYCLE plans."""
    current = reconcile.plan(
        body({"schedule": "*/5 * * * *"}, status=dict(before)), context, now=TOP_OF_THE_HOUR
    )
    plans = 1
    while (
        index := next(
            (i for i, s in enumerate(current.steps) if not isinstance(s, PostEvent)), None
        )
    ) is not None:
        current = reconcile.after_failure(current, index, error, now=TOP_OF_THE_HOUR)
        plans += 1
        assert plans <= reconcile.MAX_PLANS_PER_CYCLE
    assert current.error is not None, "nothing went through, so something must be said"


# -- refresh -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Look:
    before: Mapping[str, Any]
    now: Any
    steps: tuple[str, ...] = ()
    status: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    requeue: float | None = None
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    context: Context = PRODUCTION


LEAVING_CRONJOB = applied(now=JUST_AFTER_THE_HOUR, status=ON_CRONJOB)

LOOKS = {
    "nothing to do: no call, no write": Look(before=ON_QSTASH, now=JUST_BEFORE_THE_HOUR),
    "the next run just passed: left to the tick's record, no write in the minute's burst": Look(
        before=ON_QSTASH, now=JUST_AFTER_THE_HOUR
    ),
    "the next run passed 29 s ago, still unrecorded: still left to the record": Look(
        before=ON_QSTASH, now=TOP_OF_THE_HOUR + timedelta(seconds=29)
    ),
    "the next run passed 30 s ago and nobody recorded it: write it": Look(
        before=ON_QSTASH,
        now=TOP_OF_THE_HOUR + timedelta(seconds=30),
        status={"nextScheduleTime": "2026-06-01T11:00:00Z"},
    ),
    "the tick was recorded but the next run was not moved: write it at once": Look(
        before={**ON_QSTASH, "lastScheduleTime": "2026-06-01T10:00:00Z"},
        now=JUST_AFTER_THE_HOUR,
        status={"nextScheduleTime": "2026-06-01T11:00:00Z"},
    ),
    "an early delivery ran the coming tick: the next run is the one after it": Look(
        before={**ON_QSTASH, "lastScheduleTime": "2026-06-01T10:00:00Z"},
        now=TOP_OF_THE_HOUR - timedelta(seconds=10),
        status={"nextScheduleTime": "2026-06-01T11:00:00Z"},
    ),
    "suspended: no next run": Look(
        before={**ON_QSTASH_SUSPENDED, "nextScheduleTime": "2026-06-01T10:00:00Z"},
        spec={"suspend": True},
        now=JUST_AFTER_THE_HOUR,
        status={"nextScheduleTime": None},
    ),
    "a handover not due: look again when it is, no call": Look(
        before=LEAVING_QSTASH, spec={"backend": "CronJob"}, now=HALF_PAST, requeue=1830.0
    ),
    "a handover from QStash due: delete the schedule": Look(
        before=LEAVING_QSTASH,
        spec={"backend": "CronJob"},
        now=ELEVEN + timedelta(minutes=1),
        steps=(f"delete schedule {SID}", "Normal HandoverComplete"),
        status={"handover": None, "nextScheduleTime": "2026-06-01T12:00:00Z"},
    ),
    "a handover from the CronJob due: keep its Jobs, delete it": Look(
        before=LEAVING_CRONJOB,
        now=ELEVEN + timedelta(minutes=1),
        steps=(
            "adopt Jobs",
            "delete CronJob report orphaning its Jobs",
            "adopt Jobs",
            "Normal HandoverComplete",
            "sweep marker CronJobs",
        ),
        status={"handover": None, "nextScheduleTime": "2026-06-01T12:00:00Z"},
    ),
    "a handover from QStash due without a token: say what is left behind": Look(
        before=LEAVING_QSTASH,
        spec={"backend": "CronJob"},
        context=dataclasses.replace(PRODUCTION, has_qstash_token=False),
        now=WEEK_AFTER_THE_HOUR,
        steps=("Warning QStashScheduleLeftBehind",),
        status={"handover": None, "nextScheduleTime": "2026-06-08T11:00:00Z"},
    ),
    "an invalid spec: reconcile reported it, nothing to look at": Look(
        before=ON_QSTASH, spec={"timeZone": "Mars/Olympus_Mons"}, now=JUST_AFTER_THE_HOUR
    ),
}


@pytest.mark.parametrize("case", LOOKS.values(), ids=LOOKS.keys())
def test_refresh(case: Look) -> None:
    done = reconcile.plan_refresh(
        body(case.spec, status=dict(case.before)), case.context, now=case.now
    )
    assert rendered(done) == case.steps
    assert done.status == case.status
    assert done.requeue_after == case.requeue
    assert done.error is None


def test_a_failed_retire_is_retried_and_writes_nothing() -> None:
    due = reconcile.plan_refresh(
        body({"backend": "CronJob"}, status=LEAVING_QSTASH), PRODUCTION, now=WEEK_AFTER_THE_HOUR
    )
    done = fail(due, DeleteSchedule, QStashUnavailableError("down"), now=WEEK_AFTER_THE_HOUR)
    assert (done.steps, done.status, done.requeue_after) == ((), {}, 2.0)
    assert isinstance(done.error, QStashUnavailableError)


# -- finalize ------------------------------------------------------------------------------------

DELETED_AT: Final = "2026-06-01T10:00:00Z"  # TOP_OF_THE_HOUR: the deletion timestamp below


def deleting(status: Mapping[str, Any]) -> JsonDict:
    doomed = body(status=dict(status))
    doomed["metadata"]["deletionTimestamp"] = DELETED_AT
    return doomed


@dataclasses.dataclass(frozen=True)
class Deletion:
    before: Mapping[str, Any]
    steps: tuple[str, ...]
    context: Context = PRODUCTION


DELETIONS = {
    "never used QStash: QStash is not asked": Deletion(
        before=ON_CRONJOB, steps=("delete CronJob report",)
    ),
    "never used QStash, in development mode": Deletion(
        before=IN_DEVELOPMENT, context=DEVELOPMENT, steps=("delete CronJob report",)
    ),
    "on QStash: both": Deletion(
        before=ON_QSTASH, steps=("delete CronJob report", f"delete schedule {SID}")
    ),
    "leaving QStash: both": Deletion(
        before=LEAVING_QSTASH, steps=("delete CronJob report", f"delete schedule {SID}")
    ),
    "never reconciled: it may have upserted before failing, so both": Deletion(
        before={}, steps=("delete CronJob report", f"delete schedule {SID}")
    ),
    "on QStash without a token: say what is left behind": Deletion(
        before=ON_QSTASH,
        context=dataclasses.replace(PRODUCTION, has_qstash_token=False),
        steps=("delete CronJob report", "Warning QStashScheduleLeftBehind"),
    ),
}


@pytest.mark.parametrize("case", DELETIONS.values(), ids=DELETIONS.keys())
def test_finalize(case: Deletion) -> None:
    done = reconcile.plan_finalize(deleting(case.before), case.context, now=JUST_AFTER_THE_HOUR)
    assert rendered(done) == case.steps
    assert done.error is None
    assert done.status == {}


@dataclasses.dataclass(frozen=True)
class Stuck:
    error: QStashOperatorError
    after: timedelta
    """How long after the deletion timestamp the delete fails."""
    retry_in: float | None
    """Seconds until kopf retries (None: given up, the finalizer goes)."""


FIVE_MINUTES = timedelta(minutes=5)
STUCK = {
    "QStash down at once: retry from its hint": Stuck(
        QStashUnavailableError("down"), timedelta(0), 2.0
    ),
    "QStash down for a while: wait as long as we waited": Stuck(
        QStashUnavailableError("down"), timedelta(seconds=100), 100.0
    ),
    "QStash down near the bound: the last retry lands on it": Stuck(
        QStashUnavailableError("down"), timedelta(seconds=290), 10.0
    ),
    "token revoked: its slow retry, but not past the bound": Stuck(
        QStashAuthError("401"), timedelta(seconds=10), 290.0
    ),
    "a moment before the bound: still at least a second": Stuck(
        QStashUnavailableError("down"), FIVE_MINUTES - timedelta(milliseconds=10), 1.0
    ),
    "at the bound: give up": Stuck(QStashUnavailableError("down"), FIVE_MINUTES, None),
    "long after the bound (the operator was down): give up at the first failure": Stuck(
        QStashAuthError("401"), timedelta(hours=3), None
    ),
    "a refusal retrying cannot fix: give up at once": Stuck(
        QStashRejectedError("bad request", status=400), timedelta(0), None
    ),
}


@pytest.mark.parametrize("case", STUCK.values(), ids=STUCK.keys())
def test_a_schedule_that_will_not_go_is_retried_until_the_bound_then_left_behind(
    case: Stuck,
) -> None:
    now = TOP_OF_THE_HOUR + case.after
    first = reconcile.plan_finalize(deleting(ON_QSTASH), PRODUCTION, now=now)
    done = fail(first, DeleteSchedule, case.error, now=now)
    if case.retry_in is not None:
        assert isinstance(done.error, TransientError)
        assert done.error.retry_after == pytest.approx(case.retry_in)
        assert done.steps == ()
        assert "2026-06-01T10:05:00Z" in str(done.error)
    else:
        assert done.error is None
        [warning] = events(done)
        assert (warning.type, warning.reason) == ("Warning", "QStashScheduleLeftBehind")
        assert SID in warning.message
        assert "489" in warning.message


def test_a_cronjob_that_will_not_go_is_left_to_the_collector_and_qstash_still_asked() -> None:
    now = TOP_OF_THE_HOUR + timedelta(hours=1)
    first = reconcile.plan_finalize(deleting(ON_QSTASH), PRODUCTION, now=now)
    done = fail(first, DeleteCronJob, ForbiddenError("403"), now=now)
    assert rendered(done) == ("Warning Forbidden", f"delete schedule {SID}")
    assert "garbage collector" in events(done)[0].message
    both = fail(done, DeleteSchedule, QStashUnavailableError("down"), now=now)
    assert rendered(both) == ("Warning QStashScheduleLeftBehind",)


def test_the_bound_is_the_setting() -> None:
    quick = dataclasses.replace(PRODUCTION, finalizer_timeout=timedelta(seconds=6))
    now = TOP_OF_THE_HOUR + timedelta(seconds=6)
    first = reconcile.plan_finalize(deleting(ON_QSTASH), quick, now=now)
    done = fail(first, DeleteSchedule, QStashUnavailableError("down"), now=now)
    assert done.error is None
    assert "6s" in events(done)[0].message


# -- the hook for notices (issue 12) -------------------------------------------------------------


def test_a_notice_reaches_reconcile_and_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    told = Event("Normal", "DaylightSavingSkip", "02:30 does not exist in Europe/Berlin")

    def notice(*_: Any, **__: Any) -> Contribution:
        return Contribution(
            steps=(PostEvent(told),), status={"daylightSaving": {"date": "2027-03-28"}}
        )

    monkeypatch.setattr(reconcile, "_notices", notice)
    planned = reconcile.plan(body(), PRODUCTION, now=TOP_OF_THE_HOUR)
    looked = reconcile.plan_refresh(body(status=ON_QSTASH), PRODUCTION, now=JUST_BEFORE_THE_HOUR)
    for done in (planned, looked):
        assert told in events(done)
        assert done.status["daylightSaving"] == {"date": "2027-03-28"}


def test_suspending_and_resuming_record_the_interval_the_ledger_skips() -> None:
    suspended = applied({"suspend": True}, now=TOP_OF_THE_HOUR, status=ON_QSTASH)
    assert suspended["suspensions"] == [{"since": "2026-06-01T10:00:00Z"}]
    resumed = applied({}, now=HALF_PAST, status=suspended)
    assert resumed["suspensions"] == [
        {"since": "2026-06-01T10:00:00Z", "until": "2026-06-01T10:30:00Z"}
    ]
    assert (
        applied({}, now=WEEK_AFTER_THE_HOUR, status=resumed)["suspensions"]
        == (resumed["suspensions"])
    )
