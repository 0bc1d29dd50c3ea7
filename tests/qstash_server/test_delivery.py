"""Deliveries: when schedules fire, what QStash sends, how it retries, and the injected faults.

Every request the destination gets is verified with the SDK's ``Receiver`` and the project's
verifier (the ``receiver`` fixture fails the test otherwise).
"""

from __future__ import annotations

import base64
import hashlib
import math
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import jwt
import pytest

from qstash_server import clock
from qstash_server.testing import ControlError, RunningServer, header
from tests.qstash_server.conftest import START, TOP, TOP_MS, Sdk
from tests.qstash_server.receiver import Reply, VerifyingReceiver

MINUTE_MS = 60_000


async def make_schedule(
    client: Sdk, destination: str, cron: str = "* * * * *", **options: object
) -> str:
    schedule_id: str = await client.schedule(
        "create", destination=destination, cron=cron, **options
    )
    return schedule_id


async def test_a_tick_sends_what_qstash_sends(
    client: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    destination = receiver.url("/hook?cw=nightly")
    schedule_id = await client.schedule(
        "create_json",
        destination=destination,
        cron="0 * * * *",
        body={"name": "nightly"},
        headers={"X-Tenant": "acme"},
        schedule_id="c.ns.nightly",
    )
    fired = await qstash.advance(30)
    assert fired == [
        {"scheduleId": schedule_id, "tick": TOP_MS, "messageId": fired[0]["messageId"]}
    ]
    [delivery] = await qstash.wait_for_deliveries(1)
    [request] = receiver.at("/hook")
    assert request.method == "POST"
    assert request.body == b'{"name": "nightly"}'
    assert request.url == destination
    expected_headers = {
        "Content-Type": "application/json",
        "X-Tenant": "acme",
        "User-Agent": "Upstash-QStash",
        "Upstash-Message-Id": fired[0]["messageId"],
        "Upstash-Retried": "0",
        "Upstash-Schedule-Id": "c.ns.nightly",
        "Upstash-Caller-Ip": "127.0.0.1",
        "Upstash-Region": "EU-CENTRAL-1",
    }
    assert {name: request.header(name) for name in expected_headers} == expected_headers
    token = request.header("Upstash-Signature")
    assert token is not None
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(
        token, qstash.current_key, algorithms=["HS256"], options={"verify_exp": False}
    )
    digest = base64.urlsafe_b64encode(hashlib.sha256(b'{"name": "nightly"}').digest()).decode()
    assert set(claims) == {"iss", "sub", "exp", "nbf", "iat", "jti", "body"}
    assert (claims["iss"], claims["sub"], claims["nbf"], claims["body"]) == (
        "Upstash",
        destination,
        0,
        digest,  # padded, as QStash sends it
    )
    assert claims["exp"] - claims["iat"] == 300
    assert abs(claims["iat"] - time.time()) < 5  # the wall clock: real receivers accept it
    assert claims["jti"].startswith("jwt_")
    assert (delivery["status"], delivery["outcome"], delivery["tick"]) == (200, "success", TOP_MS)
    assert header(delivery, "upstash-signature") == token


async def test_advance_fires_every_tick_in_between_in_order(
    client: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    every_minute = await make_schedule(client, receiver.url("/a"), schedule_id="b-every-minute")
    every_two = await make_schedule(
        client, receiver.url("/b"), "*/2 * * * *", schedule_id="a-every-two"
    )
    fired = await qstash.advance(30 + 4 * 60)  # 10:00 .. 10:04
    assert [(f["tick"], f["scheduleId"]) for f in fired] == [
        (TOP_MS, every_two),
        (TOP_MS, every_minute),
        (TOP_MS + MINUTE_MS, every_minute),
        (TOP_MS + 2 * MINUTE_MS, every_two),
        (TOP_MS + 2 * MINUTE_MS, every_minute),
        (TOP_MS + 3 * MINUTE_MS, every_minute),
        (TOP_MS + 4 * MINUTE_MS, every_two),
        (TOP_MS + 4 * MINUTE_MS, every_minute),
    ]
    assert len({f["messageId"] for f in fired}) == 8  # a new message per tick
    assert await qstash.settle()
    assert (len(receiver.at("/a")), len(receiver.at("/b"))) == (5, 3)
    assert await qstash.advance(0) == []  # each tick fires once
    assert await qstash.now() == START + timedelta(seconds=270)


async def test_no_tick_fires_from_before_the_schedule_existed(
    client: Sdk, receiver: VerifyingReceiver
) -> None:
    async with RunningServer(start_time=TOP) as server:  # created exactly on a tick
        own = Sdk("async", server.token, server.url)
        receiver.use_keys(server.current_key, server.next_key)
        try:
            schedule_id = await make_schedule(own, receiver.url("/x"))
            assert await server.advance(59) == []
            fired = await server.advance(1)
            assert [(f["scheduleId"], f["tick"]) for f in fired] == [
                (schedule_id, TOP_MS + MINUTE_MS)
            ]
            assert await server.settle()
        finally:
            await own.close()


async def test_paused_skips_and_resume_does_not_replay(
    client: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    schedule_id = await make_schedule(client, receiver.url("/p"))
    await client.schedule("pause", schedule_id)
    assert await qstash.advance(30 + 3 * 60) == []
    await client.schedule("resume", schedule_id)
    fired = await qstash.advance(60)
    assert [f["tick"] for f in fired] == [TOP_MS + 4 * MINUTE_MS]
    assert await qstash.settle()
    assert len(receiver.at("/p")) == 1


async def test_fire_respects_pause_unless_forced(
    client: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    schedule_id = await make_schedule(client, receiver.url("/f"), "0 0 1 1 *")
    await client.schedule("pause", schedule_id)
    with pytest.raises(ControlError, match="409"):
        await qstash.fire(schedule_id)
    message_id = await qstash.fire(schedule_id, force=True)
    [delivery] = await qstash.wait_for_deliveries(1, message_id=message_id)
    assert delivery["tick"] == clock.to_ms(START)


async def test_deleted_schedule_stops_firing(
    client: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    schedule_id = await make_schedule(client, receiver.url("/d"))
    assert len(await qstash.advance(30)) == 1
    await client.schedule("delete", schedule_id)
    assert await qstash.advance(600) == []


async def test_time_zone_decides_the_tick(
    client: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    await make_schedule(client, receiver.url("/tz"), "CRON_TZ=America/New_York 0 4 * * *")
    fired = await qstash.advance(24 * 3600)
    eight_utc_next_day = datetime(2026, 6, 2, 8, 0, tzinfo=UTC)  # 04:00 EDT
    assert [f["tick"] for f in fired] == [clock.to_ms(eight_utc_next_day)]


async def test_retries_until_success_with_the_same_message_id(
    client: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    receiver.script("/r", Reply(status=500), Reply(status=503), Reply(status=201))
    schedule_id = await make_schedule(client, receiver.url("/r"), "0 0 1 1 *", retries=3)
    message_id = await qstash.fire(schedule_id)
    outcome = await qstash.wait_for_message(message_id)
    assert (outcome["state"], outcome["attempts"]) == ("SUCCESS", 3)
    requests = receiver.at("/r")
    assert [r.header("Upstash-Retried") for r in requests] == ["0", "1", "2"]
    assert {r.header("Upstash-Message-Id") for r in requests} == {message_id}
    assert len({r.header("Upstash-Signature") for r in requests}) == 3  # signed afresh each time
    attempts = await qstash.deliveries(message_id=message_id)
    assert [(a["status"], a["outcome"]) for a in attempts] == [
        (500, "failed"),
        (503, "failed"),
        (201, "success"),
    ]
    assert [a.get("nextRetrySeconds") for a in attempts] == [
        pytest.approx(math.exp(2.5)),  # QStash's default backoff, unscaled
        pytest.approx(math.exp(5.0)),
        None,
    ]


async def test_retries_exhausted_fail_the_message(
    client: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    receiver.script("/x", *[Reply(status=500)] * 3)
    schedule_id = await make_schedule(client, receiver.url("/x"), "0 0 1 1 *", retries=2)
    message_id = await qstash.fire(schedule_id)
    outcome = await qstash.wait_for_message(message_id)
    assert (outcome["state"], outcome["attempts"]) == ("FAIL", 3)
    assert len(receiver.at("/x")) == 3


@pytest.mark.parametrize(
    ("reply", "attempts", "state"),
    [
        pytest.param(
            Reply(status=489, headers={"Upstash-NonRetryable-Error": "true"}),
            1,
            "FAIL",
            id="489 with the header stops",
        ),
        pytest.param(Reply(status=489), 4, "FAIL", id="489 alone is retried"),
        pytest.param(
            Reply(status=500, headers={"Upstash-NonRetryable-Error": "true"}),
            4,
            "FAIL",
            id="the header alone is not enough",
        ),
        pytest.param(
            Reply(status=302, headers={"Location": "/elsewhere"}), 4, "FAIL", id="redirect"
        ),
    ],
)
async def test_non_retryable_needs_489_and_the_header(
    client: Sdk,
    qstash: RunningServer,
    receiver: VerifyingReceiver,
    reply: Reply,
    attempts: int,
    state: str,
) -> None:
    receiver.script("/n", *[reply] * 4)
    schedule_id = await make_schedule(client, receiver.url("/n"), "0 0 1 1 *")
    message_id = await qstash.fire(schedule_id)
    outcome = await qstash.wait_for_message(message_id)
    assert (outcome["state"], outcome["attempts"]) == (state, attempts)
    assert len(receiver.at("/n")) == attempts
    assert len(receiver.at("/elsewhere")) == 0


async def test_retry_waits_follow_retry_after_then_the_expression(
    client: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    receiver.script(
        "/w",
        Reply(status=429, headers={"Retry-After": "20"}),
        Reply(status=500),
        Reply(status=200),
    )
    await qstash.set_settings(backoff_factor=0.01)  # 20 s -> 0.2 s of real waiting
    schedule_id = await make_schedule(
        client, receiver.url("/w"), "0 0 1 1 *", retry_delay="1000 * (1 + retried)"
    )
    message_id = await qstash.fire(schedule_id)
    await qstash.wait_for_message(message_id)
    attempts = await qstash.deliveries(message_id=message_id)
    assert [a.get("nextRetrySeconds") for a in attempts] == [20.0, 2.0, None]
    gaps = [later["startedAt"] - earlier["finishedAt"] for earlier, later in pairwise(attempts)]
    assert gaps[0] >= 200  # ms: Retry-After x factor
    assert gaps[1] >= 20  # ms: the expression's 2 s for retried=1, x factor


async def test_duplicate_delivery_reuses_the_message_id(
    client: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    await qstash.duplicate_deliveries(1)
    schedule_id = await make_schedule(client, receiver.url("/dup"), "0 0 1 1 *")
    first = await qstash.fire(schedule_id)
    second = await qstash.fire(schedule_id)
    assert await qstash.settle()
    ids = [r.header("Upstash-Message-Id") for r in receiver.at("/dup")]
    assert sorted(ids) == sorted([first, first, second])
    duplicates = [d for d in await qstash.deliveries() if d["duplicate"]]
    assert [d["messageId"] for d in duplicates] == [first]


async def test_concurrent_duplicates(
    client: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    await qstash.duplicate_deliveries(None, concurrent=True)
    receiver.script("/c", Reply(delay=0.5), Reply(delay=0.5))
    schedule_id = await make_schedule(client, receiver.url("/c"), "0 0 1 1 *")
    message_id = await qstash.fire(schedule_id)
    outcome = await qstash.wait_for_message(message_id)
    assert (outcome["state"], outcome["attempts"]) == ("SUCCESS", 2)
    first, second = receiver.at("/c")
    assert second.arrived - first.arrived < 0.5  # the second came before the first was answered
    assert first.header("Upstash-Message-Id") == second.header("Upstash-Message-Id") == message_id


async def test_dropped_response_means_a_retry_after_success(
    client: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    await qstash.drop_responses(1)
    schedule_id = await make_schedule(client, receiver.url("/drop"), "0 0 1 1 *")
    message_id = await qstash.fire(schedule_id)
    outcome = await qstash.wait_for_message(message_id)
    assert outcome["state"] == "SUCCESS"
    attempts = await qstash.deliveries(message_id=message_id)
    assert [(a["status"], a["outcome"], a["retried"]) for a in attempts] == [
        (200, "dropped", 0),
        (200, "success", 1),
    ]
    assert [r.header("Upstash-Retried") for r in receiver.at("/drop")] == ["0", "1"]


async def test_latency_is_added_before_each_attempt(
    client: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    await qstash.delay_deliveries(0.25, count=1)
    schedule_id = await make_schedule(client, receiver.url("/slow"), "0 0 1 1 *")
    started = time.monotonic()
    message_id = await qstash.fire(schedule_id)
    await qstash.wait_for_message(message_id)
    assert time.monotonic() - started >= 0.25


async def test_attempt_timeout_is_a_failure(
    client: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    receiver.script("/t", Reply(delay=1.6))
    schedule_id = await make_schedule(client, receiver.url("/t"), "0 0 1 1 *", timeout=1, retries=1)
    message_id = await qstash.fire(schedule_id)
    outcome = await qstash.wait_for_message(message_id)
    attempts = await qstash.deliveries(message_id=message_id)
    assert [(a["status"], a["error"]) for a in attempts] == [(None, "timeout"), (200, None)]
    assert outcome["state"] == "SUCCESS"


async def test_connection_refused_is_retried(client: Sdk, qstash: RunningServer) -> None:
    schedule_id = await make_schedule(client, "http://127.0.0.1:9/closed", "0 0 1 1 *", retries=1)
    message_id = await qstash.fire(schedule_id)
    outcome = await qstash.wait_for_message(message_id)
    attempts = await qstash.deliveries(message_id=message_id)
    assert (outcome["state"], [a["status"] for a in attempts]) == ("FAIL", [None, None])
    assert all(a["error"] and "Connect" in a["error"] for a in attempts)


async def test_method_binary_body_and_no_content_type(
    client: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    body = b"\x00\xff binary \xfe"
    schedule_id = await make_schedule(
        client, receiver.url("/bin"), "0 0 1 1 *", method="PUT", body=body
    )
    await qstash.fire(schedule_id)
    assert await qstash.settle()
    [request] = receiver.at("/bin")
    assert (request.method, request.body, request.header("Content-Type")) == ("PUT", body, None)
    assert (request.own_verified, request.sdk_verified) == (True, None)  # the SDK cannot: not UTF-8


async def test_get_delivery_with_empty_body(
    client: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    schedule_id = await make_schedule(client, receiver.url("/get"), "0 0 1 1 *", method="GET")
    await qstash.fire(schedule_id)
    assert await qstash.settle()
    [request] = receiver.at("/get")
    assert (request.method, request.body, request.sdk_verified) == ("GET", b"", True)


async def test_schedule_delay_postpones_each_message(
    client: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    await qstash.set_settings(backoff_factor=0.01)  # 30 s -> 0.3 s
    schedule_id = await make_schedule(client, receiver.url("/late"), "0 * * * *", delay=30)
    started = time.monotonic()
    fired = await qstash.advance(30)
    [outcome] = await qstash.messages(schedule_id=schedule_id)
    assert outcome["notBefore"] == fired[0]["tick"] + 30_000
    await qstash.wait_for_message(fired[0]["messageId"])
    assert time.monotonic() - started >= 0.3


async def test_rotation_signs_with_the_new_current_key(
    client: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    old_next = qstash.next_key
    await client.call("signing_key", "rotate")
    receiver.use_keys(qstash.current_key, qstash.next_key)
    assert qstash.current_key == old_next
    schedule_id = await make_schedule(client, receiver.url("/rot"), "0 0 1 1 *")
    await qstash.fire(schedule_id)
    assert await qstash.settle()
    [request] = receiver.at("/rot")
    token = request.header("Upstash-Signature")
    assert token is not None
    jwt.decode(token, old_next, algorithms=["HS256"], options={"verify_exp": False})


async def test_a_late_wake_fires_only_the_latest_tick(
    client: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    """What the real-clock loop does after a stall: one delivery, for the latest tick."""
    schedule_id = await make_schedule(client, receiver.url("/late-wake"))
    core = qstash.core
    driven = core.clock
    assert isinstance(driven, clock.DrivenClock)
    driven.set(TOP + timedelta(minutes=3, seconds=5))  # behind the scheduler's back
    fired = core.scheduler.process(driven.now())
    assert [(f.schedule_id, f.tick_ms) for f in fired] == [(schedule_id, TOP_MS + 3 * MINUTE_MS)]
    assert core.scheduler.process(driven.now()) == []
    assert await qstash.settle()


@pytest.mark.parametrize(
    ("options", "expect_iat_driven", "nbf"),
    [
        pytest.param({"signing_clock": "server"}, True, "zero", id="server clock, nbf=0"),
        pytest.param({"not_before": "iat"}, False, "iat", id="wall clock, nbf=iat"),
    ],
)
async def test_token_time_options(
    options: dict[str, str], expect_iat_driven: bool, nbf: str
) -> None:
    far = START + timedelta(days=30)
    async with RunningServer(start_time=far, **options) as server:
        own = Sdk("async", server.token, server.url)
        try:
            schedule_id = await make_schedule(
                own, "http://127.0.0.1:9/nowhere", "0 0 1 1 *", retries=0
            )
            message_id = await server.fire(schedule_id)
            await server.wait_for_message(message_id)
            [attempt] = await server.deliveries(message_id=message_id)
        finally:
            await own.close()
        token = header(attempt, "Upstash-Signature")
        assert token is not None
        claims = jwt.decode(
            token,
            server.current_key,
            algorithms=["HS256"],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    expected_iat = int(far.timestamp()) if expect_iat_driven else int(time.time())
    assert abs(claims["iat"] - expected_iat) <= 2
    assert claims["nbf"] == (claims["iat"] if nbf == "iat" else 0)
