"""What the cluster benchmarks share: the machine's description, percentiles, the control plane,
our processes around it, and a Job watch that notes when each Job reached us.

The control plane is the tests' (``qstash_devstack.controlplane``): real etcd, kube-apiserver,
kube-controller-manager (its CronJob controller is the baseline), scheduler and kwok, started fresh
for each benchmark so no run inherits another's objects. Operator and webhook run as child
processes through the CLI, exactly as the end-to-end tests run them (``qstash_devstack.stack``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import ssl
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from qstash_devstack.controlplane import AUDIT_EVERYTHING, ControlPlane, build_binaries

RESULTS = Path(__file__).parent / "results"


# --- the machine ----------------------------------------------------------------------------


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def machine() -> dict[str, Any]:
    """What the figures were measured on: enough to judge whether two runs compare."""
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory_gib = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": memory_gib,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def kubernetes_version(plane: ControlPlane) -> str:
    status, answer = plane.request("GET", "/version")
    return str(answer.get("gitVersion", "?")) if status == 200 else "?"


# --- statistics ------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on a copy."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: Sequence[float], *, digits: int = 3) -> dict[str, float | int]:
    return {
        "count": len(values),
        "min": round(min(values), digits) if values else math.nan,
        "p50": round(percentile(values, 0.50), digits),
        "p95": round(percentile(values, 0.95), digits),
        "p99": round(percentile(values, 0.99), digits),
        "max": round(max(values), digits) if values else math.nan,
    }


def ratio(ours: float, baseline: float) -> float:
    """ours / baseline; equal zeros (e.g. both within the first second) compare as 1.0."""
    if not baseline:
        return 1.0 if not ours else math.inf
    return round(ours / baseline, 3)


# --- results ---------------------------------------------------------------------------------


def save(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


@dataclass
class Row:
    """One line of the printed table."""

    benchmark: str
    metric: str
    ours: str
    baseline: str
    ratio: str
    note: str = ""


def table(rows: Sequence[Row]) -> str:
    header = Row("benchmark", "metric", "ours", "baseline", "ours/baseline", "note")
    lines = [header, *rows]
    columns = ["benchmark", "metric", "ours", "baseline", "ratio", "note"]
    widths = [max(len(getattr(row, column)) for row in lines) for column in columns]
    out = []
    for index, row in enumerate(lines):
        cells = [
            getattr(row, column).ljust(width) for column, width in zip(columns, widths, strict=True)
        ]
        out.append("| " + " | ".join(cells) + " |")
        if index == 0:
            out.append("|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(out)


# --- the cluster -----------------------------------------------------------------------------


@contextlib.contextmanager
def control_plane(*, audit: bool = False) -> Iterator[ControlPlane]:
    """A fresh control plane (binaries built first when the cache is cold, progress shown);
    ``audit``: the API server logs every request (``plane.audit_events()``), which costs it
    CPU, so a run that breaks calls down by caller is not the run whose timings are quoted."""
    plane = ControlPlane(build_binaries(), audit_policy=AUDIT_EVERYTHING if audit else None)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


def create_namespace(plane: ControlPlane, name: str) -> None:
    status, answer = plane.request(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    if status != 201:
        raise RuntimeError(f"creating namespace {name} failed ({status}): {answer}")


def apply_list(plane: ControlPlane, namespace: str, items: list[dict[str, Any]]) -> float:
    """``kubectl apply`` of one List; returns the wall seconds it took."""
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    began = time.monotonic()
    plane.kubectl("apply", "-n", namespace, "-f", "-", input=manifest, timeout=600)
    return time.monotonic() - began


def list_items(plane: ControlPlane, path: str) -> list[dict[str, Any]]:
    status, answer = plane.request("GET", path, timeout=60)
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}: {str(answer)[:300]}")
    items: list[dict[str, Any]] = answer.get("items", [])
    return items


def ready(item: dict[str, Any]) -> bool:
    conditions = (item.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def memory_kib(pid: int) -> dict[str, int]:
    """VmHWM (peak resident set) and VmRSS of a live process, in KiB."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            found[key] = int(value.split()[0])
    return found


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def component_flags(plane: ControlPlane, component: str) -> list[str]:
    """The command line a control-plane component runs with (to state which defaults apply)."""
    pid = plane.pids().get(component)
    if pid is None:
        return []
    raw = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return [part.decode() for part in raw[1:] if part]


def kubectl_json(plane: ControlPlane, *args: str) -> Any:
    result = plane.kubectl(*args, "-o", "json", timeout=120)
    return json.loads(result.stdout)


# --- watching Jobs arrive --------------------------------------------------------------------


@dataclass
class SeenJob:
    namespace: str
    name: str
    created: datetime  # metadata.creationTimestamp: whole seconds
    received: float  # wall-clock Unix seconds when the watch event reached this process
    annotations: dict[str, str]


@dataclass
class JobWatch:
    """A watch on every Job in the cluster, opened before the minute, noting ADDED events.

    The receive time includes the API server's watch fan-out latency, the same for Jobs from the
    webhook and from the CronJob controller; it is the finest timing both sides share (the
    creationTimestamp the API server stamps has whole-second resolution).
    """

    plane: ControlPlane
    seen: dict[tuple[str, str], SeenJob] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None
    _opened: asyncio.Event = field(default_factory=asyncio.Event)
    reconnects: int = 0

    def _ssl(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.plane.ca_file))
        pki = self.plane.pki_dir
        context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
        return context

    async def start(self) -> None:
        status, answer = await asyncio.to_thread(
            self.plane.request, "GET", "/apis/batch/v1/jobs?limit=1"
        )
        if status != 200:
            raise RuntimeError(f"listing Jobs failed: {answer}")
        version = answer["metadata"]["resourceVersion"]
        self._task = asyncio.create_task(self._run(version))
        await asyncio.wait_for(self._opened.wait(), 30)

    async def _run(self, version: str) -> None:
        """Watch from ``version``; when the API server ends the stream (it closes a watcher that
        falls behind a burst, and ends every watch after its timeout), watch again from the last
        version seen, so no Job is missed (a late one is timed when it finally arrives)."""
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                url = (
                    f"{self.plane.server}/apis/batch/v1/jobs?watch=1&resourceVersion={version}"
                    "&allowWatchBookmarks=true&timeoutSeconds=3600"
                )
                try:
                    async with session.get(url, ssl=self._ssl()) as response:
                        response.raise_for_status()
                        self._opened.set()
                        async for raw in response.content:
                            version = self._event(raw, time.time()) or version
                except aiohttp.ClientError as exc:
                    print(f"  (job watch broke: {type(exc).__name__}; watching again)")
                except ValueError as exc:  # the version expired: list, then watch from there
                    print(f"  ({exc}; listing Jobs again)")
                    version = await asyncio.to_thread(self._relist)
                self.reconnects += 1
                await asyncio.sleep(0.1)

    def _relist(self) -> str:
        """Every Job now (the unseen ones noted as received now); the list's version."""
        status, answer = self.plane.request("GET", "/apis/batch/v1/jobs", timeout=60)
        if status != 200:
            raise RuntimeError(f"listing Jobs failed: {answer}")
        now = time.time()
        for item in answer.get("items", []):
            self._event(json.dumps({"type": "ADDED", "object": item}).encode(), now)
        return str(answer["metadata"]["resourceVersion"])

    def _event(self, raw: bytes, received: float) -> str | None:
        line = raw.strip()
        if not line:
            return None
        event = json.loads(line)
        meta = (event.get("object") or {}).get("metadata") or {}
        if event.get("type") == "ERROR":
            raise ValueError(f"watch error: {event.get('object')}")
        if event.get("type") != "ADDED":
            return meta.get("resourceVersion")
        key = (meta["namespace"], meta["name"])
        if key not in self.seen:
            created = datetime.fromisoformat(meta["creationTimestamp"].replace("Z", "+00:00"))
            self.seen[key] = SeenJob(
                namespace=meta["namespace"],
                name=meta["name"],
                created=created,
                received=received,
                annotations=dict(meta.get("annotations") or {}),
            )
        return meta.get("resourceVersion")

    def count(self, namespace: str) -> int:
        return sum(1 for job in self.seen.values() if job.namespace == namespace)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await self._task


# --- the floor: Jobs created directly, as fast as the API server takes them ---------------------


FLOOR_ATTEMPTS = 10
FLOOR_CONNECTIONS = 64
"""Concurrent creates of the unthrottled client (the issue's probe: 16, 64 and 200 connections
gave p99 0.65, 0.53 and 0.70 s for 500 Jobs; 64 is also the webhook's pool)."""


async def create_jobs_unthrottled(
    plane: ControlPlane, namespace: str, jobs: Sequence[dict[str, Any]]
) -> tuple[float, int]:
    """POST every Job at once over ``FLOOR_CONNECTIONS`` connections with the admin certificate
    (no client-side rate limit); returns (wall-clock Unix start, Jobs the API server refused)."""
    return await create_unthrottled(plane, f"/apis/batch/v1/namespaces/{namespace}/jobs", jobs)


async def create_unthrottled(
    plane: ControlPlane, path: str, jobs: Sequence[dict[str, Any]]
) -> tuple[float, int]:
    """POST every object to ``path`` at once (see :func:`create_jobs_unthrottled`)."""
    context = ssl.create_default_context(cafile=str(plane.ca_file))
    context.load_cert_chain(plane.pki_dir / "admin.crt", plane.pki_dir / "admin.key")
    url = f"{plane.server}{path}"
    connector = aiohttp.TCPConnector(limit=FLOOR_CONNECTIONS, ssl=context)
    refused = retried = 0
    async with aiohttp.ClientSession(connector=connector) as session:

        async def create(job: dict[str, Any]) -> None:
            """POST until created, honouring 429/5xx as client-go does (Retry-After, else 1 s);
            409 is a retry of ours that had landed."""
            nonlocal refused, retried
            for _ in range(FLOOR_ATTEMPTS):
                async with session.post(url, json=job) as response:
                    await response.read()
                    if response.status in (201, 409):
                        return
                    if response.status != 429 and response.status < 500:
                        break
                    retried += 1
                    wait = float(response.headers.get("Retry-After", "1") or 1)
                await asyncio.sleep(min(wait, 5.0))
            refused += 1

        # Open the connections first (TLS handshakes are not what the floor is about; the
        # webhook's pool is warm at a minute boundary too).
        async def touch() -> None:
            async with session.get(f"{plane.server}/version") as response:
                await response.read()

        await asyncio.gather(*(touch() for _ in range(FLOOR_CONNECTIONS)))
        started = time.time()
        await asyncio.gather(*(create(job) for job in jobs))
    if retried:
        print(f"  (the unthrottled client retried {retried} creates the API server refused)")
    return started, refused


# --- what the API server counted -------------------------------------------------------------

_REQUEST_TOTAL = "apiserver_request_total{"


def apiserver_requests(plane: ControlPlane) -> dict[str, float]:
    """``apiserver_request_total`` from the API server's /metrics, summed over response codes,
    keyed ``VERB group/resource[/subresource]``."""
    return without_code(apiserver_requests_by_code(plane))


def apiserver_requests_by_code(plane: ControlPlane) -> dict[str, float]:
    """``apiserver_request_total`` keyed ``VERB group/resource[/subresource] code``."""
    status, text = plane.request("GET", "/metrics", timeout=30)
    if status != 200 or not isinstance(text, str):
        raise RuntimeError(f"GET /metrics answered {status}")
    return parse_request_totals(text)


def parse_request_totals(text: str) -> dict[str, float]:
    """The ``apiserver_request_total`` samples of a /metrics text, keyed
    ``VERB group/resource[/subresource] code`` (summed over the other labels)."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(_REQUEST_TOTAL):
            continue
        labels_text, _, value = line[len(_REQUEST_TOTAL) :].rpartition("} ")
        labels = dict(part.split("=", 1) for part in labels_text.split(",") if "=" in part)
        labels = {key: raw.strip('"') for key, raw in labels.items()}
        key = f"{labels.get('verb', '?')} {_resource(labels)} {labels.get('code', '?')}"
        totals[key] = totals.get(key, 0.0) + float(value)
    return totals


def _resource(labels: dict[str, str]) -> str:
    resource = labels.get("resource", "")
    if labels.get("group"):
        resource = f"{labels['group']}/{resource}"
    if labels.get("subresource"):
        resource += f"/{labels['subresource']}"
    return resource


def without_code(by_code: dict[str, float]) -> dict[str, float]:
    """``VERB resource code`` counts summed into ``VERB resource``."""
    totals: dict[str, float] = {}
    for key, value in by_code.items():
        short = key.rsplit(" ", 1)[0]
        totals[short] = totals.get(short, 0.0) + value
    return totals


def counter_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """What happened between two scrapes, non-zero only, largest first."""
    delta = {key: int(after[key] - before.get(key, 0.0)) for key in after}
    return dict(sorted(((k, v) for k, v in delta.items() if v), key=lambda kv: -kv[1]))


def git_revision() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parent,
    )
    return result.stdout.strip() or "?"


# --- who called what, when (the audit log of a run with ``control_plane(audit=True)``) ---------


def caller(user_agent: str) -> str:
    """A short name for the client an audit event came from."""
    if user_agent.startswith("qstash-operator-webhook/"):
        return "webhook"
    if user_agent.startswith(("qstash-operator/", "kopf/")):
        return "operator"
    if user_agent.startswith("kube-controller-manager/"):
        return "kcm:" + user_agent.rsplit("/", 1)[-1]
    for known in ("kube-scheduler", "kwok", "kubectl", "kube-apiserver"):
        if user_agent.startswith(known):
            return known
    if "aiohttp" in user_agent or user_agent.startswith("Python"):
        return "bench"
    return user_agent.split("/", 1)[0] or "?"


@dataclass(frozen=True)
class AuditCall:
    caller: str
    verb: str
    resource: str
    code: int
    namespace: str
    received: float
    """Wall-clock Unix seconds the API server received the request."""

    @property
    def key(self) -> str:
        return f"{self.caller} {self.verb} {self.resource} {self.code}"


def audit_calls(events: Sequence[dict[str, Any]]) -> list[AuditCall]:
    """One entry per completed request (a watch counts once, when it ends)."""
    calls = []
    for event in events:
        if event.get("stage") not in ("ResponseComplete", "Panic"):
            continue
        ref = event.get("objectRef") or {}
        resource = str(ref.get("resource") or event.get("requestURI", "?").split("?")[0])
        if ref.get("apiGroup"):
            resource = f"{ref['apiGroup']}/{resource}"
        if ref.get("subresource"):
            resource += f"/{ref['subresource']}"
        stamp = str(event.get("requestReceivedTimestamp", ""))
        try:
            received = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        calls.append(
            AuditCall(
                caller=caller(str(event.get("userAgent", ""))),
                verb=str(event.get("verb", "?")),
                resource=resource,
                code=int((event.get("responseStatus") or {}).get("code", 0)),
                namespace=str(ref.get("namespace", "")),
                received=received,
            )
        )
    return calls


def count_calls(calls: Sequence[AuditCall], start: float, end: float) -> dict[str, int]:
    """``caller verb resource code`` -> requests received in [start, end), largest first."""
    counts: dict[str, int] = {}
    for call in calls:
        if start <= call.received < end and call.verb != "watch":
            counts[call.key] = counts.get(call.key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def timeline(
    calls: Sequence[AuditCall], start: float, end: float, step: float
) -> dict[str, list[int]]:
    """Writes (not get/list/watch) per ``caller verb resource`` in buckets of ``step`` seconds
    from ``start`` to ``end``: when each writer's calls landed."""
    buckets = max(1, math.ceil((end - start) / step))
    lines: dict[str, list[int]] = {}
    for call in calls:
        if call.verb in ("get", "list", "watch") or not start <= call.received < end:
            continue
        line = lines.setdefault(f"{call.caller} {call.verb} {call.resource}", [0] * buckets)
        line[min(buckets - 1, int((call.received - start) / step))] += 1
    return dict(sorted(lines.items(), key=lambda kv: -sum(kv[1])))
