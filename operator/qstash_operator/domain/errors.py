"""The project's one error hierarchy.

Every failure the project can meet is one of these classes; adapters wrap library exceptions into
them (``raise ... from exc``) and the edges map them once:

==============================  ===========================================  ====================
class                           operator (kopf)                              webhook (HTTP)
==============================  ===========================================  ====================
``InvalidSpecError``            ``SpecValid=False``, Warning event,          (not raised there)
                                ``kopf.PermanentError`` (no retry until
                                the spec changes)
``SettingsError``               the process stops at start                   same
``TransientError`` and kids     ``kopf.TemporaryError(delay=retry_after)``   503 + ``Retry-After``
``QStashAuthError``             condition + slow retry (no hot loop)         (not raised there)
``SignatureError``              (not raised there)                           401 + reason category
``PermanentDeliveryError``      (not raised there)                           489 + non-retryable
``NotFoundError``               (handled where it means "already gone")      404
``ForbiddenError`` (RBAC)       condition + slow retry                       503 + ``Retry-After``
``QuotaExceededError``,         condition + retry (transient)                503 + ``Retry-After``
``NamespaceTerminatingError``
``AdmissionDeniedError``        as ``ApiRejectedError``: ``SpecValid=False``  489 (non-retryable)
                                for a Job template refused by a policy
``NotOwnedError``               ``SpecValid=False`` on ``metadata.name``     (not raised there)
``IdempotencyConflictError``    (not raised there)                           422
==============================  ===========================================  ====================

Messages never carry secrets: tokens and signing keys are not passed to these constructors.
"""

from __future__ import annotations

import enum
from typing import Final


class QStashOperatorError(Exception):
    """Base of every error this project raises on purpose."""


class SettingsError(QStashOperatorError):
    """A setting is missing, malformed or contradicts another; the process must not start."""

    def __init__(self, variable: str, problem: str, fix: str) -> None:
        self.variable = variable
        self.problem = problem
        self.fix = fix
        super().__init__(f"{variable}: {problem}. Fix: {fix}")


class InvalidSpecError(QStashOperatorError):
    """The CronWorkflow spec cannot be served as written; retrying will not help.

    ``field`` is the JSON path of the offending field (``spec.timeZone``), ``reason`` is a
    CamelCase word from :mod:`qstash_operator.domain.vocabulary`, ``fix`` tells the user what to do.
    """

    def __init__(self, field: str, problem: str, fix: str, *, reason: str = "InvalidSpec") -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        self.reason = reason
        super().__init__(f"{field}: {problem}. {fix}")


# -- transient: the world is temporarily not as we need it; retry later -------------------------

DEFAULT_RETRY_AFTER_SECONDS: Final = 10.0
"""Retry delay when the failing party gave no hint: long enough not to hammer an API server or
QStash that is down, short enough that a blip heals within one CronJob-controller sync period."""


class TransientError(QStashOperatorError):
    """Worth retrying after ``retry_after`` seconds. ``reason`` is the word a 503 carries."""

    reason: str = "Unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after: float = (
            DEFAULT_RETRY_AFTER_SECONDS if retry_after is None else float(retry_after)
        )
        super().__init__(message)


class WatchExpiredError(TransientError):
    """The version a watch started from is gone (410 Gone): list again, then watch from there."""


class KubernetesUnavailableError(TransientError):
    """The API server did not answer, or answered 5xx / 429."""


OUTAGE_FIRST_RETRY_SECONDS: Final = 2.0
"""First retry after an outage (5xx, refused connection); callers double it per attempt up to
five minutes, so a blip heals in seconds and a long outage costs a handful of calls an hour."""


class QStashUnavailableError(TransientError):
    """QStash did not answer, or answered 5xx."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after or OUTAGE_FIRST_RETRY_SECONDS)


class QStashRateLimitedError(TransientError):
    """QStash answered 429; ``retry_after`` comes from its rate-limit headers."""


class ConflictError(TransientError):
    """Optimistic concurrency lost (HTTP 409 on update); re-read and retry."""


RUN_IN_FLIGHT_RETRY_SECONDS: Final = 2.0


class RunInFlightError(TransientError):
    """Under ``Replace``, another run has reserved its Job but not created it yet. Going ahead
    would start this run beside it (there is nothing to delete yet); retrying in a moment lets
    this run replace it instead."""

    reason = "RunInFlight"

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=RUN_IN_FLIGHT_RETRY_SECONDS)


class QStashAuthError(TransientError):
    """QStash refused the token (401/403). Retried slowly: the fix is a new Secret, not a loop."""

    SLOW_RETRY_SECONDS: Final = 300.0

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=self.SLOW_RETRY_SECONDS)


class ForbiddenError(TransientError):
    """The Kubernetes API's authorizer refused us (403 ``User "..." cannot ...``): RBAC is missing
    a rule. Retried slowly. Other 403s are not this: see the three classes below."""

    reason = "Forbidden"

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=QStashAuthError.SLOW_RETRY_SECONDS)


QUOTA_RETRY_SECONDS: Final = 30.0
"""A used-up ResourceQuota frees when Jobs finish and are pruned, or when someone raises it:
minutes, not milliseconds. Thirty seconds keeps a retrying delivery inside QStash's retries."""


class QuotaExceededError(TransientError):
    """A ResourceQuota of the namespace is used up (403 ``exceeded quota: ...``), or its usage is
    not computed yet (``status unknown for quota``). Retry later; the message names the quota."""

    reason = "QuotaExceeded"

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=QUOTA_RETRY_SECONDS)


class NamespaceTerminatingError(TransientError):
    """The namespace is being deleted (403 with cause ``NamespaceTerminating``): nothing new may
    be created in it. Retrying ends soon: the CronWorkflow goes with its namespace."""

    reason = "NamespaceTerminating"


# -- permanent, non-spec ---------------------------------------------------------------------------


class QStashRejectedError(QStashOperatorError):
    """QStash answered 400 (or another 4xx that retrying cannot fix); carries QStash's message."""

    def __init__(self, message: str, *, status: int) -> None:
        self.status = status
        super().__init__(message)


class ApiRejectedError(QStashOperatorError):
    """The Kubernetes API server refused a request as invalid (400/422); ``detail`` says why."""

    def __init__(self, message: str, *, detail: str) -> None:
        self.detail = detail
        super().__init__(message)


class AdmissionDeniedError(ApiRejectedError):
    """An admission policy refused the object as written: a ValidatingAdmissionPolicy, an
    admission webhook, or another admission plugin (403, or 400/422 naming the policy).
    ``detail`` is the API server's message, which names the policy and quotes its reason. The
    same object will be refused again: for a Job template it is ``SpecValid=False``."""


class NotFoundError(QStashOperatorError):
    """The object asked for does not exist (Kubernetes or QStash 404)."""


class AlreadyExistsError(QStashOperatorError):
    """Create lost to an object of the same name (HTTP 409 AlreadyExists)."""


class NotOwnedError(QStashOperatorError):
    """An object we were about to change exists under the name we need but another owner holds it
    (no ownerReference to this CronWorkflow): changing it would take over someone else's object."""


class IdempotencyConflictError(QStashOperatorError):
    """An ``Idempotency-Key`` came back with a request other than the one it was first sent with;
    answering with the first request's Job would run something the caller did not ask for."""

    reason: Final = "IdempotencyKeyReused"

    def __init__(self, key: str, job_name: str) -> None:
        self.key = key
        self.job_name = job_name
        super().__init__(
            f"Idempotency-Key {key!r} was first sent with a different request, which made Job "
            f"{job_name}; send a new key for a new request"
        )


class SignatureFailure(enum.Enum):
    """Why a QStash signature was refused. The value is what the 401 body and the metric say.

    Categories, never details: the answer must not help a forger, nor echo a key.
    """

    MISSING = "missing"  # no Upstash-Signature header
    MALFORMED = "malformed"  # not a compact JWS, bad base64, bad JSON
    ALGORITHM = "algorithm"  # anything but HS256 (including "none")
    BAD_SIGNATURE = "bad_signature"  # HMAC matches neither the current nor the next key
    ISSUER = "issuer"  # iss != "Upstash"
    SUBJECT = "subject"  # sub != the configured public URL
    EXPIRED = "expired"  # exp in the past beyond tolerance
    NOT_YET_VALID = "not_yet_valid"  # nbf (or iat) in the future beyond tolerance
    BODY_HASH = "body_hash"  # body claim does not match the raw body
    CLAIMS = "claims"  # a required claim missing or of the wrong type


class SignatureError(QStashOperatorError):
    """A delivery's ``Upstash-Signature`` did not verify."""

    def __init__(self, failure: SignatureFailure) -> None:
        self.failure = failure
        super().__init__(f"signature refused: {failure.value}")


class PermanentDeliveryError(QStashOperatorError):
    """A delivery can never succeed (CronWorkflow gone, uid mismatch, body not ours).

    Answered with 489 and ``Upstash-NonRetryable-Error: true`` so QStash stops retrying.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)
