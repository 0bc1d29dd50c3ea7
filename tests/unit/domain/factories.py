"""Small builders of CronWorkflow bodies and Job views for the pure tests."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from qstash_operator.adapters.qstash_api import ObservedSchedule
from qstash_operator.domain import model
from qstash_operator.domain.runs import JobView

UID = "6f1b2c3d-0000-4000-8000-000000000001"

JOB_TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"team": "data"}, "annotations": {"owner": "alice"}},
    "spec": {
        "backoffLimit": 0,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox:1.36", "args": ["true"]}],
            }
        },
    },
}


def body(
    spec: dict[str, Any] | None = None,
    *,
    name: str = "report",
    namespace: str = "team-a",
    status: dict[str, Any] | None = None,
    generation: int = 1,
) -> dict[str, Any]:
    full_spec: dict[str, Any] = {
        "schedule": "0 * * * *",
        "jobTemplate": copy.deepcopy(JOB_TEMPLATE),
    }
    full_spec.update(spec or {})
    return {
        "apiVersion": "qstash-operator.dev/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": UID,
            "generation": generation,
            "resourceVersion": "100",
        },
        "spec": full_spec,
        "status": status or {},
    }


def cronworkflow(spec: dict[str, Any] | None = None, **kwargs: Any) -> model.CronWorkflow:
    return model.parse(body(spec, **kwargs))


def job(
    name: str,
    *,
    active: bool = False,
    succeeded: bool = False,
    failed: bool = False,
    finished_at: datetime | None = None,
    created_at: datetime | None = None,
    message_id: str | None = None,
    trigger: str = "schedule",
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
) -> JobView:
    return JobView(
        name=name,
        uid=f"uid-{name}",
        created_at=created_at,
        active=active,
        succeeded=succeeded,
        failed=failed,
        finished_at=finished_at,
        message_id=message_id,
        trigger=trigger,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
    )


def observed_schedule(
    schedule_id: str, *, destination: str, cron: str = "* * * * *"
) -> ObservedSchedule:
    """A schedule as QStash lists it: active, 3 retries, never fired."""
    return ObservedSchedule(
        schedule_id=schedule_id,
        destination=destination,
        cron=cron,
        body=None,
        retries=3,
        retry_delay=None,
        paused=False,
        next_schedule_time_ms=None,
        last_schedule_time_ms=None,
    )
