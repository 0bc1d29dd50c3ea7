"""Render and install the chart with the built helm; shared by the chart tests and the RBAC proof.

Everything goes through the helm binary the control plane build produced (``devstack/
build.sh``), the same version the README's kind instructions use (v3.22), so what renders here is
what users get.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from qstash_devstack.controlplane import ControlPlane, KubectlError

REPO: Final = Path(__file__).resolve().parents[3]
CHART: Final = REPO / "charts" / "qstash-operator"
CI: Final = CHART / "ci"
VALUE_SETS: Final = ("qstash", "cronjob", "existing-secret", "namespaced")
"""The ci/<name>-values.yaml files: every one is linted, rendered, dry-run and installed."""

Manifest = dict[str, Any]


def values_file(name: str) -> Path:
    return CI / f"{name}-values.yaml"


def helm(bin_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm without a cluster (template, lint); its caches stay out of $HOME."""
    argv = [str(bin_dir / "helm"), *args]
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HELM_CACHE_HOME": "/tmp/qso-helm-cache"},
    )
    if check and proc.returncode != 0:
        raise KubectlError(proc.returncode, argv, proc.stdout, proc.stderr)
    return proc


def parse(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(
    bin_dir: Path,
    *values: str,
    sets: Sequence[str] = (),
    namespace: str = "qso-system",
    release: str = "qso",
) -> list[Manifest]:
    """``helm template`` of the chart with ci value sets (by name) and ``--set`` pairs."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    for name in values:
        args += ["-f", str(values_file(name))]
    for pair in sets:
        args += ["--set", pair]
    return parse(helm(bin_dir, *args).stdout)


def find(manifests: Sequence[Manifest], kind: str, suffix: str = "") -> list[Manifest]:
    """The objects of ``kind`` whose name ends with ``suffix``."""
    return [m for m in manifests if m["kind"] == kind and m["metadata"]["name"].endswith(suffix)]


def one(manifests: Sequence[Manifest], kind: str, suffix: str = "") -> Manifest:
    found = find(manifests, kind, suffix)
    assert len(found) == 1, f"expected one {kind} *{suffix}, found {[m['metadata'] for m in found]}"
    return found[0]


def install(
    plane: ControlPlane,
    release: str,
    namespace: str,
    *values: str,
    sets: Sequence[str] = (),
    set_json: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> None:
    """``helm install --wait`` into the local control plane (kwok runs the pods)."""
    args = ["install", release, str(CHART), "--namespace", namespace, "--wait", "--timeout=90s"]
    for name in values:
        args += ["-f", str(values_file(name))]
    for pair in sets:
        args += ["--set", pair]
    for pair in set_json:
        args += ["--set-json", pair]
    plane.helm(*args, *extra, timeout=150)


def service_account_kubeconfig(
    plane: ControlPlane, namespace: str, release: str, component: str, directory: Path
) -> tuple[str, Path]:
    """The chart's ServiceAccount of ``component``, and a kubeconfig holding a token minted for it
    (``kubectl create token``): the identity the component has in a real Pod."""
    selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/component={component}"
    listed = json.loads(
        plane.kubectl(
            "get", "serviceaccounts", "-n", namespace, "-l", selector, "-o", "json"
        ).stdout
    )
    [account] = [item["metadata"]["name"] for item in listed["items"]]
    token = plane.create_service_account_token(namespace, account, duration="2h")
    return account, plane.kubeconfig_for_token(token, directory / f"{component}.kubeconfig")
