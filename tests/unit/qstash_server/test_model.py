"""Requests to records to JSON: the wire format, without a server."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from qstash.schedule import prepare_schedule_headers

from qstash_server import model

DESTINATION = "https://example.com/api/hook"


def sdk_headers(**options: Any) -> model.Headers:
    """What the official SDK sends for ``schedule.create(**options)`` (its own function)."""
    defaults: dict[str, Any] = {
        "cron": "* * * * *",
        "content_type": None,
        "method": None,
        "headers": None,
        "callback_headers": None,
        "failure_callback_headers": None,
        "retries": None,
        "retry_delay": None,
        "callback": None,
        "failure_callback": None,
        "delay": None,
        "timeout": None,
        "schedule_id": None,
        "queue": None,
        "flow_control": None,
        "label": None,
        "redact": None,
    }
    return tuple(prepare_schedule_headers(**{**defaults, **options}).items())


def parse(
    headers: model.Headers, *, body: bytes = b"", destination: str = DESTINATION
) -> model.ScheduleRequest:
    return model.parse_schedule_request(
        destination=destination, headers=headers, body=body, caller_ip="203.0.113.7"
    )


def error_of(headers: model.Headers, destination: str = DESTINATION) -> tuple[int, str]:
    with pytest.raises(model.ApiError) as caught:
        parse(headers, destination=destination)
    return caught.value.status, caught.value.message


# -- request targets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rest", "destination", "query_headers", "token"),
    [
        pytest.param("https://example.com/j", "https://example.com/j", (), None, id="plain"),
        pytest.param("https://e.com/a//b", "https://e.com/a//b", (), None, id="double slash kept"),
        pytest.param(
            "https://e.com/h?x=1&y=2", "https://e.com/h?x=1&y=2", (), None, id="query kept"
        ),
        pytest.param(
            "https://e.com/h?x=1&qstash_token=t%2B1&y=2",
            "https://e.com/h?x=1&y=2",
            (),
            "t+1",
            id="token taken off",
        ),
        pytest.param(
            "https://e.com/h?Upstash-Retries=5&z=%20",
            "https://e.com/h?z=%20",
            (("upstash-retries", "5"),),
            None,
            id="upstash keys become headers, raw encoding stays",
        ),
        pytest.param(
            "https://e.com/h?upstash-delay=10s",
            "https://e.com/h",
            (("upstash-delay", "10s"),),
            None,
            id="only config",
        ),
    ],
)
def test_split_target(
    rest: str, destination: str, query_headers: model.Headers, token: str | None
) -> None:
    assert model.split_target(rest) == model.Target(destination, query_headers, token)


def test_query_configuration_acts_only_without_the_header() -> None:
    merged = model.merge_query_headers(
        (("Upstash-Retries", "1"),), (("upstash-retries", "9"), ("upstash-delay", "5s"))
    )
    assert merged == (("Upstash-Retries", "1"), ("upstash-delay", "5s"))


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        pytest.param("x-tenant-id", "X-Tenant-Id", id="lower"),
        pytest.param("X-TENANT", "X-Tenant", id="upper"),
        pytest.param("content-type", "Content-Type", id="content type"),
        pytest.param("x_under", "X_under", id="underscore is not a separator"),
        pytest.param("bad name", "bad name", id="invalid token unchanged"),
    ],
)
def test_canonical_header(name: str, canonical: str) -> None:
    assert model.canonical_header(name) == canonical


# -- cron --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "expression", "zone"),
    [
        pytest.param("*/5 * * * *", "*/5 * * * *", "UTC", id="utc default"),
        pytest.param(
            "CRON_TZ=America/New_York 0 4 * * *", "0 4 * * *", "America/New_York", id="cron tz"
        ),
        pytest.param(
            "TZ=Europe/Berlin  30 2 * * 1-5", "30 2 * * 1-5", "Europe/Berlin", id="tz alias"
        ),
        pytest.param("@daily", "0 0 * * *", "UTC", id="macro"),
        pytest.param("CRON_TZ=Asia/Tokyo @hourly", "0 * * * *", "Asia/Tokyo", id="zone and macro"),
    ],
)
def test_cron_accepted(cron: str, expression: str, zone: str) -> None:
    schedule = model.parse_cron(cron)
    assert (schedule.expression, schedule.time_zone) == (expression, zone)


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        pytest.param("", "Invalid cron expression empty spec string", id="empty (QStash's text)"),
        pytest.param("   ", "Invalid cron expression empty spec string", id="blank"),
        pytest.param(
            "CRON_TZ=UTC",
            # robfig panics on this (it slices up to a space that is not there); QStash's answer
            # is unknown, so the server says what is wrong.
            "Invalid cron expression the time zone prefix of 'CRON_TZ=UTC' is not followed by "
            "a space and a schedule",
            id="zone only",
        ),
        pytest.param(
            "@DAILY", "Invalid cron expression unrecognized descriptor: @DAILY", id="upper case"
        ),
        pytest.param(
            "CRON_TZ=Mars/Olympus 0 * * * *",
            "Invalid cron expression provided bad location Mars/Olympus: "
            "unknown time zone Mars/Olympus",
            id="unknown zone",
        ),
        pytest.param(
            "0 0 * * * *",
            "Invalid cron expression expected exactly 5 fields, found 6: [0 0 * * * *]",
            id="seconds field",
        ),
        pytest.param(
            "* * *",
            "Invalid cron expression expected exactly 5 fields, found 3: [* * *]",
            id="too few",
        ),
        pytest.param(
            "@reboot", "Invalid cron expression unrecognized descriptor: @reboot", id="descriptor"
        ),
    ],
)
def test_cron_refused_with_qstash_texts(cron: str, message: str) -> None:
    with pytest.raises(model.ApiError) as caught:
        model.parse_cron(cron)
    assert (caught.value.status, caught.value.message) == (400, message)


@pytest.mark.parametrize(
    "cron",
    [
        pytest.param("61 * * * *", id="minute out of range"),
        pytest.param("0 0 30 2 *", id="never fires"),
        pytest.param("0 0 L * *", id="croniter extension"),
    ],
)
def test_invalid_cron_keeps_qstash_prefix(cron: str) -> None:
    with pytest.raises(model.ApiError) as caught:
        model.parse_cron(cron)
    assert caught.value.status == 400
    assert caught.value.message.startswith("Invalid cron expression ")


def test_missing_cron_header_is_the_empty_spec_error() -> None:
    assert error_of(()) == (400, "Invalid cron expression empty spec string")


# -- ids, destinations, options ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule_id", "valid"),
    [
        pytest.param("prod.default.nightly", True, id="operator style"),
        pytest.param("A-z_0.9", True, id="every allowed class"),
        pytest.param("ns/name", False, id="slash"),
        pytest.param("with space", False, id="space"),
        pytest.param("ümlaut", False, id="non ascii"),
        pytest.param("a:b", False, id="colon"),
    ],
)
def test_schedule_id_charset(schedule_id: str, valid: bool) -> None:
    headers = sdk_headers(schedule_id=schedule_id)
    if valid:
        assert parse(headers).schedule_id == schedule_id
    else:
        assert error_of(headers) == (400, model.INVALID_SCHEDULE_ID)


def test_blank_schedule_id_means_none() -> None:
    assert parse((*sdk_headers(), ("Upstash-Schedule-Id", " "))).schedule_id is None


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        pytest.param("example.com/hook", model.INVALID_SCHEME, id="no scheme"),
        pytest.param("ftp://example.com/x", model.INVALID_SCHEME, id="ftp"),
        pytest.param("my-url-group", model.INVALID_SCHEME, id="url group (unsupported)"),
        pytest.param(
            "https:///path", "invalid destination url: endpoint has no host", id="no host"
        ),
        pytest.param(
            "http://h:99999/", "invalid destination url: Port out of range 0-65535", id="bad port"
        ),
    ],
)
def test_destination_refused(destination: str, message: str) -> None:
    assert error_of(sdk_headers(), destination) == (400, message)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param("10s", 10, id="seconds"),
        pytest.param("5m", 300, id="minutes"),
        pytest.param("2h", 7200, id="hours"),
        pytest.param("1d10m", 87_000, id="combined"),
    ],
)
def test_durations(value: str, seconds: int) -> None:
    assert model.parse_duration(value, header="Upstash-Delay") == seconds


@pytest.mark.parametrize("value", ["10", "1.5s", "10 s", "-1s", "1w", ""])
def test_bad_durations(value: str) -> None:
    with pytest.raises(model.ApiError, match="invalid Upstash-Delay header"):
        model.parse_duration(value, header="Upstash-Delay")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        pytest.param(
            sdk_headers(retries=-1),
            "invalid Upstash-Retries header: '-1' is not a non-negative integer",
            id="negative retries",
        ),
        pytest.param(
            sdk_headers(method="TRACE"),
            "invalid Upstash-Method header: 'TRACE' is not one of DELETE, GET, PATCH, POST, PUT",
            id="method",
        ),  # type: ignore[arg-type]
        pytest.param(
            sdk_headers(retry_delay="2 ** retried"),
            "invalid Upstash-Retry-Delay header: unsupported operator; use + - * / and pow()",
            id="retry delay",
        ),
        pytest.param(
            sdk_headers(callback="example.com/cb"),
            "invalid callback url: endpoint has invalid scheme, add http:// or https://",
            id="callback scheme",
        ),
        pytest.param(
            sdk_headers(delay="soon"),
            "invalid Upstash-Delay header: 'soon' is not a duration such as 10s, 5m, 2h or 1d10m",
            id="delay",
        ),
        pytest.param(
            sdk_headers(flow_control={"key": "k", "parallelism": "x"}),
            "invalid Upstash-Flow-Control-Value header: 'x' is not a non-negative integer",
            id="flow control",
        ),  # type: ignore[typeddict-item]
    ],
)
def test_option_errors_name_the_header(headers: model.Headers, message: str) -> None:
    assert error_of(headers) == (400, message)


def test_every_sdk_option_is_parsed() -> None:
    request = parse(
        sdk_headers(
            cron="CRON_TZ=Europe/Berlin 0 3 * * *",
            content_type="application/json",
            method="PUT",
            headers={"X-Tenant": "t1", "upstash-forward-x-raw": "r", "n": 7},
            callback_headers={"Forward-X-Cb": "c", "Method": "PATCH"},
            failure_callback_headers={"Forward-X-Fail": "f", "Retries": "1"},
            retries=5,
            retry_delay="pow(2, retried) * 1000",
            callback="https://example.com/cb",
            failure_callback="https://example.com/fail",
            delay=30,
            timeout="2m",
            schedule_id="prod.ns.job",
            queue="q1",
            flow_control={"key": "fk", "parallelism": 2, "rate": 5, "period": 60},
            label="nightly",
            redact={"body": True, "header": ["Authorization"]},
        ),
        body=b'{"a": 1}',
    )
    settings = request.settings
    assert request.schedule_id == "prod.ns.job"
    assert request.cron_text == "CRON_TZ=Europe/Berlin 0 3 * * *"
    assert (request.schedule.expression, request.schedule.time_zone) == (
        "0 3 * * *",
        "Europe/Berlin",
    )
    assert settings.method == "PUT"
    assert settings.headers == (
        ("Content-Type", "application/json"),
        ("X-Tenant", "t1"),
        ("X-Raw", "r"),
        ("N", "7"),
    )
    assert settings.callback_headers == (("X-Cb", "c"),)
    assert settings.failure_callback_headers == (("X-Fail", "f"),)
    assert settings.callback_options == (("Method", "PATCH"),)
    assert settings.failure_callback_options == (("Retries", "1"),)
    assert settings.retries == 5
    assert settings.retry_delay is not None
    assert settings.retry_delay.text == "pow(2, retried) * 1000"
    assert (settings.delay, settings.timeout) == (30, 120)
    assert (settings.callback, settings.failure_callback) == (
        "https://example.com/cb",
        "https://example.com/fail",
    )
    assert settings.queue_name == "q1"
    assert settings.flow_control == model.FlowControl(key="fk", parallelism=2, rate=5, period=60)
    assert settings.label == "nightly"
    assert settings.redact_fields == "body,header[Authorization]"
    assert settings.body == b'{"a": 1}'
    assert settings.caller_ip == "203.0.113.7"
    assert ("Upstash-Queue-Name", "q1") in settings.source  # kept verbatim for persistence


def test_defaults_without_options() -> None:
    settings = parse(sdk_headers()).settings
    assert (settings.method, settings.retries, settings.headers, settings.flow_control) == (
        "POST",
        3,
        (),
        None,
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            "parallelism=2", model.FlowControl("k", 2, None, 1), id="period defaults to 1"
        ),
        pytest.param(
            "rate=5, period=1m", model.FlowControl("k", None, 5, 60), id="duration period"
        ),
        pytest.param("period=10", model.FlowControl("k", None, None, 10), id="bare seconds"),
        pytest.param(None, model.FlowControl("k", None, None, 1), id="key only"),
    ],
)
def test_flow_control(value: str | None, expected: model.FlowControl) -> None:
    assert model.parse_flow_control("k", value) == expected


def test_authorization_is_never_stored() -> None:
    source = model.keep_source_headers(
        (("Authorization", "Bearer secret"), ("Upstash-Cron", "* * * * *"), ("Host", "h"))
    )
    assert source == (("Upstash-Cron", "* * * * *"),)


# -- JSON ----------------------------------------------------------------------------------------


def record(**changes: Any) -> model.ScheduleRecord:
    request = parse(
        sdk_headers(
            cron="CRON_TZ=UTC */5 * * * *",
            content_type="text/plain",
            headers={"X-A": "1"},
            retries=2,
            flow_control={"key": "fk", "parallelism": 2},
            label="l",
        ),
        body=b"hello",
    )
    base = model.ScheduleRecord(
        schedule_id="s.1",
        cron_text=request.cron_text,
        schedule=request.schedule,
        settings=request.settings,
        created_at_ms=1_780_000_000_000,
        considered_until_ms=1_780_000_000_000,
    )
    return dataclasses.replace(base, **changes)


def test_schedule_json_shape() -> None:
    assert model.schedule_json(record(), next_schedule_time_ms=1_780_000_300_000) == {
        "scheduleId": "s.1",
        "cron": "CRON_TZ=UTC */5 * * * *",
        "createdAt": 1_780_000_000_000,
        "destination": DESTINATION,
        "method": "POST",
        "retries": 2,
        "isPaused": False,
        "header": {"Content-Type": ["text/plain"], "X-A": ["1"]},
        "body": "hello",
        "callerIP": "203.0.113.7",
        "flowControlKey": "fk",
        "parallelism": 2,
        "period": 1,
        "label": "l",
        "nextScheduleTime": 1_780_000_300_000,
    }


def test_schedule_json_history_and_binary_body() -> None:
    base = record()
    binary = dataclasses.replace(base.settings, body=b"\xff\x00")
    data = model.schedule_json(
        record(
            settings=binary,
            paused=True,
            last_schedule_time_ms=5,
            last_schedule_states=(("msg_1", "SUCCESS"),),
        ),
        next_schedule_time_ms=None,
    )
    assert data["bodyBase64"] == "/wA="
    assert "body" not in data
    assert (data["isPaused"], data["lastScheduleTime"], data["lastScheduleStates"]) == (
        True,
        5,
        {"msg_1": "SUCCESS"},
    )
    assert "nextScheduleTime" not in data
    assert model.decode_body(data) == b"\xff\x00"


def test_delivery_headers_order_and_precedence() -> None:
    settings = parse(
        sdk_headers(content_type="application/json", headers={"X-A": "1", "User-Agent": "evil"})
    ).settings
    assert model.delivery_headers(
        settings=settings,
        message_id="msg_1",
        schedule_id="s.1",
        retried=2,
        signature="jwt",
        region="EU-CENTRAL-1",
    ) == (
        ("Content-Type", "application/json"),
        ("X-A", "1"),
        ("User-Agent", "Upstash-QStash"),
        ("Upstash-Signature", "jwt"),
        ("Upstash-Message-Id", "msg_1"),
        ("Upstash-Retried", "2"),
        ("Upstash-Schedule-Id", "s.1"),
        ("Upstash-Caller-Ip", "203.0.113.7"),
        ("Upstash-Region", "EU-CENTRAL-1"),
    )


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        pytest.param("127.0.0.1", "loopback", id="v4 loopback"),
        pytest.param("::1", "loopback", id="v6 loopback"),
        pytest.param("10.1.2.3", "private", id="rfc1918"),
        pytest.param("192.168.0.10", "private", id="home network"),
        pytest.param("169.254.169.254", "private", id="link local (metadata)"),
        pytest.param("fe80::1%eth0", "private", id="v6 link local with zone"),
        pytest.param("93.184.215.14", None, id="public"),
        pytest.param("example.com", None, id="a name is not an address"),
    ],
)
def test_restricted_addresses(address: str, kind: str | None) -> None:
    assert model.restricted_address(address) == kind


def test_loopback_error_text_is_qstash_s() -> None:
    error = model.restricted_destination_error(["93.184.215.14", "127.0.0.1"])
    assert error is not None
    assert (error.status, error.message) == (
        400,
        "invalid destination url: endpoint resolves to a loopback address: 127.0.0.1",
    )


def test_publish_options() -> None:
    request = model.parse_publish_request(
        destination=DESTINATION,
        headers=(
            ("Upstash-Not-Before", "1780000000"),
            ("Upstash-Deduplication-Id", "d1"),
            ("Upstash-Content-Based-Deduplication", "True"),
        ),
        body=b"",
        caller_ip=None,
    )
    assert (
        request.not_before_s,
        request.deduplication_id,
        request.content_based_deduplication,
    ) == (1_780_000_000, "d1", True)


def test_new_ids_have_qstash_prefixes() -> None:
    key = model.new_signing_key()
    assert key.startswith("sig_")
    assert len(key) == 4 + 28
    assert model.new_id("msg_") != model.new_id("msg_")
