"""``GET /api/cron`` and ``qstash-operator list`` show the Fresh verdict of spec.freshness."""

from __future__ import annotations

from typing import Any

import pytest

from qstash_operator.entrypoints.tools_main import format_list
from qstash_operator.services.catalog import summarize
from qstash_webhook.api import summary_json
from tests.unit.domain.factories import body
from tests.unit.instants import TOP_OF_THE_HOUR

STALE = {
    "type": "Fresh",
    "status": "False",
    "reason": "Stale",
    "message": "no success since 2026-06-01T09:00:00Z, longer ago than freshness.maxAge 30m",
}


@pytest.mark.parametrize(
    ("spec", "conditions", "expected"),
    [
        ({}, [], None),
        (
            {"freshness": {"maxAge": "30m"}},
            [STALE],
            {"status": "False", "reason": "Stale", "message": STALE["message"]},
        ),
        (
            {"freshness": {"maxAge": "30m"}},
            [],
            {
                "status": "Unknown",
                "reason": "",
                "message": "the operator has not reported yet",
            },
        ),
    ],
    ids=["no objective: no verdict", "stale", "not judged yet"],
)
def test_the_api_shows_freshness(
    spec: dict[str, Any], conditions: list[dict[str, Any]], expected: dict[str, str] | None
) -> None:
    summary = summarize(body(spec, status={"conditions": conditions}), now=TOP_OF_THE_HOUR)
    assert summary_json(summary)["fresh"] == expected


def test_the_list_has_a_fresh_column() -> None:
    items = [
        summary_json(
            summarize(
                body({"freshness": {"maxAge": "30m"}}, status={"conditions": [STALE]}),
                now=TOP_OF_THE_HOUR,
            )
        ),
        summary_json(summarize(body({}, name="plain"), now=TOP_OF_THE_HOUR)),
    ]
    header, stale, plain = format_list(items)
    assert header.split()[-1] == "FRESH"
    assert stale.split()[-1] == "False"
    assert plain.split()[-1] == "-"
