"""QStash-server deliveries at one minute boundary (``bench/qstash_server_delivery.py``).

Runs that script's measurement (N ``* * * * *`` schedules fired by the driven clock, timed at a
receiver, against plain unsigned POSTs from a child process) and reports its medians here.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bench import harness, qstash_server_delivery


def run(args: argparse.Namespace) -> dict[str, Any]:
    options = argparse.Namespace(
        schedules=args.schedules, rounds=args.rounds, in_process=False, real_clock=False
    )
    load_before = harness.load_average()
    result: dict[str, Any] = asyncio.run(qstash_server_delivery.run(options))
    result["load_average_before"] = load_before
    result["load_average_after"] = harness.load_average()
    return result


def rows(result: dict[str, Any]) -> list[harness.Row]:
    return [
        harness.Row(
            f"delivery (N={result['schedules']})",
            "deliveries / s at one tick",
            f"{result['server_deliveries_per_second_median']:,.0f}",
            f"{result['baseline_deliveries_per_second_median']:,.0f}",
            f"{result['ratio_to_baseline']:.2f}",
            "baseline: unsigned aiohttp POSTs; signed + verified sample",
        )
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--schedules", type=int, default=1000, help="schedules due at the tick")
    parser.add_argument("--rounds", type=int, default=5, help="minute boundaries to measure")
