"""Manual runs asked for over HTTP with an ``Idempotency-Key``: one key, one Job.

A client whose answer is lost (a timeout, a dropped connection) sends the same request again, and
may reach another webhook replica. With an ``Idempotency-Key`` header (the IETF httpapi draft's,
as Stripe and others use it) the retry must find the first request's Job rather than make a
second one, and no replica may remember anything the others do not know. So the key is not kept
anywhere but in the Job itself:

- the manual Job's name derives from the caller and the key (:func:`seed`, then
  :func:`qstash_operator.domain.naming.manual_job_name`), so every replica computes the same name
  and the API server lets one create win;
- the Job carries the key and a :func:`fingerprint` of the request; the same key with a different
  request is refused (422) instead of answered with a Job made for something else;
- :data:`WINDOW`: for that long after it is made, the Job is kept even past the CronWorkflow's
  history limits, so a retry within the window always finds it. After the window a key whose Job
  has been pruned makes a new one.

Keys are scoped to a caller and a CronWorkflow: two users (or two CronWorkflows) never share one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Final

HEADER: Final = "Idempotency-Key"
WINDOW: Final = timedelta(hours=1)
"""How long a key keeps naming its Job whatever the history limits say. Clients retry within
seconds or minutes; an hour covers an outage of the client's own, and the cost is at most one
finished Job per key kept that much longer."""
MAX_KEY_LENGTH: Final = 255
"""Stripe's limit; UUIDs (36) and ULIDs (26) fit many times over."""
_KEY: Final = re.compile(rf"[\x21-\x7e]{{1,{MAX_KEY_LENGTH}}}")


def key_problem(value: str) -> str | None:
    """Why ``value`` cannot be an idempotency key (None when it can)."""
    if not _KEY.fullmatch(value):
        return (
            f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable ASCII characters without spaces "
            "(e.g. a UUID)"
        )
    return None


def unquote(value: str) -> str:
    """The draft sends the key as a structured-field string (``"abc"``); plain ``abc`` is what
    most clients send. Both name the same key."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def seed(requested_by: str, key: str) -> str:
    """What the manual Job's name derives from: the caller and the key (the CronWorkflow's name
    is the Job name's own prefix)."""
    return f"idempotency-key/{requested_by}/{key}"


def fingerprint(
    *, key: str, workflow: str, parameters: Iterable[tuple[str, str]], body: bytes
) -> str:
    """SHA-256 over what makes two requests "the same": the key, the CronWorkflow, the other query
    parameters (in any order) and the body's bytes."""
    canonical = json.dumps(
        {
            "key": key,
            "workflow": workflow,
            "parameters": sorted(parameters),
            "body": hashlib.sha256(body).hexdigest(),
        },
        separators=(",", ":"),
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
