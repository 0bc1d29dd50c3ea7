"""The seed's endpoints, up to the point where a real API server has to answer.

Everything decided before TokenReview (no token, a malformed parameter) is checked here; the
token, RBAC and Job paths run against the real control plane in tests/integration/webhook/.
"""

from __future__ import annotations

import pytest

from qstash_webhook.api import parameters_from, parse_workflow_id, reason_from
from qstash_webhook.errors import ApiError
from tests.unit.webhook.conftest import MakeClient

ROUTES = [
    pytest.param("GET", "/api/cron", id="list"),
    pytest.param("POST", "/api/cron/activate/default/backup", id="activate"),
    pytest.param("DELETE", "/api/cron/deactivate/default/backup", id="deactivate"),
    pytest.param("GET", "/api/test-cron", id="status"),
    pytest.param("POST", "/api/test-cron?workflowId=default/backup&action=trigger", id="trigger"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="no Authorization header"),
        pytest.param("Basic dXNlcjpwYXNz", id="Basic credentials"),
        pytest.param("Bearer ", id="an empty bearer token"),
    ],
)
async def test_no_bearer_token_is_401_before_any_api_call(
    make_client: MakeClient, method: str, path: str, authorization: str | None
) -> None:
    client = await make_client()
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.request(method, path, headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.json())["reason"] == "Unauthenticated"


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("action=trigger", id="no workflowId"),
        pytest.param("workflowId=backup&action=trigger", id="a workflowId without namespace"),
        pytest.param("workflowId=a/b/c&action=trigger", id="a workflowId with two slashes"),
        pytest.param("workflowId=Default/backup&action=trigger", id="an uppercase namespace"),
        pytest.param("workflowId=default/backup", id="no action"),
        pytest.param("workflowId=default/backup&action=delete", id="an unknown action"),
    ],
)
async def test_a_malformed_trigger_is_400(make_client: MakeClient, query: str) -> None:
    client = await make_client()
    response = await client.post(f"/api/test-cron?{query}", headers={"Authorization": "Bearer x"})
    assert response.status == 400
    assert (await response.json())["reason"] == "InvalidParameter"


def test_a_workflow_id_is_namespace_slash_name() -> None:
    assert parse_workflow_id("team-a/nightly.backup") == ("team-a", "nightly.backup")
    with pytest.raises(ApiError):
        parse_workflow_id("team-a/")


async def test_a_bad_namespace_filter_is_400(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.get("/api/cron?namespace=NOPE", headers={"Authorization": "Bearer x"})
    assert response.status == 400


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param({}, None, id="no reason"),
        pytest.param({"reason": None}, None, id="a null reason"),
        pytest.param({"reason": "  re-run after the fix "}, "re-run after the fix", id="trimmed"),
        pytest.param({"reason": "x" * 300}, "x" * 300, id="the longest"),
    ],
)
def test_a_run_reason_is_one_line_of_text(payload: object, reason: str | None) -> None:
    assert reason_from(payload) == reason


@pytest.mark.parametrize(
    ("payload", "complaint"),
    [
        pytest.param({"reason": "x" * 301}, "at most 300", id="too long"),
        pytest.param({"reason": "two\nlines"}, "one line", id="a newline"),
        pytest.param({"reason": "bell\x07"}, "printable", id="a control character"),
        pytest.param({"reason": "   "}, "non-empty", id="blank"),
        pytest.param({"reason": 42}, "non-empty string", id="not a string"),
        pytest.param(
            {"reason": "ok", "params": {}}, '"reason" and "parameters"', id="another field"
        ),
        pytest.param(["reason"], '"reason" and "parameters"', id="not an object"),
    ],
)
def test_a_bad_run_reason_is_a_400_naming_it(payload: object, complaint: str) -> None:
    with pytest.raises(ApiError) as refused:
        reason_from(payload)
    assert (refused.value.status, refused.value.reason) == (400, "InvalidParameter")
    assert complaint in refused.value.message


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param({}, None, id="none given"),
        pytest.param({"parameters": {"size": 10, "dry": True}}, {"size": 10, "dry": True}, id="ok"),
    ],
)
def test_run_parameters_are_an_object_of_scalars(payload: object, expected: object) -> None:
    assert parameters_from(payload) == expected


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"parameters": ["size=10"]}, id="a list"),
        pytest.param({"parameters": {"size": 1.5}}, id="a float"),
        pytest.param({"parameters": {"size": {"n": 1}}}, id="an object value"),
    ],
)
def test_bad_run_parameters_are_a_400(payload: object) -> None:
    with pytest.raises(ApiError) as refused:
        parameters_from(payload)
    assert (refused.value.status, refused.value.reason) == (400, "InvalidParameter")
    assert "parameters must be an object" in refused.value.message
