"""QStash answering 5xx or 429 to everything for a while: no hot loop, and convergence after.

During a storm every API call fails, so every call QStash sees is a retry: counting them bounds
the retry rate. The bounds are what the operator promises:

- 5xx: an outage, retried from 2 s and doubling per attempt (``domain.retry``), so a
  CronWorkflow makes at most ~log2(storm / 2) + 2 attempts in a storm, and each attempt stops at
  the first failing call;
- 429: retried from the time the rate-limit window resets (``Burst-RateLimit-Reset``: one
  second here), doubling per attempt too, so a thousand objects do not all come back at each
  reset and keep the limit hit (before this suite, each retried every second: 180 calls here).

A hot loop would be hundreds of calls per object. After the storm every CronWorkflow converges:
Ready, with its schedule in QStash.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from qstash import QStash
from tests.reliability.conftest import Tally

from qstash_devstack.stack import Stack, cronworkflow, wait

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

COUNT = 12
STORM_SECONDS = 15.0


def ready_count(stack: Stack) -> int:
    return sum(
        1
        for item in stack.list("cronworkflows")
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (item.get("status") or {}).get("conditions") or []
        )
    )


@pytest.mark.parametrize(
    ("storm", "bound_per_object"),
    [
        pytest.param(
            {"kind": "apiErrors", "status": 503},
            math.log2(STORM_SECONDS / 2) + 2,
            id="503 on every call: exponential backoff from 2 s",
        ),
        pytest.param(
            {"kind": "apiErrors", "status": 500},
            math.log2(STORM_SECONDS / 2) + 2,
            id="500 on every call: the same backoff",
        ),
        pytest.param(
            {"kind": "rateLimit", "family": "burst"},
            math.log2(STORM_SECONDS / 1) + 2,
            id="429 burst limit on every call: exponential backoff from the 1 s reset",
        ),
    ],
)
def test_a_storm_costs_a_bounded_number_of_calls_and_heals(
    stack: Stack, tally: Tally, storm: dict[str, Any], bound_per_object: float
) -> None:
    kind = storm["kind"]
    if kind == "apiErrors":
        stack.qstash.fail_api(None, status=storm["status"])
        label = f"QStash {storm['status']} storm"
    else:
        stack.qstash.rate_limit_api(None, family=storm["family"])
        label = "QStash 429 storm"
    stack.operator()
    names = [f"storm-{index:02d}" for index in range(COUNT)]
    manifest = {"apiVersion": "v1", "kind": "List", "items": [cronworkflow(n) for n in names]}
    began = time.monotonic()
    stack.plane.kubectl("apply", "-n", stack.namespace, "-f", "-", input=json.dumps(manifest))
    wait(lambda: time.monotonic() - began >= STORM_SECONDS, timeout=60, what="the storm")
    calls = stack.qstash.api_calls()
    during = sum(calls.values())
    stack.qstash.clear_faults()
    tally.fault(label)
    tally.qstash_calls_in_storms[f"{label}, {COUNT} objects, {STORM_SECONDS:.0f}s"] = during

    assert ready_count(stack) == 0, "nothing can be Ready while QStash refuses everything"
    assert during >= COUNT, f"each CronWorkflow tried at least once: {calls}"
    assert during <= COUNT * bound_per_object, (
        f"{during} QStash calls from {COUNT} CronWorkflows in {STORM_SECONDS:.0f}s is a hot "
        f"loop (bound {COUNT * bound_per_object:.0f}): {calls}"
    )
    reasons = {event["reason"] for name in names[:3] for event in stack.events(name)}
    assert reasons & {"QStashUnavailable", "QStashRateLimited"}, reasons

    wait(lambda: ready_count(stack) == COUNT, timeout=120, what="all Ready after the storm")
    client = QStash(stack.qstash.token, base_url=stack.qstash.url, retry=False)
    held = {s.schedule_id for s in client.schedule.list()}
    assert held == {f"{stack.cluster_name}.{stack.namespace}.{name}" for name in names}
    print(f"{label}: {during} calls in {STORM_SECONDS:.0f}s from {COUNT} objects: {calls}")
