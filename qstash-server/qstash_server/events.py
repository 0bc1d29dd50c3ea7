"""What happened to messages: ``GET /v2/events`` (QStash's logs) and ``GET /v2/dlq``. Pure state.

**Events.** Every message gets ``CREATED`` when it is accepted; each attempt ``ACTIVE``; then
``DELIVERED`` on a 2xx, or ``ERROR`` followed by ``RETRY`` (with ``nextDeliveryTime``) or
``FAILED`` when its retries are exhausted or the destination answered 489 non-retryable;
``CANCELED`` when it is deleted. The states are the SDK's ``LogState`` values
(``qstash/log.py``). The list is newest first, bounded, and filtered by ``messageId``,
``scheduleId``, ``state``, ``url``, ``label``, ``fromDate``/``toDate`` (ms); ``count`` (default
and maximum 1000, as the SDK documents) pages it, with ``cursor`` for the next page. The keys
are those ``qstash/log.py`` reads: ``time``, ``messageId``, ``state`` and ``url`` always, the
body base64-encoded under ``body``, headers as name → list of values.

**Dead letters.** A message that ``FAILED`` is kept as a DLQ entry: the message's fields (as
``GET /v2/messages/{id}`` has them), plus ``dlqId`` and the last attempt's ``responseStatus``,
``responseHeader`` and ``responseBody`` (``responseBodyBase64`` when not UTF-8), the keys
``qstash/dlq.py`` reads. ``responseStatus`` is 0 when no answer came at all (connection refused,
timeout): the SDK requires the key and QStash does not document that case [INFER]. Filtered by
``scheduleId``, ``messageId``, ``url``, ``responseStatus``, ``label`` and the time range (of the
failure); oldest first as QStash lists its DLQ [INFER]; bounded (the oldest go first).
"""

from __future__ import annotations

import base64
import collections
import dataclasses
from collections.abc import Mapping
from typing import Any, Final

from qstash_server import model

CREATED: Final = "CREATED"
ACTIVE: Final = "ACTIVE"
DELIVERED: Final = "DELIVERED"
ERROR: Final = "ERROR"
RETRY: Final = "RETRY"
FAILED: Final = "FAILED"
CANCELED: Final = "CANCELED"
STATES: Final = (CREATED, ACTIVE, DELIVERED, ERROR, RETRY, FAILED, CANCELED)

MAX_COUNT: Final = 1000
"""Default and largest page (the SDK's docstring for ``log.list``/``dlq.list``)."""
DLQ_ID_PREFIX: Final = "dlq_"


@dataclasses.dataclass(frozen=True)
class Response:
    """The destination's answer to an attempt (status None: no answer at all)."""

    status: int | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    body: bytes = b""
    error: str | None = None


def _header_lists(headers: Mapping[str, str]) -> dict[str, list[str]]:
    return {name: [value] for name, value in headers.items()}


def _page(items: list[dict[str, Any]], *, count: int, cursor: int) -> tuple[list[Any], str | None]:
    page = items[cursor : cursor + count]
    following = cursor + count
    return page, (str(following) if following < len(items) else None)


class QueryError(ValueError):
    """A filter or page parameter that cannot be read (answered 400)."""


def _number(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise QueryError(f"invalid {name}: {raw!r} is not a number") from None


def _count_and_cursor(params: Mapping[str, str]) -> tuple[int, int]:
    count = _number(params, "count")
    cursor = _number(params, "cursor")
    if count is not None and count < 1:
        raise QueryError("invalid count: must be at least 1")
    if cursor is not None and cursor < 0:
        raise QueryError("invalid cursor")
    return min(count or MAX_COUNT, MAX_COUNT), cursor or 0


def _matches(
    entry: Mapping[str, Any], params: Mapping[str, str], fields: Mapping[str, str]
) -> bool:
    for parameter, key in fields.items():
        wanted = params.get(parameter)
        if wanted and str(entry.get(key)) != wanted:
            return False
    return True


def _in_range(at_ms: int, params: Mapping[str, str]) -> bool:
    start = _number(params, "fromDate")
    end = _number(params, "toDate")
    return (start is None or at_ms >= start) and (end is None or at_ms <= end)


class EventLog:
    """The events of recent messages, oldest first internally, newest first when listed."""

    def __init__(self, limit: int) -> None:
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=limit)

    def record(
        self,
        message: model.MessageRecord,
        state: str,
        *,
        at_ms: int,
        response: Response | None = None,
        next_delivery_ms: int | None = None,
    ) -> None:
        settings = message.settings
        event: dict[str, Any] = {
            "time": at_ms,
            "messageId": message.message_id,
            "state": state,
            "url": settings.destination,
            "method": settings.method,
            "maxRetries": settings.retries,
        }
        if message.schedule_id is not None:
            event["scheduleId"] = message.schedule_id
        if settings.body:
            event["body"] = base64.b64encode(settings.body).decode("ascii")
        if settings.headers:
            event["header"] = model.header_map(settings.headers)
        if settings.retry_delay is not None:
            event["retryDelayExpr"] = settings.retry_delay.text
        if settings.label is not None:
            event["label"] = settings.label
        if next_delivery_ms is not None:
            event["nextDeliveryTime"] = next_delivery_ms
        if response is not None:
            if response.error is not None:
                event["error"] = response.error
            if response.status is not None:
                event["responseStatus"] = response.status
                event["responseHeader"] = _header_lists(response.headers)
                event["responseBody"] = response.body.decode("utf-8", errors="replace")
                event.setdefault("error", f"the destination answered {response.status}")
        self.events.append(event)

    def query(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``GET /v2/events``; :class:`QueryError` for unreadable parameters."""
        count, cursor = _count_and_cursor(params)
        state = params.get("state")
        if state and state not in STATES:
            raise QueryError(f"invalid state: {state!r} (one of {', '.join(STATES)})")
        ids = set(params.get("messageIds", "").split(",")) - {""}
        fields = {
            "messageId": "messageId",
            "scheduleId": "scheduleId",
            "state": "state",
            "url": "url",
            "label": "label",
        }
        found = [
            event
            for event in reversed(self.events)
            if _matches(event, params, fields)
            and (not ids or event["messageId"] in ids)
            and _in_range(event["time"], params)
        ]
        page, following = _page(found, count=count, cursor=cursor)
        answer: dict[str, Any] = {"events": page}
        if following is not None:
            answer["cursor"] = following
        return answer

    def clear(self) -> None:
        self.events.clear()


class DeadLetters:
    """Messages whose delivery failed for good, by ``dlqId``, oldest first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.entries: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()

    def add(self, message: model.MessageRecord, *, at_ms: int, response: Response) -> str:
        dlq_id = model.new_id(DLQ_ID_PREFIX)
        entry = model.message_json(message)
        entry["dlqId"] = dlq_id
        entry["responseStatus"] = response.status or 0
        entry["responseHeader"] = _header_lists(response.headers)
        try:
            entry["responseBody"] = response.body.decode("utf-8")
        except UnicodeDecodeError:
            entry["responseBodyBase64"] = base64.b64encode(response.body).decode("ascii")
        entry["failedAt"] = at_ms  # not an SDK field; what the time filters compare
        self.entries[dlq_id] = entry
        while len(self.entries) > self.limit:
            self.entries.popitem(last=False)
        return dlq_id

    def get(self, dlq_id: str) -> dict[str, Any]:
        entry = self.entries.get(dlq_id)
        if entry is None:
            raise model.ApiError(404, "dlq message not found")
        return entry

    def delete(self, dlq_id: str) -> None:
        if self.entries.pop(dlq_id, None) is None:
            raise model.ApiError(404, "dlq message not found")

    def query(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``GET /v2/dlq``; :class:`QueryError` for unreadable parameters."""
        count, cursor = _count_and_cursor(params)
        _number(params, "responseStatus")  # refuse a status that is not a number
        fields = {
            "messageId": "messageId",
            "scheduleId": "scheduleId",
            "url": "url",
            "responseStatus": "responseStatus",
            "label": "label",
            "callerIp": "callerIP",
        }
        found = [
            entry
            for entry in self.entries.values()
            if _matches(entry, params, fields) and _in_range(entry["failedAt"], params)
        ]
        page, following = _page(found, count=count, cursor=cursor)
        answer: dict[str, Any] = {"messages": page}
        if following is not None:
            answer["cursor"] = following
        return answer

    def clear(self) -> None:
        self.entries.clear()
