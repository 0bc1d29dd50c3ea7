"""The tick-to-Job table's rows against the floors (``bench.tick_to_job.rows_of_one``): ours over
the floor made of our Jobs at each percentile, and the p99 over the bare floor when the run
measured one (runs before 2026-12-07 did not, and their JSON still prints)."""

from __future__ import annotations

from typing import Any

import pytest
from bench import harness, tick_to_job


def percentiles(p50: float, p95: float, p99: float) -> dict[str, float]:
    return {"p50": p50, "p95": p95, "p99": p99}


def result(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "count": 500,
        "ours_received_seconds": percentiles(0.40, 0.80, 0.90),
        "native_received_seconds": percentiles(20.0, 50.0, 57.0),
        "ours_created_seconds": percentiles(0.0, 1.0, 1.0),
        "native_created_seconds": percentiles(20.0, 50.0, 57.0),
        "floor": {"received_seconds": percentiles(0.20, 0.40, 0.50)},
        "api_calls_per_delivery": 3.06,
        "api_writes_per_delivery": 3.06,
        "status_recorded": 500,
        "ratio_p99_created": 0.02,
        "ours_jobs": 500,
        "native_jobs": 500,
        "qstash_failed_attempts": 0,
    }
    base.update(extra)
    return base


def by_metric(rows: list[harness.Row]) -> dict[str, harness.Row]:
    return {row.metric: row for row in rows}


@pytest.mark.parametrize(
    ("metric", "ours", "floor", "ratio"),
    [
        ("p50 watch-received vs floor, s", "0.40", "0.20", "2.00"),
        ("p95 watch-received vs floor, s", "0.80", "0.40", "2.00"),
        ("p99 watch-received vs floor, s", "0.90", "0.50", "1.80"),
    ],
)
def test_each_percentile_over_the_floor_of_our_jobs(
    metric: str, ours: str, floor: str, ratio: str
) -> None:
    row = by_metric(tick_to_job.rows_of_one(result()))[metric]
    assert (row.benchmark, row.ours, row.baseline, row.ratio) == (
        "tick-to-job (N=500)",
        ours,
        floor,
        ratio,
    )


def test_the_p99_over_the_bare_floor_when_the_run_measured_it() -> None:
    rows = by_metric(
        tick_to_job.rows_of_one(
            result(floor_bare={"received_seconds": percentiles(0.15, 0.30, 0.45)})
        )
    )
    row = rows["p99 watch-received vs bare floor, s"]
    assert (row.ours, row.baseline, row.ratio) == ("0.90", "0.45", "2.00")
    assert "bare floor" in row.note


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({}, id="runs before 2026-12-07: no bare floor in the JSON"),
        pytest.param({"floor_bare": None}, id="bare floor recorded as absent"),
    ],
)
def test_no_bare_floor_row_without_a_bare_floor(extra: dict[str, Any]) -> None:
    metrics = by_metric(tick_to_job.rows_of_one(result(**extra)))
    assert "p99 watch-received vs bare floor, s" not in metrics
    assert "p99 watch-received vs floor, s" in metrics
