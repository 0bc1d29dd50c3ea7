"""Typed parameters through the webhook API and the CLI, on the real control plane.

A manual run's overrides are checked against ``spec.parameters`` before anything is written: a
bad integer is a 422 naming the parameter, with a Warning event and no Job. A good one reaches
every container as ``PARAM_<NAME>`` and is recorded, with who asked and why, on the Job and in
``status.lastManualRun``.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from qstash_operator import cli
from qstash_operator.domain import vocabulary
from tests.integration.webhook.conftest import Stack
from tests.integration.webhook.test_api import call, grant

DECLARED = [
    {"name": "batch-size", "type": "integer", "default": "100"},
    {"name": "region", "type": "enum", "enum": ["eu", "us"], "default": "eu"},
]


def _env(job: dict[str, object]) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    return {item["name"]: item["value"] for item in container["env"]}


async def test_a_bad_integer_is_422_naming_it_and_makes_no_job(stack: Stack) -> None:
    await stack.create_cronworkflow("typed", parameters=DECLARED)
    token = await asyncio.to_thread(grant, stack, "runner", ["trigger"])
    path = f"/api/test-cron?workflowId={stack.namespace}/typed&action=trigger"
    bad = json.dumps({"parameters": {"batch-size": "12x"}}).encode()

    status, body = await call(stack, "POST", path, token, data=bad)

    assert (status, body["reason"]) == (422, "InvalidParameter")
    assert "parameters.batch-size" in body["error"]
    assert "'12x' is not an integer" in body["error"]
    assert await stack.jobs("typed") == []
    warnings = [e for e in await stack.events("typed") if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["InvalidParameter"]
    assert "lastManualRun" not in ((await stack.get("typed")).get("status") or {})

    good = json.dumps({"parameters": {"batch-size": 7}, "reason": "backlog after outage"})
    status, body = await call(stack, "POST", path, token, data=good.encode())
    assert status == 201, body
    [job] = await stack.jobs("typed")
    assert _env(job) == {"PARAM_BATCH_SIZE": "7", "PARAM_REGION": "eu"}
    annotations = job["metadata"]["annotations"]
    assert json.loads(annotations[vocabulary.ANNOTATION_RUN_PARAMETERS]) == {"batch-size": "7"}
    assert annotations[vocabulary.ANNOTATION_RUN_REASON] == "backlog after outage"
    assert annotations[vocabulary.ANNOTATION_TRIGGERED_BY].endswith(":runner")
    manual = (await stack.get("typed"))["status"]["lastManualRun"]
    assert manual["parameters"] == {"batch-size": "7"}
    assert manual["reason"] == "backlog after outage"
    assert manual["jobName"] == job["metadata"]["name"]


async def test_the_cli_sends_params_and_a_reason(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    await stack.create_cronworkflow("typed-cli", parameters=DECLARED)
    token = await asyncio.to_thread(grant, stack, "person", ["trigger"])
    base = ["--url", stack.webhook.url, "--token", token]
    workflow = f"{stack.namespace}/typed-cli"

    refused = ["trigger", workflow, *base, "--param", "region=ap"]
    assert await asyncio.to_thread(cli.main, refused) == 1
    assert "parameters.region" in capsys.readouterr().err
    assert await stack.jobs("typed-cli") == []

    asked = ["trigger", workflow, *base, "--param", "region=us", "--reason", "US backfill"]
    assert await asyncio.to_thread(cli.main, asked) == 0
    [job] = await stack.jobs("typed-cli")
    assert _env(job)["PARAM_REGION"] == "us"
    assert job["metadata"]["annotations"][vocabulary.ANNOTATION_RUN_REASON] == "US backfill"
