"""The webhook's message lookup (``adapters.qstash_api.QStashMessages``) against the in-process
QStash-compatible server: what each answer of ``GET /v2/messages/{id}`` becomes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from qstash import AsyncQStash

from qstash_operator.adapters.qstash_api import QStashMessages
from qstash_operator.domain.errors import (
    NotFoundError,
    QStashAuthError,
    QStashRateLimitedError,
    QStashUnavailableError,
)
from qstash_operator.domain.runs import MessageOrigin
from qstash_server.testing import RunningServer

START = datetime(2026, 6, 1, 9, 59, 30, tzinfo=UTC)
TICK = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing answers there


@pytest.fixture
async def qstash() -> AsyncIterator[RunningServer]:
    async with RunningServer(start_time=START, backoff_factor=1.0) as server:
        yield server


@pytest.fixture
async def lookup(qstash: RunningServer) -> AsyncIterator[QStashMessages]:
    client = QStashMessages(token=qstash.token, base_url=qstash.url)
    yield client
    await client.close()


async def retrying_message(qstash: RunningServer) -> tuple[str, str]:
    """A schedule's 10:00 message whose first attempt failed and whose retry is ten minutes off."""
    sdk = AsyncQStash(qstash.token, base_url=qstash.url, retry=False)
    try:
        schedule_id = await sdk.schedule.create(
            destination="http://127.0.0.1:9/hook",
            cron="* * * * *",
            retries=2,
            retry_delay="600000",
            schedule_id="c.team-a.report",
        )
    finally:
        await sdk.http._client.aclose()
    await qstash.destination_down()
    [fired] = await qstash.advance(30)
    await qstash.wait_for_deliveries(1, message_id=fired["messageId"])
    return schedule_id, fired["messageId"]


async def test_a_retrying_message_gives_its_created_at_and_schedule(
    qstash: RunningServer, lookup: QStashMessages
) -> None:
    schedule_id, message_id = await retrying_message(qstash)
    assert await lookup.origin(message_id) == MessageOrigin(
        created_at=TICK, schedule_id=schedule_id
    )


async def test_a_message_qstash_does_not_know_is_not_found(lookup: QStashMessages) -> None:
    with pytest.raises(NotFoundError):
        await lookup.origin("msg_unknown")


@pytest.mark.parametrize(
    ("fault", "error", "retry_after"),
    [
        pytest.param("5xx", QStashUnavailableError, 2.0, id="QStash 5xx: unavailable"),
        pytest.param("400", QStashUnavailableError, 2.0, id="a refusal is retried, not guessed"),
        pytest.param("429", QStashRateLimitedError, None, id="rate limited: its reset"),
    ],
)
async def test_what_qstash_cannot_answer_is_transient(
    qstash: RunningServer,
    lookup: QStashMessages,
    fault: str,
    error: type[Exception],
    retry_after: float | None,
) -> None:
    _, message_id = await retrying_message(qstash)
    if fault == "429":
        await qstash.rate_limit_api(1, routes=["messages.get"])
    else:
        await qstash.fail_api(1, status=502 if fault == "5xx" else 400, routes=["messages.get"])
    with pytest.raises(error) as caught:
        await lookup.origin(message_id)
    if retry_after is not None:
        assert getattr(caught.value, "retry_after", None) == retry_after
    assert await lookup.origin(message_id)  # the fault was spent: the next lookup answers


async def test_a_wrong_token_is_an_auth_error(qstash: RunningServer) -> None:
    client = QStashMessages(token="not-the-token", base_url=qstash.url)
    try:
        with pytest.raises(QStashAuthError):
            await client.origin("msg_any")
    finally:
        await client.close()


async def test_an_unreachable_qstash_is_unavailable() -> None:
    client = QStashMessages(token="t", base_url=UNREACHABLE, timeout=1.0)
    try:
        with pytest.raises(QStashUnavailableError):
            await client.origin("msg_any")
    finally:
        await client.close()
