"""A dry run of a Job accepted lately answers for CronWorkflows with the same template in the
same namespace (``services.reconcile.AcceptedTemplates``): a burst of creates asks once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from qstash_operator.adapters.operator_metrics import OperatorMetrics
from qstash_operator.domain.errors import ApiRejectedError
from qstash_operator.domain.model import JsonDict
from qstash_operator.services import reconcile as service
from tests.unit.domain.factories import body
from tests.unit.instants import TOP_OF_THE_HOUR
from tests.unit.test_reconcile_service import PRODUCTION, AnsweringKube, AnsweringQStash

ACCEPTED = TOP_OF_THE_HOUR
SECOND_LATER = ACCEPTED + timedelta(seconds=1)
JUST_BEFORE_EXPIRY = ACCEPTED + timedelta(seconds=59.999)
AT_EXPIRY = ACCEPTED + timedelta(seconds=60)
CLOCK_WENT_BACK = ACCEPTED - timedelta(seconds=1)


@pytest.mark.parametrize(
    ("asked", "answers"),
    [
        pytest.param(ACCEPTED, True, id="at once"),
        pytest.param(SECOND_LATER, True, id="a second later"),
        pytest.param(JUST_BEFORE_EXPIRY, True, id="just before a minute"),
        pytest.param(AT_EXPIRY, False, id="a minute later: ask again"),
        pytest.param(CLOCK_WENT_BACK, False, id="the clock went back: ask again"),
    ],
)
def test_an_acceptance_answers_for_a_minute(asked: Any, answers: bool) -> None:
    memory = service.AcceptedTemplates(seconds=60)
    memory.accepted("key", ACCEPTED)
    assert memory.answers("key", asked) is answers
    assert memory.answers("other", ACCEPTED) is False


def test_a_reuse_does_not_prolong_an_acceptance() -> None:
    memory = service.AcceptedTemplates(seconds=60)
    memory.accepted("key", ACCEPTED)
    assert memory.answers("key", JUST_BEFORE_EXPIRY)
    assert not memory.answers("key", AT_EXPIRY)
    assert len(memory) == 0  # the expired one is gone


def test_the_least_recently_accepted_go_first() -> None:
    memory = service.AcceptedTemplates(seconds=60, size=2)
    memory.accepted("a", ACCEPTED)
    memory.accepted("b", ACCEPTED)
    memory.accepted("a", SECOND_LATER)  # accepted again: the newest
    memory.accepted("c", SECOND_LATER)
    assert len(memory) == 2
    assert memory.answers("a", SECOND_LATER)
    assert not memory.answers("b", SECOND_LATER)
    assert memory.answers("c", SECOND_LATER)


class CountingKube(AnsweringKube):
    def __init__(self, *, reject: bool = False) -> None:
        self.dry_runs: list[str] = []
        self.reject = reject

    async def create_job(self, job: JsonDict, *, dry_run: bool = False) -> JsonDict:
        assert dry_run
        self.dry_runs.append(job["metadata"]["name"])
        if self.reject:
            raise ApiRejectedError("Job.batch is invalid", detail="spec.template: Required value")
        return job


def _cycles(kube: CountingKube, *objects: tuple[JsonDict, Any]) -> list[service.Result]:
    reconciler = service.Reconciler(
        settings=PRODUCTION, kube=kube, qstash=AnsweringQStash(), metrics=OperatorMetrics()
    )

    async def run() -> list[service.Result]:
        return [await reconciler.reconcile(raw, now=now) for raw, now in objects]

    return asyncio.run(run())


def _ready(result: service.Result) -> str:
    [ready] = [c for c in result.status["conditions"] if c["type"] == "Ready"]
    return f"{ready['status']} {ready['reason']}"


def test_a_burst_of_the_same_template_asks_the_api_server_once() -> None:
    kube = CountingKube()
    results = _cycles(
        kube,
        (body(name="a"), ACCEPTED),
        (body(name="b"), SECOND_LATER),
        (body(name="c", namespace="team-b"), SECOND_LATER),  # another namespace asks
        (body(name="d"), AT_EXPIRY),  # a minute on: asks again
    )
    assert [name.split("-manual-")[0] for name in kube.dry_runs] == ["a", "c", "d"]
    assert [_ready(r) for r in results] == ["True Ready"] * 4


def test_a_rejected_template_is_asked_again_for_the_next_object() -> None:
    kube = CountingKube(reject=True)
    results = _cycles(kube, (body(name="a"), ACCEPTED), (body(name="b"), SECOND_LATER))
    assert len(kube.dry_runs) == 2
    assert [_ready(r) for r in results] == ["False InvalidJobTemplate"] * 2
