"""Transient errors become 503 with the error's own reason and a whole-second Retry-After,
on the delivery path and on the API alike."""

from __future__ import annotations

import json

import pytest

from qstash_operator.domain.errors import (
    ForbiddenError,
    KubernetesUnavailableError,
    QStashAuthError,
    RunInFlightError,
    TransientError,
)
from qstash_webhook.errors import for_api, for_delivery


@pytest.mark.parametrize(
    ("error", "reason", "retry_after"),
    [
        pytest.param(
            KubernetesUnavailableError("connection refused", retry_after=2.5),
            "Unavailable",
            "3",
            id="the API server down: rounded up to whole seconds",
        ),
        pytest.param(
            ForbiddenError("jobs is forbidden"), "Forbidden", "300", id="our own RBAC: slow retry"
        ),
        pytest.param(
            RunInFlightError("relay-manual-aaaaa is reserved"),
            "RunInFlight",
            "2",
            id="Replace waiting for a reserved run",
        ),
        pytest.param(QStashAuthError("401"), "Unavailable", "300", id="any other transient error"),
    ],
)
def test_transient_errors_answer_503_with_their_reason(
    error: TransientError, reason: str, retry_after: str
) -> None:
    delivery, label = for_delivery(error)
    api = for_api(error)
    assert label == "unavailable"
    for response in (delivery, api):
        assert response.status == 503
        assert response.headers["Retry-After"] == retry_after
        assert response.body is not None
        body = json.loads(bytes(response.body))  # type: ignore[arg-type]
        assert body == {"error": str(error), "reason": reason}
