"""The real robfig/cron, as a long-lived helper process the differential test can ask.

``devstack/robfig/`` holds a tiny Go program (``main.go``, ``go.mod`` pinning
``github.com/robfig/cron/v3``, ``go.sum``) that reads one case per line and prints robfig's answer.
:func:`build` compiles it with ``go build`` from the Go module proxy into the shared version-keyed
cache, ``~/.cache/qstash-operator/robfig-<version>-<hash>/``, where the hash covers the three source
files and the Go version, so an edit or a toolchain upgrade builds afresh and anything else is
free. Only sources are committed, never the binary.

Go's ``time`` package reads the system zoneinfo (``/usr/share/zoneinfo``, the first of its
``platformZoneSources``; the helper does not embed ``time/tzdata``) and so does Python's
``zoneinfo`` (``zoneinfo.TZPATH`` starts there): both sides compute with the same rules.
:func:`same_zone_data` checks that before a comparison means anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import zoneinfo
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Final

ROOT: Final = Path(__file__).resolve().parents[2]
SOURCE: Final = ROOT / "devstack" / "robfig"
SOURCE_FILES: Final = ("go.mod", "go.sum", "main.go")
BINARY: Final = "robfig-next"
SYSTEM_ZONEINFO: Final = Path("/usr/share/zoneinfo")


class BuildError(RuntimeError):
    """The helper could not be built (no Go toolchain, no module proxy, a compile error)."""


def version() -> str:
    """The pinned robfig/cron version, read from ``go.mod``."""
    for line in (SOURCE / "go.mod").read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[-2] == "github.com/robfig/cron/v3":
            return words[-1]
    raise BuildError(f"{SOURCE / 'go.mod'} does not require github.com/robfig/cron/v3")


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "the differential cron test needs a Go toolchain (the control plane's build needs one "
            "too): install Go 1.22 or newer and put `go` on PATH"
        )
    return go


def _go_version(go: str) -> str:
    return subprocess.run(
        [go, "env", "GOVERSION"], check=True, capture_output=True, text=True
    ).stdout.strip()


def cache_dir() -> Path:
    """Where the helper for these sources and this Go lives (built or not)."""
    go = _go()
    digest = hashlib.sha256()
    for name in SOURCE_FILES:
        digest.update(name.encode() + b"\0" + (SOURCE / name).read_bytes() + b"\0")
    digest.update(_go_version(go).encode())
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qstash-operator"
    return root / f"robfig-{version()}-{digest.hexdigest()[:12]}"


def build() -> Path:
    """The helper's path, compiled first if the cache has no copy for these sources."""
    target = cache_dir()
    binary = target / BINARY
    if binary.exists():
        return binary
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be building the same copy
        if binary.exists():
            return binary
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        env = {**os.environ, "GOWORK": "off", "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"}
        result = subprocess.run(
            [_go(), "build", "-trimpath", "-o", str(partial / BINARY), "."],
            cwd=SOURCE,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BuildError(f"go build in {SOURCE} failed:\n{result.stderr}")
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)  # complete or absent, never half there
    return binary


def same_zone_data(zone: str) -> bool:
    """True when Python resolves ``zone`` from the system files Go reads first."""
    path = SYSTEM_ZONEINFO / zone
    if not path.is_file():
        return False
    for directory in zoneinfo.TZPATH:
        candidate = Path(directory) / zone
        if candidate.is_file():
            return candidate.resolve() == path.resolve()
    return False


@dataclasses.dataclass(frozen=True)
class Answer:
    """What robfig said: an error, or fire times (Unix seconds), ``zero`` if ``Next`` ran dry."""

    error: str | None
    times: tuple[int, ...] = ()
    zero: bool = False


class Robfig:
    """One helper process; :meth:`ask` sends a case and reads its answer (one line each)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process
        self.asked = 0

    def ask(self, spec: str, local_zone: str, start: int, count: int) -> Answer:
        """robfig's ``ParseStandard(spec)`` with ``time.Local`` = ``local_zone``, then ``count``
        times ``Next``, each from the previous answer, starting at Unix second ``start``."""
        stdin: IO[str] | None = self._process.stdin
        stdout: IO[str] | None = self._process.stdout
        assert stdin is not None
        assert stdout is not None
        # A JSON string is a valid Go string literal (the helper unquotes it), so any whitespace
        # in the spec survives the line protocol; astral characters would need surrogates, which
        # Go refuses, and the test generates none.
        stdin.write(f"{json.dumps(spec)}\t{local_zone}\t{start}\t{count}\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the robfig helper exited (code {self._process.poll()})")
        self.asked += 1
        kind, _, rest = line.rstrip("\n").partition(" ")
        if kind == "error":
            return Answer(error=rest)
        words = rest.split()
        zero = bool(words) and words[-1] == "zero"
        return Answer(error=None, times=tuple(int(w) for w in words if w != "zero"), zero=zero)


@contextlib.contextmanager
def running() -> Iterator[Robfig]:
    """Build (or reuse) the helper, start it once, and stop it when the block ends."""
    binary = build()
    process = subprocess.Popen(
        [str(binary)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        # $ZONEINFO would make Go read another zone archive than the system's, which Python reads.
        env={name: value for name, value in os.environ.items() if name != "ZONEINFO"},
    )
    try:
        yield Robfig(process)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
