"""``spec.schedules`` end to end on the real control plane: QStash, the webhook, the operator.

As in ``test_limits``: the QStash-compatible server fires each entry's schedule by its driven
clock and delivers to the real webhook app (same clock); the operator's reconcile and refresh are
the real ``services.reconcile.Reconciler`` against the same API server and QStash, called where
kopf would call them, with the status patch kopf would write. The clock starts two seconds
before 10:00 (``conftest.START``); every check reads what the API server and QStash hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from qstash import AsyncQStash

from qstash_operator.adapters.operator_metrics import OperatorMetrics
from qstash_operator.adapters.qstash_api import QStashSchedules
from qstash_operator.domain import naming, vocabulary
from qstash_operator.services.drift import DriftRepair
from qstash_operator.services.reconcile import Reconciler
from tests.integration.webhook.conftest import CLUSTER, DELIVERY_DELAY, Stack

DECLARED = [
    {"name": "mode", "type": "enum", "enum": ["quick", "full"], "default": "quick"},
    {"name": "batch", "type": "integer", "default": "10"},
]


def _env(job: dict[str, Any]) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item["value"] for item in container["env"]}


def _entry_id(stack: Stack, name: str, entry: str) -> str:
    return naming.schedule_id(CLUSTER, stack.namespace, name, entry)


@pytest.fixture
async def reconciler(stack: Stack) -> AsyncIterator[Reconciler]:
    settings = stack.settings()
    assert settings.qstash.token is not None
    qstash = QStashSchedules(token=settings.qstash.token.reveal(), base_url=settings.qstash.url)
    try:
        yield Reconciler(
            settings=settings, kube=stack.kube, qstash=qstash, metrics=OperatorMetrics()
        )
    finally:
        await qstash.close()


async def _cycle(stack: Stack, reconciler: Reconciler, name: str, *, timer: bool) -> None:
    """One handler call as kopf makes it: plan and act, then write the status patch."""
    body = await stack.get(name)
    cycle = reconciler.refresh if timer else reconciler.reconcile
    result = await cycle(body, now=stack.clock())
    assert result.error is None, result.error
    if result.status:
        await stack.kube.patch_cronworkflow(
            stack.namespace, name, {"status": result.status}, status=True
        )


async def _minute(stack: Stack) -> list[dict[str, Any]]:
    """Move QStash's clock just past the next minute; every tick it fired, each delivered."""
    now = stack.clock()
    following = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    fired = await stack.qstash.advance((following - now).total_seconds() + DELIVERY_DELAY)
    for tick in fired:
        await stack.qstash.wait_for_message(tick["messageId"])
    return fired


async def _schedule_ids(stack: Stack) -> set[str]:
    client = AsyncQStash(stack.qstash.token, base_url=stack.qstash.url, retry=False)
    try:
        return {s.schedule_id for s in await client.schedule.list()}
    finally:
        await client.http._client.aclose()


async def test_two_entries_at_different_minutes_make_two_jobs_with_their_own_parameters(
    stack: Stack, reconciler: Reconciler
) -> None:
    await stack.create_cronworkflow(
        "two",
        schedule=None,
        parameters=DECLARED,
        schedules=[
            {"name": "even", "cron": "*/2 * * * *", "parameters": {"batch": "2"}},
            {"name": "odd", "cron": "1-59/2 * * * *", "parameters": {"mode": "full"}},
        ],
    )
    await _cycle(stack, reconciler, "two", timer=False)
    even, odd = _entry_id(stack, "two", "even"), _entry_id(stack, "two", "odd")
    assert {even, odd} <= await _schedule_ids(stack)
    status = (await stack.get("two"))["status"]
    assert [(s["name"], s["scheduleId"]) for s in status["schedules"]] == [
        ("even", even),
        ("odd", odd),
    ]
    assert "scheduleId" not in status

    fired = [tick["scheduleId"] for tick in await _minute(stack)]  # 10:00
    fired += [tick["scheduleId"] for tick in await _minute(stack)]  # 10:01
    assert fired == [even, odd]

    jobs = await stack.jobs("two")
    assert [job["metadata"]["name"] for job in jobs] == [
        naming.job_name("two", stack.first_tick),
        naming.job_name("two", stack.first_tick + timedelta(minutes=1)),
    ]
    assert [_env(job) for job in jobs] == [
        {"PARAM_MODE": "quick", "PARAM_BATCH": "2"},
        {"PARAM_MODE": "full", "PARAM_BATCH": "10"},
    ]
    assert [
        job["metadata"]["annotations"][vocabulary.ANNOTATION_SCHEDULE_ENTRY] for job in jobs
    ] == [
        "even",
        "odd",
    ]
    status = (await stack.get("two"))["status"]
    assert status["scheduledRuns"] == 2
    assert status["nextScheduleTime"] == "2026-11-28T10:02:00Z"  # the union's next tick


async def test_two_entries_at_the_same_minute_make_one_job_with_the_winners_parameters(
    stack: Stack, reconciler: Reconciler
) -> None:
    await stack.create_cronworkflow(
        "same",
        schedule=None,
        parameters=DECLARED,
        schedules=[
            {"name": "first", "cron": "* * * * *", "parameters": {"batch": "1"}},
            {"name": "second", "cron": "* * * * *", "parameters": {"mode": "full"}},
        ],
    )
    await _cycle(stack, reconciler, "same", timer=False)
    for minute in range(2):
        fired = await _minute(stack)
        assert len(fired) == 2  # both entries' schedules fired and were delivered
        for tick in fired:
            message = await stack.qstash.wait_for_message(tick["messageId"])
            assert message["state"] == "SUCCESS", message
        jobs = await stack.jobs("same")
        assert len(jobs) == minute + 1
    assert [_env(job) for job in jobs] == [{"PARAM_MODE": "quick", "PARAM_BATCH": "1"}] * 2
    assert stack.metric("qstash_webhook_deliveries_total", result="run") == 2
    assert stack.metric("qstash_webhook_deliveries_total", result="duplicate_tick") == 2
    delivered = {d["scheduleId"] for d in await stack.qstash.deliveries()}
    assert delivered == {_entry_id(stack, "same", "first"), _entry_id(stack, "same", "second")}


async def test_schedule_to_schedules_and_an_entry_removed_keep_every_tick(
    stack: Stack, reconciler: Reconciler
) -> None:
    """``schedule`` → ``schedules``: the new entries' schedules are made first, the old one stays
    until the shared tick after QStash's load grace, and then goes; every minute has exactly one
    Job throughout. Then an entry removed is retired the same way, and the drift-repaired set is
    exactly the spec's."""
    await stack.create_cronworkflow("moving", schedule="* * * * *", successfulJobsHistoryLimit=20)
    await _cycle(stack, reconciler, "moving", timer=False)
    single = stack.schedule_id("moving")
    await _minute(stack)  # 10:00 by the single schedule

    patch = {
        "spec": {
            "schedule": None,
            "schedules": [
                {"name": "a", "cron": "* * * * *"},
                {"name": "b", "cron": "*/2 * * * *"},
            ],
        }
    }
    await stack.kube.patch_cronworkflow(stack.namespace, "moving", patch)
    await _cycle(stack, reconciler, "moving", timer=False)
    a, b = _entry_id(stack, "moving", "a"), _entry_id(stack, "moving", "b")
    assert {single, a, b} <= await _schedule_ids(stack)  # new first, old kept for now
    retiring = (await stack.get("moving"))["status"]["retiring"]
    assert retiring["scheduleIds"] == [single]

    for _ in range(3):  # 10:01, 10:02, 10:03: old and new both fire; one Job per tick
        await _minute(stack)
        await _cycle(stack, reconciler, "moving", timer=True)
    assert single not in await _schedule_ids(stack)  # retired after 10:02 (+60 s grace, +30 s)
    assert "retiring" not in (await stack.get("moving"))["status"]
    names = [job["metadata"]["name"] for job in await stack.jobs("moving")]
    assert names == [
        naming.job_name("moving", stack.first_tick + timedelta(minutes=m)) for m in range(4)
    ]

    only_a = {"spec": {"schedules": [{"name": "a", "cron": "* * * * *"}]}}
    await stack.kube.patch_cronworkflow(stack.namespace, "moving", only_a)
    await _cycle(stack, reconciler, "moving", timer=False)
    assert (await stack.get("moving"))["status"]["retiring"]["scheduleIds"] == [b]
    for _ in range(3):
        await _minute(stack)
        await _cycle(stack, reconciler, "moving", timer=True)
    assert {sid for sid in await _schedule_ids(stack) if "moving" in sid} == {a}
    names = [job["metadata"]["name"] for job in await stack.jobs("moving")]
    assert names == [
        naming.job_name("moving", stack.first_tick + timedelta(minutes=m)) for m in range(7)
    ]


async def test_drift_repair_recreates_a_missing_entry_and_deletes_only_watched_orphans(
    stack: Stack, reconciler: Reconciler
) -> None:
    await stack.create_cronworkflow(
        "drifting",
        schedule=None,
        schedules=[{"name": "a", "cron": "0 3 * * *"}, {"name": "b", "cron": "0 4 * * *"}],
    )
    await _cycle(stack, reconciler, "drifting", timer=False)
    a, b = _entry_id(stack, "drifting", "a"), _entry_id(stack, "drifting", "b")
    gone = _entry_id(stack, "drifting", "removed")  # an entry no spec has any more
    elsewhere = naming.schedule_id(CLUSTER, "not-watched", "x", "y")
    client = AsyncQStash(stack.qstash.token, base_url=stack.qstash.url, retry=False)
    try:
        await client.schedule.delete(b)
        for stray in (gone, elsewhere):
            await client.schedule.create(
                destination=stack.destination, cron="0 5 * * *", body="{}", schedule_id=stray
            )
    finally:
        await client.http._client.aclose()

    settings = dataclasses.replace(stack.settings(), namespaces=(stack.namespace,))
    assert settings.qstash.token is not None
    qstash = QStashSchedules(token=settings.qstash.token.reveal(), base_url=settings.qstash.url)
    try:
        drift = DriftRepair(
            settings=settings, kube=stack.kube, qstash=qstash, metrics=OperatorMetrics()
        )
        report = await drift.run_once(now=stack.clock())
    finally:
        await qstash.close()
    assert report.recreated == (b,)
    assert report.orphans_deleted == (gone,)
    assert {a, b, elsewhere} <= await _schedule_ids(stack)
    assert gone not in await _schedule_ids(stack)


async def _marker_cronjobs(stack: Stack, name: str) -> set[str]:
    selector = f"{vocabulary.LABEL_MARKER_OF}={name}"
    return {
        item["metadata"]["name"]
        for item in await stack.kube.list_cronjobs(stack.namespace, selector)
        if not item["metadata"].get("deletionTimestamp")
    }


async def test_leaving_the_cronjob_backend_with_an_entry_renamed_leaves_no_marker_cronjob(
    stack: Stack, reconciler: Reconciler
) -> None:
    """The leak found in review, on the real API server: one edit switches CronJob → QStash and
    renames entry b to c. The switch rewrites ``status.schedules`` with QStash ids, so b's marker
    CronJob is named by no record; the handover's retirement still removes it (found by label),
    with a's, and the QStash schedules of a and c are what is left."""
    await stack.create_cronworkflow(
        "leaving",
        schedule=None,
        backend="CronJob",
        schedules=[{"name": "a", "cron": "* * * * *"}, {"name": "b", "cron": "*/2 * * * *"}],
    )
    await _cycle(stack, reconciler, "leaving", timer=False)
    old = {naming.entry_cronjob_name("leaving", entry) for entry in ("a", "b")}
    assert await _marker_cronjobs(stack, "leaving") == old

    patch = {
        "spec": {
            "backend": "QStash",
            "schedules": [{"name": "a", "cron": "* * * * *"}, {"name": "c", "cron": "*/2 * * * *"}],
        }
    }
    await stack.kube.patch_cronworkflow(stack.namespace, "leaving", patch)
    await _cycle(stack, reconciler, "leaving", timer=False)
    status = (await stack.get("leaving"))["status"]
    assert status["handover"]["from"] == "CronJob"
    assert naming.entry_cronjob_name("leaving", "b") not in str(status)
    assert await _marker_cronjobs(stack, "leaving") == old  # live until the shared tick

    for _ in range(3):  # 10:00, 10:01, 10:02: the handover is due at 10:02:30
        await _minute(stack)
        await _cycle(stack, reconciler, "leaving", timer=True)
    assert "handover" not in (await stack.get("leaving"))["status"]
    assert await _marker_cronjobs(stack, "leaving") == set()
    kept = {sid for sid in await _schedule_ids(stack) if "leaving" in sid}
    assert kept == {_entry_id(stack, "leaving", "a"), _entry_id(stack, "leaving", "c")}
    reasons = [event["reason"] for event in await stack.events("leaving")]
    assert reasons.count(vocabulary.REASON_HANDOVER_COMPLETE) >= 2  # a's and b's CronJobs
