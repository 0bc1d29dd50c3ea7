"""A drift pass reads the CronWorkflows a page at a time (``services.drift``): every page is
checked, a page is let go before the next is read, and orphans are decided only after the last.
"""

from __future__ import annotations

import gc
import weakref
from datetime import UTC, datetime
from typing import Any

import pytest

from qstash_operator.adapters.operator_metrics import OperatorMetrics
from qstash_operator.adapters.qstash_api import ObservedSchedule
from qstash_operator.domain import builders, model, naming, window
from qstash_operator.domain.builders import DesiredSchedule
from qstash_operator.domain.model import JsonDict
from qstash_operator.services.drift import LIST_PAGE, DriftRepair
from qstash_operator.settings import QStashSettings, Secret, Settings
from tests.unit.domain.factories import body, observed_schedule

NOW = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
CLUSTER = "prod"
PUBLIC_URL = "https://cron.example.com"


def settings(*namespaces: str) -> Settings:
    return Settings(
        qstash=QStashSettings(
            token=Secret("token"), current_signing_key=Secret("a"), next_signing_key=Secret("b")
        ),
        public_url=PUBLIC_URL,
        cluster_name=CLUSTER,
        namespaces=tuple(namespaces),
    )


class Page(list[JsonDict]):
    """A list that can be watched for being let go (a plain list takes no weak references)."""


class PagedKube:
    """Serves ``pages[namespace]`` in order, each with the next one's continue token."""

    def __init__(self, pages: dict[str | None, list[list[JsonDict]]]) -> None:
        self.pages = pages
        self.asked: list[tuple[str | None, int, str | None]] = []
        self.previous: weakref.ref[Page] | None = None
        self.held_while_reading: list[bool] = []
        self.events: list[str] = []

    async def list_cronworkflows_page(
        self, namespace: str | None, *, limit: int, token: str | None = None
    ) -> tuple[list[JsonDict], str, str | None]:
        self.asked.append((namespace, limit, token))
        gc.collect()
        self.held_while_reading.append(self.previous is not None and self.previous() is not None)
        index = int(token or 0)
        pages = self.pages[namespace]
        page = Page(pages[index])
        self.previous = weakref.ref(page)
        following = str(index + 1) if index + 1 < len(pages) else None
        return page, "rv-1", following

    async def post_event(self, involved: JsonDict, *, reason: str, **_: Any) -> None:
        self.events.append(f"{involved['metadata']['name']}: {reason}")


class FakeQStash:
    def __init__(self, *names: tuple[str, str]) -> None:
        self.schedules = [observed(naming.schedule_id(CLUSTER, ns, name)) for ns, name in names]
        self.deleted: list[str] = []
        self.upserted: list[str] = []

    async def list(self) -> list[ObservedSchedule]:
        return list(self.schedules)

    async def delete(self, schedule_id: str) -> None:
        self.deleted.append(schedule_id)

    async def upsert(self, desired: DesiredSchedule) -> str:
        self.upserted.append(desired.schedule_id)
        return desired.schedule_id

    async def set_paused(self, schedule_id: str, paused: bool) -> None:
        return None


def observed(schedule_id: str) -> ObservedSchedule:
    return observed_schedule(schedule_id, destination=PUBLIC_URL, cron="0 * * * *")


def deleting(name: str, namespace: str = "team-a") -> JsonDict:
    """Being finalized: its schedule is the finalizer's, never an orphan."""
    cw = body(name=name, namespace=namespace, status={"backend": "QStash"})
    cw["metadata"]["deletionTimestamp"] = "2026-12-03T05:59:00Z"
    return cw


def in_sync(name: str) -> JsonDict:
    """On QStash with its spec applied: drift repair compares its schedule."""
    status: JsonDict = {"backend": "QStash", "observedGeneration": 1}
    every = builders.build_schedules(
        window.as_applied(model.parse(body(name=name)), status, NOW),
        cluster=CLUSTER,
        public_url=PUBLIC_URL,
    )
    status["appliedScheduleHash"] = builders.schedules_fingerprint(every)
    return body(name=name, status=status)


async def test_every_page_is_checked_and_orphans_wait_for_the_last() -> None:
    kube = PagedKube({None: [[deleting("a")], [deleting("b")], [in_sync("c")]]})
    qstash = FakeQStash(("team-a", "a"), ("team-a", "b"), ("team-a", "orphan"))
    drift = DriftRepair(
        settings=settings(),
        kube=kube,  # type: ignore[arg-type]
        qstash=qstash,  # type: ignore[arg-type]
        metrics=OperatorMetrics(),
    )
    report = await drift.run_once(now=NOW)
    assert kube.asked == [(None, LIST_PAGE, None), (None, LIST_PAGE, "1"), (None, LIST_PAGE, "2")]
    assert report.checked == 3
    assert qstash.deleted == [naming.schedule_id(CLUSTER, "team-a", "orphan")]  # b kept: page 2
    assert report.recreated == (naming.schedule_id(CLUSTER, "team-a", "c"),)  # page 3 repaired
    assert kube.events == ["c: DriftRepaired"]


async def test_a_page_is_let_go_before_the_next_is_read() -> None:
    kube = PagedKube({None: [[deleting("a")], [deleting("b")], [deleting("c")]]})
    drift = DriftRepair(
        settings=settings(),
        kube=kube,  # type: ignore[arg-type]
        qstash=FakeQStash(),  # type: ignore[arg-type]
        metrics=OperatorMetrics(),
    )
    await drift.run_once(now=NOW)
    assert kube.held_while_reading == [False, False, False]


@pytest.mark.parametrize("namespaces", [("team-a", "team-b")])
async def test_each_watched_namespace_is_listed_in_pages(namespaces: tuple[str, ...]) -> None:
    kube = PagedKube(
        {
            "team-a": [[deleting("a1")], [deleting("a2")]],
            "team-b": [[deleting("b1", namespace="team-b")]],
        }
    )
    qstash = FakeQStash(("team-a", "a2"), ("team-b", "b1"), ("team-b", "gone"))
    drift = DriftRepair(
        settings=settings(*namespaces),
        kube=kube,  # type: ignore[arg-type]
        qstash=qstash,  # type: ignore[arg-type]
        metrics=OperatorMetrics(),
    )
    report = await drift.run_once(now=NOW)
    assert [(ns, token) for ns, _, token in kube.asked] == [
        ("team-a", None),
        ("team-a", "1"),
        ("team-b", None),
    ]
    assert report.checked == 3
    assert qstash.deleted == [naming.schedule_id(CLUSTER, "team-b", "gone")]


def being_created(name: str) -> JsonDict:
    """Its first reconcile made the schedule; the status saying so is not written yet."""
    return body(name=name, status={})


def on_cronjob(name: str) -> JsonDict:
    """Reconciled at its generation onto the CronJob backend: a QStash schedule is a stray."""
    return body(name=name, status={"backend": "CronJob", "observedGeneration": 1})


async def test_a_schedule_whose_first_reconcile_is_in_flight_is_no_orphan() -> None:
    kube = PagedKube({None: [[being_created("new"), on_cronjob("local")]]})
    qstash = FakeQStash(("team-a", "new"), ("team-a", "local"))
    drift = DriftRepair(
        settings=settings(),
        kube=kube,  # type: ignore[arg-type]
        qstash=qstash,  # type: ignore[arg-type]
        metrics=OperatorMetrics(),
    )
    await drift.run_once(now=NOW)
    assert qstash.deleted == [naming.schedule_id(CLUSTER, "team-a", "local")]
