"""The web console's list page at 200 CronWorkflows: bytes over the wire, and time to first render.

The stack is the real one (control plane, operator in QStash mode against the QStash-compatible
server, webhook); N CronWorkflows with a mix of schedules and zones are applied and made Ready.
A viewer token (list/get CronWorkflows, list Jobs and Events, cluster-wide) is put in the tab's
sessionStorage, and headless Chromium (Debian's, ``qstash_devstack.browser``; a fresh profile per
load, so every load is cold) opens ``/ui/``:

- bytes: ``transferSize`` of the navigation plus every resource the page fetched (HTML, script,
  style, icon and the ``/ui/api/cronworkflows`` JSON), headers included, as Resource Timing
  reports them;
- first render: the page's ``qso:list-rendered`` mark (set when the table is in the DOM), in ms
  after navigation start.

Baseline, in the same run: the seed's own JSON, ``GET /api/cron`` with the same token (what a
script or the seed's dashboard would fetch): its body bytes and its wall time from this process.
The console's extra cost is then its page and its reviews, read against the data it shows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import harness
from qstash_devstack.browser import chromium
from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.stack import Stack, cronworkflow
from qstash_operator.settings import DEFAULT_API_AUDIENCE
from qstash_server.testing import ThreadedServer

NAMESPACE = "bench-console"
VIEWER = "bench-console-viewer"
TOKEN_KEY = "qstash-operator.token"
SCHEDULES = (
    ("*/5 * * * *", "UTC"),
    ("30 6 * * *", "Europe/Berlin"),
    ("0 9 * * 1-5", "America/New_York"),
    ("15,45 8-18 * * *", "Asia/Kolkata"),
    ("@daily", "Australia/Lord_Howe"),
)
READY_TIMEOUT = 300.0

MEASURE_SCRIPT = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const resources = performance.getEntriesByType("resource");
  const mark = performance.getEntriesByName("qso:list-rendered")[0];
  const api = resources.find((r) => r.name.includes("/ui/api/cronworkflows"));
  return {
    bytes: nav.transferSize + resources.reduce((sum, r) => sum + r.transferSize, 0),
    decoded: nav.decodedBodySize + resources.reduce((sum, r) => sum + r.decodedBodySize, 0),
    requests: 1 + resources.length,
    api_bytes: api ? api.transferSize : null,
    api_decoded: api ? api.decodedBodySize : null,
    api_ms: api ? api.duration : null,
    first_render_ms: mark ? mark.startTime : null,
    rows: document.querySelectorAll("#cronworkflows tbody tr").length,
  };
}"""


def manifests(count: int) -> list[dict[str, Any]]:
    items = []
    for index in range(count):
        schedule, zone = SCHEDULES[index % len(SCHEDULES)]
        spec: dict[str, Any] = {"schedule": schedule, "timeZone": zone}
        if index % 7 == 0:
            spec["suspend"] = True
        items.append(cronworkflow(f"job-{index:04d}", spec))
    return items


def viewer_token(plane: ControlPlane) -> str:
    plane.kubectl(
        "apply",
        "-f",
        "-",
        input=f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {VIEWER}, namespace: {NAMESPACE}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {VIEWER}}}
rules:
  - apiGroups: [qstash-operator.dev]
    resources: [cronworkflows]
    verbs: [get, list]
  - apiGroups: [batch]
    resources: [jobs]
    verbs: [list]
  - apiGroups: [""]
    resources: [events]
    verbs: [list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {VIEWER}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {VIEWER}}}
subjects: [{{kind: ServiceAccount, name: {VIEWER}, namespace: {NAMESPACE}}}]
""",
    )
    return plane.create_service_account_token(NAMESPACE, VIEWER, audience=DEFAULT_API_AUDIENCE)


def wait_ready(plane: ControlPlane, count: int) -> float:
    path = f"/apis/qstash-operator.dev/v1alpha1/namespaces/{NAMESPACE}/cronworkflows"
    began = time.monotonic()
    while time.monotonic() - began < READY_TIMEOUT:
        items = harness.list_items(plane, path)
        if len(items) == count and all(harness.ready(item) for item in items):
            return time.monotonic() - began
        time.sleep(1.0)
    raise RuntimeError(f"{count} CronWorkflows not Ready after {READY_TIMEOUT:.0f} s")


def load_console(url: str, token: str) -> dict[str, Any]:
    """One cold load of the list page in a fresh profile."""
    with chromium() as context:
        context.add_init_script(f"sessionStorage.setItem({TOKEN_KEY!r}, {token!r});")
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector("#cronworkflows")  # the mark is set in the same task
        figures: dict[str, Any] = page.evaluate(MEASURE_SCRIPT)
        return figures


def fetch_api(base: str, token: str, path: str = "/api/cron") -> tuple[int, float]:
    """Body bytes (uncompressed: no Accept-Encoding) and wall milliseconds of one GET."""
    request = urllib.request.Request(  # noqa: S310 (loopback)
        f"{base}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    began = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        body = response.read()
    return len(body), (time.perf_counter() - began) * 1000


def _drive(
    stack: Stack, count: int, loads: int
) -> tuple[list[dict[str, Any]], list[tuple[int, float]], list[tuple[int, float]], float]:
    plane = stack.plane
    stack.operator()
    stack.webhook()
    harness.apply_list(plane, NAMESPACE, manifests(count))
    ready_seconds = wait_ready(plane, count)
    token = viewer_token(plane)
    url = f"{stack.public_url}/ui/"
    load_console(url, token)  # once, so the first measured load does not pay Python's imports
    fetch_api(stack.public_url, token)
    pages = [load_console(url, token) for _ in range(loads)]
    api = [fetch_api(stack.public_url, token) for _ in range(loads)]
    console_json = [
        fetch_api(stack.public_url, token, "/ui/api/cronworkflows") for _ in range(loads)
    ]
    return pages, api, console_json, ready_seconds


def measure(plane: ControlPlane, count: int, loads: int) -> dict[str, Any]:
    harness.create_namespace(plane, NAMESPACE)
    workdir = Path(tempfile.mkdtemp(prefix="qso-bench-console-"))
    with ThreadedServer() as server:
        stack = Stack(plane, server, workdir, NAMESPACE)
        try:
            pages, api, console_json, ready_seconds = _drive(stack, count, loads)
        finally:
            stack.stop()
    if any(page["rows"] != count for page in pages):
        raise RuntimeError(f"the list showed {[p['rows'] for p in pages]} rows, not {count}")
    renders = [float(page["first_render_ms"]) for page in pages]
    api_ms = [ms for _, ms in api]
    return {
        "benchmark": "console list page",
        "count": count,
        "loads": loads,
        "ready_seconds": round(ready_seconds, 1),
        "page_bytes": pages[-1]["bytes"],
        "page_decoded_bytes": pages[-1]["decoded"],
        "page_requests": pages[-1]["requests"],
        "list_json_bytes": pages[-1]["api_bytes"],
        "list_json_decoded_bytes": pages[-1]["api_decoded"],
        "first_render_ms": harness.summary(renders, digits=1),
        "list_json_ms": harness.summary([float(p["api_ms"]) for p in pages], digits=1),
        "baseline_api_cron_bytes": api[-1][0],
        "baseline_api_cron_ms": harness.summary(api_ms, digits=1),
        "console_json_alone_ms": harness.summary([ms for _, ms in console_json], digits=1),
        "per_load": pages,
        "kubernetes": harness.kubernetes_version(plane),
        "logs": str(workdir),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    with harness.control_plane() as plane:
        return measure(plane, args.count, args.loads)


def rows(result: dict[str, Any]) -> list[harness.Row]:
    count = result["count"]
    render, api_ms = result["first_render_ms"], result["baseline_api_cron_ms"]
    return [
        harness.Row(
            f"console list page (N={count})",
            "bytes transferred (all requests, headers included)",
            f"{result['page_bytes']:,}",
            f"{result['baseline_api_cron_bytes']:,}",
            f"{harness.ratio(result['page_bytes'], result['baseline_api_cron_bytes']):.2f}",
            f"baseline: GET /api/cron body (uncompressed); page {result['page_requests']} "
            f"requests, {result['page_decoded_bytes']:,} bytes decoded",
        ),
        harness.Row(
            f"console list page (N={count})",
            "time to first render, ms (p50 / max, cold profile)",
            f"{render['p50']:.0f} / {render['max']:.0f}",
            f"{api_ms['p50']:.0f} / {api_ms['max']:.0f}",
            f"{harness.ratio(render['p50'], api_ms['p50']):.2f}",
            f"baseline: GET /api/cron wall time; the page's own JSON took "
            f"{result['list_json_ms']['p50']:.0f} ms (p50) of it, {result['loads']} loads",
        ),
        harness.Row(
            f"console list JSON (N={count})",
            "GET /ui/api/cronworkflows alone, ms (p50 / max)",
            f"{result['console_json_alone_ms']['p50']:.0f} / "
            f"{result['console_json_alone_ms']['max']:.0f}",
            f"{api_ms['p50']:.0f} / {api_ms['max']:.0f}",
            f"{harness.ratio(result['console_json_alone_ms']['p50'], api_ms['p50']):.2f}",
            "baseline: GET /api/cron; both from Python, no browser competing for the CPUs",
        ),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=200, help="CronWorkflows (default 200)")
    parser.add_argument("--loads", type=int, default=5, help="cold page loads (default 5)")
