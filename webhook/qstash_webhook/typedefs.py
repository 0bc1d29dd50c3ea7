"""Typed keys of the application's storage (aiohttp ``AppKey``), declared in one place."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from qstash_operator.adapters.kube import Kube
from qstash_operator.adapters.signing_keys import SigningKeySource
from qstash_operator.services.catalog import CatalogService
from qstash_operator.services.runs import RunService
from qstash_operator.settings import Settings
from qstash_webhook.access import Access
from qstash_webhook.cache import RunCache
from qstash_webhook.console.service import ConsoleService
from qstash_webhook.metrics import WebhookMetrics

Clock = Callable[[], datetime]
"""Returns "now", timezone-aware UTC. Read once per request, in the view."""

settings_key = web.AppKey("settings", Settings)
kube_key = web.AppKey("kube", Kube)
"""The client deliveries and the API's own work use (never token reviews: see ``access_key``)."""
signing_keys_key = web.AppKey("signing_keys", SigningKeySource)
runs_key = web.AppKey("runs", RunService)
catalog_key = web.AppKey("catalog", CatalogService)
access_key: web.AppKey[Access] = web.AppKey("access")
"""TokenReview and SubjectAccessReview for the API and the console (one path for both), on a
Kubernetes client of their own in the process (``qstash_webhook.main.clients``)."""
console_key = web.AppKey("console", ConsoleService)
metrics_key = web.AppKey("metrics", WebhookMetrics)
cache_key = web.AppKey("cache", RunCache)
"""The hot path's watch-fed caches; absent when deliveries read inline."""
clock_key: web.AppKey[Clock] = web.AppKey("clock")
body_deadline_key = web.AppKey("body_deadline", float)
"""Seconds a request body may take to arrive (:data:`qstash_webhook.bodies.BODY_READ_SECONDS`)."""
destination_key = web.AppKey("destination", str)
"""The exact URL QStash signs for (``sub``): WEBHOOK_PUBLIC_URL + /api/qstash/webhook."""
