"""The state file: records survive a round trip, writes are atomic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qstash_server import model, state

HEADERS: model.Headers = (
    ("Upstash-Cron", "CRON_TZ=Europe/Berlin 0 3 * * *"),
    ("Content-Type", "application/json"),
    ("Upstash-Forward-X-A", "1"),
    ("Upstash-Retries", "4"),
    ("Upstash-Queue-Name", "kept-but-not-acted-on"),
)


def make_record() -> model.ScheduleRecord:
    request = model.parse_schedule_request(
        destination="http://127.0.0.1:9/hook?x=1",
        headers=HEADERS,
        body=b"\xff binary",
        caller_ip="127.0.0.1",
    )
    return model.ScheduleRecord(
        schedule_id="c.ns.n",
        cron_text=request.cron_text,
        schedule=request.schedule,
        settings=request.settings,
        created_at_ms=1,
        considered_until_ms=2,
        paused=True,
        last_schedule_time_ms=3,
        last_schedule_states=(("msg_a", "FAIL"),),
    )


def test_schedule_round_trip() -> None:
    original = make_record()
    restored = state.schedule_from_state(json.loads(json.dumps(state.schedule_to_state(original))))
    assert restored == original


def test_message_round_trip() -> None:
    original = model.MessageRecord(
        message_id="msg_1",
        settings=make_record().settings,
        created_at_ms=10,
        not_before_ms=20,
        schedule_id="c.ns.n",
        tick_ms=15,
        retried=2,
    )
    restored = state.message_from_state(json.loads(json.dumps(state.message_to_state(original))))
    assert restored == original


async def test_store_save_and_load(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = state.Store(path=path, keys=state.SigningKeys("sig_a", "sig_b"))
    store.schedules["c.ns.n"] = make_record()
    await store.save()
    loaded = state.Store(path=path, keys=state.SigningKeys("sig_x", "sig_y"))
    assert loaded.load() == state.SigningKeys("sig_a", "sig_b")
    assert loaded.schedules == store.schedules
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left  # noqa: ASYNC240


async def test_unreadable_entries_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    good = state.schedule_to_state(make_record())
    bad = {**good, "scheduleId": "bad/id"}
    path.write_text(json.dumps({"version": 1, "schedules": [bad, good], "messages": [{}]}))
    store = state.Store(path=path, keys=state.SigningKeys("a", "b"))
    assert store.load() is None  # no keys in the file
    assert list(store.schedules) == ["c.ns.n"]


@pytest.mark.parametrize(
    "content",
    [pytest.param("{not json", id="not json"), pytest.param('{"version": 99}', id="other version")],
)
def test_foreign_file_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(state.StateError):
        state.Store(path=path, keys=state.SigningKeys("a", "b")).load()


def test_missing_file_is_a_fresh_start(tmp_path: Path) -> None:
    store = state.Store(path=tmp_path / "absent.json", keys=state.SigningKeys("a", "b"))
    assert store.load() is None
    assert store.schedules == {}


def test_write_atomic_replaces(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    state.write_atomic(path, "one")
    state.write_atomic(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
