"""The CronWorkflow, parsed from its raw body into typed, validated values.

The CRD schema (crds/) rejects what it can at admission; :func:`parse` re-checks everything the
code relies on, because objects may predate a schema change and because cron maths and time zones
cannot be checked by CEL. Every refusal is an :class:`InvalidSpecError` naming the field.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from qstash_operator.domain import cron, hashspread, naming, parameters, slots, timetable
from qstash_operator.domain.errors import InvalidSpecError
from qstash_operator.domain.vocabulary import REASON_INVALID_JOB_TEMPLATE

JsonDict = dict[str, Any]


class ConcurrencyPolicy(enum.Enum):
    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class BackendChoice(enum.Enum):
    """``spec.backend``: what the user asked for."""

    AUTO = "Auto"
    QSTASH = "QStash"
    CRONJOB = "CronJob"


class Backend(enum.Enum):
    """What actually runs the schedule (``status.backend``)."""

    QSTASH = "QStash"
    CRONJOB = "CronJob"


DEFAULT_SUCCESSFUL_HISTORY: Final = 3
DEFAULT_FAILED_HISTORY: Final = 1
_DURATION = re.compile(r"^[1-9][0-9]*[smh]$")
_RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclasses.dataclass(frozen=True)
class QStashOptions:
    """``spec.qstash``: delivery options passed to the QStash schedule (None: QStash's default)."""

    retries: int | None = None
    retry_delay: str | None = None  # QStash math expression in ms over `retried`
    timeout: str | None = None  # "<n>s|m|h", per delivery attempt


@dataclasses.dataclass(frozen=True)
class CronWorkflowSpec:
    timetable: timetable.Timetable  # spec.schedule, or the entries of spec.schedules
    suspend: bool
    concurrency_policy: ConcurrencyPolicy
    starting_deadline_seconds: int | None
    successful_jobs_history_limit: int
    failed_jobs_history_limit: int
    backend: BackendChoice
    qstash: QStashOptions
    job_template: JsonDict  # a batch/v1 JobTemplateSpec, deep-copied
    active_from: datetime | None = None  # spec.activeFrom: no tick before it runs
    active_until: datetime | None = None  # spec.activeUntil: no tick at or after it runs
    max_runs: int | None = None  # spec.maxRuns: scheduled runs allowed in all
    parameters: tuple[parameters.Parameter, ...] = ()  # spec.parameters, declaration order
    slot_options: slots.SlotOptions = dataclasses.field(default_factory=slots.SlotOptions)

    @property
    def time_zone(self) -> str:
        return self.timetable.time_zone


@dataclasses.dataclass(frozen=True)
class CronWorkflow:
    """Identity plus the validated spec; ``annotations`` are kept for run-now requests."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: CronWorkflowSpec
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def json_copy(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars): what ``copy.deepcopy`` gives for it,
    without its memo, about three times faster (each delivery copies its Job template twice)."""
    if isinstance(value, Mapping):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value  # str, int, float, bool, None: immutable


def _get(mapping: Mapping[str, Any], key: str, default: Any) -> Any:
    value = mapping.get(key, default)
    return default if value is None else value


def _int(value: Any, field: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSpecError(
            field, f"must be an integer, got {value!r}", f"Set an integer >= {minimum}."
        )
    if value < minimum:
        raise InvalidSpecError(
            field, f"must be >= {minimum}, got {value}", f"Set an integer >= {minimum}."
        )
    return value


def _enum(enum_type: type[enum.Enum], value: Any, field: str) -> Any:
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(str(member.value) for member in enum_type)
        raise InvalidSpecError(
            field, f"unknown value {value!r}", f"Use one of: {allowed}."
        ) from None


def parse_qstash_options(raw: Mapping[str, Any]) -> QStashOptions:
    retries = raw.get("retries")
    if retries is not None:
        retries = _int(retries, "spec.qstash.retries", minimum=0)
    retry_delay = raw.get("retryDelay")
    if retry_delay is not None and (not isinstance(retry_delay, str) or not retry_delay.strip()):
        raise InvalidSpecError(
            "spec.qstash.retryDelay",
            "must be a non-empty QStash expression",
            "Write milliseconds as an expression over `retried`, e.g. 'pow(2, retried) * 1000'.",
        )
    timeout = raw.get("timeout")
    if timeout is not None and (not isinstance(timeout, str) or not _DURATION.match(timeout)):
        raise InvalidSpecError(
            "spec.qstash.timeout",
            f"{timeout!r} is not a duration",
            "Write a number with a unit s, m or h, e.g. '30s'.",
        )
    return QStashOptions(retries=retries, retry_delay=retry_delay, timeout=timeout)


def parse_instant(value: Any, field: str) -> datetime | None:
    """An RFC 3339 time with its offset (``2027-01-01T00:00:00Z``), or None when unset."""
    if value is None:
        return None
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise InvalidSpecError(
            field,
            f"{value!r} is not an RFC 3339 time with an offset",
            'Write e.g. "2027-01-01T00:00:00Z" or "2027-01-01T09:00:00+01:00".',
        )
    try:
        return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidSpecError(
            field, f"{value!r} is not a date and time that exists", "Check the day and month."
        ) from None


def parse_limits(spec: Mapping[str, Any]) -> tuple[datetime | None, datetime | None, int | None]:
    """``spec.activeFrom``, ``spec.activeUntil`` and ``spec.maxRuns``, checked together."""
    active_from = parse_instant(spec.get("activeFrom"), "spec.activeFrom")
    active_until = parse_instant(spec.get("activeUntil"), "spec.activeUntil")
    if active_from is not None and active_until is not None and active_until <= active_from:
        raise InvalidSpecError(
            "spec.activeUntil",
            f"{spec.get('activeUntil')} is not after spec.activeFrom {spec.get('activeFrom')}",
            "Set activeUntil later than activeFrom, or remove one of them.",
        )
    max_runs = spec.get("maxRuns")
    if max_runs is not None:
        max_runs = _int(max_runs, "spec.maxRuns", minimum=1)
    return active_from, active_until, max_runs


def parse_job_template(raw: Any) -> JsonDict:
    field = "spec.jobTemplate"
    if not isinstance(raw, Mapping) or not isinstance(raw.get("spec"), Mapping):
        raise InvalidSpecError(
            field,
            "is missing or has no spec",
            "Give a batch/v1 JobTemplateSpec with spec.template.",
            reason=REASON_INVALID_JOB_TEMPLATE,
        )
    pod = raw["spec"].get("template", {}).get("spec", {})
    if not isinstance(pod, Mapping) or not pod.get("containers"):
        raise InvalidSpecError(
            "spec.jobTemplate.spec.template.spec.containers",
            "no containers to run",
            "List at least one container with an image.",
            reason=REASON_INVALID_JOB_TEMPLATE,
        )
    restart = pod.get("restartPolicy", "Never")
    if restart not in ("Never", "OnFailure"):
        raise InvalidSpecError(
            "spec.jobTemplate.spec.template.spec.restartPolicy",
            f"{restart!r} is not allowed for Jobs",
            "Use Never or OnFailure.",
            reason=REASON_INVALID_JOB_TEMPLATE,
        )
    copied: JsonDict = json_copy(dict(raw))
    return copied


def parse_spec(spec: Mapping[str, Any], *, key: str = "") -> CronWorkflowSpec:
    """Validate a raw ``spec``; defaults as in the CRD for fields the API server did not default.

    ``key`` (``<namespace>/<name>``) resolves hash-spread times (``H``, :mod:`hashspread`): the
    returned ``schedule.expression`` is what the backends run, ``schedule.original`` what the
    user wrote.
    """
    time_zone = _get(spec, "timeZone", "UTC")
    if not isinstance(time_zone, str):
        raise InvalidSpecError("spec.timeZone", "must be a string", "Use an IANA name such as UTC.")
    declared = parameters.parse(spec.get("parameters"))
    table = parse_timetable(spec, time_zone, key, declared)
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None:
        deadline = _int(deadline, "spec.startingDeadlineSeconds", minimum=0)
    qstash_raw = _get(spec, "qstash", {})
    if not isinstance(qstash_raw, Mapping):
        raise InvalidSpecError(
            "spec.qstash", "must be an object", "Give retries, retryDelay or timeout."
        )
    suspend = _get(spec, "suspend", False)
    if not isinstance(suspend, bool):
        raise InvalidSpecError("spec.suspend", "must be true or false", "Set true or false.")
    active_from, active_until, max_runs = parse_limits(spec)
    return CronWorkflowSpec(
        timetable=table,
        suspend=suspend,
        concurrency_policy=_enum(
            ConcurrencyPolicy, _get(spec, "concurrencyPolicy", "Allow"), "spec.concurrencyPolicy"
        ),
        starting_deadline_seconds=deadline,
        successful_jobs_history_limit=_int(
            _get(spec, "successfulJobsHistoryLimit", DEFAULT_SUCCESSFUL_HISTORY),
            "spec.successfulJobsHistoryLimit",
            minimum=0,
        ),
        failed_jobs_history_limit=_int(
            _get(spec, "failedJobsHistoryLimit", DEFAULT_FAILED_HISTORY),
            "spec.failedJobsHistoryLimit",
            minimum=0,
        ),
        backend=_enum(BackendChoice, _get(spec, "backend", "Auto"), "spec.backend"),
        qstash=parse_qstash_options(qstash_raw),
        job_template=parse_job_template(spec.get("jobTemplate")),
        active_from=active_from,
        active_until=active_until,
        max_runs=max_runs,
        parameters=declared,
        slot_options=slots.parse_options(spec, starting_deadline_seconds=deadline),
    )


def _schedule(text: str, time_zone: str, key: str, field: str = "spec.schedule") -> cron.Schedule:
    resolved = hashspread.resolve(text, key, field=field)
    if resolved == text:
        return cron.parse(text, time_zone, field=field)
    return dataclasses.replace(cron.parse(resolved, time_zone, field=field), original=text)


def entry_key(key: str, entry: str) -> str:
    """What hash-spread ``H`` of a ``spec.schedules`` entry derives from: ``<ns>/<name>/<entry>``
    (the single ``spec.schedule`` keeps ``<ns>/<name>``, so existing objects do not move)."""
    return f"{key}/{entry}"


def parse_timetable(
    spec: Mapping[str, Any],
    time_zone: str,
    key: str,
    declared: tuple[parameters.Parameter, ...] = (),
) -> timetable.Timetable:
    """``spec.schedule`` or ``spec.schedules`` (exactly one of them) as a :class:`Timetable`.

    Each entry of ``spec.schedules`` has a DNS-label ``name`` (unique), a ``cron`` (read as
    ``spec.schedule`` is, hash-spread from :func:`entry_key`) and ``parameters``: values for
    the declared ``spec.parameters``, checked as a manual run's overrides are.
    """
    single = spec.get("schedule")
    several = spec.get("schedules")
    if single is not None and several is not None:
        raise InvalidSpecError(
            "spec.schedules",
            "is set together with spec.schedule",
            "Keep one of them: spec.schedule for one cron, spec.schedules for several.",
        )
    if several is None:
        if not isinstance(single, str):
            raise InvalidSpecError(
                "spec.schedule",
                "is required",
                'Write five cron fields, e.g. "0 3 * * *" (or list several in spec.schedules).',
            )
        return timetable.Timetable.single(_schedule(single, time_zone, key))
    if not isinstance(several, list) or not several:
        raise InvalidSpecError(
            "spec.schedules",
            "must be a non-empty list",
            'List entries such as {name: nightly, cron: "0 3 * * *"}.',
        )
    if len(several) > timetable.MAX_ENTRIES:
        raise InvalidSpecError(
            "spec.schedules",
            f"has {len(several)} entries",
            f"Use at most {timetable.MAX_ENTRIES} (or several CronWorkflows).",
        )
    entries: list[timetable.Entry] = []
    for index, raw in enumerate(several):
        where = f"spec.schedules[{index}]"
        if not isinstance(raw, Mapping):
            raise InvalidSpecError(where, "must be an object", "Give name, cron and parameters.")
        name = raw.get("name")
        if (
            not isinstance(name, str)
            or len(name) > timetable.MAX_ENTRY_NAME
            or not _DNS_LABEL.match(name)
        ):
            raise InvalidSpecError(
                f"{where}.name",
                f"{name!r} is not a DNS label of at most {timetable.MAX_ENTRY_NAME} characters",
                "Use lowercase a-z, 0-9 and '-', starting and ending with a letter or digit.",
            )
        if any(entry.name == name for entry in entries):
            raise InvalidSpecError(
                f"{where}.name", f"{name!r} names two entries", "Give each entry its own name."
            )
        text = raw.get("cron")
        if not isinstance(text, str):
            raise InvalidSpecError(
                f"{where}.cron", "is required", 'Write five cron fields, e.g. "0 3 * * *".'
            )
        schedule = _schedule(text, time_zone, entry_key(key, name), field=f"{where}.cron")
        given = raw.get("parameters") or {}
        if not isinstance(given, Mapping):
            raise InvalidSpecError(
                f"{where}.parameters",
                "must be an object of parameter values",
                'Write e.g. {"mode": "full"}.',
            )
        try:
            chosen = parameters.values(declared, given)
        except InvalidSpecError as exc:
            raise InvalidSpecError(
                f"{where}.{exc.field}", exc.problem, exc.fix, reason=exc.reason
            ) from None
        entries.append(timetable.Entry(name, schedule, {n: chosen[n] for n in given}))
    return timetable.Timetable(tuple(entries))


def validate_name(name: str) -> None:
    if len(name) > naming.MAX_CRONWORKFLOW_NAME:
        raise InvalidSpecError(
            "metadata.name",
            f"is {len(name)} characters long",
            f"Use at most {naming.MAX_CRONWORKFLOW_NAME} so Job names fit in 63.",
        )
    if not _DNS_SUBDOMAIN.match(name):
        raise InvalidSpecError(
            "metadata.name", f"{name!r} is not a DNS name", "Use lowercase a-z, 0-9, '-' and '.'."
        )


def parse(body: Mapping[str, Any]) -> CronWorkflow:
    """A whole CronWorkflow object (as kopf or the API returns it) into a :class:`CronWorkflow`."""
    meta = body.get("metadata") or {}
    name = str(meta.get("name", ""))
    namespace = str(meta.get("namespace", ""))
    if not _DNS_LABEL.match(namespace):
        raise InvalidSpecError(
            "metadata.namespace", f"{namespace!r} is not a namespace", "Create it in a namespace."
        )
    validate_name(name)
    return CronWorkflow(
        namespace=namespace,
        name=name,
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 0),
        spec=parse_spec(body.get("spec") or {}, key=f"{namespace}/{name}"),
        annotations=dict(meta.get("annotations") or {}),
    )
