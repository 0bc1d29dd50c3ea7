"""403s that are not RBAC, end to end: a policy's refusal is a spec problem, a quota a wait.

The API server answers 403 for its authorizer (a missing RBAC rule) and for admission alike: a
ValidatingAdmissionPolicy whose validation says ``reason: Forbidden``, a used-up ResourceQuota, a
namespace being deleted. The operator's server-side dry run of the Job template meets them first;
each must read as what it is, with the API server's own words, never as "fix your RBAC".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.stack import Stack, cronworkflow, wait

POLICY_MESSAGE = "every Job needs a team label"
HAS_TEAM_LABEL = "has(object.metadata.labels) && 'team' in object.metadata.labels"


def _policy(name: str, namespace: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["batch"],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["jobs"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": HAS_TEAM_LABEL,
                        "message": POLICY_MESSAGE,
                        "reason": "Forbidden",  # a 403, like most policy engines' denials
                    }
                ],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        },
    ]


@pytest.fixture
def team_label_policy(control_plane: ControlPlane, namespace: str) -> Iterator[str]:
    """A policy denying Jobs without a ``team`` label, in this test's namespace only; returns
    its name once the API server enforces it (policies load asynchronously)."""
    name = namespace[-63:]
    manifests = _policy(name, namespace)
    control_plane.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}),
    )

    def enforced() -> bool:
        probe = control_plane.kubectl(
            "create", "job", "probe", "-n", namespace, "--image=busybox", "--dry-run=server",
            check=False,
        )  # fmt: skip
        return probe.returncode != 0 and POLICY_MESSAGE in probe.stderr

    try:
        wait(enforced, timeout=30, what=f"policy {name} to be enforced")
        yield name
    finally:
        control_plane.kubectl(
            "delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", name,
            "--ignore-not-found", check=False,
        )  # fmt: skip


def test_a_job_template_a_policy_refuses_is_spec_invalid_with_the_policys_message(
    stack: Stack, team_label_policy: str
) -> None:
    stack.operator(qstash=False)
    stack.apply(cronworkflow("untagged"))
    condition = stack.wait_condition("untagged", "SpecValid", "False", reason="InvalidJobTemplate")
    assert POLICY_MESSAGE in condition["message"]
    assert f"ValidatingAdmissionPolicy '{team_label_policy}'" in condition["message"]
    assert "RBAC" not in condition["message"]
    warnings = {
        event["reason"]: event["message"]
        for event in stack.events("untagged")
        if event["type"] == "Warning"
    }
    assert POLICY_MESSAGE in warnings.get("InvalidJobTemplate", ""), warnings
    assert "Forbidden" not in warnings, warnings

    # The same policy lets a labelled template through: it is the template, not the operator.
    tagged = cronworkflow("tagged")
    tagged["spec"]["jobTemplate"]["metadata"] = {"labels": {"team": "a"}}
    stack.apply(tagged)
    stack.wait_condition("tagged", "Ready", "True")


def test_a_used_up_resource_quota_reads_as_quota_not_rbac(
    stack: Stack, control_plane: ControlPlane
) -> None:
    """No quota controller runs in the test bed, so the test writes the quota's usage itself,
    as the controller would: no Job may be created in the namespace."""
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-jobs", "namespace": stack.namespace},
        "spec": {"hard": {"count/jobs.batch": "0"}},
    }
    stack.apply(quota)
    used = {"status": {"hard": {"count/jobs.batch": "0"}, "used": {"count/jobs.batch": "0"}}}
    control_plane.kubectl(
        "patch", "resourcequota", "no-jobs", "-n", stack.namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps(used),
    )  # fmt: skip
    stack.operator(qstash=False)
    stack.apply(cronworkflow("crowded"))

    found: dict[str, Any] = {}

    def refused() -> bool:
        condition = stack.condition("crowded", "ScheduleSynced") or {}
        found.update(condition)
        return condition.get("status") == "False"

    wait(refused, timeout=30, what="the dry run to meet the quota")
    assert "exceeded quota: no-jobs" in found["message"]
    assert found["reason"] != "Forbidden", found
    assert "RBAC" not in found["message"]
    spec_valid = stack.condition("crowded", "SpecValid")
    assert spec_valid is None or spec_valid["status"] != "False"  # not the template's fault
