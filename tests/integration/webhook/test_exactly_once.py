"""One Job per QStash message, at most one per (CronWorkflow uid, tick): each way it can break.

Real API server, real signed deliveries from the QStash-compatible server, the real webhook app.
Each test asserts on what the API server holds afterwards (the Jobs), not on what we answered.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import aiohttp
import pytest

from qstash_operator.domain import naming, signature, vocabulary
from qstash_operator.domain.builders import rfc3339
from qstash_server.testing import header
from qstash_webhook import typedefs
from tests.integration.webhook.conftest import DELIVERY_DELAY, Stack, job_template


async def _fire_next_tick(stack: Stack, name: str) -> str:
    """Move QStash's clock just past the next minute; return the message id of its tick."""
    now = stack.clock()
    following = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    fired = await stack.qstash.advance((following - now).total_seconds() + DELIVERY_DELAY)
    [tick] = [f for f in fired if f["scheduleId"] == stack.schedule_id(name)]
    return tick["messageId"]


async def test_a_tick_becomes_one_job_with_its_name_owner_labels_and_annotations(
    stack: Stack,
) -> None:
    cw = await stack.create_cronworkflow("report", timeZone="Europe/Berlin")
    await stack.schedule(cw)
    message_id = await _fire_next_tick(stack, "report")
    outcome = await stack.qstash.wait_for_message(message_id)
    assert outcome["state"] == "SUCCESS"

    [job] = await stack.jobs("report")
    meta = job["metadata"]
    assert meta["name"] == naming.job_name("report", stack.first_tick)
    assert meta["annotations"][vocabulary.ANNOTATION_SCHEDULED_TIME] == rfc3339(stack.first_tick)
    assert meta["annotations"][vocabulary.ANNOTATION_MESSAGE_ID] == message_id
    assert meta["annotations"][vocabulary.ANNOTATION_K8S_SCHEDULED_TIME].endswith("+01:00")
    assert meta["labels"][vocabulary.LABEL_TRIGGER] == vocabulary.TRIGGER_SCHEDULE
    assert meta["ownerReferences"][0]["uid"] == cw["metadata"]["uid"]
    status = (await stack.get("report"))["status"]
    assert status["lastScheduleTime"] == rfc3339(stack.first_tick)
    # Written with it: the next run is the tick after this one, never this one (issue 12).
    assert status["nextScheduleTime"] == rfc3339(stack.first_tick + timedelta(minutes=1))
    assert [ref["name"] for ref in status["active"]] == [meta["name"]]
    reasons = {event["reason"] for event in await stack.events("report")}
    assert vocabulary.REASON_SUCCESSFUL_CREATE in reasons
    assert stack.metric("qstash_webhook_deliveries_total", result="run") == 1
    assert stack.metric("qstash_webhook_job_creation_seconds_count") == 1
    # tick to Job created: the delivery's lateness plus the time it took to create the Job
    created_after = stack.metric("qstash_webhook_job_creation_seconds_sum")
    assert DELIVERY_DELAY < created_after < DELIVERY_DELAY + 5


@pytest.mark.parametrize(
    "concurrent",
    [
        pytest.param(False, id="the duplicate arrives after the first answer"),
        pytest.param(True, id="the duplicate arrives while the first is in flight"),
    ],
)
async def test_the_same_message_twice_makes_one_job(stack: Stack, concurrent: bool) -> None:
    cw = await stack.create_cronworkflow("twice")
    await stack.schedule(cw)
    await stack.qstash.duplicate_deliveries(1, concurrent=concurrent)
    message_id = await _fire_next_tick(stack, "twice")
    attempts = await stack.qstash.wait_for_deliveries(2, message_id=message_id)
    assert {attempt["status"] for attempt in attempts} == {200}
    assert len(await stack.jobs("twice")) == 1


async def test_a_retry_after_a_lost_response_makes_no_second_job(stack: Stack) -> None:
    cw = await stack.create_cronworkflow("lost")
    await stack.schedule(cw)
    await stack.qstash.drop_responses(1)
    message_id = await _fire_next_tick(stack, "lost")
    outcome = await stack.qstash.wait_for_message(message_id)
    assert outcome["attempts"] == 2
    attempts = await stack.qstash.deliveries(message_id=message_id)
    assert header(attempts[-1], "Upstash-Retried") == "1"
    assert len(await stack.jobs("lost")) == 1


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param("Allow", id="Allow: the Job name is the lock"),
        pytest.param("Forbid", id="Forbid: the status reservation is the lock"),
    ],
)
async def test_two_replicas_receiving_one_message_at_once_make_one_job(
    stack: Stack, policy: str
) -> None:
    await stack.create_cronworkflow("replicated", concurrencyPolicy=policy)
    second = await stack.start_webhook()
    body = b'{"name":"replicated","namespace":"%s","uid":"%s"}' % (
        stack.namespace.encode(),
        (await stack.get("replicated"))["metadata"]["uid"].encode(),
    )
    now = stack.clock()
    token = signature.sign(
        body=body,
        url=stack.destination,
        key=stack.qstash.current_key,
        now=int(now.timestamp()),
        jwt_id="jwt_replicas",
    )
    headers = {"Upstash-Signature": token, "Upstash-Message-Id": "msg_replicas"}
    async with aiohttp.ClientSession() as session:

        async def post(url: str) -> int:
            async with session.post(f"{url}/api/qstash/webhook", data=body, headers=headers) as r:
                return r.status

        statuses = await asyncio.gather(*(post(w.url) for w in (stack.webhook, second) * 3))
    assert set(statuses) == {200}
    assert len(await stack.jobs("replicated")) == 1


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param("Allow", id="Allow: one tick Job and one manual Job"),
        pytest.param("Forbid", id="Forbid: only one of them runs"),
    ],
)
async def test_a_manual_trigger_racing_a_tick(stack: Stack, policy: str) -> None:
    cw = await stack.create_cronworkflow(
        "raced",
        concurrencyPolicy=policy,
        template=job_template(**{"kwok.qstash-operator.dev/run-for": "60s"}),
    )
    await stack.schedule(cw)
    runs = stack.webhook.app[typedefs.runs_key]
    fired = asyncio.create_task(_fire_next_tick(stack, "raced"))
    manual = asyncio.create_task(
        runs.run_manual(
            namespace=stack.namespace,
            name="raced",
            requested_by="tester",
            seed="race-1",
            now=stack.clock(),
        )
    )
    message_id = await fired
    await manual
    await stack.qstash.wait_for_message(message_id)
    names = [job["metadata"]["name"] for job in await stack.jobs("raced")]
    tick_jobs = [name for name in names if "-manual-" not in name]
    assert len(tick_jobs) <= 1
    if policy == "Allow":
        assert len(names) == 2
    else:
        assert len(names) == 1


async def test_api_server_down_answers_503_and_the_retry_runs_the_tick(stack: Stack) -> None:
    cw = await stack.create_cronworkflow("outage")
    await stack.schedule(cw, retries=30)
    # Our 503 asks for Retry-After: 10 s; the server scales waits by this factor (0.2 -> 2 s).
    await stack.qstash.set_settings(backoff_factor=0.2)
    outage = stack.control_plane.apiserver_down()
    await asyncio.to_thread(outage.__enter__)
    try:
        message_id = await _fire_next_tick(stack, "outage")
        [first] = await stack.qstash.wait_for_deliveries(1, message_id=message_id, timeout=30)
        assert first["status"] == 503
        assert '"reason": "Unavailable"' in first.get("responseBody", "")
    finally:
        # On this (the main) thread, blocking the loop while the API server restarts: the
        # fixture gives its processes a parent-death signal, which Linux ties to the *thread*
        # that spawned them, so a restart from a worker thread dies with that thread.
        outage.__exit__(None, None, None)
    outcome = await stack.qstash.wait_for_message(message_id, timeout=60)
    assert outcome["state"] == "SUCCESS"
    [job] = await stack.jobs("outage")
    assert job["metadata"]["name"] == naming.job_name("outage", stack.first_tick)


@pytest.mark.parametrize(
    "retried",
    [
        # A retry is judged by its message's createdAt (tests/integration/webhook/
        # test_retry_ticks.py); this one is a first attempt, judged by its arrival.
        pytest.param(0, id="a first attempt"),
    ],
)
async def test_a_delivery_31_seconds_late_runs_its_own_tick_not_the_next(
    stack: Stack, retried: int
) -> None:
    # Issue 10.2: with `* * * * *` and the 30 s tolerance, a delivery at 10:00:31 used to be
    # booked to 10:01 (29 s early), so 10:01's own delivery was a duplicate and 10:00 never ran.
    await stack.create_cronworkflow("late")  # every minute, not scheduled: nothing else fires
    await stack.qstash.advance((stack.first_tick - stack.clock()).total_seconds() + 31)
    status, answer, _ = await stack.deliver("late", message_id="msg_late", retried=retried)
    assert status == 200, answer
    [job] = await stack.jobs("late")
    assert job["metadata"]["name"] == naming.job_name("late", stack.first_tick)
