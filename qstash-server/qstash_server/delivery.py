"""Firing schedules and delivering messages: the scheduler loop and the signed sender.

The **sender** delivers one message as QStash does (wire reference section 3): the stored method,
body and forwarded headers, plus ``Upstash-Signature`` (an HS256 JWT made by the project's own
:func:`qstash_operator.domain.signature.sign` with the *current* key), ``Upstash-Message-Id``,
``Upstash-Retried`` (0, 1, ...), ``Upstash-Schedule-Id``, ``Upstash-Caller-Ip``, ``Upstash-Region``
and ``User-Agent: Upstash-QStash``. Any 2xx is success. Anything else (including a redirect, a
connection error or the per-attempt timeout) is a failed attempt, retried after the wait
:mod:`backoff` computes, up to ``Upstash-Retries`` retries, unless the destination answered 489
with ``Upstash-NonRetryable-Error: true``. Every attempt and every message outcome is logged for
the test controls; the message's state feeds the schedule's ``lastScheduleStates``; each step is
an event of ``GET /v2/events`` and a message that fails for good is a dead letter of
``GET /v2/dlq`` (:mod:`events`). A message is readable with ``GET /v2/messages/{id}`` exactly
while it is being delivered or waiting for a retry, and 404 once delivered or failed.

The **scheduler** keeps, per schedule, the next tick after its cursor (see :mod:`firing`) and
sleeps until the earliest one. On waking it fires each due schedule's latest missed tick only and
moves its cursor to "now"; a pass with anything due holds the cyclic collector off through the
burst it starts (:mod:`collector`). With a driven clock there is no loop: the controls call
:meth:`Scheduler.advance_to` (every tick in between, in order) or :meth:`Scheduler.fire`.

Waits inside a delivery (retry backoff, ``Upstash-Delay``, ``Upstash-Not-Before``) are multiplied
by the runtime ``backoff_factor`` so tests can run QStash's real schedule of waits in milliseconds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp
import yarl
from multidict import CIMultiDict

from qstash_operator.domain import signature
from qstash_server import backoff, clock, events, firing, model
from qstash_server.collector import BurstHold
from qstash_server.config import ServerConfig
from qstash_server.faults import Faults
from qstash_server.state import Store

log = logging.getLogger(__name__)

NON_RETRYABLE_STATUS: Final = 489
NON_RETRYABLE_HEADER: Final = "Upstash-NonRetryable-Error"
RESPONSE_BODY_LOG_BYTES: Final = 1024
"""How much of a destination's answer the attempt log keeps (enough for an error message)."""
REQUEST_BODY_LOG_BYTES: Final = 64 * 1024
"""How much of each delivered body the attempt log keeps: whole for any webhook payload, bounded
so that a log of ``log_limit`` attempts of 1 MB messages cannot eat gigabytes."""
MAX_IDLE_SECONDS: Final = 60.0
"""The scheduler loop re-checks at least once a minute even with no schedules (QStash's tick)."""
MIN_SLEEP_SECONDS: Final = 0.001
"""Floor of the loop's sleep, so a wake-up a hair before a tick does not spin."""
CANCELLED: Final = "CANCELLED"  # a message state of the log only (DELETE /v2/messages/{id})


@dataclasses.dataclass
class Runtime:
    """Settings the test controls may change while the server runs."""

    backoff_factor: float
    strict_destinations: bool


@dataclasses.dataclass(frozen=True)
class Fired:
    schedule_id: str
    tick_ms: int
    message_id: str

    def to_json(self) -> dict[str, Any]:
        return {"scheduleId": self.schedule_id, "tick": self.tick_ms, "messageId": self.message_id}


class DeliveryLog:
    """Recent attempts and message outcomes, bounded, for ``/__control/deliveries``/``messages``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.attempts: collections.deque[dict[str, Any]] = collections.deque(maxlen=limit)
        self.messages: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()

    def message_started(self, message: model.MessageRecord) -> None:
        self.messages[message.message_id] = {
            "messageId": message.message_id,
            "scheduleId": message.schedule_id,
            "url": message.settings.destination,
            "tick": message.tick_ms,
            "createdAt": message.created_at_ms,
            "notBefore": message.not_before_ms,
            "state": model.ScheduleState.IN_PROGRESS,
            "attempts": 0,
            "maxRetries": message.settings.retries,
        }
        while len(self.messages) > self.limit:
            self.messages.popitem(last=False)

    def attempted(self, entry: dict[str, Any]) -> None:
        self.attempts.append(entry)
        outcome = self.messages.get(entry["messageId"])
        if outcome is not None:
            outcome["attempts"] += 1

    def message_finished(self, message_id: str, state: str) -> None:
        outcome = self.messages.get(message_id)
        if outcome is not None:
            outcome["state"] = state

    def clear(self) -> None:
        self.attempts.clear()
        self.messages.clear()


@dataclasses.dataclass(frozen=True)
class _Result:
    success: bool
    non_retryable: bool
    response_headers: Mapping[str, str]
    entry: dict[str, Any]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _is_non_retryable(status: int | None, headers: Mapping[str, str]) -> bool:
    if status != NON_RETRYABLE_STATUS:
        return False
    lowered = {name.lower(): value for name, value in headers.items()}
    return lowered.get(NON_RETRYABLE_HEADER.lower(), "").strip().lower() == "true"


class Sender:
    """Delivers messages, one task each, over one pooled :class:`aiohttp.ClientSession`."""

    def __init__(
        self,
        *,
        store: Store,
        config: ServerConfig,
        runtime: Runtime,
        server_clock: clock.Clock,
        faults: Faults,
        delivery_log: DeliveryLog,
        on_finished: Callable[[model.MessageRecord, str], None],
        wall: Callable[[], float] = time.time,
        event_log: events.EventLog | None = None,
        dead_letters: events.DeadLetters | None = None,
    ) -> None:
        self._store = store
        self._config = config
        self._runtime = runtime
        self._clock = server_clock
        self._faults = faults
        self._log = delivery_log
        self._on_finished = on_finished
        self._wall = wall
        self._events = event_log or events.EventLog(config.log_limit)
        self._dead_letters = dead_letters or events.DeadLetters(config.log_limit)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._config.max_connections),
            cookie_jar=aiohttp.DummyCookieJar(),  # QStash keeps no cookies between deliveries
            trust_env=False,  # deliveries go where the schedule says, never via a proxy env
        )
        for message in list(self._store.messages.values()):  # accepted before a restart
            self._start_task(message)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def dispatch(self, message: model.MessageRecord) -> None:
        """Accept a message: remember it (it survives a restart) and start delivering it."""
        self._store.messages[message.message_id] = message
        self._store.mark_dirty()
        self._event(message, events.CREATED)
        self._start_task(message)

    def _start_task(self, message: model.MessageRecord) -> None:
        self._log.message_started(message)
        message_id = message.message_id
        task = asyncio.create_task(self._deliver(message_id), name=f"deliver {message_id}")
        self._tasks[message_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(message_id, None))

    def cancel(self, message_id: str) -> bool:
        """Drop a message not yet delivered (``DELETE /v2/messages/{id}``)."""
        message = self._store.messages.pop(message_id, None)
        task = self._tasks.pop(message_id, None)
        if task is not None:
            task.cancel()
        if message is None:
            return False
        self._event(message, events.CANCELED)
        self._log.message_finished(message_id, CANCELLED)
        self._store.mark_dirty()
        return True

    async def settle(self, seconds: float) -> bool:
        """Wait until no message is in flight (or ``seconds`` pass); True when idle."""
        deadline = asyncio.get_running_loop().time() + seconds
        while self._tasks:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            await asyncio.wait(list(self._tasks.values()), timeout=remaining)
        return True

    def _event(
        self,
        message: model.MessageRecord,
        state: str,
        *,
        response: events.Response | None = None,
        next_delivery_ms: int | None = None,
    ) -> None:
        self._events.record(
            message,
            state,
            at_ms=clock.to_ms(self._clock.now()),
            response=response,
            next_delivery_ms=next_delivery_ms,
        )

    async def _sleep(self, seconds: float) -> None:
        scaled = seconds * self._runtime.backoff_factor
        if scaled > 0:
            await asyncio.sleep(scaled)

    async def _deliver(self, message_id: str) -> None:
        message = self._store.messages.get(message_id)
        if message is None:
            return
        try:
            await self._sleep((message.not_before_ms - clock.to_ms(self._clock.now())) / 1000)
            duplicate = self._faults.take_duplicate()
            retried = message.retried
            while True:
                current = self._store.messages.get(message_id)
                if current is None:  # cancelled meanwhile
                    return
                self._event(current, events.ACTIVE)
                if duplicate and self._faults.duplicate_concurrent:
                    results = await asyncio.gather(
                        self._attempt(current, retried, duplicate=False),
                        self._attempt(current, retried, duplicate=True),
                    )
                    result = results[0] if results[0].success else results[1]
                    duplicate = False
                else:
                    result = await self._attempt(current, retried, duplicate=False)
                if result.success:
                    if duplicate:  # at-least-once made visible: the same message again
                        await self._attempt(current, retried, duplicate=True)
                    self._event(current, events.DELIVERED)
                    self._finish(current, model.ScheduleState.SUCCESS)
                    return
                response = _response(result)
                self._event(current, events.ERROR, response=response)
                if result.non_retryable or retried >= current.settings.retries:
                    self._event(current, events.FAILED, response=response)
                    self._dead_letters.add(
                        current, at_ms=clock.to_ms(self._clock.now()), response=response
                    )
                    self._finish(current, model.ScheduleState.FAIL)
                    return
                wait = backoff.retry_wait(
                    failed_attempts=retried + 1,
                    expression=current.settings.retry_delay,
                    response_headers=result.response_headers,
                    now=datetime.fromtimestamp(self._wall(), UTC),
                )
                self._event(
                    current,
                    events.RETRY,
                    next_delivery_ms=clock.to_ms(self._clock.now()) + round(wait * 1000),
                )
                result.entry["nextRetrySeconds"] = wait
                retried += 1
                self._store.messages[message_id] = dataclasses.replace(current, retried=retried)
                self._store.mark_dirty()
                await self._sleep(wait)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must not kill the server: record it and give up on the message
            log.exception("delivery of %s crashed", message_id)
            failed = self._store.messages.get(message_id)
            if failed is not None:
                self._event(failed, events.FAILED, response=events.Response(error="crashed"))
                self._finish(failed, model.ScheduleState.FAIL)

    def _finish(self, message: model.MessageRecord, state: str) -> None:
        self._store.messages.pop(message.message_id, None)
        self._log.message_finished(message.message_id, state)
        self._on_finished(message, state)
        self._store.mark_dirty()

    def _sign(self, message: model.MessageRecord) -> str:
        if self._config.signing_clock == "wall":
            now = int(self._wall())
        else:
            now = int(self._clock.now().timestamp())
        return signature.sign(
            body=message.settings.body,
            url=message.settings.destination,
            key=self._store.keys.current,
            now=now,
            jwt_id=model.new_id(model.JWT_ID_PREFIX),
            not_before=0 if self._config.not_before == "zero" else now,
        )

    async def _attempt(
        self, message: model.MessageRecord, retried: int, *, duplicate: bool
    ) -> _Result:
        latency = self._faults.take_latency()
        if latency > 0:
            await asyncio.sleep(latency)
        settings = message.settings
        headers = model.delivery_headers(
            settings=settings,
            message_id=message.message_id,
            schedule_id=message.schedule_id,
            retried=retried,
            signature=self._sign(message),
            region=self._config.region,
        )
        entry: dict[str, Any] = {
            "messageId": message.message_id,
            "scheduleId": message.schedule_id,
            "tick": message.tick_ms,
            "retried": retried,
            "duplicate": duplicate,
            "url": settings.destination,
            "method": settings.method,
            "headers": [list(pair) for pair in headers],
            **model.body_fields(settings.body[:REQUEST_BODY_LOG_BYTES]),
            "bodyTruncated": len(settings.body) > REQUEST_BODY_LOG_BYTES,
            "startedAt": int(self._wall() * 1000),
            "status": None,
            "error": None,
        }
        limit = settings.timeout if settings.timeout is not None else math.inf
        timeout = aiohttp.ClientTimeout(total=min(limit, self._config.max_attempt_seconds))
        status: int | None = None
        response_headers: dict[str, str] = {}
        assert self._session is not None, "Sender.start() was not awaited"
        try:
            if self._faults.take_down():
                raise aiohttp.ClientConnectionError(
                    "connection refused (injected: destinationDown)"
                )
            async with self._session.request(
                settings.method,
                yarl.URL(settings.destination, encoded=True),
                data=settings.body,
                headers=CIMultiDict(headers),
                timeout=timeout,
                allow_redirects=False,  # a 3xx is not a 2xx: a failed attempt [UNKNOWN upstream]
                skip_auto_headers=("Content-Type",) if settings.content_type is None else (),
            ) as response:
                status = response.status
                response_headers = dict(response.headers)
                answer = await response.content.read(RESPONSE_BODY_LOG_BYTES)
                entry["responseBody"] = answer.decode("utf-8", errors="replace")
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            entry["error"] = _describe(exc)
        entry["status"] = status
        entry["finishedAt"] = int(self._wall() * 1000)
        success = status is not None and 200 <= status < 300
        non_retryable = _is_non_retryable(status, response_headers)
        if success and not duplicate and self._faults.take_drop():
            success = False
            entry["error"] = "response dropped after the destination processed it (injected)"
            entry["outcome"] = "dropped"
        elif success:
            entry["outcome"] = "success"
        elif non_retryable:
            entry["outcome"] = "non_retryable"
        else:
            entry["outcome"] = "failed"
        self._log.attempted(entry)
        return _Result(
            success=success,
            non_retryable=non_retryable,
            response_headers=response_headers,
            entry=entry,
        )


def _response(result: _Result) -> events.Response:
    """The failed attempt's answer as events and dead letters report it."""
    return events.Response(
        status=result.entry.get("status"),
        headers=result.response_headers,
        body=str(result.entry.get("responseBody") or "").encode("utf-8"),
        error=result.entry.get("error"),
    )


class PausedError(Exception):
    """A test asked to fire a paused schedule without ``force``."""


class Scheduler:
    """Fires schedules on their ticks (real clock) or when the driven clock is moved."""

    def __init__(
        self,
        *,
        store: Store,
        server_clock: clock.Clock,
        sender: Sender,
        max_advance_ticks: int,
        hold: BurstHold | None = None,
    ) -> None:
        self._store = store
        self._clock = server_clock
        self._sender = sender
        self._max_advance_ticks = max_advance_ticks
        self._hold = hold
        """Switches the collector off through a pass that fires (the real-clock loop only)."""
        self._next_due: dict[str, datetime] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> list[Fired]:
        """Index the loaded schedules, fire the latest tick missed while down, start the loop."""
        for schedule_id in self._store.schedules:
            self._refresh(schedule_id)
        if self._clock.driven:
            return self.process(self._clock.now())
        fired = self._looped_pass(self._clock.now())
        self._task = asyncio.create_task(self._run(), name="qstash-server scheduler")
        return fired

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._hold is not None:
            self._hold.close()

    # -- bookkeeping -------------------------------------------------------------------------------

    def schedule_changed(self, schedule_id: str) -> None:
        self._refresh(schedule_id)
        self._wake.set()

    def schedule_removed(self, schedule_id: str) -> None:
        self._next_due.pop(schedule_id, None)

    def _refresh(self, schedule_id: str, cache: firing.TickCache | None = None) -> None:
        record = self._store.schedules[schedule_id]
        self._next_due[schedule_id] = (cache or firing.TickCache()).next_due(
            record.schedule, considered_until=clock.from_ms(record.considered_until_ms)
        )

    def next_schedule_time_ms(self, record: model.ScheduleRecord) -> int:
        """``nextScheduleTime``: the first tick after now (pausing does not move it)."""
        after = max(self._clock.now(), clock.from_ms(record.considered_until_ms))
        return clock.to_ms(firing.next_due(record.schedule, considered_until=after))

    # -- firing ------------------------------------------------------------------------------------

    def process(self, now: datetime) -> list[Fired]:
        """Fire the latest due tick of every schedule whose next tick has come (paused: skip)."""
        due = sorted(
            (tick, schedule_id) for schedule_id, tick in self._next_due.items() if tick <= now
        )
        fired: list[Fired] = []
        cache = firing.TickCache()
        for _, schedule_id in due:
            record = self._store.schedules.get(schedule_id)
            if record is None:
                self._next_due.pop(schedule_id, None)
                continue
            tick = cache.due_tick(
                record.schedule,
                considered_until=clock.from_ms(record.considered_until_ms),
                now=now,
            )
            record = dataclasses.replace(record, considered_until_ms=clock.to_ms(now))
            self._store.schedules[schedule_id] = record
            if tick is not None and not record.paused:
                fired.append(self._trigger(record, tick))
            self._refresh(schedule_id, cache)
        if due:
            self._store.mark_dirty()
        return fired

    def _looped_pass(self, now: datetime) -> list[Fired]:
        """A pass of the real-clock loop: the collector held off first when anything is due."""
        if self._hold is not None and any(tick <= now for tick in self._next_due.values()):
            self._hold.firing()
        return self.process(now)

    def _trigger(self, record: model.ScheduleRecord, tick: datetime) -> Fired:
        message_id = model.new_id(model.MESSAGE_ID_PREFIX)
        tick_ms = clock.to_ms(tick)
        delay_ms = (record.settings.delay or 0) * 1000
        message = model.MessageRecord(
            message_id=message_id,
            settings=record.settings,
            created_at_ms=clock.to_ms(self._clock.now()),
            not_before_ms=tick_ms + delay_ms,
            schedule_id=record.schedule_id,
            tick_ms=tick_ms,
        )
        self._store.schedules[record.schedule_id] = dataclasses.replace(
            record,
            last_schedule_time_ms=tick_ms,
            last_schedule_states=((message_id, model.ScheduleState.IN_PROGRESS),),
        )
        self._sender.dispatch(message)
        return Fired(schedule_id=record.schedule_id, tick_ms=tick_ms, message_id=message_id)

    def fire(self, schedule_id: str, *, force: bool = False) -> Fired:
        """Trigger now, off-schedule (a test control). KeyError if unknown."""
        record = self._store.schedules[schedule_id]
        if record.paused and not force:
            raise PausedError(schedule_id)
        return self._trigger(record, self._clock.now())

    def advance_to(self, target: datetime) -> list[Fired]:
        """Move the driven clock to ``target``, firing every tick in between in order."""
        driven = self._clock
        if not isinstance(driven, clock.DrivenClock):
            raise TypeError("only a driven clock can be advanced")
        if target < driven.now():
            raise ValueError("the clock does not go back")
        candidates = {
            schedule_id: (record.schedule, clock.from_ms(record.considered_until_ms))
            for schedule_id, record in self._store.schedules.items()
            if not record.paused
        }
        plan = firing.plan_advance(candidates, until=target, limit=self._max_advance_ticks)
        fired: list[Fired] = []
        for planned in plan:
            if planned.tick > driven.now():
                driven.set(planned.tick)
            record = self._store.schedules[planned.schedule_id]
            record = dataclasses.replace(record, considered_until_ms=clock.to_ms(planned.tick))
            fired.append(self._trigger(record, planned.tick))
        driven.set(target)
        target_ms = clock.to_ms(target)
        cache = firing.TickCache()
        for schedule_id, record in list(self._store.schedules.items()):
            if record.considered_until_ms < target_ms:
                self._store.schedules[schedule_id] = dataclasses.replace(
                    record, considered_until_ms=target_ms
                )
            self._refresh(schedule_id, cache)
        self._store.mark_dirty()
        return fired

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                self._looped_pass(self._clock.now())
            except Exception:  # keep firing the other schedules; a bug shows in the log
                log.exception("scheduler pass failed")
            nearest = min(self._next_due.values(), default=None)
            timeout = MAX_IDLE_SECONDS
            if nearest is not None:
                timeout = (nearest - self._clock.now()).total_seconds()
            timeout = min(max(timeout, MIN_SLEEP_SECONDS), MAX_IDLE_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
