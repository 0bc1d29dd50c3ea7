"""Our own processes beside the control plane: ports, the environment they get, and a child.

Shared by the local stack (``devstack.py``, what ``make dev`` runs) and the end-to-end tests
(``qstash_devstack.stack``), so both start the operator, the webhook and the QStash-compatible
server the same way: through the real CLI, with the environment a Pod would have, logging to a
file, and dying with whoever started them (parent death signal, as the control plane does).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from qstash_devstack.controlplane import ControlPlane, _child_setup

STOP_GRACE: Final = 10.0
"""Seconds a child gets to stop after SIGTERM before SIGKILL; kopf and aiohttp need about one."""


def free_port(preferred: int | None = None) -> int:
    """``preferred`` when it is free, else a port the kernel hands out now."""
    if preferred is not None:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", preferred))
            except OSError:
                pass
            else:
                return preferred
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(url: str, *, timeout: float = 5.0) -> tuple[int, str]:
    """Status and body of a GET on loopback; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback)
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, OSError):
        return 0, ""


def child_env(plane: ControlPlane) -> dict[str, str]:
    """The environment of a child: ours without any QStash/webhook setting, plus the cluster's."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("QSTASH_", "WEBHOOK_", "NEXT_PUBLIC_"))
    }
    env.update(plane.env())
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Child:
    """One of our processes (``qstash-operator <subcommand>``), logging to a file."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    stdout_pipe: bool = False  # read stdout (the QStash server prints its settings there)

    def start(self) -> Child:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "qstash_operator.cli", *self.args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if self.stdout_pipe else sink,
                stderr=sink if self.stdout_pipe else subprocess.STDOUT,
                env=self.env,
                # Own session: a Ctrl-C at the terminal reaches only the parent, which stops the
                # children in order.
                start_new_session=True,
                preexec_fn=_child_setup(os.getpid()),
            )
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.output().splitlines()[-lines:]) or "(no log)"

    def kill(self) -> None:
        """``kill -9``: no cleanup, no goodbye."""
        if self.process is not None and self.running:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM, then SIGKILL after ``grace``; returns the exit status."""
        if self.process is None:
            return None
        if self.running:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode
