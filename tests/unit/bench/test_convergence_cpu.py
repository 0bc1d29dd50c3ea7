"""The convergence benchmark's CPU breakdown: what is not a named process is the rest."""

from __future__ import annotations

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
