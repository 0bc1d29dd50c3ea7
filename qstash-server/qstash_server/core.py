"""The server's use cases, independent of HTTP: what each API call does to the state.

The views in :mod:`app` only parse a request into a :mod:`model` request object, call one method
here, and turn the result or an :class:`model.ApiError` into a response; the test controls in
:mod:`controls` call the same object. It owns the store, the clock, the sender and the scheduler
and starts and stops them together.

Behaviours QStash does not document, chosen here (wire reference sections 2.2, 2.5, 9):

- **Upsert** (``Upstash-Schedule-Id`` of an existing schedule): the settings are replaced as a
  whole, as if the schedule were new (headers not sent return to their defaults), but
  ``createdAt``, ``isPaused`` and the trigger history (``lastScheduleTime``,
  ``lastScheduleStates``) are kept; ticks at or before the update never fire.
- **Unknown ids**: GET, DELETE, pause and resume answer 404 ``{"error": "schedule not found"}``.
  (The operator treats 404 on delete as success.)
- **Pause/resume** are idempotent: pausing a paused schedule is a 200 no-op (section 2).
- **Resume** does not replay ticks that fell during the pause.
- **Deleting** a schedule stops future ticks; its messages already in flight keep going
  (section 2.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import time
from collections.abc import Callable
from typing import Any, Final

from qstash_server import clock, config, events, model
from qstash_server.collector import BurstHold
from qstash_server.delivery import DeliveryLog, Runtime, Scheduler, Sender
from qstash_server.faults import ApiCalls, Faults
from qstash_server.state import SigningKeys, Store

MAX_SCHEDULES_ERROR: Final = "exceeded the maximum number of schedules allowed"  # section 2.1, 412


class Core:
    def __init__(
        self,
        server_config: config.ServerConfig,
        *,
        server_clock: clock.Clock | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = server_config
        if server_clock is None:
            server_clock = (
                clock.DrivenClock(server_config.start_time)
                if server_config.driven_clock
                else clock.RealClock()
            )
        self.clock = server_clock
        self.store = Store(
            path=server_config.state_path,
            keys=SigningKeys(
                current=server_config.current_signing_key or config.DEV_CURRENT_SIGNING_KEY,
                next=server_config.next_signing_key or config.DEV_NEXT_SIGNING_KEY,
            ),
        )
        self.runtime = Runtime(
            backoff_factor=server_config.backoff_factor,
            strict_destinations=server_config.strict_destinations,
        )
        self.faults = Faults()
        self.api_calls = ApiCalls(server_config.log_limit)
        self.delivery_log = DeliveryLog(server_config.log_limit)
        self.event_log = events.EventLog(server_config.log_limit)
        self.dead_letters = events.DeadLetters(server_config.log_limit)
        self.sender = Sender(
            store=self.store,
            config=server_config,
            runtime=self.runtime,
            server_clock=self.clock,
            faults=self.faults,
            delivery_log=self.delivery_log,
            on_finished=self._message_finished,
            wall=wall,
            event_log=self.event_log,
            dead_letters=self.dead_letters,
        )
        self.scheduler = Scheduler(
            store=self.store,
            server_clock=self.clock,
            sender=self.sender,
            max_advance_ticks=server_config.max_advance_ticks,
            hold=BurstHold(),
        )
        self._deduplication: dict[str, tuple[str, int]] = {}  # key -> (message id, expiry ms)
        self._saver: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        stored_keys = self.store.load()
        if stored_keys is not None:  # a rotation survives a restart unless keys are given
            if self.config.current_signing_key is None:
                self.store.keys.current = stored_keys.current
            if self.config.next_signing_key is None and stored_keys.next:
                self.store.keys.next = stored_keys.next
        await self.sender.start()
        self.scheduler.start()
        self._saver = asyncio.create_task(self.store.run_saver(), name="qstash-server state")
        await self.store.save()

    async def stop(self) -> None:
        await self.scheduler.stop()
        if self._saver is not None:
            self._saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saver
        await self.sender.close()  # in-flight messages stay in the store: they resume on start
        await self.store.save()

    def now_ms(self) -> int:
        return clock.to_ms(self.clock.now())

    # -- destinations ----------------------------------------------------------------------------

    async def check_destination(self, url: str) -> None:
        """In strict mode, refuse what production refuses: loopback and private addresses."""
        if not self.runtime.strict_destinations:
            return
        host = model.url_host(url)
        if model.restricted_address(host) is not None:
            addresses = [host]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, None, type=socket.SOCK_STREAM
                )
            except OSError:
                return  # unresolvable: let the delivery fail, as a later DNS change may fix it
            addresses = [str(info[4][0]) for info in infos]
        error = model.restricted_destination_error(addresses)
        if error is not None:
            raise error

    # -- schedules -------------------------------------------------------------------------------

    async def create_schedule(self, request: model.ScheduleRequest) -> str:
        await self.check_destination(request.settings.destination)
        now_ms = self.now_ms()
        existing = self.store.schedules.get(request.schedule_id) if request.schedule_id else None
        if existing is not None:
            record = dataclasses.replace(
                existing,
                cron_text=request.cron_text,
                schedule=request.schedule,
                settings=request.settings,
                considered_until_ms=max(existing.considered_until_ms, now_ms),
            )
        else:
            limit = self.config.max_schedules
            if limit is not None and len(self.store.schedules) >= limit:
                raise model.ApiError(412, MAX_SCHEDULES_ERROR)
            schedule_id = request.schedule_id
            while schedule_id is None or schedule_id in self.store.schedules:
                schedule_id = model.new_id(model.SCHEDULE_ID_PREFIX)
            record = model.ScheduleRecord(
                schedule_id=schedule_id,
                cron_text=request.cron_text,
                schedule=request.schedule,
                settings=request.settings,
                created_at_ms=now_ms,
                considered_until_ms=now_ms,
            )
        self.store.schedules[record.schedule_id] = record
        self.scheduler.schedule_changed(record.schedule_id)
        await self.store.save()
        return record.schedule_id

    def _record(self, schedule_id: str) -> model.ScheduleRecord:
        record = self.store.schedules.get(schedule_id)
        if record is None:
            raise model.ApiError(404, model.SCHEDULE_NOT_FOUND)
        return record

    def schedule_json(self, record: model.ScheduleRecord) -> dict[str, Any]:
        return model.schedule_json(
            record, next_schedule_time_ms=self.scheduler.next_schedule_time_ms(record)
        )

    def get_schedule(self, schedule_id: str) -> dict[str, Any]:
        return self.schedule_json(self._record(schedule_id))

    def list_schedules(self) -> list[dict[str, Any]]:
        records = sorted(
            self.store.schedules.values(), key=lambda r: (r.created_at_ms, r.schedule_id)
        )
        return [self.schedule_json(record) for record in records]

    async def delete_schedule(self, schedule_id: str) -> None:
        self._record(schedule_id)
        del self.store.schedules[schedule_id]
        self.scheduler.schedule_removed(schedule_id)
        await self.store.save()

    async def set_paused(self, schedule_id: str, *, paused: bool) -> None:
        record = self._record(schedule_id)
        if record.paused == paused:
            return
        cursor = record.considered_until_ms
        if not paused:  # ticks that fell during the pause are not replayed
            cursor = max(cursor, self.now_ms())
        self.store.schedules[schedule_id] = dataclasses.replace(
            record, paused=paused, considered_until_ms=cursor
        )
        self.scheduler.schedule_changed(schedule_id)
        await self.store.save()

    def _message_finished(self, message: model.MessageRecord, state: str) -> None:
        if message.schedule_id is None:
            return
        record = self.store.schedules.get(message.schedule_id)
        if record is None:
            return
        states = dict(record.last_schedule_states)
        if message.message_id in states:
            states[message.message_id] = state
            self.store.schedules[record.schedule_id] = dataclasses.replace(
                record, last_schedule_states=tuple(states.items())
            )

    # -- one-off messages ------------------------------------------------------------------------

    async def publish(self, request: model.PublishRequest) -> tuple[int, dict[str, Any]]:
        """``POST /v2/publish``: 200 with the new id, or 202 with the deduplicated one."""
        await self.check_destination(request.settings.destination)
        now_ms = self.now_ms()
        for old_key, (_, expires) in list(self._deduplication.items()):
            if expires <= now_ms:
                del self._deduplication[old_key]
        key = request.deduplication_id
        if key is None and request.content_based_deduplication:
            key = model.content_deduplication_key(request.settings)
        if key is not None and key in self._deduplication:
            existing_id, _ = self._deduplication[key]
            return 202, {"messageId": existing_id, "deduplicated": True}
        if request.not_before_s is not None:
            not_before_ms = request.not_before_s * 1000
        else:
            not_before_ms = now_ms + (request.settings.delay or 0) * 1000
        message = model.MessageRecord(
            message_id=model.new_id(model.MESSAGE_ID_PREFIX),
            settings=request.settings,
            created_at_ms=now_ms,
            not_before_ms=not_before_ms,
        )
        if key is not None:
            window_ms = config.DEDUPLICATION_WINDOW_SECONDS * 1000
            self._deduplication[key] = (message.message_id, now_ms + window_ms)
        self.sender.dispatch(message)
        await self.store.save()
        return 200, {"messageId": message.message_id}

    def get_message(self, message_id: str) -> dict[str, Any]:
        message = self.store.messages.get(message_id)
        if message is None:
            raise model.ApiError(404, model.MESSAGE_NOT_FOUND)
        return model.message_json(message)

    async def cancel_message(self, message_id: str) -> None:
        if not self.sender.cancel(message_id):
            raise model.ApiError(404, model.MESSAGE_NOT_FOUND)
        await self.store.save()

    # -- events and dead letters -------------------------------------------------------------

    def list_events(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            return self.event_log.query(params)
        except events.QueryError as exc:
            raise model.bad_request(str(exc)) from None

    def list_dead_letters(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            return self.dead_letters.query(params)
        except events.QueryError as exc:
            raise model.bad_request(str(exc)) from None

    def get_dead_letter(self, dlq_id: str) -> dict[str, Any]:
        return self.dead_letters.get(dlq_id)

    def delete_dead_letter(self, dlq_id: str) -> None:
        self.dead_letters.delete(dlq_id)

    # -- signing keys ----------------------------------------------------------------------------

    def keys_json(self) -> dict[str, str]:
        return {"current": self.store.keys.current, "next": self.store.keys.next}

    async def rotate_keys(self) -> dict[str, str]:
        """The next key becomes current, a fresh key becomes next (section 5, ``rotate``)."""
        self.store.keys.current = self.store.keys.next
        self.store.keys.next = model.new_signing_key()
        await self.store.save()
        return self.keys_json()

    # -- test controls -----------------------------------------------------------------------------

    async def reset(self) -> None:
        """Forget schedules, messages, logs, faults and counters (keys and clock stay)."""
        for message_id in list(self.store.messages):
            self.sender.cancel(message_id)
        for schedule_id in list(self.store.schedules):
            del self.store.schedules[schedule_id]
            self.scheduler.schedule_removed(schedule_id)
        self._deduplication.clear()
        self.faults.clear()
        self.api_calls.clear()
        self.delivery_log.clear()
        self.event_log.clear()
        self.dead_letters.clear()
        await self.store.save()
