"""When the webhook's deferred status writes and events go out (``services.deferred_status.due``).

Times are monotonic seconds; ``BURST_END`` is the last record of a minute's burst. The rule: all
queued work goes once no record has come for ``DELAY``; while records keep coming, only what has
waited ``MAX_DELAY``, so a busy minute's creates keep the API server and no record waits forever.
"""

from __future__ import annotations

import pytest

from qstash_operator.services.deferred_status import Due, due

DELAY = 0.5
MAX_DELAY = 5.0
BURST_START = 100.0
BURST_END = 103.0
JUST_AFTER = BURST_END + 0.1
QUIET = BURST_END + DELAY


@pytest.mark.parametrize(
    ("queued", "now", "expected"),
    [
        pytest.param([], QUIET, Due(frozenset(), None), id="nothing queued"),
        pytest.param(
            [BURST_START, BURST_END],
            QUIET,
            Due(frozenset({0, 1}), None),
            id="the burst is over: everything goes",
        ),
        pytest.param(
            [BURST_START + 1, BURST_END],
            JUST_AFTER,
            Due(frozenset(), pytest.approx(DELAY - 0.1)),
            id="still in the burst: nothing goes, look again when it may be over",
        ),
        pytest.param(
            [BURST_END - MAX_DELAY - 1, BURST_END - 1],
            JUST_AFTER,
            Due(frozenset({0}), pytest.approx(DELAY - 0.1)),
            id="a record that waited the longest allowed goes during the burst",
        ),
        pytest.param(
            [BURST_END - MAX_DELAY + 0.2],
            JUST_AFTER,
            Due(frozenset(), pytest.approx(0.1)),
            id="its cap comes before the quiet: look again then",
        ),
    ],
)
def test_deferred_work_waits_for_the_end_of_the_burst_within_a_cap(
    queued: list[float], now: float, expected: Due
) -> None:
    verdict = due(queued, last_record=BURST_END, now=now, delay=DELAY, max_delay=MAX_DELAY)
    assert verdict.items == expected.items
    assert verdict.wake_in == expected.wake_in


def test_with_no_delay_everything_goes_at_once() -> None:
    """``drain`` (shutdown) sets both delays to zero."""
    verdict = due([BURST_END], last_record=BURST_END, now=BURST_END, delay=0.0, max_delay=0.0)
    assert verdict.items == frozenset({0})
