"""The slot audit as a service: one CronWorkflow in memory, the audit's writes, events, metrics
and catch-up runs. The API is an in-memory stand-in honouring resourceVersion preconditions and
Job name uniqueness; the watch cache the audit reads is the stand-in's Jobs, read as kopf's
index would hold them.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime, timedelta
from typing import Any

from kubernetes.aio import client as k8s_client

from qstash_operator.adapters.kube import Kube
from qstash_operator.adapters.operator_metrics import OperatorMetrics
from qstash_operator.domain import naming, slots
from qstash_operator.domain.errors import AlreadyExistsError, ConflictError
from qstash_operator.domain.runs import MessageOrigin
from qstash_operator.services.runs import RunService
from qstash_operator.services.slots import SlotAudit
from tests.unit.domain.factories import body as cw_body
from tests.unit.instants import TOP_OF_THE_HOUR

GRACE = timedelta(seconds=90)


def at(minutes: float) -> datetime:
    return TOP_OF_THE_HOUR + timedelta(minutes=minutes)


class MemoryKube(Kube):
    def __init__(self, cronworkflow: dict[str, Any]) -> None:
        super().__init__(k8s_client.ApiClient(k8s_client.Configuration(host="http://unused")))
        self.cw = cronworkflow
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[str, str, str]] = []
        self.writes = 0
        self.version = 100

    async def _run(self, method: str, path: str, **_: Any) -> Any:
        raise AssertionError(f"not in the stand-in: {method} {path}")

    async def get_cronworkflow(self, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.cw)

    async def patch_cronworkflow(
        self, namespace: str, name: str, patch: dict[str, Any], *, status: bool = False
    ) -> dict[str, Any]:
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != self.cw["metadata"]["resourceVersion"]:
            raise ConflictError("changed", retry_after=0.0)
        for key, value in (patch.get("status") or {}).items():
            if value is None:
                self.cw["status"].pop(key, None)
            else:
                self.cw["status"][key] = copy.deepcopy(value)
        self.version += 1
        self.cw["metadata"]["resourceVersion"] = str(self.version)
        self.writes += 1
        return copy.deepcopy(self.cw)

    async def list_jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(job) for job in self.jobs.values()]

    async def create_job(self, job: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        name = job["metadata"]["name"]
        if name in self.jobs:
            raise AlreadyExistsError(name)
        made = copy.deepcopy(job)
        made["metadata"]["creationTimestamp"] = slots.rfc3339(self.now)
        self.jobs[name] = made
        return copy.deepcopy(made)

    async def delete_job(self, namespace: str, name: str) -> None:
        self.jobs.pop(name, None)

    async def post_event(
        self, involved: Any, *, type_: str, reason: str, message: str, **_: Any
    ) -> None:
        self.events.append((type_, reason, message))

    now = TOP_OF_THE_HOUR

    def index(self) -> list[slots.SlotJob]:
        return [slots.slot_job(job) for job in self.jobs.values()]


def setup(
    spec: dict[str, Any], *, since: datetime = TOP_OF_THE_HOUR
) -> tuple[MemoryKube, SlotAudit, OperatorMetrics]:
    body = cw_body(
        {"schedule": "* * * * *", **spec},
        status={"backend": "QStash", "scheduleSince": slots.rfc3339(since)},
    )
    kube = MemoryKube(body)
    metrics = OperatorMetrics()
    runs = RunService(kube, component="qstash-operator", tolerance=timedelta(seconds=30))
    return kube, SlotAudit(kube, runs, metrics, grace=GRACE), metrics


def audit(kube: MemoryKube, service: SlotAudit, now: datetime) -> None:
    kube.now = now
    asyncio.run(service.audit(copy.deepcopy(kube.cw), kube.index(), now=now))


def ledger(kube: MemoryKube) -> list[tuple[str, str, str]]:
    return [
        (entry["time"][11:16], entry["fate"], entry["reason"])
        for entry in kube.cw["status"].get("recentSlots", [])
    ]


def sample(metrics: OperatorMetrics, metric: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(metric, labels)
    return 0.0 if value is None else value


def test_five_missed_slots_with_all_max_runs_three_run_the_latest_three_oldest_first() -> None:
    kube, service, metrics = setup({"catchUp": {"policy": "All", "maxRuns": 3}})
    audit(kube, service, at(6) + timedelta(seconds=30))  # ticks 10:00..10:05 are past the grace
    # 10:00 .. 10:05: six missed, the latest three run, oldest first
    created = sorted(kube.jobs)
    assert [
        kube.jobs[name]["metadata"]["annotations"]["qstash-operator.dev/scheduled-time"]
        for name in created
    ] == [
        "2026-06-01T10:03:00Z",
        "2026-06-01T10:04:00Z",
        "2026-06-01T10:05:00Z",
    ]
    assert all(
        kube.jobs[name]["metadata"]["annotations"]["qstash-operator.dev/catch-up"] == "true"
        for name in created
    )
    assert ledger(kube) == [
        ("10:05", "CaughtUp", "JobActive"),
        ("10:04", "CaughtUp", "JobActive"),
        ("10:03", "CaughtUp", "JobActive"),
        ("10:02", "Missed", "NoRun"),
        ("10:01", "Missed", "NoRun"),
        ("10:00", "Missed", "NoRun"),
    ]
    warnings = [event for event in kube.events if event[1] == "MissedSchedule"]
    assert len(warnings) == 6
    assert {event[0] for event in warnings} == {"Warning"}
    assert sample(metrics, "qstash_operator_slots_total", outcome="Missed", reason="NoRun") == 6
    # The next pass: nothing new is missed, nothing runs twice, nothing is counted twice.
    for job in kube.jobs.values():
        job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    audit(kube, service, at(6) + timedelta(seconds=45))
    assert len(kube.jobs) == 3
    assert ledger(kube)[:3] == [("10:05", "CaughtUp", "JobComplete")] * 1 + [
        ("10:04", "CaughtUp", "JobComplete"),
        ("10:03", "CaughtUp", "JobComplete"),
    ]
    assert sample(metrics, "qstash_operator_slots_total", outcome="Missed", reason="NoRun") == 6
    assert (
        sample(metrics, "qstash_operator_slots_total", outcome="CaughtUp", reason="JobComplete")
        == 3
    )


def test_with_none_nothing_runs_and_the_slots_read_missed() -> None:
    kube, service, _ = setup({"catchUp": {"policy": "None"}})
    audit(kube, service, at(5) + timedelta(seconds=30))
    assert kube.jobs == {}
    assert [fate for _, fate, _ in ledger(kube)] == ["Missed"] * 5


def test_latest_runs_one_and_forbid_makes_catch_up_wait_instead_of_skipping() -> None:
    kube, service, _ = setup({"catchUp": {"policy": "All"}, "concurrencyPolicy": "Forbid"})
    audit(kube, service, at(2) + timedelta(seconds=30))
    assert len(kube.jobs) == 1  # 10:00 runs; 10:01 waits for it under Forbid
    assert ledger(kube) == [("10:01", "Missed", "NoRun"), ("10:00", "CaughtUp", "JobActive")]
    [job] = kube.jobs.values()
    job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    audit(kube, service, at(2) + timedelta(seconds=40))
    assert ledger(kube) == [
        ("10:01", "CaughtUp", "JobActive"),
        ("10:00", "CaughtUp", "JobComplete"),
    ]


def test_a_steady_cronworkflow_costs_no_write() -> None:
    kube, service, metrics = setup({"catchUp": {"policy": "None"}})
    audit(kube, service, at(2) + timedelta(seconds=30))
    writes = kube.writes
    audit(kube, service, at(2) + timedelta(seconds=40))
    assert kube.writes == writes
    assert sample(metrics, "qstash_operator_slot_audits_total", result="unchanged") == 1


def test_failing_jobs_turn_fresh_false_and_set_the_gauges() -> None:
    kube, service, metrics = setup({"freshness": {"maxAge": "3m"}, "catchUp": {"policy": "None"}})
    kube.cw["status"]["lastSuccessfulTime"] = slots.rfc3339(at(0) + timedelta(seconds=5))
    audit(kube, service, at(2))
    [fresh] = [c for c in kube.cw["status"]["conditions"] if c["type"] == "Fresh"]
    assert (fresh["status"], fresh["reason"]) == ("True", "Fresh")
    assert sample(metrics, "qstash_operator_fresh", namespace="team-a", name="report") == 1
    audit(kube, service, at(3) + timedelta(seconds=10))
    [fresh] = [c for c in kube.cw["status"]["conditions"] if c["type"] == "Fresh"]
    assert (fresh["status"], fresh["reason"]) == ("False", "Stale")
    assert "freshness.maxAge 3m" in fresh["message"]
    assert sample(metrics, "qstash_operator_fresh", namespace="team-a", name="report") == 0
    assert (
        sample(
            metrics, "qstash_operator_last_success_age_seconds", namespace="team-a", name="report"
        )
        == 185
    )
    service.forget("team-a", "report")
    assert (
        metrics.registry.get_sample_value(
            "qstash_operator_fresh", {"namespace": "team-a", "name": "report"}
        )
        is None
    )


def test_a_delivery_skipped_by_forbid_is_recorded_and_not_read_as_missed() -> None:
    kube, service, _ = setup({"concurrencyPolicy": "Forbid", "catchUp": {"policy": "None"}})

    class Messages:  # QStash's word on the retried message: made by this schedule at 10:00
        async def origin(self, message_id: str) -> MessageOrigin:
            return MessageOrigin(at(0), naming.schedule_id("test", "team-a", "report"))

    runs = RunService(
        kube,
        component="qstash-webhook",
        tolerance=timedelta(seconds=30),
        messages=Messages(),
        cluster="test",
    )

    def deliver(minute: int, retried: int = 0) -> str:
        kube.now = at(minute) + timedelta(seconds=1)
        result = asyncio.run(
            runs.run_delivery(
                namespace="team-a",
                name="report",
                uid=kube.cw["metadata"]["uid"],
                message_id=f"msg-{minute}-{retried}",
                delivered_at=kube.now,
                retried=retried,
            )
        )
        return result.outcome.value

    assert deliver(0, retried=1) == "run"  # the second attempt made the Job
    assert deliver(1) == "skipped_forbid"  # 10:00's Job is still active
    [job] = kube.jobs.values()
    assert job["metadata"]["annotations"]["qstash-operator.dev/attempt"] == "2"
    audit(kube, service, at(2) + timedelta(seconds=40))
    assert ledger(kube) == [
        ("10:01", "Skipped", "ConcurrencyForbid"),
        ("10:00", "Running", "JobActive"),
    ]
    assert kube.cw["status"]["recentSlots"][1]["attempts"] == 2
