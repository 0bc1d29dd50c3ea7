"""How many signed deliveries the QStash-compatible server makes inside one minute boundary.

Run: ``.venv/bin/python bench/qstash_server_delivery.py [--schedules N] [--rounds R]
[--in-process] [--real-clock]``

N schedules, all ``* * * * *``, point at a tiny aiohttp receiver in this process. The server runs
as a child process through the CLI (``qstash-operator qstash-server --driven-clock ...``), as the
local stack runs it, so it does not share a CPU core with the receiver; ``--in-process`` runs it
on this event loop instead. Each round moves the driven clock over one minute boundary (all N
schedules fire at that tick) and measures, on the wall clock, the time from that request to the
N-th delivery reaching the receiver. ``--real-clock`` instead waits for the real minute once
(up to 60 s), to show the real-clock loop does the same.

The baseline, measured in the same run against the same receiver: N plain, unsigned aiohttp POSTs
from a child process (so it too has its own core, like the server), all started at once, with the
same concurrency limit as the server's sender (256 connections). It is the floor: what this
machine's Python and aiohttp do without cron, signing, logging or bookkeeping.
A sample of deliveries is verified with the project's verifier, so the figure is for genuine,
verifiable QStash-style requests.

Prints deliveries/s and seconds-to-deliver-all for both, and writes them to
``bench/results/qstash_server_delivery-<UTC time>.json``. The webhook benchmarks need at least 500
deliveries inside one minute boundary; the run says whether this machine meets that.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from qstash import AsyncQStash

from qstash_operator.domain import signature
from qstash_server import config
from qstash_server.testing import Controls, RunningServer, ServerProcess

RESULTS = Path(__file__).parent / "results"
START = datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC)  # 30 s before a minute boundary
REQUIRED = 500  # deliveries the webhook benchmarks need inside one minute boundary
CREATE_CONCURRENCY = 32  # parallel schedule creates while setting up (setup is not measured)
SAMPLE_VERIFY = 20  # deliveries per round checked with the project's verifier
ROUND_TIMEOUT = 60.0  # seconds: one minute boundary is the budget being measured


class Receiver:
    """Answers 200 at once and notes the wall time of each request; verifies a sample."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.samples: list[tuple[bytes, str, str]] = []
        self.expected = 0
        self.done = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    def expect(self, count: int) -> None:
        self.arrivals = []
        self.samples = []
        self.expected = count
        self.done = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.arrivals.append(time.time())
        if len(self.samples) < SAMPLE_VERIFY:
            token = request.headers.get("Upstash-Signature", "")
            self.samples.append((body, token, self.url))
        if len(self.arrivals) >= self.expected:
            self.done.set()
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def verify_samples(receiver: Receiver, current: str, upcoming: str) -> int:
    for body, token, url in receiver.samples:
        signature.verify(
            body=body,
            signature=token,
            url=url,
            current_key=current,
            next_key=upcoming,
            now=time.time(),
            tolerance=5,
        )
    return len(receiver.samples)


async def create_schedules(server: Controls, token: str, destination: str, count: int) -> None:
    client = AsyncQStash(token, base_url=server.url, retry=False)
    limit = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def one(index: int) -> None:
        async with limit:
            await client.schedule.create(
                destination=destination,
                cron="* * * * *",
                body=f'{{"namespace":"bench","name":"cw-{index}"}}',
                content_type="application/json",
                schedule_id=f"bench.ns.cw-{index}",
            )

    try:
        await asyncio.gather(*(one(index) for index in range(count)))
    finally:
        await client.http._client.aclose()


async def server_round(
    server: Controls, receiver: Receiver, count: int, real_clock: bool
) -> dict[str, float]:
    receiver.expect(count)
    await server.clear_deliveries()
    if real_clock:
        wall = datetime.now(UTC)
        boundary = wall.replace(second=0, microsecond=0) + timedelta(minutes=1)
        started = boundary.timestamp()
    else:
        started = time.time()
        fired = await server.advance(60)
        if len(fired) != count:
            raise RuntimeError(f"{len(fired)} ticks fired, expected {count}")
    await asyncio.wait_for(receiver.done.wait(), ROUND_TIMEOUT + (60 if real_clock else 0))
    last = max(receiver.arrivals)
    first = min(receiver.arrivals)
    total = last - started
    return {
        "seconds_to_all": round(total, 4),
        "seconds_to_first": round(first - started, 4),
        "deliveries_per_second": round(count / total, 1),
    }


async def baseline_client(url: str, count: int) -> None:
    """Child-process mode: wait for "go" on stdin, then POST ``count`` times, all at once."""
    body = b'{"namespace":"bench","name":"baseline"}'
    connector = aiohttp.TCPConnector(limit=config.MAX_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)

        async def one() -> None:
            headers = {"Content-Type": "application/json"}
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()

        await asyncio.gather(*(one() for _ in range(count)))


async def baseline_round(receiver: Receiver, count: int) -> dict[str, float]:
    """The same number of unsigned POSTs from a child process, timed at the receiver."""
    receiver.expect(count)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--baseline-client",
        receiver.url,
        "--schedules",
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    await child.stdout.readline()  # "ready": interpreter started, session open
    started = time.time()
    child.stdin.write(b"go\n")
    await child.stdin.drain()
    await asyncio.wait_for(receiver.done.wait(), ROUND_TIMEOUT)
    total = max(receiver.arrivals) - started
    await child.wait()
    return {"seconds_to_all": round(total, 4), "deliveries_per_second": round(count / total, 1)}


def summary(rounds: list[dict[str, float]], key: str) -> float:
    return round(statistics.median(r[key] for r in rounds), 4)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    receiver = Receiver()
    await receiver.start()
    server: RunningServer | ServerProcess
    clock_args = [] if args.real_clock else ["--driven-clock", "--start-time", START.isoformat()]
    if args.in_process:
        server = RunningServer(driven_clock=not args.real_clock, start_time=START)
    else:
        server = ServerProcess(*clock_args)
    await server.start()
    try:
        token = server.token
        began = time.perf_counter()
        await create_schedules(server, token, receiver.url, args.schedules)
        setup_seconds = time.perf_counter() - began
        server_rounds: list[dict[str, float]] = []
        baseline_rounds: list[dict[str, float]] = []
        verified = 0
        rounds = 1 if args.real_clock else args.rounds
        for index in range(rounds):
            result = await server_round(server, receiver, args.schedules, args.real_clock)
            assert await server.settle(30.0), "deliveries still in flight after the round"
            verified += verify_samples(receiver, server.current_key, server.next_key)
            server_rounds.append(result)
            baseline_rounds.append(await baseline_round(receiver, args.schedules))
            print(
                f"round {index + 1}: server {result['seconds_to_all']:.3f} s for {args.schedules} "
                f"({result['deliveries_per_second']:.0f}/s), "
                f"first after {result['seconds_to_first']:.3f} s; "
                f"baseline {baseline_rounds[-1]['seconds_to_all']:.3f} s "
                f"({baseline_rounds[-1]['deliveries_per_second']:.0f}/s)"
            )
        failed = [d for d in await server.deliveries() if d["outcome"] != "success"]
    finally:
        await server.stop()
        await receiver.stop()
    seconds_to_all = summary(server_rounds, "seconds_to_all")
    per_second = summary(server_rounds, "deliveries_per_second")
    within_minute = int(per_second * 60) if seconds_to_all > 60 else args.schedules
    return {
        "benchmark": "qstash-server-delivery",
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "schedules": args.schedules,
        "rounds": len(server_rounds),
        "server": "in-process" if args.in_process else "subprocess (CLI)",
        "clock": "real" if args.real_clock else "driven",
        "setup_seconds": round(setup_seconds, 2),
        "server_seconds_to_all_median": seconds_to_all,
        "server_seconds_to_first_median": summary(server_rounds, "seconds_to_first"),
        "server_deliveries_per_second_median": per_second,
        "baseline_seconds_to_all_median": summary(baseline_rounds, "seconds_to_all"),
        "baseline_deliveries_per_second_median": summary(baseline_rounds, "deliveries_per_second"),
        "ratio_to_baseline": round(
            per_second / summary(baseline_rounds, "deliveries_per_second"), 3
        ),
        "signed_deliveries_verified": verified,
        "failed_deliveries": len(failed),
        "required_within_one_minute": REQUIRED,
        "met": seconds_to_all < 60 and args.schedules >= REQUIRED and not failed,
        "server_rounds": server_rounds,
        "baseline_rounds": baseline_rounds,
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "deliveries_within_one_minute_estimate": within_minute,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--schedules", type=int, default=1000, help="schedules due at the tick")
    parser.add_argument("--rounds", type=int, default=5, help="minute boundaries to measure")
    parser.add_argument("--in-process", action="store_true", help="server on this event loop")
    parser.add_argument("--real-clock", action="store_true", help="wait for the real minute once")
    parser.add_argument("--baseline-client", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_client:
        asyncio.run(baseline_client(args.baseline_client, args.schedules))
        return 0
    result = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"qstash_server_delivery-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\n{result['schedules']} signed deliveries at one tick: "
        f"{result['server_seconds_to_all_median']:.3f} s to deliver all "
        f"({result['server_deliveries_per_second_median']:.0f}/s, median of {result['rounds']}); "
        f"baseline unsigned POST loop {result['baseline_seconds_to_all_median']:.3f} s "
        f"({result['baseline_deliveries_per_second_median']:.0f}/s); "
        f"ratio {result['ratio_to_baseline']}"
    )
    print(f"need >= {REQUIRED} inside one minute boundary: {'met' if result['met'] else 'NOT met'}")
    print(f"results: {path}")
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
