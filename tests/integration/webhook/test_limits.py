"""``spec.maxRuns`` end to end on the real control plane: QStash's ticks, the webhook, the operator.

The QStash-compatible server fires the schedule by its driven clock and delivers to the real
webhook app (whose clock is that same clock); the operator's reconcile and refresh are the real
``services.reconcile.Reconciler`` against the same API server and QStash, called directly where
kopf would call them (the create handler, then the 30 s timer), with the status patch kopf would
write. So no test waits on the wall clock, and every check reads what the API server and QStash
hold.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from qstash import AsyncQStash

from qstash_operator.adapters.operator_metrics import OperatorMetrics
from qstash_operator.adapters.qstash_api import QStashSchedules
from qstash_operator.domain import vocabulary
from qstash_operator.services.reconcile import Reconciler
from tests.integration.webhook.conftest import DELIVERY_DELAY, Stack


async def _operator_cycle(stack: Stack, reconciler: Reconciler, name: str, *, timer: bool) -> None:
    """One handler call as kopf makes it: plan and act, then write the status patch."""
    body = await stack.get(name)
    cycle = reconciler.refresh if timer else reconciler.reconcile
    result = await cycle(body, now=stack.clock())
    assert result.error is None, result.error
    if result.status:
        await stack.kube.patch_cronworkflow(
            stack.namespace, name, {"status": result.status}, status=True
        )


async def _next_tick(stack: Stack, name: str) -> list[dict[str, Any]]:
    """Move QStash's clock just past the next minute; the ticks it fired for ``name``."""
    now = stack.clock()
    following = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    fired = await stack.qstash.advance((following - now).total_seconds() + DELIVERY_DELAY)
    ticks = [f for f in fired if f["scheduleId"] == stack.schedule_id(name)]
    for tick in ticks:
        await stack.qstash.wait_for_message(tick["messageId"])
    return ticks


async def _schedule_ids(stack: Stack) -> set[str]:
    client = AsyncQStash(stack.qstash.token, base_url=stack.qstash.url, retry=False)
    try:
        return {s.schedule_id for s in await client.schedule.list()}
    finally:
        await client.http._client.aclose()


async def test_max_runs_two_makes_two_jobs_then_removes_the_qstash_schedule(stack: Stack) -> None:
    settings = stack.settings()
    assert settings.qstash.token is not None
    qstash = QStashSchedules(token=settings.qstash.token.reveal(), base_url=settings.qstash.url)
    reconciler = Reconciler(
        settings=settings, kube=stack.kube, qstash=qstash, metrics=OperatorMetrics()
    )
    try:
        await _twice(stack, reconciler)
    finally:
        await qstash.close()


async def _twice(stack: Stack, reconciler: Reconciler) -> None:
    await stack.create_cronworkflow("twice", maxRuns=2)
    await _operator_cycle(stack, reconciler, "twice", timer=False)
    sid = stack.schedule_id("twice")
    assert sid in await _schedule_ids(stack)

    for expected_runs in (1, 2):
        [tick] = await _next_tick(stack, "twice")
        assert (await stack.qstash.wait_for_message(tick["messageId"]))["state"] == "SUCCESS"
        assert (await stack.get("twice"))["status"]["scheduledRuns"] == expected_runs
    assert len(await stack.jobs("twice")) == 2
    # The last allowed run says there is no next one.
    assert "nextScheduleTime" not in (await stack.get("twice"))["status"]

    # A third tick before the operator's timer has looked: the webhook refuses it.
    [late] = await _next_tick(stack, "twice")
    assert (await stack.qstash.wait_for_message(late["messageId"]))["state"] == "SUCCESS"
    assert len(await stack.jobs("twice")) == 2
    assert vocabulary.REASON_COMPLETED in {e["reason"] for e in await stack.events("twice")}
    assert stack.metric("qstash_webhook_deliveries_total", result="skipped_completed") == 1

    # The timer: Completed, and the QStash schedule is gone.
    await _operator_cycle(stack, reconciler, "twice", timer=True)
    assert sid not in await _schedule_ids(stack)
    status = (await stack.get("twice"))["status"]
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", vocabulary.REASON_COMPLETED)
    assert "2 of spec.maxRuns=2" in ready["message"]
    assert "appliedScheduleHash" not in status
    assert await _next_tick(stack, "twice") == []  # nothing fires any more
    assert len(await stack.jobs("twice")) == 2
