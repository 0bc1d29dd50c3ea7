"""A table of invalid CronWorkflows against the running operator: each refused or flagged, clearly.

Two ways a mistake is caught, and both must name the field:

- **refused at admission** (schema types, lengths, patterns, enums, CEL rules): ``kubectl apply``
  fails and its message names the field; nothing reaches the operator. The cases here are not the
  ones ``tests/integration/test_crd.py`` already covers; they add types, lengths and spellings;
- **flagged by the operator** (what no schema can know: time zones, cron ranges and impossible
  dates, the Job template as the API server would judge it, what QStash refuses): the object is
  stored, then gets ``SpecValid=False``/``Ready=False`` with a reason from the vocabulary and a
  message naming the field, plus a Warning event; no QStash schedule is made for it.

All cases are applied at once to one operator (QStash mode), then checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from qstash import QStash
from tests.reliability.conftest import Tally

from qstash_devstack.stack import Stack, cronworkflow, wait

pytestmark = pytest.mark.timeout(180)

POD = "spec.jobTemplate.spec.template.spec"


@dataclass(frozen=True)
class Case:
    name: str
    spec: dict[str, Any]
    field: str  # the field the message must name
    reason: str | None = None  # operator-flagged: the condition reason
    says: str = ""  # admission: a fragment of the API server's message

    @property
    def admission(self) -> bool:
        return self.reason is None


def container(**fields: Any) -> dict[str, Any]:
    return {
        "spec": {
            "backoffLimit": fields.pop("backoffLimit", 0),
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox", **fields}],
                }
            },
        }
    }


CASES = [
    # -- refused at admission -----------------------------------------------------------------
    Case("adm-year-field", {"schedule": "0 3 * * * 2027"}, "spec.schedule", says="seconds"),
    Case("adm-long-schedule", {"schedule": "0 " + "1," * 100 + "2 * * *"}, "spec.schedule",
         says="Too long"),
    Case("adm-long-zone", {"timeZone": "Europe/" + "B" * 60}, "spec.timeZone", says="Too long"),
    Case("adm-suspend-text", {"suspend": "yes"}, "spec.suspend", says="boolean"),
    Case("adm-policy-case", {"concurrencyPolicy": "allow"}, "spec.concurrencyPolicy",
         says="supported values"),
    Case("adm-deadline-float", {"startingDeadlineSeconds": 1.5}, "spec.startingDeadlineSeconds",
         says="integer"),
    Case("adm-retries-text", {"qstash": {"retries": "3"}}, "spec.qstash.retries", says="integer"),
    Case("adm-timeout-zero", {"qstash": {"timeout": "0s"}}, "spec.qstash.timeout",
         says="should match"),
    Case("adm-delay-long", {"qstash": {"retryDelay": "1" * 257}}, "spec.qstash.retryDelay",
         says="Too long"),
    Case("adm-restart-lower",
         {"jobTemplate": {"spec": {"template": {"spec": {
             "restartPolicy": "never", "containers": [{"name": "m", "image": "busybox"}]}}}}},
         f"{POD}.restartPolicy", says="supported values"),
    # -- flagged by the operator ----------------------------------------------------------------
    Case("op-zone-mars", {"timeZone": "Mars/Olympus_Mons"}, "spec.timeZone", "UnknownTimeZone"),
    Case("op-zone-atlantis", {"timeZone": "Europe/Atlantis"}, "spec.timeZone", "UnknownTimeZone"),
    Case("op-minute-61", {"schedule": "61 * * * *"}, "spec.schedule", "InvalidSchedule"),
    Case("op-hour-25", {"schedule": "0 25 * * *"}, "spec.schedule", "InvalidSchedule"),
    Case("op-february-30", {"schedule": "0 0 30 2 *"}, "spec.schedule", "InvalidSchedule"),
    Case("op-last-day-l", {"schedule": "0 0 L * *"}, "spec.schedule", "InvalidSchedule"),
    Case("op-weekday-name", {"schedule": "0 0 * * FUN"}, "spec.schedule", "InvalidSchedule"),
    Case("op-container-name", {"jobTemplate": {"spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "Bad_Name", "image": "busybox"}]}}}}},
         "spec.jobTemplate", "InvalidJobTemplate"),
    Case("op-no-image", {"jobTemplate": {"spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "main"}]}}}}},
         "spec.jobTemplate", "InvalidJobTemplate"),
    Case("op-backoff-negative", {"jobTemplate": container(backoffLimit=-1)}, "spec.jobTemplate",
         "InvalidJobTemplate"),
    Case("op-pull-policy", {"jobTemplate": container(imagePullPolicy="Sometimes")},
         "spec.jobTemplate", "InvalidJobTemplate"),
    Case("op-delay-unclosed", {"qstash": {"retryDelay": "pow(2, retried"}},
         "spec.qstash.retryDelay", "QStashRejected"),
    Case("op-delay-unknown", {"qstash": {"retryDelay": "retried * later"}},
         "spec.qstash.retryDelay", "QStashRejected"),
]  # fmt: skip


def test_every_invalid_cronworkflow_is_refused_or_flagged_naming_its_field(
    stack: Stack, tally: Tally
) -> None:
    assert len(CASES) >= 20
    stack.operator()
    refused: dict[str, str] = {}
    for case in CASES:
        manifest = cronworkflow(case.name, case.spec)
        result = stack.plane.kubectl(
            "apply", "-n", stack.namespace, "-f", "-", input=json.dumps(manifest), check=False
        )
        if case.admission:
            assert result.returncode != 0, f"{case.name} was accepted at admission"
            refused[case.name] = result.stderr
        else:
            assert result.returncode == 0, f"{case.name} refused at admission: {result.stderr}"

    for case in CASES:
        if case.admission:
            message = refused[case.name]
            assert case.field in message, (case.name, message)
            assert case.says in message, (case.name, message)
            assert stack.get("cronworkflow", case.name) is None
            tally.invalid_cronworkflows["refused at admission"] += 1
            continue
        condition = stack.wait_condition(case.name, "SpecValid", "False", reason=case.reason)
        assert case.field in condition["message"], (case.name, condition)
        ready = stack.condition(case.name, "Ready") or {}
        assert ready.get("status") == "False", (case.name, ready)
        assert case.field in ready.get("message", ""), (case.name, ready)
        warnings = [
            event
            for event in stack.events(case.name)
            if event["type"] == "Warning" and event["reason"] == case.reason
        ]
        assert warnings, case.name
        assert case.field in warnings[0]["message"], (case.name, warnings[0])
        tally.invalid_cronworkflows[f"flagged by the operator ({case.reason})"] += 1

    # None of the flagged ones has a schedule; a valid neighbour does (the operator is healthy).
    stack.apply(cronworkflow("valid-neighbour"))
    stack.wait_condition("valid-neighbour", "Ready", "True")
    client = QStash(stack.qstash.token, base_url=stack.qstash.url, retry=False)
    wait(lambda: len(client.schedule.list()) >= 1, what="the neighbour's schedule")
    held = {s.schedule_id.rsplit(".", 1)[1] for s in client.schedule.list()}
    assert held == {"valid-neighbour"}, held
