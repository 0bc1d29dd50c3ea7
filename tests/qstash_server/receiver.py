"""A destination for deliveries that verifies every request twice and answers as scripted.

Every request is checked with the official SDK's ``Receiver`` and with the project's own
``qstash_operator.domain.signature.verify``, against the URL the test registered (never one
rebuilt from the request, as the design asks of the real webhook). The fixture that owns it fails
the test if any delivery did not verify, so no delivery in these tests goes unchecked.

The SDK's ``Receiver`` hashes ``body.encode()``, so it cannot verify a body that is not UTF-8
(wire reference section 4.3); such deliveries are verified by the project's verifier only and
say so in :attr:`Received.sdk_verified` (``None``).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from typing import Final

from aiohttp import web
from qstash import Receiver
from qstash.errors import SignatureError as SdkSignatureError

from qstash_operator.domain import signature
from qstash_operator.domain.errors import SignatureError

CLOCK_TOLERANCE_SECONDS: Final = 5.0
"""For the project's verifier; the SDK's has no working tolerance (section 4.3)."""


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: str = "ok"
    delay: float = 0.0  # seconds before answering


@dataclasses.dataclass
class Received:
    path: str
    method: str
    headers: dict[str, str]
    body: bytes
    url: str
    sdk_verified: bool | None
    own_verified: bool
    problem: str | None
    arrived: float  # time.monotonic() when the request was read

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)


class VerifyingReceiver:
    """An aiohttp app on a free port; ``url(path)`` is what schedules should deliver to."""

    def __init__(self) -> None:
        self.current_key = ""
        self.next_key = ""
        self.base_url = ""
        self.received: list[Received] = []
        self._scripts: dict[str, collections.deque[Reply]] = {}
        self._runner: web.AppRunner | None = None

    def use_keys(self, current: str, upcoming: str) -> None:
        self.current_key, self.next_key = current, upcoming

    def url(self, path: str = "/hook") -> str:
        return self.base_url + path

    def script(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to ``path`` with ``replies`` in order, then 200."""
        self._scripts.setdefault(path, collections.deque()).extend(replies)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def unverified(self) -> list[Received]:
        return [r for r in self.received if not r.own_verified or r.sdk_verified is False]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _verify(self, token: str, body: bytes, url: str) -> tuple[bool | None, bool, str | None]:
        problems = []
        sdk: bool | None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            sdk = None  # the SDK cannot verify non-UTF-8 bodies at all
        else:
            try:
                Receiver(self.current_key, self.next_key).verify(
                    signature=token, body=text, url=url
                )
                sdk = True
            except SdkSignatureError as exc:
                sdk = False
                problems.append(f"SDK: {exc}")
        try:
            signature.verify(
                body=body,
                signature=token,
                url=url,
                current_key=self.current_key,
                next_key=self.next_key,
                now=time.time(),
                tolerance=CLOCK_TOLERANCE_SECONDS,
            )
            own = True
        except SignatureError as exc:
            own = False
            problems.append(f"own: {exc}")
        return sdk, own, "; ".join(problems) or None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        arrived = time.monotonic()
        url = self.base_url + request.raw_path
        sdk, own, problem = self._verify(request.headers.get("Upstash-Signature", ""), body, url)
        self.received.append(
            Received(
                path=request.path,
                method=request.method,
                headers=dict(request.headers),
                body=body,
                url=url,
                sdk_verified=sdk,
                own_verified=own,
                problem=problem,
                arrived=arrived,
            )
        )
        queue = self._scripts.get(request.path)
        reply = queue.popleft() if queue else Reply()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return web.Response(status=reply.status, headers=reply.headers, text=reply.body)
