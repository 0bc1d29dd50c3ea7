"""The operator's status mirror on its own path: Jobs from the index, the CronWorkflow from the
copy its watch delivered, a write only when the status differs, and a young webhook-made Job left
for the webhook to record.

The fake API (``test_hot_path.FakeKube``) records every call; the index is a dict of
:class:`~qstash_operator.services.observe.IndexedJob`; time is a fake monotonic clock that the
mirror's own sleeps move, so nothing waits on the wall clock.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import weakref
from datetime import timedelta
from typing import Any

from qstash_operator.domain import builders, naming, vocabulary
from qstash_operator.domain.model import JsonDict
from qstash_operator.domain.projection import Projection
from qstash_operator.domain.runs import Outcome
from qstash_operator.services.observe import IndexedJob, StatusMirror, indexed_job
from tests.unit.domain import factories
from tests.unit.services.test_hot_path import (
    DELIVERED,
    PREVIOUS_TICK,
    TICK,
    FakeKube,
    Reads,
    deliver,
    services,
)

GRACE = 10.0
DELAY = 2.0


class Time:
    """A monotonic clock the test moves; the mirror's sleeps wait for it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sleepers.append((self.now + seconds, future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move the clock, waking each sleeper at its own moment, in order."""
        target = self.now + seconds
        while True:
            await spin()
            due = [sleeper for sleeper in self.sleepers if sleeper[0] <= target]
            if not due:
                break
            first = min(due, key=lambda sleeper: sleeper[0])
            self.sleepers.remove(first)
            self.now = max(self.now, first[0])
            first[1].set_result(None)
        self.now = target


async def spin() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def mirror_of(kube: FakeKube, time: Time, index: dict[tuple[str, str], list[IndexedJob]]):
    mirror = StatusMirror(
        kube,  # type: ignore[arg-type]
        delay=DELAY,
        record_grace=GRACE,
        monotonic=time.monotonic,
        sleep=time.sleep,
    )
    mirror.use_index(index)
    return mirror


def index_of(kube: FakeKube) -> dict[tuple[str, str], list[IndexedJob]]:
    return {("team-a", "report"): [indexed_job(job) for job in kube.jobs.values()]}


async def settle(mirror: StatusMirror, time: Time) -> None:
    """Run the mirror's passes to their end, moving the clock to each wake-up."""
    for _ in range(100):
        await spin()
        if not mirror._tasks:
            return
        if time.sleepers:
            await time.advance(min(due for due, _ in time.sleepers) - time.now)
    raise AssertionError("the mirror's passes did not end")


def clock():
    return DELIVERED


async def test_a_tick_the_webhook_recorded_costs_the_mirror_no_api_call() -> None:
    body = factories.body(status={"lastScheduleTime": builders.rfc3339(PREVIOUS_TICK)})
    kube = FakeKube(body)
    service, recorder = services(kube, Reads(body))
    assert (await deliver(service)).outcome is Outcome.RUN
    await recorder.drain(5)  # the webhook's deferred record
    time = Time()
    mirror = mirror_of(kube, time, index_of(kube))
    mirror.cronworkflow_seen(Projection.of(kube.body), deleted=False, clock=clock)
    calls = len(kube.calls)
    for job in kube.jobs.values():
        mirror.job_changed_soon(copy.deepcopy(job), clock=clock)
    await settle(mirror, time)
    assert kube.calls[calls:] == []


async def test_a_job_the_webhook_made_and_died_before_recording_is_recorded_after_the_grace() -> (
    None
):
    body = factories.body(status={"lastScheduleTime": builders.rfc3339(PREVIOUS_TICK)})
    kube = FakeKube(body)
    service, recorder = services(kube, Reads(body))
    assert (await deliver(service)).outcome is Outcome.RUN
    await recorder.close()  # killed before its record was written
    assert kube.body["status"]["lastScheduleTime"] == builders.rfc3339(PREVIOUS_TICK)
    time = Time()
    mirror = mirror_of(kube, time, index_of(kube))
    mirror.cronworkflow_seen(Projection.of(kube.body), deleted=False, clock=clock)
    calls = len(kube.calls)
    started = time.now
    for job in kube.jobs.values():
        mirror.job_changed_soon(copy.deepcopy(job), clock=clock)
    await settle(mirror, time)
    assert kube.calls[calls:] == [("patch", "status")]  # no read, no list: one write
    assert time.now - started >= GRACE  # not before the webhook's grace was over
    status = kube.body["status"]
    assert status["lastScheduleTime"] == builders.rfc3339(TICK)
    assert [entry["name"] for entry in status["active"]] == [naming.job_name("report", TICK)]
    assert [entry["job"] for entry in status["recentSlots"]] == [naming.job_name("report", TICK)]


async def test_a_record_arriving_within_the_grace_leaves_the_mirror_nothing_to_write() -> None:
    body = factories.body(status={"lastScheduleTime": builders.rfc3339(PREVIOUS_TICK)})
    kube = FakeKube(body)
    reads = Reads(body)
    service, recorder = services(kube, reads)
    assert (await deliver(service)).outcome is Outcome.RUN
    time = Time()
    mirror = mirror_of(kube, time, index_of(kube))
    mirror.cronworkflow_seen(Projection.of(kube.body), deleted=False, clock=clock)
    calls = len(kube.calls)
    for job in kube.jobs.values():
        mirror.job_changed_soon(copy.deepcopy(job), clock=clock)
    await time.advance(DELAY + 1)  # the first pass finds the Job young and unrecorded: holds
    await recorder.drain(5)  # the webhook's record lands, and the watch delivers it
    mirror.cronworkflow_seen(Projection.of(kube.body), deleted=False, clock=clock)
    webhook_calls = len(kube.calls)
    await settle(mirror, time)
    assert [call for call in kube.calls[calls:webhook_calls] if call[1] == "status"] == [
        ("patch", "status")  # the webhook's record, alone
    ]
    assert kube.calls[webhook_calls:] == []


async def test_a_status_naming_a_job_the_index_lacks_lists_the_jobs() -> None:
    body = factories.body()
    kube = FakeKube(body)
    name = naming.job_name("report", TICK)
    job: JsonDict = factories_job(name)
    kube.jobs[name] = job
    kube.body["status"]["active"] = [
        {"apiVersion": "batch/v1", "kind": "Job", "name": name, "namespace": "team-a", "uid": "u"}
    ]
    time = Time()
    mirror = mirror_of(kube, time, {})  # the index has not seen the Job yet
    mirror.cronworkflow_seen(Projection.of(kube.body), deleted=False, clock=clock)
    mirror.job_changed_soon(copy.deepcopy(job), clock=clock)
    await settle(mirror, time)
    assert ("list", "jobs") in kube.calls
    assert [entry["name"] for entry in kube.body["status"]["active"]] == [name]


async def test_a_write_seen_soon_after_a_pass_that_wrote_nothing_is_mirrored_again() -> None:
    body = factories.body()
    kube = FakeKube(body)
    name = naming.job_name("report", TICK)
    kube.jobs[name] = factories_job(name)
    index = index_of(kube)
    time = Time()
    mirror = mirror_of(kube, time, index)
    mirror.cronworkflow_seen(Projection.of(kube.body), deleted=False, clock=clock)
    for job in kube.jobs.values():
        mirror.job_changed_soon(copy.deepcopy(job), clock=clock)
    await settle(mirror, time)
    assert [entry["name"] for entry in kube.body["status"]["active"]] == [name]
    # Another writer, from a stale read of its own, drops the Job from status.active; its write
    # reaches the mirror's watch right after the mirror's pass.
    await kube.patch_cronworkflow("team-a", "report", {"status": {"active": None}}, status=True)
    mirror._recheck[("team-a", "report")] = time.now + 1  # as the pass that wrote nothing left it
    mirror.cronworkflow_seen(Projection.of(kube.body), deleted=False, clock=clock)
    await settle(mirror, time)
    assert [entry["name"] for entry in kube.body["status"]["active"]] == [name]


async def test_without_a_held_copy_the_cronworkflow_is_read_once() -> None:
    body = factories.body()
    kube = FakeKube(body)
    name = naming.job_name("report", TICK)
    kube.jobs[name] = factories_job(name)
    time = Time()
    mirror = mirror_of(kube, time, index_of(kube))
    for job in kube.jobs.values():
        mirror.job_changed_soon(copy.deepcopy(job), clock=clock)
    await settle(mirror, time)
    assert kube.calls == [("get", "cronworkflow"), ("patch", "status")]


def factories_job(name: str) -> JsonDict:
    """A Job a manual run made (not the webhook's to record): its labels and uid."""
    return {
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "uid": f"uid-{name}",
            "creationTimestamp": builders.rfc3339(DELIVERED - timedelta(seconds=1)),
            "labels": {
                vocabulary.LABEL_CRONWORKFLOW: "report",
                vocabulary.LABEL_CRONWORKFLOW_UID: factories.UID,
                vocabulary.LABEL_TRIGGER: vocabulary.TRIGGER_MANUAL,
            },
        },
        "status": {},
    }


class CountingMirror(StatusMirror):
    """The mirror, noting the (fake) instant of each of its passes."""

    def __init__(self, kube: FakeKube, time: Time) -> None:
        super().__init__(
            kube,  # type: ignore[arg-type]
            delay=DELAY,
            record_grace=GRACE,
            monotonic=time.monotonic,
            sleep=time.sleep,
        )
        self.time = time
        self.passes: list[float] = []

    async def _mirror(self, key: tuple[str, str], *, now: Any) -> float | None:
        self.passes.append(self.time.now - START)
        return await super()._mirror(key, now=now)


START = 1000.0  # Time() starts there


async def test_a_young_webhook_job_is_first_mirrored_when_its_grace_is_over() -> None:
    """Its pass at ``delay`` could only hold (the Job is the webhook's to record): none is made
    inside the minute's burst, one at the end of the grace finds the record and writes nothing."""
    body = factories.body(status={"lastScheduleTime": builders.rfc3339(PREVIOUS_TICK)})
    kube = FakeKube(body)
    service, recorder = services(kube, Reads(body))
    assert (await deliver(service)).outcome is Outcome.RUN
    time = Time()
    mirror = CountingMirror(kube, time)
    mirror.use_index(index_of(kube))
    mirror.cronworkflow_seen(Projection.of(kube.body), deleted=False, clock=clock)
    for job in kube.jobs.values():
        mirror.job_changed_soon(copy.deepcopy(job), clock=clock)
    await time.advance(DELAY + 1)
    assert mirror.passes == []  # nothing in the burst
    await recorder.drain(5)  # the webhook's record lands, and the watch delivers it
    mirror.cronworkflow_seen(Projection.of(kube.body), deleted=False, clock=clock)
    calls = len(kube.calls)
    await settle(mirror, time)
    assert mirror.passes == [GRACE]
    assert kube.calls[calls:] == []


async def test_another_jobs_event_brings_the_pass_forward() -> None:
    body = factories.body(status={"lastScheduleTime": builders.rfc3339(PREVIOUS_TICK)})
    kube = FakeKube(body)
    service, recorder = services(kube, Reads(body))
    assert (await deliver(service)).outcome is Outcome.RUN
    await recorder.drain(5)
    manual = factories_job("report-manual-1")
    kube.jobs["report-manual-1"] = manual
    time = Time()
    mirror = CountingMirror(kube, time)
    mirror.use_index(index_of(kube))
    mirror.cronworkflow_seen(Projection.of(kube.body), deleted=False, clock=clock)
    young = next(job for name, job in kube.jobs.items() if name != "report-manual-1")
    mirror.job_changed_soon(copy.deepcopy(young), clock=clock)
    await time.advance(1.0)
    mirror.job_changed_soon(copy.deepcopy(manual), clock=clock)  # a manual run's Job appears
    await settle(mirror, time)
    assert mirror.passes[0] == 1.0 + DELAY  # its delay, not the young Job's grace


class WatchedBody(dict[str, Any]):
    """A Job body that can be watched for being let go (a plain dict takes no weak reference)."""


async def test_a_gathered_job_event_holds_what_is_remembered_of_it_not_the_job() -> None:
    body = factories.body(status={"lastScheduleTime": builders.rfc3339(PREVIOUS_TICK)})
    kube = FakeKube(body)
    service, recorder = services(kube, Reads(body))
    assert (await deliver(service)).outcome is Outcome.RUN
    await recorder.close()  # no record: the mirror's pass writes, after the grace
    time = Time()
    mirror = mirror_of(kube, time, index_of(kube))
    mirror.cronworkflow_seen(Projection.of(kube.body), deleted=False, clock=clock)
    (job,) = kube.jobs.values()
    event = WatchedBody(copy.deepcopy(job))
    watched = weakref.ref(event)
    mirror.job_changed_soon(event, clock=clock)
    del event
    gc.collect()
    assert mirror._gathered  # its pass waits for the grace...
    assert watched() is None  # ...without the Job's body
    await settle(mirror, time)
    calls = len(kube.calls)
    assert kube.calls[-1] == ("patch", "status")
    mirror.job_changed_soon(copy.deepcopy(job), clock=clock)  # the same state once more
    await settle(mirror, time)
    assert kube.calls[calls:] == []  # remembered from the gathered event: nothing to mirror
    assert not mirror._gathered
