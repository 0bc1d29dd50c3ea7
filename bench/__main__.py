"""``python -m bench [benchmark] [options]``: run benchmarks, print one table, save the JSON.

Without a benchmark name every one runs, in the order of the table; each takes its defaults.
The saved file (``bench/results/bench-<UTC time>.json``) holds every figure, the machine, the load
average before and after, the git revision and the exact command. Commit a copy as
``bench/results/baseline-<date>.json`` when publishing figures.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from bench import (
    console,
    convergence,
    cron,
    delivery,
    harness,
    hash_spread,
    operator_memory,
    signature,
    slot_audit,
    tick_to_job,
    webhook_memory,
)

BENCHMARKS: dict[str, ModuleType] = {
    "tick-to-job": tick_to_job,
    "convergence": convergence,
    "webhook-memory": webhook_memory,
    "signature": signature,
    "delivery": delivery,
    "cron": cron,
    "console": console,
    "hash-spread": hash_spread,
    "slot-audit": slot_audit,
    "operator-memory": operator_memory,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="benchmark")
    sub.add_parser("all", help="every benchmark with its defaults (the default)")
    for name, module in BENCHMARKS.items():
        doc = (module.__doc__ or name).strip().split("\n")[0]
        module.add_arguments(sub.add_parser(name, help=doc))
    return parser


def _defaults(name: str) -> argparse.Namespace:
    return _parser().parse_args([name])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    chosen = [args.benchmark] if args.benchmark not in (None, "all") else list(BENCHMARKS)
    started = datetime.now(UTC)
    report: dict[str, Any] = {
        "command": "python -m bench " + shlex.join(argv),
        "started": started.isoformat(timespec="seconds"),
        "git": harness.git_revision(),
        "machine": harness.machine(),
        "load_average_at_start": harness.load_average(),
        "results": {},
        "failures": {},
    }
    rows: list[harness.Row] = []
    for name in chosen:
        module = BENCHMARKS[name]
        options = args if args.benchmark == name else _defaults(name)
        began = time.monotonic()
        print(f"== {name}", flush=True)
        runner: Callable[[argparse.Namespace], dict[str, Any]] = module.run
        try:
            result = runner(options)
        except Exception as exc:  # one failed benchmark must not lose the others' figures
            report["failures"][name] = f"{type(exc).__name__}: {exc}"
            print(f"   {name} FAILED: {exc}", flush=True)
            continue
        result["seconds"] = round(time.monotonic() - began, 1)
        report["results"][name] = result
        rows.extend(module.rows(result))
    report["load_average_at_end"] = harness.load_average()
    report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    machine = report["machine"]
    print()
    print(harness.table(rows))
    print(
        f"\n{report['command']} at {report['git']}, {report['started']}; "
        f"{machine['cpus']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB, "
        f"Python {machine['python']}; load average at start {report['load_average_at_start']}, "
        f"at end {report['load_average_at_end']}"
    )
    path = harness.save("bench", report)
    print(f"saved {path}")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
