"""The seed's endpoints for people and scripts, in Kubernetes terms (DESIGN.md's table).

=====================================================  ==========  ===============================
route                                                  RBAC verb   effect
=====================================================  ==========  ===============================
``GET /api/cron[?namespace=ns]``                       list        every CronWorkflow, summarised
``POST /api/cron/activate/{namespace}/{name}``         patch       ``spec.suspend: false``
``DELETE /api/cron/deactivate/{namespace}/{name}``     patch       ``spec.suspend: true``
``GET /api/test-cron``                                 list        backend health and drift
``POST /api/test-cron?workflowId=ns/name&action=       trigger     one manual Job, now; an
trigger`` [body ``{"reason": "...",                               optional reason is recorded;
"parameters": {"name": value}}``,                                  typed overrides (422 naming
``Idempotency-Key: <id>``]                                         a bad one); one Job per key
``POST /api/cron/backfill/{namespace}/{name}``         backfill    the Jobs of the past slots in
[body ``{"from", "to", "parallel", "dryRun"}``]                   a range that have none
=====================================================  ==========  ===============================

Callers send ``Authorization: Bearer <Kubernetes token>``, bound to the API's audience
(``kubectl create token <sa> --audience qstash-operator``). :mod:`qstash_webhook.access` checks it
with a TokenReview and authorises the request with a SubjectAccessReview on ``cronworkflows`` in
group ``qstash-operator.dev``, so RBAC decides who may do what: 401 without a valid token, 403
when the review says no, 429 after too many tokens that did not check out. The CronWorkflow stays
the source of truth: these views patch it or go through the run service, never around it. Views
parse, call a service, and shape JSON; errors are mapped in :mod:`qstash_webhook.errors`.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from aiohttp import web

from qstash_operator.adapters.kube import UserInfo
from qstash_operator.domain import idempotency, model
from qstash_operator.domain.builders import rfc3339
from qstash_operator.domain.runs import Outcome
from qstash_operator.services.catalog import BackendHealth, Summary
from qstash_webhook import typedefs
from qstash_webhook.access import Check, denial
from qstash_webhook.bodies import MAX_BODY_BYTES, read_body
from qstash_webhook.errors import ApiError

VERB_LIST: Final = "list"
VERB_PATCH: Final = "patch"
VERB_TRIGGER: Final = "trigger"
"""A custom verb: grant it with ``verbs: ["trigger"]`` on ``cronworkflows`` in a Role."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


# -- parsing -------------------------------------------------------------------------------------


def _namespace(value: str, what: str = "namespace") -> str:
    if not _DNS_LABEL.match(value):
        raise ApiError(400, "InvalidParameter", f"{what} {value!r} is not a namespace name")
    return value


def _name(value: str) -> str:
    if not _DNS_SUBDOMAIN.match(value):
        raise ApiError(400, "InvalidParameter", f"{value!r} is not a CronWorkflow name")
    return value


parse_namespace = _namespace
parse_name = _name


def parse_idempotency_key(request: web.Request) -> str | None:
    """The ``Idempotency-Key`` header (quoted or not), or None without one; 400 if unusable."""
    raw = request.headers.get(idempotency.HEADER)
    if raw is None:
        return None
    key = idempotency.unquote(raw.strip())
    if problem := idempotency.key_problem(key):
        raise ApiError(400, "InvalidParameter", problem)
    return key


def parse_workflow_id(value: str | None) -> tuple[str, str]:
    """``workflowId=<namespace>/<name>`` (the seed's id, made unambiguous in a cluster)."""
    if not value or value.count("/") != 1:
        raise ApiError(
            400, "InvalidParameter", "workflowId must be <namespace>/<name>, e.g. default/backup"
        )
    namespace, name = value.split("/")
    return _namespace(namespace), _name(name)


# -- authentication and authorisation -------------------------------------------------------------


def _bearer(request: web.Request, audience: str) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "Unauthenticated",
            "send Authorization: Bearer <Kubernetes token> "
            f"(e.g. kubectl create token <serviceaccount> --audience {audience})",
            headers={"WWW-Authenticate": 'Bearer realm="qstash-operator"'},
        )
    return token


async def authenticate(request: web.Request) -> UserInfo:
    """Who is asking (TokenReview through :class:`~qstash_webhook.access.Access`), else 401, or
    429 after too many tokens from this client (or everyone) did not check out."""
    audience = request.app[typedefs.settings_key].api_audience
    user = await request.app[typedefs.access_key].authenticate(
        _bearer(request, audience), client=request.remote or "unknown"
    )
    if user is None:
        raise ApiError(
            401,
            "InvalidToken",
            f"the token is not valid for audience {audience!r}: make one with "
            f"kubectl create token <serviceaccount> --audience {audience}",
            headers={"WWW-Authenticate": 'Bearer realm="qstash-operator", error="invalid_token"'},
        )
    return user


async def authorize(
    request: web.Request, *, verb: str, namespace: str | None, name: str | None = None
) -> UserInfo:
    """Who is asking, and may they (SubjectAccessReview)? Else 401 / 403 / 429."""
    user = await authenticate(request)
    check = Check(verb=verb, namespace=namespace, name=name)
    decision = await request.app[typedefs.access_key].decide(user, check)
    if not decision.allowed:
        raise ApiError(403, "Forbidden", denial(user, check, decision))
    return user


# -- JSON shapes ----------------------------------------------------------------------------------


def _time(moment: datetime | None) -> str | None:
    return rfc3339(moment) if moment else None


def summary_json(summary: Summary) -> dict[str, Any]:
    next_run: dict[str, str] | None = None
    if summary.next_run is not None:
        next_run = {
            "utc": rfc3339(summary.next_run),
            "local": summary.next_run.astimezone(ZoneInfo(summary.time_zone)).isoformat(),
        }
    return {
        "namespace": summary.namespace,
        "name": summary.name,
        "uid": summary.uid,
        "schedule": summary.schedule,
        "timeZone": summary.time_zone,
        "state": summary.state,
        "backend": summary.backend,
        "nextRun": next_run,
        "lastRun": _time(summary.last_run),
        "lastSuccessfulRun": _time(summary.last_successful_run),
        "ready": {
            "status": summary.ready.status,
            "reason": summary.ready.reason,
            "message": summary.ready.message,
        },
        "scheduleId": summary.schedule_id,
        "cronJobName": summary.cronjob_name,
        "active": list(summary.active_jobs),
        "problem": summary.problem,
        "fresh": None
        if summary.fresh is None
        else {
            "status": summary.fresh.status,
            "reason": summary.fresh.reason,
            "message": summary.fresh.message,
        },
    }


def health_json(health: BackendHealth, now: datetime) -> dict[str, Any]:
    drift = None
    if health.drift is not None:
        drift = {
            "missingSchedules": list(health.drift.missing_schedules),
            "orphanSchedules": list(health.drift.orphan_schedules),
        }
    return {
        "healthy": health.healthy,
        "time": rfc3339(now),
        "backends": {
            "qstash": {
                "configured": health.qstash.configured,
                "reachable": health.qstash.reachable,
                "problem": health.qstash.problem,
                "schedules": health.qstash.schedules,
            },
            # The CronJob backend is the cluster's own controller: reachable with the API.
            "cronJob": {"available": True},
        },
        "cronWorkflows": {"byBackend": dict(health.by_backend), "byState": dict(health.by_state)},
        "drift": drift,
    }


# -- views ----------------------------------------------------------------------------------------


async def list_cronworkflows(request: web.Request) -> web.Response:
    now = request.app[typedefs.clock_key]()
    raw_namespace = request.query.get("namespace") or None
    namespace = _namespace(raw_namespace) if raw_namespace else None
    await authorize(request, verb=VERB_LIST, namespace=namespace)
    summaries = await request.app[typedefs.catalog_key].list(namespace=namespace, now=now)
    return web.json_response(
        {"time": rfc3339(now), "items": [summary_json(summary) for summary in summaries]}
    )


async def _set_suspended(request: web.Request, *, suspend: bool) -> web.Response:
    now = request.app[typedefs.clock_key]()
    namespace = _namespace(request.match_info["namespace"])
    name = _name(request.match_info["name"])
    await authorize(request, verb=VERB_PATCH, namespace=namespace, name=name)
    summary = await request.app[typedefs.catalog_key].set_suspended(
        namespace=namespace, name=name, suspend=suspend, now=now
    )
    return web.json_response(summary_json(summary))


async def activate(request: web.Request) -> web.Response:
    return await _set_suspended(request, suspend=False)


async def deactivate(request: web.Request) -> web.Response:
    return await _set_suspended(request, suspend=True)


async def backend_status(request: web.Request) -> web.Response:
    now = request.app[typedefs.clock_key]()
    await authorize(request, verb=VERB_LIST, namespace=None)
    health = await request.app[typedefs.catalog_key].health(now=now)
    return web.json_response(health_json(health, now))


MAX_REASON_CHARS: Final = 300
"""A run's reason is a sentence for the audit trail (an Event message holds 1,024 characters)."""


_BODY_FIELDS: Final = {"reason", "parameters"}


def manual_request_in(body: bytes) -> tuple[str | None, dict[str, Any] | None]:
    """The optional JSON body ``{"reason": "...", "parameters": {"name": value}}`` of a manual
    run (read with its deadline). The parameters' types are checked by the run service against
    the CronWorkflow's declarations (422 naming the parameter); here only the shape."""
    if not body:
        return None, None
    try:
        payload = json.loads(body)
    except ValueError:
        raise ApiError(
            400, "InvalidParameter", 'the body must be JSON, e.g. {"reason": "re-run after fix"}'
        ) from None
    return reason_from(payload), parameters_from(payload)


def parameters_from(payload: Any) -> dict[str, Any] | None:
    """``parameters``: an object of name to string, number or boolean (None: absent)."""
    raw = payload.get("parameters") if isinstance(payload, dict) else None
    if raw is None:
        return None
    if not isinstance(raw, dict) or not all(
        isinstance(value, str | int | bool) and not isinstance(value, float)
        for value in raw.values()
    ):
        raise ApiError(
            400,
            "InvalidParameter",
            'parameters must be an object of name to string, number or boolean, e.g. {"size": 10}',
        )
    return dict(raw)


def reason_from(payload: Any) -> str | None:
    """A run's reason: one line of printable text, at most :data:`MAX_REASON_CHARS`."""
    if not isinstance(payload, dict) or set(payload) - _BODY_FIELDS:
        raise ApiError(
            400, "InvalidParameter", 'the body takes the fields "reason" and "parameters"'
        )
    reason = payload.get("reason")
    if reason is None:
        return None
    if not isinstance(reason, str) or not reason.strip():
        raise ApiError(400, "InvalidParameter", "reason must be a non-empty string")
    reason = reason.strip()
    if len(reason) > MAX_REASON_CHARS or not reason.isprintable():
        raise ApiError(
            400,
            "InvalidParameter",
            f"reason must be one line of at most {MAX_REASON_CHARS} printable characters",
        )
    return reason


async def trigger(request: web.Request) -> web.Response:
    if request.query.get("action") != "trigger":
        raise ApiError(400, "InvalidParameter", "action must be 'trigger'")
    namespace, name = parse_workflow_id(request.query.get("workflowId"))
    return await run_now(request, namespace=namespace, name=name)


async def run_now(request: web.Request, *, namespace: str, name: str) -> web.Response:
    """One manual Job through the run service (the trigger endpoint and the console's button).

    A reason, when given, is recorded as a ``ManualRun`` event on the CronWorkflow next to the
    Job it explains (the run service records who asked on the Job and in ``lastManualRun``).
    With ``Idempotency-Key``, the Job's name derives from the caller and the key, so a retry (to
    any replica) is answered 200 with the Job the first request made, and the same key with
    another request (another reason, say) is 422 (:mod:`qstash_operator.domain.idempotency`).
    """
    key = parse_idempotency_key(request)
    user = await authorize(request, verb=VERB_TRIGGER, namespace=namespace, name=name)
    body = await read_body(
        request, deadline=request.app[typedefs.body_deadline_key], limit=MAX_BODY_BYTES
    )
    now = request.app[typedefs.clock_key]()  # once the body is in
    reason, overrides = manual_request_in(body)
    fingerprint = None
    if key is None:
        seed = uuid.uuid4().hex  # one request, one Job: a new id per request
    else:
        seed = idempotency.seed(user.username, key)
        fingerprint = idempotency.fingerprint(
            key=key, workflow=f"{namespace}/{name}", parameters=request.query.items(), body=body
        )
    result = await request.app[typedefs.runs_key].run_manual(
        namespace=namespace,
        name=name,
        requested_by=user.username,
        seed=seed,
        now=now,
        key=key,
        fingerprint=fingerprint,
        overrides=overrides,
        reason=reason,
    )
    answer: dict[str, Any] = {
        "outcome": result.outcome.value,
        "cronWorkflow": f"{namespace}/{name}",
        "job": result.job_name,
        "requestedBy": user.username,
        "message": result.message,
        "runReason": reason,
        "parameters": overrides or {},
    }
    if key is not None:
        answer["idempotencyKey"] = key
    if result.outcome is Outcome.RUN:
        if reason is not None and result.job_name is not None:
            await request.app[typedefs.catalog_key].note_manual_run(
                namespace=namespace,
                name=name,
                job=result.job_name,
                requested_by=user.username,
                reason=reason,
                now=now,
            )
        return web.json_response({**answer, "replayed": False}, status=201)
    if result.outcome is Outcome.DUPLICATE_MESSAGE:
        # This request (its key) already made its Job: the answer names it, nothing new runs.
        return web.json_response({**answer, "replayed": True}, status=200)
    # Not run (concurrencyPolicy Forbid with a Job active): the request conflicts with a run.
    return web.json_response(
        {"error": result.message, "reason": result.outcome.reason, **answer}, status=409
    )


# -- backfill ----------------------------------------------------------------------------------

VERB_BACKFILL: Final = "backfill"
"""A custom verb, separate from ``trigger``: a backfill may make many Jobs at once."""
MAX_PARALLEL: Final = 100


def backfill_request_in(body: bytes) -> tuple[datetime, datetime, int | None, bool]:
    """``{"from": RFC 3339, "to": RFC 3339, "parallel": N, "dryRun": bool}`` (from/to required)."""
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    example = '{"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"}'
    if not isinstance(payload, dict) or set(payload) - {"from", "to", "parallel", "dryRun"}:
        raise ApiError(
            400,
            "InvalidParameter",
            f"the body must be JSON with from, to, parallel, dryRun: {example}",
        )
    start = model.parse_instant(payload.get("from"), "from")
    end = model.parse_instant(payload.get("to"), "to")
    if start is None or end is None:
        raise ApiError(400, "InvalidParameter", f"from and to are required, e.g. {example}")
    parallel = payload.get("parallel")
    if parallel is not None and (
        isinstance(parallel, bool)
        or not isinstance(parallel, int)
        or not 1 <= parallel <= MAX_PARALLEL
    ):
        raise ApiError(400, "InvalidParameter", f"parallel must be an integer 1-{MAX_PARALLEL}")
    dry_run = payload.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise ApiError(400, "InvalidParameter", "dryRun must be true or false")
    return start, end, parallel, dry_run


async def backfill(request: web.Request) -> web.Response:
    """The slots of a past range that have no Job, made as their ticks' Jobs (``backfill``).

    Answers what it found and did: every slot, those that had a Job, those created now, and those
    still pending because ``concurrencyPolicy`` lets only one run at a time (call again once the
    active Job has finished; ``qstash-operator backfill`` does). 201 when it created any.
    """
    namespace = _namespace(request.match_info["namespace"])
    name = _name(request.match_info["name"])
    user = await authorize(request, verb=VERB_BACKFILL, namespace=namespace, name=name)
    body = await read_body(
        request, deadline=request.app[typedefs.body_deadline_key], limit=MAX_BODY_BYTES
    )
    now = request.app[typedefs.clock_key]()
    start, end, parallel, dry_run = backfill_request_in(body)
    result = await request.app[typedefs.runs_key].run_backfill(
        namespace=namespace,
        name=name,
        start=start,
        end=end,
        parallel=parallel,
        dry_run=dry_run,
        requested_by=user.username,
        now=now,
    )
    plan = result.plan
    answer = {
        "cronWorkflow": f"{namespace}/{name}",
        "dryRun": dry_run,
        "slots": [rfc3339(slot) for slot in plan.slots],
        "existing": [rfc3339(slot) for slot in plan.existing],
        "missing": [rfc3339(slot) for slot in plan.missing],
        "created": list(result.created),
        "skipped": list(result.skipped),
        "pending": [] if dry_run else [rfc3339(slot) for slot in plan.pending],
        "requestedBy": user.username,
    }
    return web.json_response(answer, status=201 if result.created else 200)
