"""Retry waits: QStash's default backoff, the retry-delay expression language, Retry-After."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qstash_server import backoff
from tests.unit.instants import TOP_OF_THE_HOUR

DAY = 86_400.0


@pytest.mark.parametrize(
    ("failed_attempts", "seconds"),
    [
        pytest.param(1, math.exp(2.5), id="first retry ~12 s"),
        pytest.param(2, math.exp(5.0), id="second ~2.5 min"),
        pytest.param(3, math.exp(7.5), id="third ~30 min"),
        pytest.param(4, math.exp(10.0), id="fourth ~6 h"),
        pytest.param(5, DAY, id="fifth capped at a day"),
        pytest.param(500, DAY, id="far beyond: still a day, no overflow"),
    ],
)
def test_default_backoff_follows_qstash_formula(failed_attempts: int, seconds: float) -> None:
    assert backoff.default_backoff(failed_attempts) == pytest.approx(seconds)


def test_default_backoff_needs_a_failure() -> None:
    with pytest.raises(ValueError, match="at least one failed attempt"):
        backoff.default_backoff(0)


@pytest.mark.parametrize(
    ("expression", "retried", "milliseconds"),
    [
        pytest.param("1000", 0, 1000.0, id="constant"),
        pytest.param("1000 * (1 + retried)", 2, 3000.0, id="linear"),
        pytest.param("pow(2, retried) * 1000", 3, 8000.0, id="pow"),
        pytest.param("max(10, pow(2, retried))", 0, 10.0, id="max picks the floor"),
        pytest.param("max(10, pow(2, retried))", 5, 32.0, id="max picks pow"),
        pytest.param("min(5000, 100 * retried)", 100, 5000.0, id="min caps"),
        pytest.param("sqrt(16) + abs(-2)", 0, 6.0, id="sqrt and abs"),
        pytest.param("floor(2.7) + ceil(2.1)", 0, 5.0, id="floor and ceil"),
        pytest.param("round(2.5)", 0, 3.0, id="round half away from zero (Go)"),
        pytest.param("round(-2.5) + 10", 0, 7.0, id="negative half rounds away"),
        pytest.param("exp(0) * 1000", 0, 1000.0, id="exp"),
        pytest.param("-5", 0, 0.0, id="negative clamps to zero"),
        pytest.param("1 / 0", 0, DAY * 1000, id="division by zero is infinite, capped"),
        pytest.param("pow(10, 400)", 0, DAY * 1000, id="overflow capped at a day"),
        pytest.param("exp(1e6)", 0, DAY * 1000, id="exp overflow capped"),
        pytest.param("1e3 / 4", 0, 250.0, id="scientific literal"),
        pytest.param("  retried  ", 7, 7.0, id="surrounding spaces"),
        pytest.param("(" * 150 + "1" + ")" * 150, 0, 1.0, id="deep but legal nesting"),
    ],
)
def test_expression_values(expression: str, retried: int, milliseconds: float) -> None:
    parsed = backoff.parse_retry_delay(expression)
    assert parsed.milliseconds(retried) == pytest.approx(milliseconds)


@pytest.mark.parametrize(
    "expression",
    [
        pytest.param("", id="empty"),
        pytest.param("__import__('os').system('true')", id="import call"),
        pytest.param("retried.__class__", id="attribute"),
        pytest.param("2 ** 10", id="python power operator"),
        pytest.param("7 // 2", id="floor division"),
        pytest.param("7 % 2", id="modulo"),
        pytest.param("retried > 1", id="comparison"),
        pytest.param("x + 1", id="unknown variable"),
        pytest.param("log(10)", id="unknown function"),
        pytest.param("pow(2)", id="too few arguments"),
        pytest.param("sqrt(1, 2)", id="too many arguments"),
        pytest.param("max(*[1, 2])", id="starred argument"),
        pytest.param("round(2.5, ndigits=0)", id="keyword argument"),
        pytest.param("[1][0]", id="subscript"),
        pytest.param("'1000'", id="string literal"),
        pytest.param("True", id="boolean literal"),
        pytest.param("1j", id="complex literal"),
        pytest.param("lambda: 1", id="lambda"),
        pytest.param("1000 if retried else 0", id="conditional"),
        pytest.param("(1000", id="unbalanced"),
        pytest.param("1if 2 else 3", id="only a SyntaxWarning in Python"),
        pytest.param("1" * 600, id="too long"),
        pytest.param("(" * 250 + "1" + ")" * 250, id="nesting beyond the parser's limit"),
    ],
)
def test_expression_refused(expression: str) -> None:
    with pytest.raises(backoff.ExpressionError):
        backoff.parse_retry_delay(expression)


@pytest.mark.parametrize(
    "expression",
    [pytest.param("0 / 0", id="zero over zero"), pytest.param("sqrt(-1)", id="sqrt of negative")],
)
def test_expression_without_a_number_is_an_error_at_evaluation(expression: str) -> None:
    parsed = backoff.parse_retry_delay(expression)
    with pytest.raises(backoff.ExpressionError, match="not a number"):
        parsed.milliseconds(0)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789retiedpowsqrabxflcingmu.()+-*/, _'\"[]", max_size=60))
def test_arbitrary_text_parses_or_fails_cleanly(text: str) -> None:
    """The evaluator's only failure is ExpressionError, and results are always in range."""
    try:
        parsed = backoff.parse_retry_delay(text)
    except backoff.ExpressionError:
        return
    for retried in (0, 1, 5, 50):
        try:
            value = parsed.milliseconds(retried)
        except backoff.ExpressionError:
            continue
        assert 0.0 <= value <= DAY * 1000


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param("0", 0.0, id="zero: retry at once"),
        pytest.param("120", 120.0, id="seconds"),
        pytest.param("1.5", 1.5, id="fractional seconds"),
        pytest.param("6m5s", 365.0, id="go duration"),
        pytest.param("250ms", 0.25, id="go milliseconds"),
        pytest.param("1h", 3600.0, id="go hours"),
        pytest.param("Mon, 01 Jun 2026 10:02:00 GMT", 120.0, id="http date two minutes ahead"),
        pytest.param("Mon, 01 Jun 2026 09:00:00 GMT", 0.0, id="http date in the past"),
        pytest.param("86401", None, id="above a day: ignored"),
        pytest.param("2d", None, id="not a go unit"),
        pytest.param("-5", None, id="negative"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("nan", None, id="nan"),
        pytest.param("inf", None, id="infinity"),
    ],
)
def test_server_wait_formats(value: str, seconds: float | None) -> None:
    assert backoff.parse_server_wait(value, now=TOP_OF_THE_HOUR) == seconds


@pytest.mark.parametrize(
    ("headers", "expression", "failed_attempts", "seconds"),
    [
        pytest.param({}, None, 1, math.exp(2.5), id="default"),
        pytest.param({}, "500 * retried", 3, 1.0, id="expression, retried counts from 0"),
        pytest.param({"retry-after": "7"}, "1000", 1, 7.0, id="Retry-After beats expression"),
        pytest.param({"X-RateLimit-Reset": "3"}, None, 2, 3.0, id="rate-limit reset header"),
        pytest.param({"Retry-After": "999999"}, None, 1, math.exp(2.5), id="too long: default"),
        pytest.param({}, "0/0", 1, math.exp(2.5), id="NaN expression: default"),
    ],
)
def test_retry_wait_precedence(
    headers: dict[str, str], expression: str | None, failed_attempts: int, seconds: float
) -> None:
    parsed = backoff.parse_retry_delay(expression) if expression else None
    wait = backoff.retry_wait(
        failed_attempts=failed_attempts,
        expression=parsed,
        response_headers=headers,
        now=TOP_OF_THE_HOUR,
    )
    assert wait == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("1h2m3.5s", 3723.5, id="combined"),
        pytest.param("-1s", -1.0, id="negative"),
        pytest.param("0", 0.0, id="bare zero"),
        pytest.param("5µs", 5e-6, id="micro sign"),
        pytest.param("1", None, id="bare number"),
        pytest.param("1s2", None, id="trailing digits"),
        pytest.param("", None, id="empty"),
    ],
)
def test_go_duration(text: str, seconds: float | None) -> None:
    result = backoff.parse_go_duration(text)
    if seconds is None:
        assert result is None
    else:
        assert result == pytest.approx(seconds)


def test_http_date_is_relative_to_now() -> None:
    later = TOP_OF_THE_HOUR + timedelta(minutes=1)
    assert backoff.parse_server_wait("Mon, 01 Jun 2026 10:02:00 GMT", now=later) == 60.0
