"""The aiohttp application: one factory for production and tests.

``make_app(settings, kube=..., keys=..., clock=...)`` wires the shared core (run service, catalog,
signature verifier) to the routes. Everything with a lifecycle (the Kubernetes client) is created
and closed by the caller (``qstash_webhook.main`` or a test fixture), so the same factory serves
both and tests can hand in a clock.

With ``watch_kube`` (and ``QSTASH_WEBHOOK_CACHE`` not off) deliveries take the hot path: the
app's startup starts the watch-fed caches (:class:`~qstash_webhook.cache.RunCache`) on that
client, deliveries decide from them, and their status records go through a
:class:`~qstash_operator.services.deferred_status.StatusRecorder`, which the app's shutdown
drains before the clients close.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Final

from aiohttp import web

from qstash_operator.adapters.kube import Kube
from qstash_operator.adapters.qstash_api import ObservedSchedule, QStashMessages, QStashSchedules
from qstash_operator.adapters.signing_keys import SigningKeySource
from qstash_operator.domain import builders
from qstash_operator.services import collector
from qstash_operator.services.catalog import CatalogService, ScheduleLister
from qstash_operator.services.deferred_status import StatusRecorder
from qstash_operator.services.runs import MessageLookup, RunService
from qstash_operator.settings import Settings
from qstash_webhook import api, delivery, health, typedefs, warmup
from qstash_webhook.access import Access, GuardedAccess, KubeAccess
from qstash_webhook.bodies import BODY_READ_SECONDS, MAX_BODY_BYTES
from qstash_webhook.cache import RunCache
from qstash_webhook.console import views as console
from qstash_webhook.console.service import ConsoleService
from qstash_webhook.errors import error_middleware
from qstash_webhook.metrics import WebhookMetrics

COMPONENT: Final = "qstash-operator-webhook"
"""Events' source component: ``kubectl describe`` shows who made the Job."""


DRAIN_SECONDS: Final = 5.0
"""At shutdown, deferred status records get this long to be written (what is left, the
operator's mirror repairs from the Jobs)."""

STATUS_TIMEOUT: Final = 5.0
"""A person is waiting on the status page; QStash that does not list in 5 s is "unreachable"."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def _schedule_lister(settings: Settings) -> ScheduleLister | None:
    token = settings.qstash.token
    if token is None:
        return None
    url = settings.qstash.url

    async def schedules() -> list[ObservedSchedule]:
        client = QStashSchedules(token=token.reveal(), base_url=url, timeout=STATUS_TIMEOUT)
        try:
            return await client.list()
        finally:
            await client.close()

    return schedules


def _message_lookup(app: web.Application, settings: Settings) -> MessageLookup | None:
    """The SDK's ``message.get`` for retried deliveries, closed with the app."""
    token = settings.qstash.token
    if token is None:
        return None
    client = QStashMessages(token=token.reveal(), base_url=settings.qstash.url)

    async def close(_: web.Application) -> None:
        await client.close()

    app.on_cleanup.append(close)
    return client


def setup_routes(app: web.Application) -> None:
    app.router.add_post(builders.WEBHOOK_PATH, delivery.deliver, name="delivery")
    app.router.add_get("/api/cron", api.list_cronworkflows, name="list")
    app.router.add_post("/api/cron/activate/{namespace}/{name}", api.activate, name="activate")
    app.router.add_delete(
        "/api/cron/deactivate/{namespace}/{name}", api.deactivate, name="deactivate"
    )
    app.router.add_get("/api/test-cron", api.backend_status, name="status")
    app.router.add_post("/api/test-cron", api.trigger, name="trigger")
    app.router.add_post("/api/cron/backfill/{namespace}/{name}", api.backfill, name="backfill")
    app.router.add_get("/healthz", health.healthz, name="healthz")
    app.router.add_get("/readyz", health.readyz, name="readyz")
    app.router.add_get("/metrics", health.metrics, name="metrics")


def make_app(
    settings: Settings,
    *,
    kube: Kube,
    keys: SigningKeySource,
    clock: typedefs.Clock = utc_now,
    schedules: ScheduleLister | None = None,
    metrics: WebhookMetrics | None = None,
    access: Access | None = None,
    body_deadline: float = BODY_READ_SECONDS,
    review_kube: Kube | None = None,
    messages: MessageLookup | None = None,
    watch_kube: Kube | None = None,
) -> web.Application:
    """The webhook application. ``settings.public_url`` must be set (``require_webhook``).

    ``schedules`` lists QStash's schedules for the status view; by default the SDK is used when
    ``QSTASH_TOKEN`` is set. ``access`` answers who a token is and what they may do (default:
    TokenReview bound to ``settings.api_audience`` and SubjectAccessReview, behind the review
    cache and failure limits of :class:`~qstash_webhook.access.GuardedAccess`, through
    ``review_kube``). ``review_kube``: the client for those reviews; the process passes one with
    a pool of its own (``qstash_webhook.main``), so a flood of bad tokens cannot hold the
    connections deliveries need; tests that do not measure that may leave it to share ``kube``.
    ``body_deadline``: seconds a request body may take to arrive. ``messages`` tells which
    message a retried delivery is (default: the SDK, with ``QSTASH_TOKEN`` and ``QSTASH_URL``).
    ``watch_kube``: the client
    the caches list and watch on (one long request per namespace and kind, so a pool of its
    own); None keeps every delivery on inline reads and writes.
    """
    if settings.public_url is None:
        raise ValueError("make_app needs settings.public_url (call settings.require_webhook())")
    metrics = metrics or WebhookMetrics()
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        # The console's headers outermost, so its error answers carry them too.
        middlewares=[console.security_headers, error_middleware],
    )
    app[typedefs.settings_key] = settings
    app[typedefs.kube_key] = kube
    app[typedefs.signing_keys_key] = keys
    app[typedefs.clock_key] = clock
    app[typedefs.metrics_key] = metrics
    app[typedefs.body_deadline_key] = body_deadline
    app[typedefs.destination_key] = builders.webhook_destination(settings.public_url)
    cache: RunCache | None = None
    recorder: StatusRecorder | None = None
    if watch_kube is not None and settings.webhook_cache:
        cache = RunCache(
            watch_kube,
            namespaces=settings.namespaces,
            max_cronworkflows=settings.cache_max_cronworkflows,
            max_jobs=settings.cache_max_jobs,
        )
        recorder = StatusRecorder(
            kube,
            clock=clock,
            reads=cache,
            delay=settings.status_delay_seconds,
            max_delay=settings.status_max_delay_seconds,
        )
        metrics.watch_cache(cache, recorder)
        app[typedefs.cache_key] = cache
        _run_with_app(app, cache, recorder, kube=kube, clock=clock)
    app[typedefs.runs_key] = RunService(
        kube,
        component=COMPONENT,
        tolerance=timedelta(seconds=settings.clock_tolerance_seconds),
        observer=metrics,
        messages=messages if messages is not None else _message_lookup(app, settings),
        cluster=settings.cluster_name,
        reads=cache,
        recorder=recorder,
    )
    catalog = CatalogService(
        kube,
        cluster=settings.cluster_name,
        schedules=schedules if schedules is not None else _schedule_lister(settings),
        qstash_problem=settings.qstash_problem(),
        namespaces=settings.namespaces,
        component=COMPONENT,
    )
    app[typedefs.catalog_key] = catalog
    access = access or GuardedAccess(
        KubeAccess(review_kube or kube, audience=settings.api_audience), metrics=metrics
    )
    app[typedefs.access_key] = access
    app[typedefs.console_key] = ConsoleService(kube, catalog, access)
    setup_routes(app)
    if settings.ui_enabled:
        console.setup(app)
    return app


def _run_with_app(
    app: web.Application,
    cache: RunCache,
    recorder: StatusRecorder,
    *,
    kube: Kube,
    clock: typedefs.Clock,
) -> None:
    """The caches, the connection warm-up (:mod:`qstash_webhook.warmup`, on the deliveries'
    client) and the garbage collector's hold through bursts (``services.collector``) start with
    the app; at shutdown the deferred records are written first (the clients
    are still open), then the warm-up and the watches stop."""
    tasks: list[asyncio.Task[None]] = []

    async def start(_: web.Application) -> None:
        cache.start()
        tasks.append(
            asyncio.create_task(
                warmup.keep_warm(cache, kube, size=kube.max_connections, clock=clock)
            )
        )
        tasks.append(asyncio.create_task(collector.hold_through_bursts(clock=clock)))

    async def drain(_: web.Application) -> None:
        await recorder.drain(DRAIN_SECONDS)

    async def stop(_: web.Application) -> None:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await recorder.close()
        await cache.stop()

    app.on_startup.append(start)
    app.on_shutdown.append(drain)
    app.on_cleanup.append(stop)
