"""The reconcile service acts and the domain decides: the service enters the domain once per plan.

A guard on the layering, not a test of behaviour (the tables in ``domain/test_reconcile.py`` and
the cluster tests cover that): it follows one cycle through ``Reconciler.reconcile`` with
stand-ins for the adapters that only answer, and counts the calls from the service module into
the domain package. One for the plan; one more per failed step, through ``after_failure``. A
helper from the domain called in the service (a builder, a name rule, a condition) fails it.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import qstash_operator.domain
from qstash_operator.adapters.operator_metrics import OperatorMetrics
from qstash_operator.domain.builders import DesiredSchedule
from qstash_operator.domain.errors import NotFoundError, QStashRejectedError
from qstash_operator.domain.model import JsonDict
from qstash_operator.services import reconcile as service
from qstash_operator.settings import QStashSettings, Secret, Settings
from tests.unit.domain.factories import body

NOW = datetime(2026, 6, 1, 10, 0, 2, tzinfo=UTC)
SERVICE = service.__file__
DOMAIN = str(Path(qstash_operator.domain.__file__).parent)
PRODUCTION = Settings(
    qstash=QStashSettings(
        token=Secret("token"), current_signing_key=Secret("a"), next_signing_key=Secret("b")
    ),
    public_url="https://cron.example.com",
    cluster_name="prod",
)


class AnsweringKube:
    """Answers as an empty namespace would; records nothing."""

    async def create_job(self, job: JsonDict, *, dry_run: bool = False) -> JsonDict:
        return job

    async def get_cronjob(self, namespace: str, name: str) -> JsonDict:
        raise NotFoundError(f"cronjobs/{name}")

    async def create_cronjob(self, cronjob: JsonDict) -> JsonDict:
        return cronjob

    async def post_event(self, involved: JsonDict, **_: Any) -> None:
        return None


class AnsweringQStash:
    def __init__(self, *, refuse: bool = False) -> None:
        self.refuse = refuse

    async def upsert(self, desired: DesiredSchedule) -> str:
        if self.refuse:
            raise QStashRejectedError("invalid destination url: endpoint resolves", status=400)
        return desired.schedule_id

    async def set_paused(self, schedule_id: str, paused: bool) -> None:
        return None


def domain_calls(run: Any) -> int:
    """Calls made from the service module straight into the domain package while ``run`` runs."""
    count = 0

    def profile(frame: FrameType, event: str, _: Any) -> None:
        nonlocal count
        caller = frame.f_back
        if (
            event == "call"
            and caller is not None
            and caller.f_code.co_filename == SERVICE
            and frame.f_code.co_filename.startswith(DOMAIN)
        ):
            count += 1

    sys.setprofile(profile)
    try:
        asyncio.run(run)
    finally:
        sys.setprofile(None)
    return count


@pytest.mark.parametrize(
    ("settings", "refuse", "crossings"),
    [
        pytest.param(PRODUCTION, False, 1, id="first apply on QStash: the plan"),
        pytest.param(Settings(), False, 1, id="first apply on a CronJob: the plan"),
        pytest.param(
            PRODUCTION, True, 2, id="QStash refuses the destination: the plan, after_failure"
        ),
    ],
)
def test_reconcile_enters_the_domain_once_per_plan(
    settings: Settings, refuse: bool, crossings: int
) -> None:
    reconciler = service.Reconciler(
        settings=settings,
        kube=AnsweringKube(),
        qstash=AnsweringQStash(refuse=refuse),
        metrics=OperatorMetrics(),
    )
    result: list[service.Result] = []

    async def cycle() -> None:
        result.append(await reconciler.reconcile(body(), now=NOW))

    assert domain_calls(cycle()) == crossings
    assert result[0].error is None
    assert result[0].status["backend"] == (
        "QStash" if settings is PRODUCTION and not refuse else "CronJob"
    )
