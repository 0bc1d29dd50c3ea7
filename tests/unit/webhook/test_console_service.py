"""What the console shows whom: each part of a page behind the caller's own access review.

The webhook reads with its own account, so these tables pin down that a caller never sees more
than they could read themselves. The authorizer is the :class:`Access` interface answered from a
table (the real reviews run in tests/e2e/test_console.py); the objects come from a stub of the
adapter's read methods, as in ``test_catalog_namespaces``.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from qstash_operator.adapters.kube import AccessDecision, Kube, UserInfo
from qstash_operator.services.catalog import CatalogService
from qstash_webhook.access import Check
from qstash_webhook.console.service import ConsoleService
from qstash_webhook.errors import ApiError
from tests.unit.domain import factories
from tests.unit.webhook.support import JUST_AFTER_THE_HOUR

ALICE = UserInfo(username="alice", uid="a", groups=(), extra={})
Grant = tuple[str, str, str | None]  # (verb, resource, namespace or None for cluster-wide)


class TableAccess:
    def __init__(self, grants: set[Grant]) -> None:
        self.grants = grants
        self.asked: list[Check] = []

    async def authenticate(self, token: str, *, client: str) -> UserInfo | None:
        return ALICE

    async def decide(self, user: UserInfo, check: Check) -> AccessDecision:
        self.asked.append(check)
        allowed = (check.verb, check.resource, check.namespace) in self.grants or (
            check.verb,
            check.resource,
            None,
        ) in self.grants
        return AccessDecision(allowed=allowed, reason="")


class ReadingKube:
    """The adapter's reads over fixed objects; a read the service should not make fails."""

    def __init__(self, namespaces: dict[str, list[str]]) -> None:
        self.bodies = {
            ns: [
                factories.body(
                    name=name,
                    namespace=ns,
                    status={"lastScheduleTime": "2026-11-28T09:00:00Z"},
                )
                for name in names
            ]
            for ns, names in namespaces.items()
        }
        for ns, bodies in self.bodies.items():
            for body in bodies:
                body["metadata"]["uid"] = f"uid-{ns}-{body['metadata']['name']}"
        self.job_reads: list[str] = []

    async def list_cronworkflows(self, namespace: str | None = None) -> list[dict[str, Any]]:
        if namespace is None:
            return [body for bodies in self.bodies.values() for body in bodies]
        return self.bodies.get(namespace, [])

    async def get_cronworkflow(self, namespace: str, name: str) -> dict[str, Any]:
        return next(b for b in self.bodies[namespace] if b["metadata"]["name"] == name)

    async def list_jobs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        self.job_reads.append(namespace)
        uid = f"uid-{namespace}-report"
        return [
            {
                "metadata": {
                    "name": "report-1",
                    "creationTimestamp": "2026-11-28T09:00:01Z",
                    "labels": {"qstash-operator.dev/cronworkflow-uid": uid},
                    "annotations": {"qstash-operator.dev/scheduled-time": "2026-11-28T09:00:00Z"},
                },
                "status": {"conditions": [{"type": "Complete", "status": "True"}]},
            }
        ]

    async def list_events(self, namespace: str, *, uid: str) -> list[dict[str, Any]]:
        raise AssertionError("events were read without a grant")


def service(kube: ReadingKube, access: TableAccess) -> ConsoleService:
    catalog = CatalogService(cast(Kube, kube), cluster="c", schedules=None, qstash_problem="x")
    return ConsoleService(cast(Kube, kube), catalog, access)


TEAMS = {"team-a": ["report"], "team-b": ["report", "sync"]}


@pytest.mark.parametrize(
    ("grants", "rows", "note", "job_reads"),
    [
        pytest.param(
            {("list", "cronworkflows", None), ("list", "jobs", None)},
            ["team-a/report", "team-b/report", "team-b/sync"],
            None,
            ["team-a", "team-b"],
            id="cluster-wide",
        ),
        pytest.param(
            {("list", "cronworkflows", "team-b"), ("list", "jobs", "team-b")},
            ["team-b/report", "team-b/sync"],
            "Only the namespaces where you may list CronWorkflows are shown.",
            ["team-b"],
            id="one namespace",
        ),
        pytest.param(
            {("list", "cronworkflows", None)},
            ["team-a/report", "team-b/report", "team-b/sync"],
            None,
            [],
            id="CronWorkflows but not Jobs",
        ),
    ],
)
async def test_the_list_shows_what_the_caller_may_list(
    grants: set[Grant], rows: list[str], note: str | None, job_reads: list[str]
) -> None:
    kube = ReadingKube(TEAMS)
    page = await service(kube, TableAccess(grants)).list_page(
        ALICE, namespace=None, now=JUST_AFTER_THE_HOUR
    )
    assert [f"{row['namespace']}/{row['name']}" for row in page["items"]] == rows
    assert page["note"] == note
    assert page["namespaces"] == sorted({row.split("/")[0] for row in rows})
    assert sorted(kube.job_reads) == job_reads
    outcomes = {row["name"]: (row["lastRun"] or {}).get("outcome") for row in page["items"]}
    if job_reads:
        assert outcomes["report"] == "Succeeded"  # from its Job
    else:
        assert set(outcomes.values()) == {"NoJob"}  # the status's time, no outcome guessed


async def test_no_namespace_at_all_is_a_403_with_the_reason() -> None:
    with pytest.raises(ApiError) as refused:
        await service(ReadingKube(TEAMS), TableAccess(set())).list_page(
            ALICE, namespace=None, now=JUST_AFTER_THE_HOUR
        )
    assert refused.value.status == 403
    assert "alice may not list cronworkflows.qstash-operator.dev cluster-wide" in str(refused.value)


async def test_the_detail_needs_get_and_shows_parts_only_where_granted() -> None:
    access = TableAccess({("get", "cronworkflows", "team-a"), ("list", "jobs", "team-a")})
    kube = ReadingKube(TEAMS)
    page = await service(kube, access).detail_page(
        ALICE, namespace="team-a", name="report", now=JUST_AFTER_THE_HOUR
    )
    assert page["jobs"]["allowed"] is True
    assert page["events"] == {
        "allowed": False,
        "denied": "alice may not list events in namespace team-a "
        "(no Role or ClusterRole bound to them grants 'list')",
        "items": [],
    }
    assert page["actions"]["run"] == {
        "enabled": False,
        "reason": "alice may not trigger cronworkflows.qstash-operator.dev/report in namespace "
        "team-a (no Role or ClusterRole bound to them grants 'trigger')",
    }
    asked = {(c.verb, c.resource, c.name) for c in access.asked}
    assert asked == {
        ("get", "cronworkflows", "report"),
        ("list", "jobs", None),
        ("list", "events", None),
        ("patch", "cronworkflows", "report"),
        ("trigger", "cronworkflows", "report"),
    }
    with pytest.raises(ApiError) as refused:
        await service(kube, access).detail_page(
            ALICE, namespace="team-b", name="report", now=JUST_AFTER_THE_HOUR
        )
    assert refused.value.status == 403
