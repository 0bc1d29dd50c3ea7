"""The console's routes under ``/ui/``: three static files, JSON for its pages, and the actions.

================================================  =============================================
route                                             what
================================================  =============================================
``GET /ui/``, ``/ui/app.js``, ``/ui/app.css``     the page (shipped in this package, no CDN)
``GET /ui/api/session``                           who the token belongs to (sign-in)
``GET /ui/api/cronworkflows[?namespace=ns]``      the list page's rows
``GET /ui/api/cronworkflows/{ns}/{name}``         the detail page
``POST /ui/api/cronworkflows/{ns}/{name}/         the seed's views (``api.activate``,
activate|deactivate|run``                         ``api.deactivate``, ``api.run_now``)
================================================  =============================================

Why the actions are mounted again under ``/ui/api/``: the whole console then lives under one
prefix, which is what an Ingress publishes (``webhook.ingress.exposeUI``) without also
publishing the scripts' ``/api/cron*``; the handlers, and so the checks, are the same.

Security, by construction rather than by care:

- the only credential is the bearer token the page sends in ``Authorization``; no cookie is ever
  set, so a cross-site request carries nothing and CSRF has nothing to ride on, and no CORS header
  is sent, so another origin cannot read an answer or send that header;
- every ``/ui`` answer carries a strict Content-Security-Policy (scripts and styles from this
  origin only, no inline code, Trusted Types required so no string becomes markup, no framing, no
  form submission), ``nosniff``, ``no-referrer`` and no caching of the JSON;
- the static files are read from the package once, at start, and served from memory with an
  ETag: nothing on disk is looked up by a request's path.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Final

from aiohttp import web

from qstash_webhook import api, typedefs
from qstash_webhook.errors import ApiError

PREFIX: Final = "/ui"
CONTENT_SECURITY_POLICY: Final = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
ASSETS: Final = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}


@dataclasses.dataclass(frozen=True)
class Asset:
    content_type: str
    body: bytes
    gzipped: bytes
    etag: str


def load_assets() -> dict[str, Asset]:
    """The page's files from this package, each with its gzip form and ETag, read once."""
    folder = resources.files("qstash_webhook.console").joinpath("static")
    loaded = {}
    for name, content_type in ASSETS.items():
        body = folder.joinpath(name).read_bytes()
        loaded[name] = Asset(
            content_type=content_type,
            body=body,
            gzipped=gzip.compress(body, compresslevel=9, mtime=0),
            etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        )
    return loaded


assets_key: web.AppKey[dict[str, Asset]] = web.AppKey("console_assets")


def _asset_handler(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def serve(request: web.Request) -> web.StreamResponse:
        asset = request.app[assets_key][name]
        headers = {"ETag": asset.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        if request.headers.get("If-None-Match") == asset.etag:
            return web.Response(status=304, headers=headers)
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            body = asset.gzipped
        else:
            body = asset.body
        return web.Response(body=body, headers={**headers, "Content-Type": asset.content_type})

    return serve


async def _redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPPermanentRedirect(f"{PREFIX}/")


def _json(payload: object) -> web.Response:
    response = web.json_response(payload)
    response.enable_compression()
    return response


async def session(request: web.Request) -> web.Response:
    user = await api.authenticate(request)
    return _json({"username": user.username, "groups": list(user.groups)})


async def cronworkflows(request: web.Request) -> web.Response:
    now = request.app[typedefs.clock_key]()
    raw = request.query.get("namespace") or None
    namespace = api.parse_namespace(raw) if raw else None
    user = await api.authenticate(request)
    page = await request.app[typedefs.console_key].list_page(user, namespace=namespace, now=now)
    return _json(page)


async def cronworkflow(request: web.Request) -> web.Response:
    now = request.app[typedefs.clock_key]()
    namespace = api.parse_namespace(request.match_info["namespace"])
    name = api.parse_name(request.match_info["name"])
    user = await api.authenticate(request)
    page = await request.app[typedefs.console_key].detail_page(
        user, namespace=namespace, name=name, now=now
    )
    return _json(page)


async def run(request: web.Request) -> web.Response:
    namespace = api.parse_namespace(request.match_info["namespace"])
    name = api.parse_name(request.match_info["name"])
    return await api.run_now(request, namespace=namespace, name=name)


async def not_found(request: web.Request) -> web.StreamResponse:
    raise ApiError(404, "NotFound", f"no console route {request.path}")


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The console's headers on every ``/ui`` answer, errors and redirects included."""
    if request.path != PREFIX and not request.path.startswith(PREFIX + "/"):
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(SECURITY_HEADERS)
        raise
    response.headers.update(SECURITY_HEADERS)
    if request.path.startswith(f"{PREFIX}/api/"):
        response.headers["Cache-Control"] = "no-store"
    return response


def setup(app: web.Application) -> None:
    """Mount the console (``webhook.ui.enabled``; on by default)."""
    app[assets_key] = load_assets()
    router = app.router
    router.add_get(PREFIX, _redirect)
    router.add_get(f"{PREFIX}/", _asset_handler("index.html"), name="console")
    for name in ASSETS:
        if name != "index.html":
            router.add_get(f"{PREFIX}/{name}", _asset_handler(name))
    base = f"{PREFIX}/api"
    one = f"{base}/cronworkflows/{{namespace}}/{{name}}"
    router.add_get(f"{base}/session", session)
    router.add_get(f"{base}/cronworkflows", cronworkflows)
    router.add_get(one, cronworkflow)
    router.add_post(f"{one}/activate", api.activate)
    router.add_post(f"{one}/deactivate", api.deactivate)
    router.add_post(f"{one}/run", run)
    router.add_route("*", f"{PREFIX}/{{tail:.*}}", not_found)
