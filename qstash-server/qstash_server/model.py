"""Schedules and messages as the QStash-compatible server keeps them: request in, JSON out. Pure.

Everything here is a function of its arguments (the request's raw target, headers and body, the
time passed in), so the wire format can be table-tested without a server. The facts come from the
wire reference (``/work/shared/reference/qstash-wire-reference.md``), cited by section.

What a create request becomes (section 2.1):

- the destination is the raw request target after ``/v2/schedules/``, with its query string; query
  keys named ``qstash_token`` or ``upstash-*`` are configuration and are taken off it (the
  ``upstash-*`` ones act as the header of the same name when that header is absent);
- ``Upstash-Forward-<Name>`` and ``Content-Type`` become the headers sent to the destination,
  under Go-canonical names (``X-Tenant``), because the real server is written in Go and its schedule
  JSON shows canonical keys (section 3.1);
- ``Upstash-Callback-Forward-<Name>`` (and the failure-callback family) become callback headers;
  other ``Upstash-Callback-<Option>`` headers are callback options, kept but not acted on (the
  Python SDK sends ``callback_headers={"X": ...}`` as ``Upstash-Callback-X``, section 2.1);
- every ``Upstash-*`` header and ``Content-Type`` are kept verbatim in
  :attr:`DeliverySettings.source`, so what the server does not act on (queues, flow control,
  labels, redaction, callbacks) is still stored, persisted and reported, and a restart rebuilds
  the same settings from it.

Error texts are QStash's where the reference records them (section 2.1: the empty cron, the
destination scheme, the loopback refusal); elsewhere they follow the same shape, name the
offending header (QStash includes the field name since December 2024), and are inferred.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import ipaddress
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from qstash_operator.domain import cron
from qstash_operator.domain.errors import InvalidSpecError
from qstash_server import backoff

Headers = tuple[tuple[str, str], ...]
"""Header pairs in request order; a name may repeat (HTTP allows it, QStash keeps lists)."""

HTTP_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
DEFAULT_METHOD: Final = "POST"
DEFAULT_RETRIES: Final = 3
"""QStash's default: up to four attempts in all (section 3.2)."""
DEFAULT_FLOW_CONTROL_PERIOD: Final = 1
"""Seconds; qstash-py's own test expects period 1 when only parallelism is given (section 2.3)."""
USER_AGENT: Final = "Upstash-QStash"
SCHEDULE_ID_PREFIX: Final = "scd_"
MESSAGE_ID_PREFIX: Final = "msg_"
JWT_ID_PREFIX: Final = "jwt_"
SIGNING_KEY_PREFIX: Final = "sig_"
SIGNING_KEY_LENGTH: Final = 28
"""Characters after ``sig_`` in a QStash signing key (section 4.1)."""
ID_LENGTH: Final = 24
"""Random characters in generated ids; QStash's are opaque, 24 base58 characters is ~140 bits."""
_BASE58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

# -- error texts ---------------------------------------------------------------------------------

CRON_ERROR_PREFIX: Final = "Invalid cron expression "
EMPTY_CRON: Final = CRON_ERROR_PREFIX + "empty spec string"
INVALID_SCHEME: Final = (
    "invalid destination url: endpoint has invalid scheme, add http:// or https://"
)
INVALID_SCHEDULE_ID: Final = (
    "invalid schedule id: only alphanumeric characters, dashes, underscores and dots are allowed"
)
SCHEDULE_NOT_FOUND: Final = "schedule not found"
MESSAGE_NOT_FOUND: Final = "message not found"
UNAUTHORIZED: Final = "unauthorized"


class ApiError(Exception):
    """An answer other than success: the status and QStash's ``{"error": ...}`` text."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"{status}: {message}")

    def body(self) -> dict[str, str]:
        return {"error": self.message}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


# -- ids -------------------------------------------------------------------------------------------

_SCHEDULE_ID = re.compile(r"^[A-Za-z0-9._-]+$")


def new_id(prefix: str, length: int = ID_LENGTH) -> str:
    """A random opaque id in QStash's style (``scd_``, ``msg_``, ``jwt_``, ``sig_`` + base58).

    One ``token_bytes`` call, read as base-58 digits: 8 random bits per character against the
    5.9 a base-58 digit holds, so the digits are uniform to within 2**-(2*length); per-character
    ``secrets.choice`` was a third of the cost of firing a tick.
    """
    number = int.from_bytes(secrets.token_bytes(length), "big")
    digits = []
    for _ in range(length):
        number, digit = divmod(number, len(_BASE58))
        digits.append(_BASE58[digit])
    return prefix + "".join(digits)


def new_signing_key() -> str:
    return new_id(SIGNING_KEY_PREFIX, SIGNING_KEY_LENGTH)


def check_schedule_id(schedule_id: str) -> str:
    """QStash's rule since November 2024: letters, digits, ``-``, ``_`` and ``.`` (section 2.1)."""
    if not _SCHEDULE_ID.match(schedule_id):
        raise bad_request(INVALID_SCHEDULE_ID)
    return schedule_id


# -- headers ---------------------------------------------------------------------------------------

_TOKEN_CHARS: Final = frozenset(
    "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


def canonical_header(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``x-tenant-id`` -> ``X-Tenant-Id``.

    Names with characters outside the HTTP token set are returned unchanged, as Go does.
    """
    if not name or any(char not in _TOKEN_CHARS for char in name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def header_map(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Pairs -> ``name -> [values]`` in first-seen order: the JSON shape of ``header``."""
    result: dict[str, list[str]] = {}
    for name, value in pairs:
        result.setdefault(name, []).append(value)
    return result


def _lookup(pairs: Headers) -> dict[str, str]:
    """Lower-cased name -> first value (a single-valued option given twice: the first wins)."""
    result: dict[str, str] = {}
    for name, value in pairs:
        result.setdefault(name.lower(), value)
    return result


def keep_source_headers(headers: Iterable[tuple[str, str]]) -> Headers:
    """The request headers a schedule or message is made of: ``Upstash-*`` and ``Content-Type``.

    Everything else (``Authorization`` above all, ``Host``, ``Accept``, client ``User-Agent``) is
    transport and is never stored.
    """
    kept = []
    for name, value in headers:
        lowered = name.lower()
        if lowered.startswith("upstash-") or lowered == "content-type":
            kept.append((name, value))
    return tuple(kept)


# -- request targets -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    """The destination taken off a raw request target, and what its query configured."""

    destination: str
    query_headers: Headers  # ``upstash-*`` query keys, as headers
    token: str | None  # ``qstash_token`` query key


def split_target(rest: str) -> Target:
    """Split ``<destination>[?<query>]`` (the raw target after the route prefix).

    Query keys ``qstash_token`` and ``upstash-*`` are configuration (section 2.1, webhook.mdx);
    the rest stay on the destination in their raw (still percent-encoded) form.
    """
    path, separator, query = rest.partition("?")
    if not separator:
        return Target(destination=path, query_headers=(), token=None)
    kept: list[str] = []
    config: list[tuple[str, str]] = []
    token: str | None = None
    for item in query.split("&"):
        key, _, value = item.partition("=")
        name = unquote(key.replace("+", " ")).lower()
        if name == "qstash_token":
            token = unquote(value.replace("+", " "))
        elif name.startswith("upstash-"):
            config.append((name, unquote(value.replace("+", " "))))
        else:
            kept.append(item)
    destination = path + ("?" + "&".join(kept) if kept else "")
    return Target(destination=destination, query_headers=tuple(config), token=token)


def merge_query_headers(headers: Headers, query_headers: Headers) -> Headers:
    """Headers win; a query key acts only when no header of that name was sent."""
    present = {name.lower() for name, _ in headers}
    return headers + tuple((name, value) for name, value in query_headers if name not in present)


def check_url(url: str, *, what: str = "destination") -> str:
    """An http(s) URL with a host, or QStash's ``invalid <what> url`` error."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise bad_request(f"invalid {what} url: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise bad_request(INVALID_SCHEME.replace("destination", what, 1))
    if not parts.hostname:
        raise bad_request(f"invalid {what} url: endpoint has no host")
    return url


def url_host(url: str) -> str:
    return urlsplit(url).hostname or ""


def restricted_address(address: str) -> str | None:
    """``loopback``/``private`` when production QStash would refuse to call ``address``.

    The loopback text is QStash's (section 7, pitfall 4); "private" is the same message's shape
    for RFC 1918, link-local and other non-public ranges [INFER].
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if ip.is_loopback:
        return "loopback"
    if ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_unspecified or ip.is_multicast:
        return "private"
    return None


def restricted_destination_error(addresses: Sequence[str]) -> ApiError | None:
    """The 400 production QStash answers when a destination resolves to a non-public address."""
    for address in addresses:
        kind = restricted_address(address)
        if kind is not None:
            return bad_request(
                f"invalid destination url: endpoint resolves to a {kind} address: {address}"
            )
    return None


# -- option values -----------------------------------------------------------------------------

_DURATION = re.compile(r"^(?:\d+[smhd])+$")
_DURATION_PART = re.compile(r"(\d+)([smhd])")
_DURATION_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_duration(value: str, *, header: str) -> int:
    """Seconds of ``10s``, ``5m``, ``1d10m`` (QStash's delay and timeout format, section 2.1)."""
    text = value.strip()
    if not _DURATION.match(text):
        raise bad_request(
            f"invalid {header} header: {value!r} is not a duration such as 10s, 5m, 2h or 1d10m"
        )
    return sum(int(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(text))


def parse_non_negative_int(value: str, *, header: str) -> int:
    text = value.strip()
    if not text.isdigit():
        raise bad_request(f"invalid {header} header: {value!r} is not a non-negative integer")
    return int(text)


@dataclasses.dataclass(frozen=True)
class FlowControl:
    key: str
    parallelism: int | None
    rate: int | None
    period: int  # seconds


def parse_flow_control(key: str, value: str | None) -> FlowControl:
    """``parallelism=2, rate=5, period=60s``, any subset; period defaults to one second."""
    parallelism: int | None = None
    rate: int | None = None
    period = DEFAULT_FLOW_CONTROL_PERIOD
    header = "Upstash-Flow-Control-Value"
    for item in (value or "").split(","):
        if not item.strip():
            continue
        name, equals, raw = item.partition("=")
        name = name.strip().lower()
        if not equals:
            raise bad_request(f"invalid {header} header: {item.strip()!r} is not name=value")
        if name == "parallelism":
            parallelism = parse_non_negative_int(raw, header=header)
        elif name == "rate":
            rate = parse_non_negative_int(raw, header=header)
        elif name == "period":
            period = (
                int(raw.strip()) if raw.strip().isdigit() else parse_duration(raw, header=header)
            )
        else:
            raise bad_request(f"invalid {header} header: unknown setting {name!r}")
    return FlowControl(key=key, parallelism=parallelism, rate=rate, period=period)


# -- cron --------------------------------------------------------------------------------------


def parse_cron(text: str | None) -> cron.Schedule:
    """The ``Upstash-Cron`` value, read as QStash reads it: robfig's ``ParseStandard`` in UTC.

    Five fields or a descriptor, with an optional ``CRON_TZ=``/``TZ=`` prefix
    (:func:`cron.parse_standard`). Refusals carry robfig's texts behind QStash's prefix
    (section 2.4): the empty one is confirmed, the others inferred. Header whitespace around the
    value is not part of it (HTTP), so a blank header is the empty spec.
    """
    try:
        return cron.parse_standard((text or "").strip(), field="Upstash-Cron")
    except InvalidSpecError as exc:
        raise bad_request(CRON_ERROR_PREFIX + exc.problem) from exc


# -- delivery settings ---------------------------------------------------------------------------

_FORWARD = "upstash-forward-"
_CALLBACK_FORWARD = "upstash-callback-forward-"
_FAILURE_CALLBACK_FORWARD = "upstash-failure-callback-forward-"
_CALLBACK_OPTION = "upstash-callback-"
_FAILURE_CALLBACK_OPTION = "upstash-failure-callback-"


@dataclasses.dataclass(frozen=True)
class DeliverySettings:
    """How each message is delivered: shared by schedules and one-off publishes.

    Built only by :func:`delivery_settings`, from :attr:`source` and the destination and body,
    so persisting ``source`` persists everything.
    """

    destination: str
    body: bytes
    source: Headers  # the Upstash-* and Content-Type request headers, verbatim
    caller_ip: str | None
    method: str = DEFAULT_METHOD
    headers: Headers = ()  # sent to the destination: Content-Type and forwarded headers
    retries: int = DEFAULT_RETRIES
    retry_delay: backoff.RetryDelay | None = None
    delay: int | None = None  # seconds
    timeout: int | None = None  # seconds
    callback: str | None = None
    failure_callback: str | None = None
    callback_headers: Headers = ()
    failure_callback_headers: Headers = ()
    callback_options: Headers = ()  # Upstash-Callback-<Option>, stored only
    failure_callback_options: Headers = ()
    queue_name: str | None = None
    flow_control: FlowControl | None = None
    label: str | None = None
    redact_fields: str | None = None

    @property
    def content_type(self) -> str | None:
        for name, value in self.headers:
            if name.lower() == "content-type":
                return value
        return None


def delivery_settings(
    *, destination: str, source: Headers, body: bytes, caller_ip: str | None
) -> DeliverySettings:
    """Validate the destination and the option headers; :class:`ApiError` (400) names the fault."""
    check_url(destination)
    options = _lookup(source)
    forwarded: list[tuple[str, str]] = []
    callback_headers: list[tuple[str, str]] = []
    failure_callback_headers: list[tuple[str, str]] = []
    callback_options: list[tuple[str, str]] = []
    failure_callback_options: list[tuple[str, str]] = []
    for name, value in source:
        lowered = name.lower()
        if lowered == "content-type":
            forwarded.append(("Content-Type", value))
        elif lowered.startswith(_FORWARD) and len(lowered) > len(_FORWARD):
            forwarded.append((canonical_header(name[len(_FORWARD) :]), value))
        elif lowered.startswith(_CALLBACK_FORWARD) and len(lowered) > len(_CALLBACK_FORWARD):
            callback_headers.append((canonical_header(name[len(_CALLBACK_FORWARD) :]), value))
        elif lowered.startswith(_FAILURE_CALLBACK_FORWARD) and len(lowered) > len(
            _FAILURE_CALLBACK_FORWARD
        ):
            failure_callback_headers.append(
                (canonical_header(name[len(_FAILURE_CALLBACK_FORWARD) :]), value)
            )
        elif lowered.startswith(_CALLBACK_OPTION):
            callback_options.append((canonical_header(name[len(_CALLBACK_OPTION) :]), value))
        elif lowered.startswith(_FAILURE_CALLBACK_OPTION):
            failure_callback_options.append(
                (canonical_header(name[len(_FAILURE_CALLBACK_OPTION) :]), value)
            )

    method = options.get("upstash-method", DEFAULT_METHOD).strip().upper() or DEFAULT_METHOD
    if method not in HTTP_METHODS:
        raise bad_request(
            f"invalid Upstash-Method header: {method!r} is not one of "
            + ", ".join(sorted(HTTP_METHODS))
        )
    retries = DEFAULT_RETRIES
    if "upstash-retries" in options:
        retries = parse_non_negative_int(options["upstash-retries"], header="Upstash-Retries")
    retry_delay = None
    if "upstash-retry-delay" in options:
        try:
            retry_delay = backoff.parse_retry_delay(options["upstash-retry-delay"])
        except backoff.ExpressionError as exc:
            raise bad_request(f"invalid Upstash-Retry-Delay header: {exc}") from exc
    delay = None
    if "upstash-delay" in options:
        delay = parse_duration(options["upstash-delay"], header="Upstash-Delay")
    timeout = None
    if "upstash-timeout" in options:
        timeout = parse_duration(options["upstash-timeout"], header="Upstash-Timeout")
    callback = options.get("upstash-callback") or None
    if callback is not None:
        check_url(callback, what="callback")
    failure_callback = options.get("upstash-failure-callback") or None
    if failure_callback is not None:
        check_url(failure_callback, what="failure callback")
    flow_control = None
    if options.get("upstash-flow-control-key"):
        flow_control = parse_flow_control(
            options["upstash-flow-control-key"], options.get("upstash-flow-control-value")
        )
    return DeliverySettings(
        destination=destination,
        body=body,
        source=source,
        caller_ip=caller_ip,
        method=method,
        headers=tuple(forwarded),
        retries=retries,
        retry_delay=retry_delay,
        delay=delay,
        timeout=timeout,
        callback=callback,
        failure_callback=failure_callback,
        callback_headers=tuple(callback_headers),
        failure_callback_headers=tuple(failure_callback_headers),
        callback_options=tuple(callback_options),
        failure_callback_options=tuple(failure_callback_options),
        queue_name=options.get("upstash-queue-name") or None,
        flow_control=flow_control,
        label=options.get("upstash-label") or None,
        redact_fields=options.get("upstash-redact-fields") or None,
    )


# -- schedules ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ScheduleRequest:
    """One validated ``POST /v2/schedules/{destination}``."""

    schedule_id: str | None  # None: the server picks one
    cron_text: str  # as given, prefix included; the SDK reads it back verbatim
    schedule: cron.Schedule
    settings: DeliverySettings


def parse_schedule_request(
    *, destination: str, headers: Headers, body: bytes, caller_ip: str | None
) -> ScheduleRequest:
    """Checks in QStash's order as far as it is visible: cron, id, then destination and options."""
    source = keep_source_headers(headers)
    options = _lookup(source)
    cron_text = options.get("upstash-cron", "")
    schedule = parse_cron(cron_text)
    schedule_id = options.get("upstash-schedule-id", "").strip() or None
    if schedule_id is not None:
        check_schedule_id(schedule_id)
    settings = delivery_settings(
        destination=destination, source=source, body=body, caller_ip=caller_ip
    )
    return ScheduleRequest(
        schedule_id=schedule_id, cron_text=cron_text, schedule=schedule, settings=settings
    )


class ScheduleState:
    """Values of ``lastScheduleStates``; the SDK's enum refuses any other (section 2.3)."""

    IN_PROGRESS: Final = "IN_PROGRESS"
    SUCCESS: Final = "SUCCESS"
    FAIL: Final = "FAIL"


@dataclasses.dataclass(frozen=True)
class ScheduleRecord:
    """A stored schedule: its settings plus what the server remembers about it.

    ``considered_until_ms`` is the scheduler's cursor: ticks at or before it have been decided
    (fired, skipped while paused, or before the schedule existed) and never fire again.
    """

    schedule_id: str
    cron_text: str
    schedule: cron.Schedule
    settings: DeliverySettings
    created_at_ms: int
    considered_until_ms: int
    paused: bool = False
    last_schedule_time_ms: int | None = None
    last_schedule_states: tuple[tuple[str, str], ...] = ()


def body_fields(body: bytes) -> dict[str, str]:
    """``body`` when the bytes are UTF-8, else ``bodyBase64``; nothing for an empty body."""
    if not body:
        return {}
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"bodyBase64": base64.b64encode(body).decode("ascii")}


def _settings_fields(settings: DeliverySettings) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if settings.headers:
        fields["header"] = header_map(settings.headers)
    fields.update(body_fields(settings.body))
    if settings.delay is not None:
        fields["delay"] = settings.delay
    if settings.timeout is not None:
        fields["timeout"] = settings.timeout
    if settings.callback is not None:
        fields["callback"] = settings.callback
    if settings.failure_callback is not None:
        fields["failureCallback"] = settings.failure_callback
    if settings.callback_headers:
        fields["callbackHeader"] = header_map(settings.callback_headers)
    if settings.failure_callback_headers:
        fields["failureCallbackHeader"] = header_map(settings.failure_callback_headers)
    if settings.caller_ip:
        fields["callerIP"] = settings.caller_ip  # the SDK's spelling (section 2.3)
    if settings.queue_name is not None:
        fields["queueName"] = settings.queue_name
    if settings.flow_control is not None:
        fields["flowControlKey"] = settings.flow_control.key
        if settings.flow_control.parallelism is not None:
            fields["parallelism"] = settings.flow_control.parallelism
        if settings.flow_control.rate is not None:
            fields["rate"] = settings.flow_control.rate
        fields["period"] = settings.flow_control.period
    if settings.retry_delay is not None:
        fields["retryDelayExpression"] = settings.retry_delay.text
    if settings.label is not None:
        fields["label"] = settings.label
    return fields


def schedule_json(record: ScheduleRecord, *, next_schedule_time_ms: int | None) -> dict[str, Any]:
    """The schedule object of ``GET /v2/schedules[/{id}]`` (section 2.3), keys as the SDK reads."""
    result: dict[str, Any] = {
        "scheduleId": record.schedule_id,
        "cron": record.cron_text,
        "createdAt": record.created_at_ms,
        "destination": record.settings.destination,
        "method": record.settings.method,
        "retries": record.settings.retries,
        "isPaused": record.paused,
    }
    result.update(_settings_fields(record.settings))
    if record.last_schedule_time_ms is not None:
        result["lastScheduleTime"] = record.last_schedule_time_ms
    if next_schedule_time_ms is not None:
        result["nextScheduleTime"] = next_schedule_time_ms
    if record.last_schedule_states:
        result["lastScheduleStates"] = dict(record.last_schedule_states)
    return result


# -- one-off messages --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PublishRequest:
    """One validated ``POST /v2/publish/{destination}``."""

    settings: DeliverySettings
    not_before_s: int | None
    deduplication_id: str | None
    content_based_deduplication: bool


def parse_publish_request(
    *, destination: str, headers: Headers, body: bytes, caller_ip: str | None
) -> PublishRequest:
    source = keep_source_headers(headers)
    options = _lookup(source)
    settings = delivery_settings(
        destination=destination, source=source, body=body, caller_ip=caller_ip
    )
    not_before = None
    if "upstash-not-before" in options:
        not_before = parse_non_negative_int(
            options["upstash-not-before"], header="Upstash-Not-Before"
        )
    # The Python SDK sends str(bool): "True"/"False" with a capital letter (section 5).
    content_based = options.get("upstash-content-based-deduplication", "").lower() == "true"
    return PublishRequest(
        settings=settings,
        not_before_s=not_before,
        deduplication_id=options.get("upstash-deduplication-id") or None,
        content_based_deduplication=content_based,
    )


def content_deduplication_key(settings: DeliverySettings) -> str:
    """What "the same content" means for content-based deduplication: URL, body and headers."""
    digest = hashlib.sha256()
    digest.update(settings.destination.encode())
    digest.update(b"\0")
    digest.update(settings.body)
    for name, value in sorted(settings.headers):
        digest.update(f"\0{name}:{value}".encode())
    return "content:" + digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class MessageRecord:
    """A message the server still has to deliver (made by a publish or a schedule's tick)."""

    message_id: str
    settings: DeliverySettings
    created_at_ms: int
    not_before_ms: int
    schedule_id: str | None = None
    tick_ms: int | None = None  # the tick that made it, for schedule messages
    retried: int = 0  # attempts already made; survives a restart


def message_json(message: MessageRecord) -> dict[str, Any]:
    """``GET /v2/messages/{id}`` (the SDK's ``parse_message_response`` keys)."""
    result: dict[str, Any] = {
        "messageId": message.message_id,
        "url": message.settings.destination,
        "method": message.settings.method,
        "maxRetries": message.settings.retries,
        "notBefore": message.not_before_ms,
        "createdAt": message.created_at_ms,
    }
    if message.schedule_id is not None:
        result["scheduleId"] = message.schedule_id
    result.update(_settings_fields(message.settings))
    return result


# -- the delivery request --------------------------------------------------------------------------

RESERVED_DELIVERY_HEADERS: Final = frozenset(
    {
        "user-agent",
        "upstash-signature",
        "upstash-message-id",
        "upstash-retried",
        "upstash-schedule-id",
        "upstash-caller-ip",
        "upstash-region",
    }
)


def delivery_headers(
    *,
    settings: DeliverySettings,
    message_id: str,
    schedule_id: str | None,
    retried: int,
    signature: str,
    region: str | None,
) -> Headers:
    """The headers QStash sends to a destination (section 3.1); ours win over forwarded ones."""
    pairs = [
        (name, value)
        for name, value in settings.headers
        if name.lower() not in RESERVED_DELIVERY_HEADERS
    ]
    pairs.append(("User-Agent", USER_AGENT))
    pairs.append(("Upstash-Signature", signature))
    pairs.append(("Upstash-Message-Id", message_id))
    pairs.append(("Upstash-Retried", str(retried)))
    if schedule_id is not None:
        pairs.append(("Upstash-Schedule-Id", schedule_id))
    if settings.caller_ip:
        pairs.append(("Upstash-Caller-Ip", settings.caller_ip))
    if region:
        pairs.append(("Upstash-Region", region))
    return tuple(pairs)


def decode_body(fields: Mapping[str, Any]) -> bytes:
    """Inverse of :func:`body_fields` (used by persistence)."""
    if "bodyBase64" in fields:
        try:
            return base64.b64decode(fields["bodyBase64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("bodyBase64 is not base64") from exc
    body = fields.get("body")
    return body.encode("utf-8") if isinstance(body, str) else b""
