"""Issue 13 end to end: the webhook unreachable for a few ticks of an every-minute CronWorkflow.

The operator and the webhook run as child processes through the CLI on the real control plane;
QStash is the compatible server with a driven clock that starts five minutes in the past, so the
ticks of the outage are fired at once instead of waited for, and QStash's ``retryDelay`` of
150 s is shrunk by ``backoff_factor``. The first attempts of the outage's ticks fail as refused
connections (the server's ``destinationDown`` fault); the fault is lifted and the next tick is
delivered on time; then the retries of the outage arrive, minutes after their ticks by the wall
clock. Every Job's ``qstash-operator.dev/scheduled-time`` must be the tick its message was
created for, and no delivery may be answered as a duplicate.

No wall-clock sleep lines anything up: the on-time tick is the current minute's when there is
time left in it, else the coming one, delivered within the early window a first attempt has.
The outage, the lifting of the fault and the on-time tick follow each other within milliseconds,
so the on-time delivery lands on the side of the 45 s mark that was chosen.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from qstash_devstack.stack import Stack, backdate_schedules, cronworkflow, wait
from qstash_operator.domain import vocabulary
from qstash_operator.domain.builders import rfc3339
from qstash_server.testing import ThreadedServer, header

MINUTE = timedelta(minutes=1)
BACKOFF_FACTOR = 0.04  # QStash's 150 s retry wait is 6 s here
LATE_IN_THE_MINUTE = 45  # seconds: past this, the on-time tick is the coming one (early window)


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


@pytest.fixture
def qstash() -> Iterator[ThreadedServer]:
    """The QStash-compatible server whose driven clock starts five minutes ago."""
    with ThreadedServer(
        start_time=_minute(datetime.now(UTC)) - 5 * MINUTE + timedelta(seconds=1)
    ) as server:
        yield server


def test_after_the_webhook_was_down_every_job_is_the_tick_its_message_was_made_for(
    stack: Stack,
) -> None:
    started = time.monotonic()
    stack.operator()
    stack.webhook()
    stack.apply(
        cronworkflow(
            "outage",
            {"schedule": "* * * * *", "qstash": {"retries": 3, "retryDelay": "150000"}},
        )
    )
    stack.wait_condition("outage", "Ready", "True")
    backdate_schedules(stack, ["outage"], minutes=15)  # the outage's ticks are not retroactive
    sid = f"{stack.cluster_name}.{stack.namespace}.outage"

    stack.qstash.set_settings(backoff_factor=BACKOFF_FACTOR)
    stack.qstash.destination_down()  # until lifted: QStash's attempts are refused
    now = datetime.now(UTC)
    on_time = _minute(now) + (MINUTE if now.second >= LATE_IN_THE_MINUTE else timedelta(0))
    outage = stack.qstash.set_time(max(on_time - timedelta(seconds=1), stack.qstash.now()))
    assert len(outage) >= 4, outage  # the ticks from five minutes ago to the on-time one
    stack.qstash.wait_for_deliveries(len(outage), schedule_id=sid)  # each first attempt failed
    stack.qstash.destination_up()  # reachable again, before the first retries come
    healthy = stack.qstash.set_time(max(on_time + timedelta(milliseconds=500), stack.qstash.now()))
    fired = {
        tick["messageId"]: tick["tick"] for tick in outage + healthy if tick["scheduleId"] == sid
    }
    assert len(fired) == len(outage) + 1

    def jobs() -> list[dict[str, object]]:
        return stack.list("jobs", f"{vocabulary.LABEL_CRONWORKFLOW}=outage")

    wait(lambda: len(jobs()) >= len(fired), timeout=60, what="a Job for every tick")
    for message_id in fired:
        wait(
            lambda m=message_id: stack.qstash.messages(message_id=m)[0]["state"] == "SUCCESS",
            timeout=30,
            what=f"QStash to deliver {message_id}",
        )
    made_for = {
        job["metadata"]["annotations"][vocabulary.ANNOTATION_MESSAGE_ID]: job["metadata"][
            "annotations"
        ][vocabulary.ANNOTATION_SCHEDULED_TIME]
        for job in jobs()
    }
    assert made_for == {
        message_id: rfc3339(datetime.fromtimestamp(tick / 1000, UTC))
        for message_id, tick in fired.items()
    }
    answers = [
        attempt
        for message_id in fired
        for attempt in stack.qstash.deliveries(message_id=message_id)
        if attempt["status"] == 200
    ]
    assert {json.loads(a["responseBody"])["outcome"] for a in answers} == {"run"}
    assert sum(header(a, "Upstash-Retried") != "0" for a in answers) == len(outage)
    assert time.monotonic() - started < 180
