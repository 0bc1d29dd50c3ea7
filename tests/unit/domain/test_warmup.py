"""How many API connections the webhook opens before a minute's burst (``domain.warmup``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from qstash_operator.domain import warmup

BOUNDARY = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
DUE = "2026-12-03T09:00:00Z"
LATER = "2026-12-03T09:01:00Z"
POOL = 64


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        pytest.param([], 0, id="no CronWorkflows: nothing opened"),
        pytest.param([LATER, None, "garbage"], 0, id="none due at this boundary"),
        pytest.param([DUE, LATER, DUE, None], 2, id="one connection per CronWorkflow due"),
        pytest.param([DUE] * 500, POOL, id="a big burst: the whole pool, no more"),
    ],
)
def test_connections_follow_the_cronworkflows_due(times: list[object], expected: int) -> None:
    assert warmup.connections_to_open(times, boundary=BOUNDARY, pool=POOL) == expected


@pytest.mark.parametrize(
    ("now", "boundary"),
    [
        pytest.param(BOUNDARY - timedelta(seconds=30), BOUNDARY, id="mid-minute"),
        pytest.param(BOUNDARY, BOUNDARY + timedelta(minutes=1), id="on a boundary: the next"),
        pytest.param(BOUNDARY - timedelta(microseconds=1), BOUNDARY, id="a microsecond before"),
    ],
)
def test_the_next_boundary(now: datetime, boundary: datetime) -> None:
    assert warmup.next_boundary(now) == boundary
