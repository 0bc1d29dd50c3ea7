"""The audit's decision for one CronWorkflow (``domain.audit.plan_audit``), with named instants."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from qstash_operator.domain import audit, slots
from tests.unit.domain.factories import cronworkflow
from tests.unit.instants import TOP_OF_THE_HOUR

GRACE = timedelta(seconds=90)
SINCE = slots.rfc3339(TOP_OF_THE_HOUR)


def plan(spec: dict[str, Any], status: dict[str, Any], minutes: float) -> audit.AuditPlan:
    cw = cronworkflow({"schedule": "* * * * *", **spec})
    now = TOP_OF_THE_HOUR + timedelta(minutes=minutes)
    return audit.plan_audit(cw, {"scheduleSince": SINCE, **status}, [], now=now, grace=GRACE)


def test_nothing_changed_nothing_written() -> None:
    first = plan({}, {}, 3)
    assert [e["fate"] for e in first.patch["recentSlots"]] == ["Missed", "Missed"]
    again = plan({}, {"recentSlots": first.patch["recentSlots"]}, 3.2)
    assert again.patch == {}


def test_an_empty_ledger_is_not_written_as_an_empty_list() -> None:
    assert plan({}, {}, 0.5).patch == {}


def test_suspended_nothing_is_caught_up() -> None:
    assert plan({"suspend": True, "catchUp": {"policy": "All"}}, {}, 5).catch_up == []
    assert len(plan({"catchUp": {"policy": "All"}}, {}, 5).catch_up) == 4


def test_the_fresh_condition_is_written_when_it_changes_and_dropped_with_its_objective() -> None:
    stale = plan({"freshness": {"maxAge": "2m"}}, {}, 3)
    [condition] = stale.patch["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Fresh",
        "False",
        "Stale",
    )
    steady = plan(
        {"freshness": {"maxAge": "2m"}},
        {"recentSlots": stale.patch["recentSlots"], "conditions": stale.patch["conditions"]},
        3.2,
    )
    assert "conditions" not in steady.patch  # the message is stable: no write every pass
    dropped = plan(
        {},
        {"recentSlots": stale.patch["recentSlots"], "conditions": stale.patch["conditions"]},
        3.2,
    )
    assert dropped.patch == {"conditions": []}
