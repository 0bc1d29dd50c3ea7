"""What a delivery does to a CronWorkflow: skips with events and metrics, Replace, history, 489.

Deliveries here are signed by the test with the QStash server's key and clock, so each case picks
exactly when it arrives relative to its tick (the server's driven clock is moved, no schedule is
needed).
"""

from __future__ import annotations

import asyncio

import pytest

from qstash_operator.domain import builders, model, naming, runs, vocabulary
from tests.integration.webhook.conftest import (
    DELIVERY_DELAY,
    FIRST_TICK,
    JOB_CONTROLLER_PATIENCE,
    Stack,
    job_template,
    poll,
)

LONG_RUNNING = job_template(**{"kwok.qstash-operator.dev/run-for": "120s"})


async def _at_first_tick(stack: Stack, seconds_late: float = DELIVERY_DELAY) -> None:
    await stack.qstash.set_time(FIRST_TICK.replace(second=0))
    await stack.qstash.advance(seconds_late)


@pytest.mark.parametrize(
    ("spec", "late", "outcome", "reason"),
    [
        pytest.param(
            {"suspend": True},
            DELIVERY_DELAY,
            "skipped_suspended",
            vocabulary.REASON_SKIPPED_SUSPENDED,
            id="suspended",
        ),
        pytest.param(
            {"startingDeadlineSeconds": 10},
            25,
            "skipped_deadline",
            vocabulary.REASON_SKIPPED_DEADLINE,
            id="delivered 25 s after its tick with a 10 s deadline",
        ),
    ],
)
async def test_a_skipped_tick_is_200_with_an_event_and_a_metric(
    stack: Stack, spec: dict[str, object], late: float, outcome: str, reason: str
) -> None:
    await stack.create_cronworkflow("skippy", **spec)
    await _at_first_tick(stack, late)
    status, body, _ = await stack.deliver("skippy", message_id="msg_skip")
    assert (status, body["outcome"]) == (200, outcome)
    assert await stack.jobs("skippy") == []
    assert reason in {event["reason"] for event in await stack.events("skippy")}
    assert stack.metric("qstash_webhook_skips_total", reason=outcome) == 1
    assert stack.metric("qstash_webhook_deliveries_total", result=outcome) == 1


async def test_forbid_skips_while_a_job_is_active(stack: Stack) -> None:
    await stack.create_cronworkflow("forbidden", concurrencyPolicy="Forbid", template=LONG_RUNNING)
    await _at_first_tick(stack)
    assert (await stack.deliver("forbidden", message_id="msg_1"))[1]["outcome"] == "run"
    await stack.qstash.advance(60)
    status, body, _ = await stack.deliver("forbidden", message_id="msg_2")
    assert (status, body["outcome"]) == (200, "skipped_forbid")
    assert len(await stack.jobs("forbidden")) == 1
    reasons = {event["reason"] for event in await stack.events("forbidden")}
    assert vocabulary.REASON_SKIPPED_FORBID in reasons


async def test_replace_deletes_the_active_job_before_creating_the_next(stack: Stack) -> None:
    await stack.create_cronworkflow("replaced", concurrencyPolicy="Replace", template=LONG_RUNNING)
    await _at_first_tick(stack)
    first = (await stack.deliver("replaced", message_id="msg_1"))[1]["job"]
    await stack.qstash.advance(60)
    status, body, _ = await stack.deliver("replaced", message_id="msg_2")
    assert (status, body["outcome"]) == (200, "run")
    assert body["job"] == naming.job_name("replaced", FIRST_TICK.replace(minute=1))

    await poll(
        lambda: stack.job_is_going("replaced", first),
        what=f"Job {first} deleted",
        describe=stack.describe_runs,
    )
    status_ = (await stack.get("replaced"))["status"]
    assert [ref["name"] for ref in status_["active"]] == [body["job"]]


async def test_replace_waits_for_a_reserved_run_and_then_replaces_it(stack: Stack) -> None:
    cw = await stack.create_cronworkflow(
        "relay", concurrencyPolicy="Replace", template=LONG_RUNNING
    )
    await _at_first_tick(stack)
    # A manual run has reserved its Job, as RunService does before creating it, and has not
    # created it yet. Running the tick now would start it beside that Job: nothing to delete yet.
    reserved = "relay-manual-aaaaa"
    reservation = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": reserved,
        "namespace": stack.namespace,
        "uid": runs.reservation_uid(stack.clock()),
    }
    await stack.kube.patch_cronworkflow(
        stack.namespace, "relay", {"status": {"active": [reservation]}}, status=True
    )
    status, body, headers = await stack.deliver("relay", message_id="msg_1")
    assert (status, body["reason"]) == (503, "RunInFlight")
    assert reserved in body["error"]
    assert headers["Retry-After"] == "2"
    assert await stack.jobs("relay") == []

    # The manual run creates its Job; QStash's retry of the same message then replaces it.
    manual = builders.build_job(
        model.parse(cw),
        name=reserved,
        trigger=vocabulary.TRIGGER_MANUAL,
        backend=None,
        requested_by="tester",
    )
    await stack.kube.create_job(manual)
    await stack.qstash.advance(2)
    status, body, _ = await stack.deliver("relay", message_id="msg_1")
    assert (status, body["outcome"]) == (200, "run")
    assert body["job"] == naming.job_name("relay", FIRST_TICK)

    await poll(
        lambda: stack.job_is_going("relay", reserved),
        what=f"Job {reserved} deleted",
        describe=stack.describe_runs,
    )
    active = (await stack.get("relay"))["status"]["active"]
    assert [ref["name"] for ref in active] == [body["job"]]


async def test_history_limits_prune_the_oldest_finished_jobs(stack: Stack) -> None:
    await stack.create_cronworkflow("history", successfulJobsHistoryLimit=1)
    await _at_first_tick(stack)
    names = []
    for minute in range(3):
        status, body, _ = await stack.deliver("history", message_id=f"msg_{minute}")
        assert (status, body["outcome"]) == (200, "run")
        names.append(body["job"])

        async def finished(job_name: str = body["job"]) -> bool:
            jobs = {job["metadata"]["name"]: job for job in await stack.jobs("history")}
            conditions = jobs[job_name].get("status", {}).get("conditions") or []
            return any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)

        await poll(
            finished,
            within=JOB_CONTROLLER_PATIENCE,
            what=f"Job {body['job']} complete",
            describe=stack.describe_runs,
        )
        await stack.qstash.advance(60)
    remaining = {job["metadata"]["name"] for job in await stack.jobs("history")}
    assert names[0] not in remaining  # pruned when the third ran
    assert names[2] in remaining


async def test_a_deleted_cronworkflow_is_non_retryable(stack: Stack) -> None:
    await _at_first_tick(stack)
    status, body, headers = await stack.deliver("never-was", message_id="msg_x", uid="gone")
    assert status == 489
    assert headers["Upstash-NonRetryable-Error"] == "true"
    assert body["reason"] == "CronWorkflowGone"


async def test_a_recreated_cronworkflow_refuses_the_old_schedules_uid(stack: Stack) -> None:
    await stack.create_cronworkflow("reborn")
    await _at_first_tick(stack)
    status, body, headers = await stack.deliver("reborn", message_id="msg_x", uid="old-uid")
    assert status == 489
    assert headers["Upstash-NonRetryable-Error"] == "true"
    assert body["reason"] == "UidMismatch"
    assert await stack.jobs("reborn") == []


async def test_a_used_up_resource_quota_is_a_503_quota_exceeded_not_an_rbac_error(
    stack: Stack,
) -> None:
    """ResourceQuota admission answers 403 like the authorizer does; the delivery must say
    "quota" and ask QStash to come back, not log an RBAC failure of the webhook's account."""
    plane, namespace = stack.control_plane, stack.namespace
    quotas = f"/api/v1/namespaces/{namespace}/resourcequotas"
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-jobs"},
        "spec": {"hard": {"count/jobs.batch": "0"}},
    }
    status, answer = await asyncio.to_thread(plane.request, "POST", quotas, quota)
    assert status == 201, answer
    usage = {"status": {"hard": {"count/jobs.batch": "0"}, "used": {"count/jobs.batch": "0"}}}
    status, answer = await asyncio.to_thread(
        plane.request,
        "PATCH",
        f"{quotas}/no-jobs/status",
        usage,
        content_type="application/merge-patch+json",
    )  # what the quota controller (not run in the test bed) would write
    assert status == 200, answer
    await stack.create_cronworkflow("crowded")
    await _at_first_tick(stack)
    status, body, headers = await stack.deliver("crowded", message_id="msg_quota")
    assert (status, body["reason"]) == (503, "QuotaExceeded"), body
    assert headers["Retry-After"] == "30"
    assert "exceeded quota: no-jobs" in body["error"]
    assert await stack.jobs("crowded") == []
