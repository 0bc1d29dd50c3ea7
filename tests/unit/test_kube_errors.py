"""Kubernetes Status bodies become the project's errors: a 403 is read by its reason and message.

The bodies are the API server's own (v1.36), as the integration tests meet them: the authorizer's
RBAC refusal, ResourceQuota admission, a namespace being deleted, a ValidatingAdmissionPolicy
denial (``reason: Forbidden`` answers 403; the default ``Invalid`` answers 422), an admission
webhook's denial.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from qstash_operator.adapters.kube import _error, proxy_configured
from qstash_operator.domain.errors import (
    AdmissionDeniedError,
    ApiRejectedError,
    ConflictError,
    ForbiddenError,
    KubernetesUnavailableError,
    NamespaceTerminatingError,
    QuotaExceededError,
)

NS = "team-a"
JOB = "nightly-manual-dry"


def status(code: int, reason: str, message: str, **details: Any) -> bytes:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    body["details"] = {"name": JOB, "group": "batch", "kind": "jobs", **details}
    return json.dumps(body).encode()


RBAC = status(
    403,
    "Forbidden",
    f'jobs.batch is forbidden: User "system:serviceaccount:{NS}:qstash-operator" cannot create '
    f'resource "jobs" in API group "batch" in the namespace "{NS}"',
)
QUOTA = status(
    403,
    "Forbidden",
    f'jobs.batch "{JOB}" is forbidden: exceeded quota: jobs, requested: count/jobs.batch=1, '
    "used: count/jobs.batch=1, limited: count/jobs.batch=1",
)
QUOTA_UNKNOWN = status(
    403,
    "Forbidden",
    f'jobs.batch "{JOB}" is forbidden: status unknown for quota: jobs, resources: count/jobs.batch',
)
TERMINATING = status(
    403,
    "Forbidden",
    f'jobs.batch "{JOB}" is forbidden: unable to create new content in namespace {NS} because it '
    "is being terminated",
    causes=[
        {
            "reason": "NamespaceTerminating",
            "message": f"namespace {NS} is being terminated",
            "field": "metadata.namespace",
        }
    ],
)
VAP_FORBIDDEN = status(
    403,
    "Forbidden",
    f"jobs.batch \"{JOB}\" is forbidden: ValidatingAdmissionPolicy 'require-team' with binding "
    "'require-team' denied request: every Job needs a team label",
)
VAP_INVALID = status(
    422,
    "Invalid",
    f"jobs.batch \"{JOB}\" is invalid: : ValidatingAdmissionPolicy 'require-team' with binding "
    "'require-team' denied request: every Job needs a team label",
)
WEBHOOK_DENIAL = status(
    403,
    "",
    'admission webhook "jobs.policy.example.com" denied the request: images must come from '
    "registry.example.com",
)
LIMIT_RANGE = status(
    403,
    "Forbidden",
    f'jobs.batch "{JOB}" is forbidden: some-plugin: maximum cpu usage per Container is 2',
)
OWNER_REFERENCES = status(
    403,
    "Forbidden",
    f'jobs.batch "{JOB}" is forbidden: cannot set blockOwnerDeletion if an ownerReference refers '
    "to a resource you can't set finalizers on: ",
)
FIELD_INVALID = status(
    422,
    "Invalid",
    f'Job.batch "{JOB}" is invalid: spec.template.spec.containers[0].image: Required value',
)


@pytest.mark.parametrize(
    ("code", "body", "expected"),
    [
        pytest.param(403, RBAC, ForbiddenError, id="RBAC: the authorizer's refusal"),
        pytest.param(403, OWNER_REFERENCES, ForbiddenError, id="RBAC: blockOwnerDeletion rule"),
        pytest.param(403, b"", ForbiddenError, id="403 without a Status body"),
        pytest.param(403, QUOTA, QuotaExceededError, id="ResourceQuota used up"),
        pytest.param(403, QUOTA_UNKNOWN, QuotaExceededError, id="ResourceQuota not computed yet"),
        pytest.param(403, TERMINATING, NamespaceTerminatingError, id="namespace being deleted"),
        pytest.param(403, VAP_FORBIDDEN, AdmissionDeniedError, id="VAP denial, reason Forbidden"),
        pytest.param(422, VAP_INVALID, AdmissionDeniedError, id="VAP denial, reason Invalid"),
        pytest.param(403, WEBHOOK_DENIAL, AdmissionDeniedError, id="admission webhook denial"),
        pytest.param(403, LIMIT_RANGE, AdmissionDeniedError, id="another admission plugin"),
        pytest.param(422, FIELD_INVALID, ApiRejectedError, id="a field the schema refuses"),
        pytest.param(409, status(409, "Conflict", "changed"), ConflictError, id="conflict"),
        pytest.param(503, b"", KubernetesUnavailableError, id="unavailable"),
    ],
)
def test_status_bodies_map_to_errors(code: int, body: bytes, expected: type[Exception]) -> None:
    error = _error("POST", f"/apis/batch/v1/namespaces/{NS}/jobs", code, body)
    assert type(error) is expected


@pytest.mark.parametrize(
    ("body", "quoted"),
    [
        pytest.param(VAP_FORBIDDEN, "every Job needs a team label", id="VAP"),
        pytest.param(WEBHOOK_DENIAL, "images must come from registry.example.com", id="webhook"),
    ],
)
def test_a_policy_denial_carries_the_policy_and_its_message(body: bytes, quoted: str) -> None:
    error = _error("POST", f"/apis/batch/v1/namespaces/{NS}/jobs", 403, body)
    assert isinstance(error, AdmissionDeniedError)
    assert quoted in error.detail
    assert "denied" in error.detail


@pytest.mark.parametrize(
    ("body", "reason", "retry_after"),
    [
        pytest.param(QUOTA, "QuotaExceeded", 30.0, id="quota"),
        pytest.param(TERMINATING, "NamespaceTerminating", 10.0, id="terminating"),
        pytest.param(RBAC, "Forbidden", 300.0, id="RBAC"),
    ],
)
def test_transient_403s_say_what_they_are(body: bytes, reason: str, retry_after: float) -> None:
    error = _error("POST", f"/apis/batch/v1/namespaces/{NS}/jobs", 403, body)
    assert getattr(error, "reason", None) == reason
    assert getattr(error, "retry_after", None) == retry_after


@pytest.mark.parametrize(
    ("env", "trusted"),
    [
        pytest.param({}, False, id="no proxy: no netrc or proxy lookups per request"),
        pytest.param({"HTTPS_PROXY": "http://proxy:3128"}, True, id="a proxy"),
        pytest.param({"https_proxy": "http://proxy:3128"}, True, id="a proxy, lower case"),
        pytest.param({"HTTPS_PROXY": ""}, False, id="set but empty"),
        pytest.param(
            {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1"},
            False,
            id="only exemptions: no proxy to exempt from",
        ),
        pytest.param(
            {"NO_PROXY": "127.0.0.1", "HTTP_PROXY": "http://proxy:3128"},
            True,
            id="a proxy with exemptions",
        ),
    ],
)
def test_the_client_trusts_the_environment_only_for_a_proxy(
    env: dict[str, str], trusted: bool
) -> None:
    assert proxy_configured(env) is trusted
