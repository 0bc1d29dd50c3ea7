"""QStash refusing the webhook destination is a fact about one CronWorkflow, not the process.

QStash may refuse the destination of one upsert ("invalid destination url": a public name that
resolved to a private address at that moment) and accept it later. The CronWorkflow it refused
falls back to a CronJob (``Auto``) with the refusal in its status; every other CronWorkflow still
asks QStash, and the refused one asks again at its next reconcile: a success brings it back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.stack import Stack, cronworkflow, wait
from qstash_server.testing import ThreadedServer


@pytest.fixture
def strict_stack(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[Stack]:
    """A stack whose QStash refuses loopback destinations, as production QStash does."""
    with ThreadedServer(strict_destinations=True) as strict:
        stack = Stack(control_plane, strict, tmp_path, namespace)
        try:
            yield stack
        finally:
            stack.stop()


def status(stack: Stack, name: str) -> dict[str, Any]:
    return dict((stack.get("cronworkflow", name) or {}).get("status") or {})


def test_a_refusal_moves_one_cronworkflow_and_a_later_success_moves_it_back(
    strict_stack: Stack,
) -> None:
    stack = strict_stack
    stack.operator()
    stack.apply(cronworkflow("refused"))
    stack.wait_condition("refused", "Ready", "True")
    assert status(stack, "refused")["backend"] == "CronJob"

    # The destination becomes acceptable (say the name now resolves publicly). A CronWorkflow
    # applied now goes to QStash: the first one's refusal did not switch QStash off.
    stack.qstash.set_settings(strict_destinations=False)
    stack.apply(cronworkflow("accepted"))
    stack.wait_condition("accepted", "Ready", "True")
    assert status(stack, "accepted")["backend"] == "QStash"

    # The refusal is recorded on the one CronWorkflow it concerns.
    refusal = stack.condition("refused", "DestinationAccepted")
    assert refusal is not None
    assert (refusal["status"], refusal["reason"]) == ("False", "DestinationRefused")
    assert "invalid destination url" in refusal["message"]
    assert stack.condition("accepted", "DestinationAccepted") is None

    # The refused one asks QStash again at its next reconcile (here an edit) and moves back,
    # through the usual handover.
    stack.apply(cronworkflow("refused", {"schedule": "*/10 * * * *"}))
    wait(lambda: status(stack, "refused").get("backend") == "QStash", what="the move back")
    assert status(stack, "refused")["handover"]["from"] == "CronJob"
    accepted = stack.wait_condition("refused", "DestinationAccepted", "True")
    assert accepted["reason"] == "DestinationAccepted"
    assert "BackendChanged" in {event["reason"] for event in stack.events("refused")}
