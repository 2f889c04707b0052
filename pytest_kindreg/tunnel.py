"""A loopback forwarder that adds a TLS client certificate, so the host can push to an mTLS registry.

The Docker daemon treats 127.0.0.0/8 registries as insecure and never presents a client
certificate to them (it skips certs.d there), so it cannot push to a registry that requires
one. It pushes instead over plain HTTP to this forwarder on 127.0.0.1, which opens a TLS
connection with the client pair to the registry. Only this process's loopback sees plain text.
"""

from __future__ import annotations

import contextlib
import select
import socket
import socketserver
import ssl
import threading
from pathlib import Path

_TLS_HANDSHAKE = 0x16


def _read(source: socket.socket) -> bytes | None:
    """Read what is there; None when nothing is (TLS 1.3 session tickets wake select() too)."""
    source.setblocking(False)
    try:
        return source.recv(65536)
    except (ssl.SSLWantReadError, BlockingIOError):
        return None
    finally:
        source.setblocking(True)


def _relay(client: socket.socket, upstream: ssl.SSLSocket, idle_timeout: float = 300.0) -> None:
    """Copy bytes both ways in ONE thread: an SSLSocket must not be read and written concurrently."""
    with contextlib.suppress(OSError):
        while True:
            # Bytes OpenSSL already decrypted are invisible to select(): drain them first.
            readable = [upstream] if upstream.pending() else select.select([client, upstream], [], [], idle_timeout)[0]
            if not readable:
                return
            for source in readable:
                data = _read(source)
                if data is None:
                    continue
                if not data:
                    return
                (upstream if source is client else client).sendall(data)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        client: socket.socket = self.request
        first = client.recv(1, socket.MSG_PEEK)
        if not first or first[0] == _TLS_HANDSHAKE:
            # Docker tries HTTPS first on insecure registries; refuse it fast so it falls back to HTTP.
            return
        with self.server.connect_upstream() as upstream:
            _relay(client, upstream)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: tuple[str, int], context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.context = context

    def connect_upstream(self) -> ssl.SSLSocket:
        raw = socket.create_connection(self.upstream, timeout=30)
        return self.context.wrap_socket(raw, server_hostname=self.upstream[0])


class ClientCertTunnel:
    """``127.0.0.1:<port>`` (plain HTTP) → ``upstream`` (TLS with a client certificate)."""

    def __init__(self, upstream: tuple[str, int], ca: Path, client_cert: Path, client_key: Path) -> None:
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(str(client_cert), str(client_key))
        self._server = _Server(upstream, context)
        self._thread = threading.Thread(target=self._server.serve_forever, name="kindreg-tunnel", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        address: tuple[str, int] = self._server.server_address  # type: ignore[assignment]
        return f"{address[0]}:{address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ClientCertTunnel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
