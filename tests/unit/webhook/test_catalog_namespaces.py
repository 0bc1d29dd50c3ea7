"""Namespaced mode: the catalog lists only the watched namespaces, never the whole cluster.

In namespaced mode the webhook's ServiceAccount has Roles in the watched namespaces only (the
chart's ``operator.namespaces``), so a cluster-wide list would be refused with a 403.
"""

from __future__ import annotations

from typing import Any, cast

from qstash_operator.adapters.kube import Kube
from qstash_operator.services.catalog import CatalogService
from tests.unit.webhook import support


class ListingKube:
    """Answers list_cronworkflows per namespace; a cluster-wide list is what the Role refuses."""

    def __init__(self, by_namespace: dict[str, list[str]]) -> None:
        self.by_namespace = by_namespace
        self.calls: list[str | None] = []

    async def list_cronworkflows(self, namespace: str | None = None) -> list[dict[str, Any]]:
        self.calls.append(namespace)
        if namespace is None:
            raise AssertionError("a cluster-wide list in namespaced mode")
        return [
            {
                "metadata": {"namespace": namespace, "name": name, "uid": name},
                "spec": {"schedule": "@daily", "jobTemplate": {}},
            }
            for name in self.by_namespace.get(namespace, [])
        ]


def catalog(kube: ListingKube, namespaces: tuple[str, ...]) -> CatalogService:
    return CatalogService(
        cast(Kube, kube), cluster="c", schedules=None, qstash_problem="x", namespaces=namespaces
    )


async def test_everything_means_every_watched_namespace() -> None:
    kube = ListingKube({"team-a": ["one"], "team-b": ["two"], "other": ["hidden"]})
    listed = await catalog(kube, ("team-a", "team-b")).list(
        namespace=None, now=support.JUST_AFTER_THE_HOUR
    )
    assert [(s.namespace, s.name) for s in listed] == [("team-a", "one"), ("team-b", "two")]
    assert kube.calls == ["team-a", "team-b"]


async def test_a_namespace_outside_the_watched_ones_is_empty_without_asking() -> None:
    kube = ListingKube({"other": ["hidden"]})
    listed = await catalog(kube, ("team-a",)).list(
        namespace="other", now=support.JUST_AFTER_THE_HOUR
    )
    assert listed == []
    assert kube.calls == []


async def test_the_health_view_stays_inside_the_watched_namespaces() -> None:
    kube = ListingKube({"team-a": ["one"]})
    health = await catalog(kube, ("team-a",)).health(now=support.JUST_AFTER_THE_HOUR)
    assert sum(health.by_state.values()) == 1
    assert kube.calls == ["team-a"]


async def test_cluster_wide_mode_lists_the_cluster_once() -> None:
    class Everything(ListingKube):
        async def list_cronworkflows(self, namespace: str | None = None) -> list[dict[str, Any]]:
            self.calls.append(namespace)
            return []

    kube = Everything({})
    await catalog(kube, ()).list(namespace=None, now=support.JUST_AFTER_THE_HOUR)
    assert kube.calls == [None]
