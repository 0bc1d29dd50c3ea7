"""Every slot accounted for, end to end: missed slots, catch-up and freshness on the real control
plane, with the operator as a child process through the CLI.

The outage: the operator is stopped and nothing delivers (the webhook is not running and the
QStash-compatible server's clock is driven, so nothing fires). Rather than wait five real
minutes, the CronWorkflow's ``status.scheduleSince`` is moved back before five ticks that lie in
the past: the state a five-tick outage of the operator and the webhook leaves behind (no Job, no
delivery, no record). The schedule names exactly those five minutes, so no further tick falls
due while the test runs and the counts are exact whatever the wall clock says.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from qstash_devstack.stack import Stack, cronworkflow, http_get, wait

FAST_AUDIT = {
    "QSTASH_OPERATOR_SLOT_AUDIT_SECONDS": "1",
    "QSTASH_OPERATOR_MISSED_GRACE_SECONDS": "5",
}
GRACE = timedelta(seconds=5)


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
        timeout=15,
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
