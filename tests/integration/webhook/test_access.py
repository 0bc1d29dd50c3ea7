"""Who may call the webhook's API: tokens bound to its audience, reviews cached, failures limited.

On the real control plane: tokens minted by its TokenRequest API and checked by its TokenReview.
The webhook's Kubernetes client here is our adapter with a count of the reviews it sends (around
the real transport), so the cache and the limits show in API calls rather than in timings.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from qstash_devstack.controlplane import ControlPlane
from qstash_operator.adapters.kube import Kube
from qstash_webhook import access
from tests.integration.webhook.conftest import Stack
from tests.integration.webhook.test_api import call, grant


class CountingKube(Kube):
    """The real adapter, counting the calls it makes by the path's last segment."""

    def __init__(self, base: Kube) -> None:
        super().__init__(base.api_client)
        self.calls: collections.Counter[str] = collections.Counter()

    async def _run(self, method: str, path: str, **kwargs: Any) -> Any:
        self.calls[path.rsplit("/", 1)[-1]] += 1
        return await super()._run(method, path, **kwargs)


async def counting_kube(plane: ControlPlane) -> CountingKube:
    return CountingKube(await Kube.from_environment(str(plane.kubeconfig)))


async def test_only_a_token_for_the_webhooks_audience_is_accepted(stack: Stack) -> None:
    """A token the API server accepts for itself is not a token for us: it may be a person's
    kubeconfig credential, and the webhook is published on the internet."""
    ns = stack.namespace
    bound = await asyncio.to_thread(grant, stack, "viewer", ["list"])
    mint = stack.control_plane.create_service_account_token
    for_the_api_server = await asyncio.to_thread(mint, ns, "viewer")
    for_another_service = await asyncio.to_thread(mint, ns, "viewer", audience="vault")

    status, body = await call(stack, "GET", f"/api/cron?namespace={ns}", bound)
    assert status == 200, body
    for token in (for_the_api_server, for_another_service):
        status, body = await call(stack, "GET", f"/api/cron?namespace={ns}", token)
        assert (status, body["reason"]) == (401, "InvalidToken"), body
        assert "--audience qstash-operator" in body["error"]


async def test_a_valid_token_is_reviewed_once_for_many_calls(stack: Stack) -> None:
    kube = await counting_kube(stack.control_plane)
    webhook = await stack.start_webhook(kube=kube)
    token = await asyncio.to_thread(grant, stack, "reader", ["list"])
    try:
        for _ in range(5):
            status, _body = await call(
                stack, "GET", f"/api/cron?namespace={stack.namespace}", token, webhook=webhook
            )
            assert status == 200
    finally:
        await webhook.runner.cleanup()
        stack.extra.remove(webhook)
        await kube.close()
    assert kube.calls["tokenreviews"] == 1
    assert kube.calls["subjectaccessreviews"] == 5  # RBAC is asked every time


async def test_failed_reviews_are_limited_per_client_while_good_tokens_still_work(
    stack: Stack,
) -> None:
    kube = await counting_kube(stack.control_plane)
    webhook = await stack.start_webhook(kube=kube)
    good = await asyncio.to_thread(grant, stack, "reader", ["list"])
    path = f"/api/cron?namespace={stack.namespace}"
    burst = access.FAILED_REVIEWS_PER_CLIENT.burst
    try:
        assert (await call(stack, "GET", path, good, webhook=webhook))[0] == 200
        answers = [
            await call(stack, "GET", path, f"not-a-token-{n}", webhook=webhook)
            for n in range(4 * burst)
        ]
        still_good = await call(stack, "GET", path, good, webhook=webhook)
    finally:
        await webhook.runner.cleanup()
        stack.extra.remove(webhook)
        await kube.close()
    statuses = collections.Counter(status for status, _ in answers)
    refused = [body for status, body in answers if status == 429]
    # The burst, plus what refilled while the requests were sent (about one per two seconds).
    assert burst <= statuses[401] <= burst + 3, statuses
    assert statuses[429] == len(answers) - statuses[401], statuses
    assert all(body["reason"] == "TooManyInvalidTokens" for body in refused)
    assert kube.calls["tokenreviews"] == 1 + statuses[401]  # a refused token costs no review
    assert still_good[0] == 200  # reviewed before, so cached: no review, no limit
