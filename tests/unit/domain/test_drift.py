"""The orphan rule of drift repair: only ids of this cluster name, in a watched namespace, unused."""

from __future__ import annotations

import pytest

from qstash_operator.domain import drift

OBSERVED = (
    "default.team-a.nightly",  # kept: its CronWorkflow is on QStash
    "default.team-a.gone",  # its CronWorkflow was deleted while the operator was down
    "default.team-b.nightly",  # another release's, unless this one watches team-b
    "default.team-b.report.v2",  # dots in the name parse back
    "defaultish.team-a.gone",  # another cluster name that merely starts the same
    "default.no-name",  # two parts: not an id this project makes
    "other.team-a.gone",  # another cluster
)
KEEP = frozenset({"default.team-a.nightly"})


@pytest.mark.parametrize(
    ("namespaces", "expected"),
    [
        pytest.param(
            (),
            ["default.team-a.gone", "default.team-b.nightly", "default.team-b.report.v2"],
            id="cluster-wide: every namespace is watched",
        ),
        pytest.param(
            ("team-a",),
            ["default.team-a.gone"],
            id="narrowed to team-a: team-b's live schedules are not orphans",
        ),
        pytest.param(
            ("team-b",),
            ["default.team-b.nightly", "default.team-b.report.v2"],
            id="watching team-b only: team-a's schedules (kept or not) are left alone",
        ),
        pytest.param(
            ("team-a", "team-b"),
            ["default.team-a.gone", "default.team-b.nightly", "default.team-b.report.v2"],
            id="two watched namespaces",
        ),
        pytest.param(("team-c",), [], id="a namespace with no schedules: nothing to delete"),
    ],
)
def test_only_schedules_of_watched_namespaces_can_be_orphans(
    namespaces: tuple[str, ...], expected: list[str]
) -> None:
    assert drift.orphans(OBSERVED, KEEP, cluster="default", namespaces=namespaces) == expected


def test_a_kept_schedule_is_never_an_orphan() -> None:
    assert drift.orphans(KEEP, KEEP, cluster="default", namespaces=()) == []


@pytest.mark.parametrize(
    ("sid", "namespaces", "expected"),
    [
        pytest.param("default.team-a.x", (), True, id="cluster-wide"),
        pytest.param("default.team-a.x", ("team-a",), True, id="watched namespace"),
        pytest.param("default.team-b.x", ("team-a",), False, id="unwatched namespace"),
        pytest.param("prod.team-a.x", (), False, id="other cluster name"),
        pytest.param("default.team-a", (), False, id="not one of our ids"),
    ],
)
def test_watches(sid: str, namespaces: tuple[str, ...], expected: bool) -> None:
    assert drift.watches(sid, cluster="default", namespaces=namespaces) is expected
