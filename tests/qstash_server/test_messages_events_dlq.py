"""``GET /v2/messages/{id}``, ``GET /v2/events`` and ``GET /v2/dlq``, through the official SDK only.

What the webhook needs from them (issue 13): a message being retried reads back with the
``createdAt`` of its tick and its ``scheduleId``, and is 404 once it is done, as QStash answers;
the events tell each step of a delivery; the dead-letter queue holds what failed for good,
filterable by schedule. Each test runs with the sync and the async client (``sdk`` fixture).
"""

from __future__ import annotations

import pytest
from qstash.errors import QStashError
from qstash.log import LogState

from qstash_server.testing import RunningServer
from tests.qstash_server.conftest import TOP_MS, Sdk
from tests.qstash_server.receiver import Reply, VerifyingReceiver

LONG_RETRY = "600000"  # ten minutes (ms): the message waits for its retry while the test reads it


async def every_minute(sdk: Sdk, destination: str, **options: object) -> str:
    schedule_id: str = await sdk.schedule(
        "create", destination=destination, cron="* * * * *", body="{}", **options
    )
    return schedule_id


async def test_a_message_waiting_for_its_retry_reads_back_with_its_tick(
    sdk: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    await qstash.set_settings(backoff_factor=1.0)
    receiver.script("/m", Reply(status=503))
    schedule_id = await every_minute(sdk, receiver.url("/m"), retries=2, retry_delay=LONG_RETRY)
    [fired] = await qstash.advance(30)  # the 10:00 tick
    await qstash.wait_for_deliveries(1, message_id=fired["messageId"])

    message = await sdk.call("message", "get", fired["messageId"])
    assert message.message_id == fired["messageId"]
    assert message.schedule_id == schedule_id
    assert message.created_at == TOP_MS  # made when the tick came, whenever the retry arrives
    assert message.not_before == TOP_MS
    assert (message.url, message.method, message.body) == (receiver.url("/m"), "POST", "{}")
    assert message.max_retries == 2
    assert message.retry_delay_expression == LONG_RETRY
    assert message.caller_ip  # the creator's address, as QStash reports it

    await sdk.call("message", "cancel", fired["messageId"])
    with pytest.raises(QStashError, match="404"):
        await sdk.call("message", "get", fired["messageId"])


async def test_a_delivered_message_is_404_as_qstash_answers(
    sdk: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    await every_minute(sdk, receiver.url("/ok"))
    [fired] = await qstash.advance(30)
    outcome = await qstash.wait_for_message(fired["messageId"])
    assert outcome["state"] == "SUCCESS"
    with pytest.raises(QStashError, match="404"):
        await sdk.call("message", "get", fired["messageId"])


async def test_events_tell_each_step_newest_first_by_message_and_schedule(
    sdk: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    receiver.script("/e", Reply(status=500, body="not yet"))
    retried = await every_minute(sdk, receiver.url("/e"), retries=1)
    other = await every_minute(sdk, receiver.url("/other"))
    fired = {tick["scheduleId"]: tick["messageId"] for tick in await qstash.advance(30)}
    for message_id in fired.values():
        await qstash.wait_for_message(message_id)

    listed = await sdk.call("log", "list", filter={"message_id": fired[retried]})
    assert [log.state for log in reversed(listed.logs)] == [
        LogState.CREATED,
        LogState.ACTIVE,
        LogState.ERROR,
        LogState.RETRY,
        LogState.ACTIVE,
        LogState.DELIVERED,
    ]
    assert listed.cursor is None
    error = next(log for log in listed.logs if log.state is LogState.ERROR)
    assert (error.response_status, error.response_body) == (500, "not yet")
    retry = next(log for log in listed.logs if log.state is LogState.RETRY)
    assert retry.next_delivery_time is not None
    assert retry.next_delivery_time > retry.time
    assert {log.schedule_id for log in listed.logs} == {retried}
    assert all(log.url == receiver.url("/e") for log in listed.logs)
    times = [log.time for log in listed.logs]
    assert times == sorted(times, reverse=True)

    by_schedule = await sdk.call("log", "list", filter={"schedule_id": other})
    assert {log.message_id for log in by_schedule.logs} == {fired[other]}
    delivered = await sdk.call("log", "list", filter={"state": LogState.DELIVERED})
    assert {log.message_id for log in delivered.logs} == set(fired.values())

    first = await sdk.call("log", "list", count=2)
    assert len(first.logs) == 2
    assert first.cursor is not None
    rest = await sdk.call("log", "list", cursor=first.cursor)
    assert len(first.logs) + len(rest.logs) == 9  # six steps of one message, three of the other


async def test_the_dlq_holds_messages_whose_retries_ran_out_by_schedule(
    sdk: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    receiver.script("/a", *[Reply(status=500, body="broken")] * 2)
    receiver.script("/b", Reply(status=502))
    failing = await every_minute(sdk, receiver.url("/a"), retries=1)
    also_failing = await every_minute(sdk, receiver.url("/b"), retries=0)
    fired = {tick["scheduleId"]: tick["messageId"] for tick in await qstash.advance(30)}
    for message_id in fired.values():
        assert (await qstash.wait_for_message(message_id))["state"] == "FAIL"

    listed = await sdk.call("dlq", "list", filter={"schedule_id": failing})
    [dead] = listed.messages
    assert (dead.message_id, dead.schedule_id) == (fired[failing], failing)
    assert (dead.response_status, dead.response_body) == (500, "broken")
    assert dead.created_at == TOP_MS
    assert dead.dlq_id.startswith("dlq_")
    assert (await sdk.call("dlq", "get", dead.dlq_id)).message_id == fired[failing]

    everything = await sdk.call("dlq", "list")
    assert {m.schedule_id for m in everything.messages} == {failing, also_failing}
    by_status = await sdk.call("dlq", "list", filter={"response_status": 502})
    assert [m.message_id for m in by_status.messages] == [fired[also_failing]]

    await sdk.call("dlq", "delete", dead.dlq_id)
    assert (await sdk.call("dlq", "list", filter={"schedule_id": failing})).messages == []


async def test_a_destination_that_is_down_fails_attempts_until_it_is_up(
    sdk: Sdk, qstash: RunningServer, receiver: VerifyingReceiver
) -> None:
    """The ``destinationDown`` fault: attempts fail as a refused connection, never reaching the
    destination, and QStash's retries carry on once it is lifted."""
    schedule_id = await every_minute(sdk, receiver.url("/down"), retries=3)
    await qstash.destination_down(2)
    [fired] = await qstash.advance(30)
    outcome = await qstash.wait_for_message(fired["messageId"])
    assert (outcome["state"], outcome["attempts"]) == ("SUCCESS", 3)
    assert [r.header("Upstash-Retried") for r in receiver.at("/down")] == ["2"]
    errors = await sdk.call(
        "log", "list", filter={"schedule_id": schedule_id, "state": LogState.ERROR}
    )
    assert len(errors.logs) == 2
    assert all("refused" in (log.error or "") for log in errors.logs)

    await qstash.destination_down()  # until lifted: retries run out, a dead letter with no answer
    [fired] = await qstash.advance(60)
    assert (await qstash.wait_for_message(fired["messageId"]))["state"] == "FAIL"
    [dead] = (await sdk.call("dlq", "list", filter={"schedule_id": schedule_id})).messages
    assert dead.response_status == 0
    await qstash.destination_up()


async def test_bad_filters_are_400(sdk: Sdk, qstash: RunningServer) -> None:
    with pytest.raises(QStashError, match="400"):
        await sdk.call("log", "list", count=0)
    with pytest.raises(QStashError, match="404"):
        await sdk.call("dlq", "get", "dlq_unknown")
