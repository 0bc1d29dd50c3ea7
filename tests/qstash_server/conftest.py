"""Fixtures for the QStash-compatible server's tests: a server, a verifying destination, the SDK.

``qstash`` is a fresh in-process server per test on a driven clock that starts at
:data:`START` (30 seconds before a top of the hour, so one ``advance(30)`` fires the hour's
ticks). ``receiver`` is a destination that verifies every request with the SDK's ``Receiver`` and
the project's verifier; the test fails at teardown if any delivery did not verify. ``sdk`` runs
each API test twice, through the sync ``QStash`` (in a worker thread, so it does not block the
server sharing this event loop) and through ``AsyncQStash``, both with ``retry=False``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from qstash import AsyncQStash, QStash

from qstash_server.testing import RunningServer
from tests.qstash_server.receiver import VerifyingReceiver

START = datetime(2026, 6, 1, 9, 59, 30, tzinfo=UTC)
TOP = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
TOP_MS = int(TOP.timestamp() * 1000)


class Sdk:
    """One surface over both official clients: ``await sdk.call("schedule", "get", id)``."""

    def __init__(self, kind: str, token: str, url: str) -> None:
        self.kind = kind
        self._sync = QStash(token, base_url=url, retry=False) if kind == "sync" else None
        self._async = AsyncQStash(token, base_url=url, retry=False) if kind == "async" else None

    async def call(self, api: str, operation: str, /, *args: Any, **kwargs: Any) -> Any:
        if self._sync is not None:
            function = getattr(getattr(self._sync, api), operation)
            return await asyncio.to_thread(function, *args, **kwargs)
        assert self._async is not None
        return await getattr(getattr(self._async, api), operation)(*args, **kwargs)

    async def schedule(self, operation: str, /, *args: Any, **kwargs: Any) -> Any:
        return await self.call("schedule", operation, *args, **kwargs)

    async def close(self) -> None:
        if self._sync is not None:
            self._sync.http._client.close()
        if self._async is not None:
            await self._async.http._client.aclose()


@pytest.fixture
async def qstash() -> AsyncIterator[RunningServer]:
    async with RunningServer(start_time=START) as server:
        yield server


@pytest.fixture
async def receiver(qstash: RunningServer) -> AsyncIterator[VerifyingReceiver]:
    destination = VerifyingReceiver()
    destination.use_keys(qstash.current_key, qstash.next_key)
    await destination.start()
    try:
        yield destination
    finally:
        await destination.stop()
    failures = destination.unverified()
    assert not failures, f"deliveries that did not verify: {failures}"


@pytest.fixture(params=["sync", "async"])
async def sdk(request: pytest.FixtureRequest, qstash: RunningServer) -> AsyncIterator[Sdk]:
    client = Sdk(request.param, qstash.token, qstash.url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def client(qstash: RunningServer) -> AsyncIterator[Sdk]:
    """The async SDK alone, for delivery tests where the client kind does not matter."""
    sdk_client = Sdk("async", qstash.token, qstash.url)
    try:
        yield sdk_client
    finally:
        await sdk_client.close()
