"""The server's collector is off from a firing pass to 12 s after the last one
(``qstash_server.collector``), and the real-clock scheduler holds it only for a pass that fires."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from qstash_operator.domain import cron, quiet
from qstash_server import clock, collector, model
from qstash_server.delivery import Scheduler
from qstash_server.state import SigningKeys, Store
from tests.unit.instants import JUST_AFTER_THE_HOUR, JUST_BEFORE_THE_HOUR, TOP_OF_THE_HOUR


class Recorder:
    """Stands in for :mod:`gc` and for ``loop.call_later``: every switch and timer in one list."""

    def __init__(self) -> None:
        self.steps: list[object] = []
        self.pending: list[tuple[float, Callable[[], None], Timer]] = []

    def disable(self) -> None:
        self.steps.append("off")

    def enable(self) -> None:
        self.steps.append("on")

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(self)
        self.pending.append((delay, callback, timer))
        self.steps.append(("timer", delay))
        return timer

    def run_timers(self) -> None:
        due, self.pending = self.pending, []
        for _, callback, timer in due:
            if not timer.cancelled:
                callback()


class Timer:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self.recorder.steps.append("cancel")


AFTER = quiet.AFTER.total_seconds()
"""The default hold: as long as the operator's and the webhook's quiet after a boundary."""


def hold(recorder: Recorder) -> collector.BurstHold:
    return collector.BurstHold(collector=recorder, call_later=recorder.call_later)


@pytest.mark.parametrize(
    ("actions", "expected", "holding"),
    [
        pytest.param(
            ["fire", "timers"],
            ["off", ("timer", AFTER), "on"],
            False,
            id="one pass: off, then on when its timer runs",
        ),
        pytest.param(
            ["fire"],
            ["off", ("timer", AFTER)],
            True,
            id="inside the hold",
        ),
        pytest.param(
            ["fire", "fire", "timers"],
            ["off", ("timer", AFTER), "cancel", ("timer", AFTER), "on"],
            False,
            id="a second pass extends the hold without switching twice",
        ),
        pytest.param(
            ["fire", "close", "timers"],
            ["off", ("timer", AFTER), "cancel", "on"],
            False,
            id="close switches it on; the cancelled timer does not again",
        ),
        pytest.param(
            ["fire", "close", "close"],
            ["off", ("timer", AFTER), "cancel", "on"],
            False,
            id="closing twice switches nothing",
        ),
        pytest.param(["close", "timers"], [], False, id="closing without a hold switches nothing"),
    ],
)
def test_the_collector_is_off_from_a_pass_to_the_end_of_the_hold(
    actions: list[str], expected: list[object], holding: bool
) -> None:
    recorder = Recorder()
    burst = hold(recorder)
    for action in actions:
        if action == "fire":
            burst.firing()
        elif action == "close":
            burst.close()
        else:
            recorder.run_timers()
    assert recorder.steps == expected
    assert burst.holding is holding


@pytest.mark.parametrize("seconds", [0.0, -1.0])
def test_a_hold_must_last(seconds: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        collector.BurstHold(seconds=seconds, collector=Recorder())


class StandingClock:
    """The wall clock's interface (not driven: the scheduler loop runs) at one named instant."""

    driven = False

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


class Dispatched:
    """The sender's one entry point the scheduler uses: what was fired, nothing delivered."""

    def __init__(self) -> None:
        self.messages: list[model.MessageRecord] = []

    def dispatch(self, message: model.MessageRecord) -> None:
        self.messages.append(message)


def hourly_record(
    schedule_id: str, cursor: datetime, *, paused: bool = False
) -> model.ScheduleRecord:
    return model.ScheduleRecord(
        schedule_id=schedule_id,
        cron_text="0 * * * *",
        schedule=cron.parse("0 * * * *"),
        settings=model.DeliverySettings(
            destination="http://webhook.invalid/qstash", body=b"{}", source=(), caller_ip=None
        ),
        created_at_ms=clock.to_ms(cursor),
        considered_until_ms=clock.to_ms(cursor),
        paused=paused,
    )


@pytest.mark.parametrize(
    ("now", "paused", "fires", "held"),
    [
        pytest.param(JUST_AFTER_THE_HOUR, False, 1, True, id="a tick due: held through the pass"),
        pytest.param(JUST_BEFORE_THE_HOUR, False, 0, False, id="nothing due: not held"),
        pytest.param(JUST_AFTER_THE_HOUR, True, 0, True, id="due but paused: held, nothing fired"),
    ],
)
async def test_the_real_clock_loop_holds_the_collector_for_a_pass_with_work(
    now: datetime, paused: bool, fires: int, held: bool
) -> None:
    store = Store(path=None, keys=SigningKeys(current="sig_current", next="sig_next"))
    store.schedules["scd_1"] = hourly_record(
        "scd_1", TOP_OF_THE_HOUR - timedelta(minutes=5), paused=paused
    )
    sender = Dispatched()
    recorder = Recorder()
    scheduler = Scheduler(
        store=store,
        server_clock=StandingClock(now),
        sender=sender,  # type: ignore[arg-type]  # the scheduler only dispatches
        max_advance_ticks=10,
        hold=hold(recorder),
    )
    scheduler.start()
    assert len(sender.messages) == fires
    assert recorder.steps[:2] == (["off", ("timer", AFTER)] if held else [])
    await scheduler.stop()
    assert recorder.steps == (["off", ("timer", AFTER), "cancel", "on"] if held else [])
