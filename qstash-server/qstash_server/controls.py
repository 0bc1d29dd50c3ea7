"""Test controls under ``/__control/``: served only with ``--test-controls``, never authenticated.

They exist so tests never wait for the wall clock and can make QStash misbehave on purpose:

==========================================  =====================================================
``GET  /__control/clock``                   ``{"now": iso, "nowMs": ms, "driven": bool}``
``POST /__control/clock/advance``           ``{"seconds": s}``: fire every tick in between, in
                                            order; answers the clock plus ``"fired"``
``POST /__control/clock/set``               ``{"time": iso}`` or ``{"ms": ms}``, forward only
``POST /__control/schedules/{id}/fire``     trigger now; ``{"force": true}`` fires a paused one
``GET  /__control/schedules/{id}``          the stored record, including what is not acted on
``GET|POST|DELETE /__control/faults``       see :meth:`faults.Faults.configure`
``GET|DELETE /__control/deliveries``        attempts, filter ``?scheduleId=`` ``?messageId=``
``GET  /__control/messages``                message outcomes, same filters
``GET|DELETE /__control/api-calls``         ``{"counts": {route: n}, "total": n, "calls": [...]}``
``GET|POST /__control/settings``            ``{"backoffFactor": f, "strictDestinations": b}``
``POST /__control/settle``                  ``{"timeout": s}``: wait until nothing is in flight
``POST /__control/reset``                   forget schedules, messages, logs, faults, counters
==========================================  =====================================================

Errors use the API's shape, ``{"error": "..."}``.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Any, Final

from aiohttp import web

from qstash_server import clock, firing, model, state
from qstash_server.delivery import PausedError
from qstash_server.faults import FaultError
from qstash_server.typedefs import CORE_KEY

PREFIX: Final = "/__control"
MAX_SETTLE_SECONDS: Final = 300.0
"""Longest a settle request may hold its connection; tests use a few seconds."""


def _json(data: Any, *, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"body is not JSON: {exc}"}), content_type="application/json"
        ) from exc
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be a JSON object"}),
            content_type="application/json",
        )
    return data


def _clock_json(request: web.Request) -> dict[str, Any]:
    core = request.app[CORE_KEY]
    now = core.clock.now()
    return {"now": now.isoformat(), "nowMs": clock.to_ms(now), "driven": core.clock.driven}


async def clock_get(request: web.Request) -> web.Response:
    return _json(_clock_json(request))


async def _move_clock(request: web.Request, target: datetime) -> web.Response:
    core = request.app[CORE_KEY]
    if not core.clock.driven:
        return _error(409, "the clock is real; start the server with a driven clock")
    try:
        fired = core.scheduler.advance_to(target)
    except firing.TooManyTicksError as exc:
        return _error(400, str(exc))
    except ValueError as exc:
        return _error(400, str(exc))
    return _json({**_clock_json(request), "fired": [item.to_json() for item in fired]})


async def clock_advance(request: web.Request) -> web.Response:
    body = await _body(request)
    seconds = body.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        return _error(400, "seconds must be a non-negative number")
    if not math.isfinite(seconds):
        return _error(400, "seconds must be finite")
    core = request.app[CORE_KEY]
    return await _move_clock(request, core.clock.now() + timedelta(seconds=seconds))


async def clock_set(request: web.Request) -> web.Response:
    body = await _body(request)
    target: datetime
    if isinstance(body.get("ms"), int) and not isinstance(body.get("ms"), bool):
        target = clock.from_ms(body["ms"])
    elif isinstance(body.get("time"), str):
        try:
            target = datetime.fromisoformat(body["time"].replace("Z", "+00:00"))
        except ValueError:
            return _error(400, "time must be an ISO 8601 instant")
        if target.tzinfo is None:
            return _error(400, "time must carry a UTC offset")
    else:
        return _error(400, 'give {"time": "<ISO 8601>"} or {"ms": <unix ms>}')
    return await _move_clock(request, target)


async def schedule_fire(request: web.Request) -> web.Response:
    core = request.app[CORE_KEY]
    body = await _body(request)
    schedule_id = request.match_info["schedule_id"]
    try:
        fired = core.scheduler.fire(schedule_id, force=bool(body.get("force", False)))
    except KeyError:
        return _error(404, model.SCHEDULE_NOT_FOUND)
    except PausedError:
        return _error(409, 'schedule is paused; send {"force": true} to fire it anyway')
    return _json(fired.to_json())


async def schedule_record(request: web.Request) -> web.Response:
    core = request.app[CORE_KEY]
    record = core.store.schedules.get(request.match_info["schedule_id"])
    if record is None:
        return _error(404, model.SCHEDULE_NOT_FOUND)
    settings = record.settings
    return _json(
        {
            "schedule": core.schedule_json(record),
            "stored": state.schedule_to_state(record),
            "callbackOptions": model.header_map(settings.callback_options),
            "failureCallbackOptions": model.header_map(settings.failure_callback_options),
            "redactFields": settings.redact_fields,
        }
    )


async def faults_get(request: web.Request) -> web.Response:
    return _json(request.app[CORE_KEY].faults.to_json())


async def faults_set(request: web.Request) -> web.Response:
    faults = request.app[CORE_KEY].faults
    try:
        faults.configure(await _body(request))
    except FaultError as exc:
        return _error(400, str(exc))
    return _json(faults.to_json())


async def faults_clear(request: web.Request) -> web.Response:
    faults = request.app[CORE_KEY].faults
    faults.clear()
    return _json(faults.to_json())


def _matches(entry: dict[str, Any], request: web.Request) -> bool:
    for key in ("scheduleId", "messageId"):
        wanted = request.query.get(key)
        if wanted is not None and entry.get(key) != wanted:
            return False
    return True


async def deliveries_get(request: web.Request) -> web.Response:
    attempts = request.app[CORE_KEY].delivery_log.attempts
    return _json({"deliveries": [entry for entry in attempts if _matches(entry, request)]})


async def deliveries_clear(request: web.Request) -> web.Response:
    request.app[CORE_KEY].delivery_log.clear()
    return _json({"deliveries": []})


async def messages_get(request: web.Request) -> web.Response:
    outcomes = request.app[CORE_KEY].delivery_log.messages.values()
    return _json({"messages": [entry for entry in outcomes if _matches(entry, request)]})


async def api_calls_get(request: web.Request) -> web.Response:
    return _json(request.app[CORE_KEY].api_calls.to_json())


async def api_calls_clear(request: web.Request) -> web.Response:
    calls = request.app[CORE_KEY].api_calls
    calls.clear()
    return _json(calls.to_json())


def _settings_json(request: web.Request) -> dict[str, Any]:
    runtime = request.app[CORE_KEY].runtime
    return {
        "backoffFactor": runtime.backoff_factor,
        "strictDestinations": runtime.strict_destinations,
    }


async def settings_get(request: web.Request) -> web.Response:
    return _json(_settings_json(request))


async def settings_set(request: web.Request) -> web.Response:
    runtime = request.app[CORE_KEY].runtime
    body = await _body(request)
    if "backoffFactor" in body:
        factor = body["backoffFactor"]
        if isinstance(factor, bool) or not isinstance(factor, int | float) or factor < 0:
            return _error(400, "backoffFactor must be a non-negative number")
        runtime.backoff_factor = float(factor)
    if "strictDestinations" in body:
        if not isinstance(body["strictDestinations"], bool):
            return _error(400, "strictDestinations must be true or false")
        runtime.strict_destinations = body["strictDestinations"]
    return _json(_settings_json(request))


async def settle(request: web.Request) -> web.Response:
    core = request.app[CORE_KEY]
    body = await _body(request)
    timeout = body.get("timeout", 10.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        return _error(400, "timeout must be a non-negative number")
    idle = await core.sender.settle(min(float(timeout), MAX_SETTLE_SECONDS))
    return _json({"idle": idle, "pending": core.sender.pending})


async def reset(request: web.Request) -> web.Response:
    await request.app[CORE_KEY].reset()
    return _json({"reset": True})


def setup_routes(app: web.Application) -> None:
    router = app.router
    router.add_get(f"{PREFIX}/clock", clock_get)
    router.add_post(f"{PREFIX}/clock/advance", clock_advance)
    router.add_post(f"{PREFIX}/clock/set", clock_set)
    router.add_post(f"{PREFIX}/schedules/{{schedule_id}}/fire", schedule_fire)
    router.add_get(f"{PREFIX}/schedules/{{schedule_id}}", schedule_record)
    router.add_get(f"{PREFIX}/faults", faults_get)
    router.add_post(f"{PREFIX}/faults", faults_set)
    router.add_delete(f"{PREFIX}/faults", faults_clear)
    router.add_get(f"{PREFIX}/deliveries", deliveries_get)
    router.add_delete(f"{PREFIX}/deliveries", deliveries_clear)
    router.add_get(f"{PREFIX}/messages", messages_get)
    router.add_get(f"{PREFIX}/api-calls", api_calls_get)
    router.add_delete(f"{PREFIX}/api-calls", api_calls_clear)
    router.add_get(f"{PREFIX}/settings", settings_get)
    router.add_post(f"{PREFIX}/settings", settings_set)
    router.add_post(f"{PREFIX}/settle", settle)
    router.add_post(f"{PREFIX}/reset", reset)
