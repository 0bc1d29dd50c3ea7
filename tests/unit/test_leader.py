"""Leader election: the pure step rule (client-go's) and the lease arithmetic, as tables; then
:func:`lead` itself over Leases in memory with short timings (the real API server frozen is
``tests/reliability/test_apiserver_pause.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from typing import Any

import pytest

from qstash_operator.adapters.leader import (
    LEASE_SECONDS,
    RENEW_DEADLINE_SECONDS,
    RETRY_SECONDS,
    STOP_GRACE_SECONDS,
    Ending,
    Observation,
    Step,
    Timing,
    lead,
    next_step,
)
from qstash_operator.domain.errors import AlreadyExistsError, ConflictError, NotFoundError
from tests.unit.webhook.conftest import UntouchableKube


def lease(holder: str | None, duration: int = LEASE_SECONDS) -> dict[str, Any]:
    return {
        "metadata": {"resourceVersion": "7"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration},
    }


@pytest.mark.parametrize(
    ("current", "seen_at", "now", "expected"),
    [
        pytest.param(None, 0.0, 100.0, Step.CREATE, id="no lease yet"),
        pytest.param(lease("me"), 0.0, 1000.0, Step.RENEW, id="ours, however old"),
        pytest.param(
            lease("other"), 100.0, 110.0, Step.WAIT, id="someone else's, seen changing 10 s ago"
        ),
        pytest.param(
            lease("other"),
            100.0,
            115.5,
            Step.TAKE_OVER,
            id="someone else's, silent past its duration",
        ),
        pytest.param(
            lease("other", duration=60),
            100.0,
            130.0,
            Step.WAIT,
            id="their longer duration is honoured",
        ),
        pytest.param(lease(""), 100.0, 100.0, Step.TAKE_OVER, id="released on a clean stop"),
    ],
)
def test_next_step(
    current: dict[str, Any] | None, seen_at: float, now: float, expected: Step
) -> None:
    observed = Observation(version="7", seen_at=seen_at)
    assert next_step(current, identity="me", observed=observed, now=now) is expected


# -- the lease arithmetic: when a leader that cannot renew stops, and when a standby may lead ----

RENEWED = 100.0
"""The instant (monotonic seconds) the leader sent the write that last renewed its lease."""
JUST_RENEWED = RENEWED + 0.1
FOUR_SECONDS_ON = RENEWED + 4.0
ONE_SECOND_BEFORE_THE_DEADLINE = RENEWED + RENEW_DEADLINE_SECONDS - 1.0
AT_THE_DEADLINE = RENEWED + RENEW_DEADLINE_SECONDS
PAST_THE_DEADLINE = RENEWED + RENEW_DEADLINE_SECONDS + 2.0


def test_a_leader_has_stopped_before_a_standby_may_lead() -> None:
    timing = Timing()
    assert timing.step_down_at(RENEWED) == RENEWED + RENEW_DEADLINE_SECONDS == 110.0
    assert timing.stopped_by(RENEWED) == 110.0 + STOP_GRACE_SECONDS == 113.0
    assert timing.standby_may_lead_at(RENEWED) == RENEWED + LEASE_SECONDS == 115.0
    assert timing.stopped_by(RENEWED) < timing.standby_may_lead_at(RENEWED)


@pytest.mark.parametrize(
    ("now", "budget", "pause"),
    [
        pytest.param(JUST_RENEWED, 9.9, RETRY_SECONDS, id="just renewed: the retry period"),
        pytest.param(FOUR_SECONDS_ON, 6.0, RETRY_SECONDS, id="four seconds on"),
        pytest.param(ONE_SECOND_BEFORE_THE_DEADLINE, 1.0, 1.0, id="never past the deadline"),
        pytest.param(AT_THE_DEADLINE, 0.0, 0.0, id="at the deadline: no attempt, stop"),
        pytest.param(PAST_THE_DEADLINE, 0.0, 0.0, id="past it: the same"),
    ],
)
def test_each_attempt_gets_only_the_time_left_before_the_step_down(
    now: float, budget: float, pause: float
) -> None:
    timing = Timing()
    assert timing.attempt_budget(RENEWED, now) == pytest.approx(budget)
    assert timing.pause_before_attempt(RENEWED, now) == pytest.approx(pause)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({"renew_deadline": 12.0}, id="deadline + grace reach the lease"),
        pytest.param({"stop_grace": 5.0}, id="grace too long"),
        pytest.param({"lease": 13.0}, id="lease too short"),
        pytest.param({"retry": 10.0}, id="retry not below the deadline"),
        pytest.param({"retry": 0.0}, id="no retry period"),
    ],
)
def test_a_timing_that_would_allow_two_leaders_is_refused(values: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Timing(**values)


# -- lead(): the same rules with a Lease in memory and short timings ---------------------------

FAST = Timing(lease=1.5, renew_deadline=0.8, stop_grace=0.4, retry=0.1)


class MemoryLeases(UntouchableKube):
    """Leases in memory, with resourceVersions; ``hang`` makes every call wait forever (a frozen
    API server accepts the connection and never answers)."""

    def __init__(self) -> None:
        super().__init__()
        self.leases: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.hang = False

    async def _wait(self) -> None:
        if self.hang:
            await asyncio.Event().wait()

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any]:
        await self._wait()
        if name not in self.leases:
            raise NotFoundError(name)
        return copy.deepcopy(self.leases[name])

    def _store(self, lease: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        lease["metadata"]["resourceVersion"] = str(self.version)
        self.leases[lease["metadata"]["name"]] = copy.deepcopy(lease)
        return lease

    async def create_lease(self, lease: dict[str, Any]) -> dict[str, Any]:
        await self._wait()
        if lease["metadata"]["name"] in self.leases:
            raise AlreadyExistsError("lease")
        return self._store(copy.deepcopy(lease))

    async def replace_lease(self, lease: dict[str, Any]) -> dict[str, Any]:
        await self._wait()
        current = self.leases[lease["metadata"]["name"]]
        if current["metadata"]["resourceVersion"] != lease["metadata"].get("resourceVersion"):
            raise ConflictError("lease")
        return self._store(copy.deepcopy(lease))


class Work:
    """The leader's work: records when it started and stopped; may refuse to stop."""

    def __init__(self, *, stubborn: bool = False) -> None:
        self.started = asyncio.Event()
        self.stopped_at: float | None = None
        self.stubborn = stubborn

    async def __call__(self) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        finally:
            if self.stubborn:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(60)
            self.stopped_at = time.monotonic()


async def leading(kube: MemoryLeases, work: Work) -> asyncio.Task[Ending]:
    task = asyncio.create_task(
        lead(kube, name="lease", namespace="ns", identity="me", work=work, timing=FAST)
    )
    await asyncio.wait_for(work.started.wait(), timeout=5)
    return task


async def test_a_leader_whose_api_server_hangs_stops_at_the_renew_deadline() -> None:
    kube, work = MemoryLeases(), Work()
    task = await leading(kube, work)
    kube.hang = True
    frozen_at = time.monotonic()
    assert await asyncio.wait_for(task, timeout=5) is Ending.LOST
    assert work.stopped_at is not None
    # It last renewed at most one retry period before the freeze, and stopped within its
    # deadline of that renewal: before a standby could lead.
    assert work.stopped_at - frozen_at < FAST.renew_deadline + FAST.stop_grace
    assert work.stopped_at - (frozen_at - FAST.retry) < FAST.lease


async def test_a_leader_that_sees_another_holder_stops_at_once() -> None:
    kube, work = MemoryLeases(), Work()
    task = await leading(kube, work)
    lease = kube.leases["lease"]
    lease["spec"]["holderIdentity"] = "someone-else"
    kube._store(lease)
    taken_at = time.monotonic()
    assert await asyncio.wait_for(task, timeout=5) is Ending.LOST
    assert work.stopped_at is not None
    assert work.stopped_at - taken_at < FAST.retry + 0.2  # the next read, not the deadline


async def test_work_that_will_not_stop_is_reported_stuck_within_the_grace() -> None:
    kube, work = MemoryLeases(), Work(stubborn=True)
    task = await leading(kube, work)
    kube.hang = True
    frozen_at = time.monotonic()
    assert await asyncio.wait_for(task, timeout=5) is Ending.STUCK
    assert time.monotonic() - frozen_at < FAST.renew_deadline + FAST.stop_grace + 0.2
