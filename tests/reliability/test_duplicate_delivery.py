"""Every message delivered three times at once, to two webhook replicas: one Job per tick.

Two webhook replicas run as children behind :class:`FanOut`, which sits on the public URL and
sends each delivery three times concurrently, alternating replicas. The CronWorkflows mix all
three concurrency policies (Forbid and Replace take the reservation path, with conditional status
writes). Every schedule fires twice in quick succession (two messages, normally for the same
tick): six concurrent attempts per tick across two processes. Afterwards, per CronWorkflow and
tick, exactly one Job; every Job carries the message id of one fired message; every message ended
in success.
"""

from __future__ import annotations

import collections

import pytest
from tests.reliability.conftest import Tally
from tests.reliability.fanout import FanOut

from qstash_devstack.stack import Stack, backdate_schedules, cronworkflow, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

COUNT = 24
WAVES = 2
COPIES = 3
POLICIES = ("Allow", "Forbid", "Replace")
SCHEDULED = "qstash-operator.dev/scheduled-time"
MESSAGE_ID = "qstash-operator.dev/message-id"


def test_three_concurrent_copies_to_two_replicas_make_one_job_per_tick(
    stack: Stack, tally: Tally
) -> None:
    stack.operator()
    replicas = [stack.webhook(port=free_port()) for _ in range(2)]
    urls = [
        f"http://127.0.0.1:{replica.args[replica.args.index('--port') + 1]}" for replica in replicas
    ]
    names = [f"dup-{index:02d}" for index in range(COUNT)]
    for index, name in enumerate(names):
        policy = POLICIES[index % len(POLICIES)]
        stack.apply(cronworkflow(name, {"schedule": "* * * * *", "concurrencyPolicy": policy}))
    for name in names:
        stack.wait_condition(name, "Ready", "True")
    backdate_schedules(stack, names)

    fired: dict[str, str] = {}  # message id -> CronWorkflow
    with FanOut(port=stack.webhook_port, replicas=urls, copies=COPIES) as proxy:
        for _ in range(WAVES):
            for name in names:
                fired[stack.qstash.fire(f"{stack.cluster_name}.{stack.namespace}.{name}")] = name
        for message_id in fired:
            outcome = stack.qstash.wait_for_message(message_id, timeout=60)
            assert outcome["state"] == "SUCCESS", outcome
        assert stack.qstash.settle(30)
    tally.fault("concurrent duplicate delivery", proxy.sent - proxy.requests)

    assert proxy.sent == COPIES * proxy.requests
    assert proxy.requests >= len(fired)
    assert not [status for status in proxy.statuses if status >= 500 and status != 503], (
        proxy.statuses
    )

    jobs = stack.list("jobs")
    per_tick: collections.Counter[tuple[str, str]] = collections.Counter()
    for job in jobs:
        meta = job["metadata"]
        owner = meta["labels"]["qstash-operator.dev/cronworkflow"]
        per_tick[(owner, meta["annotations"][SCHEDULED])] += 1
        assert fired.get(meta["annotations"][MESSAGE_ID]) == owner, meta
    assert all(count == 1 for count in per_tick.values()), {
        key: count for key, count in per_tick.items() if count != 1
    }
    assert {owner for owner, _ in per_tick} == set(names)
    assert len(jobs) <= WAVES * COUNT
    tally.jobs_checked += len(jobs)
    print(
        f"{len(fired)} messages, {proxy.requests} deliveries, {proxy.sent} copies to "
        f"{len(replicas)} replicas ({dict(proxy.statuses)}); {len(jobs)} Jobs for "
        f"{len(per_tick)} ticks"
    )
