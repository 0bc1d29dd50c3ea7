"""Run decisions, a table in the CronJob controller's style: spec, status, environment, expect."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from qstash_operator.domain import idempotency, naming, runs
from qstash_operator.domain.errors import (
    RUN_IN_FLIGHT_RETRY_SECONDS,
    IdempotencyConflictError,
    RunInFlightError,
)
from qstash_operator.domain.runs import JobView, Outcome
from tests.unit.domain.factories import cronworkflow, job
from tests.unit.instants import (
    HALF_PAST,
    JUST_AFTER_THE_HOUR,
    JUST_BEFORE_THE_HOUR,
    TOP_OF_THE_HOUR,
)

TICK_JOB = naming.job_name("report", TOP_OF_THE_HOUR)
PREVIOUS_TICK_JOB = naming.job_name("report", TOP_OF_THE_HOUR - timedelta(hours=1))


@dataclasses.dataclass(frozen=True)
class Case:
    # cw spec
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    # cw status and live Jobs
    last_schedule_time: datetime | None = None
    schedule_since: datetime | None = None
    jobs: tuple[JobView, ...] = ()
    runs_made: int = 0  # status.scheduledRuns
    # environment
    delivered_at: datetime = JUST_AFTER_THE_HOUR
    message_id: str | None = "msg_1"
    first_attempt: bool = True  # Upstash-Retried: 0
    # expectations
    outcome: Outcome = Outcome.RUN
    job_name: str | None = TICK_JOB
    delete_first: tuple[str, ...] = ()


CASES = {
    "never ran, is time, runs": Case(),
    "never ran, five minutes late, runs": Case(delivered_at=TOP_OF_THE_HOUR + timedelta(minutes=5)),
    "QStash early within tolerance, runs the coming tick": Case(
        delivered_at=TOP_OF_THE_HOUR - timedelta(seconds=10)
    ),
    "a retry ten seconds before a tick belongs to the previous one": Case(
        delivered_at=TOP_OF_THE_HOUR - timedelta(seconds=10),
        first_attempt=False,
        job_name=PREVIOUS_TICK_JOB,
    ),
    "every minute, a retry 31 s late is still its own tick (issue 10.2)": Case(
        spec={"schedule": "* * * * *"},
        delivered_at=TOP_OF_THE_HOUR + timedelta(seconds=31),
        first_attempt=False,
    ),
    "every minute, a first attempt 31 s late is still its own tick (issue 10.2)": Case(
        spec={"schedule": "* * * * *"},
        delivered_at=TOP_OF_THE_HOUR + timedelta(seconds=31),
    ),
    "same message again, duplicate": Case(
        jobs=(job(TICK_JOB, active=True, message_id="msg_1"),),
        outcome=Outcome.DUPLICATE_MESSAGE,
    ),
    "same message after the next tick, still the first Job": Case(
        jobs=(job(PREVIOUS_TICK_JOB, succeeded=True, message_id="msg_1"),),
        outcome=Outcome.DUPLICATE_MESSAGE,
        job_name=PREVIOUS_TICK_JOB,
    ),
    "other message for a tick that has its Job, duplicate": Case(
        jobs=(job(TICK_JOB, active=True, message_id="msg_0"),),
        outcome=Outcome.DUPLICATE_TICK,
    ),
    "tick already recorded but its Job pruned, duplicate": Case(
        last_schedule_time=TOP_OF_THE_HOUR,
        outcome=Outcome.DUPLICATE_TICK,
    ),
    "previous tick recorded, this one runs": Case(
        last_schedule_time=TOP_OF_THE_HOUR - timedelta(hours=1)
    ),
    "tick before the schedule took effect, skipped": Case(
        schedule_since=TOP_OF_THE_HOUR + timedelta(seconds=1),
        outcome=Outcome.SKIPPED_RETROACTIVE,
        job_name=None,
    ),
    "schedule took effect before the tick, runs": Case(schedule_since=JUST_BEFORE_THE_HOUR),
    "suspended, skipped": Case(
        spec={"suspend": True}, outcome=Outcome.SKIPPED_SUSPENDED, job_name=None
    ),
    "within the starting deadline, runs": Case(
        spec={"startingDeadlineSeconds": 120}, delivered_at=TOP_OF_THE_HOUR + timedelta(seconds=119)
    ),
    "past the starting deadline, skipped": Case(
        spec={"startingDeadlineSeconds": 120},
        delivered_at=TOP_OF_THE_HOUR + timedelta(seconds=121),
        outcome=Outcome.SKIPPED_DEADLINE,
        job_name=None,
    ),
    "Allow with an active Job, runs beside it": Case(jobs=(job(PREVIOUS_TICK_JOB, active=True),)),
    "Forbid with an active Job, skipped": Case(
        spec={"concurrencyPolicy": "Forbid"},
        jobs=(job(PREVIOUS_TICK_JOB, active=True),),
        outcome=Outcome.SKIPPED_FORBID,
        job_name=None,
    ),
    "Forbid with only finished Jobs, runs": Case(
        spec={"concurrencyPolicy": "Forbid"},
        jobs=(job(PREVIOUS_TICK_JOB, succeeded=True), job("report-manual-aaaaa", failed=True)),
    ),
    "Replace with active Jobs, deletes them first": Case(
        spec={"concurrencyPolicy": "Replace"},
        jobs=(job(PREVIOUS_TICK_JOB, active=True), job("report-manual-aaaaa", active=True)),
        delete_first=(PREVIOUS_TICK_JOB, "report-manual-aaaaa"),
    ),
    "no message id (a manual curl), still one per tick": Case(message_id=None),
    "half past an hourly tick, still the top of the hour": Case(delivered_at=HALF_PAST),
    "window opens at the tick, runs": Case(spec={"activeFrom": "2026-06-01T10:00:00Z"}),
    "window opens a second after the tick, skipped as not yet active": Case(
        spec={"activeFrom": "2026-06-01T10:00:01Z"},
        outcome=Outcome.SKIPPED_INACTIVE,
        job_name=None,
    ),
    "window ends a second after the tick, runs": Case(spec={"activeUntil": "2026-06-01T10:00:01Z"}),
    "window ends at the tick, skipped as completed": Case(
        spec={"activeUntil": "2026-06-01T10:00:00Z"},
        outcome=Outcome.SKIPPED_COMPLETED,
        job_name=None,
    ),
    "a retry after the window ended, for a tick inside it, runs": Case(
        spec={"activeUntil": "2026-06-01T10:00:01Z"},
        delivered_at=HALF_PAST,
        first_attempt=False,
    ),
    "maxRuns 2 with one run made, runs": Case(spec={"maxRuns": 2}, runs_made=1),
    "maxRuns 2 with two runs made, skipped as completed": Case(
        spec={"maxRuns": 2}, runs_made=2, outcome=Outcome.SKIPPED_COMPLETED, job_name=None
    ),
    "maxRuns reached but the tick's Job exists: a duplicate, not a refusal": Case(
        spec={"maxRuns": 1},
        runs_made=1,
        jobs=(job(TICK_JOB, succeeded=True, message_id="msg_0"),),
        outcome=Outcome.DUPLICATE_TICK,
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_plan_tick(case: Case) -> None:
    cw = cronworkflow(case.spec)
    plan = runs.plan_tick(
        cw,
        jobs=case.jobs,
        last_schedule_time=case.last_schedule_time,
        schedule_since=case.schedule_since,
        delivered_at=case.delivered_at,
        message_id=case.message_id,
        tolerance=timedelta(seconds=30),
        first_attempt=case.first_attempt,
        runs_made=case.runs_made,
    )
    assert plan.outcome is case.outcome, plan.message
    if case.outcome in (Outcome.RUN, Outcome.DUPLICATE_TICK, Outcome.DUPLICATE_MESSAGE):
        assert plan.job_name == case.job_name
    assert plan.delete_first == case.delete_first
    assert plan.message or case.outcome is Outcome.RUN


def test_a_manual_run_ignores_suspend_but_honours_forbid() -> None:
    suspended = cronworkflow({"suspend": True})
    assert runs.plan_manual(suspended, jobs=(), seed="s").outcome is Outcome.RUN
    forbid = cronworkflow({"concurrencyPolicy": "Forbid"})
    blocked = runs.plan_manual(forbid, jobs=(job(TICK_JOB, active=True),), seed="s")
    assert blocked.outcome is Outcome.SKIPPED_FORBID


def test_the_same_manual_request_twice_is_one_job() -> None:
    cw = cronworkflow()
    first = runs.plan_manual(cw, jobs=(), seed="uid/1")
    assert first.job_name is not None
    again = runs.plan_manual(cw, jobs=(job(first.job_name, active=True),), seed="uid/1")
    assert again.outcome is Outcome.DUPLICATE_MESSAGE


KEY = "nightly-rerun-7f3a"
ALICE_SEED = idempotency.seed("alice", KEY)
ALICE_JOB = naming.manual_job_name("report", ALICE_SEED)


def keyed(fingerprint: str, **state: Any) -> JobView:
    return job(ALICE_JOB, trigger="manual", idempotency_key=KEY, fingerprint=fingerprint, **state)


@pytest.mark.parametrize(
    ("jobs", "seed", "fingerprint", "expected"),
    [
        pytest.param((), ALICE_SEED, "f1", Outcome.RUN, id="first request with a key runs"),
        pytest.param(
            (keyed("f1", active=True),),
            ALICE_SEED,
            "f1",
            Outcome.DUPLICATE_MESSAGE,
            id="its retry is answered with the Job",
        ),
        pytest.param(
            (keyed("f1", succeeded=True, finished_at=HALF_PAST),),
            ALICE_SEED,
            "f1",
            Outcome.DUPLICATE_MESSAGE,
            id="its retry after the Job finished, still the Job",
        ),
        pytest.param(
            (keyed("f1", active=True),),
            idempotency.seed("bob", KEY),
            "f1",
            Outcome.RUN,
            id="another caller's key of the same text is another request",
        ),
        pytest.param(
            (keyed("f1", active=True),),
            ALICE_SEED,
            "f2",
            IdempotencyConflictError,
            id="the key with a different request is a conflict",
        ),
    ],
)
def test_a_manual_run_with_an_idempotency_key(
    jobs: tuple[JobView, ...], seed: str, fingerprint: str, expected: object
) -> None:
    cw = cronworkflow()
    if expected is IdempotencyConflictError:
        with pytest.raises(IdempotencyConflictError) as caught:
            runs.plan_manual(cw, jobs=jobs, seed=seed, key=KEY, fingerprint=fingerprint)
        assert KEY in str(caught.value)
        assert ALICE_JOB in str(caught.value)
        return
    plan = runs.plan_manual(cw, jobs=jobs, seed=seed, key=KEY, fingerprint=fingerprint)
    assert plan.outcome is expected
    assert plan.job_name == naming.manual_job_name("report", seed)


WINDOW_START = TOP_OF_THE_HOUR
WITHIN_THE_WINDOW = WINDOW_START + idempotency.WINDOW - timedelta(seconds=1)
PAST_THE_WINDOW = WINDOW_START + idempotency.WINDOW


@pytest.mark.parametrize(
    ("now", "pruned"),
    [
        pytest.param(WITHIN_THE_WINDOW, ["ok-1"], id="inside the key's window the Job is kept"),
        pytest.param(PAST_THE_WINDOW, [ALICE_JOB, "ok-1"], id="past it, the history limit holds"),
    ],
)
def test_a_keyed_manual_job_outlives_the_history_limit_for_its_window(
    now: datetime, pruned: list[str]
) -> None:
    jobs = [
        keyed("f1", succeeded=True, created_at=WINDOW_START, finished_at=WINDOW_START),
        job("ok-1", succeeded=True, finished_at=WINDOW_START + timedelta(minutes=1)),
        job("ok-2", succeeded=True, finished_at=WINDOW_START + timedelta(minutes=2)),
    ]
    assert runs.history_to_prune(jobs, successful_limit=1, failed_limit=1, now=now) == pruned


def test_job_view_reads_the_api_shape() -> None:
    view = runs.job_view(
        {
            "metadata": {
                "name": "report-1",
                "uid": "u1",
                "creationTimestamp": "2026-06-01T10:00:01Z",
                "labels": {"qstash-operator.dev/trigger": "schedule"},
                "annotations": {"qstash-operator.dev/message-id": "msg_9"},
            },
            "status": {
                "completionTime": "2026-06-01T10:00:30Z",
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True"},
                    {
                        "type": "Complete",
                        "status": "True",
                        "lastTransitionTime": "2026-06-01T10:00:31Z",
                    },
                ],
            },
        }
    )
    assert view == JobView(
        name="report-1",
        uid="u1",
        created_at=TOP_OF_THE_HOUR + timedelta(seconds=1),
        active=False,
        succeeded=True,
        failed=False,
        finished_at=TOP_OF_THE_HOUR + timedelta(seconds=30),
        message_id="msg_9",
        trigger="schedule",
    )
    assert runs.job_view({"metadata": {"name": "x"}}).active is True


def test_history_keeps_the_newest_of_each_kind() -> None:
    def at(minutes: int) -> datetime:
        return TOP_OF_THE_HOUR + timedelta(minutes=minutes)

    jobs = [
        job("ok-1", succeeded=True, finished_at=at(1)),
        job("ok-2", succeeded=True, finished_at=at(2)),
        job("ok-3", succeeded=True, finished_at=at(3)),
        job("bad-1", failed=True, finished_at=at(4)),
        job("bad-2", failed=True, finished_at=at(5)),
        job("running", active=True, created_at=at(0)),
    ]
    assert runs.history_to_prune(jobs, successful_limit=2, failed_limit=1, now=HALF_PAST) == [
        "ok-1",
        "bad-1",
    ]
    assert runs.history_to_prune(jobs, successful_limit=0, failed_limit=0, now=HALF_PAST) == [
        "ok-1",
        "ok-2",
        "ok-3",
        "bad-1",
        "bad-2",
    ]
    assert runs.last_successful_time(jobs) == at(3)
    assert [ref["name"] for ref in runs.active_references(jobs, "ns")] == ["running"]


MANUAL_JOB = "report-manual-aaaaa"


def _tick_just_after_the_hour(
    policy: str, jobs: tuple[JobView, ...], reserved: tuple[str, ...]
) -> runs.RunPlan:
    return runs.plan_tick(
        cronworkflow({"concurrencyPolicy": policy}),
        jobs=jobs,
        last_schedule_time=None,
        schedule_since=None,
        delivered_at=JUST_AFTER_THE_HOUR,
        message_id="msg_2",
        tolerance=timedelta(seconds=30),
        first_attempt=True,
        reserved=reserved,
    )


def test_a_fresh_reservation_counts_as_active_under_forbid() -> None:
    active = [
        {"name": MANUAL_JOB, "uid": runs.reservation_uid(TOP_OF_THE_HOUR)},
        {"name": "report-old", "uid": runs.reservation_uid(TOP_OF_THE_HOUR - timedelta(minutes=5))},
        {"name": "report-live", "uid": "9d0c"},
    ]
    reserved = runs.reserved_names(active, now=JUST_AFTER_THE_HOUR)
    assert reserved == (MANUAL_JOB,)  # a stale reservation and a real uid do not count
    plan = _tick_just_after_the_hour("Forbid", (), reserved)
    assert plan.outcome is Outcome.SKIPPED_FORBID
    # once its Job exists, the Job itself decides (finished: not active)
    done = _tick_just_after_the_hour("Forbid", (job(MANUAL_JOB, succeeded=True),), reserved)
    assert done.outcome is Outcome.RUN


def test_replace_waits_for_a_reserved_run_to_exist_then_replaces_it() -> None:
    reserved = (MANUAL_JOB,)
    # Reserved, not created: there is nothing to delete yet, so going ahead would run both.
    with pytest.raises(RunInFlightError, match=MANUAL_JOB) as caught:
        _tick_just_after_the_hour("Replace", (), reserved)
    assert caught.value.retry_after == RUN_IN_FLIGHT_RETRY_SECONDS
    # Once it exists, the retry replaces it.
    replacing = _tick_just_after_the_hour("Replace", (job(MANUAL_JOB, active=True),), reserved)
    assert replacing.outcome is Outcome.RUN
    assert replacing.delete_first == (MANUAL_JOB,)
    # A reservation of this very run (a retry of the writer that made it) does not wait.
    own = _tick_just_after_the_hour("Replace", (), (TICK_JOB,))
    assert (own.outcome, own.delete_first) == (Outcome.RUN, ())


def test_the_two_deliveries_of_a_repeated_hour_are_two_ticks_and_two_jobs() -> None:
    # 30 2 * * * in Europe/Berlin on 2026-10-25: 02:30 CEST (00:30Z) and 02:30 CET (01:30Z),
    # as the CronJob backend runs it (robfig's walk), so QStash's two deliveries make two Jobs.
    cw = cronworkflow({"schedule": "30 2 * * *", "timeZone": "Europe/Berlin"})
    first_tick = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    second_tick = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)

    def deliver(at: datetime, last: datetime | None, jobs: tuple[JobView, ...]) -> runs.RunPlan:
        return runs.plan_tick(
            cw,
            jobs=jobs,
            last_schedule_time=last,
            schedule_since=None,
            delivered_at=at + timedelta(seconds=2),
            message_id=f"msg_{at.hour}",
            tolerance=timedelta(seconds=30),
            first_attempt=True,
        )

    first = deliver(first_tick, None, ())
    assert (first.outcome, first.tick) == (Outcome.RUN, first_tick)
    assert first.job_name is not None
    second = deliver(second_tick, first_tick, (job(first.job_name, active=True, message_id="m"),))
    assert (second.outcome, second.tick) == (Outcome.RUN, second_tick)
    assert second.job_name != first.job_name
