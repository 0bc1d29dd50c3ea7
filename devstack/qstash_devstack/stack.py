"""The project's own processes around the real control plane: operator and webhook as children.

Each runs through the real CLI (``python -m qstash_operator.cli ...``) with the environment a Pod
would have, logs to a file in the test's temporary folder, dies with the test process (parent
death signal), and can be killed with ``SIGKILL`` on purpose. Given an ``image``, the same
children run from the built product image instead (``containers.ContainerChild``: podman, host
network, read-only, uid 10001, no capabilities). The QStash-compatible server runs in a thread of
the test process (:class:`ThreadedServer`) so tests drive its clock and faults directly.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from qstash_devstack.containers import ContainerChild
from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.polling import poll_until
from qstash_devstack.processes import Child, child_env, free_port, http_get
from qstash_server.testing import ThreadedServer

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def running_stack(
    plane: ControlPlane,
    qstash: ThreadedServer,
    workdir: Path,
    namespace: str,
    request: Any,
    *,
    image: str | None = None,
) -> Iterator[Stack]:
    """A :class:`Stack` for one test: stopped after it, its children's logs printed on failure
    (``rep_call`` is set by the root conftest's report hook)."""
    running = Stack(plane, qstash, workdir, namespace, image=image)
    try:
        yield running
    finally:
        running.stop()
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            for child in running.children:
                print(f"----- {child.log.name} -----\n{child.output()[-6000:]}")


class Stack:
    """Operators and webhooks for one test, wired to one QStash server and the control plane."""

    def __init__(
        self,
        plane: ControlPlane,
        qstash: ThreadedServer,
        workdir: Path,
        namespace: str,
        *,
        image: str | None = None,
    ) -> None:
        """``image``: run the operator and the webhook from this product image (podman)."""
        self.plane = plane
        self.image = image
        self.qstash = qstash
        self.workdir = workdir
        self.namespace = namespace
        self.cluster_name = "t" + namespace.replace(".", "-")[-30:]
        self.webhook_port = free_port()
        self.public_url = f"http://127.0.0.1:{self.webhook_port}"
        self.children: list[Child] = []

    # -- environments -------------------------------------------------------------------------

    def base_env(self) -> dict[str, str]:
        return child_env(self.plane)

    def qstash_env(self) -> dict[str, str]:
        return {
            "QSTASH_URL": self.qstash.url,
            "QSTASH_TOKEN": self.qstash.token,
            "QSTASH_CURRENT_SIGNING_KEY": self.qstash.current_key,
            "QSTASH_NEXT_SIGNING_KEY": self.qstash.next_key,
            "WEBHOOK_PUBLIC_URL": self.public_url,
            # The webhook listens on loopback, which real QStash would refuse; the local server
            # delivers there, so the operator is told this is a local stack.
            "QSTASH_OPERATOR_ALLOW_PRIVATE_URL": "true",
        }

    # -- processes --------------------------------------------------------------------------

    def operator(
        self,
        *,
        qstash: bool = True,
        extra_env: Mapping[str, str] | None = None,
        leader_election: bool = False,
        name: str = "operator",
        start: bool = True,
        kubeconfig: Path | None = None,
    ) -> tuple[Child, int]:
        """``kubeconfig``: authenticate as someone else than admin (e.g. a chart ServiceAccount's
        token, so RBAC applies); default the control plane's admin certificate."""
        env = self.base_env()
        if kubeconfig is not None:
            env["KUBECONFIG"] = str(kubeconfig)
        if qstash:
            env.update(self.qstash_env())
        env.update(
            {
                "QSTASH_OPERATOR_CLUSTER_NAME": self.cluster_name,
                "QSTASH_OPERATOR_NAMESPACES": self.namespace,
                "POD_NAMESPACE": self.namespace,
                "POD_NAME": f"{name}-{len(self.children)}",
            }
        )
        env.update(extra_env or {})
        port = free_port()
        args = ["operator", "--http-host", "127.0.0.1", "--http-port", str(port)]
        if not leader_election:
            args.append("--no-leader-election")
        child = self._child(name, args, env, self.workdir / f"{name}-{len(self.children)}.log")
        self.children.append(child)
        if start:
            child.start()
            self.wait_http(child, f"http://127.0.0.1:{port}/healthz")
        return child, port

    def webhook(
        self,
        *,
        extra_env: Mapping[str, str] | None = None,
        port: int | None = None,
        kubeconfig: Path | None = None,
    ) -> Child:
        env = self.base_env()
        if kubeconfig is not None:
            env["KUBECONFIG"] = str(kubeconfig)
        env.update(self.qstash_env())
        # The same cluster name as the operator: a retried delivery's message must come from
        # this cluster's schedule id (<cluster>.<namespace>.<name>), as the chart sets it for both.
        env["QSTASH_OPERATOR_CLUSTER_NAME"] = self.cluster_name
        env.update(extra_env or {})
        port = port or self.webhook_port
        args = ["webhook", "--host", "127.0.0.1", "--port", str(port)]
        log = self.workdir / f"webhook-{len(self.children)}.log"
        child = self._child("webhook", args, env, log)
        self.children.append(child)
        child.start()
        self.wait_http(child, f"http://127.0.0.1:{port}/healthz")
        return child

    def _child(self, name: str, args: list[str], env: dict[str, str], log: Path) -> Child:
        if self.image is None:
            return Child(name, args, env, log)
        return ContainerChild(
            name, args, env, log, image=self.image, kubeconfig=Path(env["KUBECONFIG"])
        )

    def wait_http(self, child: Child, url: str, timeout: float = 30.0) -> None:
        def up() -> bool:
            if not child.running:
                raise AssertionError(f"{child.name} exited early:\n{child.output()[-4000:]}")
            return http_get(url, timeout=1.0)[0] == 200

        poll_until(up, timeout=timeout, interval=0.1, what=f"{child.name} to answer {url}")

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()

    # -- the cluster, as a user sees it -------------------------------------------------------

    def apply(self, manifest: Mapping[str, Any]) -> None:
        self.plane.kubectl("apply", "-n", self.namespace, "-f", "-", input=json.dumps(manifest))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        result = self.plane.kubectl(
            "get", kind, name, "-n", self.namespace, "-o", "json", "--ignore-not-found", check=False
        )
        text = result.stdout.strip()
        return json.loads(text) if text else None

    def list(self, kind: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["get", kind, "-n", self.namespace, "-o", "json"]
        if selector:
            args += ["-l", selector]
        items: list[dict[str, Any]] = json.loads(self.plane.kubectl(*args).stdout)["items"]
        return items

    def events(self, name: str) -> list[dict[str, Any]]:
        return [
            event
            for event in self.list("events")
            if event.get("involvedObject", {}).get("name") == name
        ]

    def condition(self, name: str, kind: str) -> dict[str, Any] | None:
        body = self.get("cronworkflow", name) or {}
        for item in (body.get("status") or {}).get("conditions") or []:
            if item.get("type") == kind:
                return dict(item)
        return None

    def wait_condition(
        self, name: str, kind: str, status: str, *, timeout: float = 30.0, reason: str | None = None
    ) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def matches() -> bool:
            condition = self.condition(name, kind)
            if (
                condition
                and condition.get("status") == status
                and (reason is None or condition.get("reason") == reason)
            ):
                found.update(condition)
                return True
            return False

        poll_until(
            matches, timeout=timeout, interval=0.2, what=f"{name} {kind}={status} {reason or ''}"
        )
        return found


def cronworkflow(
    name: str, spec: Mapping[str, Any] | None = None, **annotations: str
) -> dict[str, Any]:
    """A CronWorkflow manifest whose Job completes quickly under kwok."""
    full: dict[str, Any] = {
        "schedule": "*/5 * * * *",
        "jobTemplate": {
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "busybox:1.36", "args": ["true"]}],
                    }
                },
            }
        },
    }
    full.update(spec or {})
    metadata: dict[str, Any] = {"name": name}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "qstash-operator.dev/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": metadata,
        "spec": full,
    }


def backdate_schedules(stack: Stack, names: Iterable[str], *, minutes: int = 10) -> None:
    """Make the CronWorkflows' schedules older than they are (``status.scheduleSince``).

    A delivery's tick is the latest one at or before its arrival, and ticks before the schedule
    was applied are skipped on purpose (an edited schedule never runs a past tick). A test that
    fires a ``* * * * *`` schedule in the minute it was applied would see only skips; rather than
    wait for the wall clock's next minute, it says the schedule has existed for a while.
    """
    since = (datetime.now(UTC) - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = json.dumps({"status": {"scheduleSince": since}})
    for name in names:
        stack.plane.kubectl(
            "patch", "qcwf", name, "-n", stack.namespace, "--subresource=status",
            "--type=merge", "-p", patch,
        )  # fmt: skip


def wait(predicate: Any, *, timeout: float = 30.0, what: str = "condition") -> None:
    poll_until(predicate, timeout=timeout, interval=0.2, what=what)


def elapsed_since(start: float) -> float:
    return time.monotonic() - start
