"""Prometheus metrics of the operator, on a registry of its own (tests build as many as they like).

Names follow Prometheus conventions (``_total`` counters, ``_seconds`` histograms) under the
``qstash_operator_`` prefix; label values come from :mod:`qstash_operator.domain.vocabulary`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reconciles = Counter(
            "qstash_operator_reconciles_total",
            "Reconciliations of CronWorkflows by result (a condition reason).",
            ["result"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "qstash_operator_reconcile_seconds",
            "Time to reconcile one CronWorkflow, including backend calls.",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.qstash_calls = Counter(
            "qstash_operator_qstash_api_calls_total",
            "Calls to the QStash API by operation and outcome.",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.drift_repairs = Counter(
            "qstash_operator_drift_repairs_total",
            "Schedules repaired by the periodic drift check: missing, changed or orphan.",
            ["kind"],
            registry=self.registry,
        )
        self.drift_passes = Counter(
            "qstash_operator_drift_passes_total",
            "Drift repair passes by result: ok, or the class of the error that ended the pass.",
            ["result"],
            registry=self.registry,
        )
        self.drift_last_success = Gauge(
            "qstash_operator_drift_last_success_timestamp_seconds",
            "Unix time at which the last successful drift repair pass started (0: none yet).",
            registry=self.registry,
        )
        self.backend_switches = Counter(
            "qstash_operator_backend_switches_total",
            "Backend changes of CronWorkflows, by the backend switched to.",
            ["to"],
            registry=self.registry,
        )
        self.manual_runs = Counter(
            "qstash_operator_manual_runs_total",
            "Manual runs requested with the run-now annotation, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.slots = Counter(
            "qstash_operator_slots_total",
            "Slots whose fate the audit settled, by fate (outcome) and reason, the words of "
            "status.recentSlots: Succeeded, Failed, Skipped, Missed, CaughtUp. A missed slot run "
            "later counts as Missed and then as CaughtUp.",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self.last_success_age = Gauge(
            "qstash_operator_last_success_age_seconds",
            "Seconds since each CronWorkflow's last successful Job (absent before the first).",
            ["namespace", "name"],
            registry=self.registry,
        )
        self.fresh = Gauge(
            "qstash_operator_fresh",
            "1 while a CronWorkflow with spec.freshness is Fresh, 0 while it is not.",
            ["namespace", "name"],
            registry=self.registry,
        )
        self.slot_audits = Counter(
            "qstash_operator_slot_audits_total",
            "Slot audits by result: unchanged (no write), written, or the error class.",
            ["result"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "qstash_operator_leader",
            "1 while this replica holds the leader lease and reconciles, else 0.",
            registry=self.registry,
        )

        self.mirror_cached = Gauge(
            "qstash_operator_mirror_cached_cronworkflows",
            "CronWorkflows whose latest watched copy the status mirror holds (bounded by "
            "QSTASH_OPERATOR_MIRROR_CACHE_MAX_CRONWORKFLOWS).",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
