"""The pure parts of the seed's list and status views: summaries and drift."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from qstash_operator.adapters.qstash_api import ObservedSchedule
from qstash_operator.services.catalog import find_drift, summarize
from tests.unit.domain import factories
from tests.unit.webhook import support

NOW = support.JUST_AFTER_THE_HOUR  # 2026-11-28 10:00:02 UTC


def cronworkflow(name: str = "backup", **spec: Any) -> dict[str, Any]:
    status = spec.pop("status", {})
    return {
        "metadata": {"namespace": "default", "name": name, "uid": f"uid-{name}"},
        "spec": {
            "schedule": "30 2 * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}},
            **spec,
        },
        "status": status,
    }


@pytest.mark.parametrize(
    ("spec", "state", "next_run"),
    [
        pytest.param({}, "active", datetime(2026, 11, 29, 2, 30, tzinfo=UTC), id="UTC, daily"),
        pytest.param(
            {"timeZone": "Europe/Berlin"},
            "active",
            datetime(2026, 11, 29, 1, 30, tzinfo=UTC),
            id="Berlin in winter is UTC+1",
        ),
        pytest.param({"suspend": True}, "suspended", None, id="suspended: no next run"),
        pytest.param(
            {"schedule": "61 * * * *"},
            "invalid",
            None,
            id="an invalid schedule is shown, not raised",
        ),
    ],
)
def test_summaries(spec: dict[str, Any], state: str, next_run: datetime | None) -> None:
    summary = summarize(cronworkflow(**spec), now=NOW)
    assert summary.state == state
    assert summary.next_run == next_run
    assert (summary.problem is not None) == (state == "invalid")


def test_the_next_run_is_after_the_last_run_even_when_that_ran_early() -> None:
    """A delivery within the clock tolerance before 10:01 ran the 10:01 tick at 10:00:50; at that
    moment the next run is 10:02, not the 10:01 that just ran (issue 12)."""
    status = {"lastScheduleTime": "2026-11-28T10:01:00Z"}
    early = datetime(2026, 11, 28, 10, 0, 50, tzinfo=UTC)
    summary = summarize(cronworkflow(schedule="* * * * *", status=status), now=early)
    assert summary.next_run == datetime(2026, 11, 28, 10, 2, tzinfo=UTC)


def test_a_summary_reads_the_operators_status() -> None:
    status = {
        "backend": "QStash",
        "scheduleId": "default.default.backup",
        "lastScheduleTime": "2026-11-28T02:30:00Z",
        "active": [{"name": "backup-29403270"}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "ok"}],
    }
    summary = summarize(cronworkflow(status=status), now=NOW)
    assert summary.backend == "QStash"
    assert summary.schedule_id == "default.default.backup"
    assert summary.last_run == datetime(2026, 11, 28, 2, 30, tzinfo=UTC)
    assert summary.active_jobs == ("backup-29403270",)
    assert summary.ready.status == "True"


def schedule(sid: str) -> ObservedSchedule:
    return factories.observed_schedule(sid, destination=support.DESTINATION)


def test_drift_names_missing_schedules_and_orphans_of_this_cluster_only() -> None:
    summaries = [
        summarize(cronworkflow("kept", status={"scheduleId": "prod.default.kept"}), now=NOW),
        summarize(cronworkflow("lost", status={"scheduleId": "prod.default.lost"}), now=NOW),
        summarize(cronworkflow("dev-mode"), now=NOW),  # no schedule id: CronJob backend
    ]
    schedules = [
        schedule("prod.default.kept"),
        schedule("prod.default.deleted-cr"),
        schedule("staging.default.other-cluster"),
        schedule("scd_handmade"),
    ]
    drift = find_drift(summaries, schedules, cluster="prod")
    assert drift.missing_schedules == ("default/lost",)
    assert drift.orphan_schedules == ("prod.default.deleted-cr",)


def test_drift_of_a_namespaced_release_leaves_other_namespaces_schedules_out() -> None:
    """Another release with the same cluster name watches team-b: its schedules are not ours."""
    summaries = [
        summarize(cronworkflow("kept", status={"scheduleId": "prod.default.kept"}), now=NOW)
    ]
    schedules = [
        schedule("prod.default.kept"),
        schedule("prod.default.deleted-cr"),
        schedule("prod.team-b.nightly"),
    ]
    drift = find_drift(summaries, schedules, cluster="prod", namespaces=("default",))
    assert drift.orphan_schedules == ("prod.default.deleted-cr",)
