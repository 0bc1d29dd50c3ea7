"""Status conditions in the ``metav1.Condition`` shape, merged so transitions keep their times.

A condition's ``lastTransitionTime`` moves only when its ``status`` changes, as Kubernetes API
conventions ask; reasons and messages may change in place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from qstash_operator.domain.builders import rfc3339
from qstash_operator.domain.model import JsonDict

ORDER = ("Ready", "ScheduleSynced", "SpecValid")


@dataclasses.dataclass(frozen=True)
class Condition:
    type: str
    status: bool | None  # None: Unknown
    reason: str
    message: str

    @property
    def status_text(self) -> str:
        return "Unknown" if self.status is None else ("True" if self.status else "False")


def merge(
    existing: Sequence[Any] | None,
    updates: Iterable[Condition],
    *,
    now: datetime,
    generation: int,
) -> list[JsonDict]:
    """The new ``status.conditions`` list: ``updates`` applied over ``existing``, ordered."""
    by_type: dict[str, JsonDict] = {
        str(item.get("type")): dict(item) for item in existing or () if isinstance(item, dict)
    }
    for update in updates:
        previous = by_type.get(update.type)
        transition = rfc3339(now)
        if previous is not None and previous.get("status") == update.status_text:
            transition = previous.get("lastTransitionTime") or transition
        by_type[update.type] = {
            "type": update.type,
            "status": update.status_text,
            "reason": update.reason,
            "message": update.message,
            "lastTransitionTime": transition,
            "observedGeneration": generation,
        }
    ordered = [by_type.pop(kind) for kind in ORDER if kind in by_type]
    return ordered + [by_type[kind] for kind in sorted(by_type)]


def find(conditions: Sequence[Any] | None, kind: str) -> JsonDict | None:
    for item in conditions or ():
        if isinstance(item, dict) and item.get("type") == kind:
            return item
    return None
