"""Hash-spread times: Jenkins' ``H`` in the minute and hour fields, resolved to plain cron.

A thousand CronWorkflows written ``0 * * * *`` all fire at :00; written ``H * * * *`` each picks
its own minute, derived from ``<namespace>/<name>``, so the load spreads over the hour while every
object keeps a fixed, predictable time. Neither backend knows ``H``: the operator resolves it here
into an ordinary robfig expression, and that expression is what QStash and the CronJob receive,
what the webhook derives ticks from and what ``status.resolvedSchedule`` shows.

The grammar is Jenkins' (``hudson.scheduler.CronTab``), per comma-separated item of the minute or
hour field:

==================  ===========================================================================
``H``               one value in the whole field (minute 0-59, hour 0-23)
``H(a-b)``          one value in ``a``-``b``
``H/n``             every ``n`` from an offset ``0 <= offset < n``: ``offset-59/n`` for minutes
``H(a-b)/n``        every ``n`` within ``a``-``b`` from ``a + offset``
==================  ===========================================================================

``H/1`` and ``H(a-b)/1`` mean every value (offset 0), as a step of one does elsewhere in cron.
The value is a pure function of the key and the field: the first eight bytes of
``sha256("<namespace>/<name>|<field>")`` read as an unsigned integer, modulo the number of
choices. So deleting and re-applying an object (a GitOps sync, a restore) gives the same times,
renaming it moves them, and no process-specific hash (Python's ``hash()`` is salted per process)
is involved. Minute and hour hash independently, so ``H H * * *`` spreads over the whole day.

``H`` anywhere else (day of month, month, day of week) is refused naming the field: those fields
change which days run, which is a decision, not a load-spreading detail.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Final

from qstash_operator.domain.errors import InvalidSpecError
from qstash_operator.domain.vocabulary import REASON_INVALID_SCHEDULE

_ITEM: Final = re.compile(r"^H(?:\((?P<low>[0-9]+)-(?P<high>[0-9]+)\))?(?:/(?P<step>[0-9]+))?$")


@dataclasses.dataclass(frozen=True)
class _Bounds:
    label: str
    low: int
    high: int


_SPREAD_FIELDS: Final = (_Bounds("minute", 0, 59), _Bounds("hour", 0, 23))
_OTHER_FIELDS: Final = ("day-of-month", "month", "day-of-week")
_EXAMPLE: Final = "e.g. 'H * * * *', 'H/15 * * * *' or 'H(0-29) H(1-5) * * *'"


def has_hash(expression: str) -> bool:
    """Whether ``expression`` uses ``H`` at all (weekday names such as THU do not count)."""
    return any(item.startswith("H") for field in expression.split() for item in field.split(","))


def seed(key: str, field_label: str) -> int:
    """The stable number ``H`` derives from: sha256 of ``<key>|<field>``, first 8 bytes."""
    digest = hashlib.sha256(f"{key}|{field_label}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _bad(field: str, problem: str, fix: str) -> InvalidSpecError:
    return InvalidSpecError(field, problem, fix, reason=REASON_INVALID_SCHEDULE)


def _resolve_item(item: str, bounds: _Bounds, key: str, field: str) -> str:
    match = _ITEM.match(item)
    where = f"the {bounds.label} field item {item!r}"
    if match is None:
        raise _bad(
            field,
            f"{where} is not a hash expression",
            f"Write H, H(a-b), H/n or H(a-b)/n, {_EXAMPLE}.",
        )
    low = bounds.low if match["low"] is None else int(match["low"])
    high = bounds.high if match["high"] is None else int(match["high"])
    if not bounds.low <= low <= high <= bounds.high:
        raise _bad(
            field,
            f"{where} has the range {low}-{high}, outside {bounds.low}-{bounds.high} or backwards",
            f"Give a range a-b with {bounds.low} <= a <= b <= {bounds.high}.",
        )
    number = seed(key, bounds.label)
    if match["step"] is None:
        return str(low + number % (high - low + 1))
    step = int(match["step"])
    if not 1 <= step <= high - low + 1:
        raise _bad(
            field,
            f"{where} has the step {step}, which must be 1 to {high - low + 1} here",
            "Use a step no larger than the range it spreads over, e.g. H/15 for every 15 minutes.",
        )
    return f"{low + number % step}-{high}/{step}"


def resolve(expression: str, key: str, *, field: str = "spec.schedule") -> str:
    """``expression`` with every ``H`` item replaced by the values it stands for, for ``key``.

    An expression without ``H`` (including macros) comes back unchanged, byte for byte, so
    existing objects keep the schedule they were applied with. One with ``H`` comes back as five
    fields joined by single spaces. A malformed ``H`` raises :class:`InvalidSpecError` naming
    ``field`` and the cron field; everything else is left to :func:`cron.parse` to judge.
    """
    if not has_hash(expression) or expression.lstrip().startswith("@"):
        return expression
    fields = expression.split()
    if len(fields) != 5:
        return expression  # the parser reports the field count, with its own hint
    resolved = []
    for position, text in enumerate(fields):
        if position < len(_SPREAD_FIELDS):
            bounds = _SPREAD_FIELDS[position]
            items = [
                _resolve_item(item, bounds, key, field) if item.startswith("H") else item
                for item in text.split(",")
            ]
            resolved.append(",".join(items))
            continue
        if any(item.startswith("H") for item in text.split(",")):
            label = _OTHER_FIELDS[position - len(_SPREAD_FIELDS)]
            raise _bad(
                field,
                f"H in the {label} field {text!r}: hash-spread values are only for the "
                "minute and hour fields",
                f"Write the {label} explicitly; use H in minute and hour only, {_EXAMPLE}.",
            )
        resolved.append(text)
    return " ".join(resolved)
