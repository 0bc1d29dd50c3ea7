"""How long the server waits before retrying a failed delivery. Pure: no clock, no I/O.

Three sources decide the wait, in this order (wire reference section 3.2):

1. the destination itself, through ``Retry-After`` or one of the ``X-RateLimit-Reset*`` headers
   on its failing response (seconds, an HTTP date, or a Go duration such as ``6m5s``); a value of
   more than a day is ignored, as QStash ignores it;
2. the schedule's or message's ``Upstash-Retry-Delay`` expression, in milliseconds, with the
   variable ``retried`` counting the retries already made (0 before the first retry);
3. QStash's default exponential backoff, ``min(1 day, e^(2.5 n))`` seconds after the n-th failed
   attempt: about 12 s, 2.5 min, 30 min, 6 h, then a day.

The expression language is QStash's small maths dialect: numbers, ``retried``, ``+ - * /``,
parentheses and the functions ``pow sqrt abs exp floor ceil round min max``. It is evaluated with
a whitelist over Python's ``ast`` (never ``eval``): any other node (names, attributes, ``**``,
comparisons, keywords, subscripts...) is refused when the schedule is created, so the server cannot
be made to run code. Results that overflow become infinite and are capped at a day like the
default; results that are not numbers (``0/0``, ``sqrt(-1)``) make the caller fall back to the
default backoff.
"""

from __future__ import annotations

import ast
import dataclasses
import email.utils
import math
import re
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Final

MAX_BACKOFF_SECONDS: Final = 86_400.0
"""QStash caps its default backoff at one day, and ignores server-directed waits above it."""
BACKOFF_EXPONENT: Final = 2.5
"""The current retry page's exponent (an older revision of the docs said 2)."""
MAX_EXPRESSION_LENGTH: Final = 512
"""Genuine expressions are a few dozen characters; a bound keeps hostile input cheap to reject."""

SERVER_DIRECTED_HEADERS: Final = (
    "Retry-After",
    "X-RateLimit-Reset",
    "X-RateLimit-Reset-Requests",
    "X-RateLimit-Reset-Tokens",
)


class ExpressionError(ValueError):
    """A retry-delay expression outside QStash's language, or one that yields no number."""


def default_backoff(failed_attempts: int) -> float:
    """Seconds to wait after ``failed_attempts`` attempts have failed (1 after the first)."""
    if failed_attempts < 1:
        raise ValueError("the default backoff is defined after at least one failed attempt")
    exponent = BACKOFF_EXPONENT * failed_attempts
    # e^x passes a day at x ~ 11.4; skip math.exp for large x instead of catching OverflowError.
    if exponent > math.log(MAX_BACKOFF_SECONDS):
        return MAX_BACKOFF_SECONDS
    return math.exp(exponent)


# -- the retry-delay expression ---------------------------------------------------------------


def _round_half_away(value: float) -> float:
    """Round like Go's ``math.Round`` (2.5 -> 3, -2.5 -> -3), not Python's banker's rounding."""
    return math.copysign(math.floor(abs(value) + 0.5), value)


def _pow(base: float, exponent: float) -> float:
    try:
        return math.pow(base, exponent)
    except OverflowError:
        return math.inf
    except ValueError:  # a negative base with a fractional exponent
        return math.nan


def _exp(value: float) -> float:
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf


def _sqrt(value: float) -> float:
    return math.sqrt(value) if value >= 0 else math.nan


def _floor(value: float) -> float:
    return float(math.floor(value)) if math.isfinite(value) else value


def _ceil(value: float) -> float:
    return float(math.ceil(value)) if math.isfinite(value) else value


def _round(value: float) -> float:
    return _round_half_away(value) if math.isfinite(value) else value


@dataclasses.dataclass(frozen=True)
class _Function:
    call: Callable[..., float]
    min_args: int
    max_args: int | None  # None: variadic


_FUNCTIONS: Final[Mapping[str, _Function]] = {
    "pow": _Function(_pow, 2, 2),
    "sqrt": _Function(_sqrt, 1, 1),
    "abs": _Function(abs, 1, 1),
    "exp": _Function(_exp, 1, 1),
    "floor": _Function(_floor, 1, 1),
    "ceil": _Function(_ceil, 1, 1),
    "round": _Function(_round, 1, 1),
    "min": _Function(min, 1, None),
    "max": _Function(max, 1, None),
}
VARIABLE: Final = "retried"

_BINARY: Final[Mapping[type[ast.operator], Callable[[float, float], float]]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b if b != 0 else (math.nan if a == 0 else math.copysign(math.inf, a)),
}


def _check(node: ast.AST) -> None:
    """Refuse every node outside the language; called once, when the expression is parsed."""
    if isinstance(node, ast.Expression):
        _check(node.body)
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ExpressionError(f"unsupported literal {node.value!r}")
    elif isinstance(node, ast.Name):
        if node.id != VARIABLE:
            raise ExpressionError(f"unknown variable {node.id!r}; only {VARIABLE!r} exists")
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.UAdd | ast.USub):
            raise ExpressionError("unsupported unary operator")
        _check(node.operand)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise ExpressionError("unsupported operator; use + - * / and pow()")
        _check(node.left)
        _check(node.right)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            raise ExpressionError(
                "unknown function; use one of " + ", ".join(sorted(_FUNCTIONS)),
            )
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise ExpressionError(f"{node.func.id}() takes plain arguments only")
        spec = _FUNCTIONS[node.func.id]
        count = len(node.args)
        if count < spec.min_args or (spec.max_args is not None and count > spec.max_args):
            raise ExpressionError(f"{node.func.id}() got {count} arguments")
        for arg in node.args:
            _check(arg)
    else:
        raise ExpressionError(f"unsupported syntax ({type(node).__name__})")


def _evaluate(node: ast.AST, retried: float) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, retried)
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, int | float):  # refused by _check; narrows the type
            raise ExpressionError(f"unsupported literal {node.value!r}")
        try:
            return float(node.value)
        except OverflowError:  # an integer literal with hundreds of digits
            return math.inf
    if isinstance(node, ast.Name):
        return retried
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, retried)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_evaluate(node.left, retried), _evaluate(node.right, retried))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        args = [_evaluate(arg, retried) for arg in node.args]
        return float(_FUNCTIONS[node.func.id].call(*args))
    raise ExpressionError(f"unsupported syntax ({type(node).__name__})")  # unreachable after _check


@dataclasses.dataclass(frozen=True)
class RetryDelay:
    """A parsed ``Upstash-Retry-Delay`` expression. Build it with :func:`parse_retry_delay`."""

    text: str
    _tree: ast.Expression = dataclasses.field(repr=False, compare=False)

    def milliseconds(self, retried: int) -> float:
        """The wait in ms before retry number ``retried + 1``; :class:`ExpressionError` if NaN."""
        try:
            value = _evaluate(self._tree, float(retried))
        except (OverflowError, ValueError) as exc:  # defensive: the helpers above catch these
            raise ExpressionError(f"cannot evaluate {self.text!r}: {exc}") from exc
        if math.isnan(value):
            raise ExpressionError(f"{self.text!r} is not a number for retried={retried}")
        return min(max(value, 0.0), MAX_BACKOFF_SECONDS * 1000)


def parse_retry_delay(text: str) -> RetryDelay:
    """Validate an expression once, at create time; :class:`ExpressionError` says why not."""
    stripped = text.strip()
    if not stripped:
        raise ExpressionError("the expression is empty")
    if len(stripped) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        with warnings.catch_warnings():
            # "1if", "0x" and friends only warn in Python's parser; here they are refusals.
            warnings.simplefilter("error", SyntaxWarning)
            tree = ast.parse(stripped, mode="eval")
    except (SyntaxError, SyntaxWarning, ValueError, MemoryError, RecursionError) as exc:
        raise ExpressionError(f"cannot parse {stripped!r}") from exc
    try:
        _check(tree)
    except RecursionError as exc:
        raise ExpressionError("the expression nests too deeply") from exc
    return RetryDelay(text=text, _tree=tree)


# -- server-directed waits ---------------------------------------------------------------------

_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS: Final[Mapping[str, float]] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # micro sign U+00B5
    "μs": 1e-6,  # Greek mu U+03BC; Go accepts both
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_go_duration(text: str) -> float | None:
    """Seconds of a Go duration (``1h2m3.5s``, ``250ms``), or None if ``text`` is not one."""
    value = text.strip()
    if not value:
        return None
    sign = 1.0
    if value[0] in "+-":
        sign = -1.0 if value[0] == "-" else 1.0
        value = value[1:]
    if value == "0":
        return 0.0
    position = 0
    total = 0.0
    for match in _GO_DURATION_PART.finditer(value):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        position = match.end()
    if position == 0 or position != len(value):
        return None
    return sign * total


def parse_server_wait(value: str, *, now: datetime) -> float | None:
    """Seconds a ``Retry-After``-style value asks for, or None when unusable or above a day."""
    text = value.strip()
    seconds: float | None
    try:
        seconds = float(text)
    except ValueError:
        seconds = None
    if seconds is not None and not math.isfinite(seconds):
        return None
    if seconds is None:
        seconds = parse_go_duration(text)
    if seconds is None:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = max(0.0, (moment - now).total_seconds())
    if seconds < 0 or seconds > MAX_BACKOFF_SECONDS:
        return None
    return seconds


def server_directed_wait(headers: Mapping[str, str], *, now: datetime) -> float | None:
    """The first usable wait among :data:`SERVER_DIRECTED_HEADERS` (case-insensitive lookup)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    for name in SERVER_DIRECTED_HEADERS:
        raw = lowered.get(name.lower())
        if raw is not None:
            wait = parse_server_wait(raw, now=now)
            if wait is not None:
                return wait
    return None


def retry_wait(
    *,
    failed_attempts: int,
    expression: RetryDelay | None,
    response_headers: Mapping[str, str],
    now: datetime,
) -> float:
    """Seconds before the next attempt, after ``failed_attempts`` attempts failed."""
    directed = server_directed_wait(response_headers, now=now)
    if directed is not None:
        return directed
    if expression is not None:
        try:
            return expression.milliseconds(failed_attempts - 1) / 1000.0
        except ExpressionError:
            pass  # a runtime NaN: QStash's documented default applies
    return default_backoff(failed_attempts)
