"""Deleting a CronWorkflow while QStash is down: the finalizer never holds a namespace hostage.

The finalizer deletes the CronWorkflow's schedule on every backend it may have. QStash being
unreachable (here: the QStash-compatible server answering 503 to every call) must not keep the
CronWorkflow, and so its namespace, from going: a CronWorkflow that never used QStash does not
ask QStash at all, and one that did gives up after ``QSTASH_OPERATOR_FINALIZER_TIMEOUT`` with a
Warning event naming the schedule left behind (drift repair and the webhook's 489 clean it up).
"""

from __future__ import annotations

from typing import Any, Final

from qstash import QStash

from qstash_devstack.stack import Stack, cronworkflow, wait
from qstash_operator.domain.runs import parse_time

BOUND: Final = 6
"""Seconds the operator keeps retrying a QStash delete before it lets the CronWorkflow go."""


def schedule_ids(stack: Stack) -> set[str]:
    client = QStash(stack.qstash.token, base_url=stack.qstash.url, retry=False)
    return {schedule.schedule_id for schedule in client.schedule.list()}


def deleting(stack: Stack, name: str) -> dict[str, Any]:
    """Ask for the deletion without waiting, and return the object as the finalizer sees it
    (for a CronWorkflow whose finalizer cannot finish at once)."""
    stack.plane.kubectl("delete", "qcwf", name, "-n", stack.namespace, "--wait=false")
    body = stack.get("cronworkflow", name)
    assert body is not None, "the finalizer lets nothing go before it ran"
    assert body["metadata"].get("deletionTimestamp")
    return body


def test_a_cronworkflow_that_never_used_qstash_goes_at_once_while_qstash_is_down(
    stack: Stack,
) -> None:
    stack.operator(extra_env={"QSTASH_OPERATOR_FINALIZER_TIMEOUT": "600"})
    stack.apply(cronworkflow("local-only", {"backend": "CronJob"}))
    stack.wait_condition("local-only", "Ready", "True")
    stack.qstash.fail_api(None, status=503)  # every QStash call fails from now on

    stack.plane.kubectl("delete", "qcwf", "local-only", "-n", stack.namespace, "--wait=false")
    wait(
        lambda: stack.get("cronworkflow", "local-only") is None,
        timeout=20,
        what="the CronWorkflow to go without asking QStash",
    )
    assert stack.qstash.api_calls().get("schedules.delete", 0) == 0
    assert stack.get("cronjob", "local-only") is None


def test_a_schedule_qstash_will_not_delete_is_left_behind_after_the_bound_with_a_warning(
    stack: Stack,
) -> None:
    stack.operator(extra_env={"QSTASH_OPERATOR_FINALIZER_TIMEOUT": str(BOUND)})
    stack.apply(cronworkflow("stranded"))
    stack.wait_condition("stranded", "Ready", "True")
    sid = f"{stack.cluster_name}.{stack.namespace}.stranded"
    assert sid in schedule_ids(stack)
    stack.qstash.fail_api(None, status=503, routes=["schedules.delete"])

    asked_at = parse_time(deleting(stack, "stranded")["metadata"]["deletionTimestamp"])
    wait(
        lambda: stack.get("cronworkflow", "stranded") is None,
        timeout=BOUND + 40,
        what="the finalizer to give up on QStash",
    )
    assert stack.qstash.api_calls().get("schedules.delete", 0) >= 2, "retried before giving up"
    assert sid in schedule_ids(stack), "QStash never deleted it: it is left behind"
    [warning] = [
        event for event in stack.events("stranded") if event["reason"] == "QStashScheduleLeftBehind"
    ]
    assert warning["type"] == "Warning"
    assert sid in warning["message"]
    given_up_at = parse_time(warning["lastTimestamp"])
    assert asked_at is not None
    assert given_up_at is not None
    assert (given_up_at - asked_at).total_seconds() >= BOUND, "not before the bound"
