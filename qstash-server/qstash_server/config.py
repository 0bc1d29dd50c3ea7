"""What a QStash-compatible server instance is told at start: one frozen object.

Built by the CLI (``main.py``) from flags, or directly by tests (``testing.py``). Every default
is the development answer: loopback bind, the documented public development credentials of the
official dev server (wire reference section 6, so tools that expect them work), real time, real
backoff. Tests flip ``test_controls`` and ``driven_clock`` and shrink ``backoff_factor``.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

DEV_TOKEN: Final = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="  # noqa: S105
"""The official dev server's default-user token: public, documented, development only."""
DEV_CURRENT_SIGNING_KEY: Final = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
DEV_NEXT_SIGNING_KEY: Final = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"

DEFAULT_PORT: Final = 8080
"""The official dev server's port, so ``QSTASH_URL=http://localhost:8080`` habits keep working."""
DEFAULT_REGION: Final = "EU-CENTRAL-1"
"""``Upstash-Region`` on deliveries; the default QStash host is the EU region (section 1)."""
MAX_ATTEMPT_SECONDS: Final = 900.0
"""Per-attempt ceiling: the Free plan's maximum HTTP response duration, 15 minutes (section 3.2);
``Upstash-Timeout`` can only shorten it."""
MAX_MESSAGE_BYTES: Final = 1024 * 1024
"""QStash's default maximum message size, 1 MB (section 2.6)."""
MAX_CONNECTIONS: Final = 256
"""Concurrent deliveries. QStash delivers in parallel; 256 keeps a minute's burst of hundreds of
schedules flowing without exhausting file descriptors on a laptop (ulimit is often 1024)."""
MAX_ADVANCE_TICKS: Final = 10_000
"""A driven-clock advance that would fire more ticks than this is refused (advance in steps)."""
LOG_LIMIT: Final = 20_000
"""Delivery attempts and API calls remembered for the controls; older entries are dropped."""
DEDUPLICATION_WINDOW_SECONDS: Final = 600
"""QStash's publish deduplication window, 10 minutes (section 3.2)."""


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str = DEV_TOKEN
    current_signing_key: str | None = None
    """None: the key from the state file if there is one, else the development key."""
    next_signing_key: str | None = None
    state_path: Path | None = None
    """JSON file that keeps schedules, in-flight messages and keys across restarts."""
    public_url: str | None = None
    """``QSTASH_URL`` to print, when clients reach the server by another name than its bind."""

    test_controls: bool = False
    """Serve ``/__control/...`` (clock, faults, logs). Never on in anything shared."""
    driven_clock: bool = False
    """Time stands still until ``/__control/clock/advance``; needs ``test_controls``."""
    start_time: datetime | None = None
    """Where the driven clock starts (default: the wall clock at start)."""
    backoff_factor: float = 1.0
    """Multiplies every wait inside a delivery (retry backoff, delay). 0 retries at once."""
    strict_destinations: bool = False
    """Refuse loopback/private destinations as production QStash does (section 7, pitfall 4)."""

    region: str | None = DEFAULT_REGION
    signing_clock: Literal["wall", "server"] = "wall"
    """Time in the tokens: the wall clock (real receivers check it), or the server's (driven)
    clock, for receivers that inject that same clock."""
    not_before: Literal["zero", "iat"] = "zero"
    """``nbf`` claim: 0 as QStash sends since September 2024, or ``iat`` as the older docs show."""
    max_attempt_seconds: float = MAX_ATTEMPT_SECONDS
    max_connections: int = MAX_CONNECTIONS
    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_schedules: int | None = None
    """Answer 412 beyond this many schedules (the Free plan allows 10); None: no limit."""
    max_advance_ticks: int = MAX_ADVANCE_TICKS
    log_limit: int = LOG_LIMIT

    def __post_init__(self) -> None:
        if self.driven_clock and not self.test_controls:
            raise ValueError("a driven clock needs test controls (nothing else can move it)")
        if self.backoff_factor < 0:
            raise ValueError("backoff_factor must not be negative")
