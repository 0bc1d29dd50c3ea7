"""The operator's TLS connections read into a small buffer each (``adapters.tls_buffers``):
asyncio's 256 KiB apiece, resident for as long as a connection lives, was half of what the
operator grew by while converging 2,000 CronWorkflows."""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto
from collections.abc import Iterator

import pytest

from qstash_operator.adapters.tls_buffers import TLS_READ_BUFFER_BYTES, limit_tls_read_buffers


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    """The size is process-wide: every test leaves asyncio's own."""
    original = sslproto.SSLProtocol.max_size
    yield
    sslproto.SSLProtocol.max_size = original


def read_buffer_of_a_new_connection() -> int:
    """The read buffer asyncio hands the socket for one new TLS connection's ciphertext."""
    loop = asyncio.get_running_loop()
    protocol = sslproto.SSLProtocol(
        loop, asyncio.Protocol(), ssl.create_default_context(), loop.create_future()
    )
    return len(protocol.get_buffer(-1))


async def test_asyncio_s_default_is_what_the_limit_cuts() -> None:
    assert read_buffer_of_a_new_connection() == 256 * 1024


async def test_connections_opened_after_the_limit_read_into_the_small_buffer() -> None:
    previous = limit_tls_read_buffers()
    assert previous == 256 * 1024
    assert read_buffer_of_a_new_connection() == TLS_READ_BUFFER_BYTES == 32 * 1024


async def test_a_read_never_grows_the_buffer_past_the_limit() -> None:
    limit_tls_read_buffers()
    loop = asyncio.get_running_loop()
    protocol = sslproto.SSLProtocol(
        loop, asyncio.Protocol(), ssl.create_default_context(), loop.create_future()
    )
    assert len(protocol.get_buffer(1024 * 1024)) == TLS_READ_BUFFER_BYTES


def test_a_buffer_smaller_than_one_tls_record_is_refused() -> None:
    with pytest.raises(ValueError, match="16 KiB"):
        limit_tls_read_buffers(8 * 1024)
