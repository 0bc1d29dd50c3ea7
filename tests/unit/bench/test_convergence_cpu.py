"""The convergence benchmark's CPU breakdown: what is not a named process is the rest."""

from __future__ import annotations

import pytest
from bench import convergence


def test_cpu_delta_names_the_rest_of_the_machine() -> None:
    before = {"operator": 10.0, "kube-apiserver": 20.0, "etcd": 5.0, "machine": 100.0}
    after = {"operator": 40.0, "kube-apiserver": 80.0, "etcd": 15.0, "machine": 230.0}
    assert convergence.cpu_delta(before, after) == {
        "operator": 30.0,
        "kube-apiserver": 60.0,
        "etcd": 10.0,
        "machine": 130.0,
        "rest (kubectl, bench, QStash server)": 30.0,
    }


def test_cpu_delta_leaves_out_a_process_that_started_in_between() -> None:
    before = {"operator": 1.0, "machine": 10.0}
    after = {"operator": 2.0, "etcd": 3.0, "machine": 20.0}
    assert convergence.cpu_delta(before, after) == {
        "operator": 1.0,
        "machine": 10.0,
        "rest (kubectl, bench, QStash server)": 9.0,
    }


APPLY_ENDED = 500.0


@pytest.mark.parametrize(
    ("reconciled", "listed_at", "now", "lists"),
    [
        pytest.param(8000, None, APPLY_ENDED, True, id="the apply just ended: list"),
        pytest.param(8000, APPLY_ENDED, APPLY_ENDED + 1, False, id="short of all: wait"),
        pytest.param(8000, APPLY_ENDED, APPLY_ENDED + 9.9, False, id="still within 10 s"),
        pytest.param(8000, APPLY_ENDED, APPLY_ENDED + 10, True, id="10 s on: list for the curve"),
        pytest.param(10000, APPLY_ENDED, APPLY_ENDED + 1, True, id="all reconciled: each second"),
        pytest.param(10003, APPLY_ENDED, APPLY_ENDED + 1, True, id="retries counted too"),
    ],
)
def test_the_wait_lists_the_objects_once_the_operator_says_it_is_done(
    reconciled: float, listed_at: float | None, now: float, lists: bool
) -> None:
    assert convergence.should_list(reconciled, 10000, listed_at, now) is lists
