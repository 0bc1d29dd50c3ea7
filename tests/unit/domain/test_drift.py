"""Drift repair's rules: orphans (this cluster name, a watched namespace, unused), loop health."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from qstash_operator.domain import drift
from qstash_operator.domain.errors import (
    ApiRejectedError,
    ConflictError,
    QStashAuthError,
    QStashRejectedError,
    QStashUnavailableError,
)
from tests.unit.instants import TOP_OF_THE_HOUR

OBSERVED = (
    "default.team-a.nightly",  # kept: its CronWorkflow is on QStash
    "default.team-a.gone",  # its CronWorkflow was deleted while the operator was down
    "default.team-b.nightly",  # another release's, unless this one watches team-b
    "default.team-b.report.v2",  # dots in the name parse back
    "defaultish.team-a.gone",  # another cluster name that merely starts the same
    "default.no-name",  # two parts: not an id this project makes
    "other.team-a.gone",  # another cluster
)
KEEP = frozenset({"default.team-a.nightly"})


@pytest.mark.parametrize(
    ("namespaces", "expected"),
    [
        pytest.param(
            (),
            ["default.team-a.gone", "default.team-b.nightly", "default.team-b.report.v2"],
            id="cluster-wide: every namespace is watched",
        ),
        pytest.param(
            ("team-a",),
            ["default.team-a.gone"],
            id="narrowed to team-a: team-b's live schedules are not orphans",
        ),
        pytest.param(
            ("team-b",),
            ["default.team-b.nightly", "default.team-b.report.v2"],
            id="watching team-b only: team-a's schedules (kept or not) are left alone",
        ),
        pytest.param(
            ("team-a", "team-b"),
            ["default.team-a.gone", "default.team-b.nightly", "default.team-b.report.v2"],
            id="two watched namespaces",
        ),
        pytest.param(("team-c",), [], id="a namespace with no schedules: nothing to delete"),
    ],
)
def test_only_schedules_of_watched_namespaces_can_be_orphans(
    namespaces: tuple[str, ...], expected: list[str]
) -> None:
    assert drift.orphans(OBSERVED, KEEP, cluster="default", namespaces=namespaces) == expected


def test_a_kept_schedule_is_never_an_orphan() -> None:
    assert drift.orphans(KEEP, KEEP, cluster="default", namespaces=()) == []


@pytest.mark.parametrize(
    ("sid", "namespaces", "expected"),
    [
        pytest.param("default.team-a.x", (), True, id="cluster-wide"),
        pytest.param("default.team-a.x", ("team-a",), True, id="watched namespace"),
        pytest.param("default.team-b.x", ("team-a",), False, id="unwatched namespace"),
        pytest.param("prod.team-a.x", (), False, id="other cluster name"),
        pytest.param("default.team-a", (), False, id="not one of our ids"),
    ],
)
def test_watches(sid: str, namespaces: tuple[str, ...], expected: bool) -> None:
    assert drift.watches(sid, cluster="default", namespaces=namespaces) is expected


# -- the loop's health ------------------------------------------------------------------------

PERIOD = 300.0


@pytest.mark.parametrize(
    ("error", "failures", "draw", "expected"),
    [
        pytest.param(
            QStashRejectedError("bad", status=400), 1, 0.0, 2.0, id="rejected list: from 2 s"
        ),
        pytest.param(
            ApiRejectedError("bad", detail="x"), 3, 0.0, 8.0, id="any error doubles: third is 8 s"
        ),
        pytest.param(RuntimeError("bug"), 20, 0.0, 128.0, id="a bug: doubling stops at 2 s x 2**6"),
        pytest.param(
            QStashUnavailableError("down"), 2, 0.5, 2.0 * 2 * 1.25, id="outage: grown and spread"
        ),
        pytest.param(
            QStashAuthError("token"), 1, 0.0, PERIOD, id="refused token's 300 s, capped at period"
        ),
        pytest.param(
            ConflictError("lost", retry_after=0.1), 4, 0.0, 0.1, id="conflict hint taken as is"
        ),
    ],
)
def test_failure_delay(error: BaseException, failures: int, draw: float, expected: float) -> None:
    assert drift.failure_delay(error, failures=failures, period=PERIOD, draw=draw) == pytest.approx(
        expected
    )


def test_failure_delay_needs_a_failure() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        drift.failure_delay(RuntimeError(), failures=0, period=PERIOD, draw=0.0)


@pytest.mark.parametrize(
    ("last_success", "now", "stale"),
    [
        pytest.param(None, TOP_OF_THE_HOUR, False, id="just started"),
        pytest.param(
            None, TOP_OF_THE_HOUR + timedelta(seconds=3 * PERIOD), False, id="three periods: ok"
        ),
        pytest.param(
            None,
            TOP_OF_THE_HOUR + timedelta(seconds=3 * PERIOD + 1),
            True,
            id="never succeeded in more than three periods",
        ),
        pytest.param(
            TOP_OF_THE_HOUR + timedelta(hours=1),
            TOP_OF_THE_HOUR + timedelta(hours=1, seconds=2 * PERIOD),
            False,
            id="succeeded two periods ago",
        ),
        pytest.param(
            TOP_OF_THE_HOUR + timedelta(hours=1),
            TOP_OF_THE_HOUR + timedelta(hours=1, seconds=3 * PERIOD + 1),
            True,
            id="last success more than three periods ago",
        ),
    ],
)
def test_staleness(last_success: datetime | None, now: datetime, stale: bool) -> None:
    problem = drift.staleness(
        last_success=last_success,
        since=TOP_OF_THE_HOUR,
        now=now,
        period=PERIOD,
        last_error="QStashRejectedError: nope" if stale else None,
    )
    assert (problem is not None) is stale
    if problem is not None:
        assert "3 periods of 300s" in problem
        assert "last error: QStashRejectedError: nope" in problem
