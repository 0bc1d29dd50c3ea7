"""asyncio's per-connection TLS read buffer, sized for a process with many connections.

asyncio gives every TLS connection a read buffer of ``asyncio.sslproto.SSLProtocol.max_size``
bytes (256 KiB), allocated and zeroed when the connection opens, so all of it is resident for
as long as the connection lives. The operator opens one connection per API request in flight on
each of its clients (kopf's, unbounded; ours, up to 64): while converging 2,000 CronWorkflows
tracemalloc found 136 of them holding 34 MiB, about half of what the operator grew by (``python
-m bench operator-memory --trace``). The buffer only bounds how much ciphertext one read takes
from the socket; a TLS record is at most 16 KiB, so 32 KiB still reads two records at a time,
and a large LIST is read in more event-loop turns, not more slowly on the wire.

The size is a class attribute asyncio reads for each new connection (it is the same in 3.11 to
3.13): setting it once at start-up, before any connection opens, is what this module does.
"""

from __future__ import annotations

from asyncio import sslproto
from typing import Final

TLS_READ_BUFFER_BYTES: Final = 32 * 1024
"""Read buffer per TLS connection of the operator (asyncio's default: 256 KiB)."""


def limit_tls_read_buffers(size: int = TLS_READ_BUFFER_BYTES) -> int:
    """Give every TLS connection opened from now on a ``size``-byte read buffer; returns the
    size it had."""
    if size < 16 * 1024:
        raise ValueError(f"a TLS read buffer below one record (16 KiB) is not useful: {size}")
    previous = int(sslproto.SSLProtocol.max_size)
    sslproto.SSLProtocol.max_size = size
    return previous
