"""One periodic look per CronWorkflow runs two periodic jobs (refresh, slot audit): when each is
due, from what the look remembers of the object (``handlers._due``), and what each does
(``handlers.periodic_look``). Instants are monotonic seconds."""

from __future__ import annotations

import types
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from qstash_operator.domain.errors import KubernetesUnavailableError, NotFoundError
from qstash_operator.domain.projection import Projection
from qstash_operator.entrypoints.handlers import OperatorServices, _due, periodic_look
from qstash_operator.services.periodic import Watched
from qstash_operator.services.reconcile import Result

SEEN = 1000.0
"""When the watch first delivered the object; its look comes ``tick`` later, then every
``tick``."""


def firings(tick: float, until: float) -> list[float]:
    moments, moment = [], SEEN + tick
    while moment <= SEEN + until:
        moments.append(moment)
        moment += tick
    return moments


@pytest.mark.parametrize(
    ("tick", "period", "until", "ran_at"),
    [
        pytest.param(
            30.0, 30.0, 95.0, [30.0, 60.0, 90.0], id="the job that sets the tick: every firing"
        ),
        pytest.param(
            1.0, 5.0, 16.0, [5.0, 10.0, 15.0], id="a longer period on a 1 s tick: every fifth"
        ),
        pytest.param(
            30.0, 1e6, 86_400.0, [], id="a period beyond the run (the bench's no-audit baseline)"
        ),
    ],
)
def test_each_job_runs_once_per_its_own_period_from_when_the_object_was_seen(
    tick: float, period: float, until: float, ran_at: list[float]
) -> None:
    memo = types.SimpleNamespace()
    ran = [
        moment - SEEN
        for moment in firings(tick, until)
        if _due(memo, "job_at", period, moment, tick=tick)
    ]
    assert ran == ran_at


def test_a_firing_slightly_early_still_counts() -> None:
    memo = types.SimpleNamespace()
    assert _due(memo, "job_at", 30.0, SEEN + 30.0, tick=30.0)
    assert _due(memo, "job_at", 30.0, SEEN + 59.5, tick=30.0)  # kopf's timer half a second early


# -- the look the loop runs for each object (``handlers.periodic_look``) ----------------------


class FakeReconciler:
    def __init__(self, status: dict[str, Any], error: Exception | None = None) -> None:
        self.status, self.error = status, error
        self.refreshed: list[dict[str, Any]] = []

    async def refresh(self, body: dict[str, Any], *, now: datetime) -> Result:
        self.refreshed.append(body)
        return Result(dict(self.status), error=self.error)  # type: ignore[arg-type]


class FakeKube:
    def __init__(self, raises: Exception | None = None) -> None:
        self.patches: list[tuple[str, str, dict[str, Any], bool]] = []
        self.raises = raises

    async def patch_cronworkflow(
        self, namespace: str, name: str, patch: dict[str, Any], *, status: bool = False
    ) -> dict[str, Any]:
        self.patches.append((namespace, name, patch, status))
        if self.raises is not None:
            raise self.raises
        return {}


class FakeAudit:
    def __init__(self) -> None:
        self.audited: list[tuple[str, list[Any]]] = []

    async def audit(self, body: dict[str, Any], jobs: list[Any], *, now: datetime) -> None:
        self.audited.append((body["metadata"]["name"], jobs))


NOW = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)
BODY = {
    "apiVersion": "qstash-operator.dev/v1alpha1",
    "kind": "CronWorkflow",
    "metadata": {"name": "nightly", "namespace": "team", "uid": "u1"},
    "spec": {"schedule": "0 3 * * *"},
    "status": {},
}


def services(
    reconciler: FakeReconciler, kube: FakeKube, audit: FakeAudit | None, index: Any = None
) -> OperatorServices:
    return cast(
        "OperatorServices",
        types.SimpleNamespace(
            reconciler=reconciler,
            kube=kube,
            audit=audit,
            job_index=index,
            clock=lambda: NOW,
        ),
    )


@pytest.mark.parametrize(
    ("status", "written"),
    [
        pytest.param({}, [], id="nothing changed: nothing written"),
        pytest.param(
            {"nextScheduleTime": "2026-12-03T03:00:00Z"},
            [("team", "nightly", {"status": {"nextScheduleTime": "2026-12-03T03:00:00Z"}}, True)],
            id="a change: merge-patched into the status subresource",
        ),
    ],
)
async def test_a_due_refresh_writes_what_it_decided(
    status: dict[str, Any], written: list[Any]
) -> None:
    reconciler, kube = FakeReconciler(status), FakeKube()
    look = periodic_look(services(reconciler, kube, None), audit_seconds=30.0)
    await look(Watched(Projection.of(BODY), due=SEEN + 30.0), SEEN + 30.0)
    assert reconciler.refreshed == [BODY]
    assert kube.patches == written


@pytest.mark.parametrize(
    "raised",
    [
        pytest.param(NotFoundError("gone"), id="the object is gone"),
        pytest.param(KubernetesUnavailableError("down"), id="the API server is down"),
    ],
)
async def test_a_refresh_write_that_fails_is_left_to_the_next_look(raised: Exception) -> None:
    reconciler, kube = FakeReconciler({"nextScheduleTime": None}), FakeKube(raises=raised)
    look = periodic_look(services(reconciler, kube, None), audit_seconds=30.0)
    await look(Watched(Projection.of(BODY), due=SEEN + 30.0), SEEN + 30.0)  # does not raise
    assert len(kube.patches) == 1


async def test_the_audit_runs_on_its_own_period_with_the_objects_jobs_from_the_index() -> None:
    reconciler, kube, audit = FakeReconciler({}), FakeKube(), FakeAudit()
    slot = object()
    index = {("team", "nightly"): [types.SimpleNamespace(slot=slot)]}
    look = periodic_look(services(reconciler, kube, audit, index), audit_seconds=60.0)
    held = Watched(Projection.of(BODY), due=SEEN + 30.0)
    for moment in (SEEN + 30.0, SEEN + 60.0, SEEN + 90.0, SEEN + 120.0):
        await look(held, moment)
    assert len(reconciler.refreshed) == 4  # every 30 s tick
    assert audit.audited == [("nightly", [slot]), ("nightly", [slot])]  # every other one


async def test_the_audit_waits_for_the_job_index_then_runs_on_its_period() -> None:
    """Until the operator's Job watch has listed the Jobs there is no index: an audit then would
    find every recent slot without its Job, so its period starts when the index is there."""
    reconciler, kube, audit = FakeReconciler({}), FakeKube(), FakeAudit()
    slot = object()
    held_services = services(reconciler, kube, audit, None)
    look = periodic_look(held_services, audit_seconds=60.0)
    held = Watched(Projection.of(BODY), due=SEEN + 30.0)
    for moment in (SEEN + 30.0, SEEN + 60.0, SEEN + 90.0):
        await look(held, moment)
    assert audit.audited == []
    held_services.job_index = {("team", "nightly"): [types.SimpleNamespace(slot=slot)]}
    await look(held, SEEN + 120.0)
    assert audit.audited == []
    await look(held, SEEN + 150.0)
    assert audit.audited == [("nightly", [slot])]


TICK_DUE = "2026-12-02T18:00:00Z"
"""The tick that came due at ``NOW`` (the looks' clock)."""


@pytest.mark.parametrize(
    ("status", "audited"),
    [
        pytest.param(
            {"nextScheduleTime": TICK_DUE, "lastScheduleTime": "2026-12-01T18:00:00Z"},
            False,
            id="the tick just due is being recorded: the record brings its slot, no audit",
        ),
        pytest.param(
            {"nextScheduleTime": "2026-12-03T18:00:00Z", "lastScheduleTime": TICK_DUE},
            True,
            id="recorded: the audit runs",
        ),
        pytest.param(
            {
                "nextScheduleTime": "2026-12-02T17:59:00Z",
                "lastScheduleTime": "2026-12-01T18:00:00Z",
            },
            True,
            id="a minute past and never recorded: past the record's grace, the audit runs",
        ),
    ],
)
async def test_the_audit_leaves_a_tick_being_recorded_to_its_record(
    status: dict[str, Any], audited: bool
) -> None:
    reconciler, kube, audit = FakeReconciler({}), FakeKube(), FakeAudit()
    index = {("team", "nightly"): [types.SimpleNamespace(slot=object())]}
    look = periodic_look(services(reconciler, kube, audit, index), audit_seconds=30.0)
    held = Watched(Projection.of({**BODY, "status": status}), due=SEEN + 30.0)
    await look(held, SEEN + 30.0)
    assert bool(audit.audited) is audited
