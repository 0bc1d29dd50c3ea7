"""The schedules API through the official SDK, sync and async: every method, every option."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from qstash.errors import DailyMessageLimitExceededError, QStashError, RateLimitExceededError
from qstash.message import FlowControlProperties
from qstash.schedule import Schedule, ScheduleState

from qstash_server import app, config, model
from qstash_server.app import make_app
from qstash_server.testing import RunningServer
from tests.qstash_server.conftest import START, TOP_MS, Sdk
from tests.qstash_server.receiver import Reply, VerifyingReceiver

START_MS = int(START.timestamp() * 1000)
HOUR_MS = 3_600_000


def every_option(destination: str) -> dict[str, Any]:
    """Every keyword ``schedule.create_json`` accepts, each set to a non-default value."""
    return {
        "destination": destination,
        "cron": "CRON_TZ=Europe/Berlin 0 12 * * *",
        "body": {"namespace": "ns", "name": "nightly", "uid": "u-1"},
        "method": "PUT",
        "headers": {"X-Tenant": "acme", "x-lower": "v"},
        "callback_headers": {"Forward-X-Cb": "cb", "Method": "POST"},
        "failure_callback_headers": {"Forward-X-Failed": "f"},
        "retries": 5,
        "retry_delay": "pow(2, retried) * 1000",
        "callback": "https://example.com/callback",
        "failure_callback": "https://example.com/failure",
        "delay": 25,
        "timeout": "2m",
        "schedule_id": "cluster.ns.nightly",
        "queue": "nightly-queue",
        "flow_control": {"key": "tenant-acme", "parallelism": 2, "rate": 10, "period": "1m"},
        "label": "nightly",
        "redact": {"body": True, "header": ["Authorization"]},
    }


def expected_schedule(destination: str, **changes: Any) -> Schedule:
    base = Schedule(
        schedule_id="cluster.ns.nightly",
        destination=destination,
        cron="CRON_TZ=Europe/Berlin 0 12 * * *",
        created_at=START_MS,
        body='{"namespace": "ns", "name": "nightly", "uid": "u-1"}',
        body_base64=None,
        method="PUT",
        headers={
            "Content-Type": ["application/json"],
            "X-Tenant": ["acme"],
            "X-Lower": ["v"],
        },
        callback_headers={"X-Cb": ["cb"]},
        failure_callback_headers={"X-Failed": ["f"]},
        retries=5,
        retry_delay_expression="pow(2, retried) * 1000",
        callback="https://example.com/callback",
        failure_callback="https://example.com/failure",
        queue="nightly-queue",
        delay=25,
        timeout=120,
        caller_ip="127.0.0.1",
        paused=False,
        flow_control=FlowControlProperties(key="tenant-acme", parallelism=2, rate=10, period=60),
        last_schedule_time=None,
        next_schedule_time=TOP_MS,  # 12:00 in Berlin (CEST) is 10:00 UTC
        last_schedule_states=None,
        error=None,
        label="nightly",
    )
    for name, value in changes.items():
        setattr(base, name, value)
    return base


def status_of(error: QStashError) -> tuple[int, str]:
    """Split the SDK's "Request failed with status: <code>, body: <text>"."""
    text = str(error)
    prefix = "Request failed with status: "
    assert text.startswith(prefix), text
    code, _, body = text[len(prefix) :].partition(", body: ")
    return int(code), body


async def test_every_option_round_trips_through_get_and_list(sdk: Sdk) -> None:
    destination = "https://example.com/api/qstash/webhook?cluster=c1&x=a%20b"
    schedule_id = await sdk.schedule("create_json", **every_option(destination))
    assert schedule_id == "cluster.ns.nightly"
    expected = expected_schedule(destination)
    assert await sdk.schedule("get", schedule_id) == expected
    assert await sdk.schedule("list") == [expected]


async def test_options_not_acted_on_are_stored(sdk: Sdk, qstash: RunningServer) -> None:
    await sdk.schedule("create_json", **every_option("https://example.com/hook"))
    record = await qstash.schedule_record("cluster.ns.nightly")
    assert record["callbackOptions"] == {"Method": ["POST"]}
    assert record["redactFields"] == "body,header[Authorization]"
    stored = {name.lower(): value for name, value in record["stored"]["headers"]}
    assert stored["upstash-queue-name"] == "nightly-queue"
    assert stored["upstash-flow-control-value"] == "parallelism=2, rate=10, period=1m"
    assert "authorization" not in stored


async def test_plain_create_with_a_binary_body(sdk: Sdk) -> None:
    schedule_id = await sdk.schedule(
        "create",
        destination="https://example.com/bin",
        cron="*/15 * * * *",
        body=b"\x00\xff\xfe",
        content_type="application/octet-stream",
    )
    schedule = await sdk.schedule("get", schedule_id)
    assert schedule_id.startswith("scd_")
    assert (schedule.body, schedule.body_base64) == (None, "AP/+")
    assert (schedule.method, schedule.retries, schedule.paused) == ("POST", 3, False)
    assert schedule.headers == {"Content-Type": ["application/octet-stream"]}


async def test_minimal_create_reads_back_defaults(sdk: Sdk) -> None:
    schedule_id = await sdk.schedule(
        "create", destination="https://example.com/x", cron="0 * * * *"
    )
    assert await sdk.schedule("get", schedule_id) == Schedule(
        schedule_id=schedule_id,
        destination="https://example.com/x",
        cron="0 * * * *",
        created_at=START_MS,
        body=None,
        body_base64=None,
        method="POST",
        headers=None,
        callback_headers=None,
        failure_callback_headers=None,
        retries=3,
        retry_delay_expression=None,
        callback=None,
        failure_callback=None,
        queue=None,
        delay=None,
        timeout=None,
        caller_ip="127.0.0.1",
        paused=False,
        flow_control=None,
        last_schedule_time=None,
        next_schedule_time=TOP_MS,
        last_schedule_states=None,
        error=None,
        label=None,
    )


async def test_without_an_id_every_create_is_a_new_schedule(sdk: Sdk) -> None:
    first = await sdk.schedule("create", destination="https://example.com/x", cron="* * * * *")
    second = await sdk.schedule("create", destination="https://example.com/x", cron="* * * * *")
    assert first != second
    assert sorted(s.schedule_id for s in await sdk.schedule("list")) == sorted([first, second])


async def test_upsert_replaces_settings_and_keeps_created_paused_and_history(
    sdk: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    destination = receiver.url("/hook")
    options = every_option(destination)
    options["cron"] = "* * * * *"
    await sdk.schedule("create_json", **options)
    fired = await qstash.advance(30)  # the 10:00 tick
    assert [f["tick"] for f in fired] == [TOP_MS]
    assert await qstash.settle()
    await sdk.schedule("pause", "cluster.ns.nightly")
    await qstash.advance(15)

    new_destination = receiver.url("/other")
    assert (
        await sdk.schedule(
            "create",
            destination=new_destination,
            cron="*/5 * * * *",
            schedule_id="cluster.ns.nightly",
        )
        == "cluster.ns.nightly"
    )
    schedule = await sdk.schedule("get", "cluster.ns.nightly")
    message_id = fired[0]["messageId"]
    assert schedule == Schedule(
        schedule_id="cluster.ns.nightly",
        destination=new_destination,
        cron="*/5 * * * *",
        created_at=START_MS,  # kept
        body=None,
        body_base64=None,
        method="POST",  # everything not sent is back to its default
        headers=None,
        callback_headers=None,
        failure_callback_headers=None,
        retries=3,
        retry_delay_expression=None,
        callback=None,
        failure_callback=None,
        queue=None,
        delay=None,
        timeout=None,
        caller_ip="127.0.0.1",
        paused=True,  # kept
        flow_control=None,
        last_schedule_time=TOP_MS,  # kept
        next_schedule_time=TOP_MS + 5 * 60_000,
        last_schedule_states={message_id: ScheduleState.SUCCESS},  # kept
        error=None,
        label=None,
    )


async def test_delete(sdk: Sdk) -> None:
    schedule_id = await sdk.schedule(
        "create", destination="https://example.com/x", cron="* * * * *"
    )
    assert await sdk.schedule("delete", schedule_id) is None
    assert await sdk.schedule("list") == []
    with pytest.raises(QStashError) as caught:
        await sdk.schedule("delete", schedule_id)
    assert status_of(caught.value) == (404, '{"error":"schedule not found"}')


async def test_get_unknown(sdk: Sdk) -> None:
    with pytest.raises(QStashError) as caught:
        await sdk.schedule("get", "no.such.schedule")
    assert status_of(caught.value) == (404, '{"error":"schedule not found"}')


async def test_pause_and_resume_are_idempotent(sdk: Sdk) -> None:
    schedule_id = await sdk.schedule(
        "create", destination="https://example.com/x", cron="0 * * * *"
    )
    for _ in range(2):
        await sdk.schedule("pause", schedule_id)
        assert (await sdk.schedule("get", schedule_id)).paused is True
    for _ in range(2):
        await sdk.schedule("resume", schedule_id)
        assert (await sdk.schedule("get", schedule_id)).paused is False
    for method in ("pause", "resume"):
        with pytest.raises(QStashError) as caught:
            await sdk.schedule(method, "missing")
        assert status_of(caught.value)[0] == 404


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"cron": ""}, "Invalid cron expression empty spec string", id="empty cron"),
        pytest.param(
            {"cron": "0 0 * * * *"},
            "Invalid cron expression expected exactly 5 fields, found 6: [0 0 * * * *]",
            id="seconds field",
        ),
        pytest.param(
            {"schedule_id": "ns/name"}, model.INVALID_SCHEDULE_ID, id="slash in schedule id"
        ),
        pytest.param(
            {"destination": "example.com/hook"},
            "invalid destination url: endpoint has invalid scheme, add http:// or https://",
            id="destination without scheme",
        ),
        pytest.param(
            {"retry_delay": "__import__('os')"},
            "invalid Upstash-Retry-Delay header: unknown function; use one of abs, ceil, exp, "
            "floor, max, min, pow, round, sqrt",
            id="unsafe retry delay",
        ),
    ],
)
async def test_validation_errors_have_qstash_texts(
    sdk: Sdk, options: dict[str, Any], message: str
) -> None:
    arguments = {"destination": "https://example.com/x", "cron": "* * * * *", **options}
    with pytest.raises(QStashError) as caught:
        await sdk.schedule("create", **arguments)
    assert status_of(caught.value) == (400, f'{{"error":"{message}"}}')


@pytest.mark.parametrize(
    ("destination", "address"),
    [
        pytest.param("http://127.0.0.1:9/hook", "127.0.0.1", id="loopback literal"),
        pytest.param("http://localhost:9/hook", None, id="name resolving to loopback"),
        pytest.param("http://10.0.0.8/hook", "10.0.0.8", id="private"),
    ],
)
async def test_strict_mode_refuses_local_destinations(
    sdk: Sdk, qstash: RunningServer, destination: str, address: str | None
) -> None:
    await qstash.set_settings(strict_destinations=True)
    with pytest.raises(QStashError) as caught:
        await sdk.schedule("create", destination=destination, cron="* * * * *")
    status, body = status_of(caught.value)
    assert status == 400
    kind = "private" if address == "10.0.0.8" else "loopback"
    prefix = f'{{"error":"invalid destination url: endpoint resolves to a {kind} address: '
    assert body.startswith(prefix)
    if address is not None:
        assert body == f'{prefix}{address}"}}'
    await qstash.set_settings(strict_destinations=False)
    assert await sdk.schedule("create", destination=destination, cron="* * * * *")


async def test_wrong_token_is_401(qstash: RunningServer) -> None:
    bad = Sdk("async", "not-the-token", qstash.url)
    try:
        with pytest.raises(QStashError) as caught:
            await bad.schedule("list")
    finally:
        await bad.close()
    assert status_of(caught.value) == (401, '{"error":"unauthorized"}')


async def test_query_token_and_go_sdk_path_casing(qstash: RunningServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{qstash.url}/v2/Schedules/https://example.com/a//b?keep=1&qstash_token={qstash.token}"
            "&upstash-retries=7",
            headers={"Upstash-Cron": "* * * * *", "Upstash-Schedule-Id": "go.style"},
        ) as response:
            assert (response.status, await response.json()) == (200, {"scheduleId": "go.style"})
        async with session.get(
            f"{qstash.url}/v2/Schedules/go.style", params={"qstash_token": qstash.token}
        ) as response:
            data = await response.json()
        assert (data["destination"], data["retries"]) == ("https://example.com/a//b?keep=1", 7)
        async with session.post(  # the docs' POST form of pause
            f"{qstash.url}/v2/schedules/go.style/pause",
            headers={"Authorization": f"Bearer {qstash.token}"},
        ) as response:
            assert response.status == 200
    assert (await qstash.schedule_record("go.style"))["schedule"]["isPaused"] is True


async def test_signing_keys(sdk: Sdk, qstash: RunningServer) -> None:
    keys = await sdk.call("signing_key", "get")
    assert (keys.current, keys.next) == (qstash.current_key, qstash.next_key)
    rotated = await sdk.call("signing_key", "rotate")
    assert rotated.current == keys.next
    assert rotated.next.startswith("sig_")
    assert rotated.next != keys.next
    assert qstash.current_key == keys.next


async def test_api_faults_reach_the_sdk_as_qstash_errors(sdk: Sdk, qstash: RunningServer) -> None:
    await qstash.fail_api(2, status=503, routes=[app.SCHEDULES_LIST])
    for _ in range(2):
        with pytest.raises(QStashError) as caught:
            await sdk.schedule("list")
        assert status_of(caught.value) == (503, '{"error":"internal server error (injected)"}')
    assert await sdk.schedule("list") == []


async def test_daily_rate_limit_reaches_the_sdk(sdk: Sdk, qstash: RunningServer) -> None:
    await qstash.rate_limit_api(1, family="daily", limit=1000)
    with pytest.raises(DailyMessageLimitExceededError) as caught:
        await sdk.schedule("list")
    assert (caught.value.limit, caught.value.remaining) == ("1000", "0")
    assert caught.value.reset is not None
    assert int(caught.value.reset) > START.timestamp()


async def test_burst_rate_limit_reaches_the_sdk(sdk: Sdk, qstash: RunningServer) -> None:
    await qstash.rate_limit_api(1, family="burst", limit=3, routes=[app.SCHEDULES_CREATE])
    with pytest.raises(RateLimitExceededError) as caught:
        await sdk.schedule("create", destination="https://example.com/x", cron="* * * * *")
    assert (caught.value.limit, caught.value.remaining, caught.value.reset) == (
        "3",
        "0",
        str(int(START.timestamp()) + 1),
    )
    assert await sdk.schedule("create", destination="https://example.com/x", cron="* * * * *")


async def test_api_calls_are_counted_by_route(sdk: Sdk, qstash: RunningServer) -> None:
    schedule_id = await sdk.schedule(
        "create", destination="https://example.com/x", cron="* * * * *"
    )
    for _ in range(3):
        await sdk.schedule("get", schedule_id)
    await sdk.schedule("list")
    await sdk.schedule("pause", schedule_id)
    with pytest.raises(QStashError):
        await sdk.schedule("get", "missing")
    assert await qstash.api_calls() == {
        "schedules.create": 1,
        "schedules.get": 4,
        "schedules.list": 1,
        "schedules.pause": 1,
    }
    calls = await qstash.api_call_log()
    assert [c["status"] for c in calls] == [200, 200, 200, 200, 200, 200, 404]
    await qstash.reset_api_calls()
    assert await qstash.api_calls() == {}


async def test_publish_delivers_and_deduplicates(
    sdk: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    destination = receiver.url("/once?run=1")
    first = await sdk.call(
        "message", "publish_json", url=destination, body={"a": 1}, deduplication_id="d-1"
    )
    second = await sdk.call(
        "message", "publish_json", url=destination, body={"a": 1}, deduplication_id="d-1"
    )
    assert first.message_id.startswith("msg_")
    assert first.deduplicated is False
    assert (second.message_id, second.deduplicated) == (first.message_id, True)
    [delivery] = await qstash.wait_for_deliveries(1, message_id=first.message_id)
    assert (delivery["url"], delivery["scheduleId"], delivery["outcome"]) == (
        destination,
        None,
        "success",
    )
    assert await qstash.settle()
    [request] = receiver.at("/once")
    assert request.body == b'{"a": 1}'
    assert request.header("Upstash-Schedule-Id") is None


async def test_message_get_and_cancel(sdk: Sdk, qstash: RunningServer) -> None:
    await qstash.set_settings(backoff_factor=1.0)  # make the delay real: a message to look at
    published = await sdk.call(
        "message", "publish", url="https://example.com/later", body="x", delay="1h"
    )
    message = await sdk.call("message", "get", published.message_id)
    assert (message.message_id, message.url, message.max_retries, message.body) == (
        published.message_id,
        "https://example.com/later",
        3,
        "x",
    )
    assert message.not_before == START_MS + HOUR_MS
    await sdk.call("message", "cancel", published.message_id)
    outcome = await qstash.wait_for_message(published.message_id)
    assert (outcome["state"], outcome["attempts"]) == ("CANCELLED", 0)
    with pytest.raises(QStashError) as caught:
        await sdk.call("message", "get", published.message_id)
    assert status_of(caught.value) == (404, '{"error":"message not found"}')


async def test_last_schedule_states_report_failure(
    sdk: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    receiver.script("/fails", Reply(status=500))
    schedule_id = await sdk.schedule(
        "create", destination=receiver.url("/fails"), cron="0 * * * *", retries=0
    )
    message_id = await qstash.fire(schedule_id)
    outcome = await qstash.wait_for_message(message_id)
    assert (outcome["state"], outcome["attempts"]) == ("FAIL", 1)
    schedule = await sdk.schedule("get", schedule_id)
    assert schedule.last_schedule_states == {message_id: ScheduleState.FAIL}
    assert schedule.last_schedule_time == START_MS


async def test_oversized_message_is_refused(qstash: RunningServer) -> None:
    client = Sdk("async", qstash.token, qstash.url)
    try:
        with pytest.raises(QStashError) as caught:
            await client.schedule(
                "create",
                destination="https://example.com/x",
                cron="* * * * *",
                body=b"x" * (1024 * 1024 + 1),
            )
    finally:
        await client.close()
    assert status_of(caught.value) == (
        413,
        '{"error":"message size exceeds the limit of 1048576 bytes"}',
    )


async def test_schedule_quota_is_412(sdk: Sdk) -> None:
    async with RunningServer(start_time=START, max_schedules=1) as small:
        client = Sdk(sdk.kind, small.token, small.url)
        try:
            await client.schedule(
                "create", destination="https://e.com/1", cron="* * * * *", schedule_id="a"
            )
            await client.schedule(
                "create", destination="https://e.com/2", cron="* * * * *", schedule_id="a"
            )
            with pytest.raises(QStashError) as caught:
                await client.schedule("create", destination="https://e.com/3", cron="* * * * *")
        finally:
            await client.close()
    assert status_of(caught.value) == (
        412,
        '{"error":"exceeded the maximum number of schedules allowed"}',
    )


async def test_controls_are_absent_unless_enabled() -> None:
    server = TestServer(make_app(config.ServerConfig(port=0)))
    async with TestClient(server) as http:
        response = await http.get("/__control/clock")
        assert (response.status, await response.json()) == (404, {"error": "not found"})
        response = await http.get(
            "/v2/keys", headers={"Authorization": f"Bearer {config.DEV_TOKEN}"}
        )
        assert await response.json() == {
            "current": config.DEV_CURRENT_SIGNING_KEY,
            "next": config.DEV_NEXT_SIGNING_KEY,
        }
