"""One kopf timer per CronWorkflow runs two periodic jobs (refresh, slot audit): when each is
due, from the object's memo (``handlers._due``). Instants are monotonic seconds."""

from __future__ import annotations

import types

import pytest

from qstash_operator.entrypoints.handlers import _due

SEEN = 1000.0
"""When kopf first saw the object; its timer fires ``tick`` later, then every ``tick``."""


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
