"""The CronWorkflow CRD as the real API server enforces it.

Why: the CRD is the first line of the API. A mistake it lets through reaches the operator as a
condition after the fact; a mistake it catches is refused at `kubectl apply` with a message that
names the field and the fix. These tests apply manifests to kube-apiserver and read its answers,
so schema validation, CEL rules (and their escaping), defaulting, pruning, `kubectl explain` and
the printer columns are checked exactly as users will meet them.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from qstash_devstack.controlplane import ControlPlane
from qstash_devstack.polling import poll_until
from qstash_operator.domain import cron, slots

GROUP_VERSION = "qstash-operator.dev/v1alpha1"
DELETE = object()  # marks a field to remove from the base manifest


def cronworkflow(name: str = "nightly-report", **spec: Any) -> dict[str, Any]:
    """A valid CronWorkflow; keyword arguments replace top-level spec fields."""
    body: dict[str, Any] = {
        "apiVersion": GROUP_VERSION,
        "kind": "CronWorkflow",
        "metadata": {"name": name},
        "spec": {
            "schedule": "0 3 * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "report", "image": "busybox"}],
                        }
                    }
                }
            },
        },
    }
    body["spec"].update(spec)
    return body


def changed(changes: dict[str, Any]) -> dict[str, Any]:
    """The base manifest with dotted paths set (or removed, with DELETE)."""
    body = copy.deepcopy(cronworkflow())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = body
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return body


TEMPLATE_SPEC = "spec.jobTemplate.spec.template.spec"

INVALID = [
    pytest.param(
        {"spec.schedule": "0 */5 * * * *"},
        "spec.schedule",
        "has more than five fields; QStash's resolution is one minute, so remove the seconds",
        id="a six-field schedule with seconds is refused: remove the seconds field",
    ),
    pytest.param(
        {"spec.schedule": "CRON_TZ=Europe/Berlin 0 3 * * *"},
        "spec.schedule",
        "must not carry CRON_TZ= or TZ=; remove the prefix and set spec.timeZone instead",
        id="a CRON_TZ= prefix in the schedule is refused: use spec.timeZone",
    ),
    pytest.param(
        {"spec.schedule": "TZ=UTC @daily"},
        "spec.schedule",
        "remove the prefix and set spec.timeZone instead",
        id="a TZ= prefix in the schedule is refused too",
    ),
    pytest.param(
        {"spec.schedule": "0 3 * * MON!"},
        "spec.schedule",
        "must be five cron fields",
        id="a schedule with characters cron does not know is refused",
    ),
    pytest.param(
        {"spec.schedule": "0 3 * *"},
        "spec.schedule",
        "must be five cron fields",
        id="a four-field schedule is refused",
    ),
    pytest.param(
        {"spec.schedule": "@every 5m"},
        "spec.schedule",
        "or one of @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually",
        id="an unknown macro such as @every is refused with the list of macros",
    ),
    pytest.param(
        {"spec.schedule": ""},
        "spec.schedule",
        "should be at least 1 chars long",
        id="an empty schedule is refused",
    ),
    pytest.param(
        {"spec.schedule": DELETE},
        "spec",
        "set exactly one of spec.schedule (one cron) and spec.schedules",
        id="a missing schedule (and no schedules) is refused",
    ),
    pytest.param(
        {"spec.schedules": [{"name": "a", "cron": "0 4 * * *"}]},
        "spec",
        "set exactly one of spec.schedule (one cron) and spec.schedules",
        id="schedule and schedules together are refused",
    ),
    pytest.param(
        {
            "spec.schedule": DELETE,
            "spec.schedules": [
                {"name": "a", "cron": "0 4 * * *"},
                {"name": "a", "cron": "0 5 * * *"},
            ],
        },
        "spec.schedules[1]",
        "Duplicate value",
        id="two schedules entries of one name are refused",
    ),
    pytest.param(
        {"spec.schedule": DELETE, "spec.schedules": [{"name": "Nightly", "cron": "0 4 * * *"}]},
        "spec.schedules[0].name",
        "should match",
        id="an entry name that is no DNS label is refused",
    ),
    pytest.param(
        {
            "spec.schedule": DELETE,
            "spec.schedules": [{"name": f"e{i}", "cron": "0 4 * * *"} for i in range(11)],
        },
        "spec.schedules",
        "must have at most 10 items",
        id="more than ten schedules entries are refused",
    ),
    pytest.param(
        {
            "spec.schedule": DELETE,
            "spec.schedules": [{"name": "a", "cron": "0 4 * * *", "parameters": {"size": "1"}}],
        },
        "spec.schedules",
        "may only set parameters declared in spec.parameters",
        id="an entry setting an undeclared parameter is refused",
    ),
    pytest.param(
        {"spec.schedule": DELETE, "spec.schedules": [{"name": "a", "cron": "0 0 */5 * * *"}]},
        "spec.schedules[0].cron",
        "has more than five fields",
        id="an entry cron with a seconds field is refused",
    ),
    pytest.param(
        {"spec.jobTemplate": DELETE},
        "spec.jobTemplate",
        "Required value",
        id="a missing jobTemplate is refused as required",
    ),
    pytest.param(
        {"spec.jobTemplate.spec.template": DELETE},
        "spec.jobTemplate.spec.template",
        "Required value",
        id="a jobTemplate without a pod template is refused",
    ),
    pytest.param(
        {"metadata.name": "a" * 53},
        "metadata.name",
        "must be at most 52 characters so that Job names (<name>-<unix minutes>) fit in 63; "
        "choose a shorter name",
        id="a 53-character name is refused: Job names would not fit",
    ),
    pytest.param(
        {"spec.successfulJobsHistoryLimit": -1},
        "spec.successfulJobsHistoryLimit",
        "should be greater than or equal to 0",
        id="a negative successfulJobsHistoryLimit is refused",
    ),
    pytest.param(
        {"spec.failedJobsHistoryLimit": -1},
        "spec.failedJobsHistoryLimit",
        "should be greater than or equal to 0",
        id="a negative failedJobsHistoryLimit is refused",
    ),
    pytest.param(
        {"spec.backend": "Lambda"},
        "spec.backend",
        'supported values: "Auto", "QStash", "CronJob"',
        id="an unknown backend is refused with the supported ones",
    ),
    pytest.param(
        {"spec.concurrencyPolicy": "Sometimes"},
        "spec.concurrencyPolicy",
        'supported values: "Allow", "Forbid", "Replace"',
        id="an unknown concurrencyPolicy is refused with the supported ones",
    ),
    pytest.param(
        {"spec.startingDeadlineSeconds": -5},
        "spec.startingDeadlineSeconds",
        "should be greater than or equal to 0",
        id="a negative startingDeadlineSeconds is refused",
    ),
    pytest.param(
        {"spec.timeZone": "Europe/Berlin; rm -rf /"},
        "spec.timeZone",
        "should match",
        id="a time zone that is not an IANA-shaped name is refused",
    ),
    pytest.param(
        {f"{TEMPLATE_SPEC}.restartPolicy": "Always"},
        f"{TEMPLATE_SPEC}.restartPolicy",
        'supported values: "Never", "OnFailure"',
        id="restartPolicy Always is refused: Jobs need Never or OnFailure",
    ),
    pytest.param(
        {f"{TEMPLATE_SPEC}.containers": []},
        f"{TEMPLATE_SPEC}.containers",
        "should have at least 1 items",
        id="a pod template without containers is refused",
    ),
    pytest.param(
        {"spec.qstash": {"timeout": "30"}},
        "spec.qstash.timeout",
        "should match '^[1-9][0-9]*[smh]$'",
        id="a qstash timeout without a unit is refused with the expected shape",
    ),
    pytest.param(
        {"spec.qstash": {"retries": -1}},
        "spec.qstash.retries",
        "should be greater than or equal to 0",
        id="negative qstash retries are refused",
    ),
    pytest.param(
        {"spec.qstash": {"retries": 101}},
        "spec.qstash.retries",
        "should be less than or equal to 100",
        id="more than 100 qstash retries are refused",
    ),
    pytest.param(
        {"spec.backend": "CronJob", "spec.qstash": {"retries": 2}},
        "spec.qstash",
        "remove spec.qstash or set spec.backend to Auto or QStash",
        id="qstash options with the CronJob backend are refused: they would be ignored",
    ),
    pytest.param(
        {
            "spec.activeFrom": "2027-01-01T08:00:00Z",
            "spec.activeUntil": "2027-01-01T10:00:00+05:00",
        },
        "spec.activeUntil",
        "must be later than spec.activeFrom",
        id="a window that ends before it starts is refused, compared as times not text",
    ),
    pytest.param(
        {"spec.activeFrom": "next monday"},
        "spec.activeFrom",
        "date-time",
        id="an activeFrom that is not an RFC 3339 time is refused",
    ),
    pytest.param(
        {"spec.parameters": [{"name": "size", "type": "integer", "default": "ten"}]},
        "spec.parameters[0].default",
        "must be decimal digits",
        id="an integer parameter with a non-integer default is refused",
    ),
    pytest.param(
        {"spec.parameters": [{"name": "region", "type": "enum", "default": "eu"}]},
        "spec.parameters[0].default",
        "needs enum values",
        id="an enum parameter without values is refused",
    ),
    pytest.param(
        {"spec.maxRuns": 0},
        "spec.maxRuns",
        "should be greater than or equal to 1",
        id="maxRuns 0 is refused",
    ),
    pytest.param(
        {"spec.slotHistoryLimit": 101},
        "spec.slotHistoryLimit",
        "should be less than or equal to 100",
        id="a ledger longer than 100 slots is refused",
    ),
    pytest.param(
        {"spec.catchUp": {"policy": "Latest", "maxRuns": 3}},
        "spec.catchUp",
        "catchUp.maxRuns applies to policy All only",
        id="maxRuns with Latest is refused: Latest runs one",
    ),
    pytest.param(
        {"spec.catchUp": {"policy": "Some"}},
        "spec.catchUp.policy",
        'supported values: "None", "Latest", "All"',
        id="an unknown catch-up policy is refused with the supported ones",
    ),
    pytest.param(
        {"spec.freshness": {}},
        "spec.freshness",
        'freshness needs maxAge (e.g. "26h") or missedSlots (e.g. 3)',
        id="a freshness objective without a bound is refused",
    ),
    pytest.param(
        {"spec.freshness": {"maxAge": "26"}},
        "spec.freshness.maxAge",
        "should match '^[1-9][0-9]*[smhd]$'",
        id="a maxAge without a unit is refused with the expected shape",
    ),
]


@pytest.fixture(scope="module")
def crd_namespace(control_plane: ControlPlane) -> Iterator[str]:
    """One namespace for the whole table: rejected objects never exist, so none can clash."""
    name = f"t-crd-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.mark.parametrize(("changes", "field", "fix"), INVALID)
def test_an_invalid_cronworkflow_is_refused_naming_the_field_and_the_fix(
    control_plane: ControlPlane, crd_namespace: str, changes: dict[str, Any], field: str, fix: str
) -> None:
    manifest = changed(changes)
    result = control_plane.kubectl(
        "create", "--namespace", crd_namespace, "-f", "-", input=json.dumps(manifest), check=False
    )
    assert result.returncode != 0, f"accepted: {result.stdout}"
    message = result.stderr
    assert "is invalid" in message
    assert f"{field}: " in message, f"no error names {field}:\n{message}"
    assert fix in message, f"the message does not say how to fix it:\n{message}"
    # One mistake, one explanation: overlapping schedule rules stay silent.
    assert message.count("spec.schedule: ") <= 1, message
    name = manifest["metadata"]["name"]
    status, _ = control_plane.request(
        "GET", f"/apis/qstash-operator.dev/v1alpha1/namespaces/{crd_namespace}/cronworkflows/{name}"
    )
    assert status == 404


def _create(plane: ControlPlane, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    plane.kubectl("create", "--namespace", namespace, "-f", "-", input=json.dumps(manifest))
    name = manifest["metadata"]["name"]
    out = plane.kubectl("get", "cronworkflow", name, "--namespace", namespace, "-o", "json")
    stored: dict[str, Any] = json.loads(out.stdout)
    return stored


VALID = [
    pytest.param({"schedule": "@daily"}, id="the @daily macro"),
    pytest.param({"schedule": "@hourly", "suspend": True}, id="a suspended @hourly"),
    pytest.param({"schedule": "*/5 * * * *"}, id="every five minutes"),
    pytest.param(
        {"schedule": "0 9 * * MON-FRI", "timeZone": "America/Argentina/Buenos_Aires"},
        id="weekday mornings in a three-part IANA zone",
    ),
    pytest.param(
        {"schedule": "30 1 1 JAN,JUL *", "timeZone": "Etc/GMT+3"},
        id="month names and a zone with a sign",
    ),
    pytest.param({"schedule": " 0 3 * * * "}, id="a schedule with surrounding blanks"),
    pytest.param({"schedule": "H H(1-4) * * *"}, id="hash-spread minute and hour"),
    pytest.param(
        {
            "activeFrom": "2027-01-01T10:00:00+05:00",
            "activeUntil": "2027-01-01T06:00:00Z",
            "maxRuns": 5,
        },
        id="a one-hour window in two offsets (earlier as text, later as time), and a run limit",
    ),
    pytest.param(
        {
            "parameters": [
                {"name": "batch-size", "type": "integer", "default": "-5"},
                {"name": "dry-run", "type": "boolean", "default": "false"},
                {"name": "region", "type": "enum", "enum": ["eu", "us"], "default": "us"},
                {"name": "label", "type": "string", "default": ""},
            ]
        },
        id="typed parameters of every type",
    ),
    pytest.param({"schedule": "H(0-29)/10 H/6 * * *"}, id="hash-spread steps within ranges"),
    pytest.param(
        {
            "schedule": None,
            "parameters": [{"name": "mode", "type": "enum", "enum": ["a", "b"], "default": "a"}],
            "schedules": [
                {"name": "weekdays", "cron": "0 6 * * 1-5"},
                {"name": "sunday", "cron": "H 9 * * 0", "parameters": {"mode": "b"}},
            ],
        },
        id="several schedules, one with parameters",
    ),
    pytest.param(
        {
            "schedule": "0 0 * * 0",
            "backend": "QStash",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 300,
            "qstash": {"retries": 5, "retryDelay": "pow(2, retried) * 1000", "timeout": "30s"},
        },
        id="the QStash backend with every delivery option",
    ),
    pytest.param(
        {
            "schedule": "@weekly",
            "backend": "CronJob",
            "concurrencyPolicy": "Replace",
            "successfulJobsHistoryLimit": 0,
            "failedJobsHistoryLimit": 0,
        },
        id="the CronJob backend keeping no history",
    ),
    pytest.param(
        {
            "schedule": "0 3 * * *",
            "startingDeadlineSeconds": 600,
            "slotHistoryLimit": 50,
            "catchUp": {"policy": "All", "maxRuns": 3, "window": "2h"},
            "freshness": {"maxAge": "26h", "missedSlots": 2},
        },
        id="a ledger, a catch-up policy and a freshness objective",
    ),
]


@pytest.mark.parametrize("spec", VALID)
def test_a_valid_cronworkflow_is_accepted_as_written(
    control_plane: ControlPlane, namespace: str, spec: dict[str, Any]
) -> None:
    stored = _create(control_plane, namespace, cronworkflow(**spec))
    for key, value in spec.items():
        assert stored["spec"].get(key) == value


def test_a_52_character_name_is_accepted(control_plane: ControlPlane, namespace: str) -> None:
    stored = _create(control_plane, namespace, cronworkflow(name="a" * 52))
    assert stored["metadata"]["name"] == "a" * 52


def test_defaults_are_applied_by_the_api_server(
    control_plane: ControlPlane, namespace: str
) -> None:
    stored = _create(control_plane, namespace, cronworkflow(schedule="@daily"))
    spec = stored["spec"]
    assert spec["timeZone"] == "UTC"
    assert spec["suspend"] is False
    assert spec["concurrencyPolicy"] == "Allow"
    assert spec["successfulJobsHistoryLimit"] == 3
    assert spec["failedJobsHistoryLimit"] == 1
    assert spec["backend"] == "Auto"
    assert spec["slotHistoryLimit"] == 20
    assert "catchUp" not in spec  # the rule (Latest within a deadline, else None) is the code's
    assert "startingDeadlineSeconds" not in spec
    assert "qstash" not in spec


def test_an_unknown_field_is_refused_by_kubectl_and_pruned_when_only_warned(
    control_plane: ControlPlane, namespace: str
) -> None:
    manifest = cronworkflow(schedule="@daily", typoedField=True)
    job_spec = manifest["spec"]["jobTemplate"]["spec"]
    job_spec.update(backoffLimit=2, ttlSecondsAfterFinished=600)
    job_spec["template"]["spec"]["serviceAccountName"] = "reporter"
    job_spec["template"]["spec"]["containers"][0]["args"] = ["--since", "1d"]
    strict = control_plane.kubectl(
        "create", "--namespace", namespace, "-f", "-", input=json.dumps(manifest), check=False
    )
    assert strict.returncode != 0
    assert 'unknown field "spec.typoedField"' in strict.stderr  # kubectl validates strictly

    warned = control_plane.kubectl(
        "create",
        "--validate=warn",
        "--namespace",
        namespace,
        "-f",
        "-",
        input=json.dumps(manifest),
    )
    assert 'unknown field "spec.typoedField"' in warned.stderr
    stored = json.loads(
        control_plane.kubectl(
            "get", "qcwf", "nightly-report", "--namespace", namespace, "-o", "json"
        ).stdout
    )
    assert "typoedField" not in stored["spec"]
    kept = stored["spec"]["jobTemplate"]["spec"]
    assert kept["backoffLimit"] == 2
    assert kept["ttlSecondsAfterFinished"] == 600
    assert kept["template"]["spec"]["serviceAccountName"] == "reporter"
    assert kept["template"]["spec"]["containers"][0]["args"] == ["--since", "1d"]


def _explain(plane: ControlPlane, field: str) -> str:
    # The OpenAPI v3 document of a new CRD is published shortly after it is Established.
    def answer() -> str | None:
        result = plane.kubectl("explain", field, check=False)
        return result.stdout if result.returncode == 0 else None

    return poll_until(answer, timeout=30, what=f"kubectl explain {field}")


def test_kubectl_explain_teaches_the_spec(control_plane: ControlPlane) -> None:
    out = _explain(control_plane, "cronworkflow.spec")
    flat = " ".join(out.split())
    assert "What to run and when. Modelled on batch/v1 CronJob" in flat
    for field in (
        "schedule",
        "timeZone",
        "suspend",
        "concurrencyPolicy",
        "backend",
        "qstash",
        "jobTemplate",
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ):
        assert re.search(rf"^\s+{field}\s+<", out, re.MULTILINE), f"{field} missing:\n{out}"
    assert re.search(r"^\s+schedules\s+<\[\]Object>", out, re.MULTILINE), out
    schedules = " ".join(_explain(control_plane, "cronworkflow.spec.schedules").split())
    assert "the first entry in list order that fires then (the winner)" in schedules
    assert "<cluster>.<namespace>.<name>_<entry>" in schedules
    assert "No seconds field: QStash's resolution is one minute" in flat
    assert "Hash-spread times (Jenkins' H) in the minute and hour fields" in flat


def test_kubectl_explain_teaches_nested_fields(control_plane: ControlPlane) -> None:
    retry = " ".join(_explain(control_plane, "qcwf.spec.qstash.retryDelay").split())
    assert 'e.g. "pow(2, retried) * 1000"' in retry
    policy = " ".join(
        _explain(
            control_plane, "cronworkflow.spec.jobTemplate.spec.template.spec.restartPolicy"
        ).split()
    )
    assert "Always is not allowed for Jobs" in policy
    conditions = " ".join(_explain(control_plane, "cronworkflow.status.conditions").split())
    assert "Ready" in conditions
    assert "SpecValid" in conditions


def test_every_published_field_has_a_description(control_plane: ControlPlane) -> None:
    def published() -> dict[str, Any] | None:
        status, doc = control_plane.request("GET", "/openapi/v3/apis/qstash-operator.dev/v1alpha1")
        return doc if status == 200 else None

    doc = poll_until(published, timeout=30, what="the CRD's OpenAPI v3 document")
    schema = doc["components"]["schemas"]["dev.qstash-operator.v1alpha1.CronWorkflow"]
    missing: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        for name, child in (node.get("properties") or {}).items():
            if path == "" and name == "metadata":
                continue  # ObjectMeta: documented by Kubernetes itself
            here = f"{path}.{name}" if path else name
            if not child.get("description"):
                missing.append(here)
            walk(child, here)
        items = node.get("items")
        if isinstance(items, dict):
            walk(items, f"{path}[]")

    walk(schema, "")
    assert missing == [], f"fields without a description: {missing}"


def test_printer_columns_show_through_the_short_name(
    control_plane: ControlPlane, namespace: str
) -> None:
    _create(
        control_plane, namespace, cronworkflow(schedule="*/15 * * * *", timeZone="Europe/Berlin")
    )
    status = {
        "status": {
            "backend": "CronJob",
            "cronJobName": "nightly-report",
            "lastScheduleTime": "2026-01-01T02:45:00Z",
            "nextScheduleTime": "2099-01-01T03:00:00Z",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "ScheduleLive",
                    "lastTransitionTime": "2026-01-01T02:45:00Z",
                },
                {
                    "type": "Fresh",
                    "status": "False",
                    "reason": "Stale",
                    "lastTransitionTime": "2026-01-01T02:45:00Z",
                },
            ],
        }
    }
    control_plane.kubectl(
        "patch",
        "qcwf",
        "nightly-report",
        "--namespace",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    table = control_plane.kubectl("get", "qcwf", "--namespace", namespace).stdout.splitlines()
    header = re.split(r"\s{2,}", table[0].strip())
    assert header == [
        "NAME",
        "SCHEDULE",
        "TIME ZONE",
        "BACKEND",
        "SUSPENDED",
        "LAST RUN",
        "NEXT RUN",
        "READY",
        "FRESH",
        "AGE",
    ]
    row = re.split(r"\s{2,}", table[1].strip())
    assert row[:5] == ["nightly-report", "*/15 * * * *", "Europe/Berlin", "CronJob", "false"]
    assert row[5].endswith("d")  # last run: an age in days
    assert row[6] == "2099-01-01T03:00:00Z"  # next run: a time (an age would read <invalid>)
    assert row[7] == "True"
    assert row[8] == "False"  # Fresh: spec.freshness's verdict
    # The categories make it show up with the project's and with `all`.
    for category in ("qstash-operator", "all"):
        listed = control_plane.kubectl("get", category, "--namespace", namespace).stdout
        assert re.search(
            r"^(cronworkflow\.qstash-operator\.dev/)?nightly-report\s", listed, re.M
        ), listed


def test_status_daylight_saving_survives_the_schema(
    control_plane: ControlPlane, namespace: str
) -> None:
    # What cron.DaylightSavingDay.as_status() writes must not be pruned by the structural schema.
    schedule = cron.parse("30 2 * * *", "Europe/Berlin")
    day = cron.next_daylight_saving_day(schedule, datetime(2026, 10, 26, tzinfo=UTC))
    assert day is not None
    _create(control_plane, namespace, cronworkflow(schedule="30 2 * * *", timeZone="Europe/Berlin"))
    control_plane.kubectl(
        "patch",
        "qcwf",
        "nightly-report",
        "--namespace",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"daylightSaving": day.as_status()}}),
    )
    path = f"/apis/{GROUP_VERSION}/namespaces/{namespace}/cronworkflows/nightly-report"
    status, body = control_plane.request("GET", path)
    assert status == 200
    assert body["status"]["daylightSaving"] == day.as_status()


def test_the_largest_ledger_survives_the_schema(
    control_plane: ControlPlane, namespace: str
) -> None:
    # 100 entries (slotHistoryLimit's maximum), every field at its longest: what the API server
    # stores is what was written, and its size is the ledger's bound per object.
    worst = slots.Slot(
        datetime(2026, 6, 1, tzinfo=UTC),
        "CaughtUp",
        "X" * 64,
        job="j" * 63,
        backend="CronJob",
        delay_seconds=-9_999_999_999,
        attempts=2_147_483_647,
        manual=True,
        requested_by="u" * 256,
    )
    ledger = slots.ledger_status([worst] * slots.MAX_HISTORY_LIMIT)
    assert len(json.dumps(ledger, separators=(",", ":"))) <= slots.MAX_LEDGER_BYTES
    _create(control_plane, namespace, cronworkflow(slotHistoryLimit=100))
    suspensions = [{"since": "2026-06-01T10:00:00Z", "until": "2026-06-01T11:00:00Z"}] * 5
    control_plane.kubectl(
        "patch",
        "qcwf",
        "nightly-report",
        "--namespace",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"recentSlots": ledger, "suspensions": suspensions}}),
    )
    path = f"/apis/{GROUP_VERSION}/namespaces/{namespace}/cronworkflows/nightly-report"
    status, body = control_plane.request("GET", path)
    assert status == 200
    assert body["status"]["recentSlots"] == ledger
    assert body["status"]["suspensions"] == suspensions
