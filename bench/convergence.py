"""Convergence and steady state at 1,000 CronWorkflows.

Convergence: the operator (QStash mode, a child process) is running and idle; one
``kubectl apply`` of a List of N CronWorkflows is timed (the baseline: what storing the objects
costs); then the time from the start of that apply until every CronWorkflow is ``Ready=True`` and
the QStash-compatible server holds all N schedules (polled: the CronWorkflows every second, then
the schedule list). The operator's peak resident memory is its ``VmHWM`` at the end.

Cold start: N more CronWorkflows are stored while no operator watches their namespace; then one
starts, and the time from its start to all of them Ready and scheduled is its own throughput,
without ``kubectl apply`` setting the pace. Its baseline is the same cold start, in another
namespace, with the worker limit lifted (``QSTASH_OPERATOR_WORKER_LIMIT`` far above N: kopf's
unbounded default, every handler at once).

Steady state: the operator is restarted with ``QSTASH_OPERATOR_RESYNC_SECONDS`` small (the drift
check's period); once it has resumed every object, the QStash API calls it makes are counted by
route over several periods (the server's ``/__control/api-calls``). The theoretical floor is one
``schedules.list`` per period and nothing else. The QStash calls made while resuming 1,000
objects after the restart are reported too (ideally none but the lists: nothing changed).

The QStash server runs with a driven clock, so no schedule fires during the benchmark (nothing
here is about deliveries) and no webhook is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qstash import AsyncQStash

from bench import harness
from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.processes import Child
from qstash_devstack.stack import Stack, cronworkflow, http_get
from qstash_server.testing import ServerProcess

NAMESPACE = "bench-converge"
COLD_NAMESPACE = "bench-cold"
UNBOUNDED_NAMESPACE = "bench-cold-unbounded"
UNBOUNDED_WORKERS = "1000000"
CONVERGE_TIMEOUT = 900.0
POLL_SECONDS = 1.0
SAMPLE_SECONDS = 10.0
"""How often the curve is sampled while the apply runs (the operator's reconcile count from its
/metrics and CPU from /proc: no API server request, so the sampling does not slow the apply)."""
LIST_SECONDS = 10.0
"""How often the wait after the apply lists the CronWorkflows before the operator says it has
reconciled them all (:func:`should_list`)."""
CPU_COMPONENTS = ("kube-apiserver", "etcd", "kube-controller-manager")


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent not idle since boot (``/proc/stat``'s first line)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_by_process(plane: ControlPlane, operator_pid: int) -> dict[str, float]:
    """CPU seconds so far of the operator, the control plane's busy components and the whole
    machine (what is left over is the bench, the QStash server and the apply's kubectl)."""
    pids = plane.pids()
    found = {"operator": harness.process_cpu_seconds(operator_pid)}
    for name in CPU_COMPONENTS:
        if name in pids:
            found[name] = harness.process_cpu_seconds(pids[name])
    found["machine"] = machine_busy_seconds()
    return found


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    delta = {key: round(after[key] - before[key], 1) for key in after if key in before}
    named = sum(value for key, value in delta.items() if key != "machine")
    if "machine" in delta:
        delta["rest (kubectl, bench, QStash server)"] = round(delta["machine"] - named, 1)
    return delta


async def sample_while(
    done: asyncio.Event, began: float, port: int, samples: list[tuple[float, float]]
) -> None:
    """(seconds since ``began``, the operator's reconciles) every ``SAMPLE_SECONDS`` until
    ``done``: how far behind the apply the operator is while the apply runs."""
    while not done.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), SAMPLE_SECONDS)
        count = await asyncio.to_thread(reconciles, port)
        samples.append((round(time.monotonic() - began, 1), count))


def should_list(reconciled: float, count: int, listed_at: float | None, now: float) -> bool:
    """Whether the wait after the apply lists the CronWorkflows now: at once (how many were
    Ready when the apply ended), then every second once the operator's reconcile counter says it
    has handled them all, and every ``LIST_SECONDS`` before that. A list of 10,000 objects every
    second cost the API server about half a core while the operator finished (the 2026-12-03 run
    on main: 60 API-server CPU seconds in the 74 s after the apply, where the operator's requests
    at the apply's cost per request account for 27). The counter only opens the gate; the
    list's Ready conditions say when all are done."""
    if listed_at is None or reconciled >= count:
        return True
    return now - listed_at >= LIST_SECONDS


def reconciles(port: int) -> float:
    """Sum of ``qstash_operator_reconciles_total`` over its results."""
    status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    if status != 200:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("qstash_operator_reconciles_total{")
    )


async def schedule_count(server: ServerProcess, prefix: str) -> int:
    client = AsyncQStash(server.token, base_url=server.url, retry=False)
    try:
        return sum(1 for s in await client.schedule.list() if s.schedule_id.startswith(prefix))
    finally:
        await client.http._client.aclose()


async def converge(
    plane: ControlPlane,
    server: ServerProcess,
    stack: Stack,
    count: int,
    *,
    extra_env: dict[str, str] | None = None,
    converged: Callable[[Child], None] | None = None,
) -> dict[str, Any]:
    """``converged`` is called with the operator once all are Ready and scheduled, before its
    memory is read (a bench mode dumps its allocations there)."""
    operator, port = stack.operator(extra_env=extra_env)
    assert operator.process is not None
    manifests = [
        cronworkflow(f"cw-{index:04d}", {"schedule": "0 3 * * *"}) for index in range(count)
    ]
    await server.reset_api_calls()
    idle = harness.memory_kib(operator.process.pid)
    load_before = harness.load_average()
    requests_before = await asyncio.to_thread(harness.apiserver_requests, plane)
    cpu_before = cpu_by_process(plane, operator.process.pid)
    samples: list[tuple[float, float]] = []
    applied = asyncio.Event()
    began = time.monotonic()
    sampler = asyncio.create_task(sample_while(applied, began, port, samples))
    try:
        apply_seconds = await asyncio.to_thread(
            harness.apply_list, plane, stack.namespace, manifests
        )
    finally:
        applied.set()
        await sampler
    reconciled_at_apply_end = samples[-1][1] if samples else 0.0
    cpu_applied = cpu_by_process(plane, operator.process.pid)
    requests_applied = await asyncio.to_thread(harness.apiserver_requests, plane)
    tail: list[tuple[float, int]] = []
    path = f"/apis/qstash-operator.dev/v1alpha1/namespaces/{stack.namespace}/cronworkflows"
    prefix = f"{stack.cluster_name}.{stack.namespace}."
    ready_count = 0
    ready_seconds = None
    listed_at: float | None = None
    while time.monotonic() - began < CONVERGE_TIMEOUT:
        if ready_seconds is None and should_list(
            await asyncio.to_thread(reconciles, port), count, listed_at, time.monotonic()
        ):
            listed_at = time.monotonic()
            items = await asyncio.to_thread(harness.list_items, plane, path)
            ready_count = sum(1 for item in items if harness.ready(item))
            tail.append((round(time.monotonic() - began, 1), ready_count))
            if ready_count >= count:
                ready_seconds = time.monotonic() - began
        if ready_seconds is not None and await schedule_count(server, prefix) >= count:
            break
        await asyncio.sleep(POLL_SECONDS)
    else:
        raise RuntimeError(f"{ready_count} of {count} Ready after {CONVERGE_TIMEOUT:.0f}s")
    converged_seconds = time.monotonic() - began
    # What the operator asked of the API server (the bench's own polls are GET lists, left out
    # below; the apply's requests were counted before the operator's began to matter).
    requests_after = await asyncio.to_thread(harness.apiserver_requests, plane)
    cpu_after = cpu_by_process(plane, operator.process.pid)
    if converged is not None:
        converged(operator)
    memory = harness.memory_kib(operator.process.pid)
    cpu = harness.process_cpu_seconds(operator.process.pid)
    calls = await server.api_calls()
    load_after = harness.load_average()
    reconciled = reconciles(port)
    operator.stop()
    return {
        "count": count,
        "kubectl_apply_seconds": round(apply_seconds, 2),
        "all_ready_seconds": round(ready_seconds or 0.0, 2),
        "all_ready_and_scheduled_seconds": round(converged_seconds, 2),
        "ratio_to_apply": harness.ratio(converged_seconds, apply_seconds),
        "resolution_seconds": POLL_SECONDS,
        "operator_peak_rss_mib": round(memory["VmHWM"] / 1024, 1),
        "operator_rss_at_end_mib": round(memory["VmRSS"] / 1024, 1),
        "operator_rss_idle_before_mib": round(idle["VmRSS"] / 1024, 1),
        "operator_peak_kib_per_object_over_idle": round(
            (memory["VmHWM"] - idle["VmRSS"]) / count, 1
        ),
        "operator_cpu_seconds": round(cpu, 1),
        "reconciled_when_apply_ended": reconciled_at_apply_end,
        "ready_when_apply_ended": tail[0][1] if tail else None,
        "apply_end_to_all_ready_seconds": round((ready_seconds or 0.0) - apply_seconds, 2),
        "reconciles_during_apply": samples,
        "ready_after_apply": tail[:: max(1, len(tail) // 30)] + tail[-1:],
        "cpu_seconds_during_apply": cpu_delta(cpu_before, cpu_applied),
        "cpu_seconds_apply_end_to_converged": cpu_delta(cpu_applied, cpu_after),
        "operator_reconciles": reconciled,
        "qstash_calls_by_route": calls,
        "apiserver_requests_during_apply": harness.counter_delta(requests_before, requests_applied),
        "apiserver_requests_apply_to_converged": harness.counter_delta(
            requests_before, requests_after
        ),
        "apiserver_requests_per_object": _per_object(
            harness.counter_delta(requests_before, requests_after), count
        ),
        "load_average_before": load_before,
        "load_average_after": load_after,
    }


def _per_object(delta: dict[str, int], count: int) -> dict[str, float]:
    """API server requests per CronWorkflow, for those that scale with them (ten or more in
    all); the bench's own polling LISTs and the apply's GET/PATCH included, named as they are."""
    return {key: round(value / count, 2) for key, value in delta.items() if value >= 10}


async def wait_converged(
    plane: ControlPlane,
    server: ServerProcess,
    stack: Stack,
    count: int,
    began: float,
    progress: list[tuple[float, int, int]],
) -> float:
    """Seconds from ``began`` until all ``count`` are Ready and QStash holds their schedules;
    ``progress`` gets (seconds, Ready, schedules) at each poll."""
    path = f"/apis/qstash-operator.dev/v1alpha1/namespaces/{stack.namespace}/cronworkflows"
    prefix = f"{stack.cluster_name}.{stack.namespace}."
    while time.monotonic() - began < CONVERGE_TIMEOUT:
        items = await asyncio.to_thread(harness.list_items, plane, path)
        ready = sum(1 for item in items if harness.ready(item))
        scheduled = await schedule_count(server, prefix)
        progress.append((round(time.monotonic() - began, 1), ready, scheduled))
        if ready >= count and scheduled >= count:
            return time.monotonic() - began
        await asyncio.sleep(POLL_SECONDS)
    raise RuntimeError(f"not converged after {CONVERGE_TIMEOUT:.0f}s: {progress[-1]}")


async def cold_start(
    plane: ControlPlane,
    server: ServerProcess,
    workdir: Path,
    count: int,
    *,
    namespace: str = COLD_NAMESPACE,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The objects exist before the operator does (installed later, or a new cluster restored
    from a backup): from its start to all Ready and scheduled, the operator's own throughput."""
    harness.create_namespace(plane, namespace)
    stack = Stack(plane, server, workdir, namespace)  # type: ignore[arg-type]
    manifests = [
        cronworkflow(f"cw-{index:04d}", {"schedule": "0 3 * * *"}) for index in range(count)
    ]
    await asyncio.to_thread(harness.apply_list, plane, namespace, manifests)
    try:
        began = time.monotonic()
        operator, _ = stack.operator(name=namespace, extra_env=extra_env)
        progress: list[tuple[float, int, int]] = []
        seconds = await wait_converged(plane, server, stack, count, began, progress)
        assert operator.process is not None
        memory = harness.memory_kib(operator.process.pid)
    finally:
        stack.stop()
    return {
        "count": count,
        "operator_start_to_all_ready_and_scheduled_seconds": round(seconds, 2),
        "cronworkflows_per_second": round(count / seconds, 1),
        "operator_peak_rss_mib": round(memory["VmHWM"] / 1024, 1),
        "resolution_seconds": POLL_SECONDS,
        "progress_seconds_ready_scheduled": progress,
    }


async def steady_state(
    server: ServerProcess, stack: Stack, count: int, period: float, periods: int
) -> dict[str, Any]:
    await server.reset_api_calls()
    began = time.monotonic()
    operator, port = stack.operator(
        extra_env={"QSTASH_OPERATOR_RESYNC_SECONDS": f"{period:g}"}, name="steady"
    )
    # Resumed: every object reconciled once by the new process, and the count holds still.
    last, still_since = -1.0, time.monotonic()
    while time.monotonic() - began < CONVERGE_TIMEOUT:
        now_count = reconciles(port)
        if now_count != last:
            last, still_since = now_count, time.monotonic()
        elif now_count >= count and time.monotonic() - still_since >= 2 * period:
            break
        await asyncio.sleep(0.5)
    else:
        raise RuntimeError(f"the restarted operator reconciled {last} of {count}")
    resume_seconds = still_since - began
    resume_calls = await server.api_calls()
    await server.reset_api_calls()
    window_began = time.monotonic()
    await asyncio.sleep(period * periods)
    calls = await server.api_calls()
    window = time.monotonic() - window_began
    operator.stop()
    lists = calls.get("schedules.list", 0)
    others = {route: n for route, n in calls.items() if route != "schedules.list"}
    expected_periods = window / period
    return {
        "count": count,
        "resync_seconds": period,
        "window_seconds": round(window, 1),
        "periods_in_window": round(expected_periods, 2),
        "qstash_calls_by_route": calls,
        "list_calls_per_period": round(lists / expected_periods, 2),
        "drift_passes": lists,
        "calls_per_pass": round(sum(calls.values()) / lists, 2) if lists else None,
        "note": (
            "a drift pass starts resync_seconds after the previous one ended, so passes come "
            "a little less often than once per period; each costs one list and nothing else"
        ),
        "other_calls": others,
        "other_calls_per_period": round(sum(others.values()) / expected_periods, 2),
        "baseline_calls_per_period": 1.0,
        "restart_resume_seconds": round(resume_seconds, 1),
        "restart_reconciles": last,
        "restart_qstash_calls_by_route": resume_calls,
    }


async def measure(
    plane: ControlPlane, count: int, period: float, periods: int, *, unbounded_baseline: bool = True
) -> dict[str, Any]:
    harness.create_namespace(plane, NAMESPACE)
    workdir = Path(tempfile.mkdtemp(prefix="qso-bench-converge-"))
    server = ServerProcess("--driven-clock")
    await server.start()
    stack = Stack(plane, server, workdir, NAMESPACE)  # type: ignore[arg-type]  # same surface
    try:
        converged = await converge(plane, server, stack, count)
        steady = await steady_state(server, stack, count, period, periods)
        stack.stop()
        cold = await cold_start(plane, server, workdir, count)
        unbounded = (
            await cold_start(
                plane,
                server,
                workdir,
                count,
                namespace=UNBOUNDED_NAMESPACE,
                extra_env={"QSTASH_OPERATOR_WORKER_LIMIT": UNBOUNDED_WORKERS},
            )
            if unbounded_baseline
            else None
        )
    finally:
        stack.stop()
        await server.stop()
    return {
        "benchmark": "convergence+steady-state",
        "convergence": converged,
        "steady_state": steady,
        "cold_start": cold,
        "cold_start_unbounded_workers": unbounded,
        "kubernetes": harness.kubernetes_version(plane),
        "logs": str(workdir),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    with harness.control_plane() as plane:
        return asyncio.run(
            measure(
                plane,
                args.count,
                args.resync,
                args.periods,
                unbounded_baseline=args.unbounded_baseline,
            )
        )


def rows(result: dict[str, Any]) -> list[harness.Row]:
    conv, steady = result["convergence"], result["steady_state"]
    cold, unbounded = result["cold_start"], result["cold_start_unbounded_workers"]
    cold_seconds = cold["operator_start_to_all_ready_and_scheduled_seconds"]
    unbounded_seconds = (
        unbounded["operator_start_to_all_ready_and_scheduled_seconds"] if unbounded else None
    )
    count = conv["count"]
    return [
        harness.Row(
            f"convergence (N={count})",
            "apply -> all Ready + scheduled, s",
            f"{conv['all_ready_and_scheduled_seconds']:.1f}",
            f"{conv['kubectl_apply_seconds']:.1f}",
            f"{conv['ratio_to_apply']:.2f}",
            f"baseline: the kubectl apply alone; {conv['reconciled_when_apply_ended']:.0f} "
            f"reconciled when it ended, all Ready "
            f"{conv['apply_end_to_all_ready_seconds']:.1f} s later",
        ),
        harness.Row(
            f"cold start (N={cold['count']})",
            "operator start -> all Ready + scheduled, s",
            f"{cold_seconds:.1f}",
            f"{unbounded_seconds:.1f}" if unbounded_seconds else "-",
            f"{harness.ratio(cold_seconds, unbounded_seconds):.2f}" if unbounded_seconds else "-",
            (
                f"baseline: workers unbounded; peak RSS {cold['operator_peak_rss_mib']:.0f} vs "
                f"{unbounded['operator_peak_rss_mib']:.0f} MiB"
                if unbounded
                else f"peak RSS {cold['operator_peak_rss_mib']:.0f} MiB (no unbounded baseline)"
            ),
        ),
        harness.Row(
            f"convergence (N={count})",
            "operator peak RSS, MiB",
            f"{conv['operator_peak_rss_mib']:.0f}",
            "-",
            "-",
            "VmHWM of the operator process",
        ),
        harness.Row(
            f"steady state (N={steady['count']})",
            f"QStash calls per drift pass (resync {steady['resync_seconds']:g}s)",
            f"{steady['calls_per_pass']:.2f}",
            f"{steady['baseline_calls_per_period']:.2f}",
            f"{steady['calls_per_pass'] / steady['baseline_calls_per_period']:.2f}",
            f"{steady['drift_passes']} passes in {steady['window_seconds']:.0f}s, all lists; "
            f"{steady['other_calls_per_period']:.0f} other calls",
        ),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=1000, help="CronWorkflows (default 1000)")
    parser.add_argument("--resync", type=float, default=5.0, help="resync period for steady state")
    parser.add_argument("--periods", type=int, default=6, help="periods counted in steady state")
    parser.add_argument(
        "--unbounded-baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also cold-start with the worker limit lifted (at 10,000 it needs gigabytes)",
    )
