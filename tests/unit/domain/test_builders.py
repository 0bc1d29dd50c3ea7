"""Builders: both backends make the same Jobs; the QStash schedule carries what the spec says."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest

from qstash_operator.domain import builders, model, naming, vocabulary
from qstash_operator.domain.model import Backend
from tests.unit.domain.factories import UID, body, cronworkflow
from tests.unit.instants import TOP_OF_THE_HOUR


def test_a_tick_job_is_owned_labelled_and_annotated() -> None:
    cw = cronworkflow({"timeZone": "Europe/Berlin"})
    name = naming.job_name(cw.name, TOP_OF_THE_HOUR)
    job = builders.build_job(
        cw,
        name=name,
        trigger="schedule",
        backend=Backend.QSTASH,
        scheduled_time=TOP_OF_THE_HOUR,
        message_id="msg_26hZCxZCuWyyTWPmSVBrNB882AMRP1TsgzpygELRcLWep",
    )
    meta = job["metadata"]
    assert meta["name"] == name
    assert meta["namespace"] == "team-a"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "qstash-operator.dev/v1alpha1",
            "kind": "CronWorkflow",
            "name": "report",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["labels"] == {
        "team": "data",
        vocabulary.LABEL_CRONWORKFLOW: "report",
        vocabulary.LABEL_CRONWORKFLOW_UID: UID,
        vocabulary.LABEL_TRIGGER: "schedule",
        vocabulary.LABEL_MANAGED_BY: "qstash-operator",
        vocabulary.LABEL_MESSAGE_ID: "msg_26hZCxZCuWyyTWPmSVBrNB882AMRP1TsgzpygELRcLWep",
    }
    assert meta["annotations"] == {
        "owner": "alice",
        vocabulary.ANNOTATION_BACKEND: "QStash",
        vocabulary.ANNOTATION_SCHEDULED_TIME: "2026-06-01T10:00:00Z",
        # the CronJob controller's annotation, written in the CronWorkflow's zone
        vocabulary.ANNOTATION_K8S_SCHEDULED_TIME: "2026-06-01T12:00:00+02:00",
        vocabulary.ANNOTATION_MESSAGE_ID: "msg_26hZCxZCuWyyTWPmSVBrNB882AMRP1TsgzpygELRcLWep",
    }
    pod = job["spec"]["template"]
    assert pod["metadata"]["labels"] == {
        vocabulary.LABEL_CRONWORKFLOW: "report",
        vocabulary.LABEL_CRONWORKFLOW_UID: UID,
    }
    assert pod["spec"]["containers"][0]["image"] == "busybox:1.36"


def test_builders_never_modify_the_spec() -> None:
    cw = cronworkflow()
    before = json.dumps(cw.spec.job_template, sort_keys=True)
    builders.build_job(cw, name="x", trigger="manual", backend=None, requested_by="alice")
    builders.build_cronjob(cw)
    assert json.dumps(cw.spec.job_template, sort_keys=True) == before


def test_long_message_ids_become_legal_label_values() -> None:
    value = builders.label_value("msg_" + "x" * 80)
    assert value.startswith("h-")
    assert len(value) <= 63
    assert builders.label_value("msg_short") == "msg_short"


def test_a_manual_job_records_who_asked() -> None:
    job = builders.build_job(
        cronworkflow(),
        name="report-manual-abcde",
        trigger="manual",
        backend=None,
        requested_by="alice",
    )
    assert job["metadata"]["annotations"][vocabulary.ANNOTATION_TRIGGERED_BY] == "alice"
    assert job["metadata"]["labels"][vocabulary.LABEL_TRIGGER] == "manual"
    assert vocabulary.ANNOTATION_SCHEDULED_TIME not in job["metadata"]["annotations"]


def test_the_cronjob_carries_every_scheduling_field_and_the_same_job_labels() -> None:
    cw = cronworkflow(
        {
            "schedule": "@hourly",
            "timeZone": "America/New_York",
            "suspend": True,
            "concurrencyPolicy": "Replace",
            "startingDeadlineSeconds": 90,
            "successfulJobsHistoryLimit": 2,
            "failedJobsHistoryLimit": 4,
        }
    )
    cronjob = builders.build_cronjob(cw)
    assert cronjob["metadata"]["name"] == "report"
    assert cronjob["metadata"]["ownerReferences"][0]["uid"] == UID
    spec = cronjob["spec"]
    assert {key: value for key, value in spec.items() if key != "jobTemplate"} == {
        "schedule": "0 * * * *",
        "timeZone": "America/New_York",
        "suspend": True,
        "concurrencyPolicy": "Replace",
        "startingDeadlineSeconds": 90,
        "successfulJobsHistoryLimit": 2,
        "failedJobsHistoryLimit": 4,
    }
    webhook_job = builders.build_job(cw, name="x", trigger="schedule", backend=None)
    assert spec["jobTemplate"]["metadata"]["labels"] == webhook_job["metadata"]["labels"]
    assert spec["jobTemplate"]["spec"] == webhook_job["spec"]


def test_both_backends_receive_the_resolved_hash_spread_expression() -> None:
    cw = cronworkflow({"schedule": "H/15 H(1-5) * * *", "timeZone": "Europe/Berlin"})
    assert builders.build_cronjob(cw)["spec"]["schedule"] == "3-59/15 2 * * *"
    desired = builders.build_schedule(cw, cluster="prod", public_url="https://hooks.example.com")
    assert desired.cron == "CRON_TZ=Europe/Berlin 3-59/15 2 * * *"


def test_the_qstash_schedule_names_the_cronworkflow_and_nothing_secret() -> None:
    cw = cronworkflow({"timeZone": "Europe/Berlin", "qstash": {"retries": 1, "timeout": "20s"}})
    desired = builders.build_schedule(cw, cluster="prod", public_url="https://cron.example.com/")
    assert desired.schedule_id == "prod.team-a.report"
    assert desired.destination == "https://cron.example.com/api/qstash/webhook"
    assert desired.cron == "CRON_TZ=Europe/Berlin 0 * * * *"
    assert json.loads(desired.body) == {"namespace": "team-a", "name": "report", "uid": UID}
    assert (desired.retries, desired.retry_delay, desired.timeout, desired.paused) == (
        1,
        None,
        "20s",
        False,
    )


def test_the_fingerprint_moves_with_every_field() -> None:
    base = builders.build_schedule(cronworkflow(), cluster="prod", public_url="https://a.example")
    variants = [
        builders.build_schedule(
            cronworkflow({"schedule": "5 * * * *"}), cluster="prod", public_url="https://a.example"
        ),
        builders.build_schedule(
            cronworkflow({"suspend": True}), cluster="prod", public_url="https://a.example"
        ),
        builders.build_schedule(cronworkflow(), cluster="prod", public_url="https://b.example"),
        builders.build_schedule(
            cronworkflow({"qstash": {"retries": 0}}), cluster="prod", public_url="https://a.example"
        ),
    ]
    prints = {base.fingerprint()} | {variant.fingerprint() for variant in variants}
    assert len(prints) == 1 + len(variants)
    assert (
        base.fingerprint()
        == builders.build_schedule(
            cronworkflow(), cluster="prod", public_url="https://a.example"
        ).fingerprint()
    )


def _dry_run_key(cw: Any) -> str | None:
    job = builders.build_job(
        cw, name=naming.manual_job_name(cw.name, "dry-run"), trigger="manual", backend=None
    )
    return builders.dry_run_key(cw, job)


OTHER_UID = "0f6b5c0e-2a3d-4e4c-9a53-3c1d1a7a0b11"


@pytest.mark.parametrize(
    ("other", "same"),
    [
        pytest.param({"name": "invoice"}, True, id="another name: the same question"),
        pytest.param({"name": "invoice", "uid": OTHER_UID}, True, id="another name and uid"),
        pytest.param({"namespace": "team-b"}, False, id="another namespace: its own admission"),
        pytest.param({"image": "busybox:1.37"}, False, id="another image"),
        pytest.param({"label": "invoice"}, False, id="a template label equal to the name"),
    ],
)
def test_a_dry_run_key_leaves_only_the_identity_out(other: dict[str, str], same: bool) -> None:
    first = cronworkflow()
    spec: dict[str, Any] = {}
    if "image" in other:
        spec = {"jobTemplate": copy.deepcopy(first.spec.job_template)}
        spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] = other["image"]
    if "label" in other:
        spec = {"jobTemplate": copy.deepcopy(first.spec.job_template)}
        spec["jobTemplate"]["metadata"]["labels"]["team"] = other["label"]
    raw = body(spec, name=other.get("name", "report"), namespace=other.get("namespace", "team-a"))
    raw["metadata"]["uid"] = other.get("uid", UID)
    second = model.parse(raw)
    assert _dry_run_key(first) is not None
    assert (_dry_run_key(first) == _dry_run_key(second)) is same


def test_a_name_that_is_no_label_value_is_always_asked() -> None:
    # model.parse admits none (52 characters of a DNS subdomain at most); the key does not
    # lean on that rule living elsewhere
    longest = cronworkflow(name="r" * 52)
    assert _dry_run_key(longest) is not None
    assert _dry_run_key(dataclasses.replace(longest, name="r" * 64)) is None
