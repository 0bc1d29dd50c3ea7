"""The server in a background thread, driven from a synchronous test with the sync SDK."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest
from qstash import QStash, Receiver

from qstash_operator.domain import signature
from qstash_server.testing import ThreadedServer
from tests.qstash_server.conftest import START, TOP_MS


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((self.path, dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def destination() -> Iterator[str]:
    _Hook.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_sync_sdk_against_a_threaded_server(destination: str) -> None:
    with ThreadedServer(start_time=START) as qstash:
        client = QStash(qstash.token, base_url=qstash.url, retry=False)
        schedule_id = client.schedule.create(
            destination=destination, cron="0 * * * *", body="hi", content_type="text/plain"
        )
        fired = qstash.advance(30)
        assert [(f["scheduleId"], f["tick"]) for f in fired] == [(schedule_id, TOP_MS)]
        [delivery] = qstash.wait_for_deliveries(1)
        assert (delivery["status"], delivery["outcome"]) == (204, "success")
        assert client.schedule.get(schedule_id).last_schedule_time == TOP_MS
        assert qstash.api_calls() == {"schedules.create": 1, "schedules.get": 1}
        current, upcoming = qstash.current_key, qstash.next_key
        client.http._client.close()
    [(path, headers, body)] = _Hook.received
    token = headers["Upstash-Signature"]
    assert (path, body) == ("/hook", b"hi")
    Receiver(current, upcoming).verify(signature=token, body=body.decode(), url=destination)
    signature.verify(
        body=body,
        signature=token,
        url=destination,
        current_key=current,
        next_key=upcoming,
        now=time.time(),
        tolerance=5,
    )
