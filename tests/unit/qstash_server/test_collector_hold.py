"""The server's collector is off from a firing pass to 12 s after the last one
(``qstash_server.collector``), and the real-clock scheduler holds it only for a pass that fires."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from qstash_operator.domain import cron
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


def hold(recorder: Recorder, seconds: float = 12.0) -> collector.BurstHold:
    return collector.BurstHold(seconds=seconds, collector=recorder, call_later=recorder.call_later)


def test_as_long_after_a_firing_pass_as_the_webhook_holds_after_a_boundary() -> None:
    assert collector.HOLD_SECONDS == 12.0


def test_one_pass_off_then_on_when_its_timer_runs() -> None:
    recorder = Recorder()
    burst = hold(recorder)
    burst.firing()
    assert burst.holding
    recorder.run_timers()
    assert recorder.steps == ["off", ("timer", 12.0), "on"]
    assert not burst.holding


def test_a_second_pass_inside_the_hold_extends_it_without_switching_twice() -> None:
    recorder = Recorder()
    burst = hold(recorder)
    burst.firing()
    burst.firing()
    recorder.run_timers()
    assert recorder.steps == ["off", ("timer", 12.0), "cancel", ("timer", 12.0), "on"]


def test_close_switches_it_on_and_the_cancelled_timer_does_not_switch_it_again() -> None:
    recorder = Recorder()
    burst = hold(recorder)
    burst.firing()
    burst.close()
    recorder.run_timers()
    assert recorder.steps == ["off", ("timer", 12.0), "cancel", "on"]
    burst.close()  # closing twice, or without a hold, switches nothing
    assert recorder.steps == ["off", ("timer", 12.0), "cancel", "on"]


@pytest.mark.parametrize("seconds", [0.0, -1.0])
def test_a_hold_must_last(seconds: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        hold(Recorder(), seconds)


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
    assert recorder.steps[:2] == (["off", ("timer", 12.0)] if held else [])
    await scheduler.stop()
    assert recorder.steps == (["off", ("timer", 12.0), "cancel", "on"] if held else [])
