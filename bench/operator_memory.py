"""Where the operator's memory goes: convergence variants side by side, one control plane.

Each variant is its own namespace and operator (QStash mode, the server on a driven clock, as in
``convergence``): N CronWorkflows are applied, and once all are Ready and scheduled the
operator's peak and current resident memory are read, with the API server requests it made.
``--trace`` adds a variant run under tracemalloc (``bench/tracing/sitecustomize.py``; so is any
variant named ``trace...``) whose top allocations by line, file and call stack are written next
to the logs; tracing slows the operator, so its timings say nothing. A variant's ``PYTHONPATH``
runs another checkout's operator (a before/after pair in one run). ``--variant
NAME:KEY=VALUE,...`` adds a variant with those operator settings (e.g.
``cache1:QSTASH_OPERATOR_MIRROR_CACHE_MAX_CRONWORKFLOWS=1``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import convergence, harness
from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.processes import Child
from qstash_devstack.stack import Stack
from qstash_server.testing import ServerProcess

TRACING = Path(__file__).parent / "tracing"
DUMP_WAIT_SECONDS = 120.0


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``name:KEY=VALUE,KEY=VALUE`` (or a bare ``name``: the defaults)."""
    name, _, settings = text.partition(":")
    env = dict(item.split("=", 1) for item in settings.split(",") if item)
    return name, env


def _traced_env(dump: Path, frames: int, env: dict[str, str]) -> dict[str, str]:
    inherited = env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
    path = os.pathsep.join(p for p in (str(TRACING), inherited) if p)
    return {
        "PYTHONPATH": path,
        "QSO_TRACEMALLOC_DUMP": str(dump),
        "QSO_TRACEMALLOC_FRAMES": str(frames),
    }


def _dump_on_converged(dump: Path) -> Callable[[Child], None]:
    def converged(operator: Child) -> None:
        assert operator.process is not None
        dump.unlink(missing_ok=True)
        os.kill(operator.process.pid, signal.SIGUSR1)
        deadline = time.monotonic() + DUMP_WAIT_SECONDS
        while time.monotonic() < deadline:
            if dump.exists() and dump.stat().st_size and dump.read_text().endswith("\n"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"no tracemalloc dump at {dump} after {DUMP_WAIT_SECONDS:.0f}s")

    return converged


async def measure(
    plane: ControlPlane, count: int, variants: list[tuple[str, dict[str, str]]], frames: int
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="qso-bench-memory-"))
    server = ServerProcess("--driven-clock")
    await server.start()
    results: dict[str, Any] = {}
    try:
        for name, env in variants:
            namespace = f"bench-mem-{name}"
            harness.create_namespace(plane, namespace)
            stack = Stack(plane, server, workdir, namespace)  # type: ignore[arg-type]
            hook = None
            traced = name.startswith("trace")
            if traced:
                dump = workdir / f"tracemalloc-{name}.txt"
                env = {**env, **_traced_env(dump, frames, env)}
                hook = _dump_on_converged(dump)
            print(f"   variant {name}: {env or 'defaults'}", flush=True)
            try:
                result = await convergence.converge(
                    plane, server, stack, count, extra_env=env, converged=hook
                )
            except Exception as exc:  # one failed variant must not lose the others' figures
                results[name] = {"env": env, "failed": f"{type(exc).__name__}: {exc}"[:2000]}
                print(f"   variant {name} FAILED: {exc}", flush=True)
                continue
            finally:
                stack.stop()
            result["env"] = env
            result["peak_rss_kib_per_object"] = round(
                result["operator_peak_rss_mib"] * 1024 / count, 1
            )
            if traced:
                result["tracemalloc"] = dump.read_text().splitlines()
            results[name] = result
            # Each variant's figures as soon as they exist (a run cut short keeps them).
            (workdir / "variants.json").write_text(json.dumps(results, indent=2, default=str))
    finally:
        await server.stop()
    return {
        "benchmark": "operator-memory",
        "count": count,
        "variants": results,
        "logs": str(workdir),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    variants = [parse_variant(text) for text in args.variant or ["base"]]
    if args.trace:
        variants.append(("trace", {}))
    with harness.control_plane() as plane:
        return asyncio.run(measure(plane, args.count, variants, args.frames))


def rows(result: dict[str, Any]) -> list[harness.Row]:
    out = []
    for name, variant in result["variants"].items():
        if "failed" in variant:
            continue
        out.append(
            harness.Row(
                f"operator memory (N={result['count']}) {name}",
                "peak RSS MiB / KiB per object; ratio to apply",
                f"{variant['operator_peak_rss_mib']:.0f} / "
                f"{variant['peak_rss_kib_per_object']:.1f}",
                "-",
                f"{variant['ratio_to_apply']:.2f}",
                ", ".join(f"{k}={v}" for k, v in variant["env"].items() if k.startswith("QSTASH")),
            )
        )
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=2000, help="CronWorkflows (default 2000)")
    parser.add_argument(
        "--variant",
        action="append",
        help="NAME[:KEY=VALUE,...] operator settings of one variant (repeatable; default base)",
    )
    parser.add_argument("--trace", action="store_true", help="add a variant under tracemalloc")
    parser.add_argument(
        "--frames",
        type=int,
        default=1,
        help="frames per traced allocation (6 at 2,000 objects slowed the operator into timeouts)",
    )
