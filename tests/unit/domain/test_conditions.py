"""Conditions keep lastTransitionTime until their status changes."""

from __future__ import annotations

from datetime import timedelta

from qstash_operator.domain import conditions
from qstash_operator.domain.conditions import Condition
from tests.unit.instants import TOP_OF_THE_HOUR

LATER = TOP_OF_THE_HOUR + timedelta(minutes=5)


def test_transition_time_moves_only_with_status() -> None:
    first = conditions.merge(
        None, [Condition("Ready", True, "Ready", "ok")], now=TOP_OF_THE_HOUR, generation=1
    )
    same = conditions.merge(
        first, [Condition("Ready", True, "Ready", "still ok")], now=LATER, generation=2
    )
    flipped = conditions.merge(
        same, [Condition("Ready", False, "QStashUnavailable", "down")], now=LATER, generation=2
    )
    assert first[0]["lastTransitionTime"] == "2026-06-01T10:00:00Z"
    assert same[0]["lastTransitionTime"] == "2026-06-01T10:00:00Z"
    assert same[0]["message"] == "still ok"
    assert same[0]["observedGeneration"] == 2
    assert flipped[0]["lastTransitionTime"] == "2026-06-01T10:05:00Z"
    assert flipped[0]["status"] == "False"


def test_order_is_stable_and_untouched_conditions_survive() -> None:
    start = conditions.merge(
        None,
        [
            Condition("SpecValid", True, "SpecValid", ""),
            Condition("ScheduleSynced", None, "Pending", ""),
        ],
        now=TOP_OF_THE_HOUR,
        generation=1,
    )
    after = conditions.merge(
        start, [Condition("Ready", True, "Ready", "")], now=LATER, generation=1
    )
    assert [c["type"] for c in after] == ["Ready", "ScheduleSynced", "SpecValid"]
    assert [c["type"] for c in start] == ["ScheduleSynced", "SpecValid"]
    assert conditions.find(after, "ScheduleSynced") == start[0]
    assert start[0]["status"] == "Unknown"
