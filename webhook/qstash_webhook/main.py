"""``qstash-operator webhook [--host] [--port]``: serve deliveries and the seed's API.

Start-up order, and why:

1. settings and signing keys first: without both keys and the public URL nothing can be verified,
   and without the QStash token no retry can be matched to its tick, so the process stops here
   with the variable's name (exit code 2 from the CLI);
2. the Kubernetes client is *configured* (kubeconfig or in-cluster) but not contacted: an API
   server that is down or still booting must not stop the webhook, which answers deliveries 503
   with ``Retry-After`` until the API answers, and reports it on ``/readyz``;
3. serve until SIGTERM/SIGINT, then close the listener and the client.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from typing import Final

from aiohttp import web

from qstash_operator import __version__
from qstash_operator.adapters.kube import MAX_CONNECTIONS, Kube
from qstash_operator.adapters.signing_keys import SigningKeySource
from qstash_operator.domain.errors import SettingsError
from qstash_operator.settings import Settings
from qstash_webhook import logs, typedefs
from qstash_webhook.access import REVIEW_CONNECTIONS
from qstash_webhook.app import make_app

logger = logging.getLogger(__name__)

DEFAULT_PORT: Final = 8080
SHUTDOWN_GRACE_SECONDS: Final = 10.0
"""In-flight deliveries get this long to finish after SIGTERM: well below the kubelet's default
30 s grace period, and each delivery is a handful of API calls."""
LINGER_SECONDS: Final = 2.0
"""After answering a request whose body is still arriving (408, 413), aiohttp keeps reading and
discarding it this long before closing, so the client sees the answer rather than a reset; its
default of 10 s would let a trickling client hold the connection five times longer than the
body deadline itself."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default="0.0.0.0",  # noqa: S104 -- in a Pod the Service reaches us on the Pod IP
        help="address to listen on (default: all interfaces)",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig file when not running in a Pod (default: $KUBECONFIG, ~/.kube/config)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.epilog = (
        "Environment: WEBHOOK_PUBLIC_URL, the signing keys (QSTASH_CURRENT_SIGNING_KEY, "
        "QSTASH_NEXT_SIGNING_KEY, or QSTASH_SIGNING_KEYS_DIR) and QSTASH_TOKEN (a retried "
        "delivery's tick is looked up in QStash; QSTASH_URL when not Upstash) are required; "
        "QSTASH_OPERATOR_CLOCK_TOLERANCE, QSTASH_OPERATOR_API_AUDIENCE (default qstash-operator) "
        "are optional."
    )


USER_AGENT: Final = f"qstash-operator-webhook/{__version__}"
"""How the API server's audit log and metrics tell the webhook's calls from the operator's."""


async def _connect(kubeconfig: str | None, *, max_connections: int = MAX_CONNECTIONS) -> Kube:
    try:
        return await Kube.from_environment(
            kubeconfig, max_connections=max_connections, user_agent=USER_AGENT
        )
    except Exception as exc:  # the client raises its own config errors; none is recoverable
        raise SettingsError(
            "KUBECONFIG",
            f"no usable Kubernetes configuration ({type(exc).__name__}: {exc})",
            "run in a Pod with a ServiceAccount, or point --kubeconfig/KUBECONFIG at a file",
        ) from exc


async def clients(kubeconfig: str | None, *, watches: int = 2) -> tuple[Kube, Kube, Kube]:
    """Three clients of the same cluster with a connection pool each: one for deliveries and the
    API's work, one for token reviews (:mod:`qstash_webhook.access`), so that a flood of bad
    tokens cannot take the connections a delivery is waiting for, and one for the caches'
    lists and watches (``watches`` long requests), which must not hold a delivery's either."""
    work = await _connect(kubeconfig)
    reviews = await _connect(kubeconfig, max_connections=REVIEW_CONNECTIONS)
    watching = await _connect(kubeconfig, max_connections=watches + 1)
    return work, reviews, watching


async def serve(settings: Settings, keys: SigningKeySource, args: argparse.Namespace) -> None:
    kube, review_kube, watch_kube = await clients(
        args.kubeconfig, watches=2 * max(1, len(settings.namespaces))
    )
    app = make_app(settings, kube=kube, keys=keys, review_kube=review_kube, watch_kube=watch_kube)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        lingering_time=LINGER_SECONDS,
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        logger.info(
            "webhook listening on %s:%s; QStash destination %s",
            args.host,
            args.port,
            app[typedefs.destination_key],
        )
        await stop.wait()
        logger.info("stopping")
    finally:
        await runner.cleanup()
        await kube.close()
        await review_kube.close()
        await watch_kube.close()


def run(args: argparse.Namespace) -> int:
    logs.configure(getattr(logging, args.log_level.upper()))
    settings = Settings.from_env(os.environ)
    settings.require_webhook()
    keys = SigningKeySource.from_settings(settings.qstash)
    loaded = keys.load()
    logger.info("signing keys loaded from %s", loaded.origin)
    asyncio.run(serve(settings, keys, args))
    return 0
