"""``POST /api/qstash/webhook`` up to the run service: what is decided before any API call.

Refusals (signature, size, body shape) must never reach Kubernetes, so the adapter here fails the
test if touched; the "API server down" cases use the real adapter aimed at a closed port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from datetime import datetime, timedelta
from typing import Any

import pytest

from qstash_operator.domain.errors import ForbiddenError, NotFoundError
from qstash_webhook.delivery import parse_retried
from tests.unit.webhook import support
from tests.unit.webhook.conftest import Clock, MakeClient, UntouchableKube, unreachable_kube

PATH = "/api/qstash/webhook"
AT = support.JUST_AFTER_THE_HOUR


def headers(token: str | None, message_id: str | None = "msg_test1") -> dict[str, str]:
    values = {"Content-Type": "application/json"}
    if token is not None:
        values["Upstash-Signature"] = token
    if message_id is not None:
        values["Upstash-Message-Id"] = message_id
    return values


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    raise AssertionError(f"{prefix!r} not in metrics")


REFUSALS = [
    pytest.param(None, support.BODY, "missing", id="no Upstash-Signature header"),
    pytest.param(
        support.signed(support.BODY, at=AT, key=support.WRONG_KEY),
        support.BODY,
        "bad_signature",
        id="signed with an unknown key",
    ),
    pytest.param(
        support.signed(support.BODY, at=support.TOP_OF_THE_HOUR.replace(hour=9)),
        support.BODY,
        "expired",
        id="a token made an hour ago",
    ),
    pytest.param(
        support.signed(support.BODY, at=AT),
        support.BODY.replace(b"backup", b"restore"),
        "body_hash",
        id="a body other than the one signed",
    ),
    pytest.param(
        support.signed(support.BODY, at=AT, url="http://webhook.svc:8080/api/qstash/webhook"),
        support.BODY,
        "subject",
        id="signed for the in-cluster URL rather than the public one",
    ),
    pytest.param(
        support.unsigned_token(support.claims(support.BODY, now=int(AT.timestamp()))),
        support.BODY,
        "algorithm",
        id="alg none",
    ),
]


@pytest.mark.parametrize(("token", "body", "reason"), REFUSALS)
async def test_a_forged_delivery_is_refused_before_any_api_call(
    make_client: MakeClient, token: str | None, body: bytes, reason: str
) -> None:
    client = await make_client()
    response = await client.post(PATH, data=body, headers=headers(token))
    assert response.status == 401
    assert await response.json() == {"error": "signature refused", "reason": reason}
    text = await (await client.get("/metrics")).text()
    assert metric(text, "qstash_webhook_signature_failures_total", reason=reason) == 1
    assert metric(text, "qstash_webhook_deliveries_total", result="unauthorized") == 1


async def test_the_host_header_cannot_change_the_url_that_is_checked(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    forged = support.signed(support.BODY, at=AT, url="https://attacker.example/api/qstash/webhook")
    response = await client.post(
        PATH,
        data=support.BODY,
        headers={**headers(forged), "Host": "attacker.example", "X-Forwarded-Proto": "https"},
    )
    assert response.status == 401


async def test_an_oversized_body_is_413_without_reading_it_all(make_client: MakeClient) -> None:
    client = await make_client()
    response = await client.post(PATH, data=b"x" * (1024 * 1024), headers=headers("a.b.c"))
    assert response.status == 413
    assert (await response.json())["reason"] == "TooLarge"


NOT_OURS = [
    pytest.param(b"not json at all", id="not JSON"),
    pytest.param(b"[1, 2, 3]", id="a JSON array"),
    pytest.param(b'{"name":"backup","namespace":"default"}', id="no uid"),
    pytest.param(b'{"name":"","namespace":"default","uid":"u"}', id="an empty name"),
    pytest.param(b'{"name":7,"namespace":"default","uid":"u"}', id="a number for a name"),
    pytest.param(b"\xff\xfe\x00", id="bytes that are not text"),
]


@pytest.mark.parametrize("body", NOT_OURS)
async def test_a_verified_body_that_names_no_cronworkflow_is_non_retryable(
    make_client: MakeClient, body: bytes
) -> None:
    client = await make_client()
    response = await client.post(PATH, data=body, headers=headers(support.signed(body, at=AT)))
    assert response.status == 489
    assert response.headers["Upstash-NonRetryable-Error"] == "true"
    assert (await response.json())["reason"] == "MalformedBody"


async def test_a_message_id_that_qstash_would_never_send_is_refused(
    make_client: MakeClient,
) -> None:
    client = await make_client()
    token = support.signed(support.BODY, at=AT)
    response = await client.post(PATH, data=support.BODY, headers=headers(token, "m" * 1000))
    assert response.status == 400


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, 0, id="absent: a first attempt"),
        pytest.param("0", 0, id="a first attempt"),
        pytest.param("3", 3, id="the fourth attempt"),
        pytest.param(" 1 ", 1, id="around spaces"),
        pytest.param("-1", None, id="negative"),
        pytest.param("one", None, id="a word"),
        pytest.param("\u0663", None, id="a non-ASCII digit"),
        pytest.param("9" * 40, None, id="absurdly long"),
    ],
)
def test_upstash_retried_is_a_count_of_earlier_attempts(
    value: str | None, expected: int | None
) -> None:
    assert parse_retried(value) == expected


async def test_a_malformed_upstash_retried_is_refused(make_client: MakeClient) -> None:
    client = await make_client()
    token = support.signed(support.BODY, at=AT)
    response = await client.post(
        PATH, data=support.BODY, headers={**headers(token), "Upstash-Retried": "soon"}
    )
    assert response.status == 400
    assert (await response.json())["reason"] == "MalformedRetried"


async def test_an_unreachable_api_server_is_503_with_retry_after(make_client: MakeClient) -> None:
    client = await make_client(kube=unreachable_kube())
    token = support.signed(support.BODY, at=AT)
    response = await client.post(PATH, data=support.BODY, headers=headers(token))
    assert response.status == 503
    assert response.headers["Retry-After"].isdigit()
    assert int(response.headers["Retry-After"]) >= 1
    assert (await response.json())["reason"] == "Unavailable"
    text = await (await client.get("/metrics")).text()
    assert metric(text, "qstash_webhook_deliveries_total", result="unavailable") == 1


class ForbiddenKube(UntouchableKube):
    async def get_cronworkflow(self, namespace: str, name: str) -> Any:
        raise ForbiddenError(f"GET cronworkflows/{name}: HTTP 403")


async def test_missing_rbac_for_the_webhook_is_503_so_qstash_retries_after_the_fix(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(kube=ForbiddenKube())
    token = support.signed(support.BODY, at=AT)
    with caplog.at_level(logging.ERROR):
        response = await client.post(PATH, data=support.BODY, headers=headers(token))
    assert response.status == 503
    assert int(response.headers["Retry-After"]) >= 60
    assert any("RBAC" in record.getMessage() for record in caplog.records)


async def test_the_clock_is_the_injected_one(make_client: MakeClient) -> None:
    """A token made at 10:00:02 is valid at 10:00:02 and expired at 10:06, by our clock alone."""
    clock = Clock(AT)
    client = await make_client(kube=unreachable_kube(), clock=clock)
    token = support.signed(support.BODY, at=AT)
    assert (await client.post(PATH, data=support.BODY, headers=headers(token))).status == 503
    clock.now = AT.replace(minute=6)
    assert (await client.post(PATH, data=support.BODY, headers=headers(token))).status == 401


async def test_every_delivery_is_one_structured_log_line_without_the_token(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    from qstash_webhook.logs import JsonFormatter

    client = await make_client(kube=unreachable_kube())
    token = support.signed(support.BODY, at=AT)
    with caplog.at_level(logging.INFO, logger="qstash_webhook"):
        await client.post(PATH, data=support.BODY, headers=headers(token, "msg_42"))
    lines = [JsonFormatter().format(r) for r in caplog.records if r.getMessage() == "delivery"]
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["message_id"] == "msg_42"
    assert line["cronworkflow"] == "default/backup"
    assert line["result"] == "unavailable"
    assert line["status"] == 503
    assert token not in lines[0]
    assert support.CURRENT_KEY not in caplog.text


class GoneKube(UntouchableKube):
    """Every CronWorkflow is gone (a verified delivery then ends in 489, a deliberate 4xx)."""

    async def get_cronworkflow(self, namespace: str, name: str) -> Any:
        raise NotFoundError(f"cronworkflows/{name}")


async def test_fuzzed_deliveries_never_get_a_5xx(make_client: MakeClient) -> None:
    """Bounded random mutations of headers and body: every answer is a deliberate 4xx."""
    rng = random.Random(20261128)  # fixed seed: a failure reproduces
    client = await make_client(kube=GoneKube())
    genuine = support.signed(support.BODY, at=AT)
    pieces = [genuine, "", ".", "..", "a.b.c", genuine[:-1], genuine + "=", "Bearer " + genuine]
    for _ in range(200):
        token = rng.choice(pieces)
        if rng.random() < 0.3:
            spot = rng.randrange(len(token) or 1)
            token = token[:spot] + rng.choice("aZ0-_.=") + token[spot + 1 :]
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        if rng.random() < 0.3:
            body = support.BODY
        response = await client.post(PATH, data=body, headers={"Upstash-Signature": token})
        assert response.status < 500, (token, body, response.status)


async def test_unknown_routes_and_methods_answer_json(make_client: MakeClient) -> None:
    client = await make_client()
    missing = await client.get("/nope")
    assert missing.status == 404
    assert (await missing.json())["reason"] == "NotFound"
    wrong = await client.get(PATH)
    assert wrong.status == 405
    assert "POST" in wrong.headers["Allow"]


async def _slowloris(
    client: Any, *, declared: int, every: float, deadline: float
) -> tuple[float, bytes]:
    """Send a delivery's headers at once, then its body one byte every ``every`` seconds; return
    how long the first line of the answer took and the whole answer (headers and body)."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    loop = asyncio.get_running_loop()
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: cron.example.com\r\nContent-Type: application/json\r\n"
        f"Upstash-Signature: a.b.c\r\nContent-Length: {declared}\r\n\r\n"
    ).encode()
    writer.write(head)
    began = loop.time()

    async def trickle() -> None:
        for _ in range(declared - 1):  # never the whole body
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(every)

    sender = asyncio.create_task(trickle())
    try:
        status_line = await asyncio.wait_for(reader.readline(), timeout=deadline + 3.0)
        took = loop.time() - began
        rest = await asyncio.wait_for(reader.read(4096), timeout=3.0)
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
        writer.close()
    return took, status_line + rest


async def test_a_body_that_trickles_in_is_408_within_the_deadline(make_client: MakeClient) -> None:
    """Slowloris: headers at once, then a byte every 100 ms of a 200-byte body (20 s in all)."""
    client = await make_client(body_deadline=0.5)
    took, answer = await _slowloris(client, declared=200, every=0.1, deadline=0.5)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert 0.5 <= took < 0.5 + 1.5, took
    assert b'"reason": "BodyTimeout"' in answer
    assert b"Connection: close" in answer


class WatchedClock(Clock):
    """A clock that says when it is first read."""

    def __init__(self, now: datetime) -> None:
        super().__init__(now)
        self.read = asyncio.Event()

    def __call__(self) -> datetime:
        self.read.set()
        return self.now


async def test_the_clock_is_read_after_the_body_is_in(make_client: MakeClient) -> None:
    """A token valid when the headers arrive but expired by the time the body is in: the check
    uses the later instant, so holding a request open cannot stretch a token's life."""
    clock = WatchedClock(AT)
    client = await make_client(kube=unreachable_kube(), clock=clock)
    token = support.signed(support.BODY, at=AT)  # expires at AT + 300 s
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(
        f"POST {PATH} HTTP/1.1\r\nHost: cron.example.com\r\nUpstash-Signature: {token}\r\n"
        f"Content-Length: {len(support.BODY)}\r\n\r\n".encode()
        + support.BODY[:10]
    )
    await writer.drain()
    # Before the fix the view read the clock as soon as the headers were in; give it the chance.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(clock.read.wait(), timeout=0.5)
    clock.now = AT + timedelta(minutes=6)
    writer.write(support.BODY[10:])
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), timeout=5.0)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b'"reason": "expired"' in answer


LONG_IDS = [
    pytest.param(1024, 401, id="1 KiB"),
    pytest.param(8000, 401, id="8000 B, about the largest header value the HTTP server reads"),
    pytest.param(10 * 1024, 400, id="10 KiB, refused by the HTTP server before the view"),
]


@pytest.mark.parametrize(("length", "status"), LONG_IDS)
async def test_an_unverified_message_id_is_logged_truncated_and_escaped(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, length: int, status: int
) -> None:
    from qstash_webhook.logs import JsonFormatter

    client = await make_client()
    hostile = ('msg_\u00e9"}' + "A" * length)[:length]  # not ASCII, a quote, then a flood
    forged = support.signed(support.BODY, at=AT, key=support.WRONG_KEY)
    with caplog.at_level(logging.INFO):
        response = await client.post(PATH, data=support.BODY, headers=headers(forged, hostile))
    assert response.status == status
    lines = [JsonFormatter().format(r) for r in caplog.records if r.getMessage() == "delivery"]
    assert len(lines) == (1 if status == 401 else 0)
    for line in lines:
        logged = json.loads(line)["message_id"]
        assert logged.startswith('msg_\\xe9"}AAAA')  # escaped, not raw
        assert logged.endswith(f"(+{length - 64} chars)")
        assert len(logged) < 64 + 40
    assert "A" * 200 not in caplog.text
