"""Reading a request body with a size cap *and* a deadline: 413 or 408, each with a reason.

aiohttp caps a body's size (the app's ``client_max_size``) but not the time it takes to arrive: a
client may send its headers at once and then one byte every few seconds, holding a connection and
a handler for as long as it likes (slowloris). A delivery is worse off still: the signature's
``exp``/``nbf`` are checked against "now", so "now" must be read after the body is in, or a token
captured just before it expired could be verified minutes later against a stale clock.

Every view that reads a body reads it here.
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web

from qstash_webhook.errors import ApiError

MAX_BODY_BYTES: Final = 16 * 1024
"""Deliveries carry ~120 bytes of JSON and the API's bodies are as small; 16 KiB leaves room and
keeps a hostile sender from making us buffer megabytes before the signature check (413 beyond)."""
BODY_READ_SECONDS: Final = 5.0
"""How long a body may take to arrive once the headers are in. QStash sends its ~120-byte body in
the packet that carries the headers, and the API's bodies are as small; 5 s covers a congested
link many times over while keeping a trickling client from holding a handler open."""
REASON_TOO_LARGE: Final = "TooLarge"
REASON_BODY_TIMEOUT: Final = "BodyTimeout"


async def read_body(request: web.Request, *, deadline: float, limit: int) -> bytes:
    """The whole body, or :class:`ApiError` 413 (over ``limit`` bytes) / 408 (not in after
    ``deadline`` seconds; the connection is then closed, since the rest of it is still coming)."""
    try:
        async with asyncio.timeout(deadline):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(
            413, REASON_TOO_LARGE, f"the request body is over {limit // 1024} KiB"
        ) from None
    except TimeoutError:
        raise ApiError(
            408,
            REASON_BODY_TIMEOUT,
            f"the request body did not arrive within {deadline:g} s of its headers",
            close=True,
        ) from None
