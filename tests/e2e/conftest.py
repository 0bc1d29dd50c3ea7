"""Fixtures for end-to-end tests: a QStash-compatible server and our processes per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qstash_operator.qstash_server.testing import ThreadedServer
from tests.cluster.controlplane import ControlPlane
from tests.e2e.stack import Stack


@pytest.fixture
def qstash() -> Iterator[ThreadedServer]:
    """The QStash-compatible server with random credentials and a driven clock (nothing fires
    unless the test fires it or advances time)."""
    with ThreadedServer() as server:
        yield server


@pytest.fixture
def stack(
    control_plane: ControlPlane,
    qstash: ThreadedServer,
    namespace: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Stack]:
    running = Stack(control_plane, qstash, tmp_path, namespace)
    try:
        yield running
    finally:
        running.stop()
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            for child in running.children:
                print(f"----- {child.log.name} -----\n{child.output()[-6000:]}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
