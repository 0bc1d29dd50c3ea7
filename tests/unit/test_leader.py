"""Leader election: the pure step rule (client-go's), on a monotonic clock of our own."""

from __future__ import annotations

from typing import Any

import pytest

from qstash_operator.adapters.leader import LEASE_SECONDS, Observation, Step, next_step


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
