"""The true tick of every delivery (issue 13), on the real API server with real signed deliveries.

The webhook's clock is the QStash server's driven clock, so "the webhook is down for three
ticks" is the server's ``destinationDown`` fault over three advances of its clock, and QStash's
``retryDelay`` of 150 s runs in a fraction of a second (``backoff_factor``). Each test asserts on
the Jobs the API server holds afterwards.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from qstash import AsyncQStash

from qstash_operator.domain import builders, model, naming, vocabulary
from qstash_operator.domain.builders import rfc3339
from qstash_server.testing import header
from tests.integration.webhook.conftest import CLUSTER, DELIVERY_DELAY, Stack, poll

RETRY_DELAY = "150000"  # 150 s, the retryDelay
BACKOFF_FACTOR = 0.01  # 150 s of QStash's waiting is 1.5 s here
MINUTE = timedelta(minutes=1)


async def schedule(stack: Stack, cw: dict[str, object]) -> str:
    """The operator's schedule for ``cw``, with the issue's retries and retryDelay."""
    desired = builders.build_schedule(model.parse(cw), cluster=CLUSTER, public_url=stack.public_url)
    client = AsyncQStash(stack.qstash.token, base_url=stack.qstash.url, retry=False)
    try:
        schedule_id: str = await client.schedule.create(
            destination=desired.destination,
            cron=desired.cron,
            body=desired.body,
            content_type="application/json",
            schedule_id=desired.schedule_id,
            retries=3,
            retry_delay=RETRY_DELAY,
        )
    finally:
        await client.http._client.aclose()
    return schedule_id


async def next_tick(stack: Stack, schedule_id: str) -> tuple[datetime, str]:
    """Advance QStash's clock to just past the next minute: (the tick, its message id)."""
    now = stack.clock()
    following = now.replace(second=0, microsecond=0) + MINUTE
    fired = await stack.qstash.advance((following - now).total_seconds() + DELIVERY_DELAY)
    [tick] = [f for f in fired if f["scheduleId"] == schedule_id]
    return following, tick["messageId"]


def annotations_of(job: dict[str, object]) -> dict[str, str]:
    metadata = job["metadata"]
    assert isinstance(metadata, dict)
    return dict(metadata.get("annotations") or {})


async def test_after_three_ticks_down_every_job_is_the_tick_its_message_was_made_for(
    stack: Stack,
) -> None:
    """The issue's scenario: the webhook down for the 10:00, 10:01 and 10:02 ticks, up for 10:03.
    The 10:03 delivery runs first; the retries of the three earlier messages then arrive at
    10:03:02 by the webhook's clock. Judged by arrival they were all "10:03" (duplicates: three
    runs lost); judged by their messages they are 10:00, 10:01 and 10:02."""
    cw = await stack.create_cronworkflow("outage")
    schedule_id = await schedule(stack, cw)
    await stack.qstash.set_settings(backoff_factor=BACKOFF_FACTOR)
    await stack.qstash.destination_down()
    made: dict[str, datetime] = {}
    for _ in range(3):
        tick, message_id = await next_tick(stack, schedule_id)
        made[message_id] = tick
    await stack.qstash.destination_up()
    tick, message_id = await next_tick(stack, schedule_id)
    made[message_id] = tick

    async def all_ran() -> list[dict[str, object]] | None:
        jobs = await stack.jobs("outage")
        return jobs if len(jobs) >= len(made) else None

    jobs = await poll(all_ran, within=30, what="a Job per tick", describe=stack.describe_runs)
    for message_id in made:
        assert (await stack.qstash.wait_for_message(message_id))["state"] == "SUCCESS"
    by_message = {annotations_of(job)[vocabulary.ANNOTATION_MESSAGE_ID]: job for job in jobs}
    assert set(by_message) == set(made)
    for message_id, tick in made.items():
        job = by_message[message_id]
        assert annotations_of(job)[vocabulary.ANNOTATION_SCHEDULED_TIME] == rfc3339(tick)
        assert job["metadata"]["name"] == naming.job_name("outage", tick)
    assert stack.metric("qstash_webhook_deliveries_total", result="duplicate_tick") == 0
    retried = [
        attempt
        for message_id in made
        for attempt in await stack.qstash.deliveries(message_id=message_id)
        if attempt["status"] == 200
    ]
    assert sorted(header(a, "Upstash-Retried") != "0" for a in retried) == [False] + [True] * 3
    assert (await stack.qstash.api_calls()).get("messages.get", 0) >= 3


async def test_a_retry_qstash_cannot_place_is_503_then_runs_its_own_tick(stack: Stack) -> None:
    """``GET /v2/messages/{id}`` failing (QStash unwell) is a 503 with Retry-After, never a
    guess; QStash retries, the lookup answers, and the Job is the message's tick."""
    cw = await stack.create_cronworkflow("unplaced")
    schedule_id = await schedule(stack, cw)
    await stack.qstash.set_settings(backoff_factor=BACKOFF_FACTOR)
    await stack.qstash.destination_down(1)  # the first attempt fails: what follows is a retry
    await stack.qstash.fail_api(1, status=502, routes=["messages.get"])
    tick, message_id = await next_tick(stack, schedule_id)

    outcome = await stack.qstash.wait_for_message(message_id, timeout=30)
    assert outcome["state"] == "SUCCESS"
    attempts = await stack.qstash.deliveries(message_id=message_id)
    assert [a["status"] for a in attempts] == [None, 503, 200]
    assert '"reason":"Unavailable"' in str(attempts[1]["responseBody"]).replace(" ", "")
    [job] = await stack.jobs("unplaced")
    assert annotations_of(job)[vocabulary.ANNOTATION_SCHEDULED_TIME] == rfc3339(tick)


async def test_a_retry_of_another_schedules_message_is_refused_for_good(stack: Stack) -> None:
    """A schedule that is not this CronWorkflow's (say a leftover of another cluster name)
    delivering its body: the retry is answered 489 ScheduleMismatch and QStash stops."""
    cw = await stack.create_cronworkflow("foreign")
    desired = builders.build_schedule(model.parse(cw), cluster=CLUSTER, public_url=stack.public_url)
    client = AsyncQStash(stack.qstash.token, base_url=stack.qstash.url, retry=False)
    try:
        foreign = await client.schedule.create(
            destination=desired.destination,
            cron=desired.cron,
            body=desired.body,
            content_type="application/json",
            schedule_id=f"othercluster.{stack.namespace}.foreign",
            retries=2,
        )
    finally:
        await client.http._client.aclose()
    await stack.qstash.destination_down(1)
    _, message_id = await next_tick(stack, foreign)
    outcome = await stack.qstash.wait_for_message(message_id, timeout=30)
    assert (outcome["state"], outcome["attempts"]) == ("FAIL", 2)
    attempts = await stack.qstash.deliveries(message_id=message_id)
    assert attempts[-1]["status"] == 489
    assert "ScheduleMismatch" in str(attempts[-1].get("responseBody"))
    assert await stack.jobs("foreign") == []
