"""The reliability suite's fixtures: the stack with a secrets check, and the suite's tally.

Every test here is marked ``reliability``; the long ones also ``slow``, each bounded by
``pytest.mark.timeout``. ``pytest -m reliability`` runs the suite alone, ``-m "not slow"`` skips
its long tests.

Two things happen behind every test that uses :func:`stack`:

- **no secret in any log line or event**: after the test, every line the operator and webhook
  children logged, and every Event in the test's namespace, is searched for the QStash token and
  both signing keys (random per test: :class:`ThreadedServer` makes fresh ones);
- **counting**: faults injected, requests fuzzed, Jobs checked, log lines and events scanned go
  into one tally, printed at the end of the session and written as JSON (path in
  ``QSO_RELIABILITY_SUMMARY``, default ``<tmp>/qstash-operator-reliability.json``).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.stack import Stack, running_stack
from qstash_server.testing import ThreadedServer

SUMMARY_ENV = "QSO_RELIABILITY_SUMMARY"


@dataclasses.dataclass
class Tally:
    faults: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    requests_fuzzed: int = 0
    fuzz_outcomes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    jobs_checked: int = 0
    invalid_cronworkflows: collections.Counter[str] = dataclasses.field(
        default_factory=collections.Counter
    )
    log_lines_scanned: int = 0
    events_scanned: int = 0
    qstash_calls_in_storms: dict[str, int] = dataclasses.field(default_factory=dict)

    def fault(self, kind: str, count: int = 1) -> None:
        self.faults[kind] += count

    def empty(self) -> bool:
        return not (self.faults or self.requests_fuzzed or self.jobs_checked or self.events_scanned)

    def to_json(self) -> dict[str, Any]:
        return {
            "faults_injected": dict(self.faults),
            "faults_injected_total": sum(self.faults.values()),
            "requests_fuzzed": self.requests_fuzzed,
            "fuzz_outcomes": dict(self.fuzz_outcomes),
            "jobs_checked": self.jobs_checked,
            "invalid_cronworkflows": dict(self.invalid_cronworkflows),
            "log_lines_scanned_for_secrets": self.log_lines_scanned,
            "events_scanned_for_secrets": self.events_scanned,
            "qstash_calls_in_storms": self.qstash_calls_in_storms,
        }


TALLY = Tally()


@pytest.fixture(scope="session")
def tally() -> Tally:
    return TALLY


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.reliability)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.empty():
        return
    data = TALLY.to_json()
    path = Path(
        os.environ.get(SUMMARY_ENV)
        or Path(tempfile.gettempdir()) / "qstash-operator-reliability.json"
    )
    path.write_text(json.dumps(data, indent=2) + "\n")
    write = terminalreporter.write_line
    write(
        f"reliability: {data['faults_injected_total']} faults injected "
        f"({', '.join(f'{k} {v}' for k, v in sorted(TALLY.faults.items()))}); "
        f"{TALLY.requests_fuzzed} requests fuzzed; {TALLY.jobs_checked} Jobs checked; "
        f"{sum(TALLY.invalid_cronworkflows.values())} invalid CronWorkflows; "
        f"{TALLY.log_lines_scanned} log lines and {TALLY.events_scanned} events scanned for "
        f"secrets; summary in {path}"
    )


# -- secrets ----------------------------------------------------------------------------------


def leaks(lines: Iterable[str], secrets: Iterable[str]) -> list[str]:
    """Lines holding any of the secrets (each shown with the secret masked)."""
    wanted = [secret for secret in secrets if secret]
    found = []
    for line in lines:
        for secret in wanted:
            if secret in line:
                found.append(line.replace(secret, "<SECRET>")[:300])
    return found


def namespace_events(plane: ControlPlane, namespace: str) -> list[dict[str, Any]]:
    status, answer = plane.request("GET", f"/api/v1/namespaces/{namespace}/events", timeout=30)
    assert status == 200, answer
    items: list[dict[str, Any]] = answer["items"]
    return items


def event_text(event: dict[str, Any]) -> str:
    return json.dumps(
        {key: event.get(key) for key in ("reason", "message", "involvedObject", "source")}
    )


def check_no_secrets(
    plane: ControlPlane, namespace: str, logs: Iterable[Path], secrets: Iterable[str]
) -> None:
    secrets = list(secrets)
    lines: list[str] = []
    for log in logs:
        if log.exists():
            lines.extend(log.read_text(errors="replace").splitlines())
    events = [event_text(event) for event in namespace_events(plane, namespace)]
    TALLY.log_lines_scanned += len(lines)
    TALLY.events_scanned += len(events)
    found = leaks(lines, secrets) + leaks(events, secrets)
    assert not found, f"secrets in {len(found)} log lines or events: {found[:5]}"


# -- the stack --------------------------------------------------------------------------------


@pytest.fixture
def qstash() -> Iterator[ThreadedServer]:
    """QStash-compatible server: random credentials, driven clock (fires only when told)."""
    with ThreadedServer() as server:
        yield server


@pytest.fixture
def stack(
    control_plane: ControlPlane,
    qstash: ThreadedServer,
    namespace: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Stack]:
    secrets = [qstash.token, qstash.current_key, qstash.next_key]
    with running_stack(control_plane, qstash, tmp_path, namespace, request) as running:
        yield running
    check_no_secrets(control_plane, namespace, [child.log for child in running.children], secrets)
