"""Parsing a CronWorkflow: defaults as the CRD sets them, refusals that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from qstash_operator.domain import model
from qstash_operator.domain.errors import InvalidSpecError
from tests.unit.domain.factories import body


def test_defaults_match_the_crd() -> None:
    cw = model.parse(body())
    spec = cw.spec
    assert (spec.time_zone, spec.suspend, spec.concurrency_policy) == (
        "UTC",
        False,
        model.ConcurrencyPolicy.ALLOW,
    )
    assert (spec.successful_jobs_history_limit, spec.failed_jobs_history_limit) == (3, 1)
    assert spec.backend is model.BackendChoice.AUTO
    assert spec.starting_deadline_seconds is None
    assert spec.qstash == model.QStashOptions()
    assert cw.key == "team-a/report"


def test_every_field_is_read() -> None:
    cw = model.parse(
        body(
            {
                "schedule": "@daily",
                "timeZone": "Asia/Tokyo",
                "suspend": True,
                "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": 120,
                "successfulJobsHistoryLimit": 0,
                "failedJobsHistoryLimit": 5,
                "backend": "QStash",
                "qstash": {"retries": 2, "retryDelay": "1000 * retried", "timeout": "30s"},
            }
        )
    )
    spec = cw.spec
    assert spec.timetable.first.qstash_cron() == "CRON_TZ=Asia/Tokyo 0 0 * * *"
    assert spec.suspend is True
    assert spec.concurrency_policy is model.ConcurrencyPolicy.FORBID
    assert spec.starting_deadline_seconds == 120
    assert (spec.successful_jobs_history_limit, spec.failed_jobs_history_limit) == (0, 5)
    assert spec.backend is model.BackendChoice.QSTASH
    assert spec.qstash == model.QStashOptions(
        retries=2, retry_delay="1000 * retried", timeout="30s"
    )


NO_CONTAINERS: dict[str, Any] = {"spec": {"template": {"spec": {"containers": []}}}}
ALWAYS: dict[str, Any] = {
    "spec": {
        "template": {
            "spec": {"restartPolicy": "Always", "containers": [{"name": "x", "image": "y"}]}
        }
    }
}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        pytest.param({"schedule": None}, "spec.schedule", id="no schedule"),
        pytest.param({"schedule": "* * * * * *"}, "spec.schedule", id="seconds in the schedule"),
        pytest.param({"timeZone": "Nowhere/City"}, "spec.timeZone", id="unknown time zone"),
        pytest.param(
            {"concurrencyPolicy": "Sometimes"}, "spec.concurrencyPolicy", id="unknown policy"
        ),
        pytest.param({"backend": "Lambda"}, "spec.backend", id="unknown backend"),
        pytest.param(
            {"startingDeadlineSeconds": -1}, "spec.startingDeadlineSeconds", id="negative deadline"
        ),
        pytest.param(
            {"successfulJobsHistoryLimit": -1},
            "spec.successfulJobsHistoryLimit",
            id="negative history",
        ),
        pytest.param(
            {"failedJobsHistoryLimit": "two"},
            "spec.failedJobsHistoryLimit",
            id="history not a number",
        ),
        pytest.param({"suspend": "yes"}, "spec.suspend", id="suspend not a boolean"),
        pytest.param({"qstash": {"retries": -2}}, "spec.qstash.retries", id="negative retries"),
        pytest.param(
            {"qstash": {"timeout": "soon"}}, "spec.qstash.timeout", id="timeout without a unit"
        ),
        pytest.param(
            {"qstash": {"retryDelay": " "}}, "spec.qstash.retryDelay", id="blank retry delay"
        ),
        pytest.param({"jobTemplate": None}, "spec.jobTemplate", id="no job template"),
        pytest.param(
            {"jobTemplate": NO_CONTAINERS},
            "spec.jobTemplate.spec.template.spec.containers",
            id="no containers",
        ),
        pytest.param(
            {"jobTemplate": ALWAYS},
            "spec.jobTemplate.spec.template.spec.restartPolicy",
            id="restart always",
        ),
    ],
)
def test_invalid_specs_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        model.parse(body(spec))
    assert caught.value.field == field
    assert caught.value.fix  # every refusal says what to do


@pytest.mark.parametrize(
    ("name", "namespace", "field"),
    [
        pytest.param("x" * 53, "default", "metadata.name", id="name of 53 characters"),
        pytest.param("Report", "default", "metadata.name", id="upper case name"),
        pytest.param("ok", "", "metadata.namespace", id="no namespace"),
    ],
)
def test_invalid_identity(name: str, namespace: str, field: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        model.parse(body(name=name, namespace=namespace))
    assert caught.value.field == field


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({}, id="empty"),
        pytest.param(
            {"spec": {"template": {"spec": {"containers": [{"name": "m", "args": ["a", 1]}]}}}},
            id="a Job template",
        ),
        pytest.param([{"a": [None, True, 1.5]}, "s"], id="lists of objects"),
        pytest.param("scalar", id="a scalar"),
    ],
)
def test_json_copy_is_a_deep_copy_sharing_nothing_mutable(value: Any) -> None:
    copied = model.json_copy(value)
    assert copied == value

    def containers(node: Any) -> list[Any]:
        if isinstance(node, dict):
            return [node, *(inner for item in node.values() for inner in containers(item))]
        if isinstance(node, list):
            return [node, *(inner for item in node for inner in containers(item))]
        return []

    originals = {id(node) for node in containers(value)}
    assert not originals & {id(node) for node in containers(copied)}


def test_a_parsed_template_is_the_callers_no_more() -> None:
    raw = body()
    parsed = model.parse(raw)
    raw["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] = "changed"
    assert parsed.spec.job_template["spec"]["template"]["spec"]["containers"][0]["image"] != (
        "changed"
    )
