"""A fan-out proxy at the webhook's public URL: every request, several copies, several replicas.

QStash delivers each message to one URL. To deliver every message several times *at once* to
several webhook replicas, this proxy listens on the public URL's port and, per request, sends
``copies`` identical requests (same bytes, same headers, so the same signature) concurrently,
round-robin over the replicas, then answers QStash with the first copy's answer. Runs on its own
event loop in a daemon thread, so synchronous tests can use it.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from types import TracebackType
from typing import Self

import aiohttp
from aiohttp import web

FORWARDED = ("content-type", "upstash-signature", "upstash-message-id", "upstash-retried")


class FanOut:
    def __init__(self, *, port: int, replicas: list[str], copies: int) -> None:
        self.port = port
        self.replicas = replicas
        self.copies = copies
        self.statuses: collections.Counter[int] = collections.Counter()
        self.requests = 0
        self.sent = 0
        self._turn = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._lock = threading.Lock()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED}
        with self._lock:
            self.requests += 1
            targets = []
            for _ in range(self.copies):
                targets.append(self.replicas[self._turn % len(self.replicas)])
                self._turn += 1
        assert self._session is not None

        async def one(base: str) -> tuple[int, bytes, str]:
            assert self._session is not None
            async with self._session.post(
                base + request.path_qs, data=body, headers=headers
            ) as response:
                return response.status, await response.read(), response.content_type

        answers = await asyncio.gather(*(one(base) for base in targets), return_exceptions=True)
        with self._lock:
            for answer in answers:
                self.sent += 1
                self.statuses[answer[0] if isinstance(answer, tuple) else 0] += 1
        first = answers[0]
        if not isinstance(first, tuple):
            return web.Response(status=502, text=f"replica unreachable: {first!r}")
        status, payload, content_type = first
        return web.Response(status=status, body=payload, content_type=content_type)

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
