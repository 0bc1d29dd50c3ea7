"""Backfill on the real control plane: 10 slots where 3 already ran make exactly 7 Jobs.

The three runs are real deliveries, signed as QStash signs them and delivered at their ticks on
the QStash server's driven clock (the webhook's clock); the backfill goes through the webhook's
API with a token whose RBAC grants only the verb ``backfill``, once as a dry run, then through
``qstash-operator backfill``, then again to show that a second backfill makes nothing.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from qstash_operator import cli
from qstash_operator.domain import naming, vocabulary
from qstash_operator.domain.builders import rfc3339
from tests.integration.webhook.conftest import DELIVERY_DELAY, FIRST_TICK, Stack
from tests.integration.webhook.test_api import call, grant

SLOTS = [FIRST_TICK + timedelta(minutes=n) for n in range(10)]
RAN = (0, 4, 7)


async def test_ten_slots_where_three_ran_make_exactly_seven(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    await stack.create_cronworkflow("catch-up")
    for index in RAN:
        await stack.qstash.set_time(SLOTS[index] + timedelta(seconds=DELIVERY_DELAY))
        status, body, _ = await stack.deliver("catch-up", message_id=f"msg_{index}")
        assert (status, body["outcome"]) == (200, "run"), body
    await stack.qstash.set_time(SLOTS[-1] + timedelta(minutes=3))
    assert len(await stack.jobs("catch-up")) == 3

    path = f"/api/cron/backfill/{stack.namespace}/catch-up"
    window = {"from": rfc3339(SLOTS[0]), "to": rfc3339(SLOTS[-1])}
    runner = await asyncio.to_thread(grant, stack, "runner", ["trigger"])
    status, body = await call(stack, "POST", path, runner, data=json.dumps(window).encode())
    assert (status, body["reason"]) == (403, "Forbidden")  # trigger is not backfill

    token = await asyncio.to_thread(grant, stack, "backfiller", ["backfill"])
    dry = json.dumps({**window, "dryRun": True}).encode()
    status, body = await call(stack, "POST", path, token, data=dry)
    assert status == 200, body
    assert body["slots"] == [rfc3339(slot) for slot in SLOTS]
    assert body["existing"] == [rfc3339(SLOTS[i]) for i in RAN]
    assert len(body["missing"]) == 7
    assert body["created"] == []
    assert len(await stack.jobs("catch-up")) == 3

    base = ["--url", stack.webhook.url, "--token", token]
    workflow = f"{stack.namespace}/catch-up"
    args = ["backfill", workflow, "--from", window["from"], "--to", window["to"], *base]
    assert await asyncio.to_thread(cli.main, args) == 0
    printed = capsys.readouterr()
    assert "10 slots" in printed.out
    assert "3 already had a Job, 7 created, 0 skipped" in printed.out
    assert "7/7" in printed.err  # the progress bar

    jobs = await stack.jobs("catch-up")
    assert sorted(job["metadata"]["name"] for job in jobs) == sorted(
        naming.job_name("catch-up", slot) for slot in SLOTS
    )
    backfilled = [
        job for job in jobs if vocabulary.ANNOTATION_BACKFILLED_BY in job["metadata"]["annotations"]
    ]
    assert len(backfilled) == 7
    for job in backfilled:
        annotations = job["metadata"]["annotations"]
        assert annotations[vocabulary.ANNOTATION_BACKFILLED_BY].endswith(":backfiller")
        slot = annotations[vocabulary.ANNOTATION_SCHEDULED_TIME]
        assert job["metadata"]["name"] == naming.job_name(
            "catch-up", SLOTS[[rfc3339(s) for s in SLOTS].index(slot)]
        )

    # Again: every slot has its Job now, so nothing is made.
    status, body = await call(stack, "POST", path, token, data=json.dumps(window).encode())
    assert (status, body["created"], len(body["existing"])) == (200, [], 10)
    assert len(await stack.jobs("catch-up")) == 10


async def test_a_range_in_the_future_is_refused_naming_to(stack: Stack) -> None:
    await stack.create_cronworkflow("ahead")
    token = await asyncio.to_thread(grant, stack, "backfiller", ["backfill"])
    future = {"from": rfc3339(SLOTS[0]), "to": rfc3339(stack.clock() + timedelta(hours=1))}
    path = f"/api/cron/backfill/{stack.namespace}/ahead"
    status, body = await call(stack, "POST", path, token, data=json.dumps(future).encode())
    assert (status, body["reason"]) == (422, "InvalidBackfillRange")
    assert body["error"].startswith("to: ")
    assert await stack.jobs("ahead") == []
