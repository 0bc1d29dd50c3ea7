"""The operator on the QStash backend, end to end: kubectl apply → a QStash schedule, and back.

The operator runs as a child process through the CLI against the real control plane and the
QStash-compatible server; every check reads what a user would read (the CronWorkflow's status and
events) or what QStash holds (through the official SDK).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from qstash import QStash

from qstash_devstack.stack import Stack, cronworkflow, http_get, wait
from qstash_operator.domain.runs import parse_time


def sdk(stack: Stack) -> QStash:
    return QStash(stack.qstash.token, base_url=stack.qstash.url, retry=False)


def schedule_id(stack: Stack, name: str) -> str:
    return f"{stack.cluster_name}.{stack.namespace}.{name}"


def metric(port: int, name: str, **labels: str) -> float:
    """One sample from the operator's /metrics (0 when absent)."""
    status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    selector = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    wanted = f"{name}{{{selector}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def upserts(stack: Stack) -> int:
    return stack.qstash.api_calls().get("schedules.create", 0)


def test_a_cronworkflow_gets_one_schedule_that_follows_its_spec(stack: Stack) -> None:
    operator, _ = stack.operator()
    stack.apply(
        cronworkflow(
            "nightly",
            {
                "schedule": "0 3 * * *",
                "timeZone": "Europe/Berlin",
                "qstash": {"retries": 2, "retryDelay": "1000"},
            },
        )
    )
    stack.wait_condition("nightly", "Ready", "True")
    sid = schedule_id(stack, "nightly")
    schedule = sdk(stack).schedule.get(sid)
    body = stack.get("cronworkflow", "nightly")
    assert body is not None
    assert schedule.cron == "CRON_TZ=Europe/Berlin 0 3 * * *"
    assert schedule.destination == f"{stack.public_url}/api/qstash/webhook"
    assert json.loads(schedule.body or "{}") == {
        "namespace": stack.namespace,
        "name": "nightly",
        "uid": body["metadata"]["uid"],
    }
    assert (schedule.retries, schedule.retry_delay_expression, schedule.paused) == (
        2,
        "1000",
        False,
    )
    status = body["status"]
    assert status["backend"] == "QStash"
    assert status["scheduleId"] == sid
    assert status["observedGeneration"] == 1
    assert status["nextScheduleTime"].endswith(":00:00Z")
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True",
        "ScheduleSynced": "True",
        "SpecValid": "True",
    }
    assert "ScheduleUpserted" in {event["reason"] for event in stack.events("nightly")}
    assert "production mode" in operator.output()

    created_since = parse_time(status["scheduleSince"])
    # A change outside the spec costs no QStash call.
    before = upserts(stack)
    stack.plane.kubectl("label", "qcwf", "nightly", "-n", stack.namespace, "team=data")
    stack.plane.kubectl("annotate", "qcwf", "nightly", "-n", stack.namespace, "note=hello")
    edited_at = datetime.now(UTC).replace(microsecond=0)  # scheduleSince has second precision
    stack.apply(
        cronworkflow(
            "nightly",
            {
                "schedule": "0 4 * * *",
                "timeZone": "Europe/Berlin",
                "qstash": {"retries": 2, "retryDelay": "1000"},
            },
        )
    )
    wait(
        lambda: sdk(stack).schedule.get(sid).cron == "CRON_TZ=Europe/Berlin 0 4 * * *",
        what="the edited cron in QStash",
    )
    assert upserts(stack) == before + 1
    # A new cron takes effect at the edit: ticks before it can never run (no retroactive runs).
    # (Both times may fall in the same second, so the check is against the edit, not strict.)
    wait(
        lambda: (
            (stack.get("cronworkflow", "nightly") or {})["status"].get("appliedSchedule")
            == "CRON_TZ=Europe/Berlin 0 4 * * *"
        ),
        what="the status to record the new schedule",
    )
    edited_since = parse_time(
        (stack.get("cronworkflow", "nightly") or {})["status"]["scheduleSince"]
    )
    assert created_since is not None
    assert edited_since is not None
    assert created_since <= edited_at <= edited_since

    # suspend pauses, unsuspend resumes
    stack.plane.kubectl(
        "patch",
        "qcwf",
        "nightly",
        "-n",
        stack.namespace,
        "--type=merge",
        "-p",
        '{"spec":{"suspend":true}}',
    )
    wait(lambda: sdk(stack).schedule.get(sid).paused, what="the schedule to pause")
    stack.wait_condition("nightly", "Ready", "True", reason="Suspended")
    assert "nextScheduleTime" not in (stack.get("cronworkflow", "nightly") or {})["status"]
    stack.plane.kubectl(
        "patch",
        "qcwf",
        "nightly",
        "-n",
        stack.namespace,
        "--type=merge",
        "-p",
        '{"spec":{"suspend":false}}',
    )
    wait(lambda: not sdk(stack).schedule.get(sid).paused, what="the schedule to resume")

    # deletion removes the schedule through the finalizer
    stack.plane.kubectl("delete", "qcwf", "nightly", "-n", stack.namespace, "--timeout=30s")
    assert sid not in {s.schedule_id for s in sdk(stack).schedule.list()}


def test_a_schedule_deleted_outside_the_operator_still_lets_the_cronworkflow_go(
    stack: Stack,
) -> None:
    stack.operator()
    stack.apply(cronworkflow("short-lived"))
    stack.wait_condition("short-lived", "Ready", "True")
    sdk(stack).schedule.delete(schedule_id(stack, "short-lived"))
    stack.plane.kubectl("delete", "qcwf", "short-lived", "-n", stack.namespace, "--timeout=30s")
    assert stack.get("cronworkflow", "short-lived") is None


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        pytest.param(
            {"timeZone": "Mars/Olympus_Mons"},
            "spec.timeZone",
            "UnknownTimeZone",
            id="a time zone that does not exist",
        ),
        pytest.param(
            {
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [{"name": "Bad_Name", "image": "busybox"}],
                            }
                        }
                    }
                }
            },
            "spec.jobTemplate",
            "InvalidJobTemplate",
            id="a Job template the API server rejects",
        ),
    ],
)
def test_what_the_schema_cannot_check_is_flagged_not_retried(
    stack: Stack, spec: dict[str, object], field: str, reason: str
) -> None:
    _, port = stack.operator()
    stack.apply(cronworkflow("broken", spec))
    condition = stack.wait_condition("broken", "SpecValid", "False", reason=reason)
    assert field in condition["message"]
    warnings = [
        e for e in stack.events("broken") if e["type"] == "Warning" and e["reason"] == reason
    ]
    assert warnings
    assert field in warnings[0]["message"]
    assert stack.condition("broken", "Ready")["status"] == "False"  # type: ignore[index]
    assert upserts(stack) == 0
    # No retry until the spec changes: a metadata change and a healthy neighbour later, the
    # operator has still reconciled the broken spec exactly once.
    stack.plane.kubectl("annotate", "qcwf", "broken", "-n", stack.namespace, "poke=1")
    stack.apply(cronworkflow("healthy"))
    stack.wait_condition("healthy", "Ready", "True")
    assert metric(port, "qstash_operator_reconciles_total", result=reason) == 1.0
    assert len([e for e in stack.events("broken") if e["reason"] == reason]) == len(warnings)
    # Fixing the spec heals it.
    stack.apply(cronworkflow("broken"))
    stack.wait_condition("broken", "Ready", "True")
    stack.wait_condition("broken", "SpecValid", "True")
