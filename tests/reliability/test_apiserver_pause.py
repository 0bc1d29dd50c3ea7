"""A frozen API server: the leader stops acting before a standby may lead.

Two operator replicas with leader election run as children. The test control plane's
kube-apiserver is frozen with SIGSTOP: it still accepts connections and never answers, as a stuck
or partitioned API server does (a stopped one refuses connections, which fails fast and proves
less). The leader's renewal attempts must give up at its renew deadline, its kopf handlers and
drift loop stop (its ``qstash_operator_leader`` gauge drops once they have), and it exits with
code 3. The API server stays frozen for longer than the lease, so when it thaws the standby may
take over at once; by then the old leader must have stopped. The figures are printed.
"""

from __future__ import annotations

import re
import time

import pytest

from qstash_devstack.stack import Stack, cronworkflow, http_get, wait
from qstash_operator.adapters.leader import LEASE_SECONDS, RENEW_DEADLINE_SECONDS, Timing
from qstash_operator.entrypoints.operator_main import LOST_LEADERSHIP_EXIT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

FROZEN_SECONDS = LEASE_SECONDS + 5
"""Longer than the lease: at the thaw, the standby's view of the lease is stale and it may lead."""
POLL_SECONDS = 0.1


def leader_gauge(port: int) -> float | None:
    """The replica's ``qstash_operator_leader`` (None when it does not answer: exited)."""
    status, text = http_get(f"http://127.0.0.1:{port}/metrics", timeout=1.0)
    found = re.search(r"^qstash_operator_leader (\S+)$", text, re.M) if status == 200 else None
    return float(found[1]) if found else None


def test_a_leader_cut_off_by_a_frozen_api_server_stops_before_a_standby_leads(
    stack: Stack,
) -> None:
    first, first_port = stack.operator(leader_election=True, name="replica-a")
    wait(lambda: leader_gauge(first_port) == 1.0, timeout=45, what="replica-a to lead")
    second, second_port = stack.operator(leader_election=True, name="replica-b")
    wait(lambda: "waiting for leader lease" in second.output(), what="replica-b to stand by")
    stack.apply(cronworkflow("led"))
    stack.wait_condition("led", "Ready", "True")  # the leader is acting

    leader_stopped: float | None = None
    standby_led_while_frozen = False
    frozen_at = time.monotonic()
    with stack.plane.apiserver_paused():
        while (now := time.monotonic()) - frozen_at < FROZEN_SECONDS:
            if leader_stopped is None and leader_gauge(first_port) != 1.0:
                leader_stopped = now - frozen_at
            standby_led_while_frozen |= leader_gauge(second_port) == 1.0
            time.sleep(POLL_SECONDS)
    thawed = time.monotonic() - frozen_at
    wait(lambda: leader_gauge(second_port) == 1.0, timeout=45, what="replica-b to lead")
    standby_led = time.monotonic() - frozen_at
    code = first.process.wait(30) if first.process is not None else None

    timing = Timing()
    print(
        f"\nAPI server frozen for {thawed:.1f} s: the leader stopped "
        f"{'never' if leader_stopped is None else f'{leader_stopped:.1f} s'} after the freeze "
        f"(renew deadline {timing.renew_deadline:.0f} s + stop grace {timing.stop_grace:.0f} s "
        f"after its last renewal, which was at most {timing.retry:.0f} s before); the standby "
        f"led {standby_led:.1f} s after it (the lease is {timing.lease} s); leader exit code "
        f"{code}"
    )
    assert leader_stopped is not None, "the leader kept its work running while cut off"
    assert leader_stopped <= timing.renew_deadline + timing.stop_grace + POLL_SECONDS * 5
    assert leader_stopped < LEASE_SECONDS - timing.retry  # before any standby may lead
    assert not standby_led_while_frozen
    assert standby_led > leader_stopped
    assert code == LOST_LEADERSHIP_EXIT
    assert "could not renew leader lease" in first.output()
    assert f"for {RENEW_DEADLINE_SECONDS:.0f} s" in first.output()
    # And the new leader acts: a CronWorkflow applied now becomes Ready.
    stack.apply(cronworkflow("after-the-thaw"))
    stack.wait_condition("after-the-thaw", "Ready", "True", timeout=45)
