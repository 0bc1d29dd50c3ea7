"""``/healthz`` (the process answers), ``/readyz`` (it can do its job), ``/metrics``.

Ready means both things a delivery needs: signing keys loaded, and the API server answering.
A webhook that is not ready still answers deliveries (503, so QStash retries later), which is
what lets it start before the API server is reachable.
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiohttp import web

from qstash_webhook import typedefs
from qstash_webhook.metrics import CONTENT_TYPE

READY_TIMEOUT_SECONDS: Final = 2.0
"""Below the kubelet's default probe timeout budget when probes set timeoutSeconds: 3; an API
server slower than this is not fit for the five API calls a delivery makes anyway."""


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    keys_loaded = request.app[typedefs.signing_keys_key].loaded
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            api = await request.app[typedefs.kube_key].ready()
    except TimeoutError:
        api = False
    ready = keys_loaded and api
    return web.json_response(
        {"ready": ready, "checks": {"signingKeys": keys_loaded, "kubernetesApi": api}},
        status=200 if ready else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    body = request.app[typedefs.metrics_key].exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response
