"""``qstash-operator dev`` (``make dev``): the whole project running on this machine, live.

What it starts, in order, each step printed with its time:

1. the control plane binaries (built from Go modules on first use, ~6 minutes on 2 cores; build.sh
   prints its progress), then the control plane itself (etcd, kube-apiserver, controllers,
   scheduler, kwok with one fake node), with the CRD applied;
2. in QStash mode (the default): the QStash-compatible server (``qstash-operator qstash-server``)
   and the webhook it delivers to, on loopback;
3. the operator, in production mode against that server, or in development mode
   (``--backend cronjob``: no QStash, so CronWorkflows run as native CronJobs);
4. the example CronWorkflow (``examples/every-minute.yaml``), until it is Ready.

Then it prints, as they happen, each Job the schedule makes, its completion and the
CronWorkflow's status (backend, last and next run, Ready), until Ctrl-C or SIGTERM; and then it
stops every process it started and deletes the control plane's directories.

Why it lives in ``devstack/`` and not in the shipped package: it *is* the test control plane plus
our processes, and the control plane is built from this checkout's Go wrapper modules. The
``qstash-operator-devstack`` distribution (``devstack/pyproject.toml``, installed editable by
``make venv``) makes it importable; ``qstash_operator.entrypoints.dev_main`` imports it by name
and calls :func:`run`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Final, TextIO

from qstash_devstack.controlplane import (
    ControlPlane,
    ControlPlaneError,
    build_binaries,
    cache_dir,
)
from qstash_devstack.processes import Child, child_env, free_port, http_get
from qstash_operator.settings import DEFAULT_API_AUDIENCE

REPO: Final = Path(__file__).resolve().parents[2]
DEFAULT_EXAMPLE: Final = REPO / "examples" / "every-minute.yaml"
WEBHOOK_PORT: Final = 8080
"""The webhook's usual port, which `qstash-operator list|trigger` try by default."""
START_TIMEOUT: Final = 60.0
STOP_GRACE: Final = 10.0
POLL_SECONDS: Final = 1.0
"""How often the live view reads the CronWorkflow and its Jobs: a second is as fine as a person
can read, and two small GETs a second are nothing for the API server."""
FIRST_BUILD_NOTE: Final = (
    "first run: building Kubernetes (kube-apiserver, controllers, kubectl), etcd, helm and kwok "
    "from Go modules; about 6 minutes on 2 cores, then cached"
)
DEV_USER: Final = "qstash-dev"


class StopRequestedError(Exception):
    """A signal asked us to stop (SIGINT, SIGTERM, SIGHUP)."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise StopRequestedError(signal.Signals(signum).name)


# -- output ----------------------------------------------------------------------------------------


class Console:
    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def event(self, kind: str, text: str) -> None:
        self.line(f"{time.strftime('%H:%M:%S')}  {kind:<7} {text}")

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[dict[str, str]]:
        """Print `==> title`, run the block, then `    <detail> (<seconds>)`; the block may set
        `detail` in the dict it gets."""
        began = time.monotonic()
        self.line(f"==> {title}")
        result: dict[str, str] = {}
        yield result
        detail = result.get("detail", "done")
        self.line(f"    {detail} ({time.monotonic() - began:.1f} s)")


# -- our processes ---------------------------------------------------------------------------------


@dataclass
class Stack:
    plane: ControlPlane
    children: list[Child] = field(default_factory=list)

    def log(self, name: str) -> Path:
        return self.plane.run_dir / f"{name}.log"

    def base_env(self) -> dict[str, str]:
        return child_env(self.plane)

    def start(self, child: Child) -> Child:
        self.children.append(child.start())
        return child

    def wait_http(self, child: Child, url: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while http_get(url, timeout=2)[0] != 200:
            if not child.running:
                raise ControlPlaneError(f"{child.name} exited; last lines:\n{child.tail()}")
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"{child.name} did not answer {url}:\n{child.tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()

    def dead(self) -> Child | None:
        return next((child for child in self.children if not child.running), None)


def start_qstash_server(stack: Stack) -> tuple[Child, dict[str, str]]:
    """The QStash-compatible server on a free port, with fresh credentials; returns its env."""
    child = Child(
        "qstash-server",
        ["qstash-server", "--port", "0", "--random-credentials"],
        stack.base_env(),
        stack.log("qstash-server"),
        stdout_pipe=True,
    )
    stack.start(child)
    assert child.process is not None
    assert child.process.stdout is not None
    env: dict[str, str] = {}
    deadline = time.monotonic() + START_TIMEOUT
    while len(env) < 4:
        line = child.process.stdout.readline().decode()
        if not line:
            raise ControlPlaneError(f"qstash-server exited; last lines:\n{child.tail()}")
        name, _, value = line.strip().partition("=")
        if name.startswith("QSTASH_"):
            env[name] = value
        if time.monotonic() > deadline:
            raise ControlPlaneError("qstash-server printed no settings")
    return child, env


# -- the cluster as the user sees it ---------------------------------------------------------------


def get_json(plane: ControlPlane, path: str) -> dict[str, Any] | None:
    status, body = plane.request("GET", path)
    return body if status == 200 and isinstance(body, dict) else None


def condition(body: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for item in (body.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return {}


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def clock(value: str | None) -> str:
    moment = parse_time(value)
    return moment.astimezone(UTC).strftime("%H:%M:%SZ") if moment else "-"


def status_line(body: Mapping[str, Any]) -> str:
    status = body.get("status") or {}
    ready = condition(body, "Ready")
    parts = [
        f"backend {status.get('backend', '-')}",
        f"Ready {ready.get('status', '-')} ({ready.get('reason', '-')})",
        f"last run {clock(status.get('lastScheduleTime'))}",
        f"last success {clock(status.get('lastSuccessfulTime'))}",
        f"next run {clock(status.get('nextScheduleTime'))}",
    ]
    active = status.get("active") or []
    if active:
        parts.append(f"active {', '.join(ref.get('name', '?') for ref in active)}")
    return " | ".join(parts)


def job_state(job: Mapping[str, Any]) -> str:
    status = job.get("status") or {}
    for item in status.get("conditions") or []:
        if item.get("status") == "True" and item.get("type") in ("Complete", "Failed"):
            return "succeeded" if item["type"] == "Complete" else "failed"
    return "running" if status.get("active") else "pending"


def job_created_line(job: Mapping[str, Any]) -> str:
    meta = job.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    name = meta.get("name", "?")
    created = parse_time(meta.get("creationTimestamp"))
    tick_text = annotations.get("qstash-operator.dev/scheduled-time") or annotations.get(
        "batch.kubernetes.io/cronjob-scheduled-timestamp"
    )
    tick = parse_time(tick_text)
    backend = annotations.get("qstash-operator.dev/backend") or "CronJob"
    if labels.get("qstash-operator.dev/trigger") == "manual":
        who = annotations.get("qstash-operator.dev/triggered-by", "someone")
        return f"{name} created: a manual run asked by {who}"
    if tick is not None and created is not None:
        lag = (created - tick).total_seconds()
        maker = "the webhook (QStash delivery)" if backend == "QStash" else "the CronJob controller"
        return f"{name} created for the {clock(tick_text)} tick, {lag:+.0f} s, by {maker}"
    return f"{name} created"


def job_finished_line(job: Mapping[str, Any], state: str) -> str:
    status = job.get("status") or {}
    started, finished = (
        parse_time(status.get("startTime")),
        parse_time(status.get("completionTime")),
    )
    took = f" in {(finished - started).total_seconds():.0f} s" if started and finished else ""
    return f"{(job.get('metadata') or {}).get('name', '?')} {state}{took}"


@dataclass
class LiveView:
    """Prints what changed since the last look: status, new Jobs, finished Jobs, deleted Jobs."""

    plane: ControlPlane
    console: Console
    namespace: str
    name: str
    last_status: str = ""
    jobs: dict[str, str] = field(default_factory=dict)

    def look(self) -> None:
        body = get_json(
            self.plane,
            f"/apis/qstash-operator.dev/v1alpha1/namespaces/{self.namespace}/cronworkflows/"
            f"{self.name}",
        )
        listing = get_json(
            self.plane,
            f"/apis/batch/v1/namespaces/{self.namespace}/jobs"
            f"?labelSelector=qstash-operator.dev/cronworkflow%3D{self.name}",
        )
        seen: dict[str, str] = {}
        for job in sorted(
            (listing or {}).get("items") or [],
            key=lambda item: item["metadata"].get("creationTimestamp", ""),
        ):
            name = job["metadata"]["name"]
            state = job_state(job)
            seen[name] = state
            if name not in self.jobs:
                self.console.event("job", job_created_line(job))
            if state in ("succeeded", "failed") and self.jobs.get(name) != state:
                self.console.event("job", job_finished_line(job, state))
        for gone in sorted(set(self.jobs) - set(seen)):
            self.console.event("job", f"{gone} deleted (history limit)")
        self.jobs = seen
        if body is not None:
            line = status_line(body)
            if line != self.last_status:
                self.console.event("status", line)
                self.last_status = line


# -- the command -----------------------------------------------------------------------------------


def _manifest_name(path: Path, plane: ControlPlane) -> str:
    out = plane.kubectl("create", "--dry-run=client", "-f", str(path), "-o", "json").stdout
    body = json.loads(out)
    if body.get("kind") != "CronWorkflow":
        raise ControlPlaneError(f"{path} is not a CronWorkflow (kind {body.get('kind')})")
    return str(body["metadata"]["name"])


def _wait_ready(plane: ControlPlane, namespace: str, name: str, stack: Stack) -> Mapping[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT
    path = f"/apis/qstash-operator.dev/v1alpha1/namespaces/{namespace}/cronworkflows/{name}"
    while True:
        body = get_json(plane, path) or {}
        if condition(body, "Ready").get("status") == "True":
            return body
        if (dead := stack.dead()) is not None:
            raise ControlPlaneError(f"{dead.name} exited; last lines:\n{dead.tail()}")
        if time.monotonic() > deadline:
            ready = condition(body, "Ready")
            raise ControlPlaneError(
                f"{name} is not Ready after {START_TIMEOUT:.0f} s: {ready.get('reason')}: "
                f"{ready.get('message')}"
            )
        time.sleep(0.2)


def _dev_user_token(plane: ControlPlane, namespace: str) -> str:
    """A token for the console and `qstash-operator list|trigger`: a ServiceAccount allowed list,
    patch and the custom verb trigger on CronWorkflows, and to read Jobs and Events (the console
    shows them only to whoever may read them), bound to the webhook API's audience (the webhook
    takes no other); the admin kubeconfig uses a certificate, no token."""
    manifest = f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {DEV_USER}, namespace: {namespace}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {DEV_USER}}}
rules:
  - apiGroups: [qstash-operator.dev]
    resources: [cronworkflows]
    verbs: [get, list, watch, patch, trigger]
  - apiGroups: [batch]
    resources: [jobs]
    verbs: [get, list, watch]
  - apiGroups: [""]
    resources: [events]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {DEV_USER}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {DEV_USER}}}
subjects: [{{kind: ServiceAccount, name: {DEV_USER}, namespace: {namespace}}}]
"""
    plane.kubectl("apply", "-f", "-", input=manifest)
    return plane.create_service_account_token(
        namespace, DEV_USER, duration="24h", audience=DEFAULT_API_AUDIENCE
    )


def run(args: argparse.Namespace, console: Console | None = None) -> int:
    """The command; ``args`` as ``qstash_operator.entrypoints.dev_main`` parses them."""
    console = console or Console()
    # Our handlers first: the control plane chains to them after stopping itself, and they
    # unwind into the cleanup below (SIGINT's usual KeyboardInterrupt would do the same).
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_stop)
    qstash = args.backend == "qstash"
    example = (args.example or DEFAULT_EXAMPLE).resolve()
    began = time.monotonic()
    console.line(
        "qstash-operator dev: control plane, "
        + ("QStash-compatible server, webhook, " if qstash else "")
        + f"operator and {example.name}, on this machine "
        + ("(QStash backend)" if qstash else "(CronJob backend: development mode)")
    )
    plane: ControlPlane | None = None
    stack: Stack | None = None
    try:
        with console.step("control plane binaries") as step:
            cold = not (cache_dir() / ".complete").exists()
            if cold:
                console.line(f"    {FIRST_BUILD_NOTE}")
            bin_dir = build_binaries(quiet=not cold)  # a cold build shows build.sh's progress
            step["detail"] = ("built into " if cold else "cached in ") + str(bin_dir)
        with console.step("control plane: etcd, kube-apiserver, controllers, scheduler, kwok"):
            plane = ControlPlane(bin_dir, keep_run_dir=args.keep)
            plane.start()
        stack = Stack(plane)
        operator_env = stack.base_env()
        webhook_port = 0
        if qstash:
            with console.step("QStash-compatible server (qstash-operator qstash-server)") as step:
                _, server_env = start_qstash_server(stack)
                step["detail"] = server_env["QSTASH_URL"]
            with console.step("webhook (qstash-operator webhook)") as step:
                webhook_port = free_port(WEBHOOK_PORT)
                public_url = f"http://127.0.0.1:{webhook_port}"
                env = {
                    **stack.base_env(),
                    **server_env,
                    "WEBHOOK_PUBLIC_URL": public_url,
                    # Loopback is fine for the local server; real QStash would refuse it.
                    "QSTASH_OPERATOR_ALLOW_PRIVATE_URL": "true",
                }
                webhook = stack.start(
                    Child(
                        "webhook",
                        ["webhook", "--host", "127.0.0.1", "--port", str(webhook_port)],
                        env,
                        stack.log("webhook"),
                    )
                )
                stack.wait_http(webhook, f"{public_url}/readyz")
                step["detail"] = (
                    f"{public_url} (QStash delivers to {public_url}/api/qstash/webhook)"
                )
            operator_env = {**env}
        with console.step("operator (qstash-operator operator)") as step:
            operator_port = free_port()
            operator_env.update(POD_NAMESPACE=args.namespace, POD_NAME="dev-operator")
            operator = stack.start(
                Child(
                    "operator",
                    ["operator", "--http-host", "127.0.0.1", "--http-port", str(operator_port)],
                    operator_env,
                    stack.log("operator"),
                )
            )
            stack.wait_http(operator, f"http://127.0.0.1:{operator_port}/healthz")
            mode = next(
                (
                    line.split(": ", 2)[-1]
                    for line in operator.tail(50).splitlines()
                    if "mode:" in line
                ),
                "",
            )
            step["detail"] = mode or "running"
        with console.step(f"example: kubectl apply -f {example}") as step:
            name = _manifest_name(example, plane)
            plane.kubectl("apply", "-n", args.namespace, "-f", str(example))
            body = _wait_ready(plane, args.namespace, name, stack)
            step["detail"] = (
                f"{args.namespace}/{name} Ready, backend {body['status'].get('backend')}"
            )
        token = _dev_user_token(plane, args.namespace) if qstash else None

        console.line(f"ready in {time.monotonic() - began:.1f} s. In another shell:")
        console.line(f"    export KUBECONFIG={plane.kubeconfig} PATH={plane.bin_dir}:$PATH")
        console.line(f"    kubectl get qcwf -A -w ; kubectl describe qcwf {name}")
        console.line(f'    kubectl annotate qcwf {name} qstash-operator.dev/run-now="$(date +%s)"')
        if token is not None:
            api = f"http://127.0.0.1:{webhook_port}"
            token_file = plane.run_dir / "dev-user.token"
            token_file.write_text(token + "\n")
            console.line(
                f"    export QSTASH_OPERATOR_API_URL={api} "
                f"QSTASH_OPERATOR_API_TOKEN=$(cat {token_file})"
            )
            console.line(
                f"    qstash-operator list ; qstash-operator trigger {args.namespace}/{name}"
            )
            console.line(f"Console: {api}/ui/  (sign in with the token below; it expires in 24 h)")
            console.line(f"    {token}")
        logs = ",".join(child.name for child in stack.children)
        console.line(f"    logs: {plane.run_dir}/{{{logs},kube-apiserver,...}}.log")
        console.line(f"Watching {args.namespace}/{name}; Ctrl-C stops everything and cleans up.")
        view = LiveView(plane, console, args.namespace, name)
        while True:
            view.look()
            if (dead := stack.dead()) is not None:
                console.line(f"{dead.name} exited unexpectedly; last lines:\n{dead.tail()}")
                return 1
            time.sleep(POLL_SECONDS)
    except StopRequestedError as stop:
        console.line(f"\n{stop.args[0]}: stopping")
        return 0
    except (ControlPlaneError, subprocess.CalledProcessError) as error:
        console.line(f"qstash-operator dev: {error}")
        return 1
    finally:
        _shut_down(console, stack, plane, keep=args.keep)


def _shut_down(
    console: Console, stack: Stack | None, plane: ControlPlane | None, *, keep: bool
) -> None:
    # A second Ctrl-C must not cut the cleanup short.
    previous: dict[int, Callable[..., Any] | int | None] = {}
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        previous[signum] = signal.signal(signum, signal.SIG_IGN)
    try:
        names = [child.name for child in reversed(stack.children)] if stack else []
        with console.step(f"stopping {', '.join([*names, 'the control plane'])}") as step:
            if stack is not None:
                stack.stop()
            if plane is not None:
                plane.stop()
            step["detail"] = (
                f"kept {plane.run_dir}" if keep and plane is not None else "nothing left behind"
            )
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
