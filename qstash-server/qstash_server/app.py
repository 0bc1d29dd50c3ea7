"""The aiohttp application: QStash's v2 API on the raw request target, plus optional controls.

Routing is done here, by hand, on ``request.raw_path`` rather than by aiohttp's router, because
the destination travels unencoded in the path (wire reference section 2.1): ``POST
/v2/schedules/https://example.com/hook?x=1`` must keep its ``//`` and its query string, and a
router that normalises paths would corrupt it. ``/v2/schedules`` is matched case-insensitively
(the Go SDK sends ``/v2/Schedules``, section 1).

Every API call is counted by route name (see :data:`ROUTES`), then authenticated
(``Authorization: Bearer <token>`` or ``?qstash_token=``), then offered to the fault injector,
then served. Errors are QStash-shaped: ``{"error": "..."}`` with compact JSON, as a Go server
writes it.
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final
from urllib.parse import unquote

from aiohttp import web

from qstash_server import clock, controls, model
from qstash_server.config import ServerConfig
from qstash_server.core import Core
from qstash_server.typedefs import CONFIG_KEY, CORE_KEY

log = logging.getLogger(__name__)

# Route names: what /__control/api-calls counts and what API faults can target.
SCHEDULES_CREATE: Final = "schedules.create"
SCHEDULES_GET: Final = "schedules.get"
SCHEDULES_LIST: Final = "schedules.list"
SCHEDULES_DELETE: Final = "schedules.delete"
SCHEDULES_PAUSE: Final = "schedules.pause"
SCHEDULES_RESUME: Final = "schedules.resume"
PUBLISH: Final = "publish"
MESSAGES_GET: Final = "messages.get"
MESSAGES_CANCEL: Final = "messages.cancel"
EVENTS_LIST: Final = "events.list"
DLQ_LIST: Final = "dlq.list"
DLQ_GET: Final = "dlq.get"
DLQ_DELETE: Final = "dlq.delete"
KEYS_GET: Final = "keys.get"
KEYS_ROTATE: Final = "keys.rotate"
UNKNOWN: Final = "unknown"
ROUTES: Final = (
    SCHEDULES_CREATE,
    SCHEDULES_GET,
    SCHEDULES_LIST,
    SCHEDULES_DELETE,
    SCHEDULES_PAUSE,
    SCHEDULES_RESUME,
    PUBLISH,
    MESSAGES_GET,
    MESSAGES_CANCEL,
    EVENTS_LIST,
    DLQ_LIST,
    DLQ_GET,
    DLQ_DELETE,
    KEYS_GET,
    KEYS_ROTATE,
)

_dumps = functools.partial(json.dumps, separators=(",", ":"))
_ID_ACTION = re.compile(r"^([A-Za-z0-9._~%-]+)/(pause|resume)/?$", re.IGNORECASE)


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=_dumps)


def error_response(error: model.ApiError, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(error.body(), status=error.status, headers=headers)


@dataclasses.dataclass(frozen=True)
class Route:
    name: str
    argument: str = ""  # an id (decoded), or the raw "<destination>[?query]" for create/publish


def _single(segment: str) -> str | None:
    """A single path segment (an id), percent-decoded; None if it holds a slash."""
    segment = segment.rstrip("/")
    if not segment or "/" in segment:
        return None
    return unquote(segment)


def resolve(method: str, raw_target: str) -> Route:
    """Map a method and raw request target to a route; :class:`model.ApiError` 404/405."""
    path, separator, query = raw_target.partition("?")
    with_query = separator + query
    lowered = path.lower()
    not_found = model.ApiError(404, "not found")
    not_allowed = model.ApiError(405, "method not allowed")

    if lowered in ("/v2/schedules", "/v2/schedules/"):
        if method == "GET":
            return Route(SCHEDULES_LIST)
        raise not_allowed
    if lowered.startswith("/v2/schedules/"):
        tail = path[len("/v2/schedules/") :]
        action = _ID_ACTION.match(tail)
        if action is not None and method in ("POST", "PATCH"):  # SDKs: PATCH; docs: POST
            name = SCHEDULES_PAUSE if action.group(2).lower() == "pause" else SCHEDULES_RESUME
            return Route(name, unquote(action.group(1)))
        if method == "POST":
            return Route(SCHEDULES_CREATE, tail + with_query)
        schedule_id = _single(tail)
        if schedule_id is None:
            raise not_found
        if method == "GET":
            return Route(SCHEDULES_GET, schedule_id)
        if method == "DELETE":
            return Route(SCHEDULES_DELETE, schedule_id)
        raise not_allowed
    if lowered.startswith("/v2/publish/"):
        if method != "POST":
            raise not_allowed
        return Route(PUBLISH, path[len("/v2/publish/") :] + with_query)
    if lowered.startswith("/v2/messages/"):
        message_id = _single(path[len("/v2/messages/") :])
        if message_id is None:
            raise not_found
        if method == "GET":
            return Route(MESSAGES_GET, message_id)
        if method == "DELETE":
            return Route(MESSAGES_CANCEL, message_id)
        raise not_allowed
    if lowered in ("/v2/events", "/v2/events/"):
        if method == "GET":
            return Route(EVENTS_LIST)
        raise not_allowed
    if lowered in ("/v2/dlq", "/v2/dlq/"):
        if method == "GET":
            return Route(DLQ_LIST)
        raise not_allowed
    if lowered.startswith("/v2/dlq/"):
        dlq_id = _single(path[len("/v2/dlq/") :])
        if dlq_id is None:
            raise not_found
        if method == "GET":
            return Route(DLQ_GET, dlq_id)
        if method == "DELETE":
            return Route(DLQ_DELETE, dlq_id)
        raise not_allowed
    if lowered in ("/v2/keys", "/v2/keys/"):
        if method == "GET":
            return Route(KEYS_GET)
        raise not_allowed
    if lowered in ("/v2/keys/rotate", "/v2/keys/rotate/"):
        if method == "POST":
            return Route(KEYS_ROTATE)
        raise not_allowed
    raise not_found


def authorized(request: web.Request, token: str) -> bool:
    """Bearer header, or the ``qstash_token`` query parameter (section 1); constant-time."""
    expected = token.encode()
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), expected):
        return True
    query_token = request.query.get("qstash_token")
    return query_token is not None and hmac.compare_digest(query_token.encode(), expected)


async def _read_body(request: web.Request, limit: int) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise model.ApiError(413, f"message size exceeds the limit of {limit} bytes") from exc


Handler = Callable[[web.Request, Core, Route], Awaitable[web.Response]]


async def _create_schedule(request: web.Request, core: Core, route: Route) -> web.Response:
    target = model.split_target(route.argument)
    body = await _read_body(request, core.config.max_message_bytes)
    parsed = model.parse_schedule_request(
        destination=target.destination,
        headers=model.merge_query_headers(tuple(request.headers.items()), target.query_headers),
        body=body,
        caller_ip=request.remote,
    )
    schedule_id = await core.create_schedule(parsed)
    return json_response({"scheduleId": schedule_id})


async def _get_schedule(request: web.Request, core: Core, route: Route) -> web.Response:
    return json_response(core.get_schedule(route.argument))


async def _list_schedules(request: web.Request, core: Core, route: Route) -> web.Response:
    return json_response(core.list_schedules())


async def _delete_schedule(request: web.Request, core: Core, route: Route) -> web.Response:
    await core.delete_schedule(route.argument)
    return web.Response(status=200)


async def _pause_schedule(request: web.Request, core: Core, route: Route) -> web.Response:
    await core.set_paused(route.argument, paused=True)
    return web.Response(status=200)


async def _resume_schedule(request: web.Request, core: Core, route: Route) -> web.Response:
    await core.set_paused(route.argument, paused=False)
    return web.Response(status=200)


async def _publish(request: web.Request, core: Core, route: Route) -> web.Response:
    target = model.split_target(route.argument)
    body = await _read_body(request, core.config.max_message_bytes)
    parsed = model.parse_publish_request(
        destination=target.destination,
        headers=model.merge_query_headers(tuple(request.headers.items()), target.query_headers),
        body=body,
        caller_ip=request.remote,
    )
    status, answer = await core.publish(parsed)
    return json_response(answer, status=status)


async def _get_message(request: web.Request, core: Core, route: Route) -> web.Response:
    return json_response(core.get_message(route.argument))


async def _cancel_message(request: web.Request, core: Core, route: Route) -> web.Response:
    await core.cancel_message(route.argument)
    return web.Response(status=202)


def _query(request: web.Request) -> dict[str, str]:
    """Query parameters; one given several times (the SDK's ``messageIds``) joined by commas."""
    return {name: ",".join(request.query.getall(name)) for name in set(request.query.keys())}


async def _list_events(request: web.Request, core: Core, route: Route) -> web.Response:
    return json_response(core.list_events(_query(request)))


async def _list_dead_letters(request: web.Request, core: Core, route: Route) -> web.Response:
    return json_response(core.list_dead_letters(_query(request)))


async def _get_dead_letter(request: web.Request, core: Core, route: Route) -> web.Response:
    return json_response(core.get_dead_letter(route.argument))


async def _delete_dead_letter(request: web.Request, core: Core, route: Route) -> web.Response:
    core.delete_dead_letter(route.argument)
    return web.Response(status=200)


async def _get_keys(request: web.Request, core: Core, route: Route) -> web.Response:
    return json_response(core.keys_json())


async def _rotate_keys(request: web.Request, core: Core, route: Route) -> web.Response:
    return json_response(await core.rotate_keys())


HANDLERS: Final[dict[str, Handler]] = {
    SCHEDULES_CREATE: _create_schedule,
    SCHEDULES_GET: _get_schedule,
    SCHEDULES_LIST: _list_schedules,
    SCHEDULES_DELETE: _delete_schedule,
    SCHEDULES_PAUSE: _pause_schedule,
    SCHEDULES_RESUME: _resume_schedule,
    PUBLISH: _publish,
    MESSAGES_GET: _get_message,
    MESSAGES_CANCEL: _cancel_message,
    EVENTS_LIST: _list_events,
    DLQ_LIST: _list_dead_letters,
    DLQ_GET: _get_dead_letter,
    DLQ_DELETE: _delete_dead_letter,
    KEYS_GET: _get_keys,
    KEYS_ROTATE: _rotate_keys,
}


async def _serve(request: web.Request, core: Core) -> tuple[str, web.Response]:
    try:
        route = resolve(request.method, request.raw_path)
    except model.ApiError as exc:
        return UNKNOWN, error_response(exc)
    if not authorized(request, core.config.token):
        return route.name, error_response(model.ApiError(401, model.UNAUTHORIZED))
    fault = core.faults.take_api_fault(route.name, now=core.clock.now())
    if fault is not None:
        return route.name, error_response(
            model.ApiError(fault.status, fault.message), dict(fault.headers)
        )
    try:
        return route.name, await HANDLERS[route.name](request, core, route)
    except model.ApiError as exc:
        return route.name, error_response(exc)


async def api(request: web.Request) -> web.Response:
    """Every request outside ``/__control/``: count it, then serve it."""
    core = request.app[CORE_KEY]
    at_ms = clock.to_ms(core.clock.now())
    name, response = await _serve(request, core)
    entry = core.api_calls.record(
        route=name, method=request.method, path=request.raw_path.partition("?")[0], at_ms=at_ms
    )
    entry["status"] = response.status
    return response


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Unexpected exceptions become a logged 500 with QStash's error shape, never a traceback."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error serving %s %s", request.method, request.raw_path)
        return json_response({"error": "internal server error"}, status=500)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    core = app[CORE_KEY]
    await core.start()
    yield
    await core.stop()


def make_app(
    server_config: ServerConfig,
    *,
    server_clock: clock.Clock | None = None,
    wall: Callable[[], float] = time.time,
) -> web.Application:
    """The app for ``qstash-operator qstash-server`` and for in-process tests alike."""
    app = web.Application(client_max_size=server_config.max_message_bytes, middlewares=[_errors])
    app[CONFIG_KEY] = server_config
    app[CORE_KEY] = Core(server_config, server_clock=server_clock, wall=wall)
    app.cleanup_ctx.append(_lifecycle)
    if server_config.test_controls:
        controls.setup_routes(app)
    app.router.add_route("*", "/{tail:.*}", api)
    return app
