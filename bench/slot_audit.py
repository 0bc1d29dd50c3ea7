"""What the slot audit costs the API server at 1,000 CronWorkflows, and the ledger's size.

The operator (QStash mode, a child process, the audit every 30 s) runs over N CronWorkflows; the
API server's own ``apiserver_request_total`` (``kubectl get --raw /metrics``) is read before and
after a window, and the difference is reported per minute by verb and resource. Two windows:

- ``steady``: daily schedules whose slots are all accounted for (none due in the window): what
  the audit costs when there is nothing to say. The baseline is the same window with the audit
  period set beyond the window (``QSTASH_OPERATOR_SLOT_AUDIT_SECONDS``), i.e. the operator
  without the audit: the difference is the audit's cost.
- ``all-missed``: every-minute schedules that nothing delivers (no webhook, the QStash server's
  clock driven): each minute every CronWorkflow gets a new Missed slot, so the audit writes
  once and posts one ``MissedSchedule`` event per object per minute: the worst case.

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

from bench import harness
from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.stack import Stack, cronworkflow
from qstash_operator.domain import cron, slots
from qstash_server.testing import ServerProcess

NAMESPACE = "bench-slots"
_SAMPLE = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')
SETTLE_SECONDS = 20.0


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


async def window(
    plane: ControlPlane, stack: Stack, *, audit_seconds: float, minutes: float, name: str
) -> dict[str, Any]:
    operator, _ = stack.operator(
        name=name,
        extra_env={
            "QSTASH_OPERATOR_SLOT_AUDIT_SECONDS": f"{audit_seconds:g}",
            "QSTASH_OPERATOR_RESYNC_SECONDS": "100000",  # the drift check is not measured here
        },
    )
    try:
        await asyncio.sleep(SETTLE_SECONDS)  # resumed; first audits done
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
        # Daily at 15:00 UTC: no slot falls due in the windows (unless run across 15:00).
        await converge(plane, stack, count, "0 15 * * *", "converge-daily")
        without = await window(plane, stack, audit_seconds=1e6, minutes=minutes, name="no-audit")
        steady = await window(plane, stack, audit_seconds=30, minutes=minutes, name="audit")
        await converge(plane, stack, count, "* * * * *", "converge-every-minute")
        missed = await window(plane, stack, audit_seconds=30, minutes=minutes, name="all-missed")
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
        "audit_requests_per_minute_steady": round(
            steady["requests_per_minute"] - without["requests_per_minute"], 1
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
    steady, without, missed = result["steady"], result["without_audit"], result["all_missed"]
    return [
        harness.Row(
            f"slot audit (N={count})",
            "API requests/min, all slots accounted for",
            f"{steady['requests_per_minute']:.1f}",
            f"{without['requests_per_minute']:.1f}",
            "-",
            "baseline: the operator without the audit; difference "
            f"{result['audit_requests_per_minute_steady']:.1f}/min",
        ),
        harness.Row(
            f"slot audit (N={count})",
            "API requests/min, every slot missed",
            f"{missed['requests_per_minute']:.1f}",
            f"{count * 2}",
            f"{missed['requests_per_minute'] / (count * 2):.2f}",
            "baseline: one status write and one event per object per minute",
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
