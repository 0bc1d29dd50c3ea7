"""What the operator's Job watch hands each event to (``entrypoints.handlers.job_events``): the
status mirror and, for a marker Job, the marker runs; a failing one is logged, and the watch
(the index's only source) goes on."""

from __future__ import annotations

import logging
import types
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from qstash_operator.domain import vocabulary
from qstash_operator.entrypoints.handlers import OperatorServices, job_events

NOW = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)


class Mirror:
    def __init__(self, fails: bool = False) -> None:
        self.fails = fails
        self.seen: list[str] = []

    def job_changed_soon(self, job: dict[str, Any], *, clock: Any) -> None:
        if self.fails:
            raise RuntimeError("a bug")
        self.seen.append(job["metadata"]["name"])


class Markers:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def seen_marker(self, job: dict[str, Any], *, event: str | None) -> None:
        self.seen.append((job["metadata"]["name"], event))


def services(mirror: Mirror, markers: Markers) -> OperatorServices:
    return cast(
        "OperatorServices",
        types.SimpleNamespace(
            mirror=mirror,
            markers=types.SimpleNamespace(seen=markers.seen_marker),
            clock=lambda: NOW,
        ),
    )


def job(name: str, *, marker: bool = False) -> dict[str, Any]:
    labels = {vocabulary.LABEL_TICK_MARKER: "true"} if marker else {}
    return {"metadata": {"name": name, "labels": labels}}


@pytest.mark.parametrize(
    ("body", "event", "markers_seen"),
    [
        pytest.param(job("report-1"), "ADDED", [], id="a tick's Job: the mirror only"),
        pytest.param(
            job("marker-1", marker=True),
            None,
            [("marker-1", None)],
            id="a marker Job listed on start: the mirror and the marker runs",
        ),
    ],
)
def test_each_event_reaches_the_mirror_and_a_marker_the_marker_runs(
    body: dict[str, Any], event: str | None, markers_seen: list[Any]
) -> None:
    mirror, markers = Mirror(), Markers()
    job_events(services(mirror, markers))(body, event)
    assert mirror.seen == [body["metadata"]["name"]]
    assert markers.seen == markers_seen


def test_a_failing_event_is_logged_and_does_not_reach_the_watch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen = job_events(services(Mirror(fails=True), Markers()))
    with caplog.at_level(logging.ERROR):
        seen(job("report-1"), "MODIFIED")  # does not raise
    assert "report-1" in caplog.text
    assert "MODIFIED" in caplog.text
