"""What people and scripts see of the CronWorkflows: the seed's list, activate/deactivate, status.

The CronWorkflow stays the source of truth: activating and deactivating merge-patch
``spec.suspend`` and the operator does the rest (pause or resume the QStash schedule, suspend the
CronJob); nothing here talks to a backend behind the operator's back. The status view reads QStash
once (a list of schedules) to show what drifted from the CRs.

The summaries are computed by pure functions (:func:`summarize`, :func:`find_drift`) over raw
objects and an injected ``now``; :class:`CatalogService` only fetches and hands over.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from qstash_operator.adapters.kube import Kube
from qstash_operator.adapters.qstash_api import ObservedSchedule
from qstash_operator.domain import drift as drift_rules
from qstash_operator.domain import model, naming, runs, vocabulary
from qstash_operator.domain.errors import InvalidSpecError, NotFoundError, TransientError
from qstash_operator.domain.model import JsonDict

ScheduleLister = Callable[[], Awaitable[list[ObservedSchedule]]]

STATE_ACTIVE: Final = "active"
STATE_SUSPENDED: Final = "suspended"
STATE_INVALID: Final = "invalid"


@dataclasses.dataclass(frozen=True)
class Condition:
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str


@dataclasses.dataclass(frozen=True)
class Summary:
    """One CronWorkflow as the list shows it."""

    namespace: str
    name: str
    uid: str
    schedule: str
    time_zone: str
    state: str  # STATE_*
    backend: str | None  # status.backend: what runs it now (None until the operator decided)
    next_run: datetime | None  # UTC; None when suspended or invalid
    last_run: datetime | None
    last_successful_run: datetime | None
    ready: Condition
    schedule_id: str | None
    cronjob_name: str | None
    active_jobs: tuple[str, ...]
    problem: str | None  # why the spec is invalid, when it is
    fresh: Condition | None = None  # the Fresh condition; None without spec.freshness

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _condition(status: Mapping[str, Any], kind: str) -> Condition:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return Condition(
                status=str(condition.get("status", "Unknown")),
                reason=str(condition.get("reason", "")),
                message=str(condition.get("message", "")),
            )
    return Condition(status="Unknown", reason="", message="the operator has not reported yet")


def summarize(body: JsonDict, *, now: datetime) -> Summary:
    """A raw CronWorkflow into its :class:`Summary` at ``now``; an invalid spec is shown, not
    raised, so one broken object does not hide the others."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    problem: str | None = None
    next_run: datetime | None = None
    last_run = runs.parse_time(status.get("lastScheduleTime"))
    try:
        cw = model.parse(body)
    except InvalidSpecError as exc:
        problem = str(exc)
        state = STATE_INVALID
    else:
        state = STATE_SUSPENDED if cw.spec.suspend else STATE_ACTIVE
        # After the last run as well as after now: an early delivery ran the coming tick.
        next_run = runs.next_schedule_time(
            cw.spec.timetable, suspended=cw.spec.suspend, last_schedule_time=last_run, now=now
        )
    return Summary(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        schedule=_schedule_words(spec),
        time_zone=str(spec.get("timeZone") or "UTC"),
        state=state,
        backend=status.get("backend") or None,
        next_run=next_run,
        last_run=last_run,
        last_successful_run=runs.parse_time(status.get("lastSuccessfulTime")),
        ready=_condition(status, vocabulary.CONDITION_READY),
        schedule_id=status.get("scheduleId") or None,
        cronjob_name=status.get("cronJobName") or None,
        active_jobs=tuple(
            str(ref.get("name", ""))
            for ref in status.get("active") or []
            if isinstance(ref, Mapping)
        ),
        problem=problem,
        fresh=_condition(status, vocabulary.CONDITION_FRESH)
        if isinstance(spec.get("freshness"), Mapping)
        else None,
    )


@dataclasses.dataclass(frozen=True)
class Drift:
    """CRs and QStash schedules that disagree (the operator repairs both on its resync)."""

    missing_schedules: tuple[str, ...]  # "ns/name" of CRs whose status.scheduleId is not in QStash
    orphan_schedules: tuple[str, ...]  # ids of this cluster name, watched namespace, no CR


def find_drift(
    summaries: Iterable[Summary],
    schedules: Iterable[ObservedSchedule],
    *,
    cluster: str,
    namespaces: Collection[str] = (),
) -> Drift:
    """What differs; orphans follow drift repair's rule (:func:`domain.drift.watches`): a
    schedule of a namespace this release does not watch belongs to another release."""
    listed = {schedule.schedule_id for schedule in schedules}
    summaries = list(summaries)
    missing = sorted(
        summary.key
        for summary in summaries
        if summary.schedule_id is not None and summary.schedule_id not in listed
    )
    present = {(summary.namespace, summary.name) for summary in summaries}
    orphans = []
    for sid in sorted(listed):
        owner = naming.parse_schedule_id(sid)
        if (
            owner is not None
            and drift_rules.watches(sid, cluster=cluster, namespaces=namespaces)
            and (owner.namespace, owner.name) not in present
        ):
            orphans.append(sid)
    return Drift(missing_schedules=tuple(missing), orphan_schedules=tuple(orphans))


@dataclasses.dataclass(frozen=True)
class QStashHealth:
    configured: bool
    reachable: bool | None  # None when not configured (nothing to reach)
    problem: str | None  # why it is not configured, or why it could not be reached
    schedules: int | None  # schedules of this cluster (by id prefix)


@dataclasses.dataclass(frozen=True)
class BackendHealth:
    qstash: QStashHealth
    by_backend: Mapping[str, int]  # status.backend (or "Pending") -> count of CRs
    by_state: Mapping[str, int]  # STATE_* -> count of CRs
    drift: Drift | None  # None when QStash could not be listed

    @property
    def healthy(self) -> bool:
        if self.qstash.configured and not self.qstash.reachable:
            return False
        drifted = self.drift is not None and (
            self.drift.missing_schedules or self.drift.orphan_schedules
        )
        return not drifted and not self.by_state.get(STATE_INVALID)


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


class CatalogService:
    def __init__(
        self,
        kube: Kube,
        *,
        cluster: str,
        schedules: ScheduleLister | None,
        qstash_problem: str | None,
        namespaces: Sequence[str] = (),
        component: str = "qstash-operator-webhook",
    ) -> None:
        """``schedules`` lists QStash's schedules; None (with ``qstash_problem`` saying why)
        when this cluster has no QStash (development mode). ``namespaces`` (namespaced mode,
        ``QSTASH_OPERATOR_NAMESPACES``) bounds every listing: the service then has Roles there
        and nowhere else, so it never asks the API server for the whole cluster."""
        self._kube = kube
        self._cluster = cluster
        self._schedules = schedules
        self._qstash_problem = qstash_problem
        self._namespaces = tuple(namespaces)
        self._component = component

    async def _bodies(self, namespace: str | None) -> list[JsonDict]:
        if not self._namespaces:
            return await self._kube.list_cronworkflows(namespace)
        wanted = [ns for ns in self._namespaces if namespace is None or ns == namespace]
        bodies: list[JsonDict] = []
        for ns in wanted:
            bodies.extend(await self._kube.list_cronworkflows(ns))
        return bodies

    def watches(self, namespace: str) -> bool:
        """Whether ``namespace`` is one this service may read (every one in cluster mode)."""
        return not self._namespaces or namespace in self._namespaces

    async def bodies(self, *, namespace: str | None) -> list[JsonDict]:
        """The raw CronWorkflows (in ``namespace``, or every watched one), for the console."""
        return await self._bodies(namespace)

    async def list(self, *, namespace: str | None, now: datetime) -> list[Summary]:
        bodies = await self._bodies(namespace)
        summaries = [summarize(body, now=now) for body in bodies]
        return sorted(summaries, key=lambda summary: (summary.namespace, summary.name))

    async def get(self, *, namespace: str, name: str, now: datetime) -> Summary:
        return summarize(await self._kube.get_cronworkflow(namespace, name), now=now)

    async def set_suspended(
        self, *, namespace: str, name: str, suspend: bool, now: datetime
    ) -> Summary:
        """Activate (``suspend=False``) or deactivate; raises NotFoundError for a missing CR."""
        body = await self._kube.patch_cronworkflow(namespace, name, {"spec": {"suspend": suspend}})
        return summarize(body, now=now)

    async def note_manual_run(
        self,
        *,
        namespace: str,
        name: str,
        job: str,
        requested_by: str,
        reason: str,
        now: datetime,
    ) -> None:
        """Record why someone ran ``job`` by hand: a ``ManualRun`` event on the CronWorkflow,
        beside the run service's own (best effort, as every event)."""
        try:
            body = await self._kube.get_cronworkflow(namespace, name)
        except NotFoundError:
            return
        await self._kube.post_event(
            body,
            type_="Normal",
            reason=vocabulary.REASON_MANUAL_RUN,
            message=f"{requested_by} ran Job {job} by hand: {reason}",
            now=now,
            component=self._component,
        )

    async def health(self, *, now: datetime) -> BackendHealth:
        summaries = await self.list(namespace=None, now=now)
        by_backend = _count(summary.backend or "Pending" for summary in summaries)
        by_state = _count(summary.state for summary in summaries)
        if self._schedules is None:
            qstash = QStashHealth(
                configured=False, reachable=None, problem=self._qstash_problem, schedules=None
            )
            return BackendHealth(qstash, by_backend, by_state, drift=None)
        try:
            listed: Sequence[ObservedSchedule] = await self._schedules()
        except TransientError as exc:
            qstash = QStashHealth(
                configured=True, reachable=False, problem=str(exc), schedules=None
            )
            return BackendHealth(qstash, by_backend, by_state, drift=None)
        prefix = naming.schedule_id_prefix(self._cluster)
        ours = [schedule for schedule in listed if schedule.schedule_id.startswith(prefix)]
        qstash = QStashHealth(
            configured=True, reachable=True, problem=self._qstash_problem, schedules=len(ours)
        )
        drift = find_drift(summaries, ours, cluster=self._cluster, namespaces=self._namespaces)
        return BackendHealth(qstash, by_backend, by_state, drift=drift)


def _schedule_words(spec: Mapping[str, Any]) -> str:
    """``spec.schedule`` as written, or ``N schedules`` for ``spec.schedules``."""
    several = spec.get("schedules")
    if isinstance(several, list) and spec.get("schedule") is None:
        return f"{len(several)} schedules" if len(several) != 1 else "1 schedule"
    return str(spec.get("schedule", ""))
