"""``PrivateRegistry``: a ``registry:2`` container with htpasswd or token auth, optional TLS and mTLS.

Usable without pytest::

    with PrivateRegistry() as reg:
        ref = reg.push("busybox:1.36")   # -> "127.0.0.1:<port>/busybox:1.36"

Two identities, in both modes: :attr:`~PrivateRegistry.push_credentials` (the host's: pull and
push) and :attr:`~PrivateRegistry.credentials` (what strategies give the cluster). With
``auth="token"`` the registry runs distribution's token authentication against the plugin's token
service (:mod:`pytest_kindreg.token_service`), where the cluster's identity is read-only and
limited to ``pull_scope``; htpasswd grants every user everything.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import requests
from docker.errors import APIError, ImageNotFound, NotFound
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from pytest_kindreg.certificates import TlsFiles, write_tls_files
from pytest_kindreg.credentials import Credentials, write_private_file
from pytest_kindreg.diagnosis import is_registry_host
from pytest_kindreg.docker_engine import RunIdentity, docker_client
from pytest_kindreg.errors import ImageMissingError, PortInUseError, RegistryError, first_line
from pytest_kindreg.registry_auth import RegistryAuth, fetch_token
from pytest_kindreg.registry_identities import RegistryIdentities
from pytest_kindreg.registry_tokens import (
    TokenSigner,
    issue_access_token,
    key_account,
    key_digest,
    service_account_key_document,
)
from pytest_kindreg.tempdirs import make_temp_dir
from pytest_kindreg.token_service import TOKEN_PATH, TokenServiceConfig, TokenServiceProcess, certificate_account
from pytest_kindreg.tunnel import ClientCertTunnel, request_scope

log = logging.getLogger("pytest_kindreg")

CONTAINER_PORT = 5000
DEFAULT_IMAGE = "registry:2"
DEFAULT_TEST_IMAGE = "kindreg-test/busybox:1.0"  # what examples push; build-images makes it too
AUTH_MODES = ("htpasswd", "token")
DEFAULT_PULL_SCOPE = ("*",)
TUNNEL_TOKEN_REUSE = 200.0  # seconds the tunnel reuses a token: well within its 300 s
TOKEN_ISSUER = "pytest-kindreg token service"  # noqa: S105 - a name, not a secret
BUILD_HINT = (
    "Pull it where a registry is reachable (`docker pull registry:2`), or build it offline "
    "from Debian's docker-registry package with `kindreg build-images`."
)


class _NotReady(Exception):
    pass


def split_reference(reference: str) -> tuple[str, str]:
    """``host/repo:tag`` → (``host/repo``, ``tag``); a digest or missing tag gives ``latest``."""
    name, _, _digest = reference.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :]
    return name, "latest"


def _strip_registry_host(repository: str) -> str:
    first, sep, rest = repository.partition("/")
    if sep and is_registry_host(first):
        return rest
    return repository


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def check_auth_options(auth: str, pull_scope: Sequence[str] | str) -> tuple[str, ...]:
    """The pull scope as a tuple, or ``ValueError`` saying what is wrong with the auth options."""
    if auth not in AUTH_MODES:
        raise ValueError(f"{auth!r} is not a valid registry auth mode. Valid modes: {', '.join(AUTH_MODES)}")
    scope = (pull_scope,) if isinstance(pull_scope, str) else tuple(pull_scope)
    if not scope or not all(isinstance(p, str) and p for p in scope):
        raise ValueError(f"the pull scope must be one or more repository glob patterns, got {pull_scope!r}")
    if scope != DEFAULT_PULL_SCOPE and auth != "token":
        raise ValueError(
            f"the pull scope {list(scope)} needs token auth (--kindreg-registry-auth token, auth='token'): with "
            "htpasswd every user may pull and push every repository"
        )
    return scope


def check_token_listen(address: str | None) -> None:
    """``ValueError`` for a token service address that would listen on every interface."""
    if address is not None and address.strip() in ("", "0.0.0.0", "::", "[::]"):  # noqa: S104 - refused here
        raise ValueError(
            f"the token service address {address!r} would listen on every interface; give one address that the "
            "Docker engine and its containers reach (default: the engine's default bridge gateway)"
        )


def interface_ipv4(name: str) -> str | None:
    """The IPv4 address of a local network interface (e.g. ``docker0``), None if it has none."""
    import fcntl
    import struct

    siocgifaddr = 0x8915
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), siocgifaddr, struct.pack("256s", name[:15].encode()))
        except OSError:
            return None
    return socket.inet_ntoa(packed[20:24])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRegistry:
    """A private registry in Docker, published on 127.0.0.1 only.

    ``tls=True`` serves HTTPS with a throw-away CA whose server certificate covers
    ``localhost``, ``127.0.0.1`` and the container name; ``client_auth=True`` (implies TLS)
    also requires a client certificate signed by that CA. ``htpasswd=False`` turns off
    password auth, for registries where the client certificate is the credential.

    ``auth="token"`` puts distribution's token authentication in front of the same users: the
    registry answers ``401 Bearer realm=…`` and trusts only tokens of the run's token service,
    which grants :attr:`push_credentials` pull and push and every other identity pull on the
    repositories its ``pull_scope`` globs name. ``token_listen`` is the address the token service
    listens on (default: the Docker engine's default bridge gateway, which the engine and every
    container reach); ``token_realm_host`` the host name clients are told to use for it (default:
    the same address; on Docker Desktop, ``host.docker.internal`` with ``token_listen="127.0.0.1"``).
    """

    def __init__(
        self,
        *,
        image: str = DEFAULT_IMAGE,
        name: str | None = None,
        port: int | None = None,
        credentials: Credentials | None = None,
        tls: bool = False,
        client_auth: bool = False,
        htpasswd: bool = True,
        auth: str = "htpasswd",
        pull_scope: Sequence[str] = DEFAULT_PULL_SCOPE,
        token_listen: str | None = None,
        token_realm_host: str | None = None,
        identity: RunIdentity | None = None,
        role: str = "registry",
        ready_timeout: float = 30.0,
        docker: Any = None,
    ) -> None:
        scope = check_auth_options(auth, pull_scope)
        check_token_listen(token_listen)
        self.image = image
        self.identity = identity or RunIdentity()
        self.role = role
        self.name = name or self.identity.name(role)
        self.requested_port = port
        # A registry without password auth has its client certificate as the only credential: in
        # token mode the realm identifies the cluster by that certificate (and the host's push
        # identity, which the tunnel uses, is its only password user); without a certificate
        # either, there is no auth at all.
        self.auth = auth if (htpasswd or client_auth) else "none"
        self.pull_scope = scope
        self._password_auth = htpasswd
        self._identities: RegistryIdentities | None = (
            RegistryIdentities.random(scope, pull=credentials) if htpasswd or self.auth == "token" else None
        )
        self._identities_mtime = 0.0
        self.tls = tls or client_auth
        self.client_auth = client_auth
        self.ready_timeout = ready_timeout
        self._docker = docker
        self._container: Any = None
        self._creating = False  # inside containers.run: an interrupt may leave a container we hold no handle to
        self._port: int | None = None
        self._reserved_port: int | None = None  # prepare(): the port start() will try first
        self._network: str | None = None  # prepare(): a network the container joins when created
        self._workdir: Path | None = None
        self._tls_files: TlsFiles | None = None
        self._tunnel: ClientCertTunnel | None = None
        self._token_listen = token_listen
        self._token_realm_host = token_realm_host
        self._token_service: TokenServiceProcess | None = None
        self._tunnel_tokens: dict[str | None, tuple[str, float]] = {}  # scope -> (token, reuse until)
        self._local_tags: set[str] = set()
        self._lock = threading.RLock()

    # -- identity ---------------------------------------------------------------------------
    @property
    def token_auth(self) -> bool:
        """Whether the registry runs token authentication (``auth="token"`` with password users)."""
        return self.auth == "token"

    @property
    def identities(self) -> RegistryIdentities | None:
        """Every user of the registry; re-read when another process sharing it changed them."""
        path = self._workdir / "credentials.json" if self._workdir is not None else None
        if self._identities is not None and path is not None:
            with contextlib.suppress(FileNotFoundError):
                mtime = path.stat().st_mtime
                if mtime != self._identities_mtime:
                    self._identities = RegistryIdentities.from_json(path.read_text())
                    self._identities_mtime = mtime
        return self._identities

    @property
    def credentials(self) -> Credentials | None:
        """The cluster's identity: what strategies give nodes and pods (read-only in token mode).
        None for a registry without password auth (its client certificate is the credential)."""
        identities = self.identities
        return identities.pull if identities is not None and self._password_auth else None

    @property
    def push_credentials(self) -> Credentials | None:
        """The host's identity: pushes (and the plugin's own reads) use it. It may push in both modes."""
        identities = self.identities
        return identities.push if identities is not None else None

    def __repr__(self) -> str:
        state = f"host={self.host!r}" if self._port else "not started"
        user = f" username={self.username!r}" if self.credentials else ""
        flags = f"auth={self.auth} tls={self.tls} client_auth={self.client_auth}"
        return f"<PrivateRegistry {self.name} {state}{user} {flags}>"

    __str__ = __repr__

    @property
    def port(self) -> int:
        """The published port; after :meth:`prepare`, the one :meth:`start` will publish on."""
        port = self._port or self._reserved_port
        if port is None:
            raise RegistryError(f"registry {self.name} is not started")
        return port

    def prepare(self, network: str | None = None) -> None:
        """Before :meth:`start`: make sure the image is there and pick the port, so that
        :attr:`host` is known while other work (a cluster's creation) runs beside the start.
        If ``network`` exists now, the container is created on it (no :meth:`connect` needed).

        If another process takes that port meanwhile, start() publishes on another one and
        :attr:`host` changes: read it again once started. In token mode the signing key exists
        from here on, so access tokens can be issued (e.g. into nodes) while the registry starts.
        """
        with self._lock:
            if self._docker is None:
                self._docker = docker_client()
            self._ensure_image()
            self._ensure_workdir()
            if self._port is None:
                self._reserved_port = self.requested_port or _free_port()
            if network is not None:
                try:
                    self._docker.networks.get(network)
                    self._network = network
                except NotFound:
                    self._network = None  # created later (by kind): connect() once it exists

    @property
    def host(self) -> str:
        """Host-side address, ``127.0.0.1:<port>``: push here, and pods may use it as image host."""
        return f"127.0.0.1:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def network_endpoint(self) -> str:
        """How containers on a shared Docker network reach it: ``<scheme>://<name>:5000``."""
        return f"{self.scheme}://{self.name}:{CONTAINER_PORT}"

    @property
    def username(self) -> str:
        if self.credentials is None:
            raise RegistryError(f"registry {self.name} has no password auth (htpasswd=False)")
        return self.credentials.username

    @property
    def password(self) -> str:
        if self.credentials is None:
            raise RegistryError(f"registry {self.name} has no password auth (htpasswd=False)")
        return self.credentials.password

    @property
    def tls_files(self) -> TlsFiles | None:
        return self._tls_files

    @property
    def container(self) -> Any:
        return self._container

    @property
    def docker(self) -> Any:
        """The docker SDK client this registry uses."""
        if self._docker is None:
            self._docker = docker_client()
        return self._docker

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise RegistryError(f"registry {self.name} is not started")
        return self._workdir

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> PrivateRegistry:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> PrivateRegistry:
        with self._lock:
            if self._container is not None:
                return self
            try:
                self._start()
            except BaseException:
                # Interrupted inside containers.run (created, not yet returned): the container
                # exists but we hold no handle, so find it by name before removing our files.
                if self._container is None and self._docker is not None and self._creating:
                    self._container = self._wait_for_own_container()
                self.stop()
                raise
            finally:
                self._creating = False
            return self

    def _wait_for_own_container(self, settle: float = 3.0) -> Any:
        """Our container, if the engine creates it at all: an interrupted ``create`` request
        goes on in the engine after the client stopped waiting, so look for a few seconds."""
        deadline = time.monotonic() + settle
        while True:
            container = self._own_container()
            if container is not None or time.monotonic() > deadline:
                return container
            time.sleep(0.1)

    def _start(self) -> None:
        if self._docker is None:
            self._docker = docker_client()
        self._ensure_image()
        self._ensure_workdir()
        assert self._workdir is not None
        env = {
            "REGISTRY_HTTP_SECRET": secrets.token_hex(16),
            # Locations relative to the request, so pushes through the mTLS tunnel stay on it.
            "REGISTRY_HTTP_RELATIVEURLS": "true",
            "REGISTRY_STORAGE_DELETE_ENABLED": "true",
        }
        volumes: dict[str, dict[str, str]] = {}
        if self.tls:
            names = ["localhost", "127.0.0.1", self.name]
            if self.token_auth and self.client_auth:  # the realm serves HTTPS with the same certificate
                names += [self._token_listen_address(), *([self._token_realm_host] if self._token_realm_host else [])]
            self._tls_files = write_tls_files(self._workdir / "certs", names, self.client_auth)
            env |= {
                "REGISTRY_HTTP_TLS_CERTIFICATE": "/certs/server.crt",
                "REGISTRY_HTTP_TLS_KEY": "/certs/server.key",
            }
            if self.client_auth:
                env["REGISTRY_HTTP_TLS_CLIENTCAS"] = "[/certs/ca.crt]"
            volumes[str(self._workdir / "certs")] = {"bind": "/certs", "mode": "ro"}
        if self._identities is not None:
            self._write_identities(self._identities)
        if self.token_auth:
            realm = self._spawn_token_service()
            bundle = self.workdir / "token" / "bundle.pem"
            env |= {
                "REGISTRY_AUTH": "token",
                "REGISTRY_AUTH_TOKEN_REALM": realm,
                "REGISTRY_AUTH_TOKEN_SERVICE": self.name,
                "REGISTRY_AUTH_TOKEN_ISSUER": TOKEN_ISSUER,
                "REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE": "/token/bundle.pem",
            }
            # Only the CA the registry trusts is mounted, never the signing key.
            volumes[str(bundle)] = {"bind": "/token/bundle.pem", "mode": "ro"}
        elif self._identities is not None:
            env |= {
                "REGISTRY_AUTH": "htpasswd",
                "REGISTRY_AUTH_HTPASSWD_REALM": "pytest-kindreg",
                "REGISTRY_AUTH_HTPASSWD_PATH": "/auth/htpasswd",
            }
            volumes[str(self._workdir / "auth")] = {"bind": "/auth", "mode": "ro"}
        self._run_container(env, volumes)
        if self._token_service is not None:
            self._token_service.wait_ready()
        self._open_tunnel()
        self.wait_ready()
        log.info("registry %s ready at %s", self.name, self.host)

    def _token_listen_address(self) -> str:
        """Where the token service listens: given, else the default bridge's gateway, an address of
        this host that the engine (which pushes) and kind's nodes (which pull) both reach."""
        if self._token_listen:
            return self._token_listen
        try:
            attrs = self._docker.networks.get("bridge").attrs
        except NotFound:
            attrs = {}
        for config in (attrs.get("IPAM") or {}).get("Config") or []:
            gateway = config.get("Gateway", "")
            if gateway and ":" not in gateway:
                return str(gateway)
        # Older engines leave the default bridge's gateway out of IPAM: it is the bridge's own address.
        bridge = (attrs.get("Options") or {}).get("com.docker.network.bridge.name")
        address = interface_ipv4(bridge) if bridge else None
        if address:
            return address
        raise RegistryError(
            "token mode needs an address of this host that the Docker engine and its containers both reach, and "
            "the engine has no default bridge (docker0) with an IPv4 gateway; pass token_listen= (and "
            "token_realm_host= if clients must use another name for it)"
        )

    @property
    def realm(self) -> str | None:
        """The token service's URL as clients see it (token mode), else None."""
        service = self._token_service
        if service is None:
            return None
        scheme = "https" if self.client_auth else "http"
        return f"{scheme}://{self._token_realm_host or service.host}:{service.port}{TOKEN_PATH}"

    def _realm_url(self, realm: str) -> str:
        """Where this process reaches the realm: its listen address when clients use another name."""
        service = self._token_service
        if service is None or not self._token_realm_host:
            return realm
        return realm.replace(f"//{self._token_realm_host}:", f"//{service.host}:", 1)

    def _ensure_workdir(self) -> None:
        """The registry's files (0700), and in token mode its token signing key."""
        if self._workdir is None:
            self._workdir = make_temp_dir(self.identity, self.name)
        if self.token_auth and not TokenSigner.bundle_path(self._workdir / "token").exists():
            TokenSigner.create().write(self._workdir / "token")

    def _spawn_token_service(self) -> str:
        """Start the token service beside the registry container (it is ready a fraction of a second
        later); its realm URL is known at once. :meth:`_start` waits for it before the probe."""
        from pytest_kindreg.docker_engine import process_start_time

        self._write_token_config()
        host = self._token_listen_address()
        try:
            self._token_service = TokenServiceProcess.spawn(
                self.workdir / "token" / "config.json", host, self.identity.pid, process_start_time(self.identity.pid)
            )
        except OSError as exc:
            raise RegistryError(
                f"the token service cannot listen on {host}: {exc.strerror or exc}; on Docker Desktop or colima "
                "pass token_listen='127.0.0.1' and token_realm_host='host.docker.internal' "
                "(--kindreg-token-listen / --kindreg-token-realm-host)"
            ) from None
        realm = self.realm
        assert realm is not None
        return realm

    def _write_token_config(self) -> None:
        identities = self._identities
        assert identities is not None and self._workdir is not None
        signer_dir = self._workdir / "token"
        TokenServiceConfig(
            issuer=TOKEN_ISSUER,
            service=self.name,
            signer_dir=str(signer_dir),
            htpasswd=str(self._workdir / "auth" / "htpasswd"),
            acl=identities.acl(self._certificate_accounts()).to_list(),
            service_account_keys=dict(identities.service_account_keys),
            tls=(
                {"cert": str(files.server_cert), "key": str(files.server_key), "client_ca": str(files.ca)}
                if self.client_auth and (files := self._tls_files) is not None
                else None
            ),
        ).write(signer_dir / "config.json")

    def _certificate_accounts(self) -> list[str]:
        """The token service's account for the cluster's client certificate (client-auth registries)."""
        if not self.client_auth or self._tls_files is None or self._tls_files.client_cert is None:
            return []
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        cert = x509.load_pem_x509_certificate(self._tls_files.client_cert.read_bytes())
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return [certificate_account(str(names[0].value))] if names else []

    def _tunnel_authorization(self, request_line: bytes) -> str | None:
        """What the client-certificate tunnel sends the registry for one request of the host's:
        its push identity (Basic), or in token mode a token for the request's scope."""
        push = self.push_credentials
        if push is None:
            return None
        if not self.token_auth:
            return "Basic " + push.basic_auth()
        scope = request_scope(request_line)
        with self._lock:
            cached = self._tunnel_tokens.get(scope)
            if cached is not None and cached[1] > time.monotonic():
                return "Bearer " + cached[0]
        realm = self.realm
        assert realm is not None
        token = fetch_token(self._realm_url(realm), push, self.name, [scope] if scope else [], **self.tls_kwargs())
        with self._lock:
            self._tunnel_tokens[scope] = (token, time.monotonic() + TUNNEL_TOKEN_REUSE)
        return "Bearer " + token

    def _open_tunnel(self) -> None:
        """With client-cert auth, the loopback tunnel the host pushes through (dockerd sends no cert)."""
        if not self.client_auth:
            return
        files = self._tls_files
        assert files is not None and files.client_cert is not None and files.client_key is not None
        # The tunnel checks its own secret, then sends the registry's current credentials (re-read
        # after a rotation) in its place.
        self._tunnel = ClientCertTunnel(
            ("127.0.0.1", self.port),
            files.ca,
            files.client_cert,
            files.client_key,
            upstream_authorization=self._tunnel_authorization,
        )

    # -- sharing between processes ------------------------------------------------------------
    def export_state(self) -> dict[str, Any]:
        """What another process needs to :meth:`attach` (no secrets: those stay in 0600 files)."""
        return {
            "image": self.image,
            "name": self.name,
            "role": self.role,
            "port": self.port,
            "tls": self.tls,
            "client_auth": self.client_auth,
            "htpasswd": self._password_auth,
            "auth": self.auth,
            "pull_scope": list(self.pull_scope),
            "token_service": (
                {
                    "pid": self._token_service.pid,
                    "start_time": self._token_service.start_time,
                    "host": self._token_service.host,
                    "port": self._token_service.port,
                    "realm_host": self._token_realm_host,
                }
                if self._token_service is not None
                else None
            ),
            "workdir": str(self.workdir),
            "run_id": self.identity.run_id,
            "pid": self.identity.pid,
        }

    @classmethod
    def attach(cls, state: dict[str, Any], docker: Any = None) -> PrivateRegistry:
        """A handle on a registry another process started (e.g. the first xdist worker)."""
        registry = cls(
            image=state["image"],
            name=state["name"],
            role=state["role"],
            tls=state["tls"],
            client_auth=state["client_auth"],
            htpasswd=state["htpasswd"],
            auth="htpasswd" if state["auth"] == "none" else state["auth"],
            pull_scope=state["pull_scope"],
            identity=RunIdentity(run_id=state["run_id"], pid=state["pid"]),
            docker=docker,
        )
        service = state.get("token_service")
        if service is not None:
            registry._token_realm_host = service["realm_host"]
            registry._token_service = TokenServiceProcess(
                service["pid"],
                service["start_time"],
                service["host"],
                service["port"],
                Path(state["workdir"]) / "token" / "token-service.log",
            )
        registry._docker = docker or docker_client()
        registry._port = int(state["port"])
        registry._workdir = Path(state["workdir"])
        try:
            registry._container = registry._docker.containers.get(registry.name)
        except NotFound as exc:
            raise RegistryError(f"shared registry container {registry.name} no longer exists") from exc
        if registry.tls:
            registry._tls_files = TlsFiles.in_dir(registry._workdir / "certs", registry.client_auth)
        registry._open_tunnel()
        return registry

    def detach(self) -> None:
        """Let go of a shared registry without stopping it (another process owns its end)."""
        with self._lock:
            self._release_local()
            self._container = None
            self._token_service = None

    def _release_local(self) -> None:
        """Close this process's tunnel and remove the local tags its pushes made."""
        if self._tunnel is not None:
            self._tunnel.close()
            self._tunnel = None
        for reference in self._local_tags:
            # Only the tag: the image itself stays with whatever else references it.
            with contextlib.suppress(Exception):
                self._docker.images.remove(reference, noprune=True)
        self._local_tags.clear()

    def _ensure_image(self) -> None:
        try:
            self._docker.images.get(self.image)
        except ImageNotFound:
            try:
                repository, tag = split_reference(self.image)
                self._docker.images.pull(repository, tag=tag)
            except Exception as exc:
                # The pull's own error is one line of context, not a chain of tracebacks.
                reason = first_line(getattr(exc, "explanation", None) or exc, 160)
                raise ImageMissingError(self.image, f"(pull failed: {reason}) {BUILD_HINT}") from None

    def _run_container(self, env: dict[str, str], volumes: dict[str, dict[str, str]]) -> None:
        attempts = 1 if self.requested_port else 3
        for attempt in range(attempts):
            # The reserved port gets one try; a retry picks a new free port. It stays what
            # :attr:`port` says until another is published: others read it meanwhile.
            port = self.requested_port or (self._reserved_port if attempt == 0 else None) or _free_port()
            if self.requested_port and not _port_free(port):
                raise PortInUseError(port)
            try:
                self._creating = True
                # An explicit host port (not Docker's random one) survives a container restart.
                self._container = self._docker.containers.run(
                    self.image,
                    name=self.name,
                    detach=True,
                    environment=env,
                    volumes=volumes,
                    ports={f"{CONTAINER_PORT}/tcp": ("127.0.0.1", port)},
                    labels=self.identity.labels(self.role),
                    restart_policy={"Name": "no"},
                    **({"network": self._network} if self._network else {}),
                )
                self._port = port
                self._reserved_port = None
                return
            except APIError as exc:
                text = str(exc)
                leftover = self._own_container()
                if leftover is not None:
                    leftover.remove(force=True, v=True)
                if "port is already allocated" in text or "address already in use" in text:
                    if self.requested_port or attempt == attempts - 1:
                        raise PortInUseError(port) from exc
                    continue
                if "Conflict" in text and "already in use" in text:
                    raise RegistryError(
                        f"a container named {self.name!r} already exists; remove it "
                        f"(`docker rm -f {self.name}`) or run `kindreg cleanup`"
                    ) from exc
                raise RegistryError(f"could not start registry container {self.name}: {exc}") from exc

    def _own_container(self) -> Any:
        with contextlib.suppress(Exception):
            container = self._find_container()
            if container is not None and container.labels.get("io.kindreg.run") == self.identity.run_id:
                return container
        return None

    def _find_container(self) -> Any:
        try:
            return self._docker.containers.get(self.name)
        except NotFound:
            return None

    def stop(self) -> None:
        """Remove the container, its volume, the tunnel, the token service and every file this
        registry wrote."""
        with self._lock:
            self._release_local()
            if self._token_service is not None:
                self._token_service.terminate()  # it ends while the container is removed
            if self._container is not None:
                with contextlib.suppress(NotFound):
                    self._container.remove(force=True, v=True)
                self._container = None
            if self._token_service is not None:
                self._token_service.stop()
                self._token_service = None
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None
            self._port = None
            self._reserved_port = None

    # -- health -----------------------------------------------------------------------------
    def tls_kwargs(self) -> dict[str, Any]:
        """``verify``/``cert`` for requests: the registry's CA and client pair (if any).

        Passed per request: a session's ``verify`` loses to REQUESTS_CA_BUNDLE in the environment.
        """
        files = self._tls_files
        if files is None:
            return {}
        kwargs: dict[str, Any] = {"verify": str(files.ca)}
        if files.client_pair is not None:
            kwargs["cert"] = files.client_pair
        return kwargs

    def auth_for(self, credentials: Credentials | None) -> Any:
        """requests' ``auth`` for this registry: Basic credentials, or (token mode) the Bearer flow
        through the realm, as registry clients do it."""
        if credentials is None:
            return None
        if self.token_auth:
            return RegistryAuth(credentials, self._realm_url, timeout=10, **self.tls_kwargs())
        return (credentials.username, credentials.password)

    def get(
        self,
        path: str,
        *,
        authenticated: bool = True,
        timeout: float = 10.0,
        credentials: Credentials | None = None,
    ) -> requests.Response:
        """GET ``path`` of the registry API (e.g. ``/v2/``) as the host's identity (or the given one)."""
        creds = (credentials or self.push_credentials) if authenticated else None
        return requests.get(f"{self.url}{path}", auth=self.auth_for(creds), timeout=timeout, **self.tls_kwargs())

    def _probe(self) -> None:
        authed = self.get("/v2/", timeout=5)
        if authed.status_code != 200:
            raise _NotReady(f"authenticated GET /v2/ answered {authed.status_code}")
        if self.credentials is not None:
            anonymous = self.get("/v2/", authenticated=False, timeout=5)
            if anonymous.status_code != 401:
                raise _NotReady(f"anonymous GET /v2/ answered {anonymous.status_code}, expected 401")
            challenge = anonymous.headers.get("WWW-Authenticate", "")
            expected = f'Bearer realm="{self.realm}"' if self.token_auth else "Basic "
            if not challenge.startswith(expected):
                raise _NotReady(f"anonymous GET /v2/ challenged with {challenge!r}, expected {expected}…")

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait, within one deadline, for authenticated /v2/ → 200 and anonymous → 401."""
        deadline = self.ready_timeout if timeout is None else timeout
        last_error: list[BaseException] = []

        def attempt() -> None:
            try:
                self._probe()
            except (requests.RequestException, _NotReady) as exc:
                last_error[:] = [exc]
                self._fail_if_exited()
                raise _NotReady(str(exc)) from exc

        try:
            for try_ in Retrying(
                stop=stop_after_delay(deadline),
                wait=wait_exponential(multiplier=0.02, max=0.5),
                retry=retry_if_exception_type(_NotReady),
                reraise=False,
            ):
                with try_:
                    attempt()
        except RetryError as exc:
            last = f"{type(last_error[0]).__name__}: {last_error[0]}" if last_error else "no answer"
            raise RegistryError(
                f"registry {self.name} at {self.url} was not ready within {deadline:.0f}s: waited for an "
                f"authenticated GET /v2/ to answer 200 and an anonymous one 401; last error: {last}\n"
                f"--- container log (tail) ---\n{self.logs_tail()}"
            ) from exc

    def _fail_if_exited(self) -> None:
        if self._container is None:
            return
        try:
            self._container.reload()
        except NotFound as exc:
            raise RegistryError(f"registry container {self.name} disappeared while starting") from exc
        if self._container.status in ("exited", "dead"):
            raise RegistryError(
                f"registry container {self.name} exited while starting "
                f"(exit code {self._container.attrs['State'].get('ExitCode')})\n"
                f"--- container log (tail) ---\n{self.logs_tail()}"
            )

    def logs_tail(self, lines: int = 30) -> str:
        if self._container is None:
            return "(no container)"
        try:
            return str(self._container.logs(tail=lines).decode(errors="replace"))
        except Exception as exc:
            return f"(logs unavailable: {exc})"

    def ensure_running(self) -> None:
        """Restart a registry container that died (same port and storage); clear error if removed."""
        with self._lock:
            if self._container is None:
                raise RegistryError(f"registry {self.name} is not started")
            try:
                self._container.reload()
            except NotFound as exc:
                raise RegistryError(
                    f"registry container {self.name} was removed during the run; the images pushed to it "
                    "are gone. Do not remove kindreg-* containers while tests run."
                ) from exc
            if self._container.status != "running":
                log.warning("registry %s was %s; restarting it", self.name, self._container.status)
                self._container.start()
                self.wait_ready()
            service = self._token_service
            if service is not None and not service.alive():
                raise RegistryError(
                    f"the token service of registry {self.name} (pid {service.pid}) has exited, so no client can get "
                    f"a token; its log: {service.log_path}"
                )

    # -- credentials ------------------------------------------------------------------------
    def _write_identities(self, identities: RegistryIdentities) -> None:
        """The record every process of the run reads (0600, outside what the container mounts), the
        htpasswd file (registry or token service), and the token service's ACL."""
        record = write_private_file(self.workdir / ".credentials.new", identities.to_json())
        record.replace(self.workdir / "credentials.json")
        self._identities = identities
        self._identities_mtime = (self.workdir / "credentials.json").stat().st_mtime
        auth = self.workdir / "auth"
        auth.mkdir(mode=0o700, exist_ok=True)
        lines = "".join(c.htpasswd_line() + "\n" for c in identities.htpasswd_users())
        tmp = write_private_file(auth / ".htpasswd.new", lines)
        # A rename gives the file a new mtime, which is what makes the registry re-read it.
        tmp.replace(auth / "htpasswd")
        if self._token_service is not None or (self.token_auth and (self.workdir / "token").exists()):
            self._write_token_config()

    def _require_identities(self) -> RegistryIdentities:
        identities = self.identities
        if identities is None:
            raise RegistryError(f"registry {self.name} has no password auth (its client certificate is the credential)")
        return identities

    def _require_token_mode(self, what: str) -> None:
        if not self.token_auth:
            raise RegistryError(
                f"{what} needs a registry in token mode (auth='token', --kindreg-registry-auth token); "
                f"registry {self.name} uses {self.auth}"
            )

    def rotate_credentials(self, new: Credentials | None = None) -> Credentials:
        """Replace the cluster's identity; the old credentials stop working once this returns
        (the host's push identity stays)."""
        with self._lock:
            identities = self._require_identities()
            old = identities.pull
            self._write_identities(identities.with_pull(new or Credentials.random()))
            self.wait_ready()
            current = self.credentials
            assert current is not None
            if old != current:
                if self.get("/v2/", timeout=5, credentials=current).status_code != 200:
                    raise RegistryError(f"registry {self.name} does not accept the new credentials after rotation")
                if self.get("/v2/", timeout=5, credentials=old).status_code != 401:
                    raise RegistryError(f"registry {self.name} still accepts the old credentials after rotation")
            return current

    def add_identity(self, prefix: str = "kindreg-id", pull_scope: Sequence[str] | None = None) -> Credentials:
        """A further read-only identity (e.g. one ServiceAccount's own registry user), allowed to
        pull ``pull_scope`` (default: the registry's). In htpasswd mode it can do what every user can."""
        scope = tuple(pull_scope) if pull_scope is not None else self.pull_scope
        if scope != self.pull_scope and not self.token_auth:
            raise RegistryError(f"a pull_scope of its own needs token mode; registry {self.name} uses {self.auth}")
        with self._lock:
            credentials = Credentials.random(prefix)
            self._write_identities(self._require_identities().with_extra(credentials, scope))
            return credentials

    def remove_identities(self, usernames: Sequence[str]) -> None:
        """Forget identities made by :meth:`add_identity`; their credentials stop working."""
        with self._lock:
            self._write_identities(self._require_identities().without_extra(usernames))

    def issue_access_token(self, ttl: float = 3600.0) -> Credentials:
        """``Credentials("oauth2accesstoken", <token>)``, read-only (the cluster's scope) and valid for
        ``ttl`` seconds, checked by the token service; a registry token traded for it never outlives it."""
        self._require_token_mode("issue_access_token()")
        signer = TokenSigner.load(self.workdir / "token")
        return issue_access_token(signer, issuer=TOKEN_ISSUER, service=self.name, subject=self.name, ttl=ttl)

    def issue_service_account_key(self, name: str = "kindreg-puller") -> Credentials:
        """``Credentials("_json_key", <a JSON key document>)``, read-only (the cluster's scope). The
        token service checks the whole document, not its first 72 bytes as bcrypt would."""
        self._require_token_mode("issue_service_account_key()")
        document = service_account_key_document(self.name, name)
        with self._lock:
            identities = self._require_identities()
            self._write_identities(identities.with_service_account_key(key_digest(document), key_account(document)))
        return Credentials("_json_key", document)

    def granted_actions(self, repository: str, credentials: Credentials | None = None) -> list[str]:
        """What the token service grants ``credentials`` (default: the cluster's) on ``repository``,
        of pull and push (token mode)."""
        self._require_token_mode("granted_actions()")
        realm = self.realm
        assert realm is not None
        token = fetch_token(
            self._realm_url(realm),
            credentials or self.credentials,  # None with a client certificate: the certificate speaks
            self.name,
            [f"repository:{repository}:pull,push"],
            timeout=10,
            **self.tls_kwargs(),
        )
        import jwt

        claims = jwt.decode(token, options={"verify_signature": False})  # our own token, read not checked
        return sorted({a for entry in claims.get("access") or [] for a in entry.get("actions") or []})

    # -- images -----------------------------------------------------------------------------
    @property
    def _push_host(self) -> str:
        return self._tunnel.address if self._tunnel is not None else self.host

    @property
    def tunnel_address(self) -> str | None:
        """``127.0.0.1:<port>`` of this process's client-certificate tunnel, None without one."""
        return self._tunnel.address if self._tunnel is not None else None

    def _auth_config(self, credentials: Credentials | None = None) -> dict[str, str] | None:
        # Through the tunnel, the daemon authenticates to the tunnel; the tunnel to the registry.
        if self._tunnel is not None:
            return self._tunnel.credentials.as_docker_auth_config()
        creds = credentials or self.push_credentials
        return creds.as_docker_auth_config() if creds else None

    def push(
        self,
        source: str,
        repository: str | None = None,
        tag: str | None = None,
        *,
        credentials: Credentials | None = None,
    ) -> str:
        """Tag local image ``source`` into this registry and push it as the host's identity (or as
        ``credentials``: in token mode, the cluster's identity is refused, which proves it read-only).

        Returns the pushed reference, ``127.0.0.1:<port>/<repository>:<tag>``.
        """
        self.ensure_running()
        try:
            image = self._docker.images.get(source)
        except ImageNotFound as exc:
            raise ImageMissingError(source, "Build or pull it first (`docker image ls` lists local images).") from exc
        src_repo, src_tag = split_reference(source)
        repository = repository or _strip_registry_host(src_repo)
        tag = tag or src_tag
        target = f"{self._push_host}/{repository}"
        image.tag(target, tag)
        try:
            for line in self._docker.images.push(
                target, tag=tag, auth_config=self._auth_config(credentials), stream=True, decode=True
            ):
                if "error" in line:
                    raise RegistryError(
                        f"push of {source} to {self.name} failed: {line['error']}"
                        + self._refusal_detail(repository, credentials, "push")
                    )
        finally:
            if self._tunnel is not None or credentials is not None:
                with contextlib.suppress(Exception):
                    self._docker.images.remove(f"{target}:{tag}", noprune=True)
        reference = f"{self.host}/{repository}:{tag}"
        image.tag(f"{self.host}/{repository}", tag)
        self._local_tags.add(reference)
        return reference

    def _refusal_detail(self, repository: str, credentials: Credentials | None, action: str) -> str:
        """In token mode, which of pull and push the token service grants the identity on the
        repository, so that a refusal names the missing action."""
        if not self.token_auth:
            return ""
        creds = credentials or self.push_credentials
        assert creds is not None
        try:
            granted = self.granted_actions(repository, creds)
        except (requests.RequestException, RegistryError, KeyError, ValueError):
            return ""
        if action in granted:
            return ""
        shown = ", ".join(granted) if granted else "nothing"
        return (
            f" (token mode: {creds.username} is granted {shown} on repository:{repository}; the {action!r} action "
            f"is missing{', this identity is read-only' if action == 'push' and 'pull' in granted else ''})"
        )

    def pull(self, reference: str, *, credentials: Credentials | None = None) -> Any:
        """Pull ``reference`` (an image of this registry) to the host Docker as the host's identity
        (or as ``credentials``)."""
        self.ensure_running()
        repository, tag = split_reference(reference)
        path = repository.split("/", 1)[1] if repository.startswith(self.host + "/") else repository
        source = f"{self._push_host}/{path}"
        try:
            image = self._docker.images.pull(source, tag=tag, auth_config=self._auth_config(credentials))
        except APIError as exc:
            raise RegistryError(
                f"pull of {reference} from {self.name} failed: {exc.explanation or exc}"
                + self._refusal_detail(path, credentials, "pull")
            ) from exc
        self._local_tags.add(f"{self.host}/{path}:{tag}")
        if source != f"{self.host}/{path}":
            image.tag(f"{self.host}/{path}", tag)
            with contextlib.suppress(Exception):
                self._docker.images.remove(f"{source}:{tag}", noprune=True)
            image.reload()  # its tags as they are now, not as the tunnel pull left them
        return image

    def tags(self, repository: str) -> list[str]:
        """The tags of a repository, read through the registry API as the host's identity."""
        resp = self.get(f"/v2/{repository}/tags/list")
        resp.raise_for_status()
        return list(resp.json().get("tags") or [])

    def catalog(self) -> Iterator[str]:
        resp = self.get("/v2/_catalog")
        resp.raise_for_status()
        yield from resp.json().get("repositories") or []

    # -- networks ---------------------------------------------------------------------------
    def connect(self, network: str) -> None:
        """Join a Docker network (e.g. kind's), where nodes reach it as ``<name>:5000``."""
        with self._lock:
            self._container.reload()
            if network in self._container.attrs["NetworkSettings"]["Networks"]:
                return
            try:
                self._docker.networks.get(network).connect(self._container)
            except NotFound as exc:
                raise RegistryError(f"Docker network {network!r} does not exist") from exc
