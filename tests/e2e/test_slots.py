"""Every slot accounted for, end to end: missed slots, catch-up and freshness on the real control
plane, with the operator as a child process through the CLI.

The outage: the operator is stopped and nothing delivers (the webhook is not running and the
QStash-compatible server's clock is driven, so nothing fires). Rather than wait five real
minutes, the CronWorkflow's ``status.scheduleSince`` is moved back before five ticks that lie in
the past: the state a five-tick outage of the operator and the webhook leaves behind (no Job, no
delivery, no record). The schedule names exactly those five minutes, so no further tick falls
due while the test runs and the counts are exact whatever the wall clock says.

QStash's side of an outage (the last two tests): the server's driven clock starts five minutes
back, so past ticks are fired at once. Jobs that keep failing turn ``Fresh`` False at the
objective's slot and not before; and ticks whose deliveries QStash gave up on (refused, retries
out, in its DLQ) read ``Missed`` once the grace has passed and are caught up like any missed slot.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from qstash import QStash

from qstash_devstack.stack import Stack, backdate_schedules, cronworkflow, http_get, wait
from qstash_operator.domain import vocabulary
from qstash_server.testing import ThreadedServer

FAST_AUDIT = {
    "QSTASH_OPERATOR_SLOT_AUDIT_SECONDS": "1",
    "QSTASH_OPERATOR_MISSED_GRACE_SECONDS": "5",
}
GRACE = timedelta(seconds=5)
MINUTE = timedelta(minutes=1)
BEHIND = 5 * MINUTE  # a QStash clock that far in the past fires past ticks on demand
BACKOFF_FACTOR = 0.04  # QStash's retry waits shrunk: a 150 s retryDelay is 6 s here


@pytest.fixture
def qstash(request: pytest.FixtureRequest) -> Iterator[ThreadedServer]:
    """The QStash-compatible server with a driven clock; parametrized (indirect) with a
    timedelta, the clock starts that far before the current minute, plus a second."""
    behind = getattr(request, "param", None)
    start = (
        None
        if behind is None
        else datetime.now(UTC).replace(second=0, microsecond=0) - behind + timedelta(seconds=1)
    )
    with ThreadedServer(start_time=start) as server:
        yield server


def five_past_ticks() -> tuple[str, list[datetime], datetime]:
    """A schedule naming the five minutes before now - grace, those ticks, and a scheduleSince
    before them."""
    due = (datetime.now(UTC) - GRACE - timedelta(seconds=1)).replace(second=0, microsecond=0)
    ticks = [due - timedelta(minutes=n) for n in range(4, -1, -1)]
    minutes = ",".join(str(m) for m in sorted({tick.minute for tick in ticks}))
    return f"{minutes} * * * *", ticks, ticks[0] - timedelta(seconds=30)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def set_status(stack: Stack, name: str, status: dict[str, Any]) -> None:
    stack.plane.kubectl(
        "patch", "qcwf", name, "-n", stack.namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": status}),
    )  # fmt: skip


def ledger(stack: Stack, name: str) -> list[tuple[str, str]]:
    body = stack.get("cronworkflow", name) or {}
    return [(e["time"], e["fate"]) for e in (body.get("status") or {}).get("recentSlots") or []]


def scheduled_times(stack: Stack, name: str) -> list[str]:
    jobs = stack.list("jobs", f"qstash-operator.dev/cronworkflow={name}")
    return sorted(j["metadata"]["annotations"]["qstash-operator.dev/scheduled-time"] for j in jobs)


def metric(port: int, family: str, **labels: str) -> float:
    status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    wanted = family + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def outage(stack: Stack, specs: dict[str, dict[str, Any]], *, qstash: bool) -> list[datetime]:
    """Apply the CronWorkflows with the operator up, stop it, leave five ticks unserved."""
    schedule, ticks, since = five_past_ticks()
    operator, _ = stack.operator(qstash=qstash, extra_env=FAST_AUDIT)
    for name, spec in specs.items():
        stack.apply(cronworkflow(name, {"schedule": schedule, **spec}))
    for name in specs:
        stack.wait_condition(name, "Ready", "True")
    operator.stop()
    for name in specs:
        set_status(stack, name, {"scheduleSince": stamp(since)})
    return ticks


def test_after_an_outage_all_runs_the_latest_max_runs_and_none_runs_nothing(stack: Stack) -> None:
    ticks = outage(
        stack,
        {
            "all-three": {"catchUp": {"policy": "All", "maxRuns": 3}},
            "latest": {"catchUp": {"policy": "Latest"}},
            "none": {"catchUp": {"policy": "None"}},
        },
        qstash=True,
    )
    _, port = stack.operator(extra_env=FAST_AUDIT)  # back after the outage

    def caught_up(name: str, count: int) -> bool:
        return sum(fate == "CaughtUp" for _, fate in ledger(stack, name)) == count

    wait(lambda: caught_up("all-three", 3), timeout=30, what="three slots caught up")
    wait(lambda: caught_up("latest", 1), timeout=30, what="one slot caught up")
    wait(lambda: len(ledger(stack, "none")) == 5, timeout=30, what="five slots in the ledger")

    expected = [(stamp(t), "CaughtUp") for t in ticks[:1:-1]] + [
        (stamp(t), "Missed") for t in ticks[1::-1]
    ]
    assert ledger(stack, "all-three") == expected  # newest first: the 3 latest ran
    # in order, oldest first, under each slot's own Job name and scheduled-time
    assert scheduled_times(stack, "all-three") == [stamp(t) for t in ticks[2:]]
    jobs = sorted(
        stack.list("jobs", "qstash-operator.dev/cronworkflow=all-three"),
        key=lambda j: j["metadata"]["creationTimestamp"] + j["metadata"]["name"],
    )
    assert [j["metadata"]["name"] for j in jobs] == [
        f"all-three-{int(t.timestamp()) // 60}" for t in ticks[2:]
    ]
    assert scheduled_times(stack, "latest") == [stamp(ticks[-1])]
    assert [fate for _, fate in ledger(stack, "latest")] == ["CaughtUp"] + ["Missed"] * 4
    assert scheduled_times(stack, "none") == []
    assert [fate for _, fate in ledger(stack, "none")] == ["Missed"] * 5

    missed = [e for e in stack.events("none") if e["reason"] == "MissedSchedule"]
    assert len(missed) == 5
    assert {e["type"] for e in missed} == {"Warning"}
    caught = [e for e in stack.events("all-three") if e["reason"] == "CaughtUp"]
    assert len(caught) == 3
    assert metric(port, "qstash_operator_slots_total", outcome="Missed", reason="NoRun") == 15
    # The next passes neither run more nor reach further back into the outage.
    wait(
        lambda: all(fate != "Running" for _, fate in ledger(stack, "all-three")),
        timeout=30,
        what="the catch-up Jobs to finish",
    )
    assert len(scheduled_times(stack, "all-three")) == 3


def test_freshness_turns_false_when_the_latest_slots_did_not_succeed(stack: Stack) -> None:
    outage(
        stack,
        {"watched": {"catchUp": {"policy": "None"}, "freshness": {"missedSlots": 3}}},
        qstash=False,
    )
    _, port = stack.operator(qstash=False, extra_env=FAST_AUDIT)
    fresh = stack.wait_condition("watched", "Fresh", "False", reason="MissedSlots")
    assert "the latest 3 slots did not succeed" in fresh["message"]
    wait(
        lambda: (
            metric(port, "qstash_operator_fresh", namespace=stack.namespace, name="watched") == 0.0
            and "qstash_operator_fresh{" in http_get(f"http://127.0.0.1:{port}/metrics")[1]
        ),
        timeout=30,  # audits wait out domain.quiet's 14 s around a minute
        what="the qstash_operator_fresh gauge",
    )
    table = stack.plane.kubectl("get", "qcwf", "watched", "-n", stack.namespace).stdout
    assert "FRESH" in table.splitlines()[0]


def test_the_cronjob_backends_runs_are_in_the_ledger_after_the_operator_was_down(
    stack: Stack,
) -> None:
    # The real CronJob controller runs a tick while the operator is down; the operator, back,
    # builds the slot from the Job the controller made (same labels, its scheduled-timestamp).
    operator, _ = stack.operator(qstash=False, extra_env=FAST_AUDIT)
    stack.apply(cronworkflow("native", {"schedule": "* * * * *", "catchUp": {"policy": "None"}}))
    stack.wait_condition("native", "Ready", "True")
    operator.stop()
    wait(
        lambda: bool(stack.list("jobs", "qstash-operator.dev/cronworkflow=native")),
        timeout=75,
        what="the CronJob controller's first Job",
    )
    [job] = stack.list("jobs", "qstash-operator.dev/cronworkflow=native")
    stack.operator(qstash=False, extra_env=FAST_AUDIT)

    def entry() -> dict[str, Any] | None:
        body = stack.get("cronworkflow", "native") or {}
        for item in (body.get("status") or {}).get("recentSlots") or []:
            if item.get("job") == job["metadata"]["name"] and item["fate"] == "Succeeded":
                return dict(item)
        return None

    wait(lambda: entry() is not None, timeout=30, what="the CronJob's run in the ledger")
    slot = entry()
    assert slot is not None
    assert slot["backend"] == "CronJob"
    assert slot["reason"] == "JobComplete"
    tick = datetime.fromisoformat(slot["time"].replace("Z", "+00:00"))
    assert job["metadata"]["name"] == f"native-{int(tick.timestamp()) // 60}"
    assert 0 <= slot["delaySeconds"] < 30


# -- QStash's side of an outage, on the QStash-compatible server's driven clock ----------------
#
# The server's clock starts five minutes back (``BEHIND``), so the ticks of those minutes are
# fired at once by moving it forward. A first attempt is booked to the tick its arrival falls in
# (the wall clock's, so the current minute's); a retry to the tick its message was made for
# (QStash's ``createdAt``, asked through GET /v2/messages). So each past tick gets its own Job by
# refusing its first attempt (``destinationDown``) and letting the retry through.

WAITING_AUDIT = {
    "QSTASH_OPERATOR_SLOT_AUDIT_SECONDS": "1",
    # longer than the test: no tick of the driven clock's minutes is judged missed meanwhile
    "QSTASH_OPERATOR_MISSED_GRACE_SECONDS": "600",
}


def failing_job_template() -> dict[str, Any]:
    """The default Job, whose pod fails on the fake node (kwok's ``outcome`` knob)."""
    template: dict[str, Any] = cronworkflow("template")["spec"]["jobTemplate"]
    template["spec"]["template"]["metadata"] = {
        "annotations": {"kwok.qstash-operator.dev/outcome": "Failed"}
    }
    return template


def schedule_id(stack: Stack, name: str) -> str:
    return f"{stack.cluster_name}.{stack.namespace}.{name}"


def fire_refused(stack: Stack, name: str, *, through: datetime) -> list[str]:
    """Fire the ticks up to ``through`` while the webhook is unreachable; each message's first
    attempt is refused. Returns the messages made for ``name``."""
    stack.qstash.destination_down()
    made = [
        tick["messageId"]
        for tick in stack.qstash.set_time(through)
        if tick["scheduleId"] == schedule_id(stack, name)
    ]
    for message_id in made:
        stack.qstash.wait_for_deliveries(1, message_id=message_id)
    return made


def slot_audits(port: int) -> float:
    _, text = http_get(f"http://127.0.0.1:{port}/metrics")
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("qstash_operator_slot_audits_total{")
    )


@pytest.mark.parametrize("qstash", [BEHIND], indirect=True)
def test_freshness_turns_false_at_the_third_failed_job_of_missed_slots_3(stack: Stack) -> None:
    started = time.monotonic()
    _, port = stack.operator(extra_env=WAITING_AUDIT)
    stack.webhook()
    stack.apply(
        cronworkflow(
            "failing",
            {
                "schedule": "* * * * *",
                "catchUp": {"policy": "None"},
                "freshness": {"missedSlots": 3},
                "qstash": {"retries": 3, "retryDelay": "150000"},
                "jobTemplate": failing_job_template(),
            },
        )
    )
    stack.wait_condition("failing", "Ready", "True")
    stack.wait_condition("failing", "Fresh", "True", reason="Fresh")  # nothing ran yet
    backdate_schedules(stack, ["failing"], minutes=6)  # the driven clock's ticks are owed
    stack.qstash.set_settings(backoff_factor=BACKOFF_FACTOR)
    first = stack.qstash.now().replace(second=0, microsecond=0) + MINUTE
    ticks = [first + n * MINUTE for n in range(3)]

    def failed() -> list[str]:
        return [moment for moment, fate in ledger(stack, "failing") if fate == "Failed"]

    # Two slots fail: one short of the objective, still fresh.
    assert len(fire_refused(stack, "failing", through=ticks[1] + timedelta(seconds=1))) == 2
    stack.qstash.destination_up()
    wait(lambda: len(failed()) == 2, timeout=60, what="two failed Jobs in the ledger")
    passes = slot_audits(port)
    wait(lambda: slot_audits(port) >= passes + 2, timeout=30, what="two audits of the failures")
    fresh = stack.condition("failing", "Fresh")
    assert fresh is not None
    assert (fresh["status"], fresh["reason"]) == ("True", "Fresh"), fresh

    # The third fails: the latest 3 slots did not succeed.
    assert len(fire_refused(stack, "failing", through=ticks[2] + timedelta(seconds=1))) == 1
    stack.qstash.destination_up()
    stale = stack.wait_condition("failing", "Fresh", "False", reason="MissedSlots", timeout=60)
    assert "the latest 3 slots did not succeed" in stale["message"]
    assert stale["message"].count("Failed/") == 3, stale["message"]
    assert failed() == [stamp(t) for t in reversed(ticks)]  # no slot judged missed: Jobs only
    entries = (stack.get("cronworkflow", "failing") or {})["status"]["recentSlots"]
    # each its own Job (the ledger keeps them once failedJobsHistoryLimit has pruned the Jobs)
    assert [e.get("job") for e in entries] == [
        f"failing-{int(t.timestamp()) // 60}" for t in reversed(ticks)
    ]
    wait(
        lambda: (
            metric(port, "qstash_operator_fresh", namespace=stack.namespace, name="failing") == 0.0
            and "qstash_operator_fresh{" in http_get(f"http://127.0.0.1:{port}/metrics")[1]
        ),
        timeout=30,  # audits wait out domain.quiet's 14 s around a minute
        what="the qstash_operator_fresh gauge at 0",
    )
    assert time.monotonic() - started < 180


@pytest.mark.parametrize("qstash", [BEHIND], indirect=True)
def test_slots_qstash_gave_up_on_are_missed_and_the_latest_max_runs_are_caught_up(
    stack: Stack,
) -> None:
    # The webhook is up but unreachable for five ticks; QStash retries once, then gives up (its
    # DLQ). While the grace runs, nothing is judged; once it has passed (the operator back with
    # a 5 s grace), the five slots read Missed and catchUp All/3 runs the latest three.
    started = time.monotonic()
    first = stack.qstash.now().replace(second=0, microsecond=0) + MINUTE
    ticks = [first + n * MINUTE for n in range(5)]
    schedule = ",".join(str(m) for m in sorted({t.minute for t in ticks})) + " * * * *"
    operator, _ = stack.operator(extra_env=WAITING_AUDIT)
    stack.webhook()
    stack.apply(
        cronworkflow(
            "gave-up",
            {
                "schedule": schedule,
                "catchUp": {"policy": "All", "maxRuns": 3},
                "qstash": {"retries": 1, "retryDelay": "1000"},
            },
        )
    )
    stack.wait_condition("gave-up", "Ready", "True")
    set_status(stack, "gave-up", {"scheduleSince": stamp(ticks[0] - timedelta(seconds=30))})
    stack.qstash.set_settings(backoff_factor=BACKOFF_FACTOR)

    made = fire_refused(stack, "gave-up", through=ticks[-1] + timedelta(seconds=1))
    assert len(made) == 5
    client = QStash(stack.qstash.token, base_url=stack.qstash.url, retry=False)

    def dead() -> set[str]:
        listed = client.dlq.list(filter={"schedule_id": schedule_id(stack, "gave-up")})
        return {message.message_id for message in listed.messages}

    wait(lambda: dead() == set(made), timeout=30, what="QStash to give up on the five ticks")
    attempts = stack.qstash.deliveries(schedule_id=schedule_id(stack, "gave-up"))
    assert len(attempts) == 10  # a first attempt and one retry each
    assert {a["status"] for a in attempts} == {None}  # all refused
    stack.qstash.destination_up()
    assert ledger(stack, "gave-up") == []  # within the grace: nothing judged, nothing ran
    assert scheduled_times(stack, "gave-up") == []

    operator.stop()
    _, port = stack.operator(extra_env=FAST_AUDIT)  # the grace has passed

    def caught_up() -> int:
        return sum(fate == "CaughtUp" for _, fate in ledger(stack, "gave-up"))

    wait(lambda: caught_up() == 3, timeout=30, what="three slots caught up")
    assert ledger(stack, "gave-up") == [(stamp(t), "CaughtUp") for t in ticks[:1:-1]] + [
        (stamp(t), "Missed") for t in ticks[1::-1]
    ]
    jobs = sorted(
        stack.list("jobs", f"{vocabulary.LABEL_CRONWORKFLOW}=gave-up"),
        key=lambda j: j["metadata"]["creationTimestamp"] + j["metadata"]["name"],
    )
    assert [j["metadata"]["annotations"][vocabulary.ANNOTATION_SCHEDULED_TIME] for j in jobs] == [
        stamp(t) for t in ticks[2:]
    ]  # oldest first, each under its own slot
    missed = [e for e in stack.events("gave-up") if e["reason"] == "MissedSchedule"]
    assert len(missed) == 5
    assert metric(port, "qstash_operator_slots_total", outcome="Missed", reason="NoRun") == 5
    wait(
        lambda: all(fate != "Running" for _, fate in ledger(stack, "gave-up")),
        timeout=30,
        what="the catch-up Jobs to finish",
    )
    assert len(scheduled_times(stack, "gave-up")) == 3  # no further pass reaches back
    # QStash delivered nothing more: the messages stay in its DLQ.
    assert len(stack.qstash.deliveries(schedule_id=schedule_id(stack, "gave-up"))) == 10
    assert dead() == set(made)
    assert time.monotonic() - started < 180
