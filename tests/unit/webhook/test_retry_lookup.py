"""A retried delivery asks QStash which message it is; what the webhook answers when it cannot.

The Kubernetes side is a fake that holds one CronWorkflow and no Jobs (a retry that no Job ran,
so the lookup is needed); the QStash side is a fake :class:`MessageLookup`. The real SDK against
the real server is covered in ``tests/integration/webhook/test_retry_ticks.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from qstash_operator.adapters.signing_keys import SigningKeySource
from qstash_operator.domain.errors import (
    AlreadyExistsError,
    NotFoundError,
    QStashOperatorError,
    QStashRateLimitedError,
    QStashUnavailableError,
)
from qstash_operator.domain.model import JsonDict
from qstash_operator.domain.runs import MessageOrigin
from qstash_webhook.app import make_app
from tests.unit.webhook import support
from tests.unit.webhook.conftest import Clock, UntouchableKube

PATH = "/api/qstash/webhook"
AT = support.JUST_AFTER_THE_HOUR
SCHEDULE_ID = "default.default.backup"  # cluster "default", namespace "default", name "backup"


class OneCronWorkflow(UntouchableKube):
    """``default/backup`` (every minute) with no Jobs listed, whose every Job create finds the
    name taken (another replica won): enough to see the decision without a cluster."""

    async def get_cronworkflow(self, namespace: str, name: str) -> JsonDict:
        return {
            "apiVersion": "qstash-operator.dev/v1alpha1",
            "kind": "CronWorkflow",
            "metadata": {
                "name": "backup",
                "namespace": "default",
                "uid": "5f0c7c1e-0c1a-4b3e-9d7a-2a1b3c4d5e6f",
                "generation": 1,
                "resourceVersion": "7",
            },
            "spec": {
                "schedule": "* * * * *",
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [{"name": "main", "image": "busybox:1.36"}],
                            }
                        }
                    }
                },
            },
            "status": {},
        }

    async def list_jobs(self, namespace: str, selector: str) -> list[JsonDict]:
        return []

    async def create_job(self, job: JsonDict, *, dry_run: bool = False) -> JsonDict:
        raise AlreadyExistsError(job["metadata"]["name"])

    async def post_event(self, *args: Any, **kwargs: Any) -> None:
        return None


class Lookup:
    def __init__(self, answer: MessageOrigin | QStashOperatorError) -> None:
        self.answer = answer
        self.asked: list[str] = []

    async def origin(self, message_id: str) -> MessageOrigin:
        self.asked.append(message_id)
        if isinstance(self.answer, QStashOperatorError):
            raise self.answer
        return self.answer


@pytest.fixture
async def clients() -> AsyncIterator[list[TestClient[web.Request, web.Application]]]:
    made: list[TestClient[web.Request, web.Application]] = []
    yield made
    for client in made:
        await client.close()


async def post(
    clients: list[TestClient[web.Request, web.Application]],
    lookup: Lookup,
    *,
    retried: str = "1",
    message_id: str | None = "msg_retry",
) -> web.Response | Any:
    settings = support.settings()
    keys = SigningKeySource.from_settings(settings.qstash)
    keys.load()
    app = make_app(settings, kube=OneCronWorkflow(), keys=keys, clock=Clock(AT), messages=lookup)
    client = TestClient(TestServer(app))
    await client.start_server()
    clients.append(client)
    headers = {
        "Content-Type": "application/json",
        "Upstash-Signature": support.signed(support.BODY, at=AT),
        "Upstash-Retried": retried,
    }
    if message_id is not None:
        headers["Upstash-Message-Id"] = message_id
    return await client.post(PATH, data=support.BODY, headers=headers)


@pytest.mark.parametrize(
    ("failure", "retry_after"),
    [
        pytest.param(QStashUnavailableError("QStash unreachable"), 2, id="QStash unreachable"),
        pytest.param(QStashUnavailableError("HTTP 502", retry_after=7), 7, id="QStash 5xx"),
        pytest.param(QStashRateLimitedError("429", retry_after=30), 30, id="rate limited"),
    ],
)
async def test_a_retry_whose_message_cannot_be_looked_up_is_503_never_a_guess(
    clients: list[TestClient[web.Request, web.Application]],
    failure: QStashOperatorError,
    retry_after: int,
) -> None:
    lookup = Lookup(failure)
    response = await post(clients, lookup)
    assert response.status == 503
    assert int(response.headers["Retry-After"]) == retry_after
    assert lookup.asked == ["msg_retry"]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        pytest.param(
            MessageOrigin(created_at=support.TOP_OF_THE_HOUR, schedule_id="default.other.backup"),
            "ScheduleMismatch",
            id="another schedule's message",
        ),
        pytest.param(
            MessageOrigin(created_at=support.TOP_OF_THE_HOUR, schedule_id=None),
            "ScheduleMismatch",
            id="a message no schedule made",
        ),
        pytest.param(NotFoundError("message not found"), "MessageUnknown", id="unknown to QStash"),
    ],
)
async def test_a_retry_that_is_not_this_schedules_message_is_refused_for_good(
    clients: list[TestClient[web.Request, web.Application]],
    answer: MessageOrigin | QStashOperatorError,
    reason: str,
) -> None:
    response = await post(clients, Lookup(answer))
    assert response.status == 489
    assert response.headers["Upstash-NonRetryable-Error"] == "true"
    assert (await response.json())["reason"] == reason


async def test_a_first_attempt_does_not_ask(
    clients: list[TestClient[web.Request, web.Application]],
) -> None:
    """Judged by its arrival (10:00:02 is the 10:00 tick), QStash is not asked."""
    lookup = Lookup(QStashUnavailableError("must not be asked"))
    response = await post(clients, lookup, retried="0")
    assert lookup.asked == []
    assert response.status == 200
    assert (await response.json())["tick"] == "2026-11-28T10:00:00Z"


async def test_a_retry_150_s_late_is_the_tick_its_message_was_made_for(
    clients: list[TestClient[web.Request, web.Application]],
) -> None:
    """Made at 09:57:32.1, delivered (retried) at 10:00:02: the 09:57 tick, not 10:00."""
    made = AT - timedelta(seconds=150)
    lookup = Lookup(MessageOrigin(created_at=made, schedule_id=SCHEDULE_ID))
    response = await post(clients, lookup)
    assert lookup.asked == ["msg_retry"]
    assert response.status == 200
    assert (await response.json())["tick"] == "2026-11-28T09:57:00Z"


async def test_a_retry_without_a_message_id_is_400(
    clients: list[TestClient[web.Request, web.Application]],
) -> None:
    lookup = Lookup(MessageOrigin(created_at=AT - timedelta(minutes=3), schedule_id=SCHEDULE_ID))
    response = await post(clients, lookup, message_id=None)
    assert response.status == 400
    assert (await response.json())["reason"] == "MissingMessageId"
    assert lookup.asked == []
