"""Headless Chromium for the console's browser tests and benchmark: Debian's ``chromium`` package,
driven by Playwright for Python, never a browser Playwright downloads.

Why these flags: the machine's network is closed, and Chromium's background services (component
updates, sync, safe-browsing lists, QUIC probes) would each try to connect out and wait; every one
that can be turned off is. Each session gets a fresh ``--user-data-dir`` (a temporary folder), so
no profile, cookie or storage leaks from one test into the next.

``make test`` and ``.ci/run`` install the package (``devstack/install-chromium.sh``; skipped when
present); :func:`chromium_path` says what to do when it is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # Playwright is a test dependency; importing this module must not need it
    from playwright.sync_api import BrowserContext

CHROMIUM: Final = Path(os.environ.get("QSTASH_CHROMIUM", "/usr/bin/chromium"))
FLAGS: Final = (
    "--headless",
    "--no-sandbox",  # root in CI and in containers; the pages are our own
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
VIEWPORT: Final = {"width": 1360, "height": 900}


class BrowserMissingError(RuntimeError):
    pass


def chromium_path() -> Path:
    if not CHROMIUM.exists() and shutil.which(str(CHROMIUM)) is None:
        raise BrowserMissingError(
            f"{CHROMIUM} not found: install Debian's chromium package "
            "(`sudo devstack/install-chromium.sh`, which `make test` runs), or point "
            "QSTASH_CHROMIUM at a Chromium binary"
        )
    return CHROMIUM


@contextlib.contextmanager
def chromium(*, viewport: dict[str, int] | None = None) -> Iterator[BrowserContext]:
    """A fresh headless Chromium profile, closed (and its folder deleted) afterwards."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with (
        tempfile.TemporaryDirectory(prefix="qso-chromium-") as profile,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(executable),
            headless=True,
            args=list(FLAGS),
            viewport=viewport or VIEWPORT,
            locale="en-GB",
            timezone_id="UTC",
        )
        try:
            yield context
        finally:
            context.close()
