"""With ``--state``, schedules, pause state, keys and accepted messages survive a restart."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from qstash.schedule import ScheduleState

from qstash_server import config
from qstash_server.core import Core
from qstash_server.testing import RunningServer
from tests.qstash_server.conftest import START, TOP_MS, Sdk
from tests.qstash_server.receiver import Reply, VerifyingReceiver
from tests.qstash_server.test_schedules_api import every_option, expected_schedule


def keys_of(server: RunningServer) -> dict[str, str]:
    return {"current_key": server.current_key, "next_key": server.next_key}


async def test_schedules_pause_and_history_survive(
    tmp_path: Path, receiver: VerifyingReceiver
) -> None:
    state = tmp_path / "qstash.json"
    async with RunningServer(start_time=START, state_path=state) as first:
        client = Sdk("async", first.token, first.url)
        receiver.use_keys(first.current_key, first.next_key)
        try:
            options = every_option(receiver.url("/kept"))
            options["cron"] = "0 * * * *"
            await client.schedule("create_json", **options)
            await client.schedule(
                "create", destination=receiver.url("/p"), cron="0 * * * *", schedule_id="paused.one"
            )
            await client.schedule("pause", "paused.one")
            await client.call("signing_key", "rotate")  # the receiver verifies via the next key
            [fired] = [
                f for f in await first.advance(30) if f["scheduleId"] == "cluster.ns.nightly"
            ]
            await first.wait_for_message(fired["messageId"])
            before = await client.schedule("get", "cluster.ns.nightly")
            token = first.token
        finally:
            await client.close()

    saved = json.loads(state.read_text())
    async with RunningServer(
        start_time=START + timedelta(seconds=50),
        state_path=state,
        token=token,
        current_key=saved["keys"]["current"],
        next_key=saved["keys"]["next"],
    ) as second:
        client = Sdk("async", second.token, second.url)
        try:
            after = await client.schedule("get", "cluster.ns.nightly")
            paused = await client.schedule("get", "paused.one")
        finally:
            await client.close()
    assert after == before
    assert after == expected_schedule(
        receiver.url("/kept"),
        cron="0 * * * *",
        last_schedule_time=TOP_MS,
        last_schedule_states={fired["messageId"]: ScheduleState.SUCCESS},
        next_schedule_time=TOP_MS + 3_600_000,
    )
    assert paused.paused is True


async def test_stored_keys_return_when_none_are_given(tmp_path: Path) -> None:
    """Keys given at start win (as CLI flags do); without them, the stored, rotated ones return."""
    state = tmp_path / "qstash.json"
    first = Core(
        config.ServerConfig(state_path=state, current_signing_key="sig_a", next_signing_key="sig_b")
    )
    await first.start()
    await first.rotate_keys()
    rotated = first.keys_json()
    await first.stop()
    second = Core(config.ServerConfig(state_path=state))
    await second.start()
    try:
        assert second.keys_json() == rotated
        assert rotated["current"] == "sig_b"
    finally:
        await second.stop()


async def test_a_message_waiting_for_its_retry_resumes_after_restart(
    tmp_path: Path, receiver: VerifyingReceiver
) -> None:
    state = tmp_path / "qstash.json"
    receiver.script("/retry", Reply(status=500))
    async with RunningServer(start_time=START, state_path=state, backoff_factor=1.0) as first:
        client = Sdk("async", first.token, first.url)
        receiver.use_keys(first.current_key, first.next_key)
        try:
            schedule_id = await client.schedule(
                "create", destination=receiver.url("/retry"), cron="0 0 1 1 *"
            )
        finally:
            await client.close()
        message_id = await first.fire(schedule_id)
        await first.wait_for_deliveries(1, message_id=message_id)  # failed; now waiting ~12 s
        credentials = {"token": first.token, **keys_of(first)}

    saved = json.loads(state.read_text())
    assert [(m["messageId"], m["retried"]) for m in saved["messages"]] == [(message_id, 1)]

    async with RunningServer(start_time=START, state_path=state, **credentials) as second:
        outcome = await second.wait_for_message(message_id)
        assert (outcome["state"], outcome["attempts"]) == ("SUCCESS", 1)
    assert [r.header("Upstash-Retried") for r in receiver.at("/retry")] == ["0", "1"]
    assert {r.header("Upstash-Message-Id") for r in receiver.at("/retry")} == {message_id}


async def test_restart_catches_up_the_latest_missed_tick_only(
    tmp_path: Path, receiver: VerifyingReceiver
) -> None:
    state = tmp_path / "qstash.json"
    async with RunningServer(start_time=START, state_path=state) as first:
        client = Sdk("async", first.token, first.url)
        receiver.use_keys(first.current_key, first.next_key)
        try:
            await client.schedule(
                "create", destination=receiver.url("/m"), cron="* * * * *", schedule_id="m"
            )
        finally:
            await client.close()
        credentials = {"token": first.token, **keys_of(first)}
    down_for = timedelta(minutes=5)
    async with RunningServer(
        start_time=START + down_for, state_path=state, **credentials
    ) as second:
        [outcome] = await second.messages(schedule_id="m")
        assert outcome["tick"] == TOP_MS + 4 * 60_000  # 10:04, the latest before 10:04:30
        assert await second.settle()
    assert len(receiver.at("/m")) == 1
