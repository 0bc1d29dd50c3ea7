"""Fault injection and call counting for tests: the state behind ``/__control/faults``.

Each fault has a budget: a number of times it still applies, or ``None`` for "until cleared".
The API faults answer the next matching API calls as QStash does when it is unwell (5xx),
refuses a request (400), or rate-limits (429 with one of its two header families, section 2.6);
the delivery faults make the at-least-once guarantee visible (duplicates, a response lost after
the destination processed the request, latency), and ``destinationDown`` fails attempts without
calling the destination, as a webhook that is down would (connection refused). Pure state; the
app and the sender consult it.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

DAILY_LIMIT: Final = 1000
"""Free plan's messages per day (section 2.6), the default ``RateLimit-Limit`` we report."""
BURST_LIMIT: Final = 100
"""Reported ``Burst-RateLimit-Limit`` per second; the real figure is not documented [UNKNOWN]."""
DAILY_LIMIT_ERROR: Final = "daily message limit exceeded"  # [INFER] text
BAD_REQUEST: Final = 400
"""The one 4xx an API fault may answer: a refusal the client cannot retry its way out of (how
the operator's loops must survive a QStash that suddenly refuses a call, e.g. after an API
change), as opposed to the 5xx of a QStash that is unwell."""
BURST_LIMIT_ERROR: Final = "too many requests"  # [INFER] text


class FaultError(ValueError):
    """A control request asked for a fault that makes no sense."""


def _budget(spec: Mapping[str, Any]) -> int | None:
    count = spec.get("count")
    if count is None:
        return None
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise FaultError("count must be a positive integer or null (until cleared)")
    return count


def _routes(spec: Mapping[str, Any]) -> frozenset[str] | None:
    routes = spec.get("routes")
    if routes is None:
        return None
    if not isinstance(routes, list) or not all(isinstance(route, str) for route in routes):
        raise FaultError("routes must be a list of route names")
    return frozenset(routes)


@dataclasses.dataclass
class ApiFault:
    status: int
    remaining: int | None
    routes: frozenset[str] | None
    family: Literal["daily", "burst"] | None = None
    limit: int | None = None

    def matches(self, route: str) -> bool:
        return self.routes is None or route in self.routes

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "count": self.remaining,
            "routes": sorted(self.routes) if self.routes is not None else None,
            "family": self.family,
            "limit": self.limit,
        }


@dataclasses.dataclass(frozen=True)
class ApiAnswer:
    """What an injected API fault answers instead of the real handler."""

    status: int
    message: str
    headers: Mapping[str, str]


def _take(remaining: int | None) -> tuple[bool, int | None]:
    """Spend one unit of a budget: (applies, what is left). ``None`` never runs out."""
    if remaining is None:
        return True, None
    if remaining <= 0:
        return False, 0
    return True, remaining - 1


@dataclasses.dataclass
class Faults:
    api_error: ApiFault | None = None
    rate_limit: ApiFault | None = None
    duplicate_remaining: int | None = 0  # 0: off
    duplicate_concurrent: bool = False
    latency_seconds: float = 0.0
    latency_remaining: int | None = 0
    drop_remaining: int | None = 0
    down_remaining: int | None = 0

    # -- configuration ----------------------------------------------------------------------

    def configure(self, spec: Mapping[str, Any]) -> None:
        """Apply ``POST /__control/faults``: each key given replaces that fault; null clears it."""
        known = {
            "apiErrors",
            "rateLimit",
            "duplicateDelivery",
            "deliveryLatency",
            "dropResponse",
            "destinationDown",
        }
        unknown = set(spec) - known
        if unknown:
            raise FaultError(f"unknown faults {sorted(unknown)}; known: {sorted(known)}")
        if "apiErrors" in spec:
            self.api_error = self._api_error(spec["apiErrors"])
        if "rateLimit" in spec:
            self.rate_limit = self._rate_limit(spec["rateLimit"])
        if "duplicateDelivery" in spec:
            value = spec["duplicateDelivery"]
            self.duplicate_remaining = 0 if value is None else _budget(_mapping(value))
            self.duplicate_concurrent = bool(value and _mapping(value).get("concurrent", False))
        if "deliveryLatency" in spec:
            value = spec["deliveryLatency"]
            if value is None:
                self.latency_seconds, self.latency_remaining = 0.0, 0
            else:
                seconds = _mapping(value).get("seconds")
                if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
                    raise FaultError("deliveryLatency.seconds must be a non-negative number")
                self.latency_seconds = float(seconds)
                self.latency_remaining = _budget(_mapping(value))
        if "dropResponse" in spec:
            value = spec["dropResponse"]
            self.drop_remaining = 0 if value is None else _budget(_mapping(value))
        if "destinationDown" in spec:
            value = spec["destinationDown"]
            self.down_remaining = 0 if value is None else _budget(_mapping(value))

    @staticmethod
    def _api_error(value: Any) -> ApiFault | None:
        if value is None:
            return None
        spec = _mapping(value)
        status = spec.get("status", 500)
        if (
            isinstance(status, bool)
            or not isinstance(status, int)
            or not (status == BAD_REQUEST or 500 <= status <= 599)
        ):
            raise FaultError("apiErrors.status must be 400 (a refusal) or a 5xx code")
        return ApiFault(status=status, remaining=_budget(spec), routes=_routes(spec))

    @staticmethod
    def _rate_limit(value: Any) -> ApiFault | None:
        if value is None:
            return None
        spec = _mapping(value)
        family = spec.get("family", "burst")
        if family not in ("daily", "burst"):
            raise FaultError("rateLimit.family must be 'daily' or 'burst'")
        default_limit = DAILY_LIMIT if family == "daily" else BURST_LIMIT
        limit = spec.get("limit", default_limit)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise FaultError("rateLimit.limit must be a non-negative integer")
        return ApiFault(
            status=429, remaining=_budget(spec), routes=_routes(spec), family=family, limit=limit
        )

    def clear(self) -> None:
        fresh = Faults()
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(fresh, field.name))

    def to_json(self) -> dict[str, Any]:
        return {
            "apiErrors": self.api_error.to_json() if self.api_error else None,
            "rateLimit": self.rate_limit.to_json() if self.rate_limit else None,
            "duplicateDelivery": (
                None
                if self.duplicate_remaining == 0
                else {"count": self.duplicate_remaining, "concurrent": self.duplicate_concurrent}
            ),
            "deliveryLatency": (
                None
                if self.latency_remaining == 0
                else {"seconds": self.latency_seconds, "count": self.latency_remaining}
            ),
            "dropResponse": None if self.drop_remaining == 0 else {"count": self.drop_remaining},
            "destinationDown": None if self.down_remaining == 0 else {"count": self.down_remaining},
        }

    # -- consulting ----------------------------------------------------------------------------

    def take_api_fault(self, route: str, *, now: datetime) -> ApiAnswer | None:
        """The injected answer for this API call, if a fault applies (rate limit first)."""
        for fault in (self.rate_limit, self.api_error):
            if fault is None or not fault.matches(route):
                continue
            applies, fault.remaining = _take(fault.remaining)
            if not applies:
                continue
            if fault.family is None:
                text = "bad request" if fault.status == BAD_REQUEST else "internal server error"
                return ApiAnswer(fault.status, f"{text} (injected)", {})
            return _rate_limit_answer(fault, now=now)
        return None

    def take_duplicate(self) -> bool:
        applies, self.duplicate_remaining = _take(self.duplicate_remaining)
        return applies

    def take_latency(self) -> float:
        applies, self.latency_remaining = _take(self.latency_remaining)
        return self.latency_seconds if applies else 0.0

    def take_drop(self) -> bool:
        applies, self.drop_remaining = _take(self.drop_remaining)
        return applies

    def take_down(self) -> bool:
        """Fail this attempt as if the destination refused the connection."""
        applies, self.down_remaining = _take(self.down_remaining)
        return applies


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise FaultError("each fault is a JSON object or null")
    return value


def _rate_limit_answer(fault: ApiFault, *, now: datetime) -> ApiAnswer:
    """429 with the header family the SDK reads (section 2.6): it picks the daily error when
    ``RateLimit-Limit`` is present, the burst one otherwise. Resets are Unix seconds."""
    limit = str(fault.limit)
    if fault.family == "daily":
        tomorrow = (now + timedelta(days=1)).date()
        reset = int(datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC).timestamp())
        headers = {
            "RateLimit-Limit": limit,
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(reset),
        }
        return ApiAnswer(429, DAILY_LIMIT_ERROR, headers)
    reset = int(now.timestamp()) + 1  # a one-second burst window
    headers = {
        "Burst-RateLimit-Limit": limit,
        "Burst-RateLimit-Remaining": "0",
        "Burst-RateLimit-Reset": str(reset),
    }
    return ApiAnswer(429, BURST_LIMIT_ERROR, headers)


class ApiCalls:
    """Counts API calls by route name (for "no hot loop" assertions) and keeps recent ones."""

    def __init__(self, limit: int) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=limit)

    def record(self, *, route: str, method: str, path: str, at_ms: int) -> dict[str, Any]:
        self.counts[route] += 1
        entry: dict[str, Any] = {
            "route": route,
            "method": method,
            "path": path,
            "at": at_ms,
            "status": None,
        }
        self.recent.append(entry)
        return entry

    def clear(self) -> None:
        self.counts.clear()
        self.recent.clear()

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": dict(sorted(self.counts.items())),
            "total": sum(self.counts.values()),
            "calls": list(self.recent),
        }
