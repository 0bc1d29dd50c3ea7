"""Fixtures for end-to-end tests: a QStash-compatible server and our processes per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.stack import Stack, running_stack
from qstash_server.testing import ThreadedServer


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
    with running_stack(control_plane, qstash, tmp_path, namespace, request) as running:
        yield running
