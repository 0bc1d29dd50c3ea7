"""Prometheus metrics of the webhook, on a registry of its own.

Each app gets a fresh :class:`~prometheus_client.CollectorRegistry`, so several apps in one test
process never collide on metric names, and ``/metrics`` shows only this service's figures.

- ``qstash_webhook_deliveries_total{result}``: every answered delivery, by result: an
  :class:`~qstash_operator.domain.runs.Outcome` value (``run``, ``skipped_*``, ``duplicate_*``,
  ``no_tick``) or an HTTP-level result (``unauthorized``, ``non_retryable``, ``unavailable``,
  ``bad_request``, ``error``).
- ``qstash_webhook_signature_failures_total{reason}``: refused signatures by
  :class:`~qstash_operator.domain.errors.SignatureFailure` category.
- ``qstash_webhook_skips_total{reason}``: deliveries deliberately not run, by outcome.
- ``qstash_webhook_job_creation_seconds``: from the tick to the Job's creation (what a user feels:
  QStash latency, retries and our own work).
- ``qstash_webhook_request_seconds{route}``: time spent answering, per route (our own work only).
- ``qstash_webhook_token_reviews_total{result}``: bearer tokens on the API, by what became of
  them: ``cached`` (reviewed recently), ``authenticated``, ``rejected`` (401), ``limited`` (429,
  no review spent).
- ``qstash_webhook_cache_objects{kind}``, ``qstash_webhook_cache_bytes{kind}``,
  ``qstash_webhook_cache_synced{kind}``: the hot path's caches (``cronworkflows``, ``jobs``):
  what they hold, its JSON size (an estimate of their memory), and whether they answer (0 while
  listing again after a failure, or past their bound).
- ``qstash_webhook_status_records_pending``: CronWorkflows whose status record waits to be
  written (``services.deferred_status``).
- ``process_resident_memory_bytes`` and the other ``process_*`` figures of the process.
"""

from __future__ import annotations

import functools
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client import exposition as _exposition

from qstash_operator.domain.errors import SignatureFailure
from qstash_operator.domain.runs import Outcome
from qstash_operator.services.deferred_status import StatusRecorder
from qstash_webhook.cache import RunCache

CONTENT_TYPE: Final = _exposition.CONTENT_TYPE_LATEST

JOB_CREATION_BUCKETS: Final = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
"""Seconds from tick to Job: QStash usually delivers within a second or two of the minute; the
tail covers its retries (12 s, 2.5 min, then 30 min, past which the last bucket is +Inf)."""
REQUEST_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds per request: a delivery is four API calls, tens of milliseconds on a healthy cluster."""


TOKEN_REVIEW_RESULTS: Final = ("cached", "authenticated", "rejected", "limited")


class WebhookMetrics:
    """The counters and histograms; also the run service's :class:`RunObserver`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.deliveries = Counter(
            "qstash_webhook_deliveries",
            "QStash deliveries answered, by result",
            ["result"],
            registry=self.registry,
        )
        self.signature_failures = Counter(
            "qstash_webhook_signature_failures",
            "Deliveries refused because the Upstash-Signature did not verify, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.skips = Counter(
            "qstash_webhook_skips",
            "Deliveries deliberately not run (suspended, Forbid, deadline, duplicate), by reason",
            ["reason"],
            registry=self.registry,
        )
        self.job_creation = Histogram(
            "qstash_webhook_job_creation_seconds",
            "Seconds from the scheduled tick to the creation of its Job",
            buckets=JOB_CREATION_BUCKETS,
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "qstash_webhook_request_seconds",
            "Seconds spent answering a request, by route",
            ["route"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.token_reviews = Counter(
            "qstash_webhook_token_reviews",
            "Bearer tokens on the API: cached, authenticated, rejected (401), limited (429)",
            ["result"],
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        # Pre-create the label sets people alert on, so they read 0 rather than missing.
        for result in TOKEN_REVIEW_RESULTS:
            self.token_reviews.labels(result=result)
        for failure in SignatureFailure:
            self.signature_failures.labels(reason=failure.value)
        for outcome in Outcome:
            self.deliveries.labels(result=outcome.value)

    def watch_cache(self, cache: RunCache, recorder: StatusRecorder) -> None:
        """Report the hot path's caches and its queue of status records (read at scrape time)."""
        objects = Gauge(
            "qstash_webhook_cache_objects",
            "Objects in the webhook's watch-fed caches, by kind",
            ["kind"],
            registry=self.registry,
        )
        size = Gauge(
            "qstash_webhook_cache_bytes",
            "JSON bytes the webhook's caches hold (an estimate of their memory), by kind",
            ["kind"],
            registry=self.registry,
        )
        synced = Gauge(
            "qstash_webhook_cache_synced",
            "1 when a cache answers deliveries, 0 while it lists again or is past its bound",
            ["kind"],
            registry=self.registry,
        )
        for kind in ("cronworkflows", "jobs"):
            objects.labels(kind=kind).set_function(functools.partial(cache.objects, kind))
            size.labels(kind=kind).set_function(functools.partial(cache.bytes, kind))
            synced.labels(kind=kind).set_function(functools.partial(cache.synced, kind))
        pending = Gauge(
            "qstash_webhook_status_records_pending",
            "CronWorkflows whose status record (after a created Job) is not written yet",
            registry=self.registry,
        )
        pending.set_function(lambda: recorder.pending)

    # -- RunObserver -----------------------------------------------------------------------

    def observed(self, outcome: Outcome, *, seconds: float | None) -> None:
        if outcome is Outcome.RUN:
            if seconds is not None:
                self.job_creation.observe(max(seconds, 0.0))
        else:
            self.skips.labels(reason=outcome.value).inc()

    # -- the view's counts -------------------------------------------------------------------

    def delivery(self, result: str) -> None:
        self.deliveries.labels(result=result).inc()

    def token_review(self, result: str) -> None:
        self.token_reviews.labels(result=result).inc()

    def signature_refused(self, failure: SignatureFailure) -> None:
        self.signature_failures.labels(reason=failure.value).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
