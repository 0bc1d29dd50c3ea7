"""The real-clock scheduler loop fires on the minute, once, without a test driving it.

The clock is the wall clock shifted so that the next minute is a second away: the loop's own
sleep computation then has to wake it at the boundary. One second is the price of testing the
loop itself; every other test drives the clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from qstash_server import clock
from qstash_server.testing import RunningServer
from tests.qstash_server.conftest import Sdk
from tests.qstash_server.receiver import VerifyingReceiver

LEAD_SECONDS = 1.5
"""Time between creating the schedule and the minute; generous for a loaded CI machine."""


class ShiftedClock:
    """The wall clock, shifted so that it reads ``LEAD_SECONDS`` before a minute right now."""

    driven = False

    def __init__(self) -> None:
        wall = datetime.now(UTC)
        minute = wall.replace(second=0, microsecond=0) + timedelta(minutes=1)
        self.boundary = minute + timedelta(minutes=1)  # a whole minute ahead of the wall
        self.offset = (self.boundary - timedelta(seconds=LEAD_SECONDS)) - wall

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def test_the_loop_fires_on_the_minute(receiver: VerifyingReceiver) -> None:
    shifted = ShiftedClock()
    async with RunningServer(server_clock=shifted, driven_clock=False) as server:
        receiver.use_keys(server.current_key, server.next_key)
        client = Sdk("async", server.token, server.url)
        try:
            schedule_id = await client.schedule(
                "create", destination=receiver.url("/loop"), cron="* * * * *"
            )
            [delivery] = await server.wait_for_deliveries(1, timeout=LEAD_SECONDS + 5)
            schedule = await client.schedule("get", schedule_id)
        finally:
            await client.close()
        assert (delivery["scheduleId"], delivery["tick"]) == (
            schedule_id,
            clock.to_ms(shifted.boundary),
        )
        assert schedule.last_schedule_time == clock.to_ms(shifted.boundary)
        assert schedule.next_schedule_time == clock.to_ms(shifted.boundary) + 60_000
        assert len(await server.messages()) == 1  # fired once, not on every wake-up
    assert len(receiver.at("/loop")) == 1
