"""Two namespaced releases on one QStash account, with the same (default) ``clusterName``.

Each operator watches its own namespace and runs drift repair every second. A schedule id is
``<clusterName>.<namespace>.<name>``, so both see each other's schedules under their common
prefix; a schedule may only be taken for an orphan when its namespace is one the operator
watches. Before that rule, each pass of either operator deleted the other's live schedule (and
the other recreated it as "missing" on its next pass).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from qstash import QStash
from tests.conftest import extra_namespace
from tests.e2e.test_operator_qstash import metric
from tests.reliability.conftest import check_no_secrets

from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.stack import Stack, cronworkflow, running_stack, wait
from qstash_server.testing import ThreadedServer

pytestmark = [pytest.mark.timeout(180)]

SHARED_CLUSTER_NAME = "default"  # the chart's default: what two releases get unless told
DRIFT_PASSES = 3


def _schedule_ids(client: QStash) -> set[str]:
    return {schedule.schedule_id for schedule in client.schedule.list()}


def test_two_namespaced_releases_with_one_cluster_name_keep_each_others_schedules(
    control_plane: ControlPlane,
    qstash: ThreadedServer,
    stack: Stack,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    client = QStash(qstash.token, base_url=qstash.url, retry=False)
    workdir = tmp_path / "release-b"
    workdir.mkdir()
    with (
        extra_namespace(control_plane, request, "b") as namespace_b,
        running_stack(control_plane, qstash, workdir, namespace_b, request) as other,
    ):
        ports = {}
        for release in (stack, other):
            release.cluster_name = SHARED_CLUSTER_NAME
            _, ports[release.namespace] = release.operator(
                extra_env={"QSTASH_OPERATOR_RESYNC_SECONDS": "1"}
            )
            release.apply(cronworkflow("nightly", {"schedule": "0 3 * * *"}))
        for release in (stack, other):
            release.wait_condition("nightly", "Ready", "True")
        ours = {f"{SHARED_CLUSTER_NAME}.{r.namespace}.nightly" for r in (stack, other)}
        assert ours <= _schedule_ids(client)

        # Several drift passes of each operator: one list call per pass and per operator.
        qstash.reset_api_calls()
        wait(
            lambda: qstash.api_calls().get("schedules.list", 0) >= 2 * DRIFT_PASSES,
            timeout=30,
            what=f"{DRIFT_PASSES} drift passes of each operator",
        )
        calls = qstash.api_calls()
        assert calls.get("schedules.delete", 0) == 0, calls
        assert calls.get("schedules.create", 0) == 0, calls  # nothing deleted, nothing recreated
        assert ours <= _schedule_ids(client)
        for port in ports.values():
            assert metric(port, "qstash_operator_drift_repairs_total", kind="orphan") == 0.0

        # Drift still deletes a real orphan, and only the release that watches its namespace does.
        orphan = f"{SHARED_CLUSTER_NAME}.{stack.namespace}.deleted-long-ago"
        client.schedule.create(
            destination=f"{stack.public_url}/api/qstash/webhook",
            cron="* * * * *",
            schedule_id=orphan,
        )
        wait(lambda: orphan not in _schedule_ids(client), timeout=30, what="the orphan deleted")
        assert (
            metric(ports[stack.namespace], "qstash_operator_drift_repairs_total", kind="orphan")
            == 1
        )
        assert metric(ports[namespace_b], "qstash_operator_drift_repairs_total", kind="orphan") == 0
        assert ours <= _schedule_ids(client)
        check_no_secrets(
            control_plane,
            namespace_b,
            [child.log for child in other.children],
            [qstash.token, qstash.current_key, qstash.next_key],
        )
