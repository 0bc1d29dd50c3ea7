"""Conditional status writes: read, decide, write if nothing changed since the read, else again.

The status of a CronWorkflow has several writers at once: webhook replicas recording runs, the
operator's Job mirror, a manual run's reservation. A merge patch from a body read a moment ago
overwrites whatever another writer put there since (a reservation dropped, ``lastScheduleTime``
moved back). So every such write carries the ``metadata.resourceVersion`` it was decided from;
the API server refuses it with 409 if the object changed, and the decision is made again from a
fresh read. The deciding is the domain's (``domain.runs.status_after_*``); this module only
reads, calls and retries.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

from qstash_operator.adapters.kube import Kube
from qstash_operator.domain.errors import ConflictError
from qstash_operator.domain.model import JsonDict

logger = logging.getLogger(__name__)

MAX_STATUS_WRITE_ATTEMPTS: Final = 5
"""Conflicts tolerated before giving up (the caller then retries later: a 503 for QStash, a
deferred mirror). Five covers a tick, a manual run, the mirror and a second replica at once."""

Decide = Callable[[JsonDict, int], Awaitable[JsonDict | None]]
"""Given the CronWorkflow as read and the attempt number (0 first), the status patch to write
(None or empty: nothing to write)."""


async def write_status(
    kube: Kube,
    namespace: str,
    name: str,
    decide: Decide,
    *,
    body: JsonDict | None = None,
) -> JsonDict | None:
    """Decide from ``body`` (read it when None), write conditionally, re-read on conflict.

    Returns the patch written, or None when there was nothing to write. NotFoundError (the
    CronWorkflow went away) passes through; ConflictError after
    :data:`MAX_STATUS_WRITE_ATTEMPTS` lost races.
    """
    for attempt in range(MAX_STATUS_WRITE_ATTEMPTS):
        if body is None:
            body = await kube.get_cronworkflow(namespace, name)
        patch = await decide(body, attempt)
        if not patch:
            return None
        version = (body.get("metadata") or {}).get("resourceVersion")
        try:
            await kube.patch_cronworkflow(
                namespace,
                name,
                {"metadata": {"resourceVersion": version}, "status": patch},
                status=True,
            )
        except ConflictError:
            logger.debug("status of %s/%s changed while deciding; reading again", namespace, name)
            body = None
            continue
        return patch
    raise ConflictError(
        f"{namespace}/{name}: status changed under {MAX_STATUS_WRITE_ATTEMPTS} writes in a row",
        retry_after=1.0,
    )
