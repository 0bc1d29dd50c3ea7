"""The webhook's memory with its caches full: N CronWorkflows and J Jobs of theirs.

N CronWorkflows are stored (POSTed at once, like the tick-to-job floor: ``kubectl apply`` of
10,000 takes minutes and is not what is measured; no operator runs, nothing fires) and J Jobs
carrying their labels are created directly (an unthrottled client, like the tick-to-job floor),
each Job with ``spec.managedBy`` naming no controller, so the job controller leaves them alone
and the run measures the webhook, not 30,000 status updates at the controller's QPS 20. Then the
webhook starts with its caches on; the time until both caches hold everything (its
``qstash_webhook_cache_objects``) is its cold sync, and its ``VmHWM`` / ``VmRSS`` then are the
figures. The baseline is the same webhook with ``QSTASH_WEBHOOK_CACHE=false`` (no caches).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import harness
from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.processes import free_port
from qstash_devstack.stack import Stack, cronworkflow, http_get
from qstash_server.testing import ServerProcess

NAMESPACE = "bench-memory"
NOT_A_CONTROLLER = "bench.qstash-operator.dev/nobody"
SYNC_TIMEOUT = 600.0


def job_of(cw: dict[str, Any], index: int) -> dict[str, Any]:
    meta = cw["metadata"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{meta['name']}-{29_000_000 + index}",
            "labels": {
                "app.kubernetes.io/managed-by": "qstash-operator",
                "qstash-operator.dev/cronworkflow": meta["name"],
                "qstash-operator.dev/cronworkflow-uid": meta["uid"],
                "qstash-operator.dev/trigger": "schedule",
            },
            "annotations": {
                "qstash-operator.dev/scheduled-time": "2026-12-01T00:00:00Z",
                "qstash-operator.dev/message-id": f"msg_{meta['uid'][:8]}_{index}",
            },
        },
        "spec": {
            "suspend": True,
            "managedBy": NOT_A_CONTROLLER,
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox:1.36", "args": ["true"]}],
                }
            },
        },
    }


def cache_objects(port: int) -> dict[str, float]:
    status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    found: dict[str, float] = {}
    if status != 200:
        return found
    for line in text.splitlines():
        for name in ("qstash_webhook_cache_objects", "qstash_webhook_cache_bytes"):
            if line.startswith(name + '{kind="'):
                kind = line.split('"')[1]
                found[f"{name.rsplit('_', 1)[1]}.{kind}"] = float(line.rsplit(" ", 1)[1])
    return found


async def one_webhook(stack: Stack, count: int, jobs: int, *, cache: bool) -> dict[str, Any]:
    port = free_port()
    began = time.monotonic()
    child = stack.webhook(port=port, extra_env={"QSTASH_WEBHOOK_CACHE": str(cache).lower()})
    assert child.process is not None
    synced_seconds = None
    objects: dict[str, float] = {}
    if cache:
        while time.monotonic() - began < SYNC_TIMEOUT:
            objects = await asyncio.to_thread(cache_objects, port)
            if (
                objects.get("objects.cronworkflows", 0) >= count
                and objects.get("objects.jobs", 0) >= jobs
            ):
                synced_seconds = time.monotonic() - began
                break
            await asyncio.sleep(0.5)
        else:
            raise RuntimeError(
                f"the webhook's caches did not fill in {SYNC_TIMEOUT:.0f}s: {objects}"
            )
    else:
        await asyncio.sleep(2.0)
    memory = harness.memory_kib(child.process.pid)
    child.stop()
    stack.children.remove(child)
    return {
        "cache": cache,
        "start_to_caches_full_seconds": round(synced_seconds, 1) if synced_seconds else None,
        "peak_rss_mib": round(memory["VmHWM"] / 1024, 1),
        "rss_mib": round(memory["VmRSS"] / 1024, 1),
        "cache_figures": objects,
    }


async def measure(plane: ControlPlane, count: int, jobs_per: int) -> dict[str, Any]:
    harness.create_namespace(plane, NAMESPACE)
    workdir = Path(tempfile.mkdtemp(prefix="qso-bench-memory-"))
    server = ServerProcess("--driven-clock")
    await server.start()
    stack = Stack(plane, server, workdir, NAMESPACE)  # type: ignore[arg-type]
    try:
        manifests = [
            cronworkflow(f"cw-{index:05d}", {"schedule": "0 3 * * *"}) for index in range(count)
        ]
        path = f"/apis/qstash-operator.dev/v1alpha1/namespaces/{NAMESPACE}/cronworkflows"
        began = time.monotonic()
        for manifest in manifests:
            manifest["metadata"]["namespace"] = NAMESPACE
        _, refused = await harness.create_unthrottled(plane, path, manifests)
        if refused:
            raise RuntimeError(f"{refused} CronWorkflows refused")
        apply_seconds = time.monotonic() - began
        stored = await asyncio.to_thread(harness.list_items, plane, path)
        jobs = [job_of(cw, index) for cw in stored for index in range(jobs_per)]
        began = time.monotonic()
        for start in range(0, len(jobs), 5000):
            _, refused = await harness.create_jobs_unthrottled(
                plane, NAMESPACE, jobs[start : start + 5000]
            )
            if refused:
                raise RuntimeError(f"{refused} Jobs refused")
        jobs_seconds = time.monotonic() - began
        load_before = harness.load_average()
        cached = await one_webhook(stack, count, len(jobs), cache=True)
        uncached = await one_webhook(stack, count, len(jobs), cache=False)
    finally:
        stack.stop()
        await server.stop()
    return {
        "benchmark": "webhook-memory",
        "cronworkflows": count,
        "jobs": len(jobs),
        "cronworkflows_created_seconds": round(apply_seconds, 1),
        "jobs_created_seconds": round(jobs_seconds, 1),
        "with_caches": cached,
        "without_caches": uncached,
        "goal": "peak RSS with caches <= 250 MiB at 10,000 CronWorkflows and 30,000 Jobs",
        "load_average_before": load_before,
        "load_average_after": harness.load_average(),
        "kubernetes": harness.kubernetes_version(plane),
        "logs": str(workdir),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    with harness.control_plane() as plane:
        return asyncio.run(measure(plane, args.count, args.jobs_per))


def rows(result: dict[str, Any]) -> list[harness.Row]:
    cached, uncached = result["with_caches"], result["without_caches"]
    label = f"webhook memory ({result['cronworkflows']} CW, {result['jobs']} Jobs)"
    return [
        harness.Row(
            label,
            "peak RSS with caches full, MiB",
            f"{cached['peak_rss_mib']:.0f}",
            f"{uncached['peak_rss_mib']:.0f}",
            f"{harness.ratio(cached['peak_rss_mib'], uncached['peak_rss_mib']):.2f}",
            f"baseline: no caches; caches full {cached['start_to_caches_full_seconds']}s after "
            "start; goal <= 250 MiB",
        )
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=10_000, help="CronWorkflows (default 10000)")
    parser.add_argument("--jobs-per", type=int, default=3, help="Jobs per CronWorkflow (default 3)")


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2)
