"""Availability: two replicas never fight, and a kill -9 mid-reconcile loses and leaks nothing."""

from __future__ import annotations

import json
import random

from qstash import QStash

from qstash_devstack.stack import Stack, cronworkflow, http_get, wait
from tests.e2e.test_operator_qstash import metric, schedule_id, sdk


def leader_of(ports: list[int]) -> list[int]:
    leaders = []
    for port in ports:
        status, text = http_get(f"http://127.0.0.1:{port}/readyz")
        if status == 200 and json.loads(text).get("leader"):
            leaders.append(port)
    return leaders


def test_two_replicas_elect_one_leader_and_the_other_takes_over(stack: Stack) -> None:
    first, first_port = stack.operator(leader_election=True, name="replica-a")
    wait(lambda: leader_of([first_port]) == [first_port], what="the first replica to lead")
    second, second_port = stack.operator(leader_election=True, name="replica-b")
    stack.apply(cronworkflow("led"))
    stack.wait_condition("led", "Ready", "True")
    assert leader_of([first_port, second_port]) == [first_port]
    assert "acquired leader lease" not in second.output()
    assert metric(first_port, "qstash_operator_leader") == 1.0
    assert metric(second_port, "qstash_operator_leader") == 0.0
    assert http_get(f"http://127.0.0.1:{second_port}/healthz")[0] == 200  # a standby is alive

    first.kill()
    wait(
        lambda: leader_of([second_port]) == [second_port],
        timeout=45,
        what="the standby to take over",
    )
    stack.apply(cronworkflow("after-failover"))
    stack.wait_condition("after-failover", "Ready", "True", timeout=30)
    lease = json.loads(
        stack.plane.kubectl(
            "get", "lease", "qstash-operator", "-n", stack.namespace, "-o", "json"
        ).stdout
    )
    assert lease["spec"]["holderIdentity"].startswith("replica-b")


def test_kill_9_during_reconciliation_of_200_leaves_every_one_ready_and_nothing_orphaned(
    stack: Stack,
) -> None:
    names = [f"bulk-{index:03d}" for index in range(200)]
    manifest = {"apiVersion": "v1", "kind": "List", "items": [cronworkflow(name) for name in names]}
    stack.plane.kubectl("apply", "-n", stack.namespace, "-f", "-", input=json.dumps(manifest))
    operator, _ = stack.operator()
    client: QStash = sdk(stack)
    threshold = random.randint(20, 140)  # a random point in the middle of the work

    def schedules() -> set[str]:
        prefix = f"{stack.cluster_name}."
        return {s.schedule_id for s in client.schedule.list() if s.schedule_id.startswith(prefix)}

    wait(lambda: len(schedules()) >= threshold, timeout=120, what=f"{threshold} schedules")
    operator.kill()
    halfway = len(schedules())
    assert halfway < len(names), "the kill came too late to test anything"

    stack.operator(name="restarted")

    def all_ready() -> bool:
        items = stack.list("cronworkflows")
        ready = [
            item
            for item in items
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in item.get("status", {}).get("conditions", [])
            )
        ]
        return len(ready) == len(names)

    wait(all_ready, timeout=240, what="all 200 CronWorkflows Ready after the restart")
    assert schedules() == {schedule_id(stack, name) for name in names}
    # each schedule points at its own CronWorkflow (uid in the body)
    uids = {
        item["metadata"]["name"]: item["metadata"]["uid"] for item in stack.list("cronworkflows")
    }
    for schedule in client.schedule.list():
        if schedule.schedule_id.startswith(f"{stack.cluster_name}."):
            body = json.loads(schedule.body or "{}")
            assert body["uid"] == uids[body["name"]]
