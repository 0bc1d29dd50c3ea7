"""The operator when QStash misbehaves, when the public URL cannot serve, and when drift happens."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from qstash import QStash

from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.stack import Stack, cronworkflow, http_get, wait
from qstash_operator.domain import quiet
from qstash_server.testing import ThreadedServer
from tests.e2e.test_operator_qstash import metric, schedule_id, sdk


def test_a_refused_token_is_a_condition_and_a_slow_retry_not_a_hot_loop(stack: Stack) -> None:
    _, port = stack.operator(extra_env={"QSTASH_TOKEN": "not-the-token"})
    stack.apply(cronworkflow("locked-out"))
    condition = stack.wait_condition(
        "locked-out", "ScheduleSynced", "False", reason="QStashAuthFailed"
    )
    assert "QSTASH_TOKEN" in condition["message"]
    assert stack.condition("locked-out", "Ready")["status"] == "False"  # type: ignore[index]
    # Five seconds later QStash has seen one attempt, not a loop (the retry waits minutes).
    first = stack.qstash.api_calls().get("schedules.create", 0)
    deadline = time.monotonic() + 5
    wait(lambda: time.monotonic() > deadline, timeout=10, what="five seconds to pass")
    assert stack.qstash.api_calls().get("schedules.create", 0) == first == 1
    assert (
        metric(
            port,
            "qstash_operator_qstash_api_calls_total",
            operation="upsert",
            outcome="QStashAuthError",
        )
        == 1.0
    )


def test_server_errors_and_rate_limits_heal_with_backoff(stack: Stack) -> None:
    stack.qstash.fail_api(2, status=503, routes=["schedules.create"])
    stack.operator()
    stack.apply(cronworkflow("patient"))
    stack.wait_condition("patient", "ScheduleSynced", "False", reason="QStashUnavailable")
    stack.wait_condition("patient", "Ready", "True", timeout=90)
    assert stack.qstash.api_calls().get("schedules.create", 0) == 3  # two failures, one success

    stack.qstash.rate_limit_api(1, family="burst", routes=["schedules.create"])
    stack.apply(cronworkflow("patient", {"schedule": "*/7 * * * *"}))
    wait(
        lambda: (
            sdk(stack).schedule.get(schedule_id(stack, "patient")).cron == "CRON_TZ=UTC */7 * * * *"
        ),
        timeout=60,
        what="the edit to land after the rate limit",
    )
    reasons = {event["reason"] for event in stack.events("patient")}
    assert {"QStashUnavailable", "QStashRateLimited"} <= reasons


def test_a_public_url_qstash_cannot_reach_means_development_mode(stack: Stack) -> None:
    operator, _ = stack.operator(
        extra_env={
            "WEBHOOK_PUBLIC_URL": "https://localhost:8443",
            "QSTASH_OPERATOR_ALLOW_PRIVATE_URL": "false",
        }
    )
    assert (
        "development mode: WEBHOOK_PUBLIC_URL host 'localhost' resolves to a loopback"
        in operator.output()
    )
    stack.apply(cronworkflow("local", {"schedule": "*/10 * * * *"}))
    stack.wait_condition("local", "Ready", "True")
    body = stack.get("cronworkflow", "local")
    assert body is not None
    assert body["status"]["backend"] == "CronJob"
    fallback = [e for e in stack.events("local") if e["reason"] == "FallbackToCronJob"]
    assert fallback
    assert "WEBHOOK_PUBLIC_URL" in fallback[0]["message"]
    assert stack.qstash.api_calls().get("schedules.create", 0) == 0


def test_spec_backend_qstash_without_credentials_says_how_to_fix_it(stack: Stack) -> None:
    stack.operator(qstash=False)
    stack.apply(cronworkflow("insists", {"backend": "QStash"}))
    condition = stack.wait_condition("insists", "Ready", "False", reason="BackendUnavailable")
    assert "QSTASH_TOKEN is not set" in condition["message"]
    assert "spec.backend to Auto" in condition["message"]
    assert stack.get("cronjob", "insists") is None


def test_drift_is_repaired_with_one_list_call_per_period(stack: Stack) -> None:
    _, port = stack.operator(extra_env={"QSTASH_OPERATOR_RESYNC_SECONDS": "1"})
    for name in ("alpha", "beta", "gamma"):
        stack.apply(cronworkflow(name))
    for name in ("alpha", "beta", "gamma"):
        stack.wait_condition(name, "Ready", "True")
    client: QStash = sdk(stack)

    client.schedule.delete(schedule_id(stack, "alpha"))
    client.schedule.create(
        destination="https://elsewhere.example/x",
        cron="0 0 1 1 *",
        schedule_id=schedule_id(stack, "beta"),
    )
    orphan = schedule_id(stack, "deleted-long-ago")
    client.schedule.create(
        destination=f"{stack.public_url}/api/qstash/webhook", cron="* * * * *", schedule_id=orphan
    )
    foreign = "another-cluster.ns.name"
    client.schedule.create(
        destination="https://other.example/hook", cron="* * * * *", schedule_id=foreign
    )

    def repaired() -> bool:
        ids = {s.schedule_id: s for s in client.schedule.list()}
        beta = ids.get(schedule_id(stack, "beta"))
        return (
            schedule_id(stack, "alpha") in ids
            and beta is not None
            and beta.cron == "CRON_TZ=UTC */5 * * * *"
            and orphan not in ids
        )

    # 45 s: a pass may wait out domain.quiet's 14 s around a minute
    wait(repaired, timeout=45, what="drift repair")
    assert foreign in {s.schedule_id for s in client.schedule.list()}  # not ours: left alone
    reasons = {
        (e["involvedObject"]["name"], e["reason"])
        for e in stack.events("alpha") + stack.events("beta")
    }
    assert {("alpha", "DriftRepaired"), ("beta", "DriftRepaired")} <= reasons
    assert metric(port, "qstash_operator_drift_repairs_total", kind="orphan") >= 1.0

    # Steady state: one list call per period and nothing else, counted over 4 s that do not
    # touch a minute's quiet window (domain.quiet: passes wait there).
    def clear_of_quiet() -> bool:
        now = datetime.now(UTC)
        return (
            quiet.quiet_until(now) is None and quiet.quiet_until(now + timedelta(seconds=5)) is None
        )

    wait(clear_of_quiet, timeout=30, what="5 s of the minute clear of its quiet window")
    stack.qstash.reset_api_calls()
    start = time.monotonic()
    wait(lambda: time.monotonic() - start > 4, timeout=10, what="four periods")
    calls = stack.qstash.api_calls()
    lists = calls.pop("schedules.list", 0)
    assert 2 <= lists <= 6
    assert sum(calls.values()) == 0, calls


def test_qstash_refusing_the_destination_sends_auto_to_cronjobs(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """A public URL that passes our text check but that QStash refuses (a name resolving to a
    private address): QStash's 400 turns QStash off for Auto, with its message in the event."""
    with ThreadedServer(strict_destinations=True) as strict:
        stack = Stack(control_plane, strict, tmp_path, namespace)
        try:
            stack.operator()
            stack.apply(cronworkflow("refused"))
            stack.wait_condition("refused", "Ready", "True")
            body = stack.get("cronworkflow", "refused") or {}
            assert body["status"]["backend"] == "CronJob"
            [event] = [e for e in stack.events("refused") if e["reason"] == "FallbackToCronJob"]
            assert "invalid destination url" in event["message"]
            assert stack.get("cronjob", "refused") is not None
            assert strict.api_calls().get("schedules.create", 0) == 1  # asked once, then believed
        finally:
            stack.stop()


def _readyz(port: int) -> tuple[int, dict[str, object]]:
    status, text = http_get(f"http://127.0.0.1:{port}/readyz")
    return status, json.loads(text) if text else {}


def test_a_failed_drift_pass_is_logged_and_the_next_one_runs_and_readiness_says_so(
    stack: Stack,
) -> None:
    """QStash answering the list call with a 400 (a QStashRejectedError, not transient) used to end
    the drift task for good while /healthz and /readyz stayed green."""
    _, port = stack.operator(extra_env={"QSTASH_OPERATOR_RESYNC_SECONDS": "1"})
    stack.apply(cronworkflow("watched"))
    stack.wait_condition("watched", "Ready", "True")
    client = sdk(stack)

    # One rejected pass; the next pass still runs and repairs a schedule deleted behind our back.
    stack.qstash.reset_api_calls()
    stack.qstash.fail_api(1, status=400, routes=["schedules.list"])
    wait(
        lambda: stack.qstash.api_calls().get("schedules.list", 0) >= 1,
        timeout=25,  # + domain.quiet's 14 s around a minute, when passes wait
        what="the rejected drift pass",
    )
    client.schedule.delete(schedule_id(stack, "watched"))
    wait(
        lambda: schedule_id(stack, "watched") in {s.schedule_id for s in client.schedule.list()},
        timeout=35,  # + domain.quiet's 14 s around a minute, when passes wait
        what="the next drift pass to recreate the schedule",
    )
    assert metric(port, "qstash_operator_drift_passes_total", result="QStashRejectedError") >= 1
    last_success = metric(port, "qstash_operator_drift_last_success_timestamp_seconds")
    assert last_success > 0
    assert _readyz(port)[0] == 200

    # Drift failing for more than three periods: readiness says so, with the reason; it heals.
    stack.qstash.fail_api(None, status=400, routes=["schedules.list"])
    wait(lambda: _readyz(port)[0] == 503, timeout=35, what="readiness to report drift failing")
    _, body = _readyz(port)
    assert body["apiServer"] is True
    problem = str(body["problem"])
    assert "drift" in problem, body
    assert "QStash" in problem, body
    stack.qstash.clear_faults()
    wait(lambda: _readyz(port)[0] == 200, timeout=35, what="readiness back after a good pass")
    assert metric(port, "qstash_operator_drift_last_success_timestamp_seconds") > last_success
    operator_log = stack.children[0].output()
    assert "drift pass failed" in operator_log
