"""The QStash SDK's HTTP stack finds what it asks for on every request."""

from __future__ import annotations

import asyncio
import importlib.util


def test_httpcore_finds_sniffio_instead_of_searching_for_it_on_every_request() -> None:
    # httpcore's current_async_library() runs `import sniffio` several times per request; a
    # missing module is searched for on sys.path each time (100 us, 6 % of the operator's CPU
    # while converging 10,000 CronWorkflows). pyproject.toml depends on sniffio for this.
    assert importlib.util.find_spec("sniffio") is not None
    from httpcore._synchronization import current_async_library

    async def probe() -> str:
        return current_async_library()

    assert asyncio.run(probe()) == "asyncio"
