"""Marker Jobs run once each, retried while transient (``services.markers``). The run is a
stand-in recording its calls; sleeps are recorded, not slept."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from qstash_operator.domain.errors import (
    ApiRejectedError,
    KubernetesUnavailableError,
)
from qstash_operator.domain.retry import retry_delay
from qstash_operator.services.markers import BUG_RETRY_SECONDS, MarkerRuns


def marker(uid: str = "m-1", **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": f"marker-{uid}", "namespace": "team", "uid": uid, **meta}}


class Runs:
    """Fails with each of ``failures`` in turn, then succeeds; can be held mid-run."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.slept: list[float] = []

    async def run(self, body: dict[str, Any]) -> object:
        self.calls.append(body["metadata"]["uid"])
        await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)
        return None

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


async def settle(markers: MarkerRuns) -> None:
    for _ in range(50):
        if not markers.running:
            return
        await asyncio.sleep(0)
    raise AssertionError("marker runs did not finish")


@pytest.mark.parametrize(
    ("event", "body", "runs"),
    [
        pytest.param("ADDED", marker(), ["m-1"], id="a new marker runs"),
        pytest.param(None, marker(), ["m-1"], id="listed on start (made while we were down)"),
        pytest.param("MODIFIED", marker(), [], id="a change to a marker does not run it"),
        pytest.param("DELETED", marker(), [], id="a deleted marker does not run"),
        pytest.param(
            "ADDED",
            marker(deletionTimestamp="2026-06-01T10:00:00Z"),
            [],
            id="one being deleted is done with",
        ),
        pytest.param("ADDED", marker(uid=""), [], id="no uid: not a Job the API server made"),
    ],
)
async def test_which_events_run_a_marker(
    event: str | None, body: dict[str, Any], runs: list[str]
) -> None:
    stand_in = Runs()
    markers = MarkerRuns(stand_in.run, sleep=stand_in.sleep)
    markers.seen(body, event=event)
    await settle(markers)
    assert stand_in.calls == runs


async def one_run_held() -> tuple[Runs, MarkerRuns]:
    """A marker seen, its run started and held (as if waiting on the API server)."""
    stand_in = Runs()
    stand_in.gate.clear()
    markers = MarkerRuns(stand_in.run, sleep=stand_in.sleep)
    markers.seen(marker(), event="ADDED")
    await asyncio.sleep(0)
    return stand_in, markers


async def test_a_marker_seen_again_while_it_runs_is_not_run_twice() -> None:
    stand_in, markers = await one_run_held()
    markers.seen(marker(), event=None)  # a relist while the first run waits on the API server
    stand_in.gate.set()
    await settle(markers)
    assert stand_in.calls == ["m-1"]


async def test_a_transient_failure_is_retried_after_the_domains_delay() -> None:
    outage = KubernetesUnavailableError("connection refused", retry_after=2.0)
    stand_in = Runs(outage, outage)
    markers = MarkerRuns(stand_in.run, sleep=stand_in.sleep, draw=lambda: 0.0)
    markers.seen(marker(), event="ADDED")
    await settle(markers)
    assert stand_in.calls == ["m-1"] * 3
    assert stand_in.slept == [retry_delay(outage, 0, 0.0), retry_delay(outage, 1, 0.0)]
    assert stand_in.slept == [2.0, 4.0]  # an outage's delay grows


async def test_a_permanent_failure_is_logged_and_not_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stand_in = Runs(ApiRejectedError("Job refused", detail="spec.template is invalid"))
    markers = MarkerRuns(stand_in.run, sleep=stand_in.sleep)
    with caplog.at_level(logging.ERROR):
        markers.seen(marker(), event="ADDED")
        await settle(markers)
    assert stand_in.calls == ["m-1"]
    assert stand_in.slept == []
    assert "marker Job marker-m-1 not run: Job refused" in caplog.text


async def test_an_error_that_is_not_ours_is_retried_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stand_in = Runs(KeyError("metadata"))
    markers = MarkerRuns(stand_in.run, sleep=stand_in.sleep)
    with caplog.at_level(logging.ERROR):
        markers.seen(marker(), event="ADDED")
        await settle(markers)
    assert stand_in.calls == ["m-1"] * 2
    assert stand_in.slept == [BUG_RETRY_SECONDS]
    assert any(record.exc_info for record in caplog.records)


async def test_close_cancels_the_runs_under_way() -> None:
    stand_in, markers = await one_run_held()
    assert markers.running == 1
    await markers.close()
    stand_in.gate.set()  # the API server would answer now: nobody is waiting any more
    await asyncio.sleep(0)
    assert markers.running == 0
    assert stand_in.calls == ["m-1"]
