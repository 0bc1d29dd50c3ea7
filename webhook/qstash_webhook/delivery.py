"""``POST /api/qstash/webhook``: verify QStash's signature, then run the tick as one Job.

The order is the contract (DESIGN.md, "The delivery contract"):

1. read the raw body, capped in size (the app's ``client_max_size``: 413 beyond) and in time
   (:mod:`qstash_webhook.bodies`: 408 when it trickles in), and only then "now", once: a request
   held open cannot get its token checked against an instant from before it expired;
2. verify ``Upstash-Signature`` over those exact bytes against the configured public URL, before
   anything looks inside the body (401 with the failure category otherwise);
3. parse the body: a verified body that is not ``{"namespace","name","uid"}`` was signed by QStash
   for something we can never run, so it is answered 489 non-retryable (retrying cannot help);
   ``Upstash-Retried`` says whether this is a first attempt (judged by its arrival; only those
   may be early for a tick) or a retry (judged by its message's ``createdAt``, which the run
   service asks QStash for; a retry must carry ``Upstash-Message-Id``);
4. hand over to :class:`~qstash_operator.services.runs.RunService` (the one path that makes Jobs)
   and map its errors (:mod:`qstash_webhook.errors`).

Every answer is counted (``qstash_webhook_deliveries_total{result}``) and logged as one structured
line with the message id, the CronWorkflow, the outcome, the tick and the Job. The message id and
``Upstash-Retried`` headers are outside the signature: until it verifies, they are logged only
truncated and escaped (:func:`qstash_webhook.logs.unverified`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from typing import Any, Final

from aiohttp import web

from qstash_operator.domain import signature
from qstash_operator.domain.builders import rfc3339
from qstash_operator.domain.errors import (
    PermanentDeliveryError,
    QStashOperatorError,
    SignatureError,
)
from qstash_operator.services.runs import RunResult
from qstash_webhook import errors, logs, typedefs
from qstash_webhook.bodies import MAX_BODY_BYTES, read_body

logger = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "Upstash-Signature"
MESSAGE_ID_HEADER: Final = "Upstash-Message-Id"
RETRIED_HEADER: Final = "Upstash-Retried"
MAX_MESSAGE_ID: Final = 256
"""QStash ids are ``msg_`` plus a few dozen characters; anything far longer is not from QStash
(the header is outside the signature), and it ends up in a Job annotation, so it is refused."""
MAX_RETRIED_DIGITS: Final = 6
"""``Upstash-Retried`` counts attempts already made (QStash's plans allow a few dozen retries)."""
MAX_NAMESPACE: Final = 63  # a DNS label
MAX_NAME: Final = 253  # a DNS subdomain
MAX_UID: Final = 128  # uids are 36-character UUIDs; leave room, refuse nonsense
_LABEL: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_LABEL: Final = re.compile(_LABEL)
_DNS_SUBDOMAIN: Final = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_UID: Final = re.compile(r"[A-Za-z0-9-]+")


@dataclasses.dataclass(frozen=True)
class Target:
    """Which CronWorkflow a delivery is for: the schedule's body, as the operator wrote it."""

    namespace: str
    name: str
    uid: str
    entry: str | None = None
    """The ``spec.schedules`` entry whose QStash schedule delivered (absent: ``spec.schedule``)."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _malformed(problem: str) -> PermanentDeliveryError:
    return PermanentDeliveryError("MalformedBody", f"the delivery body {problem}")


def parse_target(body: bytes) -> Target:
    """The body ``{"namespace","name","uid"}`` plus ``"entry"`` for an entry of
    ``spec.schedules`` (``builders.delivery_body``); extra keys ignored.

    Raises :class:`PermanentDeliveryError`: the body was verified, so QStash will send exactly
    these bytes on every retry, and they will never name a CronWorkflow.
    """
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _malformed("is not JSON") from None
    if not isinstance(data, dict):
        raise _malformed("is not a JSON object")
    values: dict[str, str] = {}
    for key, limit, shape in (
        ("namespace", MAX_NAMESPACE, _DNS_LABEL),
        ("name", MAX_NAME, _DNS_SUBDOMAIN),
        ("uid", MAX_UID, _UID),
    ):
        value = data.get(key)
        if not isinstance(value, str) or not value or len(value) > limit:
            raise _malformed(f"has no usable {key!r} (a string of 1-{limit} characters)")
        if not shape.fullmatch(value):
            # Checked before any API call: ".." or "a/b" would otherwise become another path
            # on the API server (which answers 500 for "..", and QStash would retry for days).
            raise _malformed(f"has a {key!r} that no Kubernetes object can have")
        values[key] = value
    entry = data.get("entry")
    if entry is not None and (
        not isinstance(entry, str) or len(entry) > MAX_NAMESPACE or not _DNS_LABEL.fullmatch(entry)
    ):
        raise _malformed("has an 'entry' that no spec.schedules entry can have")
    return Target(**values, entry=entry)


def parse_retried(value: str | None) -> int | None:
    """``Upstash-Retried``: 0 on a first attempt, 1 on the second, ...; None if malformed.

    An absent header counts as a first attempt (QStash always sends it; a first attempt is the
    case whose early window is bounded, while booking an early first attempt as a retry would
    give it the previous tick).
    """
    if value is None:
        return 0
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > MAX_RETRIED_DIGITS:
        return None
    return int(text)


def _result_json(result: RunResult) -> dict[str, Any]:
    return {
        "outcome": result.outcome.value,
        "cronWorkflow": f"{result.namespace}/{result.name}",
        "job": result.job_name,
        "tick": rfc3339(result.tick) if result.tick else None,
        "message": result.message,
    }


async def deliver(request: web.Request) -> web.StreamResponse:
    app = request.app
    started = time.perf_counter()
    metrics = app[typedefs.metrics_key]
    message_id = request.headers.get(MESSAGE_ID_HEADER) or None
    retried = request.headers.get(RETRIED_HEADER)
    fields: dict[str, Any] = {
        "message_id": logs.unverified(message_id),
        "retried": logs.unverified(retried),
    }

    def finish(response: web.Response, result: str, level: int, **more: Any) -> web.Response:
        metrics.delivery(result)
        metrics.request_seconds.labels(route="delivery").observe(time.perf_counter() - started)
        logs.event(
            logger,
            level,
            "delivery",
            **fields,
            result=result,
            status=response.status,
            seconds=round(time.perf_counter() - started, 4),
            **more,
        )
        return response

    try:
        body = await read_body(
            request, deadline=app[typedefs.body_deadline_key], limit=MAX_BODY_BYTES
        )
    except errors.ApiError as exc:
        return finish(exc.response(), "bad_request", logging.WARNING, reason=exc.reason)
    now = app[typedefs.clock_key]()  # the one "now" of this request, once the body is in

    keys = app[typedefs.signing_keys_key].keys()
    try:
        signature.verify(
            body=body,
            signature=request.headers.get(SIGNATURE_HEADER),
            url=app[typedefs.destination_key],
            current_key=keys.current.reveal(),
            next_key=keys.next.reveal(),
            now=now.timestamp(),
            tolerance=app[typedefs.settings_key].clock_tolerance_seconds,
        )
    except SignatureError as exc:
        metrics.signature_refused(exc.failure)
        return finish(
            errors.error_response(401, exc.failure.value, "signature refused"),
            "unauthorized",
            logging.WARNING,
            reason=exc.failure.value,
        )

    if message_id is not None and len(message_id) > MAX_MESSAGE_ID:
        return finish(
            errors.error_response(400, "MalformedMessageId", "Upstash-Message-Id is too long"),
            "bad_request",
            logging.WARNING,
        )
    # Signed by QStash and of a length QStash uses: the id the Job will carry, logged whole.
    fields["message_id"] = logs.unverified(message_id, limit=MAX_MESSAGE_ID)
    attempts_before = parse_retried(retried)
    if attempts_before is None:
        return finish(
            errors.error_response(
                400, "MalformedRetried", "Upstash-Retried is not a count of earlier attempts"
            ),
            "bad_request",
            logging.WARNING,
        )
    if attempts_before > 0 and message_id is None:
        return finish(
            errors.error_response(
                400,
                "MissingMessageId",
                "a retry (Upstash-Retried > 0) needs Upstash-Message-Id to find its tick",
            ),
            "bad_request",
            logging.WARNING,
        )
    try:
        target = parse_target(body)
    except PermanentDeliveryError as exc:
        response, result = errors.for_delivery(exc)
        return finish(response, result, logging.WARNING, reason=exc.reason)
    fields["cronworkflow"] = target.key
    if target.entry is not None:
        fields["entry"] = target.entry

    try:
        run = await app[typedefs.runs_key].run_delivery(
            namespace=target.namespace,
            name=target.name,
            uid=target.uid,
            message_id=message_id,
            delivered_at=now,
            retried=attempts_before,
            entry=target.entry,
        )
    except QStashOperatorError as exc:
        response, result = errors.for_delivery(exc)
        # 503s are expected weather (QStash retries); a 500 is a bug.
        level = logging.ERROR if response.status == 500 else logging.WARNING
        return finish(response, result, level, reason=getattr(exc, "reason", None), error=str(exc))
    return finish(
        web.json_response(_result_json(run)),
        run.outcome.value,
        logging.INFO,
        outcome=run.outcome.value,
        tick=rfc3339(run.tick) if run.tick else None,
        job=run.job_name,
    )
