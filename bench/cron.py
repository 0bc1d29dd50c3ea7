"""Cron ``next``: the model (``domain/cron.py``, robfig's walk) vs croniter, same calls, one run.

Both walk the same expressions in the same zones from the same instant, each call starting
from the previous answer (as a scheduler does), 10,000 calls per implementation per round by
default; rounds are interleaved so drift of the machine affects both alike, and the median
round is kept. Parsing is outside the timed loops for both (each parses once, as a caller
would). The answers are not compared: around clock changes they differ by design (croniter
shifts into a gap and runs a repeated hour once; robfig, and so the model, does neither).
Needs no control plane. Goal: the model no slower than twice croniter.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from croniter import croniter

from bench import harness
from qstash_operator.domain import cron

EXPRESSIONS: Final = (
    ("*/5 * * * *", "UTC"),
    ("0 * * * *", "UTC"),
    ("30 2 * * *", "Europe/Berlin"),
    ("0 9 * * 1-5", "America/New_York"),
    ("*/15 9-17 * * 1-5", "Europe/London"),
    ("0 0 1 * *", "UTC"),
    ("15 3 1,15 */2 *", "Asia/Kolkata"),
    ("0 0 * * 0", "Australia/Lord_Howe"),
    ("45 23 * * 6", "America/Santiago"),
    ("0 12 13 * 5", "Pacific/Chatham"),
)
"""Every-minute to monthly, restricted days, both day rules, zones with odd transitions."""
START: Final = datetime(2026, 3, 1, 7, 3, 11, tzinfo=UTC)  # walks through March's changes


def _time_ours(schedules: list[cron.Schedule], calls_each: int) -> float:
    began = time.perf_counter()
    for schedule in schedules:
        moment = START
        for _ in range(calls_each):
            moment = cron.next_tick(schedule, moment)
    return time.perf_counter() - began


def _time_croniter(iterators: list[croniter], calls_each: int) -> float:
    began = time.perf_counter()
    for iterator in iterators:
        for _ in range(calls_each):
            iterator.get_next(datetime)
    return time.perf_counter() - began


def _croniters() -> list[croniter]:
    return [croniter(text, START.astimezone(ZoneInfo(zone))) for text, zone in EXPRESSIONS]


def run(args: argparse.Namespace) -> dict[str, Any]:
    calls_each = max(args.calls // len(EXPRESSIONS), 1)
    calls = calls_each * len(EXPRESSIONS)
    schedules = [cron.parse(text, zone) for text, zone in EXPRESSIONS]
    _time_ours(schedules, 20)  # warm both paths (zone caches, imports) before measuring
    _time_croniter(_croniters(), 20)
    ours_seconds, croniter_seconds = [], []
    load_before = harness.load_average()
    for _ in range(args.rounds):
        ours_seconds.append(_time_ours(schedules, calls_each))
        croniter_seconds.append(_time_croniter(_croniters(), calls_each))
    ours, theirs = statistics.median(ours_seconds), statistics.median(croniter_seconds)
    return {
        "benchmark": "cron-next",
        "expressions": [f"{text} ({zone})" for text, zone in EXPRESSIONS],
        "calls_per_round": calls,
        "rounds": args.rounds,
        "ours_microseconds_per_call": round(1e6 * ours / calls, 2),
        "croniter_microseconds_per_call": round(1e6 * theirs / calls, 2),
        "ours_calls_per_second": round(calls / ours),
        "croniter_calls_per_second": round(calls / theirs),
        "ratio": round(ours / theirs, 2),  # time, ours over croniter's: the goal is <= 2
        "load_average_before": load_before,
        "load_average_after": harness.load_average(),
    }


def rows(result: dict[str, Any]) -> list[harness.Row]:
    return [
        harness.Row(
            "cron",
            f"µs per next() ({result['calls_per_round']:,} calls, 1 core)",
            f"{result['ours_microseconds_per_call']:.1f}",
            f"{result['croniter_microseconds_per_call']:.1f}",
            f"{result['ratio']:.2f}",
            "baseline: croniter get_next, same expressions and start; goal <= 2.00",
        )
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calls", type=int, default=10_000, help="next() calls per round")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median kept)")
