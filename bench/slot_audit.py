"""What the slot audit costs the API server at 1,000 CronWorkflows, and the ledger's size.

The operator (QStash mode, a child process, the audit every 30 s) runs over N CronWorkflows; the
API server's own ``apiserver_request_total`` (``kubectl get --raw /metrics``) is read before and
after a window, and the difference is reported per minute by verb and resource. Two windows:

Each window starts once the restarted operator has resumed every object (its reconcile count
holds still), so the resume's writes are not counted.

- ``steady``: daily schedules whose slots are all accounted for (none due in the window): what
  the audit costs when there is nothing to say (the operator's other timer writes nothing here
  either: ``nextScheduleTime`` does not move).
- ``all-missed``: every-minute schedules that nothing delivers (no webhook, the QStash server's
  clock driven): each minute every CronWorkflow gets a new Missed slot, so the audit writes
  once and posts one ``MissedSchedule`` event per object per minute: the worst case. Its
  baseline is the same window with the audit period beyond the window
  (``QSTASH_OPERATOR_SLOT_AUDIT_SECONDS``), i.e. the operator without the audit (whose refresh
  timer moves ``nextScheduleTime`` every minute); the difference is the audit's cost.

The ledger's size is read from the stored objects at the end (largest ``status.recentSlots`` as
compact JSON), beside the bound (100 entries, every field at its longest).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import convergence, harness
from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.stack import Stack, cronworkflow
from qstash_operator.domain import cron, slots
from qstash_server.testing import ServerProcess

NAMESPACE = "bench-slots"
_SAMPLE = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')
RESUME_TIMEOUT = 600.0
STILL_SECONDS = 10.0


def requests(plane: ControlPlane) -> Counter[str]:
    """``apiserver_request_total`` summed by "VERB resource[/subresource]"."""
    text = plane.kubectl("get", "--raw", "/metrics", timeout=60).stdout
    totals: Counter[str] = Counter()
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match.group(1)))
        if labels.get("resource") in (None, ""):
            continue
        what = labels["resource"] + (
            f"/{labels['subresource']}" if labels.get("subresource") else ""
        )
        totals[f"{labels.get('verb', '?')} {what}"] += int(float(match.group(2)))
    return totals


def ours(delta: Counter[str]) -> dict[str, int]:
    """The requests an operator makes about CronWorkflows, Jobs and events."""
    keep = ("cronworkflows", "jobs", "events")
    return {
        key: value
        for key, value in sorted(delta.items())
        if value and key.split()[1].split("/")[0] in keep
    }


async def resumed(port: int, count: int) -> float:
    """Seconds until the restarted operator has reconciled every object once and is still: its
    resume (a dry-run Job and a status write per object) is not the audit's cost."""
    began = time.monotonic()
    last, still_since = -1.0, time.monotonic()
    while time.monotonic() - began < RESUME_TIMEOUT:
        now_count = convergence.reconciles(port)
        if now_count != last:
            last, still_since = now_count, time.monotonic()
        elif now_count >= count and time.monotonic() - still_since >= STILL_SECONDS:
            return still_since - began
        await asyncio.sleep(1.0)
    raise RuntimeError(f"the operator reconciled {last} of {count} in {RESUME_TIMEOUT:.0f}s")


async def window(
    plane: ControlPlane,
    stack: Stack,
    *,
    count: int,
    audit_seconds: float,
    minutes: float,
    name: str,
) -> dict[str, Any]:
    operator, port = stack.operator(
        name=name,
        extra_env={
            "QSTASH_OPERATOR_SLOT_AUDIT_SECONDS": f"{audit_seconds:g}",
            "QSTASH_OPERATOR_RESYNC_SECONDS": "100000",  # the drift check is not measured here
        },
    )
    try:
        resume_seconds = await resumed(port, count)
        await asyncio.sleep(audit_seconds if audit_seconds < 120 else 0)  # first audits done
        before = requests(plane)
        began = time.monotonic()
        await asyncio.sleep(minutes * 60)
        after = requests(plane)
        seconds = time.monotonic() - began
    finally:
        operator.stop()
    delta = after - before
    counted = ours(delta)
    per_minute = sum(counted.values()) / (seconds / 60)
    return {
        "audit_seconds": audit_seconds,
        "resume_seconds": round(resume_seconds, 1),
        "window_seconds": round(seconds, 1),
        "requests_by_verb_resource": counted,
        "requests_per_minute": round(per_minute, 1),
    }


def ledger_bytes(plane: ControlPlane) -> dict[str, int]:
    items = harness.list_items(
        plane, f"/apis/qstash-operator.dev/v1alpha1/namespaces/{NAMESPACE}/cronworkflows"
    )
    sizes = [
        len(json.dumps((i.get("status") or {}).get("recentSlots") or [], separators=(",", ":")))
        for i in items
    ]
    return {
        "largest": max(sizes, default=0),
        "entries_largest": max(
            (len((i.get("status") or {}).get("recentSlots") or []) for i in items), default=0
        ),
    }


async def converge(plane: ControlPlane, stack: Stack, count: int, schedule: str, name: str) -> None:
    """Apply N CronWorkflows on ``schedule`` and run an operator until every one has it applied
    (not measured: the windows start from a settled cluster)."""
    manifests = [cronworkflow(f"cw-{i:04d}", {"schedule": schedule}) for i in range(count)]
    await asyncio.to_thread(harness.apply_list, plane, NAMESPACE, manifests)
    operator, _ = stack.operator(name=name)
    applied = cron.parse(schedule).qstash_cron()  # what status.appliedSchedule records
    path = f"/apis/qstash-operator.dev/v1alpha1/namespaces/{NAMESPACE}/cronworkflows"
    try:
        while True:
            items = await asyncio.to_thread(harness.list_items, plane, path)
            done = sum(
                harness.ready(i) and (i.get("status") or {}).get("appliedSchedule") == applied
                for i in items
            )
            if done >= count:
                return
            await asyncio.sleep(2)
    finally:
        operator.stop()


async def measure(plane: ControlPlane, count: int, minutes: float) -> dict[str, Any]:
    harness.create_namespace(plane, NAMESPACE)
    workdir = Path(tempfile.mkdtemp(prefix="qso-bench-slots-"))
    server = ServerProcess("--driven-clock")
    await server.start()
    stack = Stack(plane, server, workdir, NAMESPACE)  # type: ignore[arg-type]  # same surface
    try:
        # Daily at 15:00 UTC: no slot falls due in the window (unless run across 15:00).
        await converge(plane, stack, count, "0 15 * * *", "converge-daily")
        steady = await window(
            plane, stack, count=count, audit_seconds=30, minutes=minutes, name="daily-audit"
        )
        await converge(plane, stack, count, "* * * * *", "converge-every-minute")
        without = await window(
            plane, stack, count=count, audit_seconds=1e6, minutes=minutes, name="minutely-no-audit"
        )
        missed = await window(
            plane, stack, count=count, audit_seconds=30, minutes=minutes, name="minutely-audit"
        )
        size = ledger_bytes(plane)
    finally:
        stack.stop()
        await server.stop()
    return {
        "benchmark": "slot-audit",
        "count": count,
        "without_audit": without,
        "steady": steady,
        "all_missed": missed,
        "audit_requests_per_minute_all_missed": round(
            missed["requests_per_minute"] - without["requests_per_minute"], 1
        ),
        "ledger_bytes": size,
        "ledger_bytes_bound": slots.MAX_LEDGER_BYTES,
        "kubernetes": harness.kubernetes_version(plane),
        "logs": str(workdir),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    with harness.control_plane() as plane:
        return asyncio.run(measure(plane, args.count, args.minutes))


def rows(result: dict[str, Any]) -> list[harness.Row]:
    count = result["count"]
    steady, without = result["steady"], result["without_audit"]
    return [
        harness.Row(
            f"slot audit (N={count})",
            "API requests/min, every slot accounted for",
            f"{steady['requests_per_minute']:.1f}",
            "0",
            "-",
            "daily schedules, none due: the audit reads caches and writes nothing",
        ),
        harness.Row(
            f"slot audit (N={count})",
            "API requests/min added, every slot missed",
            f"{result['audit_requests_per_minute_all_missed']:.1f}",
            f"{count * 2}",
            f"{result['audit_requests_per_minute_all_missed'] / (count * 2):.2f}",
            "every-minute, nothing delivers; baseline: one write and one event per object "
            f"per minute; without the audit {without['requests_per_minute']:.0f}/min",
        ),
        harness.Row(
            f"slot audit (N={count})",
            "largest status.recentSlots, bytes",
            f"{result['ledger_bytes']['largest']}",
            f"{result['ledger_bytes_bound']}",
            "-",
            f"{result['ledger_bytes']['entries_largest']} entries; baseline: the bound at 100",
        ),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=1000, help="CronWorkflows (default 1000)")
    parser.add_argument("--minutes", type=float, default=3.0, help="length of each window")
