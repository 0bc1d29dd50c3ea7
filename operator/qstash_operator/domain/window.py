"""Validity windows and run limits: ``spec.activeFrom``, ``spec.activeUntil``, ``spec.maxRuns``.

Pure rules over the spec, the run count in status and an injected ``now``. Two places use them:

- a delivery (``runs.plan_tick``) runs a tick only inside ``[activeFrom, activeUntil)`` and only
  while fewer than ``maxRuns`` scheduled runs were made (:func:`tick_refusal`). That check is
  exact: it is what keeps a QStash delivery at the edge, or a retry of one, from running;
- a reconcile (``reconcile.plan``) keeps the backend schedule in step (:func:`phase`): before the
  window the QStash schedule is paused and the CronJob suspended; once the window has ended or
  the last allowed run was made the CronWorkflow is *Completed*: ``Ready=False``, reason
  ``Completed``, and its backend schedule is deleted. Raising ``maxRuns`` or moving
  ``activeUntil`` later makes it schedule again.

**When the backend is switched on.** Not at ``activeFrom`` itself, which the 30 s refresh would
reach up to 30 s late and so miss a tick at ``activeFrom``, but as soon as the last tick before
``activeFrom`` has passed: between then and ``activeFrom`` there is no tick to fire, so switching
on early cannot run anything outside the window, on either backend. At the other edge the
webhook refuses ticks at or after ``activeUntil`` to the second; a CronJob is suspended by the
operator's refresh, so on the CronJob backend a tick within 30 s after ``activeUntil`` (or the
one after ``maxRuns`` was reached, if it comes sooner than the refresh) can still start.

**What counts as a run.** Scheduled runs only: ``status.scheduledRuns`` grows by one whenever
``lastScheduleTime`` moves forward (a webhook run, or a CronJob's run carried over). Manual runs
do not count and are not refused: asking explicitly overrides the limit, as it overrides suspend.
Ticks outside the window are not *missed*: nothing was meant to run then.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from qstash_operator.domain.model import CronWorkflow, CronWorkflowSpec

RUNS_FIELD: Final = "scheduledRuns"
"""The status field counting scheduled runs (``status.scheduledRuns``)."""

_SECOND: Final = timedelta(seconds=1)


class Phase(enum.Enum):
    WAITING = "Waiting"  # before activeFrom: the backend is paused
    ACTIVE = "Active"
    ENDED = "Ended"  # at or after activeUntil
    EXHAUSTED = "Exhausted"  # maxRuns scheduled runs made

    @property
    def completed(self) -> bool:
        return self in (Phase.ENDED, Phase.EXHAUSTED)


@dataclasses.dataclass(frozen=True)
class WindowState:
    phase: Phase
    message: str
    switch_at: datetime | None = None
    """When the phase (or the backend's on/off state) changes next, if it will by the clock."""
    backend_on: bool = True
    """Whether the backend schedule should fire (False while waiting for the window)."""


def limited(spec: CronWorkflowSpec) -> bool:
    """Whether any of the three fields is set (nothing here applies otherwise)."""
    return (
        spec.active_from is not None or spec.active_until is not None or spec.max_runs is not None
    )


def runs_made(status: Mapping[str, Any]) -> int:
    value = status.get(RUNS_FIELD)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def tick_refusal(spec: CronWorkflowSpec, tick: datetime, runs: int) -> tuple[bool, str] | None:
    """Why ``tick`` must not run: ``(completed, message)``, completed meaning the run limit or
    the end of the window; or None when it may run."""
    if spec.active_from is not None and tick < spec.active_from:
        return (
            False,
            f"the tick {_stamp(tick)} is before spec.activeFrom {_stamp(spec.active_from)}",
        )
    if spec.active_until is not None and tick >= spec.active_until:
        return True, (
            f"the tick {_stamp(tick)} is not before spec.activeUntil "
            f"{_stamp(spec.active_until)}: the window has ended"
        )
    if spec.max_runs is not None and runs >= spec.max_runs:
        return True, f"spec.maxRuns is {spec.max_runs} and {runs} scheduled runs were made"
    return None


def phase(spec: CronWorkflowSpec, runs: int, now: datetime) -> WindowState:
    """Where the CronWorkflow stands at ``now`` (rules in the module docstring)."""
    if spec.max_runs is not None and runs >= spec.max_runs:
        return WindowState(
            Phase.EXHAUSTED,
            f"completed: {runs} of spec.maxRuns={spec.max_runs} scheduled runs made",
            backend_on=False,
        )
    until = spec.active_until
    if until is not None and now >= until:
        return WindowState(
            Phase.ENDED,
            f"completed: the window ended at spec.activeUntil {_stamp(until)}",
            backend_on=False,
        )
    start = spec.active_from
    if start is not None and now < start:
        last_before = spec.timetable.latest_tick(start - _SECOND)
        switch_on = None if last_before is None else last_before + _SECOND
        backend_on = switch_on is None or now >= switch_on
        return WindowState(
            Phase.WAITING,
            f"waiting: runs start at spec.activeFrom {_stamp(start)}",
            switch_at=start if backend_on else switch_on,
            backend_on=backend_on,
        )
    return WindowState(Phase.ACTIVE, "active", switch_at=until)


def first_tick(spec: CronWorkflowSpec, after: datetime) -> datetime | None:
    """The next tick after ``after`` that the window lets run (None: none will)."""
    if spec.active_from is not None and after < spec.active_from:
        after = spec.active_from - _SECOND
    tick = spec.timetable.next_tick(after)
    if spec.active_until is not None and tick >= spec.active_until:
        return None
    return tick


def next_ticks(spec: CronWorkflowSpec, now: datetime, count: int, runs: int = 0) -> list[datetime]:
    """The next ``count`` ticks that will run: inside the window, and no more than the runs
    ``spec.maxRuns`` leaves (what ``qstash-operator next`` lists)."""
    if not limited(spec):
        return spec.timetable.next_ticks(now, count)
    if spec.max_runs is not None:
        count = min(count, max(spec.max_runs - runs, 0))
    found: list[datetime] = []
    tick = first_tick(spec, now) if count else None
    while tick is not None and len(found) < count:
        found.append(tick)
        tick = first_tick(spec, tick)
    return found


def as_applied(cw: CronWorkflow, status: Mapping[str, Any], now: datetime) -> CronWorkflow:
    """``cw`` as its backend schedule should be applied at ``now``: suspended (the QStash
    schedule paused) while it waits for its window, else unchanged. Reconcile and drift repair
    build the desired schedule from this, so both agree on what should be live."""
    if not limited(cw.spec) or phase(cw.spec, runs_made(status), now).backend_on:
        return cw
    return dataclasses.replace(cw, spec=dataclasses.replace(cw.spec, suspend=True))
