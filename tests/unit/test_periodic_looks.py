"""The one loop of every CronWorkflow's periodic looks (``services.periodic``): when each object's
look is due, what it holds of the object, and what it forgets. Instants are monotonic seconds on a
clock the test moves."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

import pytest

from qstash_operator.domain import quiet
from qstash_operator.domain.projection import Projection
from qstash_operator.services.periodic import PeriodicLooks, Watched
from tests.unit.instants import TOP_OF_THE_HOUR

TICK = 30.0
SEEN = 1000.0
"""When the watch first delivered the object."""
MID_MINUTE = TOP_OF_THE_HOUR + timedelta(seconds=30)
"""A wall-clock instant outside every quiet window (``domain.quiet``): looks run at once."""
IN_THE_BURST = TOP_OF_THE_HOUR + timedelta(seconds=3)


class Clock:
    def __init__(self, now: float = SEEN) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def cronworkflow(
    name: str = "nightly", *, uid: str = "uid-1", version: str = "1", **meta: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "qstash-operator.dev/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {
            "name": name,
            "namespace": "team",
            "uid": uid,
            "resourceVersion": version,
            "generation": 1,
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
            "finalizers": ["qstash-operator.dev/finalizer"],
            **meta,
        },
        "spec": {"schedule": "0 3 * * *"},
        "status": {"backend": "QStash"},
    }


async def nothing(held: Watched, moment: float) -> None:
    return None


def names(found: list[Watched]) -> list[str]:
    return [held.body["metadata"]["name"] for held in found]


@pytest.mark.parametrize(
    ("moment", "due"),
    [
        pytest.param(SEEN + TICK - 0.1, [], id="just before a tick after first seen: not yet"),
        pytest.param(SEEN + TICK, ["nightly"], id="a tick after first seen: due"),
        pytest.param(SEEN + 10 * TICK, ["nightly"], id="long after: due once"),
    ],
)
async def test_the_first_look_comes_a_tick_after_the_object_was_first_seen(
    moment: float, due: list[str]
) -> None:
    clock = Clock()
    looks = PeriodicLooks(nothing, tick=TICK, monotonic=clock)
    looks.seen(Projection.of(cronworkflow()), deleted=False)
    clock.now = moment
    assert names(looks.due_now()) == due


async def test_a_later_event_updates_what_is_held_without_moving_the_look() -> None:
    clock = Clock()
    looks = PeriodicLooks(nothing, tick=TICK, monotonic=clock)
    looks.seen(Projection.of(cronworkflow(version="1")), deleted=False)
    clock.now = SEEN + 20.0
    looks.seen(Projection.of(cronworkflow(version="2")), deleted=False)
    clock.now = SEEN + TICK
    (held,) = looks.due_now()
    assert held.body["metadata"]["resourceVersion"] == "2"


async def test_the_next_look_comes_a_tick_after_the_previous_one_ended() -> None:
    clock = Clock()
    looks = PeriodicLooks(nothing, tick=TICK, monotonic=clock)
    looks.seen(Projection.of(cronworkflow()), deleted=False)
    clock.now = SEEN + TICK
    (held,) = looks.due_now()
    assert looks.due_now() == []  # under way: not handed out twice
    clock.now = SEEN + TICK + 5.0  # the look took five seconds
    looks.looked(held)
    clock.now = SEEN + 2 * TICK + 4.9
    assert looks.due_now() == []
    clock.now = SEEN + 2 * TICK + 5.0
    assert looks.due_now() == [held]


@pytest.mark.parametrize(
    ("event", "deleted"),
    [
        pytest.param(cronworkflow(), True, id="deleted"),
        pytest.param(cronworkflow(deletionTimestamp="2026-12-02T18:00:00Z"), False, id="deleting"),
    ],
)
async def test_an_object_deleted_or_being_deleted_is_forgotten(
    event: dict[str, Any], deleted: bool
) -> None:
    clock = Clock()
    looks = PeriodicLooks(nothing, tick=TICK, monotonic=clock)
    looks.seen(Projection.of(cronworkflow()), deleted=False)
    looks.seen(Projection.of(event), deleted=deleted)
    clock.now = SEEN + TICK
    assert looks.due_now() == []
    assert len(looks) == 0


async def test_one_looked_at_while_it_was_deleted_is_not_looked_at_again() -> None:
    clock = Clock()
    looks = PeriodicLooks(nothing, tick=TICK, monotonic=clock)
    looks.seen(Projection.of(cronworkflow()), deleted=False)
    clock.now = SEEN + TICK
    (held,) = looks.due_now()
    looks.seen(Projection.of(cronworkflow()), deleted=True)
    looks.looked(held)
    clock.now = SEEN + 10 * TICK
    assert looks.due_now() == []


async def test_a_new_object_of_the_same_name_starts_its_own_ticks() -> None:
    clock = Clock()
    looks = PeriodicLooks(nothing, tick=TICK, monotonic=clock)
    looks.seen(Projection.of(cronworkflow(uid="old")), deleted=False)
    clock.now = SEEN + 20.0
    looks.seen(
        Projection.of(cronworkflow(uid="new")), deleted=False
    )  # deleted and created again, DELETED lost
    clock.now = SEEN + TICK
    assert looks.due_now() == []
    clock.now = SEEN + 20.0 + TICK
    (held,) = looks.due_now()
    assert held.body["metadata"]["uid"] == "new"


async def test_objects_are_looked_at_in_the_order_they_fall_due() -> None:
    clock = Clock()
    looks = PeriodicLooks(nothing, tick=TICK, monotonic=clock)
    for offset, name in [(0.0, "a"), (5.0, "b"), (2.0, "c")]:
        clock.now = SEEN + offset
        looks.seen(Projection.of(cronworkflow(name, uid=name)), deleted=False)
    assert looks.next_due() == SEEN + TICK
    clock.now = SEEN + TICK + 3.0
    assert names(looks.due_now()) == ["a", "c"]
    assert looks.next_due() == SEEN + 5.0 + TICK


async def test_the_loop_looks_and_keeps_going_when_a_look_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    looked: list[tuple[str, float]] = []
    done = asyncio.Event()

    async def look(held: Watched, moment: float) -> None:
        name = held.body["metadata"]["name"]
        looked.append((name, moment))
        if len(looked) == 2:
            done.set()
        if name == "broken":
            raise RuntimeError("a bug in one object's look")

    looks = PeriodicLooks(look, tick=TICK, monotonic=clock, wall=lambda: MID_MINUTE)
    looks.seen(Projection.of(cronworkflow("broken", uid="b")), deleted=False)
    looks.seen(Projection.of(cronworkflow("fine", uid="f")), deleted=False)
    clock.now = SEEN + TICK  # both due at once; the loop's next wait is a tick (cancelled below)
    task = asyncio.create_task(looks.run())
    with caplog.at_level(logging.ERROR):
        await asyncio.wait_for(done.wait(), 5)
        for _ in range(3):  # let the failed look's clean-up run
            await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(looked) == [("broken", SEEN + TICK), ("fine", SEEN + TICK)]
    assert "periodic look at team/broken failed" in caplog.text
    assert looks.next_due() == SEEN + 2 * TICK  # both queued again, the failed one included
    assert len(looks._queue) == 2


async def test_the_loop_wakes_for_an_object_queued_again_after_its_look() -> None:
    """With one object, the queue is empty while it is looked at; the loop must not sleep
    until some other object appears. (The loop's own clock and a 10 ms tick: its sleeps are
    real ones.)"""
    looked: list[float] = []
    thrice = asyncio.Event()

    async def look(held: Watched, moment: float) -> None:
        looked.append(moment)
        if len(looked) == 3:
            thrice.set()

    looks = PeriodicLooks(look, tick=0.01, wall=lambda: MID_MINUTE)
    task = asyncio.create_task(looks.run())
    looks.seen(Projection.of(cronworkflow()), deleted=False)
    await asyncio.wait_for(thrice.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert looked == sorted(looked)


async def test_looks_due_in_a_minutes_burst_wait_for_its_end() -> None:
    """At 3 s past a minute the loop holds off until 12 s past (``domain.quiet``), then looks at
    what came due meanwhile. Its sleeps are recorded, and move both clocks."""
    clock = Clock()
    walls = [IN_THE_BURST]
    slept: list[float] = []
    looked: list[datetime] = []
    done = asyncio.Event()

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds
        walls.append(walls[-1] + timedelta(seconds=seconds))
        await asyncio.sleep(0)

    async def look(held: Watched, moment: float) -> None:
        looked.append(walls[-1])
        done.set()

    looks = PeriodicLooks(look, tick=TICK, monotonic=clock, wall=lambda: walls[-1], sleep=sleep)
    looks.seen(Projection.of(cronworkflow()), deleted=False)
    clock.now = SEEN + TICK  # due now, but the wall clock says the burst is on
    task = asyncio.create_task(looks.run())
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert slept[0] == (quiet.AFTER - timedelta(seconds=3)).total_seconds()
    assert looked == [TOP_OF_THE_HOUR + quiet.AFTER]
