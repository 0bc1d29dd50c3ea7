"""The delivery hot path: decided from the caches, one API write under Allow, the status after.

A fake Kubernetes API records every call and keeps one CronWorkflow with a resourceVersion that
moves on each status write (and refuses a stale one with 409, as the API server does); the
caches are a dict-backed :class:`~qstash_operator.services.runs.RunReads`. The recorder's delay
is zero and its work is awaited with ``drain``, so nothing here waits on the wall clock.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any

import pytest

from qstash_operator.domain import builders, model, naming, runs, vocabulary
from qstash_operator.domain.errors import AlreadyExistsError, ConflictError, NotFoundError
from qstash_operator.domain.model import CronWorkflow, JsonDict
from qstash_operator.domain.runs import JobView, Outcome
from qstash_operator.services.deferred_status import StatusRecorder
from qstash_operator.services.observe import StatusMirror
from qstash_operator.services.runs import RunService
from tests.unit.domain import factories
from tests.unit.instants import TOP_OF_THE_HOUR

TICK = TOP_OF_THE_HOUR
DELIVERED = TICK + timedelta(seconds=1)
PREVIOUS_TICK = TICK - timedelta(hours=1)
TOLERANCE = timedelta(seconds=30)


class FakeKube:
    """One CronWorkflow and its Jobs; every call recorded as (verb, what)."""

    def __init__(self, body: JsonDict) -> None:
        self.body = copy.deepcopy(body)
        self.jobs: dict[str, JsonDict] = {}
        self.calls: list[tuple[str, str]] = []
        self._version = int(body["metadata"]["resourceVersion"])

    def writes(self) -> list[tuple[str, str]]:
        return [call for call in self.calls if call[0] not in ("get", "list")]

    async def get_cronworkflow(self, namespace: str, name: str) -> JsonDict:
        self.calls.append(("get", "cronworkflow"))
        if self.body is None:
            raise NotFoundError(name)
        return copy.deepcopy(self.body)

    async def list_jobs(self, namespace: str, selector: str) -> list[JsonDict]:
        self.calls.append(("list", "jobs"))
        return [copy.deepcopy(job) for job in self.jobs.values()]

    async def create_job(self, job: JsonDict) -> JsonDict:
        self.calls.append(("create", "job"))
        name = job["metadata"]["name"]
        if name in self.jobs:
            raise AlreadyExistsError(name)
        created = copy.deepcopy(job)
        created["metadata"]["uid"] = f"uid-{name}"
        created["metadata"]["creationTimestamp"] = builders.rfc3339(DELIVERED)
        self.jobs[name] = created
        return copy.deepcopy(created)

    async def delete_job(self, namespace: str, name: str) -> None:
        self.calls.append(("delete", "job"))
        self.jobs.pop(name, None)

    async def patch_cronworkflow(
        self, namespace: str, name: str, patch: JsonDict, *, status: bool = False
    ) -> JsonDict:
        self.calls.append(("patch", "status" if status else "cronworkflow"))
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != self.body["metadata"]["resourceVersion"]:
            raise ConflictError("stale")
        for key, value in patch.get("status", {}).items():
            if value is None:
                self.body["status"].pop(key, None)
            else:
                self.body["status"][key] = value
        self._version += 1
        self.body["metadata"]["resourceVersion"] = str(self._version)
        return copy.deepcopy(self.body)

    async def post_event(self, involved: JsonDict, **_: Any) -> None:
        self.calls.append(("create", "event"))


class Reads:
    """The caches: a copy of the CronWorkflow and of its Jobs, as a watch last saw them."""

    def __init__(self, body: JsonDict | None, jobs: list[JobView] | None = None) -> None:
        self.body = copy.deepcopy(body)
        self.views = jobs if jobs is not None else []
        self.created: list[str] = []

    def cronworkflow(self, namespace: str, name: str) -> JsonDict | None:
        return copy.deepcopy(self.body)

    def jobs(self, namespace: str, uid: str) -> list[JobView] | None:
        return list(self.views)

    def parsed(self, body: JsonDict) -> CronWorkflow | None:
        return None  # these copies are fresh dicts every time: never the ones parsed

    def job_created(self, job: JsonDict) -> None:
        self.created.append(job["metadata"]["name"])
        self.views.append(runs.job_view(job))


def services(kube: FakeKube, reads: Reads) -> tuple[RunService, StatusRecorder]:
    recorder = StatusRecorder(kube, clock=lambda: DELIVERED, reads=reads, delay=0.0)  # type: ignore[arg-type]
    service = RunService(
        kube,  # type: ignore[arg-type]
        component="test",
        tolerance=TOLERANCE,
        reads=reads,
        recorder=recorder,
    )
    return service, recorder


async def deliver(service: RunService, *, message_id: str = "msg_1", uid: str = factories.UID):
    return await service.run_delivery(
        namespace="team-a",
        name="report",
        uid=uid,
        message_id=message_id,
        delivered_at=DELIVERED,
        retried=0,
    )


async def test_an_allowed_tick_from_the_cache_is_one_api_call_the_job_create() -> None:
    body = factories.body(status={"lastScheduleTime": builders.rfc3339(PREVIOUS_TICK)})
    kube = FakeKube(body)
    service, recorder = services(kube, Reads(body))
    result = await deliver(service)
    assert result.outcome is Outcome.RUN
    assert kube.calls == [("create", "job")]
    await recorder.drain(5)
    assert ("patch", "status") in kube.calls
    assert kube.body["status"]["lastScheduleTime"] == builders.rfc3339(TICK)
    assert kube.body["status"]["active"][0]["name"] == naming.job_name("report", TICK)
    assert ("create", "event") in kube.calls


class HeldReads(Reads):
    """Hands out the one copy it holds, with the model parsed from it when it came."""

    def __init__(self, body: JsonDict, held_model: CronWorkflow) -> None:
        super().__init__(body)
        self.held = self.body
        self.held_model = held_model

    def cronworkflow(self, namespace: str, name: str) -> JsonDict | None:
        return self.held

    def parsed(self, body: JsonDict) -> CronWorkflow | None:
        return self.held_model if body is self.held else None


async def test_a_delivery_of_the_held_copy_runs_the_model_parsed_when_it_came() -> None:
    body = factories.body()
    # A model told apart from what parsing the body again would give: its own image.
    other = factories.body()
    other["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] = "held:1"
    kube = FakeKube(body)
    service, recorder = services(kube, HeldReads(body, model.parse(other)))
    result = await deliver(service)
    assert result.outcome is Outcome.RUN
    made = kube.jobs[naming.job_name("report", TICK)]
    assert made["spec"]["template"]["spec"]["containers"][0]["image"] == "held:1"
    await recorder.drain(5)


async def test_a_cronworkflow_missing_from_the_cache_is_read_from_the_api_server() -> None:
    body = factories.body()
    kube = FakeKube(body)
    service, recorder = services(kube, Reads(None))
    result = await deliver(service)
    assert result.outcome is Outcome.RUN
    assert kube.calls[0] == ("get", "cronworkflow")
    await recorder.drain(5)


async def test_a_cached_copy_with_another_uid_is_read_again_and_a_recreated_one_refused() -> None:
    old = factories.body()
    old["metadata"]["uid"] = "uid-of-the-one-before"
    kube = FakeKube(factories.body())
    service, recorder = services(kube, Reads(old))
    result = await deliver(service)  # the schedule's uid is the live one: read, then run
    assert result.outcome is Outcome.RUN
    assert kube.calls[0] == ("get", "cronworkflow")
    await recorder.drain(5)


async def test_a_job_another_replica_made_is_a_duplicate_even_when_the_cache_lags() -> None:
    body = factories.body()
    kube = FakeKube(body)
    kube.jobs[naming.job_name("report", TICK)] = {"metadata": {"name": "made elsewhere"}}
    service, recorder = services(kube, Reads(body))
    result = await deliver(service)
    assert result.outcome is Outcome.DUPLICATE_TICK
    assert kube.writes() == [("create", "job")]
    await recorder.drain(5)
    assert recorder.written == 0


async def test_records_of_one_cronworkflow_are_coalesced_into_one_conditional_write() -> None:
    body = factories.body(spec={"schedule": "* * * * *"})
    kube = FakeKube(body)
    reads = Reads(body)
    recorder = StatusRecorder(kube, clock=lambda: DELIVERED, reads=reads, delay=60.0)  # type: ignore[arg-type]
    cw = factories.cronworkflow(spec={"schedule": "* * * * *"})
    for minute, tick in enumerate((TICK, TICK - timedelta(minutes=1))):
        job = factories.job(f"report-{minute}", active=True)
        recorder.record(body, cw, job, tick=tick, attempt=minute + 1, at=DELIVERED)
    assert recorder.pending == 1
    await recorder.drain(5)
    assert kube.calls.count(("patch", "status")) == 1
    assert kube.body["status"]["lastScheduleTime"] == builders.rfc3339(TICK)  # the later one
    assert [entry["name"] for entry in kube.body["status"]["active"]] == ["report-0", "report-1"]
    # one write, yet each Job has its own slot in the ledger, with its own attempt
    assert [
        (entry["time"], entry["job"], entry["attempts"])
        for entry in kube.body["status"]["recentSlots"]
    ] == [
        (builders.rfc3339(TICK), "report-0", 1),
        (builders.rfc3339(TICK - timedelta(minutes=1)), "report-1", 2),
    ]


async def test_a_deferred_record_never_moves_last_schedule_time_back() -> None:
    body = factories.body(status={"lastScheduleTime": builders.rfc3339(TICK)})
    kube = FakeKube(body)
    recorder = StatusRecorder(kube, clock=lambda: DELIVERED, reads=Reads(body), delay=0.0)  # type: ignore[arg-type]
    cw = factories.cronworkflow()
    job = factories.job("late", active=True)
    recorder.record(body, cw, job, tick=PREVIOUS_TICK, attempt=1, at=DELIVERED)
    await recorder.drain(5)
    assert kube.body["status"]["lastScheduleTime"] == builders.rfc3339(TICK)


async def test_a_stale_cached_copy_makes_the_record_read_again_and_keep_a_reservation() -> None:
    stale = factories.body()
    kube = FakeKube(stale)
    reservation = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": "report-manual-abc",
        "namespace": "team-a",
        "uid": runs.reservation_uid(DELIVERED),
    }
    kube.body["status"]["active"] = [reservation]  # another writer, after our copy was taken
    kube.body["metadata"]["resourceVersion"] = "101"
    service, recorder = services(kube, Reads(stale))
    await deliver(service)
    await recorder.drain(5)
    assert kube.calls.count(("patch", "status")) == 2  # 409 on the stale copy, then again
    names = [entry["name"] for entry in kube.body["status"]["active"]]
    assert names == [naming.job_name("report", TICK), "report-manual-abc"]


@pytest.mark.parametrize("policy", ["Forbid", "Replace"])
async def test_forbid_and_replace_list_jobs_when_the_status_names_one_the_cache_lacks(
    policy: str,
) -> None:
    other = naming.job_name("report", PREVIOUS_TICK)
    status = {
        "active": [{"apiVersion": "batch/v1", "kind": "Job", "name": other, "uid": "uid-x"}],
    }
    body = factories.body(spec={"concurrencyPolicy": policy}, status=status)
    kube = FakeKube(body)
    kube.jobs[other] = {
        "metadata": {"name": other, "uid": "uid-x", "creationTimestamp": "2026-06-01T09:00:00Z"},
        "status": {},
    }
    service, recorder = services(kube, Reads(body, jobs=[]))
    result = await deliver(service)
    assert ("list", "jobs") in kube.calls
    if policy == "Forbid":
        assert result.outcome is Outcome.SKIPPED_FORBID
    else:
        assert result.outcome is Outcome.RUN
        assert ("delete", "job") in kube.calls
    await recorder.drain(5)


async def test_forbid_from_a_consistent_cache_reserves_then_creates_without_reading() -> None:
    body = factories.body(spec={"concurrencyPolicy": "Forbid"})
    kube = FakeKube(body)
    service, recorder = services(kube, Reads(body))
    result = await deliver(service)
    assert result.outcome is Outcome.RUN
    assert kube.calls == [("patch", "status"), ("create", "job")]
    await recorder.drain(5)


async def test_the_mirror_carries_last_schedule_time_forward_from_a_job_left_unrecorded() -> None:
    """A webhook killed between the create and its deferred record: the Job says the tick."""
    body = factories.body(status={"lastScheduleTime": builders.rfc3339(PREVIOUS_TICK)})
    kube = FakeKube(body)
    name = naming.job_name("report", TICK)
    job = {
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "uid": "uid-j",
            "labels": {vocabulary.LABEL_CRONWORKFLOW: "report"},
            "annotations": {vocabulary.ANNOTATION_SCHEDULED_TIME: builders.rfc3339(TICK)},
        },
        "status": {},
    }
    kube.jobs[name] = job
    patch = await StatusMirror(kube).job_changed(job, now=DELIVERED)  # type: ignore[arg-type]
    assert patch is not None
    assert kube.body["status"]["lastScheduleTime"] == builders.rfc3339(TICK)
    assert kube.body["status"]["nextScheduleTime"] == builders.rfc3339(TICK + timedelta(hours=1))


async def test_the_mirror_skips_a_job_event_that_changes_nothing_it_mirrors() -> None:
    body = factories.body()
    kube = FakeKube(body)
    name = naming.job_name("report", TICK)
    job: JsonDict = {
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "uid": "uid-j",
            "labels": {vocabulary.LABEL_CRONWORKFLOW: "report"},
        },
        "status": {},
    }
    kube.jobs[name] = job
    mirror = StatusMirror(kube)  # type: ignore[arg-type]
    await mirror.job_changed(job, now=DELIVERED)
    reads = len(kube.calls)
    suspended = copy.deepcopy(job)  # the job controller's first status write: still active
    suspended["status"] = {"conditions": [{"type": "Suspended", "status": "True"}]}
    assert await mirror.job_changed(suspended, now=DELIVERED) is None
    assert len(kube.calls) == reads
    done = copy.deepcopy(job)
    done["status"] = {
        "conditions": [{"type": "Complete", "status": "True"}],
        "completionTime": builders.rfc3339(DELIVERED),
    }
    kube.jobs[name] = done
    patch = await mirror.job_changed(done, now=DELIVERED)
    assert patch is not None
    assert "lastSuccessfulTime" in patch


async def test_the_operators_job_events_are_gathered_into_one_mirror_pass_per_cronworkflow() -> (
    None
):
    body = factories.body()
    kube = FakeKube(body)
    mirror = StatusMirror(kube, delay=0.0)  # type: ignore[arg-type]
    for minute in range(3):
        name = f"report-{minute}"
        kube.jobs[name] = {
            "metadata": {
                "name": name,
                "namespace": "team-a",
                "uid": f"uid-{name}",
                "labels": {vocabulary.LABEL_CRONWORKFLOW: "report"},
            },
            "status": {},
        }
        mirror.job_changed_soon(kube.jobs[name], clock=lambda: DELIVERED)
    await asyncio.gather(*mirror._tasks)
    assert kube.calls.count(("get", "cronworkflow")) == 1
    assert kube.calls.count(("list", "jobs")) == 1
    assert [entry["name"] for entry in kube.body["status"]["active"]] == [
        "report-0",
        "report-1",
        "report-2",
    ]
    for name in kube.jobs:  # all three remembered: their next identical event costs nothing
        mirror.job_changed_soon(kube.jobs[name], clock=lambda: DELIVERED)
    assert not mirror._tasks
