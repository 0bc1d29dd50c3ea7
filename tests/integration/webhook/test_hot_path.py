"""The hot path on the real API server: decided from the caches, one write, the status after.

The replica here runs with its watch-fed caches (``make_app(watch_kube=...)``, as the process
does); its Kubernetes client counts every request, so "one API call per delivery under Allow"
is what the API server was asked, not what the code meant to ask.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from qstash_operator.adapters.kube import Kube
from qstash_operator.domain import naming, vocabulary
from qstash_operator.domain.builders import rfc3339
from qstash_webhook import typedefs
from tests.integration.webhook.conftest import DELIVERY_DELAY, FIRST_TICK, Stack, Webhook, poll


class CountingKube(Kube):
    """The stack's client, noting (method, path) of each request it sends."""

    def __init__(self, kube: Kube) -> None:
        super().__init__(kube.api_client)
        self.requests: list[tuple[str, str]] = []

    async def _run(self, method: str, path: str, **kwargs: Any) -> Any:
        self.requests.append((method, path))
        return await super()._run(method, path, **kwargs)


async def _synced(webhook: Webhook, name: str, stack: Stack) -> None:
    """Until the replica's CronWorkflow cache holds ``name`` (its watch has seen it)."""
    cache = webhook.app[typedefs.cache_key]
    await poll(
        lambda: (
            cache.cronworkflow(stack.namespace, name) is not None
            and cache.jobs(stack.namespace, "") is not None
        ),
        what=f"{name} in the webhook's cache",
    )


async def _at_first_tick(stack: Stack) -> None:
    await stack.qstash.set_time(FIRST_TICK.replace(second=0))
    await stack.qstash.advance(DELIVERY_DELAY)


async def test_an_allowed_tick_is_one_api_request_and_its_status_follows(stack: Stack) -> None:
    counting = CountingKube(stack.kube)
    hot = await stack.start_webhook(kube=counting, hot=True)
    await stack.create_cronworkflow("hot")
    await _synced(hot, "hot", stack)
    await _at_first_tick(stack)

    counting.requests.clear()
    status, answer, _ = await stack.deliver("hot", message_id="msg_hot", webhook=hot)
    made_before_the_answer = list(counting.requests)

    assert status == 200, answer
    assert answer["outcome"] == "run"
    assert made_before_the_answer == [("POST", f"/apis/batch/v1/namespaces/{stack.namespace}/jobs")]
    job_name = naming.job_name("hot", FIRST_TICK)

    async def recorded() -> bool:
        status = (await stack.get("hot")).get("status") or {}
        return status.get("lastScheduleTime") == rfc3339(FIRST_TICK) and [
            entry["name"] for entry in status.get("active") or []
        ] == [job_name]

    await poll(recorded, what="the deferred status record", describe=stack.describe_runs)

    async def created_event() -> bool:
        reasons = {event["reason"] for event in await stack.events("hot")}
        return vocabulary.REASON_SUCCESSFUL_CREATE in reasons

    await poll(created_event, what="the deferred SuccessfulCreate event")


@pytest.mark.parametrize("policy", ["Allow", "Forbid", "Replace"])
async def test_six_copies_to_two_hot_replicas_make_one_job_and_one_record(
    stack: Stack, policy: str
) -> None:
    replicas = [await stack.start_webhook(hot=True) for _ in range(2)]
    await stack.create_cronworkflow("twins", concurrencyPolicy=policy)
    for replica in replicas:
        await _synced(replica, "twins", stack)
    await _at_first_tick(stack)

    answers = await asyncio.gather(
        *(
            stack.deliver("twins", message_id="msg_twins", webhook=replica)
            for replica in replicas * 3
        )
    )
    statuses = [status for status, _, _ in answers]
    # Replace may answer 503 RunInFlight to a copy that found another's reservation: QStash
    # retries it, and the retry is a duplicate.
    assert set(statuses) <= {200, 503}, answers
    assert 200 in statuses
    assert [job["metadata"]["name"] for job in await stack.jobs("twins")] == [
        naming.job_name("twins", FIRST_TICK)
    ]

    async def recorded() -> bool:
        status = (await stack.get("twins")).get("status") or {}
        return status.get("lastScheduleTime") == rfc3339(FIRST_TICK)

    await poll(recorded, what="the deferred status record", describe=stack.describe_runs)
