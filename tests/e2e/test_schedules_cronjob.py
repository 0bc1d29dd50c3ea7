"""``spec.schedules`` on the CronJob backend: marker CronJobs, turned into Jobs by the operator.

The real operator process, the real CronJob controller (wall clock: a test waits for two
minute boundaries at most) and kwok's node. Three entries: ``even`` and ``also-even`` fire at
every even minute (one Job, ``even``'s parameters: it is listed first), ``odd`` at every odd
minute (its own parameters). Then ``spec.schedules`` moves back to one ``spec.schedule``: the
native CronJob is made first and the marker CronJobs go in the same reconcile, so every minute
keeps exactly one Job across the switch.
"""

from __future__ import annotations

from datetime import UTC, datetime

from qstash_devstack.stack import Stack, cronworkflow, wait
from qstash_operator.domain import naming

MANAGED = "qstash-operator.dev/cronworkflow"
MARKERS = "qstash-operator.dev/tick-marker=true"
DECLARED = [
    {"name": "mode", "type": "enum", "enum": ["quick", "full"], "default": "quick"},
    {"name": "batch", "type": "integer", "default": "10"},
]
ENTRIES = [
    {"name": "even", "cron": "*/2 * * * *", "parameters": {"batch": "2"}},
    {"name": "odd", "cron": "1-59/2 * * * *", "parameters": {"mode": "full"}},
    {"name": "also-even", "cron": "*/2 * * * *", "parameters": {"mode": "full", "batch": "99"}},
]


def _env(job: dict[str, object]) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    return {item["name"]: item["value"] for item in container["env"]}


def test_entries_run_through_markers_one_job_per_tick_with_the_winners_parameters(
    stack: Stack,
) -> None:
    operator, _ = stack.operator(qstash=False)
    manifest = cronworkflow(
        "multi",
        {"parameters": DECLARED, "schedules": ENTRIES, "successfulJobsHistoryLimit": 10},
    )
    del manifest["spec"]["schedule"]
    stack.apply(manifest)
    stack.wait_condition("multi", "Ready", "True")
    status = (stack.get("cronworkflow", "multi") or {})["status"]
    expected = [naming.entry_cronjob_name("multi", e["name"]) for e in ENTRIES]
    assert [s["cronJob"] for s in status["schedules"]] == expected
    for name in expected:
        cronjob = stack.get("cronjob", name) or {}
        assert cronjob["spec"]["jobTemplate"]["spec"]["suspend"] is True
    assert stack.get("cronjob", "multi") is None  # no CronJob makes the run's Jobs itself

    wait(
        lambda: len(stack.list("jobs", f"{MANAGED}=multi")) >= 2,
        timeout=200,
        what="the Jobs of two consecutive minutes, made from markers",
    )
    wait(lambda: not stack.list("jobs", MARKERS), timeout=60, what="every marker deleted")
    jobs = sorted(stack.list("jobs", f"{MANAGED}=multi"), key=lambda j: j["metadata"]["name"])
    minutes = []
    for job in jobs:
        annotations = job["metadata"]["annotations"]
        tick = datetime.fromisoformat(annotations["qstash-operator.dev/scheduled-time"])
        assert job["metadata"]["name"] == naming.job_name("multi", tick.astimezone(UTC))
        assert annotations["qstash-operator.dev/backend"] == "CronJob"
        minutes.append(tick.minute)
        if tick.minute % 2 == 0:  # even and also-even both marked it: one Job, even's values
            assert annotations["qstash-operator.dev/schedule-entry"] == "even"
            assert _env(job) == {"PARAM_MODE": "quick", "PARAM_BATCH": "2"}
        else:
            assert annotations["qstash-operator.dev/schedule-entry"] == "odd"
            assert _env(job) == {"PARAM_MODE": "full", "PARAM_BATCH": "10"}
    assert len(minutes) == len(set(minutes))  # one Job per tick
    assert {m % 2 for m in minutes} == {0, 1}  # both parities seen
    body = stack.get("cronworkflow", "multi") or {}
    assert body["status"]["lastScheduleTime"]

    # Back to one schedule: the native CronJob makes the Jobs itself, under the same names.
    single = cronworkflow("multi", {"schedule": "* * * * *", "successfulJobsHistoryLimit": 10})
    stack.apply(single)
    wait(lambda: stack.get("cronjob", "multi") is not None, what="the native CronJob")
    wait(
        lambda: all(stack.get("cronjob", name) is None for name in expected),
        what="the marker CronJobs to go",
    )

    def made_by_the_native_cronjob() -> bool:
        return any(
            ref.get("kind") == "CronJob"
            for job in stack.list("jobs", f"{MANAGED}=multi")
            for ref in job["metadata"].get("ownerReferences") or []
        )

    wait(made_by_the_native_cronjob, timeout=120, what="a Job of the native CronJob")
    unix_minutes = sorted(
        int(job["metadata"]["name"].rsplit("-", 1)[1])
        for job in stack.list("jobs", f"{MANAGED}=multi")
    )
    # One Job per minute from the first marker-made one through the switch: none twice, none lost.
    assert unix_minutes == list(range(unix_minutes[0], unix_minutes[-1] + 1)), unix_minutes
    assert not stack.list("jobs", MARKERS)
    assert "Traceback" not in operator.output()

    stack.plane.kubectl("delete", "qcwf", "multi", "-n", stack.namespace, "--timeout=30s")
    wait(lambda: stack.get("cronjob", "multi") is None, what="the CronJob to go with it")
