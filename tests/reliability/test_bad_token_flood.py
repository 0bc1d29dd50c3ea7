"""A flood of bad bearer tokens at the API does not slow deliveries down.

The webhook runs as a child through the real CLI, so it has the process's two Kubernetes clients:
deliveries on one connection pool, token reviews on another, and failed reviews rate-limited
(``qstash_webhook.access``). One CronWorkflow receives signed deliveries, a few at a time, and
each delivery's latency is measured at the client: first a baseline, then the same again while
another process keeps 64 requests with random tokens in flight against ``GET /api/cron``. Every
figure is printed; the assertion is a generous bound on the flood's p99 against the baseline's
measured in the same test, plus the limit's own effect: the flood costs the API server only the
reviews the limits allow, and is otherwise answered 429.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest
from tests.reliability.conftest import Tally

from qstash_devstack.stack import REPO, Stack, cronworkflow
from qstash_operator.domain import builders, signature
from qstash_webhook.access import FAILED_REVIEWS_IN_ALL

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DELIVERIES: Final = 300
"""Per phase: enough that p99 is the third slowest, not the slowest."""
IN_FLIGHT: Final = 4
"""Deliveries in flight at once: a busy minute's fan-out, a few at a time."""
FLOOD_WORKERS: Final = 64
"""Bad-token requests kept in flight: as many as the deliveries' own connection pool holds."""
P99_FACTOR: Final = 3.0
P99_SLACK_SECONDS: Final = 0.25
"""The bound: the flood's p99 stays under three times the baseline's, or the baseline's plus a
quarter second, whichever is larger (two cores are shared by the API server, etcd, the webhook,
the flood and this test; the bound is about not queueing behind reviews, not about noise)."""


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


async def deliveries(stack: Stack, uid: str, label: str, count: int) -> list[float]:
    """``count`` signed deliveries, ``IN_FLIGHT`` at a time; the seconds each took."""
    body = json.dumps(
        {"namespace": stack.namespace, "name": "target", "uid": uid}, separators=(",", ":")
    ).encode()
    destination = builders.webhook_destination(stack.public_url)
    url = f"{stack.public_url}/api/qstash/webhook"
    seconds: list[float] = []
    gate = asyncio.Semaphore(IN_FLIGHT)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def one(n: int) -> None:
            message_id = f"msg_{label}_{n:04d}"
            token = signature.sign(
                body=body,
                url=destination,
                key=stack.qstash.current_key,
                now=int(time.time()),
                jwt_id=f"jwt_{message_id}",
            )
            headers = {"Upstash-Signature": token, "Upstash-Message-Id": message_id}
            async with gate:
                began = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    assert response.status == 200, (response.status, await response.text())
                seconds.append(time.perf_counter() - began)

        await asyncio.gather(*(one(n) for n in range(count)))
    return seconds


def token_reviews(stack: Stack) -> dict[str, float]:
    with urllib.request.urlopen(f"{stack.public_url}/metrics", timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    found = re.findall(r'^qstash_webhook_token_reviews_total\{result="(\w+)"\} (\S+)$', text, re.M)
    return {result: float(value) for result, value in found}


def test_deliveries_keep_their_p99_under_a_bad_token_flood(
    stack: Stack, tally: Tally, tmp_path: Path
) -> None:
    stack.webhook()
    stack.apply(cronworkflow("target", {"schedule": "* * * * *"}))
    target = stack.get("cronworkflow", "target")
    assert target is not None
    uid = target["metadata"]["uid"]

    asyncio.run(deliveries(stack, uid, "warm", 20))
    baseline = asyncio.run(deliveries(stack, uid, "base", DELIVERIES))

    report = tmp_path / "flood.json"
    flood = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.token_flood", stack.public_url,
         str(FLOOD_WORKERS), str(report)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        started = report.with_suffix(".started")
        deadline = time.monotonic() + 30
        while not started.exists():
            assert flood.poll() is None, "the flood exited before it started"
            assert time.monotonic() < deadline, "the flood did not start in 30 s"
            time.sleep(0.05)
        reviews_before = token_reviews(stack)
        flooded = asyncio.run(deliveries(stack, uid, "flood", DELIVERIES))
        reviews_after = token_reviews(stack)
    finally:
        flood.send_signal(signal.SIGTERM)
        flood.wait(30)
    sent: dict[str, Any] = json.loads(report.read_text())
    tally.fault("bad-token flood requests", sent["requests"])

    spent = {k: reviews_after.get(k, 0.0) - reviews_before.get(k, 0.0) for k in reviews_after}
    p50_base, p99_base = percentile(baseline, 0.5), percentile(baseline, 0.99)
    p50_flood, p99_flood = percentile(flooded, 0.5), percentile(flooded, 0.99)
    flood_seconds = sum(flooded) / IN_FLIGHT  # about how long the measured phase lasted
    bound = max(P99_FACTOR * p99_base, p99_base + P99_SLACK_SECONDS)
    print(
        f"\ndeliveries, {DELIVERIES} per phase, {IN_FLIGHT} in flight: baseline p50 "
        f"{p50_base * 1000:.1f} ms p99 {p99_base * 1000:.1f} ms; under the flood p50 "
        f"{p50_flood * 1000:.1f} ms p99 {p99_flood * 1000:.1f} ms (bound {bound * 1000:.0f} ms)."
        f"\nflood: {sent['requests']} requests in {sent['seconds']:.1f} s "
        f"({sent['requests'] / sent['seconds']:.0f}/s, {FLOOD_WORKERS} in flight), answers "
        f"{sent['statuses']}; token reviews while deliveries were measured: "
        f"{ {k: int(v) for k, v in spent.items()} }"
    )
    assert p99_flood <= bound
    # What the limits promise: a review only for the shared bucket's burst and refill.
    allowed = FAILED_REVIEWS_IN_ALL.burst + FAILED_REVIEWS_IN_ALL.per_second * (flood_seconds + 5)
    assert spent.get("rejected", 0.0) <= allowed
    assert spent.get("limited", 0.0) > 10 * spent.get("rejected", 0.0)
