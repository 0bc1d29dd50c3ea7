"""The API's gate, in front of the API server: the review cache and the failure limits.

The rules are table tests over the pure buckets with named instants (monotonic seconds), then
:class:`GuardedAccess` around :class:`KubeAccess` with our adapter whose reviews are answered in
memory and counted, and a settable monotonic clock. What the real API server says about real
tokens (audiences, RBAC) is ``tests/integration/webhook/test_access.py``.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest

from qstash_operator.adapters.kube import MAX_CONNECTIONS, UserInfo
from qstash_operator.domain.errors import KubernetesUnavailableError
from qstash_webhook import main
from qstash_webhook.access import (
    FAILED_REVIEWS_IN_ALL,
    FAILED_REVIEWS_PER_CLIENT,
    REVIEW_CACHE_SECONDS,
    REVIEW_CACHE_SIZE,
    REVIEW_CONNECTIONS,
    GuardedAccess,
    KubeAccess,
)
from qstash_webhook.errors import ApiError
from qstash_webhook.limits import FailureLimiter, Rate, TokenBucket
from qstash_webhook.metrics import WebhookMetrics
from tests.unit.webhook.conftest import UntouchableKube

START = 1000.0  # monotonic seconds: only differences matter
ONE_SECOND_LATER = START + 1.0
TWO_SECONDS_LATER = START + 2.0
A_MINUTE_LATER = START + 60.0
RATE = Rate(burst=3, per_second=0.5)


@pytest.mark.parametrize(
    ("spent", "now", "wait"),
    [
        pytest.param(0, START, 0.0, id="full: a token now"),
        pytest.param(2, START, 0.0, id="one left"),
        pytest.param(3, START, 2.0, id="empty: one comes back in 1 / rate seconds"),
        pytest.param(3, ONE_SECOND_LATER, 1.0, id="half of one back after a second"),
        pytest.param(3, TWO_SECONDS_LATER, 0.0, id="one back after two"),
        pytest.param(3, A_MINUTE_LATER, 0.0, id="refills, never past the burst"),
        pytest.param(3, START - 10.0, 2.0, id="a clock that steps back refills nothing"),
    ],
)
def test_a_token_bucket(spent: int, now: float, wait: float) -> None:
    bucket = TokenBucket(RATE, now=START)
    for _ in range(spent):
        bucket.take(START)
    assert bucket.wait(now) == pytest.approx(wait)


def test_a_bucket_refilled_for_a_minute_holds_only_its_burst() -> None:
    bucket = TokenBucket(RATE, now=START)
    assert bucket.wait(A_MINUTE_LATER) == 0.0
    for _ in range(RATE.burst):
        bucket.take(A_MINUTE_LATER)
    assert bucket.wait(A_MINUTE_LATER) > 0.0


def test_each_client_has_its_own_bucket_and_all_share_one() -> None:
    limiter = FailureLimiter(
        per_client=Rate(burst=2, per_second=0.1), in_all=Rate(burst=3, per_second=0.1), now=START
    )
    assert [limiter.take("10.0.0.1", now=START) for _ in range(3)] == [0.0, 0.0, 10.0]
    assert limiter.take("10.0.0.2", now=START) == 0.0  # its own bucket is full, the shared one
    assert limiter.take("10.0.0.3", now=START) == 10.0  # ... is empty now, for everyone
    limiter.give_back("10.0.0.2", now=START)  # its review succeeded after all
    assert limiter.take("10.0.0.3", now=START) == 0.0


class ReviewingKube(UntouchableKube):
    """TokenReview and SubjectAccessReview answered in memory: ``good-*`` tokens are valid."""

    def __init__(self) -> None:
        super().__init__()
        self.reviews: collections.Counter[str] = collections.Counter()
        self.down = False

    async def review_token(self, token: str, *, audiences: Any) -> UserInfo | None:
        self.reviews[token] += 1
        assert list(audiences) == ["qstash-operator"]
        if self.down:
            raise KubernetesUnavailableError("POST tokenreviews: ClientConnectorError")
        if not token.startswith("good-"):
            return None
        return UserInfo(username=f"user-{token}", uid="u", groups=(), extra={})


class Monotonic:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def gate() -> tuple[GuardedAccess, ReviewingKube, Monotonic, WebhookMetrics]:
    kube, clock, metrics = ReviewingKube(), Monotonic(), WebhookMetrics()
    inner = KubeAccess(kube, audience="qstash-operator")
    return GuardedAccess(inner, metrics=metrics, clock=clock), kube, clock, metrics


async def answer(access: GuardedAccess, token: str, client: str) -> int:
    """What the API would answer: 200 (a user), 401 (None) or the refusal's status."""
    try:
        user = await access.authenticate(token, client=client)
    except ApiError as refused:
        return refused.status
    return 200 if user is not None else 401


def counted(metrics: WebhookMetrics, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "qstash_webhook_token_reviews_total", {"result": result}
    )
    return value or 0.0


async def test_a_good_token_is_reviewed_once_per_cache_period() -> None:
    access, kube, clock, metrics = gate()
    for _ in range(5):
        await access.authenticate("good-1", client="10.0.0.1")
    clock.now = START + REVIEW_CACHE_SECONDS - 0.1
    await access.authenticate("good-1", client="10.0.0.1")
    assert kube.reviews["good-1"] == 1
    clock.now = START + REVIEW_CACHE_SECONDS
    await access.authenticate("good-1", client="10.0.0.1")
    assert kube.reviews["good-1"] == 2  # the cache forgot it: reviewed again
    assert (counted(metrics, "authenticated"), counted(metrics, "cached")) == (2.0, 5.0)


async def test_the_cache_is_bounded_and_keyed_by_hash_never_by_token() -> None:
    access, kube, _clock, _metrics = gate()
    for n in range(REVIEW_CACHE_SIZE + 10):
        await access.authenticate(f"good-{n}", client="10.0.0.1")
    cache = access._reviewed  # what an operator would see if it were ever dumped
    assert len(cache) == REVIEW_CACHE_SIZE
    assert all(isinstance(key, bytes) and len(key) == 32 for key in cache)
    assert not any(b"good-" in key for key in cache)
    await access.authenticate("good-0", client="10.0.0.1")  # evicted first: reviewed again
    assert kube.reviews["good-0"] == 2


async def test_bad_tokens_past_the_limit_cost_no_review_and_get_429() -> None:
    access, kube, clock, metrics = gate()
    burst = FAILED_REVIEWS_PER_CLIENT.burst
    statuses = [await answer(access, f"bad-{n}", "10.0.0.1") for n in range(burst + 5)]
    assert statuses == [401] * burst + [429] * 5
    assert sum(kube.reviews.values()) == burst
    with pytest.raises(ApiError) as refused:
        await access.authenticate("bad-again", client="10.0.0.1")
    assert refused.value.reason == "TooManyInvalidTokens"
    assert refused.value.headers["Retry-After"] == "2"  # one back every two seconds
    assert counted(metrics, "limited") == 6.0
    # Another client is not held back by this one...
    assert await answer(access, "bad-x", "10.0.0.2") == 401
    # ... and a good token from the limited client, once a token is back, works.
    clock.now = START + 1 / FAILED_REVIEWS_PER_CLIENT.per_second
    assert (await access.authenticate("good-1", client="10.0.0.1")) is not None


async def test_a_flood_from_many_addresses_meets_the_shared_limit() -> None:
    access, kube, _clock, _metrics = gate()
    statuses = collections.Counter(
        [
            await answer(access, f"bad-{n}", f"10.1.{n // 250}.{n % 250}")
            for n in range(FAILED_REVIEWS_IN_ALL.burst * 2)
        ]
    )
    assert statuses == {401: FAILED_REVIEWS_IN_ALL.burst, 429: FAILED_REVIEWS_IN_ALL.burst}
    assert sum(kube.reviews.values()) == FAILED_REVIEWS_IN_ALL.burst


async def test_an_api_server_outage_is_not_held_against_the_client() -> None:
    access, kube, _clock, _metrics = gate()
    kube.down = True
    for _ in range(FAILED_REVIEWS_PER_CLIENT.burst * 2):
        with pytest.raises(KubernetesUnavailableError):
            await access.authenticate("good-1", client="10.0.0.1")
    kube.down = False
    assert (await access.authenticate("good-1", client="10.0.0.1")).username == "user-good-1"


def kubeconfig(path: Path) -> str:
    path.write_text(
        """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""
    )
    return str(path)


async def test_deliveries_token_reviews_and_watches_have_a_connection_pool_each(
    tmp_path: Path,
) -> None:
    work, reviews, watches = await main.clients(kubeconfig(tmp_path / "config"), watches=4)
    try:
        clients = {id(c.api_client.rest_client) for c in (work, reviews, watches)}
        assert len(clients) == 3
        assert (work.max_connections, reviews.max_connections, watches.max_connections) == (
            MAX_CONNECTIONS,
            REVIEW_CONNECTIONS,
            5,
        )
    finally:
        for client in (work, reviews, watches):
            await client.close()
