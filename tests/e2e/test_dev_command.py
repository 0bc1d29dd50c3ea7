"""``qstash-operator dev`` (``make dev``) as a newcomer runs it: up, a real tick, Ctrl-C, clean.

The command runs as a child process with a warm binary cache (the session's control plane fixture
builds it when cold). The test reads its output until a Job made by a real minute tick has
completed, sends SIGINT as a terminal's Ctrl-C would, and then requires a clean exit with no
process it started still alive and its control-plane directory gone.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from qstash_devstack.controlplane import build_binaries

REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 90.0
TICK_SECONDS = 150.0
"""Up to a minute to the next boundary, plus delivery, the Job and its pod under shared cores."""


Process = tuple[int, str]
"""(pid, start time in clock ticks): a pid the kernel reuses later is another process."""


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(root: int) -> set[Process]:
    """Every live process below ``root`` (children in their own sessions included)."""
    parents: dict[int, list[Process]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat(int(stat.parent.name))
        if fields is not None and fields[0] != "Z":
            # fields: state, ppid, ..., starttime is field 22 of stat, index 19 here
            parents.setdefault(int(fields[1]), []).append((int(stat.parent.name), fields[19]))
    found: set[Process] = set()
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child[0])
    return found


def alive(process: Process) -> bool:
    fields = _stat(process[0])
    return fields is not None and fields[0] != "Z" and fields[19] == process[1]


def cmdline(process: Process) -> bytes:
    try:
        return Path(f"/proc/{process[0]}/cmdline").read_bytes()
    except OSError:
        return b""


class DevCommand:
    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qstash_operator.cli", "dev", *args],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # SIGINT goes to it alone, as Ctrl-C to a foreground job
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.pids: set[Process] = set()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def until(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            self.pids |= descendants(self.process.pid)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r}; output:\n" + self.output())
            try:
                line = self.lines.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"exited before {pattern!r}; output:\n" + self.output())
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match

    def output(self) -> str:
        return "\n".join(self.seen)

    def stop(self, signum: int) -> int:
        self.pids |= descendants(self.process.pid)
        self.process.send_signal(signum)
        code = self.process.wait(60)
        while (line := self.lines.get(timeout=10)) is not None:
            self.seen.append(line)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
def dev() -> Iterator[list[DevCommand]]:
    build_binaries()  # warm; a cold build is not what this test measures
    started: list[DevCommand] = []
    try:
        yield started
    finally:
        for command in started:
            command.kill()


@pytest.mark.slow
def test_make_dev_shows_a_real_tick_completing_and_ctrl_c_cleans_everything(
    dev: list[DevCommand],
) -> None:
    command = DevCommand()
    dev.append(command)
    ready = command.until(r"^ready in ([\d.]+) s", STARTUP_SECONDS)
    run_dir = Path(command.until(r"export KUBECONFIG=(\S+)/admin\.kubeconfig", 5)[1])
    api = command.until(
        r"export QSTASH_OPERATOR_API_URL=(\S+) QSTASH_OPERATOR_API_TOKEN=\$\(cat (\S+)\)", 5
    )
    assert run_dir.is_dir()
    assert float(ready[1]) < STARTUP_SECONDS
    assert "backend QStash" in command.output()
    # The console's URL and a token that signs in to it.
    console = command.until(r"^Console: (http://\S+/ui/) ", 5)[1]
    token = command.until(r"^    ([A-Za-z0-9._-]{100,})$", 5)[1]
    request = urllib.request.Request(  # noqa: S310 (loopback)
        console + "api/session", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        assert json.loads(answer.read())["username"].endswith(":qstash-dev")
    created = command.until(
        r"job\s+(every-minute-\d+) created for the .* tick.*by the webhook", TICK_SECONDS
    )
    command.until(rf"job\s+{created[1]} succeeded", 60)
    command.until(r"status\s+backend QStash \| Ready True .*last success \d", 30)
    # The printed token works for the printed commands (it is bound to the API's audience).
    env = {
        **os.environ,
        "QSTASH_OPERATOR_API_URL": api[1],
        "QSTASH_OPERATOR_API_TOKEN": Path(api[2]).read_text().strip(),
    }
    for argv in (["list"], ["trigger", "default/every-minute"]):
        done = subprocess.run(
            [sys.executable, "-m", "qstash_operator.cli", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert "every-minute" in done.stdout
    # Every kind of process we expect is among the ones it started.
    names = {cmdline(process) for process in command.pids if alive(process)}
    for expected in (
        b"kube-apiserver",
        b"etcd",
        b"kwok",
        b"qstash-server",
        b"webhook",
        b"operator",
    ):
        assert any(expected in name for name in names), expected

    assert command.stop(signal.SIGINT) == 0, command.output()
    assert "nothing left behind" in command.output()
    assert [process for process in command.pids if alive(process)] == []
    assert not run_dir.exists()


@pytest.mark.slow
def test_the_cronjob_flag_runs_development_mode_and_sigterm_cleans_everything(
    dev: list[DevCommand],
) -> None:
    command = DevCommand("--cronjob")
    dev.append(command)
    command.until(r"^ready in ([\d.]+) s", STARTUP_SECONDS)
    run_dir = Path(command.until(r"export KUBECONFIG=(\S+)/admin\.kubeconfig", 5)[1])
    command.until(r"status\s+backend CronJob \| Ready True", 30)
    out = command.output()
    assert "QSTASH_TOKEN is not set, so CronWorkflows with backend Auto run as native" in out
    assert "QStash-compatible server" not in out.split("\n", 1)[1]  # no server step
    names = {cmdline(process) for process in command.pids if alive(process)}
    assert not any(b"qstash-server" in name or b"webhook" in name for name in names)

    assert command.stop(signal.SIGTERM) == 0, command.output()
    assert [process for process in command.pids if alive(process)] == []
    assert not run_dir.exists()


def test_without_the_local_stack_it_says_to_use_a_clone(tmp_path: Path) -> None:
    # A plain `pip install qstash-operator` has no qstash_devstack; None in sys.modules makes the
    # import fail exactly as it would there.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['qstash_devstack'] = None; "
            "from qstash_operator import cli; sys.exit(cli.main(['dev']))",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "make dev" in result.stderr
    assert "qstash-operator-devstack" in result.stderr
