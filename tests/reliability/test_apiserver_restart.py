"""The API server goes away mid-run: QStash keeps retrying, every tick runs once, all recover.

Operator and webhook run as children; the CronWorkflows ask QStash for many quick retries
(``spec.qstash``: 100 retries, 1 s apart) so the retries outlast the outage. While kube-apiserver
is stopped, every schedule fires: the webhook cannot reach the API, answers 503, and QStash
retries. When the API server is back, each message succeeds, and each made exactly one Job
carrying its message id. Then the operator proves it is alive (a new CronWorkflow gets Ready, an
edit reaches QStash) and the webhook reports ready again.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from qstash import QStash
from tests.reliability.conftest import Tally

from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.stack import Stack, backdate_schedules, cronworkflow, http_get, wait

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

COUNT = 6
MESSAGE_ID = "qstash-operator.dev/message-id"


def test_deliveries_during_an_apiserver_outage_are_retried_and_run_once(
    stack: Stack, control_plane: ControlPlane, tally: Tally
) -> None:
    operator, _ = stack.operator()
    webhook = stack.webhook()
    spec = {"schedule": "* * * * *", "qstash": {"retries": 100, "retryDelay": "1000"}}
    names = [f"outage-{index}" for index in range(COUNT)]
    for name in names:
        stack.apply(cronworkflow(name, spec))
    for name in names:
        stack.wait_condition(name, "Ready", "True")
    backdate_schedules(stack, names)
    stack.qstash.set_settings(backoff_factor=1.0)  # retries really wait their second
    sids = {name: f"{stack.cluster_name}.{stack.namespace}.{name}" for name in names}

    with control_plane.apiserver_down():
        tally.fault("kube-apiserver outage")
        messages = {name: stack.qstash.fire(sids[name]) for name in names}

        def refused_twice() -> bool:
            for message_id in messages.values():
                attempts = stack.qstash.deliveries(message_id=message_id)
                if sum(1 for a in attempts if a["status"] == 503) < 2:
                    return False
            return True

        wait(refused_twice, timeout=60, what="every delivery refused with 503 twice")
        assert operator.running
        assert webhook.running
    failed_attempts = [
        attempt
        for message_id in messages.values()
        for attempt in stack.qstash.deliveries(message_id=message_id)
        if attempt["status"] != 200
    ]
    tally.fault("delivery refused during the outage", len(failed_attempts))

    for name, message_id in messages.items():
        outcome = stack.qstash.wait_for_message(message_id, timeout=90)
        assert outcome["state"] == "SUCCESS", (name, outcome)
    assert stack.qstash.settle(30)

    jobs = stack.list("jobs")
    by_message: dict[str, list[str]] = {}
    for job in jobs:
        annotations: dict[str, Any] = job["metadata"].get("annotations") or {}
        by_message.setdefault(annotations.get(MESSAGE_ID, "?"), []).append(job["metadata"]["name"])
    assert set(by_message) == set(messages.values()), by_message
    assert all(len(made) == 1 for made in by_message.values()), by_message
    assert {job["metadata"]["labels"]["qstash-operator.dev/cronworkflow"] for job in jobs} == set(
        names
    )
    tally.jobs_checked += len(jobs)

    # The operator is alive: a new object gets a schedule, an edit reaches QStash.
    stack.apply(cronworkflow("after-outage"))
    stack.wait_condition("after-outage", "Ready", "True", timeout=60)
    stack.apply(cronworkflow(names[0], {**spec, "schedule": "*/3 * * * *"}))
    client = QStash(stack.qstash.token, base_url=stack.qstash.url, retry=False)
    wait(
        lambda: client.schedule.get(sids[names[0]]).cron == "CRON_TZ=UTC */3 * * * *",
        timeout=60,
        what="the edit after the outage to reach QStash",
    )
    # The webhook is ready again (keys loaded, API reachable).
    wait(
        lambda: http_get(f"{stack.public_url}/readyz")[0] == 200,
        timeout=30,
        what="the webhook to be ready",
    )
    status, text = http_get(f"{stack.public_url}/readyz")
    assert json.loads(text)["checks"]["kubernetesApi"] is True, (status, text)
