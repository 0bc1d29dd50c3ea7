"""The project's errors as HTTP answers: the one place that decides status codes.

Two maps, because the same error means different things to the two kinds of caller:

===============================  ==========================================  ==================
error                            QStash delivery (``/api/qstash/webhook``)    API (``/api/...``)
===============================  ==========================================  ==================
``SignatureError``               401 ``{"reason": <category>}``               (not raised)
``PermanentDeliveryError``       489 + ``Upstash-NonRetryable-Error: true``   404 gone / 422
``ApiRejectedError`` (Job        489 + non-retryable: the same template       422
invalid for the API server)      would be refused on every retry
``ForbiddenError`` (our RBAC)    503 + ``Retry-After``, logged as an error:   503, ditto
                                 an RBAC fix heals it, QStash keeps trying
other ``TransientError``         503 + ``Retry-After`` (whole seconds)        503 + Retry-After
``NotFoundError``                (not raised)                                 404
``InvalidSpecError``             (not raised)                                 422
``IdempotencyConflictError``     (not raised)                                 422
anything else                    500, logged with its traceback               500, ditto
===============================  ==========================================  ==================

Every error body is JSON ``{"error": <message>, "reason": <CamelCase word or category>}``; no
message carries a token or a key (the error classes never receive them).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from qstash_operator.domain.errors import (
    AlreadyExistsError,
    ApiRejectedError,
    ForbiddenError,
    IdempotencyConflictError,
    InvalidSpecError,
    NotFoundError,
    PermanentDeliveryError,
    QStashOperatorError,
    TransientError,
)

logger = logging.getLogger(__name__)

STATUS_NON_RETRYABLE: Final = 489
"""QStash's "stop retrying" status; only honoured together with the header below."""
NON_RETRYABLE_HEADER: Final = "Upstash-NonRetryable-Error"


class ApiError(Exception):
    """An answer decided by a view (bad parameter, not authenticated, not allowed)."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.headers = headers or {}
        self.close = close  # close the connection after answering (a body still arriving)
        super().__init__(message)

    def response(self) -> web.Response:
        answer = error_response(self.status, self.reason, self.message, headers=self.headers)
        if self.close:
            answer.force_close()
        return answer


def error_response(
    status: int, reason: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    return web.json_response(
        {"error": message, "reason": reason, **extra}, status=status, headers=headers
    )


def retry_after(seconds: float) -> str:
    """``Retry-After`` in whole seconds, at least one (QStash reads seconds, dates or Go
    durations; an integer is the form every reader agrees on)."""
    return str(max(1, math.ceil(seconds)))


def _transient(exc: TransientError) -> web.Response:
    if isinstance(exc, ForbiddenError):
        logger.error("the Kubernetes API refused the webhook's own account (fix its RBAC): %s", exc)
    return error_response(
        503, exc.reason, str(exc), headers={"Retry-After": retry_after(exc.retry_after)}
    )


def for_delivery(exc: QStashOperatorError) -> tuple[web.Response, str]:
    """The answer to QStash for ``exc``, and the ``result`` label it counts under."""
    if isinstance(exc, PermanentDeliveryError):
        return (
            error_response(
                STATUS_NON_RETRYABLE,
                exc.reason,
                str(exc),
                headers={NON_RETRYABLE_HEADER: "true"},
            ),
            "non_retryable",
        )
    if isinstance(exc, ApiRejectedError):
        return (
            error_response(
                STATUS_NON_RETRYABLE,
                "FailedCreate",
                str(exc),
                headers={NON_RETRYABLE_HEADER: "true"},
            ),
            "non_retryable",
        )
    if isinstance(exc, TransientError):
        return _transient(exc), "unavailable"
    logger.error("unexpected error on a delivery: %r", exc)
    return error_response(500, "InternalError", "internal error"), "error"


def for_api(exc: QStashOperatorError) -> web.Response:
    if isinstance(exc, PermanentDeliveryError):
        status = 404 if exc.reason == "CronWorkflowGone" else 422
        return error_response(status, exc.reason, str(exc))
    if isinstance(exc, NotFoundError):
        return error_response(404, "NotFound", str(exc))
    if isinstance(exc, InvalidSpecError):
        return error_response(422, exc.reason, str(exc))
    if isinstance(exc, IdempotencyConflictError):
        return error_response(422, exc.reason, str(exc), job=exc.job_name)
    if isinstance(exc, ApiRejectedError):
        return error_response(422, "Rejected", exc.detail)
    if isinstance(exc, AlreadyExistsError):
        return error_response(409, "AlreadyExists", str(exc))
    if isinstance(exc, TransientError):
        return _transient(exc)
    logger.error("unexpected error on an API call: %r", exc)
    return error_response(500, "InternalError", "internal error")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """JSON for every error; nothing unexpected escapes as aiohttp's HTML page."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except QStashOperatorError as exc:
        return for_api(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {key: value for key, value in exc.headers.items() if key in ("Allow",)}
        return error_response(exc.status, exc.reason.replace(" ", ""), exc.reason, headers=headers)
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "InternalError", "internal error")
