"""The token service (the "realm") of a token-auth registry, and the process it runs in.

``registry:2`` in token mode answers ``401`` with ``WWW-Authenticate: Bearer realm=…,service=…,
scope=…``; a client trades its credentials at the realm for a short JWT naming what it may do.
This service answers what the real clients send (measured, see the docs):

* ``GET realm?service=&scope=…`` with Basic credentials (the Docker engine, containerd's
  fallback) → ``{"token", "access_token", "expires_in", "issued_at"}``;
* ``POST realm`` with the OAuth2 form ``grant_type=password&username&password&scope&service``
  (what containerd tries first when it has a secret) → ``{"access_token", …}``.

Credentials it accepts: the registry's own htpasswd users (bcrypt), access tokens
(``oauth2accesstoken``, until they expire) and service-account key documents (``_json_key``, the
whole document). What each account may do is the ACL's (:mod:`pytest_kindreg.token_acl`).

Its configuration is one JSON file (0600) the registry rewrites when identities change; the
service re-reads it when its mtime changes. It runs in a process of its own
(``python -m pytest_kindreg.token_service CONFIG``): under pytest-xdist the process that started a
shared registry may end before the last worker that uses it. It exits when its owner process
(the run) is gone, so a killed run leaves nothing listening.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hmac
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import bcrypt

from pytest_kindreg.credentials import write_private_file
from pytest_kindreg.registry_tokens import (
    ACCESS_TOKEN_USERNAME,
    DEFAULT_REGISTRY_TOKEN_TTL,
    SERVICE_ACCOUNT_KEY_USERNAME,
    TokenError,
    TokenExpiredError,
    TokenSigner,
    access_token_audience,
    key_account,
    key_digest,
    registry_token_claims,
)
from pytest_kindreg.token_acl import Acl, parse_scopes

TOKEN_PATH = "/token"  # noqa: S105 - a URL path
OWNER_POLL_INTERVAL = 1.0


@dataclass(frozen=True)
class TokenServiceConfig:
    """Everything the service needs, as written to its JSON file (no secret inside but paths)."""

    issuer: str
    service: str
    signer_dir: str
    htpasswd: str
    acl: list[dict[str, Any]]
    service_account_keys: dict[str, str] = field(default_factory=dict)  # key digest -> account
    token_ttl: int = DEFAULT_REGISTRY_TOKEN_TTL
    # HTTPS realm (cert, key, client CA paths): for a registry whose credential is a TLS client
    # certificate, the realm identifies the client by that certificate too.
    tls: dict[str, str] | None = None

    def write(self, path: Path) -> None:
        # Renamed into place: the service sees a whole file and a new mtime.
        tmp = write_private_file(path.with_name(path.name + ".new"), json.dumps(vars(self), indent=2))
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> TokenServiceConfig:
        return cls(**json.loads(path.read_text()))


@dataclass(frozen=True)
class Identity:
    """Who presented credentials: the ACL's account, and when their credential stops working."""

    account: str
    not_after: float | None = None


class Unauthorized(Exception):
    """Credentials missing or refused; ``reason`` goes into the status line and the error body."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def certificate_account(common_name: str) -> str:
    """The ACL account of a verified TLS client certificate."""
    return f"client-cert:{common_name}"


def _htpasswd_users(path: str) -> dict[str, bytes]:
    users: dict[str, bytes] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in Path(path).read_text().splitlines():
            user, sep, hashed = line.strip().partition(":")
            if sep:
                users[user] = hashed.encode()
    return users


class TokenAuthority:
    """The service's decisions, without HTTP: who is asking, and the token they get."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self._mtime = -1.0
        self._config: TokenServiceConfig | None = None
        self._signer: TokenSigner | None = None
        self._lock = threading.Lock()

    def config(self) -> tuple[TokenServiceConfig, TokenSigner]:
        with self._lock:
            mtime = self.config_path.stat().st_mtime
            if mtime != self._mtime or self._config is None or self._signer is None:
                self._config = TokenServiceConfig.read(self.config_path)
                self._signer = TokenSigner.load(Path(self._config.signer_dir))
                self._mtime = mtime
            return self._config, self._signer

    def authenticate(self, username: str | None, password: str | None, certificate: str | None = None) -> Identity:
        """Who presented ``username``/``password`` (Basic), else the verified TLS client
        certificate whose common name is ``certificate``."""
        if not username and certificate:
            return Identity(certificate_account(certificate))
        if not username or password is None:
            raise Unauthorized("authentication required")
        config, signer = self.config()
        if username == ACCESS_TOKEN_USERNAME:
            try:
                claims = signer.verify(password, audience=access_token_audience(config.service), issuer=config.issuer)
            except TokenExpiredError:
                raise Unauthorized("access token expired") from None
            except TokenError:
                raise Unauthorized("invalid access token") from None
            return Identity(ACCESS_TOKEN_USERNAME, float(claims["exp"]))
        if username == SERVICE_ACCOUNT_KEY_USERNAME:
            digest = key_digest(password)
            for known, account in config.service_account_keys.items():
                if hmac.compare_digest(known, digest):
                    if key_account(password) != account:
                        break
                    return Identity(account)
            raise Unauthorized("unknown service account key")
        hashed = _htpasswd_users(config.htpasswd).get(username)
        if hashed is None or not bcrypt.checkpw(password.encode(), hashed):
            raise Unauthorized("invalid credentials")
        return Identity(username)

    def token_response(
        self, identity: Identity, service: str | None, scopes: Sequence[str], now: float | None = None
    ) -> dict[str, Any]:
        config, signer = self.config()
        if service not in (None, "", config.service):
            raise ValueError(f"unknown service {service!r}")
        issued = time.time() if now is None else now
        access = Acl.from_list(config.acl).access(identity.account, parse_scopes(scopes))
        claims = registry_token_claims(
            issuer=config.issuer,
            service=config.service,
            subject=identity.account,
            access=access,
            ttl=config.token_ttl,
            not_after=identity.not_after,
            now=issued,
        )
        token = signer.sign(claims)
        # How long a client may keep it: never past the credential it was traded for.
        expires_in = config.token_ttl
        if identity.not_after is not None:
            expires_in = max(0, min(expires_in, int(identity.not_after - issued)))
        return {
            "token": token,
            "access_token": token,
            "expires_in": expires_in,
            "issued_at": datetime.datetime.fromtimestamp(int(issued), datetime.timezone.utc).isoformat(),
        }


def _basic(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        user, sep, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return (user, password) if sep else (None, None)


def _first(values: Mapping[str, list[str]], key: str) -> str | None:
    found = values.get(key)
    return found[0] if found else None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        # To the service's log file (its stderr): request lines carry the scope and the account,
        # never a password (that is in a header or the POST body, neither logged).
        sys.stderr.write(f"{self.address_string()} [{self.log_date_time_string()}] {format % args}\n")
        sys.stderr.flush()

    def _json(self, status: int, body: Mapping[str, Any], reason: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status, reason)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _unauthorized(self, reason: str) -> None:
        # The reason rides in the status line ("401 Unauthorized (access token expired)"), which is
        # what containerd puts in the pull error, and in the body, which Docker shows.
        body = {"errors": [{"code": "UNAUTHORIZED", "message": reason}], "details": reason}
        self._json(HTTPStatus.UNAUTHORIZED, body, f"Unauthorized ({reason})")

    def _client_certificate(self) -> str | None:
        """The common name of the client's certificate, if it presented one the CA signed."""
        getpeercert = getattr(self.connection, "getpeercert", None)
        peer = getpeercert() if getpeercert is not None else None
        for rdn in (peer or {}).get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return str(value)
        return None

    def _answer(self, username: str | None, password: str | None, service: str | None, scopes: list[str]) -> None:
        authority = self.server.authority
        try:
            identity = authority.authenticate(username, password, self._client_certificate())
            response = authority.token_response(identity, service, scopes)
        except Unauthorized as exc:
            self._unauthorized(exc.reason)
            return
        except ValueError as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "invalid_request", "error_description": str(exc)})
            return
        self._json(HTTPStatus.OK, response)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != TOKEN_PATH:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        query = parse_qs(url.query)
        username, password = _basic(self.headers.get("Authorization"))
        self._answer(username, password, _first(query, "service"), query.get("scope", []))

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode(errors="replace")) if length else {}
        if url.path != TOKEN_PATH:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        grant = _first(form, "grant_type")
        if grant != "password":
            # No refresh tokens are handed out, so none can come back.
            self._json(HTTPStatus.BAD_REQUEST, {"error": "unsupported_grant_type"})
            return
        self._answer(_first(form, "username"), _first(form, "password"), _first(form, "service"), form.get("scope", []))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sock: socket.socket, authority: TokenAuthority) -> None:
        self.authority = authority
        super().__init__(sock.getsockname()[:2], _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock  # already bound and listening: its port was known before we started


def listening_socket(host: str) -> socket.socket:
    """A TCP socket listening on ``host`` at a port of the kernel's choosing (never 0.0.0.0 unless
    asked): its port is the realm's before any server runs, and nobody can take it meanwhile."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return sock


class TokenService:
    """The realm's HTTP server on a listening socket, in this process (``start``/``close``)."""

    def __init__(self, config_path: Path, sock: socket.socket) -> None:
        self.authority = TokenAuthority(config_path)
        config, _signer = self.authority.config()  # a bad config fails here, not on the first client
        if config.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=config.tls["client_ca"])
            context.load_cert_chain(config.tls["cert"], config.tls["key"])
            context.verify_mode = ssl.CERT_OPTIONAL  # Basic credentials (the host's) need no certificate
            # The handshake happens in the handler thread, on the first read: a slow client holds up no other.
            sock = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        self._server = _Server(sock, self.authority)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.socket.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> TokenService:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _owner_alive(pid: int, start_time: str) -> bool:
    from pytest_kindreg.docker_engine import process_alive

    return process_alive(pid, start_time)


def serve(argv: Sequence[str]) -> int:
    """``python -m pytest_kindreg.token_service CONFIG SOCKET_FD OWNER_PID OWNER_START``: serve on the
    inherited listening socket until SIGTERM, or until the owner (the run) is gone."""
    config, fd, owner, owner_start = argv
    sock = socket.socket(fileno=int(fd))
    try:
        service = TokenService(Path(config), sock).start()
    except (OSError, ValueError, KeyError) as exc:
        print(f"token service: cannot start: {exc}", file=sys.stderr, flush=True)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("ready", flush=True)
    while not stop.wait(OWNER_POLL_INTERVAL):
        if not _owner_alive(int(owner), owner_start):
            break
    service.close()
    return 0


class TokenServiceProcess:
    """The token service in a child process: started, found ready, stopped (only by its owner).

    Its log (start-up errors, tracebacks, request lines) goes to ``log_path``, never to a pipe
    nobody reads.
    """

    def __init__(self, pid: int, start_time: str, host: str, port: int, log_path: Path) -> None:
        self.pid = pid
        self.start_time = start_time
        self.host = host
        self.port = port
        self.log_path = log_path
        self._popen: subprocess.Popen[str] | None = None

    def __repr__(self) -> str:
        return f"<TokenServiceProcess pid={self.pid} {self.host}:{self.port}>"

    @classmethod
    def spawn(cls, config_path: Path, host: str, owner_pid: int, owner_start: str) -> TokenServiceProcess:
        """Start the service on ``host`` (a port of the kernel's choosing); :meth:`wait_ready` next.
        Its address is known at once: the caller may configure its clients meanwhile."""
        from pytest_kindreg.docker_engine import process_start_time

        log_path = config_path.with_name("token-service.log")
        with listening_socket(host) as sock, open(log_path, "a") as log_file:
            port = int(sock.getsockname()[1])
            popen = subprocess.Popen(
                [
                    *(sys.executable, "-m", "pytest_kindreg.token_service"),
                    *(str(config_path), str(sock.fileno()), str(owner_pid), owner_start),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
                pass_fds=(sock.fileno(),),
                start_new_session=True,  # not killed by a Ctrl-C meant for the run: its teardown stops it
            )
        process = cls(popen.pid, process_start_time(popen.pid), host, port, log_path)
        process._popen = popen
        return process

    def wait_ready(self, timeout: float = 15.0) -> None:
        from pytest_kindreg.errors import RegistryError

        popen = self._popen
        assert popen is not None and popen.stdout is not None
        ready, _, _ = select.select([popen.stdout], [], [], timeout)
        line = popen.stdout.readline() if ready else ""
        popen.stdout.close()
        if line.strip() != "ready":
            self.stop()
            problem = self.log_path.read_text().strip().splitlines()[-1:] or [f"no answer within {timeout:.0f}s"]
            raise RegistryError(
                f"the token service did not start on {self.host}:{self.port} (exit status {popen.returncode}): "
                f"{problem[0]}"
            )

    def alive(self) -> bool:
        from pytest_kindreg.docker_engine import process_alive

        if self._popen is not None:
            return self._popen.poll() is None
        return process_alive(self.pid, self.start_time)

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM), without waiting: :meth:`stop` waits."""
        from pytest_kindreg.docker_engine import process_alive

        if self._popen is not None:
            if self._popen.poll() is None:
                self._popen.terminate()
        elif process_alive(self.pid, self.start_time):
            # Started by another process of the run (xdist): signalled by pid, only if it is still that process.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGTERM)

    def stop(self, timeout: float = 10.0) -> None:
        self.terminate()
        if self._popen is not None:
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait(timeout)
            self._popen = None


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1:]))
