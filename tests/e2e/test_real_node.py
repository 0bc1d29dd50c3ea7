"""The chart on a real node: a kubelet on containerd runs the image's pods, probes and all.

A :class:`~qstash_devstack.node.RealNode` joins the session's control plane (kwok's fake node stays
for the tests that need many pods: the real node is tainted and only pods that tolerate it and
select it land there). The chart is installed with helm from the repository in QStash mode, its
image preloaded into containerd, and the test checks, on that node:

* both Deployments become Ready through their real HTTP probes, on the real node;
* the API server saw the pods' own ServiceAccount tokens (audit log: the chart's ServiceAccounts,
  bound to these pods on this node), never refused one (no 403 there or in the pods' logs);
* a CronWorkflow's tick, fired by the QStash-compatible server, reaches the webhook pod, and its
  Job's pod runs a real container (busybox from a local image) to completion;
* ``helm uninstall`` leaves no object of the release and no running container behind.

Networking, and why: the test control plane and the QStash-compatible server listen on loopback,
so the chart's pods run with ``hostNetwork`` (a chart value) and are told the API server's address
with ``KUBERNETES_SERVICE_HOST``/``PORT`` (``extraEnv``); there is no kube-proxy. The Job's pod
uses the pod network (CNI bridge). Figures (node start, pods' memory at rest) go to the summary.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qstash import QStash

from qstash_devstack.containers import BuiltImage, build_node_images
from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.node import RealNode, build_kubelet, pod_memory
from qstash_devstack.polling import poll_until
from qstash_devstack.processes import free_port
from qstash_devstack.stack import Stack, backdate_schedules, wait
from qstash_server.testing import ThreadedServer
from tests.integration.chart.support import CHART

pytestmark = [pytest.mark.slow, pytest.mark.node]

DENIAL = re.compile(r"forbidden|not enough permissions|cannot \w+ resource|\b403\b", re.I)
MANAGED = "qstash-operator.dev/cronworkflow"
POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"
NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"
PATIENCE = 120.0
"""Seconds a pod may take to start and pass its probes on two shared cores."""


@pytest.fixture(scope="module")
def real_node(
    control_plane: ControlPlane,
    product_image: BuiltImage,
    request: pytest.FixtureRequest,
    figures: list[str],
) -> Iterator[RealNode]:
    capture = request.config.pluginmanager.getplugin("capturemanager")
    assert capture is not None
    with capture.global_and_fixture_disabled():
        kubelet_dir = build_kubelet()
        helpers = build_node_images()
    node = RealNode(
        control_plane,
        pause_image=helpers["pause"],
        images=[product_image.ref, helpers["job"]],
        kubelet_dir=kubelet_dir,
    )
    with node:
        figures.append(
            "real node: Ready {ready:.1f}s after start (containerd {containerd:.1f}s, "
            "images imported {images:.1f}s)".format(**node.timings)
        )
        yield node


@pytest.fixture(autouse=True)
def explain_failure(
    request: pytest.FixtureRequest, real_node: RealNode, namespace: str
) -> Iterator[None]:
    """On failure, what CI needs to tell why: the pods as the API server describes them, and the
    kubelet's and containerd's last words."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        described = real_node.plane.kubectl("describe", "pods", "-n", namespace, check=False)
        print(f"----- kubectl describe pods -----\n{described.stdout[-8000:]}")
        plane = real_node.plane
        for pod in plane.kubectl("get", "pods", "-n", namespace, "-o", "name").stdout.split():
            for previous in ("--previous=false", "--previous=true"):
                logs = plane.kubectl("logs", "-n", namespace, pod, previous, check=False)
                print(f"----- {pod} {previous} -----\n{logs.stdout[-4000:]}")
        print(real_node.diagnostics())


def values(
    node: RealNode, image: BuiltImage, qstash: ThreadedServer, stack: Stack, ports: dict[str, int]
) -> dict[str, Any]:
    repository, tag = image.ref.rsplit(":", 1)
    registry, repository = repository.split("/", 1)
    api_port = urllib.parse.urlsplit(stack.plane.server).port
    placement = {
        "hostNetwork": True,
        "nodeSelector": node.node_selector(),
        "tolerations": node.tolerations(),
        "extraEnv": [
            {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
            {"name": "KUBERNETES_SERVICE_PORT", "value": str(api_port)},
        ],
    }
    return {
        "crds": {"enabled": False},  # the session's control plane serves the CRD already
        "image": {
            "registry": registry,
            "repository": repository,
            "tag": tag,
            "pullPolicy": "Never",
        },
        "qstash": {
            "url": qstash.url,
            "token": qstash.token,
            "currentSigningKey": qstash.current_key,
            "nextSigningKey": qstash.next_key,
        },
        "clusterName": stack.cluster_name,
        "allowPrivateUrl": True,
        "operator": {**placement, "httpPort": ports["operator"], "namespaces": [stack.namespace]},
        "webhook": {
            **placement,
            "port": ports["webhook"],
            "publicUrl": f"http://127.0.0.1:{ports['webhook']}",
        },
    }


def job_cronworkflow(node: RealNode, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "qstash-operator.dev/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": "on-node"},
        "spec": {
            "schedule": "* * * * *",
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "nodeSelector": node.node_selector(),
                            "tolerations": node.tolerations(),
                            "containers": [
                                {
                                    "name": "main",
                                    "image": image,
                                    "imagePullPolicy": "Never",
                                    "args": ["sh", "-c", "echo ran as $(id -u) on $(hostname)"],
                                    "securityContext": {
                                        "runAsUser": 65534,
                                        "runAsNonRoot": True,
                                        "readOnlyRootFilesystem": True,
                                        "allowPrivilegeEscalation": False,
                                        "capabilities": {"drop": ["ALL"]},
                                    },
                                }
                            ],
                        }
                    },
                }
            },
        },
    }


def component_pod(stack: Stack, release: str, component: str) -> dict[str, Any]:
    selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/component={component}"
    [pod] = stack.list("pods", selector)
    return pod


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def release_objects(plane: ControlPlane, namespace: str, release: str) -> list[str]:
    selector = f"app.kubernetes.io/instance={release}"
    kinds = (
        "deployments,replicasets,pods,services,serviceaccounts,secrets,configmaps,"
        "roles,rolebindings,poddisruptionbudgets,networkpolicies"
    )
    names = plane.kubectl(
        "get", kinds, "-n", namespace, "-l", selector, "-o", "name"
    ).stdout.split()
    names += plane.kubectl(
        "get", "clusterroles,clusterrolebindings", "-l", selector, "-o", "name"
    ).stdout.split()
    names += [
        name
        for name in plane.kubectl("get", "secrets", "-n", namespace, "-o", "name").stdout.split()
        if name.startswith("secret/sh.helm.release.v1.")
    ]
    return names


def test_the_chart_runs_on_a_real_node(
    real_node: RealNode,
    control_plane: ControlPlane,
    product_image: BuiltImage,
    qstash: ThreadedServer,
    namespace: str,
    tmp_path: Path,
    figures: list[str],
) -> None:
    plane, node = control_plane, real_node
    stack = Stack(plane, qstash, tmp_path, namespace)  # the cluster as a user sees it
    release = "node-" + namespace.rsplit("-", 1)[-1]
    ports = {"operator": free_port(), "webhook": free_port()}
    values_file = tmp_path / "values.json"
    values_file.write_text(json.dumps(values(node, product_image, qstash, stack, ports)))

    # -- helm install: both Deployments Ready through their real probes, on the real node ----
    began = time.monotonic()
    plane.helm(
        "install", release, str(CHART), "--namespace", namespace, "-f", str(values_file),
        "--wait", f"--timeout={int(PATIENCE)}s", timeout=PATIENCE + 30,
    )  # fmt: skip
    ready_in = time.monotonic() - began
    pods = {c: component_pod(stack, release, c) for c in ("operator", "webhook")}
    for component, pod in pods.items():
        assert pod["spec"]["nodeName"] == node.name, component
        assert pod_ready(pod), component
        [container] = pod["spec"]["containers"]
        probe = container["readinessProbe"]["httpGet"]
        assert probe["path"] == "/readyz"
        port = ports[component]
        assert {p["name"]: p["containerPort"] for p in container["ports"]}[probe["port"]] == port
        [status] = pod["status"]["containerStatuses"]
        assert status["ready"]
        assert status["restartCount"] == 0, f"{component} restarted: {status}"
        assert status["imageID"], status
    for name in ("operator", "webhook"):
        deployment = stack.get("deployment", f"{release}-qstash-operator-{name}") or {}
        assert deployment["status"].get("readyReplicas") == 1, name

    # -- a CronWorkflow fires; its Job's pod runs a real container to completion ------------
    helpers = build_node_images(quiet=True)
    stack.apply(job_cronworkflow(node, helpers["job"]))
    stack.wait_condition("on-node", "Ready", "True", timeout=PATIENCE)
    backdate_schedules(stack, ["on-node"])  # this minute's tick is not before the schedule
    sid = f"{stack.cluster_name}.{namespace}.on-node"
    schedule = QStash(qstash.token, base_url=qstash.url, retry=False).schedule.get(sid)
    assert schedule.destination == f"http://127.0.0.1:{ports['webhook']}/api/qstash/webhook"
    message = qstash.fire(sid, force=True)
    outcome = qstash.wait_for_message(message, timeout=PATIENCE)
    assert outcome["state"] == "SUCCESS", outcome
    [job] = stack.list("jobs", f"{MANAGED}=on-node")

    def job_pod_finished() -> dict[str, Any] | None:
        found = stack.list("pods", f"job-name={job['metadata']['name']}")
        if found and found[0].get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return found[0]
        return None

    job_pod = poll_until(
        job_pod_finished, timeout=PATIENCE, interval=0.5, what="the Job's pod to finish here"
    )
    assert job_pod["spec"]["nodeName"] == node.name
    assert job_pod["status"]["phase"] == "Succeeded", job_pod["status"]
    [terminated] = [s["state"]["terminated"] for s in job_pod["status"]["containerStatuses"]]
    assert terminated["exitCode"] == 0
    assert job_pod["status"]["podIP"].startswith("10.250.0.")  # the CNI bridge's network
    logs = plane.kubectl("logs", "-n", namespace, job_pod["metadata"]["name"]).stdout
    assert logs.strip() == f"ran as 65534 on {job_pod['metadata']['name']}", logs
    wait(
        lambda: (
            (stack.get("job", job["metadata"]["name"]) or {}).get("status", {}).get("succeeded")
            == 1
        ),
        timeout=PATIENCE,
        what="the Job to count its success",
    )

    # -- the pods' memory at rest, read from the kubelet ------------------------------------
    def measured() -> dict[str, int] | None:
        # cAdvisor fills a new pod's figures in on its next housekeeping pass: until then, 0.
        memory = pod_memory(node.stats_summary(), namespace)
        found = {c: memory.get(pods[c]["metadata"]["name"], 0) for c in ("operator", "webhook")}
        return found if all(found.values()) else None

    at_rest = poll_until(measured, timeout=PATIENCE, interval=1.0, what="the pods' memory figures")
    figures.append(
        f"real node: chart Ready {ready_in:.1f}s after helm install; memory at rest (kubelet "
        f"stats/summary workingSet): operator {at_rest['operator'] / 2**20:.0f} MiB, "
        f"webhook {at_rest['webhook'] / 2**20:.0f} MiB"
    )

    # -- the API server saw the pods' own ServiceAccount tokens, and refused none ------------
    seen: dict[str, set[str]] = {}
    refused = []
    for event in plane.audit_events():
        user = event.get("user", {})
        for component in pods:
            account = f"system:serviceaccount:{namespace}:{release}-qstash-operator-{component}"
            if user.get("username") != account:
                continue
            extra = user.get("extra", {})
            assert extra.get(NODE_NAME_EXTRA) == [node.name], extra
            seen.setdefault(component, set()).update(extra.get(POD_NAME_EXTRA, []))
            if event.get("responseStatus", {}).get("code") == 403:
                refused.append(f"{component}: {event['verb']} {event['requestURI']}")
    assert seen == {c: {pod["metadata"]["name"]} for c, pod in pods.items()}, seen
    assert refused == []
    for component, pod in pods.items():
        log = plane.kubectl("logs", "-n", namespace, pod["metadata"]["name"]).stdout
        assert log, component
        assert [line for line in log.splitlines() if DENIAL.search(line)] == [], component

    # -- helm uninstall leaves nothing behind --------------------------------------------------
    plane.kubectl("delete", "qcwf", "on-node", "-n", namespace, "--timeout=60s")
    sdk = QStash(qstash.token, base_url=qstash.url, retry=False)
    assert [
        s.schedule_id for s in sdk.schedule.list() if s.schedule_id.startswith(stack.cluster_name)
    ] == []
    plane.helm("uninstall", release, "--namespace", namespace, "--wait", "--timeout=90s")
    wait(
        lambda: release_objects(plane, namespace, release) == [],
        timeout=PATIENCE,
        what="every object of the release to go",
    )
    pod_uids = {pod["metadata"]["uid"] for pod in pods.values()}

    def no_container_runs() -> bool:
        running = node.ctr("tasks", "list").splitlines()[1:]
        ids = {line.split()[0] for line in running if "RUNNING" in line}
        labels = [json.loads(node.ctr("containers", "info", cid)).get("Labels", {}) for cid in ids]
        return not any(label.get("io.kubernetes.pod.uid") in pod_uids for label in labels)

    wait(no_container_runs, timeout=PATIENCE, what="the release's containers to stop")
