"""The seed's endpoints with real tokens: TokenReview decides who, SubjectAccessReview what.

ServiceAccount tokens are minted by the real API server; Roles grant ``list``, ``patch`` and the
custom verb ``trigger`` on ``cronworkflows``. The CLI wrappers are exercised against the same
running webhook.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from qstash_operator import cli
from qstash_operator.domain import vocabulary
from tests.integration.webhook.conftest import CLUSTER, Stack, Webhook, job_template

API_AUDIENCE = "qstash-operator"
"""The webhook API's audience (the Settings default): its tokens are minted for it."""


def grant(
    stack: Stack,
    account: str,
    verbs: list[str],
    *,
    cluster_wide: bool = False,
    audience: str | None = API_AUDIENCE,
) -> str:
    """A ServiceAccount with ``verbs`` on cronworkflows (in the namespace, or everywhere) and a
    token for it, bound to ``audience`` (None: the API server's own audience)."""
    ns = stack.namespace
    kind = "ClusterRole" if cluster_wide else "Role"
    binding = "ClusterRoleBinding" if cluster_wide else "RoleBinding"
    name = f"{ns}-{account}" if cluster_wide else account
    meta = f"name: {name}" + ("" if cluster_wide else f"\n  namespace: {ns}")
    manifest = f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {account}, namespace: {ns}}}
"""
    if verbs:
        manifest += f"""---
apiVersion: rbac.authorization.k8s.io/v1
kind: {kind}
metadata:
  {meta}
rules:
- apiGroups: ["{vocabulary.GROUP}"]
  resources: ["{vocabulary.PLURAL}"]
  verbs: {json.dumps(verbs)}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: {binding}
metadata:
  {meta}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: {kind}, name: {name}}}
subjects: [{{kind: ServiceAccount, name: {account}, namespace: {ns}}}]
"""
    stack.control_plane.kubectl("apply", "-f", "-", input=manifest)
    return stack.control_plane.create_service_account_token(ns, account, audience=audience)


async def call(
    stack: Stack,
    method: str,
    path: str,
    token: str | None,
    *,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    webhook: Webhook | None = None,
) -> tuple[int, dict[str, Any]]:
    sent = {"Authorization": f"Bearer {token}"} if token else {}
    sent.update(headers or {})
    url = f"{(webhook or stack.webhook).url}{path}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=sent, data=data) as response,
    ):
        return response.status, await response.json()


async def test_an_unknown_token_is_401(stack: Stack) -> None:
    status, body = await call(stack, "GET", "/api/cron", "not-a-token")
    assert (status, body["reason"]) == (401, "InvalidToken")


async def test_a_token_without_rbac_is_403_everywhere(stack: Stack) -> None:
    await stack.create_cronworkflow("locked")
    token = await asyncio.to_thread(grant, stack, "nobody", [])
    ns = stack.namespace
    for method, path in [
        ("GET", f"/api/cron?namespace={ns}"),
        ("POST", f"/api/cron/activate/{ns}/locked"),
        ("DELETE", f"/api/cron/deactivate/{ns}/locked"),
        ("POST", f"/api/test-cron?workflowId={ns}/locked&action=trigger"),
        ("GET", "/api/test-cron"),
    ]:
        status, body = await call(stack, method, path, token)
        assert (status, body["reason"]) == (403, "Forbidden"), path
    assert await stack.jobs("locked") == []


async def test_list_then_deactivate_activate_and_trigger_with_the_right_role(
    stack: Stack,
) -> None:
    await stack.create_cronworkflow("nightly", schedule="30 2 * * *", timeZone="Europe/Berlin")
    token = await asyncio.to_thread(grant, stack, "operator", ["get", "list", "patch", "trigger"])
    ns = stack.namespace

    status, listed = await call(stack, "GET", f"/api/cron?namespace={ns}", token)
    assert status == 200
    [item] = listed["items"]
    assert item["name"] == "nightly"
    assert item["state"] == "active"
    assert item["nextRun"] == {
        "utc": "2026-11-29T01:30:00Z",  # the driven clock says 2026-11-28 09:59:58 UTC
        "local": "2026-11-29T02:30:00+01:00",
    }

    status, body = await call(stack, "DELETE", f"/api/cron/deactivate/{ns}/nightly", token)
    assert (status, body["state"]) == (200, "suspended")
    assert (await stack.get("nightly"))["spec"]["suspend"] is True
    status, body = await call(stack, "POST", f"/api/cron/activate/{ns}/nightly", token)
    assert (status, body["state"]) == (200, "active")
    assert (await stack.get("nightly"))["spec"]["suspend"] is False

    path = f"/api/test-cron?workflowId={ns}/nightly&action=trigger"
    status, body = await call(stack, "POST", path, token)
    assert status == 201
    who = f"system:serviceaccount:{ns}:operator"
    assert body["requestedBy"] == who
    [job] = await stack.jobs("nightly")
    assert job["metadata"]["name"] == body["job"]
    assert job["metadata"]["annotations"][vocabulary.ANNOTATION_TRIGGERED_BY] == who
    assert job["metadata"]["labels"][vocabulary.LABEL_TRIGGER] == vocabulary.TRIGGER_MANUAL
    assert (await stack.get("nightly"))["status"]["lastManualRun"]["requestedBy"] == who

    status, body = await call(stack, "POST", f"/api/cron/activate/{ns}/missing", token)
    assert (status, body["reason"]) == (404, "NotFound")


async def test_a_manual_run_honours_forbid(stack: Stack) -> None:
    long = job_template(**{"kwok.qstash-operator.dev/run-for": "120s"})
    await stack.create_cronworkflow("single", concurrencyPolicy="Forbid", template=long)
    token = await asyncio.to_thread(grant, stack, "runner", ["trigger"])
    path = f"/api/test-cron?workflowId={stack.namespace}/single&action=trigger"
    assert (await call(stack, "POST", path, token))[0] == 201
    status, body = await call(stack, "POST", path, token)
    assert (status, body["reason"]) == (409, vocabulary.REASON_SKIPPED_FORBID)
    assert len(await stack.jobs("single")) == 1


async def test_backend_status_shows_qstash_and_drift(stack: Stack) -> None:
    cw = await stack.create_cronworkflow("kept")
    await stack.schedule(cw)
    lost = await stack.create_cronworkflow("lost")
    status_path = (
        f"/apis/{vocabulary.API_VERSION}/namespaces/{stack.namespace}/cronworkflows/lost/status"
    )
    patch = {"status": {"scheduleId": stack.schedule_id("lost"), "backend": "QStash"}}
    code, _ = await asyncio.to_thread(
        stack.control_plane.request,
        "PATCH",
        status_path,
        patch,
        content_type="application/merge-patch+json",
    )
    assert code == 200, lost
    ghost = {**cw, "metadata": {**cw["metadata"], "name": "ghost"}}
    await stack.schedule(ghost)  # a schedule of this cluster whose CR does not exist
    token = await asyncio.to_thread(grant, stack, "viewer", ["list"], cluster_wide=True)

    status, body = await call(stack, "GET", "/api/test-cron", token)
    assert status == 200
    assert body["backends"]["qstash"]["configured"] is True
    assert body["backends"]["qstash"]["reachable"] is True
    assert f"{stack.namespace}/lost" in body["drift"]["missingSchedules"]
    assert f"{CLUSTER}.{stack.namespace}.ghost" in body["drift"]["orphanSchedules"]
    assert f"{CLUSTER}.{stack.namespace}.kept" not in body["drift"]["orphanSchedules"]
    assert body["healthy"] is False

    await stack.qstash.fail_api(1, status=500)
    status, body = await call(stack, "GET", "/api/test-cron", token)
    assert status == 200
    assert body["backends"]["qstash"]["reachable"] is False


async def test_the_cli_lists_triggers_and_prints_next_runs(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    await stack.create_cronworkflow("cli-job", schedule="0 4 * * *", timeZone="America/New_York")
    token = await asyncio.to_thread(grant, stack, "person", ["get", "list", "trigger"])
    base = ["--url", stack.webhook.url, "--token", token]

    assert await asyncio.to_thread(cli.main, ["list", *base, "--namespace", stack.namespace]) == 0
    listing = capsys.readouterr().out
    assert "cli-job" in listing
    assert "America/New_York" in listing

    workflow = f"{stack.namespace}/cli-job"
    assert await asyncio.to_thread(cli.main, ["trigger", workflow, *base]) == 0
    assert "created" in capsys.readouterr().out
    assert len(await stack.jobs("cli-job")) == 1
    keyed = ["trigger", workflow, *base, "--idempotency-key", "cli-run-1"]
    assert await asyncio.to_thread(cli.main, keyed) == 0
    assert "created" in capsys.readouterr().out
    assert await asyncio.to_thread(cli.main, keyed) == 0  # run again, e.g. after a timeout
    assert "already made for this idempotency key" in capsys.readouterr().out
    assert len(await stack.jobs("cli-job")) == 2

    kubeconfig = str(stack.control_plane.kubeconfig)
    code = await asyncio.to_thread(
        cli.main, ["next", workflow, "-n", "3", "--kubeconfig", kubeconfig, "-o", "json"]
    )
    assert code == 0
    shown = json.loads(capsys.readouterr().out)
    assert len(shown["next"]) == 3
    assert all(entry["utc"][11:16] in ("09:00", "08:00") for entry in shown["next"])
    assert all(entry["local"][11:16] == "04:00" for entry in shown["next"])

    assert await asyncio.to_thread(cli.main, ["trigger", f"{stack.namespace}/nope", *base]) == 1
    assert "not exist" in capsys.readouterr().err


async def test_an_idempotency_key_makes_one_job_across_retries_and_replicas(stack: Stack) -> None:
    """A client that retries (its answer lost) reaches either replica; one Job, and both answers
    name it. The key is the request's id: a new key is a new run, a reused one a conflict."""
    await stack.create_cronworkflow("keyed", schedule="0 4 * * *")
    token = await asyncio.to_thread(grant, stack, "retrier", ["trigger"])
    other = await stack.start_webhook()
    path = f"/api/test-cron?workflowId={stack.namespace}/keyed&action=trigger"
    key = {"Idempotency-Key": "nightly-rerun-7f3a"}

    status, first = await call(stack, "POST", path, token, headers=key)
    assert status == 201, first
    status, again = await call(stack, "POST", path, token, headers=key, webhook=other)
    assert status == 200, again
    assert again["job"] == first["job"]
    assert again["replayed"] is True
    assert [job["metadata"]["name"] for job in await stack.jobs("keyed")] == [first["job"]]

    different = b'{"reason": "rerun after the fix"}'  # the same key, another request
    status, conflict = await call(stack, "POST", path, token, headers=key, data=different)
    assert (status, conflict["reason"]) == (422, "IdempotencyKeyReused"), conflict
    assert "nightly-rerun-7f3a" in conflict["error"]
    assert first["job"] in conflict["error"]

    # The same key raced on both replicas at once: still one Job.
    race = {"Idempotency-Key": "nightly-rerun-8b1c"}
    answers = await asyncio.gather(
        call(stack, "POST", path, token, headers=race),
        call(stack, "POST", path, token, headers=race, webhook=other),
    )
    assert sorted(status for status, _ in answers) == [200, 201], answers
    assert answers[0][1]["job"] == answers[1][1]["job"] != first["job"]

    status, unkeyed = await call(stack, "POST", path, token)
    assert status == 201
    assert len({first["job"], answers[0][1]["job"], unkeyed["job"]}) == 3
    assert len(await stack.jobs("keyed")) == 3


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("x" * 256, id="over 255 characters"),
        pytest.param("two words", id="a space"),
    ],
)
async def test_an_unusable_idempotency_key_is_400_naming_the_header(
    stack: Stack, value: str
) -> None:
    await stack.create_cronworkflow("picky")
    token = await asyncio.to_thread(grant, stack, "picky", ["trigger"])
    path = f"/api/test-cron?workflowId={stack.namespace}/picky&action=trigger"
    status, body = await call(stack, "POST", path, token, headers={"Idempotency-Key": value})
    assert (status, body["reason"]) == (400, "InvalidParameter"), body
    assert "Idempotency-Key" in body["error"]
    assert await stack.jobs("picky") == []
