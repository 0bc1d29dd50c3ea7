"""Typed parameters: declarations, the values of one run, and the environment every Job gets."""

from __future__ import annotations

import json
from typing import Any, Final

import pytest

from qstash_operator.domain import builders, model, parameters, vocabulary
from qstash_operator.domain.errors import InvalidSpecError
from tests.unit.domain.factories import body, cronworkflow

DECLARED: Final = [
    {"name": "batch-size", "type": "integer", "default": "100", "description": "rows per batch"},
    {"name": "dry_run", "type": "boolean", "default": "false"},
    {"name": "region", "type": "enum", "enum": ["eu", "us"], "default": "eu"},
    {"name": "label", "default": "nightly"},  # type defaults to string
]


def declared() -> tuple[parameters.Parameter, ...]:
    return model.parse(body({"parameters": DECLARED})).spec.parameters


@pytest.mark.parametrize(
    ("name", "env"),
    [
        pytest.param("batch-size", "PARAM_BATCH_SIZE", id="dash-to-underscore"),
        pytest.param("dry_run", "PARAM_DRY_RUN", id="underscore-kept"),
        pytest.param("app.mode", "PARAM_APP_MODE", id="dot-to-underscore"),
        pytest.param("Region", "PARAM_REGION", id="upper-cased"),
    ],
)
def test_the_environment_variable_name_rule(name: str, env: str) -> None:
    assert parameters.env_name(name) == env


def test_declarations_are_read_in_order_with_their_types() -> None:
    found = declared()
    assert [(p.name, p.type.value, p.default) for p in found] == [
        ("batch-size", "integer", "100"),
        ("dry_run", "boolean", "false"),
        ("region", "enum", "eu"),
        ("label", "string", "nightly"),
    ]
    assert found[2].enum == ("eu", "us")


@pytest.mark.parametrize(
    ("items", "field", "words"),
    [
        pytest.param(
            [{"name": "n", "type": "integer", "default": "ten"}],
            "spec.parameters[0].default",
            "not an integer",
            id="integer-default-not-digits",
        ),
        pytest.param(
            [{"name": "n", "type": "integer", "default": 10}],
            "spec.parameters[0].default",
            "must be a string",
            id="default-not-quoted",
        ),
        pytest.param(
            [{"name": "b", "type": "boolean", "default": "yes"}],
            "spec.parameters[0].default",
            "not a boolean",
            id="boolean-default-yes",
        ),
        pytest.param(
            [{"name": "e", "type": "enum", "default": "eu"}],
            "spec.parameters[0].enum",
            "empty",
            id="enum-without-values",
        ),
        pytest.param(
            [{"name": "e", "type": "enum", "enum": ["us"], "default": "eu"}],
            "spec.parameters[0].default",
            "not one of us",
            id="enum-default-outside",
        ),
        pytest.param(
            [{"name": "1st", "default": "x"}],
            "spec.parameters[0].name",
            "not a parameter name",
            id="name-starting-with-a-digit",
        ),
        pytest.param(
            [{"name": "n", "type": "float", "default": "1"}],
            "spec.parameters[0].type",
            "unknown type",
            id="unknown-type",
        ),
        pytest.param(
            [{"name": "a-b", "default": "1"}, {"name": "a_b", "default": "2"}],
            "spec.parameters[1].name",
            "both become PARAM_A_B",
            id="two-names-one-variable",
        ),
    ],
)
def test_bad_declarations_name_the_field(items: list[Any], field: str, words: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        model.parse(body({"parameters": items}))
    assert caught.value.field == field
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(
            None,
            {"batch-size": "100", "dry_run": "false", "region": "eu", "label": "nightly"},
            id="defaults",
        ),
        pytest.param({"batch-size": "250"}, {"batch-size": "250"}, id="integer-as-text"),
        pytest.param({"batch-size": -3}, {"batch-size": "-3"}, id="integer-from-JSON"),
        pytest.param({"dry_run": True}, {"dry_run": "true"}, id="boolean-from-JSON"),
        pytest.param({"region": "us"}, {"region": "us"}, id="enum-value"),
        pytest.param({"label": ""}, {"label": ""}, id="empty-string-is-a-string"),
    ],
)
def test_values_of_one_run(overrides: dict[str, Any] | None, expected: dict[str, str]) -> None:
    chosen = parameters.values(declared(), overrides)
    assert {name: chosen[name] for name in expected} == expected


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        pytest.param({"batch-size": "12x"}, "parameters.batch-size", "'12x' is not an integer",
                     id="bad-integer"),
        pytest.param({"batch-size": "+5"}, "parameters.batch-size", "not an integer",
                     id="integer-with-plus"),
        pytest.param({"batch-size": "007"}, "parameters.batch-size", "not an integer",
                     id="integer-with-leading-zeros"),
        pytest.param({"batch-size": 1.5}, "parameters.batch-size", "string, number or boolean",
                     id="a-float"),
        pytest.param({"dry_run": "yes"}, "parameters.dry_run", "not a boolean", id="bad-boolean"),
        pytest.param({"region": "ap"}, "parameters.region", "not one of eu, us", id="bad-enum"),
        pytest.param({"colour": "red"}, "parameters.colour", "not a parameter", id="unknown"),
    ],
)  # fmt: skip
def test_bad_overrides_name_the_parameter(
    overrides: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parameters.values(declared(), overrides)
    assert caught.value.field == field
    assert caught.value.reason == parameters.REASON_INVALID_PARAMETER
    assert words in str(caught.value)


def test_every_container_gets_the_parameters_replacing_its_own_of_that_name() -> None:
    template = {
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "initContainers": [{"name": "setup", "image": "busybox"}],
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox",
                            "env": [
                                {"name": "KEEP", "value": "1"},
                                {"name": "PARAM_LABEL", "value": "from-template"},
                            ],
                        },
                        {"name": "sidecar", "image": "busybox"},
                    ],
                }
            }
        }
    }
    cw = cronworkflow({"parameters": DECLARED, "jobTemplate": template})
    chosen = parameters.values(cw.spec.parameters, {"batch-size": 7})
    job = builders.build_job(
        cw,
        name="report-manual-x",
        trigger="manual",
        backend=None,
        requested_by="alice",
        values=chosen,
        overrides={"batch-size": "7"},
        reason="re-run after the fix",
    )
    pod = job["spec"]["template"]["spec"]
    expected = [
        {"name": "PARAM_BATCH_SIZE", "value": "7"},
        {"name": "PARAM_DRY_RUN", "value": "false"},
        {"name": "PARAM_REGION", "value": "eu"},
        {"name": "PARAM_LABEL", "value": "nightly"},
    ]
    assert pod["containers"][0]["env"] == [{"name": "KEEP", "value": "1"}, *expected]
    assert pod["containers"][1]["env"] == expected
    assert pod["initContainers"][0]["env"] == expected
    annotations = job["metadata"]["annotations"]
    assert json.loads(annotations[vocabulary.ANNOTATION_RUN_PARAMETERS]) == {"batch-size": "7"}
    assert annotations[vocabulary.ANNOTATION_RUN_REASON] == "re-run after the fix"
    assert annotations[vocabulary.ANNOTATION_TRIGGERED_BY] == "alice"


def test_the_cronjob_backend_gives_its_jobs_the_defaults_too() -> None:
    cw = cronworkflow({"parameters": DECLARED})
    container = builders.build_cronjob(cw)["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    webhook_job = builders.build_job(cw, name="x", trigger="schedule", backend=None)
    assert container["env"] == webhook_job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "PARAM_BATCH_SIZE", "value": "100"} in container["env"]


def test_without_parameters_the_template_is_untouched() -> None:
    job = builders.build_job(cronworkflow(), name="x", trigger="schedule", backend=None)
    assert "env" not in job["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("", None, id="empty"),
        pytest.param('{"batch-size": "5"}', {"batch-size": "5"}, id="an-object"),
    ],
)
def test_the_run_now_companion_annotation(text: str | None, expected: object) -> None:
    assert parameters.from_annotation(text, field="a") == expected


@pytest.mark.parametrize("text", ["batch-size=5", "[1]", "{"])
def test_a_companion_annotation_that_is_not_an_object_is_refused(text: str) -> None:
    with pytest.raises(InvalidSpecError, match="not a JSON object"):
        parameters.from_annotation(text, field="metadata.annotations[x]")


def test_cli_assignments() -> None:
    assert parameters.parse_assignments(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(InvalidSpecError, match="not name=value"):
        parameters.parse_assignments(["novalue"])
