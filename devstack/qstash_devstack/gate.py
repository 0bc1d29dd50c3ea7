"""A TCP forwarder on loopback whose client-to-server direction can be held shut.

Why: "a request is in flight" is a state a test must be able to create on purpose, without
sleeping. Put this between a component and the API server (TLS passes through untouched: it
forwards bytes), ``close()`` the gate, and the component's next API call stops mid-way, its bytes
held here (``wait_held``) until ``open()``. The end-to-end test of the webhook's SIGTERM drain uses
it to have a delivery half done when the signal arrives.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Self

from qstash_devstack.polling import poll_until

_CHUNK = 65536


class GatedProxy:
    """Forward ``127.0.0.1:<port>`` to ``127.0.0.1:<target>``; see the module docstring."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self._held = 0  # client-to-server chunks waiting at the closed gate
        self._sockets: list[socket.socket] = [self._listener]
        self._stopped = False

    # -- the gate ---------------------------------------------------------------------------

    def close(self) -> None:
        """From now on, bytes from clients wait here (connections stay up)."""
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    @property
    def held(self) -> int:
        with self._lock:
            return self._held

    def wait_held(self, *, timeout: float = 30.0) -> None:
        """Until a client has sent something that the closed gate is holding."""
        poll_until(lambda: self.held > 0, timeout=timeout, interval=0.02, what="a held request")

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> Self:
        threading.Thread(target=self._accept, name="gated-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped = True
        self._open.set()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, gated: bool) -> None:
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    break
                if gated and not self._open.is_set():
                    with self._lock:
                        self._held += 1
                    self._open.wait()
                    with self._lock:
                        self._held -= 1
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
