"""Names: schedule ids parse back, Job names match the CronJob controller's, everything fits 63."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from qstash_operator.domain import naming
from tests.unit.instants import TOP_OF_THE_HOUR


@pytest.mark.parametrize(
    ("cluster", "namespace", "name"),
    [
        pytest.param("prod", "default", "nightly", id="plain"),
        pytest.param("eu-west_1", "team-a", "report.v2.daily", id="dots in the CronWorkflow name"),
        pytest.param("c", "n", "x" * 52, id="longest name"),
    ],
)
def test_schedule_ids_parse_back(cluster: str, namespace: str, name: str) -> None:
    sid = naming.schedule_id(cluster, namespace, name)
    assert sid == f"{cluster}.{namespace}.{name}"
    assert naming.parse_schedule_id(sid) == naming.ScheduleOwner(cluster, namespace, name)
    assert sid.startswith(naming.schedule_id_prefix(cluster))


@pytest.mark.parametrize(
    "sid",
    [
        pytest.param("scd_7YoJxFpwk", id="a generated QStash id"),
        pytest.param("two.parts", id="too few parts"),
        pytest.param("..x", id="empty parts"),
        pytest.param("bad cluster.ns.name", id="space in the cluster"),
    ],
)
def test_foreign_schedule_ids_are_not_ours(sid: str) -> None:
    assert naming.parse_schedule_id(sid) is None


def test_cluster_names_with_dots_cannot_make_ids() -> None:
    with pytest.raises(ValueError, match="cannot build"):
        naming.schedule_id("my.cluster", "ns", "name")


def test_job_name_is_the_cronjob_controllers() -> None:
    # getJobName: <cronjob>-<scheduled time in unix minutes>
    assert (
        naming.job_name("report", TOP_OF_THE_HOUR)
        == f"report-{int(TOP_OF_THE_HOUR.timestamp()) // 60}"
    )
    # 2026-06-01 is day 20,605 after the epoch: 20,605 * 1440 + 10 * 60 minutes; seconds drop.
    assert (
        naming.job_name("report", datetime(2026, 6, 1, 10, 0, 59, tzinfo=UTC)) == "report-29671800"
    )


def test_longest_names_fit_in_63() -> None:
    longest = "a" * naming.MAX_CRONWORKFLOW_NAME
    assert len(naming.job_name(longest, datetime(2100, 1, 1, tzinfo=UTC))) <= naming.MAX_JOB_NAME
    manual = naming.manual_job_name(longest, "seed")
    assert len(manual) == naming.MAX_JOB_NAME
    assert "-manual-" in manual


def test_manual_names_are_deterministic_per_seed() -> None:
    assert naming.manual_job_name("x", "uid/1") == naming.manual_job_name("x", "uid/1")
    assert naming.manual_job_name("x", "uid/1") != naming.manual_job_name("x", "uid/2")
    assert naming.manual_job_name("x", "uid/1").startswith("x-manual-")
