"""Each value set on the real API server: a server-side dry run of every object, then helm install.

kwok runs the pods (they never pull the image, which exists in no registry here), so
``helm install --wait`` returns once the Deployments are available; the assertions are on the
objects the API server accepted and holds, not on the image running. The session's control plane
already serves the CRD from ``crds/``; installs with ``crds.enabled`` take it over
(``--take-ownership``) and, with ``crds.keep``, leave it behind on uninstall.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from qstash_devstack.controlplane import ControlPlane
from tests.integration.chart.support import (
    CHART,
    VALUE_SETS,
    install,
    parse,
    values_file,
)

CRD = "customresourcedefinitions/cronworkflows.qstash-operator.dev"
NAMESPACES_OF_THE_NAMESPACED_SET = ("team-a", "team-b")
SECRET_OF_THE_EXISTING_SECRET_SET = "qstash-credentials"


def ensure_namespace(plane: ControlPlane, name: str) -> None:
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    plane.kubectl("apply", "-f", "-", input=json.dumps(manifest))


def prepare(plane: ControlPlane, value_set: str, namespace: str) -> None:
    """What each value set expects to exist before it is installed (see the files' comments)."""
    if value_set == "namespaced":
        for name in NAMESPACES_OF_THE_NAMESPACED_SET:
            ensure_namespace(plane, name)
    if value_set == "existing-secret":
        plane.kubectl(
            "create",
            "secret",
            "generic",
            SECRET_OF_THE_EXISTING_SECRET_SET,
            "-n",
            namespace,
            "--from-literal=QSTASH_TOKEN=t",
            "--from-literal=QSTASH_CURRENT_SIGNING_KEY=sig_a",
            "--from-literal=QSTASH_NEXT_SIGNING_KEY=sig_b",
        )


def release_for(value_set: str, namespace: str) -> str:
    # Cluster-scoped objects carry the release name; unique per test.
    return f"{value_set[:8]}-{namespace.rsplit('-', 1)[-1]}"


def rendered(plane: ControlPlane, release: str, namespace: str, value_set: str) -> str:
    return plane.helm(
        "template", release, str(CHART), "--namespace", namespace, "-f", str(values_file(value_set))
    ).stdout


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_rendered_object_passes_a_server_side_dry_run(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, value_set: str
) -> None:
    prepare(control_plane, value_set, namespace)
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(rendered(control_plane, "dry", namespace, value_set))
    objects = parse(manifest.read_text())
    result = control_plane.kubectl("apply", "--dry-run=server", "-f", str(manifest))
    accepted = [line for line in result.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(objects), result.stdout + result.stderr


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_helm_install_creates_every_object_and_uninstall_keeps_the_crd(
    control_plane: ControlPlane, namespace: str, value_set: str
) -> None:
    prepare(control_plane, value_set, namespace)
    release = release_for(value_set, namespace)
    install(control_plane, release, namespace, value_set, extra=["--take-ownership"])

    manifest = parse(
        control_plane.helm("get", "manifest", release, "--namespace", namespace).stdout
    )
    for item in manifest:
        meta = item["metadata"]
        args = ["get", item["kind"], meta["name"], "-o", "name"]
        if "namespace" in meta:
            args += ["-n", meta["namespace"]]
        assert control_plane.kubectl(*args).stdout.strip(), meta
    deployments = json.loads(
        control_plane.kubectl(
            "get",
            "deployments",
            "-n",
            namespace,
            "-l",
            f"app.kubernetes.io/instance={release}",
            "-o",
            "json",
        ).stdout
    )["items"]
    expected_components = {"operator"} if value_set == "cronjob" else {"operator", "webhook"}
    assert {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in deployments} == (
        expected_components
    )
    for deployment in deployments:
        assert deployment["status"].get("availableReplicas") == deployment["spec"]["replicas"]

    notes = control_plane.helm("get", "notes", release, "--namespace", namespace).stdout
    if value_set == "cronjob":
        assert "Backend: DEVELOPMENT MODE (qstash.token is not set)" in notes
    else:
        assert "Backend: QSTASH" in notes
        assert "https://cron" in notes
    assert f"kubectl logs -n {namespace} deploy/" in notes

    crd = json.loads(control_plane.kubectl("get", CRD, "-o", "json").stdout)
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    control_plane.helm("uninstall", release, "--namespace", namespace, "--wait")
    kept = control_plane.kubectl("get", CRD, "-o", "name").stdout.strip()
    assert kept == "customresourcedefinition.apiextensions.k8s.io/cronworkflows.qstash-operator.dev"
    left = control_plane.kubectl(
        "get",
        "deployments,clusterroles",
        "-A",
        "-l",
        f"app.kubernetes.io/instance={release}",
        "-o",
        "name",
    ).stdout
    assert left.strip() == ""


def test_a_service_monitor_and_the_other_extras_pass_a_server_side_dry_run(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    # A stand-in for the Prometheus Operator's CRD: enough for the API server to know the kind.
    stub = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": "ServiceMonitor", "plural": "servicemonitors"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(stub))
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com"
    )
    text = control_plane.helm(
        "template",
        "extras",
        str(CHART),
        "--namespace",
        namespace,
        "-f",
        str(values_file("qstash")),
        "--set",
        "prometheus.serviceMonitor.enabled=true",
        "--set",
        "webhook.service.type=NodePort",
        "--set",
        "global.imagePullSecrets[0].name=registry",
    ).stdout
    manifest = tmp_path / "extras.yaml"
    manifest.write_text(text)
    try:
        result = control_plane.kubectl("apply", "--dry-run=server", "-f", str(manifest))
    except subprocess.CalledProcessError as error:  # pragma: no cover - the failure message
        raise AssertionError(str(error)) from error
    assert "servicemonitor.monitoring.coreos.com/extras-qstash-operator-webhook created" in (
        result.stdout
    )
