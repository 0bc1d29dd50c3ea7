"""A flood of bad bearer tokens at the webhook's API, from a process of its own.

``python -m tests.reliability.token_flood <base url> <workers> <report.json>`` keeps ``workers``
requests in flight, each ``GET /api/cron`` with a fresh random token, until SIGTERM; then it
writes how many requests it sent, per answer status, and how long it ran. It starts writing
``<report>.started`` once the first answers are in, so a test knows the flood is on. A
process of its own, so the flood's client work does not run on the event loop that measures.
"""

from __future__ import annotations

import asyncio
import collections
import json
import secrets
import signal
import sys
import time
from pathlib import Path

import aiohttp


async def flood(base: str, workers: int, started: Path) -> dict[str, object]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    statuses: collections.Counter[int] = collections.Counter()
    began = time.monotonic()
    marked = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=workers)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:

        async def worker() -> None:
            while not stop.is_set():
                headers = {"Authorization": f"Bearer {secrets.token_urlsafe(24)}"}
                try:
                    async with session.get(f"{base}/api/cron", headers=headers) as response:
                        await response.read()
                        statuses[response.status] += 1
                except (aiohttp.ClientError, TimeoutError):
                    statuses[0] += 1
                if sum(statuses.values()) >= workers and not marked.is_set():
                    marked.set()
                    await asyncio.to_thread(started.write_text, "on\n")

        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "seconds": time.monotonic() - began,
        "requests": sum(statuses.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


if __name__ == "__main__":
    report = Path(sys.argv[3])
    counts = asyncio.run(flood(sys.argv[1], int(sys.argv[2]), report.with_suffix(".started")))
    report.write_text(json.dumps(counts))
