"""Bench-only start-up hook (on ``PYTHONPATH`` of a child process, never in the product).

With ``QSO_TRACEMALLOC_DUMP=<path>`` set, tracemalloc starts before anything is imported
(``QSO_TRACEMALLOC_FRAMES`` frames per allocation, default 1), and SIGUSR1 writes what is
allocated now to ``<path>``: the total, the top lines, the top files and, with more than one
frame, the top call stacks. The operator itself knows nothing of it.
"""

from __future__ import annotations

import os

_PATH = os.environ.get("QSO_TRACEMALLOC_DUMP")

if _PATH:
    import signal
    import tracemalloc
    from types import FrameType

    _FRAMES = int(os.environ.get("QSO_TRACEMALLOC_FRAMES", "1"))
    tracemalloc.start(_FRAMES)

    def _dump(signum: int, frame: FrameType | None) -> None:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            (tracemalloc.Filter(False, tracemalloc.__file__),)
        )
        current, peak = tracemalloc.get_traced_memory()
        lines = [f"traced now {current / 2**20:.1f} MiB, traced peak {peak / 2**20:.1f} MiB"]
        for key, limit in (("lineno", 60), ("filename", 30)):
            lines.append(f"\n== top {limit} by {key}")
            for stat in snapshot.statistics(key)[:limit]:
                frame0 = stat.traceback[0]
                lines.append(
                    f"{stat.size / 2**20:8.2f} MiB {stat.count:9d} blocks  "
                    f"{frame0.filename}:{frame0.lineno if key == 'lineno' else ''}"
                )
        if _FRAMES > 1:
            lines.append("\n== top 25 call stacks")
            for stat in snapshot.statistics("traceback")[:25]:
                lines.append(f"{stat.size / 2**20:8.2f} MiB {stat.count:9d} blocks")
                lines.extend("      " + entry for entry in stat.traceback.format(limit=_FRAMES))
        with open(_PATH, "w") as sink:  # a signal handler: plain and short
            sink.write("\n".join(lines) + "\n")

    signal.signal(signal.SIGUSR1, _dump)
