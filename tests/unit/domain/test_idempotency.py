"""Idempotency keys: which values are keys, and what makes two requests the same request."""

from __future__ import annotations

import pytest

from qstash_operator.domain import idempotency


@pytest.mark.parametrize(
    ("value", "usable"),
    [
        pytest.param("0b6a8c1e-3f5d-4c2a-9e7b-1d2c3b4a5f60", True, id="a UUID"),
        pytest.param("01JD7X2Q9Z8K3M5N7P9R1T3V5X", True, id="a ULID"),
        pytest.param("x" * idempotency.MAX_KEY_LENGTH, True, id="at the length limit"),
        pytest.param("x" * (idempotency.MAX_KEY_LENGTH + 1), False, id="one past it"),
        pytest.param("", False, id="empty"),
        pytest.param("two words", False, id="a space"),
        pytest.param("caf\u00e9", False, id="not ASCII"),
        pytest.param("line\nbreak", False, id="a control character"),
    ],
)
def test_which_values_are_keys(value: str, usable: bool) -> None:
    problem = idempotency.key_problem(value)
    assert (problem is None) is usable
    if problem is not None:
        assert idempotency.HEADER in problem


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        pytest.param('"abc"', "abc", id="a structured-field string"),
        pytest.param("abc", "abc", id="plain"),
        pytest.param('"', '"', id="a lone quote is left as it is"),
    ],
)
def test_a_quoted_key_is_the_same_key(raw: str, key: str) -> None:
    assert idempotency.unquote(raw) == key


def fingerprint(**changes: object) -> str:
    values: dict[str, object] = {
        "key": "k1",
        "workflow": "default/report",
        "parameters": [("workflowId", "default/report"), ("action", "trigger")],
        "body": b"",
    }
    values.update(changes)
    return idempotency.fingerprint(**values)  # type: ignore[arg-type]


def test_the_same_request_has_one_fingerprint_whatever_the_parameter_order() -> None:
    reordered = [("action", "trigger"), ("workflowId", "default/report")]
    assert fingerprint() == fingerprint(parameters=reordered)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"key": "k2"}, id="another key"),
        pytest.param({"workflow": "default/other"}, id="another CronWorkflow"),
        pytest.param({"body": b'{"note": "x"}'}, id="a body"),
        pytest.param(
            {"parameters": [("workflowId", "default/report"), ("action", "trigger"), ("a", "b")]},
            id="another parameter",
        ),
    ],
)
def test_any_other_part_makes_another_request(change: dict[str, object]) -> None:
    assert fingerprint(**change) != fingerprint()


def test_callers_do_not_share_keys() -> None:
    assert idempotency.seed("alice", "k1") != idempotency.seed("bob", "k1")
