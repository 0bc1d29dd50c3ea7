"""Hash spread: peak Jobs in one minute, 1,000 CronWorkflows ``H * * * *`` vs ``0 * * * *``.

Each CronWorkflow (``bench/cw-0000`` ... in namespace ``bench``) is parsed exactly as the operator
parses it (``model.parse``, which resolves ``H`` from ``<namespace>/<name>``); its ticks over one
UTC day are walked with the cron model (``domain/cron.py``, robfig's walk, what both backends
fire by) and counted per minute. The figure is the busiest minute's count: with ``0 * * * *``
every object fires at :00, so it is the number of objects; with ``H`` the goal is at most twice an
even share, ``2 * ceil(n / 60)``. Needs no control plane.
"""

from __future__ import annotations

import argparse
import collections
import copy
import math
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from bench import harness
from qstash_operator.domain import cron, model

START: Final = datetime(2026, 6, 1, tzinfo=UTC)
WINDOW: Final = timedelta(days=1)
_TEMPLATE: Final = {
    "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox"}]}}}
}


def _body(index: int, schedule: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "bench", "name": f"cw-{index:04d}", "uid": str(index)},
        "spec": {"schedule": schedule, "jobTemplate": copy.deepcopy(_TEMPLATE)},
    }


def peak_per_minute(schedules: list[cron.Schedule]) -> tuple[int, int]:
    """The busiest minute's tick count over the window, and how many minutes have any tick."""
    per_minute: collections.Counter[datetime] = collections.Counter()
    end = START + WINDOW
    for schedule in schedules:
        for tick in cron.ticks_after(schedule, START - timedelta(seconds=1)):
            if tick >= end:
                break
            per_minute[tick] += 1
    return max(per_minute.values()), len(per_minute)


def run(args: argparse.Namespace) -> dict[str, Any]:
    count = args.cronworkflows
    spread = [model.parse(_body(i, args.spread)).spec.schedule for i in range(count)]
    fixed = [model.parse(_body(i, args.fixed)).spec.schedule for i in range(count)]
    spread_peak, spread_minutes = peak_per_minute(spread)
    fixed_peak, fixed_minutes = peak_per_minute(fixed)
    target = 2 * math.ceil(count / 60)
    return {
        "benchmark": "hash-spread",
        "cronworkflows": count,
        "spread_schedule": args.spread,
        "fixed_schedule": args.fixed,
        "window": f"{START.isoformat()} + {WINDOW}",
        "spread_peak_jobs_per_minute": spread_peak,
        "fixed_peak_jobs_per_minute": fixed_peak,
        "spread_distinct_minutes": spread_minutes,
        "fixed_distinct_minutes": fixed_minutes,
        "target": target,
        "met": spread_peak <= target,
    }


def rows(result: dict[str, Any]) -> list[harness.Row]:
    return [
        harness.Row(
            "hash-spread",
            f"peak Jobs in one minute ({result['cronworkflows']:,} CronWorkflows)",
            f"{result['spread_peak_jobs_per_minute']}",
            f"{result['fixed_peak_jobs_per_minute']}",
            f"{result['spread_peak_jobs_per_minute'] / result['fixed_peak_jobs_per_minute']:.3f}",
            f"{result['spread_schedule']!r} vs {result['fixed_schedule']!r}; "
            f"target <= {result['target']} ({'met' if result['met'] else 'NOT met'})",
        )
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cronworkflows", type=int, default=1000, help="how many objects")
    parser.add_argument("--spread", default="H * * * *", help="the hash-spread schedule")
    parser.add_argument("--fixed", default="0 * * * *", help="the schedule everyone writes")
