"""The console's view model as tables: words, times, Jobs, the timeline (ledger and Jobs), and
which buttons work for whom. Every "now" is a named instant; nothing here reads the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from qstash_operator.adapters.kube import AccessDecision, UserInfo
from qstash_operator.domain import cron
from qstash_webhook.access import BATCH, Check, denial
from qstash_webhook.console import viewmodel as vm
from tests.unit.domain import factories
from tests.unit.webhook.support import JUST_AFTER_THE_HOUR, TOP_OF_THE_HOUR

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)
ALICE = UserInfo(username="system:serviceaccount:team-a:alice", uid="u1", groups=(), extra={})


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def raw_job(
    name: str,
    *,
    tick: datetime | None = None,
    created: datetime | None = None,
    started: datetime | None = None,
    outcome: str | None = None,  # "Complete" | "Failed" | None (running)
    finished: datetime | None = None,
    manual_by: str | None = None,
) -> dict[str, Any]:
    annotations: dict[str, str] = {}
    if tick is not None:
        annotations["qstash-operator.dev/scheduled-time"] = stamp(tick)
    if manual_by is not None:
        annotations["qstash-operator.dev/triggered-by"] = manual_by
    status: dict[str, Any] = {}
    if started is not None:
        status["startTime"] = stamp(started)
    if outcome is not None:
        status["conditions"] = [{"type": outcome, "status": "True"}]
        if finished is not None and outcome == "Complete":
            status["completionTime"] = stamp(finished)
        elif finished is not None:
            status["conditions"][0]["lastTransitionTime"] = stamp(finished)
    elif started is not None:
        status["active"] = 1
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "creationTimestamp": stamp(created or tick or TOP_OF_THE_HOUR),
            "labels": {
                "qstash-operator.dev/trigger": "manual" if manual_by else "schedule",
                "qstash-operator.dev/cronworkflow-uid": factories.UID,
            },
            "annotations": annotations,
        },
        "status": status,
    }


# -- words ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("* * * * *", "Every minute"),
        ("*/5 * * * *", "Every 5 minutes"),
        ("30 6 * * *", "At 06:30"),
        ("0 9 * * 1-5", "At 09:00, Monday through Friday"),
        ("0 0 1 * 1", "At 00:00, on day 1 of the month, or on Monday"),  # robfig's "either"
        ("0 3 1 */3 *", "At 03:00, on day 1 of the month, every 3 months"),
    ],
)
def test_a_schedule_in_words(expression: str, words: str) -> None:
    assert vm.describe_schedule(expression) == words


def test_an_expression_the_describer_cannot_read_is_shown_as_written() -> None:
    assert vm.describe_schedule("not cron") == "not cron"


@pytest.mark.parametrize(
    ("spec", "running", "expected"),
    [
        pytest.param(
            {"schedule": "@daily", "timeZone": "Europe/Berlin"},
            "QStash",
            [
                "At 00:00, Europe/Berlin time (cron '@daily').",
                "Runs may overlap (concurrencyPolicy Allow).",
                "Keeps the last 3 successful and 1 failed Jobs.",
                "Backend Auto: QStash when the cluster has it, else a native CronJob; "
                "it runs on QStash now.",
                "Each run is a Job with busybox:1.36 (main).",
            ],
            id="defaults",
        ),
        pytest.param(
            {
                "schedule": "30 6 * * *",
                "suspend": True,
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": 600,
                "successfulJobsHistoryLimit": 7,
                "failedJobsHistoryLimit": 3,
                "backend": "CronJob",
                "qstash": {"retries": 3, "retryDelay": "30000", "timeout": "30s"},
            },
            None,
            [
                "At 06:30, UTC time (cron '30 6 * * *').",
                "Suspended: no tick runs until it is activated; Run now still works.",
                "A tick is skipped while an earlier run is still active "
                "(concurrencyPolicy Forbid).",
                "A tick that cannot start within 10 min of its time is skipped "
                "(startingDeadlineSeconds 600).",
                "Keeps the last 7 successful and 3 failed Jobs.",
                "Backend CronJob: a native CronJob owned by this CronWorkflow; "
                "the operator has not chosen yet.",
                "QStash retries a failed delivery 3 times, 30000 ms apart, gives each attempt 30s.",
                "Each run is a Job with busybox:1.36 (main).",
            ],
            id="everything set",
        ),
        pytest.param(
            {"concurrencyPolicy": "Replace", "qstash": {"retryDelay": "pow(2, retried) * 1000"}},
            "CronJob",
            [
                "Every hour, UTC time (cron '0 * * * *').",
                "A new run stops the one still active (concurrencyPolicy Replace).",
                "Keeps the last 3 successful and 1 failed Jobs.",
                "Backend Auto: QStash when the cluster has it, else a native CronJob; "
                "it runs on CronJob now.",
                "QStash waiting pow(2, retried) * 1000 ms.",
                "Each run is a Job with busybox:1.36 (main).",
            ],
            id="replace, a delay expression",
        ),
    ],
)
def test_the_spec_in_words(spec: dict[str, Any], running: str | None, expected: list[str]) -> None:
    assert vm.spec_in_words(factories.cronworkflow(spec), running=running) == expected


# -- time -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "relative"),
    [
        (timedelta(0), "just now"),
        (timedelta(seconds=-44), "just now"),
        (timedelta(seconds=30), "in a moment"),
        (timedelta(minutes=5), "in 5 min"),
        (timedelta(minutes=-89), "89 min ago"),
        (timedelta(hours=3), "in 3 h"),
        (timedelta(hours=-35), "35 h ago"),
        (timedelta(days=1, hours=13), "in 2 days"),
        (timedelta(days=-400), "400 days ago"),
    ],
)
def test_relative_times(offset: timedelta, relative: str) -> None:
    assert vm.moment(TOP_OF_THE_HOUR + offset, BERLIN, TOP_OF_THE_HOUR)["relative"] == relative


def test_a_moment_in_the_zone_and_in_utc() -> None:
    assert vm.moment(TOP_OF_THE_HOUR, BERLIN, TOP_OF_THE_HOUR) == {
        "iso": "2026-11-28T10:00:00Z",
        "utc": "2026-11-28 10:00:00 UTC",
        "local": "2026-11-28 11:00:00 CET",
        "relative": "just now",
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (2.4, "2 s"),
        (59, "59 s"),
        (60, "1 min"),
        (65, "1 min 5 s"),
        (3600, "1 h"),
        (3720, "1 h 2 min"),
        (-3, "0 s"),
    ],
)
def test_durations(seconds: float, text: str) -> None:
    assert vm.duration(seconds) == text


def test_the_next_ten_fire_times_in_the_zone_and_in_utc() -> None:
    schedule = cron.parse("30 6 * * *", "Europe/Berlin")
    fires = vm.fire_times(schedule, TOP_OF_THE_HOUR)
    assert len(fires) == 10
    assert [(f["local"], f["utc"]) for f in fires[:2]] == [
        ("2026-11-29 06:30:00 CET", "2026-11-29 05:30:00 UTC"),
        ("2026-11-30 06:30:00 CET", "2026-11-30 05:30:00 UTC"),
    ]
    assert {f["mark"] for f in fires} == {None}


@pytest.mark.parametrize(
    ("expression", "zone", "now", "marked"),
    [
        pytest.param(
            "30 2 * * *",
            "Europe/Berlin",
            datetime(2026, 3, 27, 12, 0, tzinfo=UTC),
            {
                "2026-03-30 02:30:00 CEST": "before this run, skipped: 02:30 does not exist in "
                "Europe/Berlin on 2026-03-29 (the clocks go forward)"
            },
            id="spring forward: the lost run marks the next one",
        ),
        pytest.param(
            "30 2 * * *",
            "Europe/Berlin",
            datetime(2026, 10, 23, 12, 0, tzinfo=UTC),
            {
                "2026-10-25 02:30:00 CEST": "runs twice: 02:30 happens twice in Europe/Berlin on "
                "2026-10-25 (the clocks go back)",
                "2026-10-25 02:30:00 CET": "runs twice: 02:30 happens twice in Europe/Berlin on "
                "2026-10-25 (the clocks go back)",
            },
            id="fall back: both runs of the repeated hour",
        ),
        pytest.param(
            "30 6 * * *",
            "Europe/Berlin",
            datetime(2026, 3, 27, 12, 0, tzinfo=UTC),
            {},
            id="an hour no change touches",
        ),
        pytest.param("30 2 * * *", "UTC", datetime(2026, 3, 27, 12, 0, tzinfo=UTC), {}, id="UTC"),
    ],
)
def test_fire_times_mark_what_daylight_saving_skips_or_repeats(
    expression: str, zone: str, now: datetime, marked: dict[str, str]
) -> None:
    fires = vm.fire_times(cron.parse(expression, zone), now, count=5)
    assert {f["local"]: f["mark"] for f in fires if f["mark"]} == marked


@pytest.mark.parametrize(
    ("expression", "zone", "sentence"),
    [
        (
            "30 2 * * *",
            "Europe/Berlin",
            "Next daylight-saving effect: skipped: 02:30 does not exist in Europe/Berlin on "
            "2027-03-28 (the clocks go forward).",
        ),
        ("30 2 * * *", "UTC", "No clock change skips or repeats a run in the next 400 days."),
    ],
)
def test_the_next_daylight_saving_day_in_words(expression: str, zone: str, sentence: str) -> None:
    assert vm.next_daylight_saving(cron.parse(expression, zone), TOP_OF_THE_HOUR) == sentence


# -- Jobs and the timeline --------------------------------------------------------------------

# An hourly schedule created at 06:30; the page is looked at two seconds after 10:00.
CREATED = TOP_OF_THE_HOUR - 3.5 * HOUR
JOBS = [
    raw_job(
        "report-0700",
        tick=TOP_OF_THE_HOUR - 3 * HOUR,
        started=TOP_OF_THE_HOUR - 3 * HOUR,
        outcome="Complete",
        finished=TOP_OF_THE_HOUR - 3 * HOUR + timedelta(seconds=65),
    ),
    raw_job(
        "report-0900",
        tick=TOP_OF_THE_HOUR - HOUR,
        started=TOP_OF_THE_HOUR - HOUR,
        outcome="Failed",
        finished=TOP_OF_THE_HOUR - HOUR + timedelta(seconds=3),
    ),
    raw_job(
        "report-manual-1",
        created=TOP_OF_THE_HOUR - timedelta(minutes=30),
        started=TOP_OF_THE_HOUR - timedelta(minutes=30),
        manual_by="alice",
    ),
]


def test_jobs_newest_first_with_status_and_duration() -> None:
    rows = [vm.job_row(job) for job in JOBS]
    table = vm.jobs_json(rows, ZoneInfo("UTC"), JUST_AFTER_THE_HOUR)
    assert [(j["name"], j["trigger"], j["outcome"], j["duration"]) for j in table] == [
        ("report-manual-1", "manual", "Running", "30 min 2 s so far"),
        ("report-0900", "schedule", "Failed", "3 s"),
        ("report-0700", "schedule", "Succeeded", "1 min 5 s"),
    ]
    assert table[0]["requestedBy"] == "alice"


def test_the_timeline_from_jobs_colours_each_tick_and_places_manual_runs() -> None:
    schedule = cron.parse("0 * * * *")
    rows = [vm.job_row(job) for job in JOBS]
    slots = vm.job_slots(schedule, rows, JUST_AFTER_THE_HOUR, since=CREATED)
    assert [(s.time, s.outcome, s.job, s.manual) for s in slots] == [
        (TOP_OF_THE_HOUR - 3 * HOUR, vm.SUCCEEDED, "report-0700", False),
        (TOP_OF_THE_HOUR - 2 * HOUR, vm.NO_JOB, None, False),  # pruned, skipped or missed
        (TOP_OF_THE_HOUR - HOUR, vm.FAILED, "report-0900", False),
        (TOP_OF_THE_HOUR - timedelta(minutes=30), vm.RUNNING, "report-manual-1", True),
        (TOP_OF_THE_HOUR, vm.DUE, None, False),  # two seconds old: QStash may still deliver
    ]


def test_the_timeline_from_jobs_is_bounded_and_starts_at_the_newest_ticks() -> None:
    schedule = cron.parse("* * * * *")
    slots = vm.job_slots(schedule, [], TOP_OF_THE_HOUR, since=None, count=5)
    assert [s.time for s in slots] == [
        TOP_OF_THE_HOUR - timedelta(minutes=m) for m in range(4, -1, -1)
    ]


def test_the_timeline_of_an_invalid_spec_is_its_jobs_alone() -> None:
    rows = [vm.job_row(job) for job in JOBS]
    slots = vm.job_slots(None, rows, JUST_AFTER_THE_HOUR, since=CREATED)
    assert [s.job for s in slots] == ["report-0700", "report-0900", "report-manual-1"]


LEDGER = [  # newest first, as status.recentSlots is kept
    {"time": stamp(TOP_OF_THE_HOUR), "outcome": "Running", "jobName": "report-1000"},
    {"time": stamp(TOP_OF_THE_HOUR - HOUR), "outcome": "Skipped", "reason": "ConcurrencyForbid"},
    {"time": stamp(TOP_OF_THE_HOUR - 2 * HOUR), "outcome": "Missed"},
    {
        "time": stamp(TOP_OF_THE_HOUR - 2.5 * HOUR),
        "outcome": "Succeeded",
        "jobName": "report-manual-2",
        "manual": True,
        "requestedBy": "bob",
    },
    {"time": stamp(TOP_OF_THE_HOUR - 3 * HOUR), "outcome": "SomethingNew"},
    {"outcome": "Succeeded"},  # no time: not a slot
]


def test_the_timeline_from_the_ledger_oldest_first() -> None:
    slots = vm.ledger_slots({"recentSlots": LEDGER})
    assert slots is not None
    assert [(s.outcome, s.job, s.manual, s.reason) for s in slots] == [
        (vm.NO_JOB, None, False, None),  # an outcome the console does not know yet
        (vm.SUCCEEDED, "report-manual-2", True, None),
        (vm.MISSED, None, False, None),
        (vm.SKIPPED, None, False, "ConcurrencyForbid"),
        (vm.RUNNING, "report-1000", False, None),
    ]


@pytest.mark.parametrize("status", [{}, {"recentSlots": None}, {"recentSlots": "oops"}])
def test_no_ledger_means_none(status: dict[str, Any]) -> None:
    assert vm.ledger_slots(status) is None


ALLOWED = vm.Permission(True)


def detail(
    *,
    status: dict[str, Any] | None = None,
    jobs: list[dict[str, Any]] | None = JOBS,
    spec: dict[str, Any] | None = None,
    patch: vm.Permission = ALLOWED,
    trigger: vm.Permission = ALLOWED,
) -> dict[str, Any]:
    body = factories.body(spec or {}, status=status or {})
    body["metadata"]["creationTimestamp"] = stamp(CREATED)
    inputs = vm.DetailInputs(
        parsed=vm.Parsed.of(body),
        jobs=jobs,
        jobs_denied="" if jobs is not None else "alice may not list jobs",
        events=[],
        events_denied="",
        patch=patch,
        trigger=trigger,
    )
    return vm.detail_json(inputs, user="alice", now=JUST_AFTER_THE_HOUR)


@pytest.mark.parametrize(
    ("status", "jobs", "source", "outcomes"),
    [
        pytest.param(
            {}, JOBS, "jobs", ["Succeeded", "NoJob", "Failed", "Running", "Due"], id="Jobs"
        ),
        pytest.param(
            {"recentSlots": LEDGER[:2]}, JOBS, "ledger", ["Skipped", "Running"], id="ledger"
        ),
        pytest.param(
            {"recentSlots": LEDGER[:2]},
            None,
            "ledger",
            ["Skipped", "Running"],
            id="ledger, Jobs not readable",
        ),
        pytest.param({}, None, None, None, id="no ledger, Jobs not readable"),
    ],
)
def test_the_detail_page_switches_to_the_ledger_when_there_is_one(
    status: dict[str, Any],
    jobs: list[dict[str, Any]] | None,
    source: str | None,
    outcomes: list[str] | None,
) -> None:
    page = detail(status=status, jobs=jobs)
    if source is None:
        assert page["timeline"] is None
        assert page["timelineDenied"] == "alice may not list jobs"
    else:
        assert page["timeline"]["source"] == source
        assert [s["outcome"] for s in page["timeline"]["slots"]] == outcomes


def test_a_slot_label_says_when_what_and_which_job() -> None:
    page = detail(status={"recentSlots": LEDGER[1:4]})
    assert [s["label"] for s in page["timeline"]["slots"]] == [
        "2026-11-28 07:30:00 UTC: manual run by bob, succeeded (Job report-manual-2)",
        "2026-11-28 08:00:00 UTC: missed",
        "2026-11-28 09:00:00 UTC: skipped: ConcurrencyForbid",
    ]


def test_an_invalid_spec_has_words_but_no_fire_times() -> None:
    page = detail(spec={"schedule": "61 * * * *"})
    assert page["fireTimes"] == []
    assert page["words"][0].startswith("The spec is invalid: spec.schedule")
    assert page["actions"]["run"]["enabled"] is False


# -- the last run and freshness on the list -----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "jobs", "expected"),
    [
        pytest.param(
            {"recentSlots": LEDGER}, JOBS, (TOP_OF_THE_HOUR, "Running", "report-1000"), id="ledger"
        ),
        pytest.param(
            {},
            JOBS,
            (TOP_OF_THE_HOUR - timedelta(minutes=30), "Running", "report-manual-1"),
            id="newest Job",
        ),
        pytest.param(
            {"lastScheduleTime": stamp(TOP_OF_THE_HOUR)},
            [],
            (TOP_OF_THE_HOUR, vm.NO_JOB, None),
            id="status only",
        ),
        pytest.param(
            {"lastScheduleTime": stamp(TOP_OF_THE_HOUR)},
            None,
            (TOP_OF_THE_HOUR, vm.NO_JOB, None),
            id="Jobs not readable",
        ),
        pytest.param({}, [], None, id="never ran"),
    ],
)
def test_the_last_run(
    status: dict[str, Any], jobs: list[dict[str, Any]] | None, expected: vm.LastRun | None
) -> None:
    rows = [vm.job_row(job) for job in jobs] if jobs is not None else None
    assert vm.last_run(status, rows) == expected


def test_freshness_shows_when_a_cronworkflow_reports_it() -> None:
    fresh = {"type": "Fresh", "status": "False", "reason": "Stale", "message": "26h since success"}
    rows = [
        vm.row_json(vm.Parsed.of(factories.body(name="a")), [], TOP_OF_THE_HOUR),
        vm.row_json(
            vm.Parsed.of(factories.body(name="b", status={"conditions": [fresh]})),
            [],
            TOP_OF_THE_HOUR,
        ),
    ]
    assert [row["freshness"] for row in rows] == [None, {**fresh}]
    page = vm.list_json(rows, user="alice", now=TOP_OF_THE_HOUR, namespaces=["team-a"], note=None)
    assert page["showFreshness"] is True
    without = vm.list_json(rows[:1], user="a", now=TOP_OF_THE_HOUR, namespaces=[], note=None)
    assert without["showFreshness"] is False


@pytest.mark.parametrize(
    ("spec", "next_run"),
    [
        ({"schedule": "0 * * * *"}, "2026-11-28 11:00:00 UTC"),
        ({"schedule": "0 * * * *", "suspend": True}, None),
        ({"schedule": "nope"}, None),
    ],
)
def test_a_row_shows_the_next_run_only_when_one_will_come(
    spec: dict[str, Any], next_run: str | None
) -> None:
    row = vm.row_json(vm.Parsed.of(factories.body(spec)), [], TOP_OF_THE_HOUR)
    assert (row["nextRun"] or {}).get("utc") == next_run


def test_a_row_of_several_schedules_says_how_many_and_the_next_run_is_the_unions() -> None:
    spec = {
        "schedule": None,
        "schedules": [
            {"name": "late", "cron": "30 * * * *"},
            {"name": "top", "cron": "0 * * * *"},
        ],
    }
    row = vm.row_json(vm.Parsed.of(factories.body(spec)), [], TOP_OF_THE_HOUR)
    assert row["schedule"] == "2 schedules"
    assert row["scheduleWords"].startswith("2 schedules: late ")
    assert row["nextRun"]["utc"] == "2026-11-28 10:30:00 UTC"
    words = vm.spec_in_words(factories.cronworkflow(spec), running=None)
    assert words[0].startswith("late: ")
    assert words[1].startswith("top: ")
    assert "first listed schedule's parameters" in words[2]


# -- permissions ------------------------------------------------------------------------------

NO_PATCH = vm.Permission(False, "alice may not patch (no rule)")
NO_TRIGGER = vm.Permission(False, "alice may not trigger (no rule)")
YES = vm.Permission(True)


@pytest.mark.parametrize(
    ("state", "problem", "patch", "trigger", "expected"),
    [
        pytest.param(
            "active",
            None,
            YES,
            YES,
            {"activate": "already active", "deactivate": None, "run": None},
            id="active, may do all",
        ),
        pytest.param(
            "suspended",
            None,
            YES,
            YES,
            {"activate": None, "deactivate": "already suspended", "run": None},
            id="suspended, may do all",
        ),
        pytest.param(
            "active",
            None,
            NO_PATCH,
            NO_TRIGGER,
            {
                "activate": NO_PATCH.denial,  # RBAC first, not "already active"
                "deactivate": NO_PATCH.denial,
                "run": NO_TRIGGER.denial,
            },
            id="view only",
        ),
        pytest.param(
            "suspended",
            None,
            NO_PATCH,
            YES,
            {"activate": NO_PATCH.denial, "deactivate": NO_PATCH.denial, "run": None},
            id="may trigger, not patch",
        ),
        pytest.param(
            "invalid",
            "spec.schedule: bad",
            YES,
            YES,
            {
                "activate": None,
                "deactivate": None,
                "run": "the spec is invalid: spec.schedule: bad",
            },
            id="invalid spec",
        ),
    ],
)
def test_buttons_and_their_reasons(
    state: str,
    problem: str | None,
    patch: vm.Permission,
    trigger: vm.Permission,
    expected: dict[str, str | None],
) -> None:
    states = vm.action_states(state=state, problem=problem, patch=patch, trigger=trigger)
    assert {name: button["reason"] for name, button in states.items()} == expected
    assert {name: button["enabled"] for name, button in states.items()} == {
        name: reason is None for name, reason in expected.items()
    }


@pytest.mark.parametrize(
    ("check", "decision", "sentence"),
    [
        pytest.param(
            Check("patch", "team-a", "report"),
            AccessDecision(allowed=False, reason=""),
            "system:serviceaccount:team-a:alice may not patch "
            "cronworkflows.qstash-operator.dev/report in namespace team-a "
            "(no Role or ClusterRole bound to them grants 'patch')",
            id="RBAC's plain denial has no reason",
        ),
        pytest.param(
            Check("list", None),
            AccessDecision(allowed=False, reason="denied by policy team-guard"),
            "system:serviceaccount:team-a:alice may not list cronworkflows.qstash-operator.dev "
            "cluster-wide (denied by policy team-guard)",
            id="an authorizer's own reason",
        ),
        pytest.param(
            Check("list", "team-a", group=BATCH, resource="jobs"),
            AccessDecision(allowed=False, reason=""),
            "system:serviceaccount:team-a:alice may not list jobs.batch in namespace team-a "
            "(no Role or ClusterRole bound to them grants 'list')",
            id="another resource",
        ),
        pytest.param(
            Check("list", "team-a", group="", resource="events"),
            AccessDecision(allowed=False, reason=""),
            "system:serviceaccount:team-a:alice may not list events in namespace team-a "
            "(no Role or ClusterRole bound to them grants 'list')",
            id="a core resource",
        ),
    ],
)
def test_a_denial_in_words(check: Check, decision: AccessDecision, sentence: str) -> None:
    assert denial(ALICE, check, decision) == sentence


def test_events_newest_first() -> None:
    events = [
        {
            "type": "Normal",
            "reason": "Old",
            "message": "a",
            "lastTimestamp": stamp(TOP_OF_THE_HOUR - HOUR),
        },
        {
            "type": "Warning",
            "reason": "New",
            "message": "b",
            "count": 3,
            "lastTimestamp": stamp(TOP_OF_THE_HOUR),
        },
        {
            "type": "Normal",
            "reason": "Series",
            "eventTime": stamp(TOP_OF_THE_HOUR - timedelta(minutes=5)),
        },
    ]
    table = vm.events_json(events, ZoneInfo("UTC"), TOP_OF_THE_HOUR)
    assert [(e["reason"], e["count"]) for e in table] == [("New", 3), ("Series", 1), ("Old", 1)]
