"""A loopback forwarder that adds a TLS client certificate, so the host can push to an mTLS registry.

The Docker daemon treats 127.0.0.0/8 registries as insecure and never presents a client
certificate to them (it skips certs.d there), so it cannot push to a registry that requires
one. It pushes instead over plain HTTP to this forwarder on 127.0.0.1, which opens a TLS
connection with the client pair to the registry.

Any local process can connect to a loopback port, so the forwarder does not lend the client
identity to whoever connects: each request must carry the tunnel's own random Basic
credentials (the daemon sends them as the push/pull ``auth_config``). Without them the answer
is ``401`` with ``WWW-Authenticate: Basic realm="kindreg-tunnel"`` and nothing is forwarded.
With them, the forwarder replaces the ``Authorization`` header with the registry's own
(Basic credentials, or in token mode a Bearer token for the request's scope; none when the
registry has no password identity) and forwards the request with
``Connection: close``, so that every request is checked: the registry answers one request per
connection and the daemon opens a new connection for the next.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import re
import secrets
import select
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

from pytest_kindreg.credentials import Credentials

_TLS_HANDSHAKE = 0x16
_MAX_HEAD = 64 * 1024
REALM = "kindreg-tunnel"
# Hop-by-hop headers the tunnel decides itself; Authorization is checked, then replaced.
_DROPPED = frozenset({b"authorization", b"connection", b"keep-alive", b"proxy-connection"})
_REPOSITORY_PATH = re.compile(r"^/v2/(.+?)/(?:blobs|manifests|tags)/")


class BadRequest(Exception):
    """A request head the tunnel cannot parse; answered with 400."""


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


def read_head(client: socket.socket) -> tuple[bytes, bytes]:
    """(request head up to and including the blank line, body bytes already received)."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > _MAX_HEAD:
            raise BadRequest("request head too large")
        chunk = client.recv(65536)
        if not chunk:
            raise BadRequest("connection closed inside the request head")
        buffer += chunk
    end = buffer.index(b"\r\n\r\n") + 4
    return buffer[:end], buffer[end:]


def _authorized(value: bytes, expected: Credentials) -> bool:
    scheme, _, token = value.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return False
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, f"{expected.username}:{expected.password}".encode())


def request_scope(request_line: bytes) -> str | None:
    """The token scope a registry API request needs (``repository:<name>:pull`` for reads,
    ``pull,push`` for writes), None for requests outside a repository (``/v2/``)."""
    parts = request_line.split(b" ")
    if len(parts) != 3:
        return None
    method, target = parts[0].decode(errors="replace"), parts[1].decode(errors="replace")
    match = _REPOSITORY_PATH.match(target.split("?", 1)[0])
    if match is None:
        return None
    actions = "pull" if method in ("GET", "HEAD") else "pull,push"
    return f"repository:{match.group(1)}:{actions}"


def rewrite_request_head(head: bytes, expected: Credentials, upstream: Callable[[bytes], str | None]) -> bytes | None:
    """The head to forward upstream, or None when the request lacks the tunnel's credentials.

    The tunnel's ``Authorization`` is removed; ``upstream(request line)`` says what takes its
    place (the registry's own credentials or a token; None: nothing). ``Connection: close`` makes
    the registry answer this one request only.
    """
    lines = head.split(b"\r\n")
    request_line, header_lines = lines[0], [line for line in lines[1:] if line]
    if len(request_line.split(b" ")) != 3 or not request_line.split(b" ")[2].startswith(b"HTTP/1."):
        raise BadRequest("not an HTTP/1.x request line")
    authorizations: list[bytes] = []
    kept: list[bytes] = []
    for line in header_lines:
        if line[:1] in (b" ", b"\t"):
            raise BadRequest("folded header lines are not accepted")
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise BadRequest("malformed header line")
        lowered = name.lower()
        if lowered == b"authorization":
            authorizations.append(value)
        if lowered not in _DROPPED:
            kept.append(line)
    if len(authorizations) != 1 or not _authorized(authorizations[0], expected):
        return None
    authorization = upstream(request_line)
    if authorization is not None:
        kept.append(b"Authorization: " + authorization.encode())
    kept.append(b"Connection: close")
    return b"\r\n".join([request_line, *kept]) + b"\r\n\r\n"


def _response(status: str, body: bytes, head_only: bool, extra: tuple[str, ...] = ()) -> bytes:
    headers = [
        f"HTTP/1.1 {status}",
        "Content-Type: application/json; charset=utf-8",
        "Docker-Distribution-Api-Version: registry/2.0",
        *extra,
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + (b"" if head_only else body)


def unauthorized_response(head_only: bool = False) -> bytes:
    """The 401 a request without the tunnel's credentials gets: a challenge, no registry data."""
    body = b'{"errors":[{"code":"UNAUTHORIZED","message":"kindreg tunnel: authentication required","detail":null}]}\n'
    return _response("401 Unauthorized", body, head_only, (f'Www-Authenticate: Basic realm="{REALM}"',))


def _close_gently(client: socket.socket) -> None:
    """Half-close, then drain briefly: closing with unread bytes would reset the 401 away."""
    with contextlib.suppress(OSError):
        client.shutdown(socket.SHUT_WR)
        client.settimeout(2.0)
        received = 0
        while received < 1 << 20:
            chunk = client.recv(65536)
            if not chunk:
                return
            received += len(chunk)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        client: socket.socket = self.request
        first = client.recv(1, socket.MSG_PEEK)
        if not first or first[0] == _TLS_HANDSHAKE:
            # Docker tries HTTPS first on insecure registries; refuse it fast so it falls back to HTTP.
            return
        client.settimeout(30.0)
        try:
            head, rest = read_head(client)
            forwarded = rewrite_request_head(head, self.server.credentials, self.server.upstream_authorization)
        except BadRequest:
            client.sendall(_response("400 Bad Request", b"", head_only=True))
            _close_gently(client)
            return
        except OSError:
            return
        if forwarded is None:
            client.sendall(unauthorized_response(head_only=head.startswith(b"HEAD ")))
            _close_gently(client)
            return
        with self.server.connect_upstream() as upstream:
            upstream.sendall(forwarded + rest)
            _relay(client, upstream)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        upstream: tuple[str, int],
        context: ssl.SSLContext,
        credentials: Credentials,
        upstream_authorization: Callable[[bytes], str | None],
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.context = context
        self.credentials = credentials
        self.upstream_authorization = upstream_authorization

    def connect_upstream(self) -> ssl.SSLSocket:
        raw = socket.create_connection(self.upstream, timeout=30)
        return self.context.wrap_socket(raw, server_hostname=self.upstream[0])


class ClientCertTunnel:
    """``127.0.0.1:<port>`` (plain HTTP, Basic auth with :attr:`credentials`) → ``upstream``
    (TLS with a client certificate, and the ``Authorization`` that ``upstream_authorization``
    gives for each request line: the registry's own credentials or a token, or none).

    :attr:`credentials` are random per tunnel and held only in this process's memory: every
    process (each xdist worker) opens its own tunnel, so there is nothing to share or store.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        ca: Path,
        client_cert: Path,
        client_key: Path,
        upstream_authorization: Callable[[bytes], str | None] = lambda request_line: None,
    ) -> None:
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(str(client_cert), str(client_key))
        self.credentials = Credentials(REALM, secrets.token_urlsafe(32))
        self._server = _Server(upstream, context, self.credentials, upstream_authorization)
        # shutdown() waits for the loop's next poll: 0.5 s by default, at every registry stop.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="kindreg-tunnel", daemon=True
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"<ClientCertTunnel {self.address}>"

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
