"""The tick-to-job floor creates the Jobs our webhook would create, not lighter ones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bench import tick_to_job

from qstash_devstack.stack import cronworkflow
from qstash_operator.domain import builders, model, naming, vocabulary

TICK = datetime(2026, 12, 7, 1, 30, tzinfo=UTC)
OWNER = {"metadata": {"name": "floor-owner", "uid": "0b9c1d2e-0000-4000-8000-000000000001"}}


def _ours(index: int) -> dict[str, Any]:
    """What the webhook builds for our side's CronWorkflow ``index`` at ``TICK``."""
    manifest = cronworkflow(
        f"cw-{index:04d}", {"schedule": "30 1 * * *", "jobTemplate": tick_to_job.job_template()}
    )
    manifest["metadata"].update({"namespace": tick_to_job.OURS, "uid": "cw-uid"})
    cw = model.parse(manifest)
    return builders.build_job(
        cw,
        name=naming.job_name(cw.name, TICK),
        trigger=vocabulary.TRIGGER_SCHEDULE,
        backend=model.Backend.QSTASH,
        scheduled_time=TICK,
        message_id="msg_x",
        attempt=1,
    )


def test_each_floor_job_has_the_shape_of_the_job_our_webhook_creates() -> None:
    jobs = tick_to_job.floor_jobs(3, TICK, OWNER)
    assert len(jobs) == 3
    for index, job in enumerate(jobs):
        ours = _ours(index)
        meta, ours_meta = job["metadata"], ours["metadata"]
        assert meta["name"] == ours_meta["name"]
        assert meta["namespace"] == tick_to_job.FLOOR
        assert meta["labels"].keys() == ours_meta["labels"].keys()
        assert meta["annotations"].keys() == ours_meta["annotations"].keys()
        assert meta["annotations"][vocabulary.ANNOTATION_SCHEDULED_TIME] == "2026-12-07T01:30:00Z"
        assert job["spec"] == {
            **ours["spec"],
            "template": {
                **ours["spec"]["template"],
                "metadata": {
                    "labels": {
                        **ours["spec"]["template"]["metadata"]["labels"],
                        vocabulary.LABEL_CRONWORKFLOW_UID: OWNER["metadata"]["uid"],
                    }
                },
            },
        }
        (ref,) = meta["ownerReferences"]
        assert ref.keys() == ours_meta["ownerReferences"][0].keys()
        assert (ref["kind"], ref["uid"]) == ("ConfigMap", OWNER["metadata"]["uid"])


def test_no_job_watch_of_ours_selects_the_floor() -> None:
    jobs = tick_to_job.floor_jobs(2, TICK, OWNER)
    ours_selector = (vocabulary.LABEL_MANAGED_BY, vocabulary.MANAGED_BY)
    for job in jobs:
        labels = job["metadata"]["labels"]
        assert (vocabulary.LABEL_MANAGED_BY, labels[vocabulary.LABEL_MANAGED_BY]) != ours_selector
    message_ids = {job["metadata"]["annotations"][vocabulary.ANNOTATION_MESSAGE_ID] for job in jobs}
    assert len(message_ids) == 2
    assert all(value.startswith("msg_") for value in message_ids)
