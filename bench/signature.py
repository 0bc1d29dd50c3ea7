"""Signature verification: ours vs the SDK ``Receiver``, same tokens (``bench/signature_bench.py``).

This runner reuses that script's token maker and timed loops and keeps its method: half the
tokens signed with the next key (the rotation path), interleaved rounds, the median kept.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from bench import harness, signature_bench


def run(args: argparse.Namespace) -> dict[str, Any]:
    tokens = signature_bench.make_tokens(args.tokens, int(time.time()))
    signature_bench.time_ours(tokens[:50])  # warm both paths before measuring
    signature_bench.time_sdk(tokens[:50])
    ours_rates, sdk_rates = [], []
    load_before = harness.load_average()
    for _ in range(args.rounds):
        ours_rates.append(len(tokens) / signature_bench.time_ours(tokens))
        sdk_rates.append(len(tokens) / signature_bench.time_sdk(tokens))
    ours, sdk = statistics.median(ours_rates), statistics.median(sdk_rates)
    return {
        "benchmark": "signature-verification",
        "tokens_per_round": len(tokens),
        "rounds": args.rounds,
        "ours_tokens_per_second": round(ours),
        "sdk_tokens_per_second": round(sdk),
        "ours_microseconds_per_token": round(1e6 / ours, 1),
        "sdk_microseconds_per_token": round(1e6 / sdk, 1),
        "ratio": round(ours / sdk, 2),
        "load_average_before": load_before,
        "load_average_after": harness.load_average(),
    }


def rows(result: dict[str, Any]) -> list[harness.Row]:
    return [
        harness.Row(
            "signature",
            "verifications / s (1 core)",
            f"{result['ours_tokens_per_second']:,}",
            f"{result['sdk_tokens_per_second']:,}",
            f"{result['ratio']:.2f}",
            "baseline: qstash SDK Receiver.verify, same tokens",
        )
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tokens", type=int, default=2000, help="tokens per round")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median kept)")
