"""RBAC proof: the operator and the webhook do their whole job with the chart's own identities.

The chart is installed into the test's namespace (its CRD switched off: the session's control plane
already serves it). Then the operator and the webhook run as local processes whose kubeconfigs hold
tokens minted for the chart's ServiceAccounts (``kubectl create token``), exactly the identity
their Pods would have, and go through the life cycle (create, edit, suspend, resume, run-now,
drift repair, the CronJob backend, the status mirror, delete with its finalizer) and the delivery
path (a signed QStash delivery makes a Job, Replace deletes the active one, history limits prune,
the token-checked /api/cron endpoints). Every step is checked to have happened, and afterwards no
log line, condition or event may show a permission denial.

Namespaced mode is the least-privileged shape (Roles in the watched namespace), so it gets the full
tour; the cluster-wide shape (ClusterRoles) gets a shorter one that still covers every kind of
call.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from qstash import QStash

from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.stack import Child, Stack, backdate_schedules, cronworkflow, http_get
from qstash_devstack.stack import wait as wait_briefly
from qstash_operator.settings import DEFAULT_API_AUDIENCE
from tests.integration.chart.support import install, service_account_kubeconfig

MANAGED = "qstash-operator.dev/cronworkflow"
DENIAL = re.compile(r"forbidden|not enough permissions|cannot \w+ resource", re.IGNORECASE)
TERMINATING = re.compile(r"because it is being terminated")
LONG_RUN = {"kwok.qstash-operator.dev/run-for": "1h"}  # the Job stays active
PATIENCE = 90.0
"""Seconds any one step may take: generous, because two cores are shared with other suites."""


def wait(predicate: Any, *, what: str = "condition", timeout: float = PATIENCE) -> None:
    wait_briefly(predicate, timeout=timeout, what=what)


def ready(stack: Stack, name: str) -> None:
    stack.wait_condition(name, "Ready", "True", timeout=PATIENCE)


def release_name(namespace: str) -> str:
    # Cluster-scoped objects (ClusterRoles) carry the release name: keep it unique per test.
    return "rbac-" + namespace.rsplit("-", 1)[-1]


def denials(children: list[Child], *, own_namespace: str) -> list[str]:
    """Log lines that report a refused API call (a 403 in any of its wordings)."""
    found = []
    for child in children:
        for line in child.output().splitlines():
            if not DENIAL.search(line):
                continue
            # A cluster-wide operator may meet other tests' namespaces being deleted; the API
            # server refuses new content there with a 403 that is not about RBAC.
            if TERMINATING.search(line) and own_namespace not in line:
                continue
            found.append(f"{child.name}: {line}")
    return found


def sdk(stack: Stack) -> QStash:
    return QStash(stack.qstash.token, base_url=stack.qstash.url, retry=False)


def schedule_id(stack: Stack, name: str) -> str:
    return f"{stack.cluster_name}.{stack.namespace}.{name}"


def with_pod_annotations(name: str, spec: dict[str, Any], annotations: dict[str, str]) -> Any:
    manifest = cronworkflow(name, spec)
    template = manifest["spec"]["jobTemplate"]["spec"]["template"]
    template["metadata"] = {"annotations": annotations}
    return manifest


def api(stack: Stack, method: str, path: str, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(  # noqa: S310 (loopback)
        f"{stack.public_url}{path}", method=method, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def caller_token(plane: ControlPlane, namespace: str, release: str) -> str:
    """A person's token: a ServiceAccount bound to the chart's aggregated `edit` ClusterRole in this
    namespace (list, patch and the custom verb trigger on cronworkflows)."""
    manifest = f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: caller, namespace: {namespace}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: caller-edit, namespace: {namespace}}}
roleRef:
  {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {release}-qstash-operator-edit}}
subjects: [{{kind: ServiceAccount, name: caller, namespace: {namespace}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: caller-view, namespace: {namespace}}}
roleRef:
  {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {release}-qstash-operator-view}}
subjects: [{{kind: ServiceAccount, name: caller, namespace: {namespace}}}]
"""
    plane.kubectl("apply", "-f", "-", input=manifest)
    return plane.create_service_account_token(namespace, "caller", audience=DEFAULT_API_AUDIENCE)


def cluster_viewer_token(plane: ControlPlane, namespace: str, release: str) -> str:
    """A token allowed to list CronWorkflows in every namespace (the chart's `view` role, bound
    cluster-wide). The test deletes the binding at its end."""
    binding = f"{namespace}-viewer"
    manifest = f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: viewer, namespace: {namespace}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {binding}}}
roleRef:
  {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {release}-qstash-operator-view}}
subjects: [{{kind: ServiceAccount, name: viewer, namespace: {namespace}}}]
"""
    plane.kubectl("apply", "-f", "-", input=manifest)
    return plane.create_service_account_token(namespace, "viewer", audience=DEFAULT_API_AUDIENCE)


def install_chart(stack: Stack, tmp_path: Path, *, namespaced: bool) -> tuple[Path, Path, str]:
    """Install the chart (QStash mode) and return the operator's and the webhook's kubeconfigs."""
    plane, namespace = stack.plane, stack.namespace
    release = release_name(namespace)
    if namespaced:
        install(
            plane,
            release,
            namespace,
            "namespaced",
            sets=["crds.enabled=false"],
            set_json=[f'operator.namespaces=["{namespace}"]'],
        )
    else:
        install(plane, release, namespace, "qstash", sets=["crds.enabled=false"])
    _, operator = service_account_kubeconfig(plane, namespace, release, "operator", tmp_path)
    _, webhook = service_account_kubeconfig(plane, namespace, release, "webhook", tmp_path)
    return operator, webhook, release


def assert_no_denials(stack: Stack) -> None:
    for child in stack.children:
        child.stop()
    found = denials(stack.children, own_namespace=stack.namespace)
    assert not found, "permission denials:\n" + "\n".join(found[:20])
    for item in stack.list("cronworkflows"):
        reasons = {c.get("reason") for c in (item.get("status") or {}).get("conditions") or []}
        assert "Forbidden" not in reasons, item["metadata"]["name"]
    assert "Forbidden" not in {event.get("reason") for event in stack.list("events")}


@pytest.mark.slow
def test_namespaced_roles_carry_the_whole_life_cycle_and_delivery_path(
    stack: Stack, tmp_path: Path
) -> None:
    operator_kc, webhook_kc, release = install_chart(stack, tmp_path, namespaced=True)
    ns = stack.namespace
    operator, port = stack.operator(
        leader_election=True,
        kubeconfig=operator_kc,
        extra_env={"QSTASH_OPERATOR_RESYNC_SECONDS": "1"},
    )
    # A tolerance of a whole minute makes any delivery belong to the coming tick, so the test
    # need not wait for the wall clock's minute boundary.
    stack.webhook(
        kubeconfig=webhook_kc,
        # As the chart sets it for both components in namespaced mode.
        extra_env={"QSTASH_OPERATOR_CLOCK_TOLERANCE": "60", "QSTASH_OPERATOR_NAMESPACES": ns},
    )
    wait(lambda: json.loads(http_get(f"http://127.0.0.1:{port}/readyz")[1] or "{}").get("leader"))
    lease = json.loads(
        stack.plane.kubectl("get", "lease", "qstash-operator", "-n", ns, "-o", "json").stdout
    )
    assert lease["spec"]["holderIdentity"].startswith("operator")

    # -- life cycle on QStash --------------------------------------------------------------
    stack.apply(cronworkflow("life"))
    ready(stack, "life")
    sid = schedule_id(stack, "life")
    stack.apply(cronworkflow("life", {"schedule": "*/7 * * * *"}))
    wait(lambda: sdk(stack).schedule.get(sid).cron.endswith("*/7 * * * *"), what="the edit")
    patch = ["patch", "qcwf", "life", "-n", ns, "--type=merge", "-p"]
    stack.plane.kubectl(*patch, '{"spec":{"suspend":true}}')
    wait(lambda: sdk(stack).schedule.get(sid).paused, what="the pause")
    stack.plane.kubectl(*patch, '{"spec":{"suspend":false}}')
    wait(lambda: not sdk(stack).schedule.get(sid).paused, what="the resume")

    # run-now: the operator makes a manual Job, clears the annotation, and mirrors its success
    stack.plane.kubectl("annotate", "qcwf", "life", "-n", ns, "qstash-operator.dev/run-now=1")
    wait(lambda: stack.list("jobs", f"{MANAGED}=life"), what="the manual Job")
    wait(
        lambda: "lastSuccessfulTime" in (stack.get("cronworkflow", "life") or {})["status"],
        what="the status mirror of the completed Job",
    )

    # drift: a schedule deleted behind the operator's back comes back
    sdk(stack).schedule.delete(sid)
    wait(lambda: sid in {s.schedule_id for s in sdk(stack).schedule.list()}, what="drift repair")

    # -- the CronJob backend -----------------------------------------------------------------
    stack.apply(cronworkflow("native", {"backend": "CronJob"}))
    ready(stack, "native")
    stack.apply(cronworkflow("native", {"backend": "CronJob", "schedule": "*/9 * * * *"}))
    wait(
        lambda: (
            (stack.get("cronjob", "native") or {}).get("spec", {}).get("schedule") == "*/9 * * * *"
        ),
        what="the CronJob to follow the edit",
    )
    stack.plane.kubectl("delete", "qcwf", "native", "-n", ns, "--timeout=30s")
    wait(lambda: stack.get("cronjob", "native") is None, what="the CronJob to go")

    # -- the delivery path (webhook) ---------------------------------------------------------
    stack.apply(
        with_pod_annotations(
            "ticks",
            {
                "schedule": "* * * * *",
                "concurrencyPolicy": "Replace",
                "successfulJobsHistoryLimit": 1,
            },
            LONG_RUN,
        )
    )
    ready(stack, "ticks")
    backdate_schedules(stack, ["ticks"])  # this minute's tick is not before the schedule
    message = stack.qstash.fire(schedule_id(stack, "ticks"), force=True)
    outcome = stack.qstash.wait_for_message(message)
    assert outcome["state"] == "SUCCESS", outcome
    [tick_job] = stack.list("jobs", f"{MANAGED}=ticks")

    token = caller_token(stack.plane, ns, release)
    status, body = api(stack, "GET", f"/api/cron?namespace={ns}", token)
    assert status == 200, body
    assert {item["name"] for item in body["items"]} >= {"life", "ticks"}
    status, body = api(stack, "DELETE", f"/api/cron/deactivate/{ns}/life", token)
    assert status == 200, body
    status, body = api(stack, "POST", f"/api/cron/activate/{ns}/life", token)
    assert status == 200, body
    # Someone allowed to list everywhere asks for everything: the webhook, with Roles in this
    # namespace only, must answer from the watched namespaces rather than ask for the cluster.
    viewer = cluster_viewer_token(stack.plane, ns, release)
    for path in ("/api/cron", "/api/test-cron"):
        status, body = api(stack, "GET", path, viewer)
        assert status == 200, (path, body)

    # Replace: a manual run through the webhook deletes the active tick Job
    status, body = api(stack, "POST", f"/api/test-cron?workflowId={ns}/ticks&action=trigger", token)
    assert status == 201, body
    wait(
        lambda: (
            tick_job["metadata"]["name"]
            not in {job["metadata"]["name"] for job in stack.list("jobs", f"{MANAGED}=ticks")}
        ),
        what="Replace to delete the tick's Job",
    )

    # Replace through the operator: run-now deletes the webhook's active manual Job
    before = {job["metadata"]["name"] for job in stack.list("jobs", f"{MANAGED}=ticks")}
    stack.plane.kubectl("annotate", "qcwf", "ticks", "-n", ns, "qstash-operator.dev/run-now=2")
    wait(
        lambda: (
            (names := {job["metadata"]["name"] for job in stack.list("jobs", f"{MANAGED}=ticks")})
            and not names & before
        ),
        what="the operator's Replace to delete the active Job",
    )

    # history limits: two quick manual runs through the webhook leave one successful Job
    stack.apply(cronworkflow("history", {"successfulJobsHistoryLimit": 1}))
    ready(stack, "history")
    trigger = f"/api/test-cron?workflowId={ns}/history&action=trigger"
    for _ in range(2):
        assert api(stack, "POST", trigger, token)[0] == 201
        wait(
            lambda: all(
                job.get("status", {}).get("succeeded")
                for job in stack.list("jobs", f"{MANAGED}=history")
            ),
            what="the manual Job to complete",
        )
    wait(
        lambda: len(stack.list("jobs", f"{MANAGED}=history")) == 1,
        what="the history limit to prune",
    )

    # delete: the finalizer removes the QStash schedule
    stack.plane.kubectl("delete", "qcwf", "life", "-n", ns, "--timeout=30s")
    assert sid not in {s.schedule_id for s in sdk(stack).schedule.list()}
    assert "acquired leader lease" in operator.output()
    assert_no_denials(stack)
    stack.plane.kubectl("delete", "clusterrolebinding", f"{ns}-viewer", "--ignore-not-found")


def test_cluster_roles_carry_a_cluster_wide_operator_and_webhook(
    stack: Stack, tmp_path: Path
) -> None:
    operator_kc, webhook_kc, release = install_chart(stack, tmp_path, namespaced=False)
    ns = stack.namespace
    # No QSTASH_OPERATOR_NAMESPACES: the operator and the webhook see the whole cluster.
    whole_cluster = {"QSTASH_OPERATOR_NAMESPACES": ""}
    stack.operator(leader_election=True, kubeconfig=operator_kc, extra_env=whole_cluster)
    stack.webhook(
        kubeconfig=webhook_kc,
        extra_env={**whole_cluster, "QSTASH_OPERATOR_CLOCK_TOLERANCE": "60"},
    )
    stack.apply(with_pod_annotations("wide", {"schedule": "* * * * *"}, LONG_RUN))
    ready(stack, "wide")
    stack.apply(cronworkflow("wide-native", {"backend": "CronJob"}))
    ready(stack, "wide-native")
    backdate_schedules(stack, ["wide"])  # this minute's tick is not before the schedule
    message = stack.qstash.fire(schedule_id(stack, "wide"), force=True)
    assert stack.qstash.wait_for_message(message)["state"] == "SUCCESS"
    wait(lambda: stack.list("jobs", f"{MANAGED}=wide"), what="the tick's Job")
    stack.plane.kubectl("annotate", "qcwf", "wide", "-n", ns, "qstash-operator.dev/run-now=1")
    wait(lambda: len(stack.list("jobs", f"{MANAGED}=wide")) == 2, what="the manual Job")

    token = caller_token(stack.plane, ns, release)
    status, body = api(stack, "GET", f"/api/cron?namespace={ns}", token)
    assert status == 200, body
    status, body = api(stack, "POST", f"/api/test-cron?workflowId={ns}/wide&action=trigger", token)
    assert status == 201, body
    stack.plane.kubectl("delete", "qcwf", "wide", "wide-native", "-n", ns, "--timeout=30s")
    assert_no_denials(stack)
