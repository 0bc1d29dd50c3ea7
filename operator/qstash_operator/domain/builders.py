"""Pure builders: the Job of a tick or a manual run, the fallback CronJob, the QStash schedule.

Both backends produce the same Jobs: the webhook builds them with :func:`build_job`, and the
fallback CronJob carries a ``jobTemplate`` built by the same helpers, so names, labels and
annotations read the same whichever backend ran the tick.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from qstash_operator.domain import naming, parameters, timetable, vocabulary
from qstash_operator.domain.model import Backend, CronWorkflow, JsonDict, json_copy

WEBHOOK_PATH: Final = "/api/qstash/webhook"
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def rfc3339(moment: datetime) -> str:
    """UTC, second precision, ``Z`` suffix: the form Kubernetes writes timestamps in."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def label_value(text: str) -> str:
    """``text`` if it is a legal label value, else a stable hash of it that is."""
    if len(text) <= 63 and _LABEL_VALUE.match(text):
        return text
    return "h-" + hashlib.sha256(text.encode()).hexdigest()[:40]


def owner_reference(cw: CronWorkflow) -> JsonDict:
    return {
        "apiVersion": vocabulary.API_VERSION,
        "kind": vocabulary.KIND,
        "name": cw.name,
        "uid": cw.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def selector_labels(cw: CronWorkflow) -> dict[str, str]:
    """Labels that find every Job of this CronWorkflow (and only of this incarnation of it)."""
    return {
        vocabulary.LABEL_CRONWORKFLOW: cw.name,
        vocabulary.LABEL_CRONWORKFLOW_UID: cw.uid,
    }


def label_selector(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _template_metadata(cw: CronWorkflow) -> tuple[dict[str, str], dict[str, str]]:
    meta = cw.spec.job_template.get("metadata") or {}
    return dict(meta.get("labels") or {}), dict(meta.get("annotations") or {})


def _job_labels(cw: CronWorkflow, trigger: str) -> dict[str, str]:
    labels, _ = _template_metadata(cw)
    labels.update(selector_labels(cw))
    labels[vocabulary.LABEL_TRIGGER] = trigger
    labels[vocabulary.LABEL_MANAGED_BY] = vocabulary.MANAGED_BY
    return labels


def _with_parameters(pod: JsonDict, env: list[dict[str, str]]) -> None:
    """Every container (and init container) gets ``env``, replacing variables of those names."""
    names = {entry["name"] for entry in env}
    for kind in ("initContainers", "containers"):
        for container in pod.get(kind) or []:
            kept = [item for item in container.get("env") or [] if item.get("name") not in names]
            container["env"] = kept + [dict(entry) for entry in env]


def _job_spec(
    cw: CronWorkflow, labels: dict[str, str], values: Mapping[str, str] | None = None
) -> JsonDict:
    spec: JsonDict = json_copy(cw.spec.job_template["spec"])
    template = spec.setdefault("template", {})
    if cw.spec.parameters:
        chosen = dict(values or parameters.values(cw.spec.parameters))
        _with_parameters(
            template.setdefault("spec", {}), parameters.env(cw.spec.parameters, chosen)
        )
    pod_meta = template.setdefault("metadata", {})
    pod_labels = pod_meta.setdefault("labels", {})
    # Pods carry the selector labels too, so `kubectl logs -l qstash-operator.dev/cronworkflow=x`
    # works on both backends.
    pod_labels.update({key: labels[key] for key in selector_labels(cw)})
    template.setdefault("spec", {}).setdefault("restartPolicy", "Never")
    return spec


def build_job(
    cw: CronWorkflow,
    *,
    name: str,
    trigger: str,
    backend: Backend | None,
    scheduled_time: datetime | None = None,
    message_id: str | None = None,
    requested_by: str | None = None,
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
    values: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
    reason: str | None = None,
    backfilled_by: str | None = None,
    catch_up: bool = False,
    attempt: int | None = None,
) -> JsonDict:
    """The Job of one run: a tick (``scheduled_time``) or a manual run (``requested_by``, and for
    one asked over HTTP with an ``Idempotency-Key``, the key and the request's fingerprint).

    ``values`` are the parameters' checked values (default: the defaults), given to every
    container as ``PARAM_<NAME>``; ``overrides`` (what a manual run changed) and its ``reason``
    are recorded as annotations."""
    labels = _job_labels(cw, trigger)
    _, annotations = _template_metadata(cw)
    if backend is not None:
        annotations[vocabulary.ANNOTATION_BACKEND] = backend.value
    if scheduled_time is not None:
        annotations[vocabulary.ANNOTATION_SCHEDULED_TIME] = rfc3339(scheduled_time)
        # The CronJob controller's annotation, in the CronWorkflow's zone as it writes it.
        local = scheduled_time.astimezone(cw.spec.timetable.zone)
        annotations[vocabulary.ANNOTATION_K8S_SCHEDULED_TIME] = local.isoformat()
    if message_id is not None:
        annotations[vocabulary.ANNOTATION_MESSAGE_ID] = message_id
        labels[vocabulary.LABEL_MESSAGE_ID] = label_value(message_id)
    if requested_by is not None:
        annotations[vocabulary.ANNOTATION_TRIGGERED_BY] = requested_by
    if idempotency_key is not None:
        annotations[vocabulary.ANNOTATION_IDEMPOTENCY_KEY] = idempotency_key
    if fingerprint is not None:
        annotations[vocabulary.ANNOTATION_REQUEST_FINGERPRINT] = fingerprint
    if overrides:
        annotations[vocabulary.ANNOTATION_RUN_PARAMETERS] = json.dumps(
            dict(overrides), sort_keys=True, separators=(",", ":")
        )
    if reason:
        annotations[vocabulary.ANNOTATION_RUN_REASON] = reason
    if backfilled_by is not None:
        annotations[vocabulary.ANNOTATION_BACKFILLED_BY] = backfilled_by
    if catch_up:  # the ledger reads its slot CaughtUp
        annotations[vocabulary.ANNOTATION_CATCH_UP] = "true"
    if attempt is not None:  # the QStash delivery attempt that made it (1: the first)
        annotations[vocabulary.ANNOTATION_ATTEMPT] = str(attempt)
    if scheduled_time is not None and cw.spec.timetable.multiple and values is None:
        # A scheduled run of spec.schedules: the winning entry's parameters, whichever entry's
        # delivery (or marker) made the Job (timetable module docstring).
        winner = cw.spec.timetable.entry_for(scheduled_time)
        if winner is not None and winner.name is not None:
            annotations[vocabulary.ANNOTATION_SCHEDULE_ENTRY] = winner.name
        values = cw.spec.timetable.values_for(cw.spec.parameters, scheduled_time)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": cw.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(cw)],
        },
        "spec": _job_spec(cw, labels, values),
    }


def dry_run_key(cw: CronWorkflow, job: JsonDict) -> str | None:
    """What makes two dry runs of Jobs the same question for the API server: the namespace and
    the Job with this CronWorkflow's identity taken out (its name, and every string that is
    exactly its name or uid, as in the owner reference and the selector labels). Two
    CronWorkflows with the same template in one namespace get the same key, so a burst of
    ``kubectl apply`` need not dry-run one Job each.

    None (always ask) when the answer may depend on the name itself: a name that is no legal
    label value is rejected in the ``cronworkflow`` label, whatever the template (``model.parse``
    admits none today; this does not lean on that). A legal one gives a legal Job name
    (:func:`naming.manual_job_name` cuts and suffixes it)."""
    if label_value(cw.name) != cw.name:
        return None
    meta = dict(job.get("metadata") or {})
    meta.pop("name", None)
    text = json.dumps({**job, "metadata": meta}, sort_keys=True, separators=(",", ":"))
    for value, placeholder in ((cw.uid, '"<uid>"'), (cw.name, '"<name>"')):
        text = text.replace(json.dumps(value), placeholder)
    return hashlib.sha256(f"{cw.namespace}\0{text}".encode()).hexdigest()


def build_cronjob(cw: CronWorkflow) -> JsonDict:
    """The development-mode CronJob, owned by the CronWorkflow; its Jobs match webhook-made ones."""
    spec = cw.spec
    labels = _job_labels(cw, vocabulary.TRIGGER_SCHEDULE)
    _, annotations = _template_metadata(cw)
    annotations[vocabulary.ANNOTATION_BACKEND] = Backend.CRONJOB.value
    cronjob_spec: JsonDict = {
        "schedule": spec.timetable.first.expression,
        "timeZone": spec.timetable.time_zone,
        "suspend": spec.suspend,
        "concurrencyPolicy": spec.concurrency_policy.value,
        "successfulJobsHistoryLimit": spec.successful_jobs_history_limit,
        "failedJobsHistoryLimit": spec.failed_jobs_history_limit,
        "jobTemplate": {
            "metadata": {"labels": labels, "annotations": annotations},
            "spec": _job_spec(cw, labels),
        },
    }
    if spec.starting_deadline_seconds is not None:
        cronjob_spec["startingDeadlineSeconds"] = spec.starting_deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": naming.cronjob_name(cw.name),
            "namespace": cw.namespace,
            "labels": {
                **selector_labels(cw),
                vocabulary.LABEL_MANAGED_BY: vocabulary.MANAGED_BY,
            },
            "ownerReferences": [owner_reference(cw)],
        },
        "spec": cronjob_spec,
    }


def marker_cronjob_labels(name: str) -> dict[str, str]:
    """The labels every marker CronJob (and marker) of the CronWorkflow ``name`` carries: what
    finds them all, whichever entry made them and whatever status says."""
    return {
        vocabulary.LABEL_MANAGED_BY: vocabulary.MANAGED_BY,
        vocabulary.LABEL_TICK_MARKER: "true",
        vocabulary.LABEL_MARKER_OF: name,
    }


def marker_labels(cw: CronWorkflow, entry: str) -> dict[str, str]:
    """Labels of an entry's CronJob and of the marker Jobs it makes. Not the selector labels:
    a marker is no Job of the CronWorkflow (not in its history, its ledger or its concurrency)."""
    return {**marker_cronjob_labels(cw.name), vocabulary.LABEL_SCHEDULE_ENTRY: entry}


def build_marker_cronjob(cw: CronWorkflow, entry: timetable.Entry) -> JsonDict:
    """The CronJob of one ``spec.schedules`` entry on the CronJob backend.

    Native CronJobs cannot share a Job name, so an entry's CronJob does not make the run's Job:
    at each tick it makes a *marker*, a suspended Job (no pod ever starts) labelled as one, whose
    ``batch.kubernetes.io/cronjob-scheduled-timestamp`` says the tick. The operator turns each
    marker into the tick's Job through the delivery's run path (``services.runs``), then deletes
    it. The marker's pod template is the CronWorkflow's own (already accepted by the dry run), so
    admission policies that judge Jobs see nothing new; ``concurrencyPolicy`` is the run path's
    to apply, so the CronJob always allows."""
    assert entry.name is not None
    spec = cw.spec
    labels = marker_labels(cw, entry.name)
    marker_spec: JsonDict = json_copy(cw.spec.job_template["spec"])
    marker_spec["suspend"] = True
    marker_spec.pop("ttlSecondsAfterFinished", None)
    template = marker_spec.setdefault("template", {})
    template.setdefault("metadata", {}).setdefault("labels", {})[vocabulary.LABEL_TICK_MARKER] = (
        "true"
    )
    template.setdefault("spec", {}).setdefault("restartPolicy", "Never")
    cronjob_spec: JsonDict = {
        "schedule": entry.schedule.expression,
        "timeZone": spec.timetable.time_zone,
        "suspend": spec.suspend,
        "concurrencyPolicy": "Allow",
        "successfulJobsHistoryLimit": 1,
        "failedJobsHistoryLimit": 1,
        "jobTemplate": {
            "metadata": {
                "labels": labels,
                "annotations": {vocabulary.ANNOTATION_MARKER_UID: cw.uid},
            },
            "spec": marker_spec,
        },
    }
    if spec.starting_deadline_seconds is not None:
        cronjob_spec["startingDeadlineSeconds"] = spec.starting_deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": naming.entry_cronjob_name(cw.name, entry.name),
            "namespace": cw.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(cw)],
        },
        "spec": cronjob_spec,
    }


@dataclasses.dataclass(frozen=True)
class DesiredSchedule:
    """Everything one upsert sends to QStash, plus the pause state set by separate calls."""

    schedule_id: str
    destination: str
    cron: str
    body: str  # compact JSON naming the CronWorkflow; never secrets
    retries: int | None
    retry_delay: str | None
    timeout: str | None
    paused: bool

    def fingerprint(self) -> str:
        """A hash of what was applied; the operator calls QStash only when it changes."""
        fields: dict[str, Any] = dataclasses.asdict(self)
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def delivery_body(cw: CronWorkflow, entry: str | None = None) -> str:
    """The schedule's body: which CronWorkflow a delivery is for, and for an entry of
    ``spec.schedules`` which entry (absent: the single ``spec.schedule``). Compact, key-sorted
    JSON."""
    fields = {"namespace": cw.namespace, "name": cw.name, "uid": cw.uid}
    if entry is not None:
        fields["entry"] = entry
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def webhook_destination(public_url: str) -> str:
    return public_url.rstrip("/") + WEBHOOK_PATH


def build_schedules(
    cw: CronWorkflow, *, cluster: str, public_url: str
) -> tuple[DesiredSchedule, ...]:
    """One QStash schedule per timetable entry, in list order: ``<cluster>.<ns>.<name>`` for a
    single ``spec.schedule``, ``<cluster>.<ns>.<name>_<entry>`` for each ``spec.schedules``
    entry (its body names the entry)."""
    return tuple(
        _desired(cw, entry, cluster=cluster, public_url=public_url)
        for entry in cw.spec.timetable.entries
    )


def schedules_fingerprint(desired: tuple[DesiredSchedule, ...]) -> str:
    """``status.appliedScheduleHash`` of a set of schedules: one schedule's own fingerprint (so
    a single ``spec.schedule`` keeps the hash it was applied with), else a hash over each."""
    if len(desired) == 1:
        return desired[0].fingerprint()
    joined = ",".join(item.fingerprint() for item in desired)
    return "sha256:" + hashlib.sha256(joined.encode()).hexdigest()[:32]


def build_schedule(cw: CronWorkflow, *, cluster: str, public_url: str) -> DesiredSchedule:
    """The QStash schedule of a single ``spec.schedule`` (the first entry's for several)."""
    return _desired(cw, cw.spec.timetable.entries[0], cluster=cluster, public_url=public_url)


def _desired(
    cw: CronWorkflow, entry: timetable.Entry, *, cluster: str, public_url: str
) -> DesiredSchedule:
    return DesiredSchedule(
        schedule_id=naming.schedule_id(cluster, cw.namespace, cw.name, entry.name),
        destination=webhook_destination(public_url),
        cron=entry.schedule.qstash_cron(),
        body=delivery_body(cw, entry.name),
        retries=cw.spec.qstash.retries,
        retry_delay=cw.spec.qstash.retry_delay,
        timeout=cw.spec.qstash.timeout,
        paused=cw.spec.suspend,
    )
