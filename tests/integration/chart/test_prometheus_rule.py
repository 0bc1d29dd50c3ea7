"""The chart's optional PrometheusRule: renders, lints, names only metrics the operator exports,
uses only fields prometheus-operator's API defines, and is accepted by the API server.

prometheus-operator publishes its CRD YAML in its root Go module, which the module proxy this
project may use does not serve; what it does serve is the API types module
(``github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring``). So this is a schema
test: the rule's fields are checked against the JSON tags of that module's ``v1`` types, and the
rule is applied to the real API server under a structural CRD written here for those fields
(``x-kubernetes-preserve-unknown-fields`` nowhere in it), so an unknown or mistyped field is
refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Final

import pytest

from qstash_devstack.controlplane import ControlPlane
from qstash_operator.adapters.operator_metrics import OperatorMetrics
from tests.integration.chart.support import CHART, find, helm, one, render

MONITORING_MODULE: Final = "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring"
MONITORING_VERSION: Final = "v0.95.2"
ENABLED: Final = "prometheus.rules.enabled=true"
DURATION: Final = "^(0|([0-9]+(ms|s|m|h|d|w|y))+)$"
"""A Prometheus duration, as prometheus-operator's ``Duration`` type documents it."""


def rule_manifest(bin_dir: Path, *sets: str) -> dict[str, Any]:
    return one(render(bin_dir, "qstash", sets=[ENABLED, *sets]), "PrometheusRule")


def test_no_rule_unless_asked(bin_dir: Path) -> None:
    assert find(render(bin_dir, "qstash"), "PrometheusRule") == []


def test_the_rule_alerts_on_stale_missed_and_failing_slots(bin_dir: Path) -> None:
    rule = rule_manifest(
        bin_dir, "prometheus.rules.labels.release=kube-prometheus", "prometheus.rules.for=10m"
    )
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus"
    [group] = rule["spec"]["groups"]
    alerts = {item["alert"]: item for item in group["rules"]}
    assert sorted(alerts) == [
        "QStashCronWorkflowSlotsFailing",
        "QStashCronWorkflowSlotsMissed",
        "QStashCronWorkflowStale",
    ]
    assert {item["for"] for item in alerts.values()} == {"10m"}
    # Prometheus templates reach Prometheus untouched by helm.
    assert (
        "{{ $labels.namespace }}/{{ $labels.name }}"
        in (alerts["QStashCronWorkflowStale"]["annotations"]["summary"])
    )
    # Every metric an expression names is one the operator exports.
    exported = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in OperatorMetrics().registry.collect()
    }
    for item in alerts.values():
        named = set(re.findall(r"qstash_operator_[a-z_]+", item["expr"]))
        assert named, item["expr"]
        assert named <= exported, f"{item['alert']} names {named - exported}"


def test_lint_strict_passes_with_the_rule(bin_dir: Path) -> None:
    result = helm(bin_dir, "lint", "--strict", str(CHART), "--set", ENABLED)
    assert "0 chart(s) failed" in result.stdout


def _go() -> str | None:
    return shutil.which("go") or (
        "/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None
    )


@pytest.fixture(scope="module")
def monitoring_types() -> str:
    """prometheus-operator's v1 PrometheusRule Go types, from the Go module proxy."""
    go = _go()
    if go is None:
        pytest.skip("no Go toolchain: the control plane build needs one too")
    result = subprocess.run(
        [go, "mod", "download", "-json", f"{MONITORING_MODULE}@{MONITORING_VERSION}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "GOFLAGS": "-mod=mod", "GOWORK": "off"},
        cwd="/tmp",
    )
    info = json.loads(result.stdout or "{}")
    assert "Dir" in info, result.stdout + result.stderr
    return (Path(info["Dir"]) / "v1" / "prometheusrule_types.go").read_text()


def _json_fields(source: str, struct: str) -> set[str]:
    body = re.search(rf"type {struct} struct \{{(.*?)\n\}}", source, re.S)
    assert body is not None, f"no struct {struct} in the types"
    return set(re.findall(r'json:"([a-z_A-Z]+)', body.group(1)))


def test_the_rule_uses_only_fields_of_prometheus_operators_types(
    bin_dir: Path, monitoring_types: str
) -> None:
    spec_fields = _json_fields(monitoring_types, "PrometheusRuleSpec")
    group_fields = _json_fields(monitoring_types, "RuleGroup")
    rule_fields = _json_fields(monitoring_types, "Rule")
    assert {"groups"} <= spec_fields
    assert {"alert", "expr", "for", "labels", "annotations"} <= rule_fields
    spec = rule_manifest(bin_dir)["spec"]
    assert set(spec) <= spec_fields
    for group in spec["groups"]:
        assert set(group) <= group_fields
        for item in group["rules"]:
            assert set(item) <= rule_fields, set(item) - rule_fields


def _strings() -> dict[str, Any]:
    return {"type": "object", "additionalProperties": {"type": "string"}}


PROMETHEUS_RULE_CRD: Final = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "prometheusrules.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {
            "kind": "PrometheusRule",
            "plural": "prometheusrules",
            "singular": "prometheusrule",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "required": ["spec"],
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "groups": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["name"],
                                            "properties": {
                                                "name": {"type": "string", "minLength": 1},
                                                "interval": {"type": "string"},
                                                "labels": _strings(),
                                                "rules": {
                                                    "type": "array",
                                                    "items": {
                                                        "type": "object",
                                                        "required": ["expr"],
                                                        "properties": {
                                                            "alert": {"type": "string"},
                                                            "record": {"type": "string"},
                                                            "expr": {
                                                                "x-kubernetes-int-or-string": True
                                                            },
                                                            "for": {
                                                                "type": "string",
                                                                "pattern": DURATION,
                                                            },
                                                            "labels": _strings(),
                                                            "annotations": _strings(),
                                                        },
                                                    },
                                                },
                                            },
                                        },
                                    }
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_the_api_server_accepts_the_rendered_rule(
    control_plane: ControlPlane, bin_dir: Path, namespace: str, tmp_path: Path
) -> None:
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(PROMETHEUS_RULE_CRD))
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/prometheusrules.monitoring.coreos.com"
    )
    rule = rule_manifest(bin_dir)
    rule["metadata"]["namespace"] = namespace
    manifest = tmp_path / "rule.json"
    manifest.write_text(json.dumps(rule))
    result = control_plane.kubectl("apply", "--validate=strict", "-f", str(manifest))
    assert "prometheusrule.monitoring.coreos.com/" in result.stdout
    stored = json.loads(
        control_plane.kubectl(
            "get", "prometheusrule", rule["metadata"]["name"], "-n", namespace, "-o", "json"
        ).stdout
    )
    assert stored["spec"] == rule["spec"]  # nothing pruned: every field is in the schema
    # A field the schema does not know is refused, so the check above can fail.
    rule["spec"]["groups"][0]["rules"][0]["severity"] = "page"
    manifest.write_text(json.dumps(rule))
    refused = control_plane.kubectl("apply", "--validate=strict", "-f", str(manifest), check=False)
    assert refused.returncode != 0
    assert "severity" in refused.stderr
