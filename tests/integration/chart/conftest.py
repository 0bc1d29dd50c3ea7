"""The helm binary for chart tests: built with the control plane (a no-op when cached)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qstash_devstack.controlplane import build_binaries


@pytest.fixture(scope="session")
def bin_dir(request: pytest.FixtureRequest) -> Path:
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            return build_binaries()
    return build_binaries()  # pragma: no cover - capture disabled
