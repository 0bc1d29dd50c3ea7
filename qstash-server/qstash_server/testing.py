"""Run the QStash-compatible server from tests, and drive its controls.

Three ways to run it, one control API (:class:`Controls`, talking HTTP to ``/__control/``):

- :class:`RunningServer`: in-process, on the test's event loop, on a free port::

      async with RunningServer() as qstash:
          client = AsyncQStash(qstash.token, base_url=qstash.url, retry=False)
          ...
          await qstash.advance(60)                  # the next minute's ticks fire
          [delivery] = await qstash.wait_for_deliveries(1)

  Do not call the *sync* SDK from a coroutine on the same loop (it would block the server);
  use ``asyncio.to_thread`` or :class:`ThreadedServer`.

- :class:`ThreadedServer`: the same server on its own loop in a background thread, with
  synchronous control methods, for synchronous tests (kopf's ``KopfRunner``, the sync SDK)::

      with ThreadedServer() as qstash:
          QStash(qstash.token, base_url=qstash.url, retry=False).schedule.create(...)
          qstash.advance(60)

- :class:`ServerProcess`: a child process started through the CLI (``qstash-operator
  qstash-server --port 0 ...``), reading the env lines it prints; what the local stack does.

Test defaults differ from the CLI's on purpose: random credentials (a test that passes with the
public dev key proves nothing), the driven clock, and ``backoff_factor=0`` (retries at once; set
it when a test is about backoff timing).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, NotRequired, Self, TypedDict, TypeVar

import aiohttp
from aiohttp import web

from qstash_server import config, main, model
from qstash_server.app import make_app
from qstash_server.clock import Clock
from qstash_server.core import Core
from qstash_server.typedefs import CORE_KEY

POLL_SECONDS: Final = 0.01
"""How often ``wait_for_*`` polls the server: fast enough to add no visible latency to tests."""
DEFAULT_WAIT_SECONDS: Final = 10.0
PROCESS_START_SECONDS: Final = 20.0
"""A cold interpreter importing aiohttp takes about a second; leave room on CI."""

T = TypeVar("T")


class FiredTick(TypedDict):
    scheduleId: str
    tick: int  # Unix ms of the tick (the server clock's time)
    messageId: str


class Delivery(TypedDict):
    """One delivery attempt, as ``GET /__control/deliveries`` reports it."""

    messageId: str
    scheduleId: str | None
    tick: int | None
    retried: int  # the Upstash-Retried header sent
    duplicate: bool  # an injected duplicate of an earlier attempt
    url: str
    method: str
    headers: list[list[str]]  # [name, value] pairs, in the order sent
    status: int | None  # None: no response (connection error, timeout)
    error: str | None
    outcome: str  # success | failed | non_retryable | dropped
    startedAt: int  # wall-clock Unix ms
    finishedAt: int
    bodyTruncated: bool  # the log keeps the first 64 KiB of a body
    body: NotRequired[str]
    bodyBase64: NotRequired[str]
    responseBody: NotRequired[str]
    nextRetrySeconds: NotRequired[float]  # the unscaled wait before the next attempt


class MessageOutcome(TypedDict):
    messageId: str
    scheduleId: str | None
    url: str
    tick: int | None
    createdAt: int
    notBefore: int
    state: str  # IN_PROGRESS | SUCCESS | FAIL | CANCELLED
    attempts: int
    maxRetries: int


def header(delivery: Delivery, name: str) -> str | None:
    """The first value of a header a delivery carried (case-insensitive)."""
    lowered = name.lower()
    for key, value in delivery["headers"]:
        if key.lower() == lowered:
            return value
    return None


class ControlError(RuntimeError):
    """A control request was refused; carries the server's status and error text."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"{status}: {message}")


class Controls:
    """Async client of ``/__control/``. Subclasses set :attr:`url` and open :attr:`_session`."""

    url: str
    _session: aiohttp.ClientSession | None = None

    async def _call(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        if self._session is None:
            raise RuntimeError("the server is not running")
        async with self._session.request(
            method,
            f"{self.url}/__control/{path}",
            json=body,
            params={key: value for key, value in params.items() if value is not None},
        ) as response:
            data = await response.json(content_type=None)
            if response.status >= 400:
                message = data.get("error", data) if isinstance(data, dict) else data
                raise ControlError(response.status, str(message))
            return data

    # -- time --------------------------------------------------------------------------------

    async def now(self) -> datetime:
        data = await self._call("GET", "clock")
        return datetime.fromtimestamp(data["nowMs"] / 1000, UTC)

    async def advance(self, seconds: float) -> list[FiredTick]:
        """Move the driven clock; every tick in between fires, in order."""
        data = await self._call("POST", "clock/advance", {"seconds": seconds})
        fired: list[FiredTick] = data["fired"]
        return fired

    async def set_time(self, moment: datetime) -> list[FiredTick]:
        data = await self._call("POST", "clock/set", {"ms": int(moment.timestamp() * 1000)})
        fired: list[FiredTick] = data["fired"]
        return fired

    async def fire(self, schedule_id: str, *, force: bool = False) -> str:
        """Trigger a schedule now; returns the new message id."""
        data = await self._call("POST", f"schedules/{schedule_id}/fire", {"force": force})
        return str(data["messageId"])

    # -- faults ------------------------------------------------------------------------------

    async def set_fault(self, kind: str, spec: dict[str, Any] | None) -> dict[str, Any]:
        """Set one fault by its JSON name (``apiErrors``, ``rateLimit``, ``duplicateDelivery``,
        ``deliveryLatency``, ``dropResponse``); ``None`` clears it. Returns all faults."""
        result: dict[str, Any] = await self._call("POST", "faults", {kind: spec})
        return result

    async def fail_api(
        self, count: int | None = 1, *, status: int = 500, routes: Sequence[str] | None = None
    ) -> None:
        """The next ``count`` API calls (of ``routes``, default all) answer ``status`` (a 5xx,
        or 400 for a refusal)."""
        spec = {"count": count, "status": status, "routes": list(routes) if routes else None}
        await self.set_fault("apiErrors", spec)

    async def rate_limit_api(
        self,
        count: int | None = 1,
        *,
        family: str = "burst",
        routes: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> None:
        """The next ``count`` API calls answer 429 with ``RateLimit-*`` (``daily``) or
        ``Burst-RateLimit-*`` (``burst``) headers."""
        spec: dict[str, Any] = {
            "count": count,
            "family": family,
            "routes": list(routes) if routes else None,
        }
        if limit is not None:
            spec["limit"] = limit
        await self.set_fault("rateLimit", spec)

    async def duplicate_deliveries(
        self, count: int | None = None, *, concurrent: bool = False
    ) -> None:
        """Deliver the next ``count`` messages (None: all) twice, same message id."""
        await self.set_fault("duplicateDelivery", {"count": count, "concurrent": concurrent})

    async def delay_deliveries(self, seconds: float, count: int | None = None) -> None:
        """Wait ``seconds`` (real time) before each of the next ``count`` attempts."""
        await self.set_fault("deliveryLatency", {"seconds": seconds, "count": count})

    async def drop_responses(self, count: int | None = 1) -> None:
        """Treat the next ``count`` successful answers as lost: a retry follows a success."""
        await self.set_fault("dropResponse", {"count": count})

    async def destination_down(self, count: int | None = None) -> None:
        """Fail the next ``count`` attempts (None: until cleared) without calling the
        destination, as a webhook that is down does; QStash retries them as usual."""
        await self.set_fault("destinationDown", {"count": count})

    async def destination_up(self) -> None:
        await self.set_fault("destinationDown", None)

    async def clear_faults(self) -> None:
        await self._call("DELETE", "faults")

    # -- observation -------------------------------------------------------------------------

    async def deliveries(
        self, *, schedule_id: str | None = None, message_id: str | None = None
    ) -> list[Delivery]:
        params = {"scheduleId": schedule_id, "messageId": message_id}
        data = await self._call("GET", "deliveries", **{k: v for k, v in params.items() if v})
        deliveries: list[Delivery] = data["deliveries"]
        return deliveries

    async def clear_deliveries(self) -> None:
        await self._call("DELETE", "deliveries")

    async def messages(
        self, *, schedule_id: str | None = None, message_id: str | None = None
    ) -> list[MessageOutcome]:
        params = {"scheduleId": schedule_id, "messageId": message_id}
        data = await self._call("GET", "messages", **{k: v for k, v in params.items() if v})
        messages: list[MessageOutcome] = data["messages"]
        return messages

    async def api_calls(self) -> dict[str, int]:
        """Calls per route name (``schedules.create``, ``schedules.get``, ...)."""
        data = await self._call("GET", "api-calls")
        counts: dict[str, int] = data["counts"]
        return counts

    async def api_call_log(self) -> list[dict[str, Any]]:
        data = await self._call("GET", "api-calls")
        calls: list[dict[str, Any]] = data["calls"]
        return calls

    async def reset_api_calls(self) -> None:
        await self._call("DELETE", "api-calls")

    async def schedule_record(self, schedule_id: str) -> dict[str, Any]:
        """The stored record, including options the server keeps but does not act on."""
        record: dict[str, Any] = await self._call("GET", f"schedules/{schedule_id}")
        return record

    # -- behaviour ---------------------------------------------------------------------------

    async def set_settings(
        self, *, backoff_factor: float | None = None, strict_destinations: bool | None = None
    ) -> None:
        body: dict[str, Any] = {}
        if backoff_factor is not None:
            body["backoffFactor"] = backoff_factor
        if strict_destinations is not None:
            body["strictDestinations"] = strict_destinations
        await self._call("POST", "settings", body)

    async def settle(self, timeout: float = DEFAULT_WAIT_SECONDS) -> bool:  # noqa: ASYNC109
        """Wait until no message is in flight; False if some still are after ``timeout``."""
        data = await self._call("POST", "settle", {"timeout": timeout})
        return bool(data["idle"])

    async def reset(self) -> None:
        await self._call("POST", "reset")

    async def wait_for_deliveries(
        self,
        count: int,
        *,
        schedule_id: str | None = None,
        message_id: str | None = None,
        outcome: str | None = None,
        timeout: float = DEFAULT_WAIT_SECONDS,  # noqa: ASYNC109 (a deadline for polling a server)
    ) -> list[Delivery]:
        """Poll until at least ``count`` matching attempts are logged; returns all of them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = [
                delivery
                for delivery in await self.deliveries(
                    schedule_id=schedule_id, message_id=message_id
                )
                if outcome is None or delivery["outcome"] == outcome
            ]
            if len(found) >= count:
                return found
            if loop.time() >= deadline:
                raise TimeoutError(
                    f"{len(found)} of {count} deliveries after {timeout} s: {found!r}"
                )
            await asyncio.sleep(POLL_SECONDS)

    async def wait_for_message(
        self,
        message_id: str,
        *,
        timeout: float = DEFAULT_WAIT_SECONDS,  # noqa: ASYNC109 (a deadline for polling a server)
    ) -> MessageOutcome:
        """Poll until the message is finished (SUCCESS, FAIL or CANCELLED)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = await self.messages(message_id=message_id)
            if found and found[0]["state"] != model.ScheduleState.IN_PROGRESS:
                return found[0]
            if loop.time() >= deadline:
                raise TimeoutError(f"message {message_id} not finished after {timeout} s: {found}")
            await asyncio.sleep(POLL_SECONDS)


class RunningServer(Controls):
    """The server in-process on the current event loop, on a free port, test controls on."""

    def __init__(
        self,
        *,
        token: str | None = None,
        current_key: str | None = None,
        next_key: str | None = None,
        driven_clock: bool = True,
        start_time: datetime | None = None,
        backoff_factor: float = 0.0,
        strict_destinations: bool = False,
        state_path: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        server_clock: Clock | None = None,
        **overrides: Any,
    ) -> None:
        """``overrides`` are further :class:`config.ServerConfig` fields; ``server_clock`` replaces
        the clock the config would build (e.g. a wall clock shifted to just before a minute)."""
        self.config = config.ServerConfig(
            host=host,
            port=port,
            token=token or model.new_id("tok_", 40),
            current_signing_key=current_key or model.new_signing_key(),
            next_signing_key=next_key or model.new_signing_key(),
            state_path=state_path,
            test_controls=True,
            driven_clock=driven_clock,
            start_time=start_time,
            backoff_factor=backoff_factor,
            strict_destinations=strict_destinations,
            **overrides,
        )
        self._clock = server_clock
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def core(self) -> Core:
        """The server's internals, for the rare test that needs more than the controls."""
        if self._runner is None:
            raise RuntimeError("the server is not running")
        return self._runner.app[CORE_KEY]

    @property
    def token(self) -> str:
        return self.config.token

    @property
    def current_key(self) -> str:
        """The key deliveries are signed with now (it changes on rotation)."""
        return self.core.store.keys.current

    @property
    def next_key(self) -> str:
        return self.core.store.keys.next

    @property
    def env(self) -> dict[str, str]:
        """The four variables the CLI prints, for code that reads its settings from them."""
        return {
            "QSTASH_URL": self.url,
            "QSTASH_TOKEN": self.token,
            "QSTASH_CURRENT_SIGNING_KEY": self.current_key,
            "QSTASH_NEXT_SIGNING_KEY": self.next_key,
        }

    async def start(self) -> Self:
        application = make_app(self.config, server_clock=self._clock)
        runner = web.AppRunner(application, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.host, self.config.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.url = main.display_url(self.config.host, int(runner.addresses[0][1]))
        self._session = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


class ServerProcess(Controls):
    """The server as a child process started through the CLI, test controls on."""

    def __init__(self, *extra_args: str, state_path: Path | None = None) -> None:
        self.extra_args = extra_args
        self.state_path = state_path
        self.process: asyncio.subprocess.Process | None = None
        self.env: dict[str, str] = {}
        self.url = ""

    @property
    def token(self) -> str:
        return self.env["QSTASH_TOKEN"]

    @property
    def current_key(self) -> str:
        return self.env["QSTASH_CURRENT_SIGNING_KEY"]

    @property
    def next_key(self) -> str:
        return self.env["QSTASH_NEXT_SIGNING_KEY"]

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "qstash_operator.cli", "qstash-server", "--port", "0"]
        argv += ["--test-controls", "--random-credentials", *self.extra_args]
        if self.state_path is not None:
            argv += ["--state", str(self.state_path)]
        return argv

    async def start(self) -> Self:
        self.process = await asyncio.create_subprocess_exec(
            *self.argv(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(PROCESS_START_SECONDS):
                while len(self.env) < len(main.ENV_NAMES):
                    line = (await self.process.stdout.readline()).decode()
                    if not line:
                        raise RuntimeError(await self._stderr())
                    name, _, value = line.strip().partition("=")
                    self.env[name] = value
        except BaseException:
            await self.stop()
            raise
        self.url = self.env["QSTASH_URL"]
        self._session = aiohttp.ClientSession()
        return self

    async def _stderr(self) -> str:
        assert self.process is not None
        assert self.process.stderr is not None
        await self.process.wait()
        text = (await self.process.stderr.read()).decode()
        return f"qstash-server exited with {self.process.returncode}: {text}"

    async def stop(self) -> int | None:
        """SIGTERM, then wait; returns the exit status."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.terminate()
            try:
                async with asyncio.timeout(PROCESS_START_SECONDS):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


@dataclasses.dataclass
class _Loop:
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread


class ThreadedServer:
    """A :class:`RunningServer` on its own event loop in a daemon thread; sync controls."""

    def __init__(self, **options: Any) -> None:
        self.server = RunningServer(**options)
        self._loop: _Loop | None = None

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the server is not running")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop.loop)
        return future.result(timeout)

    def start(self) -> Self:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="qstash-server", daemon=True)
        thread.start()
        self._loop = _Loop(loop=loop, thread=thread)
        try:
            self._run(self.server.start(), PROCESS_START_SECONDS)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        with contextlib.suppress(RuntimeError):
            self._run(self.server.stop(), PROCESS_START_SECONDS)
        self._loop.loop.call_soon_threadsafe(self._loop.loop.stop)
        self._loop.thread.join(PROCESS_START_SECONDS)
        self._loop.loop.close()
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the same surface, synchronously --------------------------------------------------------

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token(self) -> str:
        return self.server.token

    @property
    def current_key(self) -> str:
        return self.server.current_key

    @property
    def next_key(self) -> str:
        return self.server.next_key

    @property
    def env(self) -> dict[str, str]:
        return self.server.env

    def now(self) -> datetime:
        return self._run(self.server.now())

    def advance(self, seconds: float) -> list[FiredTick]:
        return self._run(self.server.advance(seconds))

    def set_time(self, moment: datetime) -> list[FiredTick]:
        return self._run(self.server.set_time(moment))

    def fire(self, schedule_id: str, *, force: bool = False) -> str:
        return self._run(self.server.fire(schedule_id, force=force))

    def set_fault(self, kind: str, spec: dict[str, Any] | None) -> dict[str, Any]:
        return self._run(self.server.set_fault(kind, spec))

    def fail_api(
        self, count: int | None = 1, *, status: int = 500, routes: Sequence[str] | None = None
    ) -> None:
        self._run(self.server.fail_api(count, status=status, routes=routes))

    def rate_limit_api(
        self,
        count: int | None = 1,
        *,
        family: str = "burst",
        routes: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> None:
        self._run(self.server.rate_limit_api(count, family=family, routes=routes, limit=limit))

    def duplicate_deliveries(self, count: int | None = None, *, concurrent: bool = False) -> None:
        self._run(self.server.duplicate_deliveries(count, concurrent=concurrent))

    def delay_deliveries(self, seconds: float, count: int | None = None) -> None:
        self._run(self.server.delay_deliveries(seconds, count))

    def drop_responses(self, count: int | None = 1) -> None:
        self._run(self.server.drop_responses(count))

    def destination_down(self, count: int | None = None) -> None:
        self._run(self.server.destination_down(count))

    def destination_up(self) -> None:
        self._run(self.server.destination_up())

    def clear_faults(self) -> None:
        self._run(self.server.clear_faults())

    def deliveries(
        self, *, schedule_id: str | None = None, message_id: str | None = None
    ) -> list[Delivery]:
        return self._run(self.server.deliveries(schedule_id=schedule_id, message_id=message_id))

    def clear_deliveries(self) -> None:
        self._run(self.server.clear_deliveries())

    def messages(
        self, *, schedule_id: str | None = None, message_id: str | None = None
    ) -> list[MessageOutcome]:
        return self._run(self.server.messages(schedule_id=schedule_id, message_id=message_id))

    def api_calls(self) -> dict[str, int]:
        return self._run(self.server.api_calls())

    def api_call_log(self) -> list[dict[str, Any]]:
        return self._run(self.server.api_call_log())

    def reset_api_calls(self) -> None:
        self._run(self.server.reset_api_calls())

    def schedule_record(self, schedule_id: str) -> dict[str, Any]:
        return self._run(self.server.schedule_record(schedule_id))

    def set_settings(
        self, *, backoff_factor: float | None = None, strict_destinations: bool | None = None
    ) -> None:
        self._run(
            self.server.set_settings(
                backoff_factor=backoff_factor, strict_destinations=strict_destinations
            )
        )

    def settle(self, timeout: float = DEFAULT_WAIT_SECONDS) -> bool:
        return self._run(self.server.settle(timeout))

    def reset(self) -> None:
        self._run(self.server.reset())

    def wait_for_deliveries(
        self,
        count: int,
        *,
        schedule_id: str | None = None,
        message_id: str | None = None,
        outcome: str | None = None,
        timeout: float = DEFAULT_WAIT_SECONDS,
    ) -> list[Delivery]:
        return self._run(
            self.server.wait_for_deliveries(
                count,
                schedule_id=schedule_id,
                message_id=message_id,
                outcome=outcome,
                timeout=timeout,
            )
        )

    def wait_for_message(
        self, message_id: str, *, timeout: float = DEFAULT_WAIT_SECONDS
    ) -> MessageOutcome:
        return self._run(self.server.wait_for_message(message_id, timeout=timeout))
