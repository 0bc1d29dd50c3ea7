"""The server's memory: schedules, in-flight messages and signing keys, optionally on disk.

QStash does not lose schedules or accepted messages when it restarts, and the operator's tests of
"the operator restarted, QStash did not" need a server that behaves the same. With ``--state FILE``
everything acknowledged to a client is in the file before the answer leaves (API mutations call
:meth:`Store.save`), and delivery progress (states, retry counts) follows shortly after through a
debounced writer, so a burst of hundreds of deliveries costs a few writes, not hundreds.

The file is JSON, written atomically (a temporary file in the same folder, fsync, rename), so a
crash mid-write leaves the previous version. Schedules and messages are stored as the request that
made them (destination, the ``Upstash-*`` headers, the body) plus what the server learned since;
loading re-parses them with the same code as the API, so the settings can never drift from what a
fresh create would produce.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from qstash_server import model

FORMAT_VERSION: Final = 1
SAVE_DEBOUNCE_SECONDS: Final = 0.2
"""Delivery progress is written at most five times a second: cheap, and a restart loses at most a
fifth of a second of state changes (a message then retries once more: at-least-once anyway)."""

log = logging.getLogger(__name__)


class StateError(Exception):
    """The state file exists but cannot be read as ours."""


@dataclasses.dataclass
class SigningKeys:
    current: str
    next: str


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _settings_to_state(settings: model.DeliverySettings) -> dict[str, Any]:
    return {
        "destination": settings.destination,
        "headers": [list(pair) for pair in settings.source],
        "bodyBase64": _b64(settings.body),
        "callerIp": settings.caller_ip,
    }


def _settings_from_state(data: Mapping[str, Any]) -> model.DeliverySettings:
    return model.delivery_settings(
        destination=str(data["destination"]),
        source=tuple((str(name), str(value)) for name, value in data["headers"]),
        body=base64.b64decode(data["bodyBase64"], validate=True),
        caller_ip=data.get("callerIp"),
    )


def schedule_to_state(record: model.ScheduleRecord) -> dict[str, Any]:
    return {
        "scheduleId": record.schedule_id,
        "cron": record.cron_text,
        **_settings_to_state(record.settings),
        "createdAt": record.created_at_ms,
        "consideredUntil": record.considered_until_ms,
        "paused": record.paused,
        "lastScheduleTime": record.last_schedule_time_ms,
        "lastScheduleStates": [list(pair) for pair in record.last_schedule_states],
    }


def schedule_from_state(data: Mapping[str, Any]) -> model.ScheduleRecord:
    return model.ScheduleRecord(
        schedule_id=model.check_schedule_id(str(data["scheduleId"])),
        cron_text=str(data["cron"]),
        schedule=model.parse_cron(str(data["cron"])),
        settings=_settings_from_state(data),
        created_at_ms=int(data["createdAt"]),
        considered_until_ms=int(data["consideredUntil"]),
        paused=bool(data.get("paused", False)),
        last_schedule_time_ms=data.get("lastScheduleTime"),
        last_schedule_states=tuple(
            (str(mid), str(state)) for mid, state in data.get("lastScheduleStates", [])
        ),
    )


def message_to_state(message: model.MessageRecord) -> dict[str, Any]:
    return {
        "messageId": message.message_id,
        **_settings_to_state(message.settings),
        "createdAt": message.created_at_ms,
        "notBefore": message.not_before_ms,
        "scheduleId": message.schedule_id,
        "tick": message.tick_ms,
        "retried": message.retried,
    }


def message_from_state(data: Mapping[str, Any]) -> model.MessageRecord:
    return model.MessageRecord(
        message_id=str(data["messageId"]),
        settings=_settings_from_state(data),
        created_at_ms=int(data["createdAt"]),
        not_before_ms=int(data["notBefore"]),
        schedule_id=data.get("scheduleId"),
        tick_ms=data.get("tick"),
        retried=int(data.get("retried", 0)),
    )


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file, never half."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be fsynced
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


class Store:
    """In-memory state of one server, with optional persistence. Used from one event loop."""

    def __init__(self, *, path: Path | None, keys: SigningKeys) -> None:
        self.path = path
        self.keys = keys
        self.schedules: dict[str, model.ScheduleRecord] = {}
        self.messages: dict[str, model.MessageRecord] = {}  # accepted, not yet finished
        self._dirty = asyncio.Event()
        self._lock = asyncio.Lock()

    # -- load / save ---------------------------------------------------------------------------

    def load(self) -> SigningKeys | None:
        """Read the state file if there is one; returns the keys it held (None: no file)."""
        if self.path is None or not self.path.exists():
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StateError(f"cannot read state file {self.path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise StateError(f"{self.path} is not a version-{FORMAT_VERSION} state file")
        for item in data.get("schedules", []):
            try:
                record = schedule_from_state(item)
            except (KeyError, TypeError, ValueError, model.ApiError) as exc:
                log.warning(
                    "state: skipping unreadable schedule %r: %s", item.get("scheduleId"), exc
                )
                continue
            self.schedules[record.schedule_id] = record
        for item in data.get("messages", []):
            try:
                message = message_from_state(item)
            except (KeyError, TypeError, ValueError, model.ApiError) as exc:
                log.warning("state: skipping unreadable message %r: %s", item.get("messageId"), exc)
                continue
            self.messages[message.message_id] = message
        keys = data.get("keys")
        if isinstance(keys, dict) and isinstance(keys.get("current"), str):
            return SigningKeys(current=keys["current"], next=str(keys.get("next", "")))
        return None

    def dumps(self) -> str:
        return json.dumps(
            {
                "version": FORMAT_VERSION,
                "keys": {"current": self.keys.current, "next": self.keys.next},
                "schedules": [schedule_to_state(r) for r in self.schedules.values()],
                "messages": [message_to_state(m) for m in self.messages.values()],
            },
            indent=1,
        )

    async def save(self) -> None:
        """Write now (before answering a client whose change must survive a restart)."""
        if self.path is None:
            return
        self._dirty.clear()
        text = self.dumps()  # snapshot on the loop: consistent
        async with self._lock:
            await asyncio.to_thread(write_atomic, self.path, text)

    def mark_dirty(self) -> None:
        """Ask the background writer for a save soon."""
        if self.path is not None:
            self._dirty.set()

    async def run_saver(self) -> None:
        """Background task: coalesce :meth:`mark_dirty` calls into debounced writes."""
        if self.path is None:
            return
        while True:
            await self._dirty.wait()
            await asyncio.sleep(SAVE_DEBOUNCE_SECONDS)
            try:
                await self.save()
            except OSError:
                log.exception("state: cannot write %s; will retry on the next change", self.path)
