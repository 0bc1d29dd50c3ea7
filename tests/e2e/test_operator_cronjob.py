"""Development mode: no QStash, so a native CronJob owned by the CronWorkflow runs the schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from qstash_devstack.stack import Stack, cronworkflow, http_get, wait

MANAGED = "qstash-operator.dev/cronworkflow"


def test_the_cronjob_carries_the_spec_and_goes_with_its_cronworkflow(stack: Stack) -> None:
    operator, _ = stack.operator(qstash=False)
    assert "development mode: QSTASH_TOKEN is not set" in operator.output()
    stack.apply(
        cronworkflow(
            "dev-report",
            {
                "schedule": "@hourly",
                "timeZone": "Asia/Tokyo",
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": 60,
                "successfulJobsHistoryLimit": 5,
                "failedJobsHistoryLimit": 2,
            },
        )
    )
    stack.wait_condition("dev-report", "Ready", "True")
    cronjob = stack.get("cronjob", "dev-report")
    assert cronjob is not None
    spec = cronjob["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["suspend"]) == (
        "0 * * * *",
        "Asia/Tokyo",
        False,
    )
    assert (spec["concurrencyPolicy"], spec["startingDeadlineSeconds"]) == ("Forbid", 60)
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (5, 2)
    assert spec["jobTemplate"]["metadata"]["labels"][MANAGED] == "dev-report"
    owner = cronjob["metadata"]["ownerReferences"][0]
    body = stack.get("cronworkflow", "dev-report")
    assert body is not None
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "CronWorkflow",
        body["metadata"]["uid"],
        True,
    )
    status = body["status"]
    assert (status["backend"], status["cronJobName"]) == ("CronJob", "dev-report")
    assert "scheduleId" not in status
    fallback = [e for e in stack.events("dev-report") if e["reason"] == "FallbackToCronJob"]
    assert fallback
    assert "QSTASH_TOKEN is not set" in fallback[0]["message"]

    # Editing the spec updates the CronJob in place; suspend suspends it.
    stack.apply(cronworkflow("dev-report", {"schedule": "*/15 * * * *", "suspend": True}))
    wait(
        lambda: (
            (stack.get("cronjob", "dev-report") or {}).get("spec", {}).get("schedule")
            == "*/15 * * * *"
        ),
        what="the CronJob to follow the edit",
    )
    cronjob = stack.get("cronjob", "dev-report")
    assert cronjob is not None
    assert cronjob["spec"]["suspend"] is True
    assert cronjob["spec"]["concurrencyPolicy"] == "Allow"  # back to the default
    assert "startingDeadlineSeconds" not in cronjob["spec"]  # removed, not merged

    stack.plane.kubectl("delete", "qcwf", "dev-report", "-n", stack.namespace, "--timeout=30s")
    wait(
        lambda: stack.get("cronjob", "dev-report") is None, what="garbage collection of the CronJob"
    )


def test_a_run_now_annotation_makes_one_manual_job(stack: Stack) -> None:
    stack.operator(qstash=False)
    stack.apply(cronworkflow("on-demand", {"schedule": "0 0 1 1 *", "suspend": True}))
    stack.wait_condition("on-demand", "Ready", "True")
    stack.plane.kubectl(
        "annotate", "qcwf", "on-demand", "-n", stack.namespace, "qstash-operator.dev/run-now=first"
    )
    wait(lambda: len(stack.list("jobs", f"{MANAGED}=on-demand")) == 1, what="the manual Job")
    wait(
        lambda: (
            "qstash-operator.dev/run-now"
            not in (
                (stack.get("cronworkflow", "on-demand") or {})
                .get("metadata", {})
                .get("annotations")
                or {}
            )
        ),
        what="the annotation to be cleared",
    )
    [job] = stack.list("jobs", f"{MANAGED}=on-demand")
    assert job["metadata"]["name"].startswith("on-demand-manual-")
    assert job["metadata"]["labels"]["qstash-operator.dev/trigger"] == "manual"
    assert (
        job["metadata"]["annotations"]["qstash-operator.dev/triggered-by"]
        == "annotation:qstash-operator.dev/run-now"
    )
    status = (stack.get("cronworkflow", "on-demand") or {})["status"]
    assert status["lastManualRun"]["jobName"] == job["metadata"]["name"]

    # kwok runs the pod to completion; the status mirror records the success.
    wait(
        lambda: (
            "lastSuccessfulTime" in (stack.get("cronworkflow", "on-demand") or {}).get("status", {})
        ),
        timeout=60,
        what="lastSuccessfulTime from the completed Job",
    )
    assert not (stack.get("cronworkflow", "on-demand") or {})["status"].get("active")


@pytest.mark.slow
def test_the_native_controller_runs_jobs_that_look_like_webhook_made_ones(stack: Stack) -> None:
    stack.operator(qstash=False)
    stack.apply(cronworkflow("every-minute", {"schedule": "* * * * *"}))
    stack.wait_condition("every-minute", "Ready", "True")
    first_next = (stack.get("cronworkflow", "every-minute") or {})["status"]["nextScheduleTime"]
    wait(
        lambda: stack.list("jobs", f"{MANAGED}=every-minute"),
        timeout=100,
        what="the CronJob's first Job",
    )
    [job] = stack.list("jobs", f"{MANAGED}=every-minute")[:1]
    labels = job["metadata"]["labels"]
    assert labels["qstash-operator.dev/trigger"] == "schedule"
    assert labels["app.kubernetes.io/managed-by"] == "qstash-operator"
    body = stack.get("cronworkflow", "every-minute") or {}
    assert labels["qstash-operator.dev/cronworkflow-uid"] == body["metadata"]["uid"]
    # <name>-<unix minutes>, the same name the webhook would give this tick
    assert job["metadata"]["name"].startswith("every-minute-")
    mirrored: dict[str, str] = {}

    def last_schedule_time_mirrored() -> bool:
        status = (stack.get("cronworkflow", "every-minute") or {}).get("status", {})
        mirrored.update(status)
        return "lastScheduleTime" in status

    wait(last_schedule_time_mirrored, timeout=30, what="lastScheduleTime mirrored from the CronJob")
    # In the same write: the next run is after the run just made, never that run (issue 12).
    assert mirrored["nextScheduleTime"] > mirrored["lastScheduleTime"], mirrored
    wait(
        lambda: (
            (stack.get("cronworkflow", "every-minute") or {})["status"].get("nextScheduleTime")
            != first_next
        ),
        timeout=45,
        what="nextScheduleTime to move on after the tick",
    )


@pytest.mark.slow
def test_next_schedule_time_is_when_the_cronjob_controller_runs_it(stack: Stack) -> None:
    """Issue 12's live check: ``status.nextScheduleTime`` is the run the real CronJob controller
    (robfig's ``Next`` on ``TZ=<zone> <schedule>``) makes. A daily schedule at the coming local
    minute in Asia/Kolkata (UTC+05:30), so the hour field and a half-hour offset both count; it
    is at least 20 s away, so it is still ahead once the CronJob exists, and at most 80 s."""
    zone = ZoneInfo("Asia/Kolkata")
    now = datetime.now(UTC)
    due = now.replace(second=0, microsecond=0) + timedelta(minutes=1 if now.second < 40 else 2)
    local = due.astimezone(zone)
    stack.operator(qstash=False)
    stack.apply(
        cronworkflow(
            "kolkata",
            {"schedule": f"{local.minute} {local.hour} * * *", "timeZone": "Asia/Kolkata"},
        )
    )
    stack.wait_condition("kolkata", "Ready", "True")
    promised = (stack.get("cronworkflow", "kolkata") or {})["status"]["nextScheduleTime"]
    assert promised == due.strftime("%Y-%m-%dT%H:%M:%SZ")

    def controller_ran() -> str | None:
        cronjob = stack.get("cronjob", "kolkata") or {}
        last: str | None = (cronjob.get("status") or {}).get("lastScheduleTime")
        return last

    wait(controller_ran, timeout=120, what="the CronJob controller to run its schedule")
    assert controller_ran() == promised


def test_daylight_saving_days_are_shown_and_told_once_per_generation(stack: Stack) -> None:
    """Issue 12: a Berlin 02:30 schedule skips a day in March and runs twice in October; the
    operator says so in status and in one Normal event of each kind, not again on a restart."""
    operator, _ = stack.operator(qstash=False)
    stack.apply(cronworkflow("berlin", {"schedule": "30 2 * * *", "timeZone": "Europe/Berlin"}))
    stack.wait_condition("berlin", "Ready", "True")
    wait(
        lambda: (
            "daylightSaving" in ((stack.get("cronworkflow", "berlin") or {}).get("status") or {})
        ),
        what="status.daylightSaving",
    )
    shown = (stack.get("cronworkflow", "berlin") or {})["status"]["daylightSaving"]
    assert shown["effect"] in ("Skip", "Repeat")
    assert shown["localTimes"] == ["02:30"]
    assert "Europe/Berlin" in shown["message"]

    def told() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for event in stack.events("berlin"):
            if event["reason"].startswith("DaylightSaving"):
                assert event["type"] == "Normal"
                found.setdefault(event["reason"], []).append(event["message"])
        return found

    wait(lambda: len(told()) == 2, what="a DaylightSavingSkip and a DaylightSavingRepeat event")
    assert shown["date"] in " ".join(
        message for messages in told().values() for message in messages
    )
    operator.stop()
    _, port = stack.operator(qstash=False)  # a restart resumes the same generation

    def reconciled() -> bool:
        status, text = http_get(f"http://127.0.0.1:{port}/metrics")
        return status == 200 and any(
            line.startswith("qstash_operator_reconciles_total{") and float(line.split()[-1]) > 0
            for line in text.splitlines()
        )

    wait(reconciled, what="the restarted operator to resume the CronWorkflow")
    events = [e for e in stack.events("berlin") if e["reason"].startswith("DaylightSaving")]
    assert sorted(e["reason"] for e in events) == ["DaylightSavingRepeat", "DaylightSavingSkip"]
    assert all(e.get("count", 1) == 1 for e in events)
