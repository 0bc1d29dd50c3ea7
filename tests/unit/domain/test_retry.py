"""Retry delays: the error's hint, doubled for outages and rate limits, spread upward only."""

from __future__ import annotations

import pytest

from qstash_operator.domain.errors import (
    ConflictError,
    KubernetesUnavailableError,
    QStashAuthError,
    QStashRateLimitedError,
    QStashUnavailableError,
    TransientError,
)
from qstash_operator.domain.retry import retry_delay

OUTAGE = QStashUnavailableError("QStash answered 503")  # hint: 2 s
API_DOWN = KubernetesUnavailableError("connection refused", retry_after=2.0)
RATE_LIMITED = QStashRateLimitedError("429", retry_after=1.0)  # the window resets in 1 s
CONFLICT = ConflictError("409", retry_after=1.0)
REFUSED_TOKEN = QStashAuthError("401")  # hint: 300 s

NO_SPREAD = 0.0
MID_SPREAD = 0.5
MOST_SPREAD = 0.999


@pytest.mark.parametrize(
    ("error", "attempt", "draw", "seconds"),
    [
        pytest.param(OUTAGE, 0, NO_SPREAD, 2.0, id="first retry after an outage: its hint"),
        pytest.param(OUTAGE, 1, NO_SPREAD, 4.0, id="second: doubled"),
        pytest.param(OUTAGE, 4, NO_SPREAD, 32.0, id="fifth: 2 s * 2**4"),
        pytest.param(OUTAGE, 6, NO_SPREAD, 128.0, id="seventh: the last doubling"),
        pytest.param(OUTAGE, 40, NO_SPREAD, 128.0, id="later attempts stop doubling"),
        pytest.param(API_DOWN, 2, NO_SPREAD, 8.0, id="the API server down grows the same way"),
        pytest.param(RATE_LIMITED, 0, NO_SPREAD, 1.0, id="429: the window's reset first"),
        pytest.param(RATE_LIMITED, 3, NO_SPREAD, 8.0, id="429: then doubling from it"),
        pytest.param(CONFLICT, 5, NO_SPREAD, 1.0, id="a conflict does not grow"),
        pytest.param(REFUSED_TOKEN, 9, NO_SPREAD, 300.0, id="a refused token waits as told"),
        pytest.param(OUTAGE, 0, MID_SPREAD, 2.5, id="a middle draw adds a quarter"),
        pytest.param(RATE_LIMITED, 3, MID_SPREAD, 10.0, id="spread applies after growth"),
        pytest.param(REFUSED_TOKEN, 0, MID_SPREAD, 375.0, id="slow retries are spread too"),
    ],
)
def test_retry_delay(error: TransientError, attempt: int, draw: float, seconds: float) -> None:
    assert retry_delay(error, attempt, draw) == pytest.approx(seconds)


def test_growth_is_capped_at_five_minutes_before_the_spread() -> None:
    slow_outage = QStashUnavailableError("503", retry_after=30.0)
    assert retry_delay(slow_outage, 6, NO_SPREAD) == 300.0  # 30 * 64 would be 1,920
    assert retry_delay(slow_outage, 6, MOST_SPREAD) == pytest.approx(449.85)


@pytest.mark.parametrize("error", [OUTAGE, RATE_LIMITED, CONFLICT, REFUSED_TOKEN])
@pytest.mark.parametrize("attempt", [0, 1, 5, 12])
def test_never_earlier_than_the_hint_nor_beyond_half_again(
    error: TransientError, attempt: int
) -> None:
    bare = retry_delay(error, attempt, NO_SPREAD)
    assert bare >= error.retry_after
    for draw in (0.1, 0.5, MOST_SPREAD):
        assert bare < retry_delay(error, attempt, draw) < bare * 1.5


def test_objects_that_failed_together_retry_apart() -> None:
    # Forty draws as random.random() would give them: the delays cover the spread, not one second.
    delays = {round(retry_delay(OUTAGE, 3, index / 40), 3) for index in range(40)}
    assert len(delays) == 40
    assert min(delays) == 16.0
    assert max(delays) == pytest.approx(16.0 * (1 + 0.5 * 39 / 40), abs=1e-3)


@pytest.mark.parametrize(
    ("attempt", "draw", "message"),
    [
        pytest.param(0, 1.0, "draw must be in [0, 1)", id="a draw of 1"),
        pytest.param(0, -0.1, "draw must be in [0, 1)", id="a negative draw"),
        pytest.param(-1, 0.0, "attempt must not be negative", id="a negative attempt"),
    ],
)
def test_nonsense_arguments_are_refused(attempt: int, draw: float, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)")):
        retry_delay(OUTAGE, attempt, draw)
