"""Structured logs: one JSON object per line, with the fields a delivery is traced by.

Views log through :func:`event`, which puts its keyword fields (``message_id``, ``cronworkflow``,
``outcome``, ``tick``, ``job``...) into the line next to the level, logger and message. What never
goes in: the ``Upstash-Signature`` token, bearer tokens and signing keys (callers pass none, and
:class:`~qstash_operator.settings.Secret` prints as ``***`` if one slipped through). A header value
nobody has vouched for yet (``Upstash-Message-Id`` before the signature checks out) goes in only
through :func:`unverified`: anyone can send 8 KiB of it on every request.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final

FIELDS_ATTRIBUTE: Final = "qstash_fields"
UNVERIFIED_CHARS: Final = 64
"""How much of an unverified header value a log line shows: a QStash message id (``msg_`` and a
few dozen characters) is recognisable in it, a flood of kilobytes per request is not stored."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, FIELDS_ATTRIBUTE, None)
        if isinstance(fields, dict):
            line.update({key: value for key, value in fields.items() if value is not None})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def unverified(value: str | None, limit: int = UNVERIFIED_CHARS) -> str | None:
    """``value`` fit for a log line: its first ``limit`` characters with anything but printable
    ASCII escaped (``\\x1b``, ``\\xe9``, ``\\n``), then how many characters were cut."""
    if value is None:
        return None
    shown = value[:limit].encode("unicode_escape").decode("ascii")
    if len(value) > limit:
        shown += f"...(+{len(value) - limit} chars)"
    return shown


def event(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    """Log ``message`` with ``fields`` as structured keys."""
    logger.log(level, message, extra={FIELDS_ATTRIBUTE: fields})


def configure(level: int = logging.INFO) -> None:
    """JSON lines on stderr for the whole process (the webhook's ``run`` calls it once)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # one line per delivery is ours
