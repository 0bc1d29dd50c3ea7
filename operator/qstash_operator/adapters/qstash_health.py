"""Read-only look at QStash for the webhook's status endpoint (``GET /api/test-cron``).

One call, ``schedule.list()`` through the official async SDK, turned into plain values and the
project's errors. It is separate from :mod:`qstash_operator.adapters.qstash_api` (the operator's
read-write adapter, owned elsewhere) only until the two are merged; it writes nothing.

The SDK retries transport errors for about 30 s by default (wire reference pitfall 10); a status
endpoint must answer quickly, so retries are off and the whole call has :data:`TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Final

import httpx
from qstash import AsyncQStash
from qstash.errors import DailyMessageLimitExceededError, QStashError, RateLimitExceededError

from qstash_operator.domain.errors import (
    QStashAuthError,
    QStashRateLimitedError,
    QStashUnavailableError,
)

TIMEOUT_SECONDS: Final = 5.0
"""A person is waiting on the status page; QStash that does not list in 5 s is "unreachable"."""
_STATUS = re.compile(r"status: (\d{3})")


@dataclasses.dataclass(frozen=True)
class ScheduleInfo:
    schedule_id: str
    destination: str
    cron: str
    paused: bool


async def list_schedules(*, url: str, token: str) -> list[ScheduleInfo]:
    """Every schedule of the account, or a QStash error from :mod:`domain.errors`."""
    client = AsyncQStash(token, retry=False, base_url=url)
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            schedules = await client.schedule.list()
    except TimeoutError as exc:
        raise QStashUnavailableError(f"QStash at {url} did not answer in time") from exc
    except httpx.HTTPError as exc:
        raise QStashUnavailableError(f"QStash at {url}: {type(exc).__name__}") from exc
    except (RateLimitExceededError, DailyMessageLimitExceededError) as exc:
        raise QStashRateLimitedError(f"QStash at {url} is rate limiting") from exc
    except QStashError as exc:
        match = _STATUS.search(str(exc))
        status = int(match.group(1)) if match else 0
        if status in (401, 403):
            raise QStashAuthError(f"QStash at {url} refused the token (HTTP {status})") from exc
        raise QStashUnavailableError(f"QStash at {url} answered HTTP {status or '?'}") from exc
    except (KeyError, ValueError, TypeError) as exc:  # a reply the SDK could not parse
        raise QStashUnavailableError(f"QStash at {url} sent an unreadable schedule list") from exc
    finally:
        await client.http._client.aclose()  # the SDK offers no close(); its client is here
    return [
        ScheduleInfo(
            schedule_id=schedule.schedule_id,
            destination=schedule.destination,
            cron=schedule.cron,
            paused=bool(schedule.paused),
        )
        for schedule in schedules
    ]
