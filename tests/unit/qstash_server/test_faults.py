"""Fault budgets and the 429 header families the SDK reads."""

from __future__ import annotations

from typing import Any

import pytest

from qstash_server.faults import ApiCalls, FaultError, Faults
from tests.unit.instants import TOP_OF_THE_HOUR


def test_api_errors_run_out_after_count() -> None:
    faults = Faults()
    faults.configure({"apiErrors": {"count": 2, "status": 503}})
    answers = [faults.take_api_fault("schedules.get", now=TOP_OF_THE_HOUR) for _ in range(3)]
    assert [a.status if a else None for a in answers] == [503, 503, None]


def test_an_api_error_may_be_a_refusal() -> None:
    faults = Faults()
    faults.configure({"apiErrors": {"count": 1, "status": 400}})
    answer = faults.take_api_fault("schedules.list", now=TOP_OF_THE_HOUR)
    assert answer is not None
    assert (answer.status, answer.message) == (400, "bad request (injected)")


def test_route_filter() -> None:
    faults = Faults()
    faults.configure({"apiErrors": {"count": 1, "routes": ["schedules.create"]}})
    assert faults.take_api_fault("schedules.get", now=TOP_OF_THE_HOUR) is None
    answer = faults.take_api_fault("schedules.create", now=TOP_OF_THE_HOUR)
    assert answer is not None
    assert answer.status == 500


def test_daily_rate_limit_headers() -> None:
    faults = Faults()
    faults.configure({"rateLimit": {"count": 1, "family": "daily"}})
    answer = faults.take_api_fault("publish", now=TOP_OF_THE_HOUR)
    assert answer is not None
    assert (answer.status, dict(answer.headers)) == (
        429,
        {
            "RateLimit-Limit": "1000",
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(int(TOP_OF_THE_HOUR.replace(hour=0).timestamp()) + 86_400),
        },
    )


def test_burst_rate_limit_headers() -> None:
    faults = Faults()
    faults.configure({"rateLimit": {"count": None, "family": "burst", "limit": 7}})
    answer = faults.take_api_fault("schedules.list", now=TOP_OF_THE_HOUR)
    assert answer is not None
    assert dict(answer.headers) == {
        "Burst-RateLimit-Limit": "7",
        "Burst-RateLimit-Remaining": "0",
        "Burst-RateLimit-Reset": str(int(TOP_OF_THE_HOUR.timestamp()) + 1),
    }
    assert faults.take_api_fault("schedules.list", now=TOP_OF_THE_HOUR) is not None  # unlimited


def test_rate_limit_wins_over_errors() -> None:
    faults = Faults()
    faults.configure({"apiErrors": {"count": 1}, "rateLimit": {"count": 1}})
    statuses = [faults.take_api_fault("x", now=TOP_OF_THE_HOUR) for _ in range(3)]
    assert [s.status if s else None for s in statuses] == [429, 500, None]


def test_delivery_fault_budgets() -> None:
    faults = Faults()
    faults.configure(
        {
            "duplicateDelivery": {"count": 1},
            "deliveryLatency": {"seconds": 0.5, "count": 2},
            "dropResponse": {"count": None},
        }
    )
    assert [faults.take_duplicate() for _ in range(2)] == [True, False]
    assert [faults.take_latency() for _ in range(3)] == [0.5, 0.5, 0.0]
    assert all(faults.take_drop() for _ in range(5))
    faults.configure({"dropResponse": None})
    assert not faults.take_drop()


def test_to_json_and_clear() -> None:
    faults = Faults()
    faults.configure(
        {"apiErrors": {"count": 2, "routes": ["b", "a"]}, "dropResponse": {"count": 1}}
    )
    assert faults.to_json() == {
        "apiErrors": {
            "status": 500,
            "count": 2,
            "routes": ["a", "b"],
            "family": None,
            "limit": None,
        },
        "rateLimit": None,
        "duplicateDelivery": None,
        "deliveryLatency": None,
        "dropResponse": {"count": 1},
        "destinationDown": None,
    }
    faults.clear()
    assert set(faults.to_json().values()) == {None}


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"nonsense": {}}, id="unknown fault"),
        pytest.param({"apiErrors": {"status": 404}}, id="neither 400 nor 5xx"),
        pytest.param({"apiErrors": {"count": 0}}, id="zero count"),
        pytest.param({"rateLimit": {"family": "hourly"}}, id="unknown family"),
        pytest.param({"deliveryLatency": {"seconds": -1}}, id="negative latency"),
        pytest.param({"dropResponse": 3}, id="not an object"),
        pytest.param({"apiErrors": {"routes": "schedules.get"}}, id="routes not a list"),
    ],
)
def test_bad_fault_specs(spec: dict[str, Any]) -> None:
    with pytest.raises(FaultError):
        Faults().configure(spec)


def test_api_calls_count_by_route() -> None:
    calls = ApiCalls(limit=2)
    for route in ("a", "b", "a"):
        calls.record(route=route, method="GET", path="/p", at_ms=1)
    data = calls.to_json()
    assert (data["counts"], data["total"], len(data["calls"])) == ({"a": 2, "b": 1}, 3, 2)
