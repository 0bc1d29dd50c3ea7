"""The chart grants each component exactly what its code calls: nothing missing, nothing spare.

Every Kubernetes API call goes through ``qstash_operator.adapters.kube.Kube``. This test reads the
components' source with ``ast``, finds every ``Kube`` method they call, maps each to the
(verb, resource) it needs, adds what kopf itself needs (its watches and patches), and compares the
result with the rules the chart renders for that component, both ways:

* missing: a call the chart does not allow (the API server would answer 403);
* spare: a rule no call needs (least privilege).

On the real API server, ``kubectl auth can-i --as=<the chart's ServiceAccount>`` then confirms that
the bindings really give each ServiceAccount every needed permission where it needs it. The
run-time proof, with the processes doing their work under those tokens, is
``tests/e2e/test_chart_rbac.py``; this one also covers the rare paths (a backend switch adopting
Jobs) that the run-time proof does not wait for.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import pytest

from qstash_devstack.controlplane import ControlPlane
from qstash_operator.adapters import kube as kube_module
from tests.integration.chart.support import REPO, find, install, render

Permission = tuple[str, str]  # (verb, resource[/subresource])

# What each adapter method asks of the API server; None: nothing RBAC governs (/version).
CALLS: Final[dict[str, Permission | None]] = {
    "ready": None,
    "get_cronworkflow": ("get", "cronworkflows"),
    "list_cronworkflows": ("list", "cronworkflows"),
    "patch_cronworkflow": ("patch", "cronworkflows"),  # status=True: cronworkflows/status
    "create_job": ("create", "jobs"),
    "get_job": ("get", "jobs"),
    "list_jobs": ("list", "jobs"),
    "patch_job": ("patch", "jobs"),
    "delete_job": ("delete", "jobs"),
    "get_cronjob": ("get", "cronjobs"),
    "list_cronjobs": ("list", "cronjobs"),
    "create_cronjob": ("create", "cronjobs"),
    "replace_cronjob": ("update", "cronjobs"),
    "patch_cronjob": ("patch", "cronjobs"),
    "delete_cronjob": ("delete", "cronjobs"),
    "get_lease": ("get", "leases"),
    "create_lease": ("create", "leases"),
    "replace_lease": ("update", "leases"),
    "post_event": ("create", "events"),
    "review_token": ("create", "tokenreviews"),
    "can": ("create", "subjectaccessreviews"),
    "review_access": ("create", "subjectaccessreviews"),
    "list_events": ("list", "events"),
    "list_cronworkflows_page": ("list", "cronworkflows"),
    "watch_cronworkflows": ("watch", "cronworkflows"),
    "list_jobs_page": ("list", "jobs"),
    "watch_jobs": ("watch", "jobs"),
}
NOT_API_CALLS: Final = {
    "from_environment",
    "close",
    "api_client",
    "bearer_token",
    "server",
    "max_connections",
}

PACKAGE = REPO / "operator" / "qstash_operator"
SOURCES: Final[dict[str, list[Path]]] = {
    "operator": [
        PACKAGE / "entrypoints" / "operator_main.py",
        PACKAGE / "entrypoints" / "handlers.py",
        PACKAGE / "adapters" / "leader.py",
        PACKAGE / "adapters" / "informer.py",  # its Job watch (services.job_index)
        PACKAGE / "services" / "reconcile.py",
        PACKAGE / "services" / "drift.py",
        PACKAGE / "services" / "observe.py",
        PACKAGE / "services" / "runs.py",
    ],
    "webhook": [
        *sorted((REPO / "webhook" / "qstash_webhook").rglob("*.py")),
        PACKAGE / "adapters" / "informer.py",  # its caches' lists and watches
        PACKAGE / "services" / "runs.py",
        PACKAGE / "services" / "catalog.py",
        PACKAGE / "services" / "deferred_status.py",
    ],
}
# kopf's own calls: it lists and watches what handlers are registered for (handlers.py: not Jobs,
# which the operator watches itself through adapters.informer), patches
# CronWorkflows (finalizer, progress annotations) and their status, and watches CRDs to notice
# ours appearing; in namespaced mode it also lists and watches namespaces.
KOPF: Final[set[Permission]] = {
    ("list", "cronworkflows"),
    ("watch", "cronworkflows"),
    ("patch", "cronworkflows"),
    ("patch", "cronworkflows/status"),
    ("list", "cronjobs"),
    ("watch", "cronjobs"),
    ("list", "customresourcedefinitions"),
    ("watch", "customresourcedefinitions"),
}
KOPF_NAMESPACED: Final[set[Permission]] = {("list", "namespaces"), ("watch", "namespaces")}


def test_every_adapter_method_is_mapped() -> None:
    methods = {
        name
        for name, value in vars(kube_module.Kube).items()
        if not name.startswith("_")
        and (callable(value) or isinstance(value, property | classmethod))
    }
    assert methods - NOT_API_CALLS == set(CALLS), "map the new Kube method to its RBAC needs"


def calls_in(paths: Iterable[Path]) -> set[Permission]:
    needed: set[Permission] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            method = node.func.attr
            receiver = ast.unparse(node.func.value)
            if method not in CALLS or "kube" not in receiver.lower():
                continue
            permission = CALLS[method]
            if permission is None:
                continue
            if method == "patch_cronworkflow" and any(
                k.arg == "status" and isinstance(k.value, ast.Constant) and k.value.value
                for k in node.keywords
            ):
                permission = ("patch", "cronworkflows/status")
            needed.add(permission)
    return needed


# Writes that give an object a CronWorkflow as its blocking owner (blockOwnerDeletion: the
# builders set it on Jobs and CronJobs, and adoption patches it onto a CronJob's Jobs). Where the
# OwnerReferencesPermissionEnforcement admission plugin runs (OpenShift, and our test control
# plane), each needs `update` on the owner's finalizers subresource.
OWNING_WRITES: Final[set[Permission]] = {
    ("create", "jobs"),
    ("patch", "jobs"),
    ("create", "cronjobs"),
    ("update", "cronjobs"),
}
OWNER_FINALIZERS: Final[Permission] = ("update", "cronworkflows/finalizers")


def needed(component: str, *, namespaced: bool) -> set[Permission]:
    permissions = calls_in(SOURCES[component])
    if permissions & OWNING_WRITES:
        permissions.add(OWNER_FINALIZERS)
    if component == "operator":
        permissions |= KOPF | (KOPF_NAMESPACED if namespaced else set())
    return permissions


def granted(manifests: list[dict[str, object]], component: str) -> set[Permission]:
    """(verb, resource) pairs of every rule bound to the component's ServiceAccount."""
    account = f"-{component}"
    roles = {
        (role["kind"], role["metadata"]["name"]): role  # type: ignore[index]
        for role in find(manifests, "ClusterRole") + find(manifests, "Role")
    }
    result: set[Permission] = set()
    for binding in find(manifests, "ClusterRoleBinding") + find(manifests, "RoleBinding"):
        subjects = binding["subjects"]  # type: ignore[index]
        if not any(s["name"].endswith(account) for s in subjects):
            continue
        ref = binding["roleRef"]  # type: ignore[index]
        role = roles[(ref["kind"], ref["name"])]
        for rule in role["rules"]:  # type: ignore[index]
            result |= {(verb, resource) for verb in rule["verbs"] for resource in rule["resources"]}
    return result


def test_the_code_reaches_the_api_through_the_adapter_only() -> None:
    # A call that bypassed Kube would escape this accounting.
    for paths in SOURCES.values():
        for path in paths:
            text = path.read_text()
            assert "kubernetes.client" not in text, path
            assert "CoreV1Api" not in text, path


@pytest.mark.parametrize("namespaced", [False, True], ids=["cluster-wide", "namespaced"])
@pytest.mark.parametrize("component", ["operator", "webhook"])
def test_the_chart_grants_exactly_what_the_code_needs(
    bin_dir: Path, component: str, namespaced: bool
) -> None:
    value_set = "namespaced" if namespaced else "qstash"
    manifests = render(bin_dir, value_set)
    want = needed(component, namespaced=namespaced)
    have = granted(manifests, component)
    assert want - have == set(), f"missing for the {component}"
    assert have - want == set(), f"granted but never used by the {component}"


@pytest.mark.parametrize("component", ["operator", "webhook"])
def test_the_service_accounts_can_do_it_on_the_api_server(
    control_plane: ControlPlane, namespace: str, component: str
) -> None:
    release = f"cani-{component[:2]}-{namespace.rsplit('-', 1)[-1]}"
    install(
        control_plane,
        release,
        namespace,
        "namespaced",
        sets=["crds.enabled=false"],
        set_json=[f'operator.namespaces=["{namespace}"]'],
    )
    account = f"system:serviceaccount:{namespace}:{release}-qstash-operator-{component}"
    cluster_scoped = {
        "customresourcedefinitions",
        "namespaces",
        "tokenreviews",
        "subjectaccessreviews",
    }
    refused = []
    for verb, resource in sorted(needed(component, namespaced=True)):
        where = [] if resource in cluster_scoped else ["-n", namespace]
        plural, _, subresource = resource.partition("/")
        target = [plural, *(["--subresource", subresource] if subresource else [])]
        if resource == "leases" and verb != "create":
            target = ["leases/qstash-operator"]  # the rule names the one Lease it may touch
        answer = control_plane.kubectl(
            "auth", "can-i", verb, *target, "--as", account, *where, check=False
        ).stdout.strip()
        if answer != "yes":
            refused.append((verb, resource))
    assert refused == []
    # ... and nothing beyond its namespace: another namespace is out of reach.
    elsewhere = control_plane.kubectl(
        "auth", "can-i", "list", "cronworkflows", "--as", account, "-n", "default", check=False
    ).stdout.strip()
    assert elsewhere == "no"
    if component == "operator":  # and no Lease but its own
        other_lease = control_plane.kubectl(
            "auth",
            "can-i",
            "update",
            "leases/someone-else",
            "--as",
            account,
            "-n",
            namespace,
            check=False,
        ).stdout.strip()
        assert other_lease == "no"
