"""Backend choice and the handover rule that makes a switch run the tick in between once."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from qstash_operator.domain import backend, cron, vocabulary
from qstash_operator.domain.model import Backend, BackendChoice
from tests.unit.instants import HALF_PAST, JUST_AFTER_THE_HOUR, TOP_OF_THE_HOUR

NO_TOKEN = "QSTASH_TOKEN is not set"


@pytest.mark.parametrize(
    ("requested", "default", "problem", "expected", "reason"),
    [
        pytest.param(
            BackendChoice.AUTO,
            BackendChoice.AUTO,
            None,
            Backend.QSTASH,
            vocabulary.REASON_BACKEND_SELECTED,
            id="auto with QStash configured",
        ),
        pytest.param(
            BackendChoice.AUTO,
            BackendChoice.AUTO,
            NO_TOKEN,
            Backend.CRONJOB,
            vocabulary.REASON_FALLBACK_TO_CRONJOB,
            id="auto without a token falls back",
        ),
        pytest.param(
            BackendChoice.AUTO,
            BackendChoice.CRONJOB,
            None,
            Backend.CRONJOB,
            vocabulary.REASON_BACKEND_SELECTED,
            id="cluster default CronJob wins over a configured QStash",
        ),
        pytest.param(
            BackendChoice.QSTASH,
            BackendChoice.CRONJOB,
            None,
            Backend.QSTASH,
            vocabulary.REASON_BACKEND_SELECTED,
            id="spec QStash wins over the cluster default",
        ),
        pytest.param(
            BackendChoice.QSTASH,
            BackendChoice.AUTO,
            NO_TOKEN,
            None,
            vocabulary.REASON_BACKEND_UNAVAILABLE,
            id="spec QStash without a token cannot run",
        ),
        pytest.param(
            BackendChoice.CRONJOB,
            BackendChoice.AUTO,
            None,
            Backend.CRONJOB,
            vocabulary.REASON_BACKEND_SELECTED,
            id="spec CronJob",
        ),
    ],
)
def test_decide(
    requested: BackendChoice,
    default: BackendChoice,
    problem: str | None,
    expected: Backend | None,
    reason: str,
) -> None:
    decision = backend.decide(requested, cluster_default=default, qstash_problem=problem)
    assert (decision.backend, decision.reason) == (expected, reason)
    if problem and expected is not Backend.QSTASH:
        assert problem in decision.message


REFUSED = "invalid destination url: endpoint resolves to a loopback address"


@pytest.mark.parametrize(
    ("requested", "default", "expected", "reason"),
    [
        pytest.param(
            BackendChoice.AUTO,
            BackendChoice.AUTO,
            Backend.CRONJOB,
            vocabulary.REASON_FALLBACK_TO_CRONJOB,
            id="auto falls back for this CronWorkflow",
        ),
        pytest.param(
            BackendChoice.QSTASH,
            BackendChoice.AUTO,
            None,
            vocabulary.REASON_BACKEND_UNAVAILABLE,
            id="spec QStash cannot run",
        ),
        pytest.param(
            BackendChoice.AUTO,
            BackendChoice.QSTASH,
            None,
            vocabulary.REASON_BACKEND_UNAVAILABLE,
            id="auto meaning QStash by the cluster default cannot run",
        ),
        pytest.param(
            BackendChoice.CRONJOB,
            BackendChoice.AUTO,
            Backend.CRONJOB,
            vocabulary.REASON_BACKEND_SELECTED,
            id="spec CronJob never asked QStash",
        ),
    ],
)
def test_a_refused_destination_counts_for_one_cronworkflow(
    requested: BackendChoice, default: BackendChoice, expected: Backend | None, reason: str
) -> None:
    decision = backend.decide(
        requested, cluster_default=default, qstash_problem=None, destination_refused=REFUSED
    )
    assert (decision.backend, decision.reason) == (expected, reason)
    if expected is not Backend.CRONJOB or reason == vocabulary.REASON_FALLBACK_TO_CRONJOB:
        assert REFUSED in decision.message
    assert "development mode" not in decision.message


def test_the_settings_problem_is_named_before_a_refusal() -> None:
    decision = backend.decide(
        BackendChoice.AUTO,
        cluster_default=BackendChoice.AUTO,
        qstash_problem=NO_TOKEN,
        destination_refused=REFUSED,
    )
    assert decision.message.startswith(f"development mode: {NO_TOKEN}")


@pytest.mark.parametrize(
    ("now", "to", "expected"),
    [
        pytest.param(
            JUST_AFTER_THE_HOUR,
            Backend.CRONJOB,
            TOP_OF_THE_HOUR + timedelta(hours=1, seconds=30),
            id="to CronJob: the next tick is shared",
        ),
        pytest.param(
            TOP_OF_THE_HOUR - timedelta(seconds=30),
            Backend.QSTASH,
            TOP_OF_THE_HOUR + timedelta(hours=1, seconds=30),
            id="to QStash within its load time: the tick after is shared",
        ),
        pytest.param(
            HALF_PAST,
            Backend.QSTASH,
            TOP_OF_THE_HOUR + timedelta(hours=1, seconds=30),
            id="to QStash with time to load",
        ),
        pytest.param(
            TOP_OF_THE_HOUR,
            Backend.CRONJOB,
            TOP_OF_THE_HOUR + timedelta(seconds=30),
            id="at the tick itself, that tick is shared",
        ),
    ],
)
def test_handover_deadline(now: datetime, to: Backend, expected: datetime) -> None:
    assert backend.handover_deadline(cron.parse("0 * * * *"), now=now, to=to) == expected
