"""Status writes racing each other on the real API server: conditional, re-read, never backwards.

Each test runs the real services (``RunService``, ``StatusMirror``) against the real control plane,
with a :class:`Kube` whose hook makes another writer act at the one moment that matters: right
after a Replace run deletes the old Job (the operator's mirror reacts to that delete), or right
before a status write (another replica or a manual run writes first). The API server decides
who wins; the tests check that the status ends as the domain rules promise.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pytest

from qstash_devstack.controlplane import ControlPlane
from qstash_operator.adapters.kube import Kube
from qstash_operator.domain import builders, naming, runs, vocabulary
from qstash_operator.domain.errors import ConflictError, RunInFlightError
from qstash_operator.domain.model import JsonDict
from qstash_operator.domain.runs import Outcome
from qstash_operator.services.observe import StatusMirror
from qstash_operator.services.runs import RunService

TWELVE: Final = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
"""Ticks are derived from the time the services are given, not the wall clock."""
TWELVE_01: Final = TWELVE + timedelta(minutes=1)
TOLERANCE: Final = timedelta(seconds=30)
LONG_RUNNING: Final = {"kwok.qstash-operator.dev/run-for": "300s"}

Hook = Callable[[], Awaitable[None]]


class RacingKube(Kube):
    """The real adapter, with a hook run once just before the first status patch matching a
    predicate, or just after the first Job delete; counts the conflicts the API server raised."""

    def __init__(self, kube: Kube) -> None:
        super().__init__(kube.api_client)
        self.before_patch: tuple[Callable[[JsonDict], bool], Hook] | None = None
        self.after_delete: Hook | None = None
        self.conflicts = 0

    async def patch_cronworkflow(
        self, namespace: str, name: str, patch: JsonDict, *, status: bool = False
    ) -> JsonDict:
        if self.before_patch is not None and status and self.before_patch[0](patch):
            _, hook = self.before_patch
            self.before_patch = None
            await hook()
        try:
            return await super().patch_cronworkflow(namespace, name, patch, status=status)
        except ConflictError:
            self.conflicts += 1
            raise

    async def delete_job(self, namespace: str, name: str) -> None:
        await super().delete_job(namespace, name)
        if self.after_delete is not None:
            hook, self.after_delete = self.after_delete, None
            await hook()


@pytest.fixture
async def kube(control_plane: ControlPlane) -> AsyncIterator[Kube]:
    client = await Kube.from_environment(str(control_plane.kubeconfig))
    try:
        yield client
    finally:
        await client.close()


async def create_cronworkflow(
    plane: ControlPlane, namespace: str, name: str, **spec: Any
) -> JsonDict:
    body = {
        "apiVersion": vocabulary.API_VERSION,
        "kind": vocabulary.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "schedule": "* * * * *",
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "metadata": {"annotations": LONG_RUNNING},
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "main", "image": "busybox"}],
                        },
                    },
                }
            },
            **spec,
        },
    }
    path = f"/apis/{vocabulary.API_VERSION}/namespaces/{namespace}/{vocabulary.PLURAL}"
    status, answer = await asyncio.to_thread(plane.request, "POST", path, body)
    assert status == 201, answer
    created: JsonDict = answer
    return created


async def active_jobs(kube: Kube, namespace: str, name: str) -> list[str]:
    jobs = await kube.list_jobs(namespace, f"{vocabulary.LABEL_CRONWORKFLOW}={name}")
    return sorted(view.name for view in map(runs.job_view, jobs) if view.active)


def services(kube: Kube) -> RunService:
    return RunService(kube, component="test", tolerance=TOLERANCE)


async def test_the_mirror_reacting_to_replaces_delete_keeps_the_runs_reservation(
    control_plane: ControlPlane, namespace: str, kube: Kube
) -> None:
    """Replace reserves the 12:01 Job, deletes the 12:00 one, and only then creates its own. The
    operator's mirror handles that delete in between; a manual run arriving right after must find
    the reservation (and wait), not an empty ``status.active`` (and start a second Job)."""
    cw = await create_cronworkflow(control_plane, namespace, "relay", concurrencyPolicy="Replace")
    uid = cw["metadata"]["uid"]
    first = await services(kube).run_delivery(
        namespace=namespace, name="relay", uid=uid, message_id="m1", delivered_at=TWELVE, retried=0
    )
    assert first.outcome is Outcome.RUN
    old_job = await kube.get_job(namespace, str(first.job_name))

    racing = RacingKube(kube)
    concurrent: list[BaseException | Outcome] = []
    seen_active: list[list[str]] = []

    async def operator_and_a_manual_run_meanwhile() -> None:
        now = TWELVE_01 + timedelta(seconds=1)
        await StatusMirror(kube).job_changed(old_job, now=now)
        status = (await kube.get_cronworkflow(namespace, "relay"))["status"]
        seen_active.append([entry["name"] for entry in status.get("active") or []])
        try:
            manual = await services(kube).run_manual(
                namespace=namespace, name="relay", requested_by="alice", seed="s", now=now
            )
            concurrent.append(manual.outcome)
        except RunInFlightError as exc:
            concurrent.append(exc)

    racing.after_delete = operator_and_a_manual_run_meanwhile
    second = await services(racing).run_delivery(
        namespace=namespace,
        name="relay",
        uid=uid,
        message_id="m2",
        delivered_at=TWELVE_01,
        retried=0,
    )
    assert second.outcome is Outcome.RUN
    assert seen_active == [[naming.job_name("relay", TWELVE_01)]]  # the reservation survived
    [outcome] = concurrent
    assert isinstance(outcome, RunInFlightError), outcome  # it waits instead of running beside
    assert await active_jobs(kube, namespace, "relay") == [second.job_name]


async def test_a_run_recorded_from_a_stale_read_does_not_move_last_schedule_time_back(
    control_plane: ControlPlane, namespace: str, kube: Kube
) -> None:
    """A late delivery of the 12:00 tick read the CronWorkflow before another replica recorded
    12:01. Its record conflicts, is decided again from a fresh read, and leaves 12:01."""
    cw = await create_cronworkflow(control_plane, namespace, "late")
    racing = RacingKube(kube)

    async def another_replica_records_twelve_01() -> None:
        await kube.patch_cronworkflow(
            namespace,
            "late",
            {
                "status": {
                    "lastScheduleTime": builders.rfc3339(TWELVE_01),
                    "nextScheduleTime": builders.rfc3339(TWELVE_01 + timedelta(minutes=1)),
                }
            },
            status=True,
        )

    racing.before_patch = (
        lambda patch: "lastScheduleTime" in patch.get("status", {}),
        another_replica_records_twelve_01,
    )
    result = await services(racing).run_delivery(
        namespace=namespace,
        name="late",
        uid=cw["metadata"]["uid"],
        message_id="m-late",
        delivered_at=TWELVE + timedelta(seconds=20),
        retried=0,
    )
    assert result.outcome is Outcome.RUN
    assert result.tick == TWELVE
    status = (await kube.get_cronworkflow(namespace, "late"))["status"]
    assert status["lastScheduleTime"] == builders.rfc3339(TWELVE_01)
    assert status["nextScheduleTime"] == builders.rfc3339(TWELVE_01 + timedelta(minutes=1))
    assert [entry["name"] for entry in status["active"]] == [result.job_name]
    assert racing.conflicts == 1  # the API server refused the stale write once


async def test_the_mirror_retries_a_conflicted_write_and_keeps_what_the_other_writer_added(
    control_plane: ControlPlane, namespace: str, kube: Kube
) -> None:
    """The mirror read the status, then a manual run reserved its Job before the mirror wrote.
    The mirror's write conflicts; decided again, it keeps that reservation."""
    cw = await create_cronworkflow(control_plane, namespace, "mirrored")
    run = await services(kube).run_delivery(
        namespace=namespace,
        name="mirrored",
        uid=cw["metadata"]["uid"],
        message_id="m1",
        delivered_at=TWELVE,
        retried=0,
    )
    job = await kube.get_job(namespace, str(run.job_name))
    # status.active forgot the Job (e.g. a record that was lost): the mirror has work to do.
    await kube.patch_cronworkflow(namespace, "mirrored", {"status": {"active": None}}, status=True)
    now = TWELVE + timedelta(seconds=20)
    manual = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": "mirrored-manual-aaaaa",
        "namespace": namespace,
        "uid": runs.reservation_uid(now),
    }

    async def a_manual_run_reserves() -> None:
        await kube.patch_cronworkflow(
            namespace, "mirrored", {"status": {"active": [manual]}}, status=True
        )

    racing = RacingKube(kube)
    racing.before_patch = (lambda patch: "active" in patch.get("status", {}), a_manual_run_reserves)
    written = await StatusMirror(racing).job_changed(job, now=now)
    assert written is not None
    assert racing.conflicts == 1
    active = (await kube.get_cronworkflow(namespace, "mirrored"))["status"]["active"]
    assert [entry["name"] for entry in active] == [run.job_name, "mirrored-manual-aaaaa"]
    assert active[1]["uid"] == manual["uid"]
