"""Several schedules per CronWorkflow (``spec.schedules``, issue 14 part 4), as tables.

The timetable's union and winner rule, the entries' parsing and ids, the delivery's tick judged
by its own entry, the Job of a shared tick, and the reconcile's steps per entry. Named instants
throughout (``tests.unit.instants``): TOP_OF_THE_HOUR is Monday 2026-06-01 10:00 UTC.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from typing import Any, Final

import pytest

from qstash_operator.domain import builders, drift, hashspread, model, naming, reconcile, runs
from qstash_operator.domain.errors import InvalidSpecError, PermanentDeliveryError
from qstash_operator.domain.runs import MessageOrigin, Outcome
from tests.unit.domain.factories import UID, body, cronworkflow, job
from tests.unit.domain.test_reconcile import PRODUCTION, merge, rendered
from tests.unit.instants import JUST_AFTER_THE_HOUR, JUST_BEFORE_THE_HOUR, TOP_OF_THE_HOUR

MINUTE: Final = timedelta(minutes=1)
ONE_PAST: Final = TOP_OF_THE_HOUR + MINUTE  # 10:01
JUST_AFTER_ONE_PAST: Final = ONE_PAST + timedelta(seconds=2)
PARAMETERS: Final = [
    {"name": "mode", "type": "enum", "enum": ["quick", "full"], "default": "quick"},
    {"name": "batch", "type": "integer", "default": "10"},
]
HOURLY_AND_ONE_PAST: Final = {
    "schedule": None,
    "parameters": PARAMETERS,
    "schedules": [
        {"name": "hourly", "cron": "0 * * * *", "parameters": {"mode": "quick"}},
        {"name": "late", "cron": "1 * * * *", "parameters": {"mode": "full", "batch": "500"}},
    ],
}
"""Two entries at different minutes: 10:00 is hourly's, 10:01 is late's."""
SHARED_TOP: Final = {
    "schedule": None,
    "parameters": PARAMETERS,
    "schedules": [
        {"name": "hourly", "cron": "0 * * * *", "parameters": {"batch": "1"}},
        {"name": "sixhourly", "cron": "0 */6 * * *", "parameters": {"mode": "full"}},
    ],
}
"""Two entries sharing ticks: every six hours both fire at :00 (12:00 is one of them)."""
NOON: Final = TOP_OF_THE_HOUR + timedelta(hours=2)


def several(spec: dict[str, Any], **kwargs: Any) -> model.CronWorkflow:
    return cronworkflow(spec, **kwargs)


# -- the timetable -------------------------------------------------------------------------------


def test_the_union_lists_each_tick_once_in_time_order() -> None:
    table = several(SHARED_TOP).spec.timetable
    ticks = table.next_ticks(JUST_AFTER_THE_HOUR, 3)
    assert ticks == [TOP_OF_THE_HOUR + timedelta(hours=h) for h in (1, 2, 3)]  # 12:00 once
    assert table.latest_tick(JUST_AFTER_THE_HOUR) == TOP_OF_THE_HOUR
    mixed = several(HOURLY_AND_ONE_PAST).spec.timetable
    assert mixed.next_ticks(JUST_BEFORE_THE_HOUR, 3) == [
        TOP_OF_THE_HOUR,
        ONE_PAST,
        TOP_OF_THE_HOUR + timedelta(hours=1),
    ]
    assert mixed.latest_tick(JUST_AFTER_ONE_PAST) == ONE_PAST
    assert mixed.ticks_between(JUST_BEFORE_THE_HOUR, JUST_AFTER_ONE_PAST) == [
        TOP_OF_THE_HOUR,
        ONE_PAST,
    ]
    assert mixed.shortest_interval == MINUTE  # :00 to :01, though each entry is hourly


WINNERS = {
    "a tick only the first entry has": (HOURLY_AND_ONE_PAST, TOP_OF_THE_HOUR, "hourly"),
    "a tick only the second entry has": (HOURLY_AND_ONE_PAST, ONE_PAST, "late"),
    "a tick both have: the first in list order wins": (SHARED_TOP, NOON, "hourly"),
    "a time no entry fires at": (HOURLY_AND_ONE_PAST, JUST_AFTER_ONE_PAST, None),
}


@pytest.mark.parametrize(("spec", "tick", "winner"), list(WINNERS.values()), ids=list(WINNERS))
def test_the_winning_entry_of_a_tick(
    spec: dict[str, Any], tick: datetime, winner: str | None
) -> None:
    found = several(spec).spec.timetable.entry_for(tick)
    assert (found.name if found else None) == winner


def test_the_winner_gives_its_values_over_the_defaults() -> None:
    cw = several(SHARED_TOP)
    table = cw.spec.timetable
    assert table.values_for(cw.spec.parameters, NOON) == {"mode": "quick", "batch": "1"}
    reversed_order = dict(SHARED_TOP, schedules=list(reversed(SHARED_TOP["schedules"])))
    cw2 = several(reversed_order)
    assert cw2.spec.timetable.values_for(cw2.spec.parameters, NOON) == {
        "mode": "full",
        "batch": "10",
    }


def test_a_single_schedule_is_a_timetable_of_one_unnamed_entry() -> None:
    table = cronworkflow().spec.timetable
    assert not table.multiple
    assert [entry.name for entry in table.entries] == [None]
    assert table.expression == "0 * * * *"
    assert table.applied() == "CRON_TZ=UTC 0 * * * *"


# -- parsing ---------------------------------------------------------------------------------------


REFUSALS = {
    "both schedule and schedules": (
        {"schedules": [{"name": "a", "cron": "0 * * * *"}]},
        "spec.schedules",
    ),
    "neither": ({"schedule": None}, "spec.schedule"),
    "an empty list": ({"schedule": None, "schedules": []}, "spec.schedules"),
    "eleven entries": (
        {
            "schedule": None,
            "schedules": [{"name": f"e{i}", "cron": "0 * * * *"} for i in range(11)],
        },
        "spec.schedules",
    ),
    "a name that is no DNS label": (
        {"schedule": None, "schedules": [{"name": "Nightly", "cron": "0 * * * *"}]},
        "spec.schedules[0].name",
    ),
    "a name with an underscore (it separates the entry in the schedule id)": (
        {"schedule": None, "schedules": [{"name": "a_b", "cron": "0 * * * *"}]},
        "spec.schedules[0].name",
    ),
    "the same name twice": (
        {
            "schedule": None,
            "schedules": [{"name": "a", "cron": "0 * * * *"}, {"name": "a", "cron": "1 * * * *"}],
        },
        "spec.schedules[1].name",
    ),
    "a bad cron names its entry": (
        {"schedule": None, "schedules": [{"name": "a", "cron": "61 * * * *"}]},
        "spec.schedules[0].cron",
    ),
    "H in the day field names its entry": (
        {"schedule": None, "schedules": [{"name": "a", "cron": "0 0 H * *"}]},
        "spec.schedules[0].cron",
    ),
    "a parameter that is not declared": (
        {
            "schedule": None,
            "parameters": PARAMETERS,
            "schedules": [{"name": "a", "cron": "0 * * * *", "parameters": {"size": "1"}}],
        },
        "spec.schedules[0].parameters.size",
    ),
    "a bad integer, checked as a manual override is": (
        {
            "schedule": None,
            "parameters": PARAMETERS,
            "schedules": [{"name": "a", "cron": "0 * * * *", "parameters": {"batch": "ten"}}],
        },
        "spec.schedules[0].parameters.batch",
    ),
}


@pytest.mark.parametrize(("spec", "field"), list(REFUSALS.values()), ids=list(REFUSALS))
def test_refused_entries_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        several(spec)
    assert caught.value.field == field


def test_hash_spread_seeds_each_entry_and_keeps_the_single_schedules_seed() -> None:
    single = cronworkflow({"schedule": "H * * * *"}).spec.timetable.first
    assert single.expression == hashspread.resolve("H * * * *", "team-a/report")
    spec = {
        "schedule": None,
        "schedules": [{"name": "a", "cron": "H * * * *"}, {"name": "b", "cron": "H * * * *"}],
    }
    entries = several(spec).spec.timetable.entries
    assert [entry.schedule.expression for entry in entries] == [
        hashspread.resolve("H * * * *", "team-a/report/a"),
        hashspread.resolve("H * * * *", "team-a/report/b"),
    ]
    assert entries[0].schedule.original == "H * * * *"


# -- ids -------------------------------------------------------------------------------------


IDS = {
    "the single schedule keeps its id": (("prod", "team-a", "report", None), "prod.team-a.report"),
    "an entry": (("prod", "team-a", "report", "nightly"), "prod.team-a.report_nightly"),
    "a dotted name with an entry": (("prod", "team-a", "a.b", "c"), "prod.team-a.a.b_c"),
}


@pytest.mark.parametrize(("parts", "sid"), list(IDS.values()), ids=list(IDS))
def test_schedule_ids_parse_back(parts: tuple[str, str, str, str | None], sid: str) -> None:
    assert naming.schedule_id(*parts) == sid
    assert naming.parse_schedule_id(sid) == naming.ScheduleOwner(*parts)


def test_a_dotted_name_and_an_entry_no_longer_collide() -> None:
    """With dots, CronWorkflow ``a.b`` and entry ``b`` of ``a`` would share one id."""
    assert naming.schedule_id("prod", "ns", "a.b") != naming.schedule_id("prod", "ns", "a", "b")


@pytest.mark.parametrize(
    "sid", ["prod.ns.a_", "prod.ns._b", "prod.ns.a_b_c", "prod.n_s.a", "prod.ns.a_b.c"]
)
def test_ids_this_project_never_makes_do_not_parse(sid: str) -> None:
    assert naming.parse_schedule_id(sid) is None


def test_drift_owns_entry_ids_of_watched_namespaces_only() -> None:
    observed = ["prod.team-a.report_old", "prod.team-a.report_hourly", "prod.team-b.x_y"]
    keep = {"prod.team-a.report_hourly"}
    assert drift.orphans(observed, keep, cluster="prod", namespaces=["team-a"]) == [
        "prod.team-a.report_old"
    ]


def test_entry_cronjob_names_fit_and_stay_apart() -> None:
    long = "n" * 52
    assert len(naming.entry_cronjob_name(long, "e" * 32)) <= 52
    assert naming.entry_cronjob_name("a-b", "c") != naming.entry_cronjob_name("a", "b-c")
    assert naming.entry_cronjob_name("report", "nightly").startswith("report-nightly-")


# -- deliveries ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Delivery:
    entry: str | None
    delivered_at: datetime
    tick: datetime | None
    first_attempt: bool = True
    origin: MessageOrigin | None = None
    outcome: Outcome = Outcome.RUN


DELIVERIES = {
    "late's delivery just after 10:01 is 10:01": Delivery("late", JUST_AFTER_ONE_PAST, ONE_PAST),
    "hourly's first attempt arriving at 10:01:02 is still 10:00, its own latest tick": Delivery(
        "hourly", JUST_AFTER_ONE_PAST, TOP_OF_THE_HOUR
    ),
    "late's first attempt a few seconds early belongs to its coming 10:01": Delivery(
        "late", ONE_PAST - timedelta(seconds=5), ONE_PAST
    ),
    "a retry of late's message made at 10:01 is 10:01, however late": Delivery(
        "late",
        TOP_OF_THE_HOUR + timedelta(minutes=40),
        ONE_PAST,
        first_attempt=False,
        origin=MessageOrigin(created_at=ONE_PAST, schedule_id="prod.team-a.report_late"),
    ),
    "a delivery of an entry no longer in the spec is judged by the union": Delivery(
        "gone", JUST_AFTER_ONE_PAST, ONE_PAST
    ),
}


@pytest.mark.parametrize("case", list(DELIVERIES.values()), ids=list(DELIVERIES))
def test_a_delivery_is_judged_by_its_own_entry(case: Delivery) -> None:
    cw = several(HOURLY_AND_ONE_PAST)
    plan = runs.plan_tick(
        cw,
        jobs=[],
        last_schedule_time=None,
        schedule_since=None,
        delivered_at=case.delivered_at,
        message_id="msg_1",
        tolerance=timedelta(seconds=10),
        first_attempt=case.first_attempt,
        origin=case.origin,
        schedule_ids={"prod.team-a.report_late"},
        entry=case.entry,
    )
    assert (plan.outcome, plan.tick) == (case.outcome, case.tick)
    if case.tick is not None:
        assert plan.job_name == naming.job_name("report", case.tick)


def test_a_retry_made_by_another_entrys_schedule_is_refused() -> None:
    cw = several(HOURLY_AND_ONE_PAST)
    with pytest.raises(PermanentDeliveryError) as caught:
        runs.plan_tick(
            cw,
            jobs=[],
            last_schedule_time=None,
            schedule_since=None,
            delivered_at=JUST_AFTER_ONE_PAST,
            message_id="msg_1",
            tolerance=timedelta(seconds=10),
            first_attempt=False,
            origin=MessageOrigin(created_at=ONE_PAST, schedule_id="prod.team-a.report_hourly"),
            schedule_ids={"prod.team-a.report_late"},
            entry="late",
        )
    assert caught.value.reason == runs.REASON_SCHEDULE_MISMATCH


def test_both_deliveries_of_a_shared_tick_make_the_identical_job() -> None:
    """Whichever entry's delivery comes first, the Job is the winner's: the second create then
    finds the name taken (AlreadyExists: a duplicate), and nothing depends on arrival order."""
    cw = several(SHARED_TOP)
    made = []
    for entry in ("sixhourly", "hourly"):
        plan = runs.plan_tick(
            cw,
            jobs=[],
            last_schedule_time=None,
            schedule_since=None,
            delivered_at=NOON + timedelta(seconds=1),
            message_id=f"msg_{entry}",
            tolerance=timedelta(seconds=10),
            first_attempt=True,
            entry=entry,
        )
        assert plan.outcome is Outcome.RUN
        assert plan.tick == NOON
        job = builders.build_job(
            cw, name=str(plan.job_name), trigger="schedule", backend=None, scheduled_time=plan.tick
        )
        job["metadata"]["annotations"].pop("qstash-operator.dev/message-id", None)
        made.append(job)
    assert made[0] == made[1]
    env = {
        item["name"]: item["value"]
        for item in made[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env == {"PARAM_MODE": "quick", "PARAM_BATCH": "1"}  # hourly's, listed first
    assert made[0]["metadata"]["annotations"]["qstash-operator.dev/schedule-entry"] == "hourly"
    later = runs.plan_tick(
        cw,
        jobs=[],
        last_schedule_time=NOON,
        schedule_since=None,
        delivered_at=NOON + timedelta(seconds=3),
        message_id="msg_other",
        tolerance=timedelta(seconds=10),
        first_attempt=True,
        entry="sixhourly",
    )
    assert later.outcome is Outcome.DUPLICATE_TICK


def test_each_entrys_ticks_get_its_own_parameters() -> None:
    cw = several(HOURLY_AND_ONE_PAST)

    def env_at(tick: datetime) -> dict[str, str]:
        job = builders.build_job(
            cw, name="x", trigger="schedule", backend=None, scheduled_time=tick
        )
        container = job["spec"]["template"]["spec"]["containers"][0]
        return {item["name"]: item["value"] for item in container["env"]}

    assert env_at(TOP_OF_THE_HOUR) == {"PARAM_MODE": "quick", "PARAM_BATCH": "10"}
    assert env_at(ONE_PAST) == {"PARAM_MODE": "full", "PARAM_BATCH": "500"}


def test_the_delivery_body_names_the_entry() -> None:
    every = builders.build_schedules(
        several(HOURLY_AND_ONE_PAST), cluster="prod", public_url="https://cron.example.com"
    )
    assert [item.schedule_id for item in every] == [
        "prod.team-a.report_hourly",
        "prod.team-a.report_late",
    ]
    assert [json.loads(item.body).get("entry") for item in every] == ["hourly", "late"]
    single = builders.build_schedules(
        cronworkflow(), cluster="prod", public_url="https://x.example"
    )
    assert "entry" not in json.loads(single[0].body)


# -- reconcile -----------------------------------------------------------------------------------

HOURLY_ID: Final = "prod.team-a.report_hourly"
LATE_ID: Final = "prod.team-a.report_late"
SINGLE_ID: Final = "prod.team-a.report"


def reconciled(
    spec: dict[str, Any], status: dict[str, Any], now: datetime
) -> reconcile.ReconcilePlan:
    plan = reconcile.plan(body(spec, status=status), PRODUCTION, now=now)
    assert plan.error is None, plan.error
    return plan


def test_one_qstash_schedule_per_entry_and_status_per_entry() -> None:
    plan = reconciled(HOURLY_AND_ONE_PAST, {}, JUST_BEFORE_THE_HOUR)
    assert rendered(plan)[1:] == (
        f"upsert {HOURLY_ID} 'CRON_TZ=UTC 0 * * * *'",
        f"resume {HOURLY_ID}",
        "Normal ScheduleUpserted",
        f"upsert {LATE_ID} 'CRON_TZ=UTC 1 * * * *'",
        f"resume {LATE_ID}",
        "Normal ScheduleUpserted",
    )
    status = plan.status
    assert status["scheduleId"] is None
    assert status["nextScheduleTime"] == "2026-06-01T10:00:00Z"
    assert status["resolvedSchedule"] == "hourly: 0 * * * *; late: 1 * * * *"
    assert status["schedules"] == [
        {
            "name": "hourly",
            "resolvedSchedule": "0 * * * *",
            "scheduleId": HOURLY_ID,
            "nextScheduleTime": "2026-06-01T10:00:00Z",
        },
        {
            "name": "late",
            "resolvedSchedule": "1 * * * *",
            "scheduleId": LATE_ID,
            "nextScheduleTime": "2026-06-01T10:01:00Z",
        },
    ]
    again = reconciled(HOURLY_AND_ONE_PAST, merge({}, status), JUST_AFTER_THE_HOUR)
    assert rendered(again)[1:] == ()  # applied: nothing to call


def test_moving_from_schedule_to_schedules_keeps_the_old_until_the_shared_tick() -> None:
    single = merge({}, reconciled({}, {}, JUST_BEFORE_THE_HOUR).status)
    moved = reconciled(HOURLY_AND_ONE_PAST, single, JUST_AFTER_THE_HOUR)
    assert f"delete schedule {SINGLE_ID}" not in rendered(moved)
    assert f"upsert {HOURLY_ID} 'CRON_TZ=UTC 0 * * * *'" in rendered(moved)
    # QStash may take 60 s to load the new schedules: the first union tick after 10:01:02 is
    # 11:00 (both old and new have it), plus the settling margin.
    assert moved.status["retiring"] == {
        "scheduleIds": [SINGLE_ID],
        "removeAfter": "2026-06-01T11:00:30Z",
    }
    assert moved.requeue_after == pytest.approx(3628.0)
    status = merge(single, moved.status)
    early = reconcile.plan_refresh(
        body(HOURLY_AND_ONE_PAST, status=status), PRODUCTION, now=ONE_PAST
    )
    assert rendered(early) == ()
    due = reconcile.plan_refresh(
        body(HOURLY_AND_ONE_PAST, status=status),
        PRODUCTION,
        now=TOP_OF_THE_HOUR + timedelta(hours=1, seconds=31),
    )
    assert rendered(due) == (f"delete schedule {SINGLE_ID}", "Normal ScheduleDeleted")
    assert due.status["retiring"] is None
    settled = reconciled(
        HOURLY_AND_ONE_PAST, merge(status, due.status), TOP_OF_THE_HOUR + timedelta(hours=1.5)
    )
    assert "retiring" not in settled.status or settled.status["retiring"] is None
    assert rendered(settled)[1:] == ()


def test_an_entry_removed_is_retired_and_back_to_one_schedule_too() -> None:
    both = merge({}, reconciled(HOURLY_AND_ONE_PAST, {}, JUST_BEFORE_THE_HOUR).status)
    only_hourly = dict(HOURLY_AND_ONE_PAST, schedules=HOURLY_AND_ONE_PAST["schedules"][:1])
    plan = reconciled(only_hourly, both, JUST_AFTER_THE_HOUR)
    assert plan.status["retiring"]["scheduleIds"] == [LATE_ID]
    back = reconciled({"parameters": PARAMETERS}, both, JUST_AFTER_THE_HOUR)
    assert back.status["retiring"]["scheduleIds"] == [HOURLY_ID, LATE_ID]
    assert back.status["scheduleId"] == SINGLE_ID
    assert back.status["schedules"] is None


def test_suspended_entries_removed_are_deleted_at_once() -> None:
    both = merge({}, reconciled(HOURLY_AND_ONE_PAST, {}, JUST_BEFORE_THE_HOUR).status)
    spec = dict(HOURLY_AND_ONE_PAST, suspend=True, schedules=HOURLY_AND_ONE_PAST["schedules"][:1])
    plan = reconciled(spec, both, JUST_AFTER_THE_HOUR)
    assert f"delete schedule {LATE_ID}" in rendered(plan)


def test_deletion_removes_every_entrys_schedule() -> None:
    status = merge({}, reconciled(HOURLY_AND_ONE_PAST, {}, JUST_BEFORE_THE_HOUR).status)
    doomed = body(HOURLY_AND_ONE_PAST, status=status)
    plan = reconcile.plan_finalize(doomed, PRODUCTION, now=JUST_AFTER_THE_HOUR)
    assert rendered(plan) == (
        "delete CronJob report",
        f"delete CronJob {naming.entry_cronjob_name('report', 'hourly')}",
        f"delete CronJob {naming.entry_cronjob_name('report', 'late')}",
        f"delete schedule {SINGLE_ID}",
        f"delete schedule {HOURLY_ID}",
        f"delete schedule {LATE_ID}",
    )


# -- the CronJob backend: marker CronJobs ----------------------------------------------------------

DEVELOPMENT_CONTEXT: Final = reconcile.Context(
    cluster_name="prod", qstash_problem="QSTASH_TOKEN is not set"
)
HOURLY_CRONJOB: Final = naming.entry_cronjob_name("report", "hourly")
LATE_CRONJOB: Final = naming.entry_cronjob_name("report", "late")


def on_cronjob(
    spec: dict[str, Any], status: dict[str, Any], now: datetime
) -> reconcile.ReconcilePlan:
    plan = reconcile.plan(body(spec, status=status), DEVELOPMENT_CONTEXT, now=now)
    assert plan.error is None, plan.error
    return plan


def puts(plan: reconcile.ReconcilePlan) -> list[dict[str, Any]]:
    return [step.manifest for step in plan.steps if isinstance(step, reconcile.PutCronJob)]


def test_each_entry_gets_a_marker_cronjob_making_suspended_marker_jobs() -> None:
    plan = on_cronjob(HOURLY_AND_ONE_PAST, {}, JUST_BEFORE_THE_HOUR)
    manifests = puts(plan)
    assert [m["metadata"]["name"] for m in manifests] == [HOURLY_CRONJOB, LATE_CRONJOB]
    hourly = manifests[0]["spec"]
    assert (hourly["schedule"], hourly["timeZone"], hourly["concurrencyPolicy"]) == (
        "0 * * * *",
        "UTC",
        "Allow",
    )
    template = hourly["jobTemplate"]
    assert template["spec"]["suspend"] is True
    labels = template["metadata"]["labels"]
    assert labels["qstash-operator.dev/tick-marker"] == "true"
    assert labels["qstash-operator.dev/schedule-entry"] == "hourly"
    assert "qstash-operator.dev/cronworkflow" not in labels  # a marker is no Job of the CW
    assert [s["cronJob"] for s in plan.status["schedules"]] == [HOURLY_CRONJOB, LATE_CRONJOB]
    assert plan.status["cronJobName"] is None
    again = on_cronjob(HOURLY_AND_ONE_PAST, merge({}, plan.status), JUST_AFTER_THE_HOUR)
    assert puts(again) == []


def test_on_the_cronjob_backend_switching_makes_the_new_cronjobs_before_deleting_the_old() -> None:
    single = merge({}, on_cronjob({}, {}, JUST_BEFORE_THE_HOUR).status)
    assert single["cronJobName"] == "report"
    moved = on_cronjob(HOURLY_AND_ONE_PAST, single, JUST_AFTER_THE_HOUR)
    assert rendered(moved)[1:] == (
        f"put CronJob {HOURLY_CRONJOB}",
        "Normal CronJobUpdated",
        f"put CronJob {LATE_CRONJOB}",
        "Normal CronJobUpdated",
        "adopt Jobs",
        "delete CronJob report orphaning its Jobs",
        "adopt Jobs",
        "Normal CronJobDeleted",
        f"sweep marker CronJobs but {HOURLY_CRONJOB}, {LATE_CRONJOB}",
    )
    several_status = merge(single, moved.status)
    only_hourly = dict(HOURLY_AND_ONE_PAST, schedules=HOURLY_AND_ONE_PAST["schedules"][:1])
    fewer = on_cronjob(only_hourly, several_status, JUST_AFTER_ONE_PAST)
    assert f"delete CronJob {LATE_CRONJOB}" in rendered(fewer)
    back = on_cronjob({}, several_status, JUST_AFTER_ONE_PAST)
    assert rendered(back)[1:] == (
        "replace CronJob report",
        "Normal CronJobUpdated",
        f"delete CronJob {HOURLY_CRONJOB}",
        "Normal CronJobDeleted",
        f"delete CronJob {LATE_CRONJOB}",
        "Normal CronJobDeleted",
        "sweep marker CronJobs",
    )


def test_leaving_the_cronjob_backend_with_an_entry_renamed_sweeps_its_cronjob_by_label() -> None:
    """The leak found in review: the switch rewrites ``status.schedules`` with QStash ids, so
    the renamed entry's marker CronJob is named nowhere when the handover retires the CronJob
    backend; the retirement finds it by the label every marker CronJob carries."""
    on_cronjobs = dict(HOURLY_AND_ONE_PAST, backend="CronJob")
    applied = merge({}, reconciled(on_cronjobs, {}, JUST_BEFORE_THE_HOUR).status)
    assert [s["cronJob"] for s in applied["schedules"]] == [HOURLY_CRONJOB, LATE_CRONJOB]
    renamed = dict(
        HOURLY_AND_ONE_PAST,
        backend="QStash",
        schedules=[
            HOURLY_AND_ONE_PAST["schedules"][0],
            {"name": "nightly", "cron": "0 3 * * *"},
        ],
    )
    switched = reconciled(renamed, applied, JUST_AFTER_THE_HOUR)
    status = merge(applied, switched.status)
    assert status["handover"]["from"] == "CronJob"
    assert LATE_CRONJOB not in json.dumps(status)  # no record names it any more
    due = reconcile.plan_refresh(
        body(renamed, status=status),
        PRODUCTION,
        now=runs.parse_time(status["handover"]["removeAfter"]),
    )
    sweeps = [step for step in due.steps if isinstance(step, reconcile.SweepMarkerCronJobs)]
    assert f"delete CronJob {LATE_CRONJOB}" not in rendered(due)
    assert sweeps == [
        reconcile.SweepMarkerCronJobs(
            "team-a",
            "app.kubernetes.io/managed-by=qstash-operator,qstash-operator.dev/marker-of=report,"
            "qstash-operator.dev/tick-marker=true",
            UID,
            keep=(),
            reason="HandoverComplete",
            said="removed the previous backend's CronJob {cronjob}",
        )
    ]


def test_a_marker_cronjob_no_entry_names_is_swept_when_the_entries_change() -> None:
    """A marker CronJob made before a lost status write is named by no record: the next change
    of the entries keeps exactly the current entries' CronJobs."""
    applied = merge({}, on_cronjob(HOURLY_AND_ONE_PAST, {}, JUST_BEFORE_THE_HOUR).status)
    only_hourly = dict(HOURLY_AND_ONE_PAST, schedules=HOURLY_AND_ONE_PAST["schedules"][:1])
    fewer = on_cronjob(only_hourly, {"backend": applied["backend"]}, JUST_AFTER_THE_HOUR)
    assert rendered(fewer)[-1] == f"sweep marker CronJobs but {HOURLY_CRONJOB}"
    unchanged = on_cronjob(only_hourly, merge(applied, fewer.status), JUST_AFTER_ONE_PAST)
    assert not any(isinstance(s, reconcile.SweepMarkerCronJobs) for s in unchanged.steps)


@dataclasses.dataclass(frozen=True)
class Marker:
    entry: str | None
    tick: datetime
    now: datetime
    outcome: Outcome
    last: datetime | None = None
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    jobs: tuple[str, ...] = ()


MARKERS = {
    "a marker handled at once runs its tick": Marker(
        "late", ONE_PAST, JUST_AFTER_ONE_PAST, Outcome.RUN
    ),
    "the other entry's marker of a shared tick finds the Job": Marker(
        "sixhourly",
        NOON,
        NOON + timedelta(seconds=3),
        Outcome.DUPLICATE_TICK,
        spec=SHARED_TOP,
        jobs=(naming.job_name("report", NOON),),
    ),
    "handled late, past startingDeadlineSeconds: skipped": Marker(
        "late",
        ONE_PAST,
        ONE_PAST + timedelta(minutes=5),
        Outcome.SKIPPED_DEADLINE,
        spec={"startingDeadlineSeconds": 120},
    ),
    "handled late, within startingDeadlineSeconds: runs": Marker(
        "late",
        ONE_PAST,
        ONE_PAST + timedelta(seconds=90),
        Outcome.RUN,
        spec={"startingDeadlineSeconds": 120},
    ),
    "out of order: 10:00 after 10:01 ran, never run, still runs": Marker(
        "hourly", TOP_OF_THE_HOUR, JUST_AFTER_ONE_PAST, Outcome.RUN, last=ONE_PAST
    ),
    "a tick the spec no longer has": Marker(
        "gone", TOP_OF_THE_HOUR + timedelta(minutes=7), JUST_AFTER_ONE_PAST, Outcome.NO_TICK
    ),
    "suspended": Marker(
        "late", ONE_PAST, JUST_AFTER_ONE_PAST, Outcome.SKIPPED_SUSPENDED, spec={"suspend": True}
    ),
}


@pytest.mark.parametrize("case", list(MARKERS.values()), ids=list(MARKERS))
def test_a_marker_is_judged_as_a_delivery_of_its_tick(case: Marker) -> None:
    base = SHARED_TOP if case.spec is SHARED_TOP else {**HOURLY_AND_ONE_PAST, **case.spec}
    cw = several(base)

    plan = runs.plan_marker(
        cw,
        jobs=[job(name) for name in case.jobs],
        tick=case.tick,
        entry=case.entry,
        last_schedule_time=case.last,
        schedule_since=None,
        now=case.now,
        tolerance=timedelta(seconds=10),
    )
    assert plan.outcome is case.outcome, plan.message
    if case.outcome is Outcome.RUN:
        assert plan.job_name == naming.job_name("report", case.tick)


def test_the_marker_tick_is_the_cronjob_controllers_annotation() -> None:
    marker = {
        "metadata": {
            "annotations": {
                "batch.kubernetes.io/cronjob-scheduled-timestamp": "2026-06-01T12:01:00+02:00"
            }
        }
    }
    assert runs.marker_tick(marker) == ONE_PAST
    assert runs.marker_tick({"metadata": {}}) is None
