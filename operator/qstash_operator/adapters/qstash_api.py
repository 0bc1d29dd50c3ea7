"""QStash schedules through the official SDK (``qstash.AsyncQStash``), with our errors.

The SDK raises one ``QStashError`` whose text carries the status ("Request failed with status:
401, body: ..."), two rate-limit errors for 429, and lets httpx errors through (wire reference
section 5 and pitfall 10). Here they become:

- 401/403 → :class:`QStashAuthError` (slow retry: only a new token fixes it)
- 429 → :class:`QStashRateLimitedError` with ``retry_after`` from the reset header
- 5xx, timeouts, connection errors → :class:`QStashUnavailableError`
- 404 → :class:`NotFoundError`
- other 4xx → :class:`QStashRejectedError` carrying QStash's own message

:class:`QStashMessages` reads one message (``GET /v2/messages/{id}``) for the webhook, which must
know which tick a retried delivery is for (:class:`~qstash_operator.domain.runs.MessageOrigin`).

The SDK's transport retry is off (``retry=False``): the operator owns its retry policy, and the
SDK's default would hide an unreachable QStash for 32 s. Its 600 s client timeout is shortened too.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from datetime import UTC, datetime
from typing import Final

import httpx
from qstash import AsyncQStash
from qstash.errors import DailyMessageLimitExceededError, QStashError, RateLimitExceededError
from qstash.schedule import Schedule

from qstash_operator.domain.builders import DesiredSchedule
from qstash_operator.domain.errors import (
    NotFoundError,
    QStashAuthError,
    QStashRateLimitedError,
    QStashRejectedError,
    QStashUnavailableError,
)
from qstash_operator.domain.runs import MessageOrigin

TIMEOUT: Final = httpx.Timeout(30.0, connect=5.0)
"""QStash's management API answers in well under a second; 30 s bounds a hung call so one bad
request cannot stall a reconcile worker (the SDK's own default is 600 s)."""

MESSAGE_TIMEOUT: Final = 5.0
"""Seconds a message lookup may take. A retried delivery waits on it, and QStash gives up on an
attempt after its timeout; a lookup that hangs longer answers 503 and QStash retries again."""

_STATUS = re.compile(r"status: (\d{3}), body: (.*)", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class ObservedSchedule:
    """What QStash reports about one schedule, in the terms drift repair compares."""

    schedule_id: str
    destination: str
    cron: str
    body: str | None
    retries: int
    retry_delay: str | None
    paused: bool
    next_schedule_time_ms: int | None
    last_schedule_time_ms: int | None

    @classmethod
    def from_sdk(cls, schedule: Schedule) -> ObservedSchedule:
        return cls(
            schedule_id=schedule.schedule_id,
            destination=schedule.destination,
            cron=schedule.cron,
            body=schedule.body,
            retries=schedule.retries,
            retry_delay=schedule.retry_delay_expression,
            paused=schedule.paused,
            next_schedule_time_ms=schedule.next_schedule_time,
            last_schedule_time_ms=schedule.last_schedule_time,
        )

    def differs_from(self, desired: DesiredSchedule) -> list[str]:
        """Fields where QStash disagrees with what we want (empty: in sync).

        ``timeout`` is not compared: QStash reports it as a number whose unit is undocumented
        (wire reference 2.3), and a wrong guess would "repair" every schedule every period.
        """
        differences = []
        if self.destination != desired.destination:
            differences.append("destination")
        if self.cron != desired.cron:
            differences.append("cron")
        if self.body != desired.body:
            differences.append("body")
        if self.paused != desired.paused:
            differences.append("paused")
        if desired.retries is not None and self.retries != desired.retries:
            differences.append("retries")
        if desired.retry_delay is not None and self.retry_delay != desired.retry_delay:
            differences.append("retryDelay")
        return differences


def _retry_after(reset: str | None, *, now: float) -> float | None:
    """Seconds until a ``*-Reset`` header's Unix timestamp (QStash's format), at least 1."""
    if not reset:
        return None
    try:
        value = float(reset)
    except ValueError:
        return None
    if value > 1e12:  # milliseconds
        value /= 1000
    seconds = value - now if value > 1e9 else value
    return max(1.0, min(seconds, 3600.0))


def _translate(exc: Exception, what: str) -> Exception:
    if isinstance(exc, RateLimitExceededError | DailyMessageLimitExceededError):
        kind = (
            "daily message limit"
            if isinstance(exc, DailyMessageLimitExceededError)
            else "rate limit"
        )
        return QStashRateLimitedError(
            f"{what}: QStash {kind} exceeded", retry_after=_retry_after(exc.reset, now=time.time())
        )
    if isinstance(exc, httpx.HTTPError):
        return QStashUnavailableError(f"{what}: QStash unreachable ({type(exc).__name__})")
    if isinstance(exc, QStashError):
        match = _STATUS.search(str(exc))
        if match is None:
            return QStashUnavailableError(f"{what}: {exc}")
        status = int(match.group(1))
        message = _error_text(match.group(2))
        if status in (401, 403):
            return QStashAuthError(f"{what}: QStash refused the token (HTTP {status}: {message})")
        if status == 404:
            return NotFoundError(f"{what}: {message}")
        if status >= 500:
            return QStashUnavailableError(f"{what}: QStash HTTP {status}: {message}")
        return QStashRejectedError(message, status=status)
    return exc


def _error_text(body: str) -> str:
    """QStash's ``{"error": "..."}`` text, or the raw body."""
    try:
        payload = json.loads(body)
    except ValueError:
        return body.strip()[:500]
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return str(payload["error"])
    return body.strip()[:500]


class QStashSchedules:
    """The schedule operations the operator needs. One instance per process."""

    def __init__(self, *, token: str, base_url: str, timeout: float | None = None) -> None:
        self._client = AsyncQStash(token, retry=False, base_url=base_url)
        # The SDK offers no timeout option; its one httpx client is reachable here.
        self._client.http._client.timeout = (
            TIMEOUT if timeout is None else httpx.Timeout(timeout, connect=min(timeout, 5.0))
        )
        self.base_url = base_url

    async def close(self) -> None:
        await self._client.http._client.aclose()

    async def upsert(self, desired: DesiredSchedule) -> str:
        """Create or overwrite the schedule with ``desired.schedule_id`` (QStash's upsert)."""
        try:
            return await self._client.schedule.create(
                destination=desired.destination,
                cron=desired.cron,
                body=desired.body,
                content_type="application/json",
                retries=desired.retries,
                retry_delay=desired.retry_delay,
                timeout=desired.timeout,
                schedule_id=desired.schedule_id,
            )
        except Exception as exc:
            raise _translate(exc, f"upsert {desired.schedule_id}") from exc

    async def get(self, schedule_id: str) -> ObservedSchedule | None:
        try:
            return ObservedSchedule.from_sdk(await self._client.schedule.get(schedule_id))
        except Exception as exc:
            error = _translate(exc, f"get {schedule_id}")
            if isinstance(error, NotFoundError):
                return None
            raise error from exc

    async def list(self) -> list[ObservedSchedule]:
        try:
            return [ObservedSchedule.from_sdk(item) for item in await self._client.schedule.list()]
        except (KeyError, ValueError, TypeError) as exc:  # a reply the SDK could not parse
            raise QStashUnavailableError("list schedules: QStash sent an unreadable list") from exc
        except Exception as exc:
            raise _translate(exc, "list schedules") from exc

    async def delete(self, schedule_id: str) -> bool:
        """Delete; False when it did not exist (a missing schedule counts as deleted)."""
        try:
            await self._client.schedule.delete(schedule_id)
        except Exception as exc:
            error = _translate(exc, f"delete {schedule_id}")
            if isinstance(error, NotFoundError):
                return False
            raise error from exc
        return True

    async def set_paused(self, schedule_id: str, paused: bool) -> None:
        try:
            if paused:
                await self._client.schedule.pause(schedule_id)
            else:
                await self._client.schedule.resume(schedule_id)
        except Exception as exc:
            raise _translate(exc, f"{'pause' if paused else 'resume'} {schedule_id}") from exc


class QStashMessages:
    """Which message a retried delivery is. One instance per webhook process."""

    def __init__(self, *, token: str, base_url: str, timeout: float = MESSAGE_TIMEOUT) -> None:
        self._client = AsyncQStash(token, retry=False, base_url=base_url)
        self._client.http._client.timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        self.base_url = base_url

    async def close(self) -> None:
        await self._client.http._client.aclose()

    async def origin(self, message_id: str) -> MessageOrigin:
        """``createdAt`` and ``scheduleId`` of a message QStash is still delivering.

        Raises :class:`NotFoundError` when QStash does not know it (it answers 404 once a message
        is delivered or given up), and the transient errors of :func:`_translate` otherwise; a
        reply the SDK cannot read is :class:`QStashUnavailableError`, never a guess.
        """
        what = f"get message {message_id}"
        try:
            message = await self._client.message.get(message_id)
        except (KeyError, ValueError, TypeError) as exc:  # the SDK reads required keys
            raise QStashUnavailableError(f"{what}: QStash sent an unreadable message") from exc
        except Exception as exc:
            error = _translate(exc, what)
            if isinstance(error, QStashRejectedError):  # a 4xx we cannot act on: retry later
                error = QStashUnavailableError(f"{what}: QStash HTTP {error.status}: {error}")
            raise error from exc
        created_at = message.created_at
        if isinstance(created_at, bool) or not isinstance(created_at, int | float):
            raise QStashUnavailableError(f"{what}: createdAt {created_at!r} is not a time")
        return MessageOrigin(
            created_at=datetime.fromtimestamp(created_at / 1000, UTC),
            schedule_id=message.schedule_id or None,
        )
