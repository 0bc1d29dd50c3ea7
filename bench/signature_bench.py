"""Signature verification throughput: ours (``domain.signature.verify``) vs the SDK ``Receiver``.

Run: ``.venv/bin/python bench/signature_bench.py [--tokens N] [--rounds R]``

Both verify the same genuine tokens (half signed with the current key, half with the next key, so
the key fallback is exercised as in a rotation) for the same body and URL, interleaved in rounds
so drift of the machine affects both alike. Prints tokens/s for each, the ratio (goal >= 1.0) and
writes the figures to ``bench/results/signature-<UTC time>.json``.

Each implementation gets what it needs for correctness: ours the raw bytes, the SDK the decoded
text (it cannot take bytes), decoded once outside the timed loop.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import qstash
from qstash import Receiver

from qstash_operator.domain import signature

CURRENT_KEY = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"  # the dev server's public development keys
NEXT_KEY = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"
URL = "https://cron.example.com/api/qstash/webhook"
BODY = b'{"name":"backup","namespace":"default","uid":"5f0c7c1e-0c1a-4b3e-9d7a-2a1b3c4d5e6f"}'
RESULTS = Path(__file__).parent / "results"


def make_tokens(count: int, now: int) -> list[str]:
    tokens = []
    for index in range(count):
        key = CURRENT_KEY if index % 2 == 0 else NEXT_KEY
        tokens.append(signature.sign(body=BODY, url=URL, key=key, now=now, jwt_id=f"jwt_{index}"))
    return tokens


def time_ours(tokens: list[str]) -> float:
    now = time.time()
    started = time.perf_counter()
    for token in tokens:
        signature.verify(
            body=BODY,
            signature=token,
            url=URL,
            current_key=CURRENT_KEY,
            next_key=NEXT_KEY,
            now=now,
            tolerance=30,
        )
    return time.perf_counter() - started


def time_sdk(tokens: list[str]) -> float:
    receiver = Receiver(current_signing_key=CURRENT_KEY, next_signing_key=NEXT_KEY)
    text = BODY.decode()
    started = time.perf_counter()
    for token in tokens:
        receiver.verify(signature=token, body=text, url=URL)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000, help="tokens per round")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median kept)")
    args = parser.parse_args(argv)

    tokens = make_tokens(args.tokens, int(time.time()))
    time_ours(tokens[:50])  # warm both paths (imports, caches) before measuring
    time_sdk(tokens[:50])
    ours_rates, sdk_rates = [], []
    for _ in range(args.rounds):
        ours_rates.append(len(tokens) / time_ours(tokens))
        sdk_rates.append(len(tokens) / time_sdk(tokens))
    ours, sdk = statistics.median(ours_rates), statistics.median(sdk_rates)
    ratio = ours / sdk
    result: dict[str, Any] = {
        "benchmark": "signature-verification",
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "tokens_per_round": len(tokens),
        "rounds": args.rounds,
        "ours_tokens_per_second": round(ours),
        "sdk_tokens_per_second": round(sdk),
        "ratio": round(ratio, 3),
        "goal": 1.0,
        "met": ratio >= 1.0,
        "python": platform.python_version(),
        "pyjwt": jwt.__version__,
        "qstash_sdk": getattr(qstash, "__version__", "3.4.0"),
        "machine": platform.machine(),
    }
    print(f"ours : {ours:10.0f} tokens/s  (median of {args.rounds} rounds)")
    print(f"SDK  : {sdk:10.0f} tokens/s  (Receiver.verify, same tokens)")
    print(f"ratio: {ratio:.2f}x  (goal >= 1.0: {'met' if ratio >= 1.0 else 'NOT met'})")
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"signature-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {path}")
    return 0 if ratio >= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
