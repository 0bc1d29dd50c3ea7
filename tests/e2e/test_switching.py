"""Switching backends: the tick in between runs once, not twice and not zero times.

Real time on purpose: the CronJob side is the real kube-controller-manager, which fires on the
wall-clock minute, so the QStash-compatible server runs on the wall clock too and the webhook
makes the QStash side's Jobs. The test polls with deadlines; it never sleeps to a minute.

Rule under test (``domain/backend.py``): the new backend's schedule is created first, the old one
stays until the first tick after the new one is live (plus a margin), and the Job name
``<name>-<unix minutes>`` lets only one Job exist per tick. So every minute from the first run to
the last has exactly one Job, across two switches.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.stack import Stack, cronworkflow, wait
from qstash_server.testing import ThreadedServer

NAME = "switcher"
SELECTOR = f"qstash-operator.dev/cronworkflow={NAME}"


@pytest.fixture
def live_stack(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    with ThreadedServer(driven_clock=False, backoff_factor=0.01) as server:
        stack = Stack(control_plane, server, tmp_path, namespace)
        try:
            yield stack
        finally:
            stack.stop()


def minute_of(job: dict[str, Any]) -> int:
    return int(job["metadata"]["name"].rsplit("-", 1)[1])


def job_minutes(stack: Stack) -> list[int]:
    return sorted(minute_of(job) for job in stack.list("jobs", SELECTOR))


def status(stack: Stack) -> dict[str, Any]:
    return dict((stack.get("cronworkflow", NAME) or {}).get("status") or {})


def switch(stack: Stack, backend: str) -> None:
    patch = f'{{"spec":{{"backend":"{backend}"}}}}'
    stack.plane.kubectl("patch", "qcwf", NAME, "-n", stack.namespace, "--type=merge", "-p", patch)


def now_minute() -> int:
    return int(datetime.now(UTC).timestamp()) // 60


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_switching_both_ways_runs_every_tick_exactly_once(live_stack: Stack) -> None:
    stack = live_stack
    stack.webhook()
    stack.operator()
    spec = {"schedule": "* * * * *", "successfulJobsHistoryLimit": 30, "failedJobsHistoryLimit": 30}
    stack.apply(cronworkflow(NAME, spec))
    stack.wait_condition(NAME, "Ready", "True")
    assert status(stack)["backend"] == "QStash"
    wait(lambda: job_minutes(stack), timeout=90, what="the first tick delivered by QStash")
    first = job_minutes(stack)[0]

    # QStash -> CronJob: the CronJob comes first, the QStash schedule stays for the shared tick.
    switch(stack, "CronJob")
    wait(lambda: status(stack).get("backend") == "CronJob", what="the switch to CronJob")
    assert status(stack)["handover"]["from"] == "QStash"
    assert stack.get("cronjob", NAME) is not None
    wait(lambda: "handover" not in status(stack), timeout=150, what="the QStash schedule to retire")
    assert stack.qstash.api_calls().get("schedules.delete", 0) == 1
    retired_at = now_minute()
    wait(
        lambda: job_minutes(stack)[-1] > retired_at,
        timeout=90,
        what="a tick run by the CronJob alone",
    )

    # CronJob -> QStash: the schedule comes first (QStash may take a minute to load it).
    switch(stack, "Auto")
    wait(lambda: status(stack).get("backend") == "QStash", what="the switch back to QStash")
    assert status(stack)["handover"]["from"] == "CronJob"
    wait(lambda: "handover" not in status(stack), timeout=180, what="the CronJob to retire")
    wait(lambda: stack.get("cronjob", NAME) is None, what="the CronJob to be deleted")
    back_at = now_minute()
    wait(lambda: job_minutes(stack)[-1] > back_at, timeout=90, what="a tick run by QStash alone")

    minutes = job_minutes(stack)
    last = minutes[-1]
    assert minutes == list(range(first, last + 1)), f"every tick once: {minutes}"
    jobs = stack.list("jobs", SELECTOR)
    backends = {job["metadata"]["annotations"].get("qstash-operator.dev/backend") for job in jobs}
    assert backends == {"QStash", "CronJob"}, backends
    reasons = [event["reason"] for event in stack.events(NAME)]
    assert reasons.count("BackendChanged") == 2
    assert reasons.count("HandoverComplete") == 2
