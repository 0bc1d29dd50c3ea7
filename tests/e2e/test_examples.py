"""Every file in examples/ is applied as a user would, on both backends, and does what it says.

``kubectl apply -f examples/`` into a fresh namespace with the operator running; each CronWorkflow
must be accepted by the CRD, become Ready, and carry its promise into the schedule that runs it
(the QStash schedule, or the CronJob in development mode).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from qstash import QStash

from qstash_devstack.stack import Stack, wait

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MANAGED = "qstash-operator.dev/cronworkflow"
SUSPENDED = {"quarterly-cleanup", "reindex"}
SEVERAL = "warehouse-export"  # spec.schedules: an id (or a marker CronJob) per entry
ENTRIES = ("weekdays", "sunday", "sample")


def names() -> list[str]:
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        [document] = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        assert document["kind"] == "CronWorkflow", path
        assert "namespace" not in document["metadata"], f"{path.name}: let kubectl -n choose"
        found.append(document["metadata"]["name"])
    return found


def test_there_is_an_example_for_each_promise_of_the_readme() -> None:
    assert set(names()) == {
        "every-minute",
        "nightly-report",
        "inventory-sync",
        "quarterly-cleanup",
        "reindex",
        "nightly-vacuum",
        "launch-reminders",
        "export-orders",
        "warehouse-export",
    }


def spread(namespace: str, name: str) -> str:
    """What ``H H(1-4) * * *`` must resolve to for this object, computed here from sha256."""

    def seed(field: str) -> int:
        digest = hashlib.sha256(f"{namespace}/{name}|{field}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    return f"{seed('minute') % 60} {1 + seed('hour') % 4} * * *"


@pytest.mark.parametrize("backend", ["QStash", "CronJob"])
def test_each_example_is_accepted_and_runs_on_its_backend(stack: Stack, backend: str) -> None:
    stack.operator(qstash=backend == "QStash")
    stack.plane.kubectl("apply", "-n", stack.namespace, "-f", str(EXAMPLES))
    for name in names():
        reason = "Suspended" if name in SUSPENDED else "Ready"
        stack.wait_condition(name, "Ready", "True", reason=reason, timeout=60)
        body = stack.get("cronworkflow", name) or {}
        assert body["status"]["backend"] == backend, name

    campaign = (stack.get("cronworkflow", "launch-reminders") or {})["status"]
    assert campaign["nextScheduleTime"].endswith(":00:00Z")  # inside its window: a next run
    assert "scheduledRuns" not in campaign  # nothing ran yet

    several = (stack.get("cronworkflow", SEVERAL) or {})["status"]
    assert several["resolvedSchedule"].startswith("weekdays: 0 6 * * 1-5; sunday: 0 9 * * 0; ")
    assert len(several["schedules"]) == len(ENTRIES)

    vacuum = spread(stack.namespace, "nightly-vacuum")
    resolved = (stack.get("cronworkflow", "nightly-vacuum") or {})["status"]["resolvedSchedule"]
    assert resolved == vacuum

    if backend == "QStash":
        client = QStash(stack.qstash.token, base_url=stack.qstash.url, retry=False)
        schedules = {
            s.schedule_id.rsplit(".", 1)[-1]: s
            for s in client.schedule.list()
            if s.schedule_id.startswith(f"{stack.cluster_name}.")
        }
        assert set(schedules) == (set(names()) - {SEVERAL}) | {
            f"{SEVERAL}_{entry}" for entry in ENTRIES
        }
        assert schedules[f"{SEVERAL}_sunday"].cron == "CRON_TZ=Europe/Berlin 0 9 * * 0"
        nightly = schedules["nightly-report"]
        assert nightly.cron == "CRON_TZ=Europe/Berlin 30 6 * * *"
        assert nightly.retries == 3
        assert {name for name, s in schedules.items() if s.paused} == SUSPENDED
        assert schedules["nightly-vacuum"].cron == f"CRON_TZ=UTC {vacuum}"
    else:
        nightly_job = stack.get("cronjob", "nightly-report") or {}
        assert nightly_job["spec"]["timeZone"] == "Europe/Berlin"
        assert nightly_job["spec"]["startingDeadlineSeconds"] == 600
        assert (stack.get("cronjob", "inventory-sync") or {})["spec"]["concurrencyPolicy"] == (
            "Forbid"
        )
        suspended = {
            name
            for name in names()
            if name != SEVERAL and (stack.get("cronjob", name) or {})["spec"]["suspend"]
        }
        markers = (stack.get("cronworkflow", SEVERAL) or {})["status"]["schedules"]
        assert [item["name"] for item in markers] == list(ENTRIES)
        sunday = stack.get("cronjob", markers[1]["cronJob"]) or {}
        assert (sunday["spec"]["schedule"], sunday["spec"]["timeZone"]) == (
            "0 9 * * 0",
            "Europe/Berlin",
        )
        assert sunday["spec"]["jobTemplate"]["spec"]["suspend"] is True
        assert suspended == SUSPENDED
        assert (stack.get("cronjob", "nightly-vacuum") or {})["spec"]["schedule"] == vacuum
        export = (stack.get("cronjob", "export-orders") or {})["spec"]["jobTemplate"]["spec"]
        env = export["template"]["spec"]["containers"][0]["env"]
        assert {"name": "PARAM_BATCH_SIZE", "value": "1000"} in env

    # The manual-only example runs when asked, and only then.
    assert stack.list("jobs", f"{MANAGED}=reindex") == []
    stack.plane.kubectl(
        "annotate", "qcwf", "reindex", "-n", stack.namespace, "qstash-operator.dev/run-now=1"
    )
    wait(lambda: stack.list("jobs", f"{MANAGED}=reindex"), timeout=60, what="the manual run")
    [job] = stack.list("jobs", f"{MANAGED}=reindex")
    assert job["metadata"]["name"].startswith("reindex-manual-")
    printed = json.loads(
        stack.plane.kubectl("get", "qcwf", "-n", stack.namespace, "-o", "json").stdout
    )
    assert len(printed["items"]) == len(names())


def test_hash_spread_resolves_the_same_after_delete_and_re_apply(stack: Stack) -> None:
    stack.operator(qstash=True)
    example = str(EXAMPLES / "hash-spread.yaml")
    client = QStash(stack.qstash.token, base_url=stack.qstash.url, retry=False)
    schedule_id = f"{stack.cluster_name}.{stack.namespace}.nightly-vacuum"
    seen = []
    for _ in range(2):
        stack.plane.kubectl("apply", "-n", stack.namespace, "-f", example)
        stack.wait_condition("nightly-vacuum", "Ready", "True", reason="Ready", timeout=60)
        body = stack.get("cronworkflow", "nightly-vacuum") or {}
        seen.append((body["metadata"]["uid"], body["status"]["resolvedSchedule"]))
        assert client.schedule.get(schedule_id).cron == f"CRON_TZ=UTC {seen[-1][1]}"
        stack.plane.kubectl("delete", "-n", stack.namespace, "-f", example, "--wait=true")
        wait(
            lambda: schedule_id not in {s.schedule_id for s in client.schedule.list()},
            timeout=30,
            what="the QStash schedule to go with the object",
        )
    [(first_uid, first), (second_uid, second)] = seen
    assert first_uid != second_uid  # really a new object
    assert first == second == spread(stack.namespace, "nightly-vacuum")


def test_the_run_now_annotations_companion_overrides_a_parameter(stack: Stack) -> None:
    stack.operator(qstash=False)
    stack.plane.kubectl(
        "apply", "-n", stack.namespace, "-f", str(EXAMPLES / "typed-parameters.yaml")
    )
    stack.wait_condition("export-orders", "Ready", "True", reason="Ready", timeout=60)
    selector = f"{MANAGED}=export-orders,qstash-operator.dev/trigger=manual"

    def annotate(overrides: str, request: str) -> None:
        stack.plane.kubectl(
            "annotate", "qcwf", "export-orders", "-n", stack.namespace, "--overwrite",
            f"qstash-operator.dev/run-now-parameters={overrides}",
            "qstash-operator.dev/run-now-reason=checking the US export",
            f"qstash-operator.dev/run-now={request}",
        )  # fmt: skip

    def cleared() -> bool:
        annotations = (stack.get("cronworkflow", "export-orders") or {})["metadata"].get(
            "annotations"
        ) or {}
        return not any(key.startswith("qstash-operator.dev/run-now") for key in annotations)

    annotate('{"region": "ap"}', "bad-1")  # not one of eu, us: refused, no Job
    wait(cleared, timeout=60, what="the refused request's annotations to be cleared")
    assert stack.list("jobs", selector) == []
    assert "InvalidParameter" in {event["reason"] for event in stack.events("export-orders")}

    annotate('{"region": "us"}', "good-1")
    wait(lambda: stack.list("jobs", selector), timeout=60, what="the manual run")
    [job] = stack.list("jobs", selector)
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (env["PARAM_REGION"], env["PARAM_BATCH_SIZE"]) == ("us", "1000")
    annotations = job["metadata"]["annotations"]
    assert annotations["qstash-operator.dev/run-reason"] == "checking the US export"
    assert json.loads(annotations["qstash-operator.dev/run-parameters"]) == {"region": "us"}
    wait(cleared, timeout=60, what="the annotations to be cleared")
