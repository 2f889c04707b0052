"""Docker engine access, and the identity (labels, names) of everything one run creates."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException

from pytest_kindreg.credentials import write_private_file
from pytest_kindreg.errors import DockerUnavailableError, first_line

LABEL_MANAGED = "io.kindreg.managed"
LABEL_RUN = "io.kindreg.run"
LABEL_PID = "io.kindreg.pid"
LABEL_PID_START = "io.kindreg.pid-start"
LABEL_HOST = "io.kindreg.host"
LABEL_ROLE = "io.kindreg.role"


def process_start_time(pid: int) -> str:
    """The start time of a process (field 22 of /proc/PID/stat) so a reused PID is told apart."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return ""
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    return stat.rpartition(")")[2].split()[19]


def process_alive(pid: int, start_time: str) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not start_time or process_start_time(pid) == start_time


@dataclass(frozen=True)
class RunIdentity:
    """Who created a resource: every container, network and cluster of a run carries it."""

    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    pid: int = field(default_factory=os.getpid)

    @property
    def prefix(self) -> str:
        return f"kindreg-{self.run_id}"

    def name(self, role: str) -> str:
        return f"{self.prefix}-{role}".replace("_", "-")

    def labels(self, role: str = "") -> dict[str, str]:
        labels = {
            LABEL_MANAGED: "true",
            LABEL_RUN: self.run_id,
            LABEL_PID: str(self.pid),
            LABEL_PID_START: process_start_time(self.pid),
            LABEL_HOST: socket.gethostname(),
        }
        if role:
            labels[LABEL_ROLE] = role
        return labels


def docker_config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The docker CLI's configuration directory: ``$DOCKER_CONFIG``, else ``~/.docker``."""
    env = os.environ if environ is None else environ
    configured = env.get("DOCKER_CONFIG")
    return Path(configured).absolute() if configured else Path(env.get("HOME") or Path.home()) / ".docker"


def _config_file(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def current_context_name(environ: Mapping[str, str] | None = None) -> str:
    """The docker CLI's context: ``default`` under DOCKER_HOST, else DOCKER_CONTEXT, else
    config.json's ``currentContext``, else ``default``."""
    env = os.environ if environ is None else environ
    if env.get("DOCKER_HOST"):
        return "default"
    return env.get("DOCKER_CONTEXT") or str(_config_file(docker_config_dir(env)).get("currentContext") or "default")


@dataclass(frozen=True)
class DockerEndpoint:
    """A docker context's engine endpoint, from ``contexts/meta/<sha256(name)>/meta.json``."""

    host: str
    skip_tls_verify: bool = False
    tls_dir: Path | None = None  # ca.pem, cert.pem, key.pem under contexts/tls/<sha256(name)>/docker

    def tls_config(self) -> Any:
        if self.tls_dir is None:
            return False
        cert, key, ca = (self.tls_dir / f for f in ("cert.pem", "key.pem", "ca.pem"))
        return docker.TLSConfig(
            client_cert=(str(cert), str(key)) if cert.is_file() and key.is_file() else None,
            ca_cert=str(ca) if ca.is_file() and not self.skip_tls_verify else None,
            verify=not self.skip_tls_verify,
        )


def context_endpoint(environ: Mapping[str, str] | None = None) -> DockerEndpoint | None:
    """The current docker context's engine, or None for ``default`` (DOCKER_HOST or the default socket)."""
    env = os.environ if environ is None else environ
    name = current_context_name(env)
    if name == "default":
        return None
    contexts = docker_config_dir(env) / "contexts"
    context_id = hashlib.sha256(name.encode()).hexdigest()
    meta = contexts / "meta" / context_id / "meta.json"
    try:
        endpoint = json.loads(meta.read_text())["Endpoints"]["docker"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DockerUnavailableError(f"docker context {name!r} is current but unreadable ({meta}: {exc})") from exc
    tls_dir = contexts / "tls" / context_id / "docker"
    return DockerEndpoint(
        host=str(endpoint["Host"]),
        skip_tls_verify=bool(endpoint.get("SkipTLSVerify", False)),
        tls_dir=tls_dir if tls_dir.is_dir() else None,
    )


def private_docker_env(directory: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``DOCKER_CONFIG`` for docker CLIs the plugin runs (``kind load``): the user's engine, never
    the user's registry credentials.

    ``config.json`` gets only ``currentContext`` (never ``auths``, ``credsStore`` or
    ``credHelpers``), and ``contexts`` links to the user's context store, so the CLI reaches the
    engine ``kind create`` and ``docker exec`` reach. That store holds engine endpoints and, for
    TLS endpoints, the client certificates for the engine: access the user already gave those
    commands, not registry credentials. It is linked, not copied.
    """
    user_dir = docker_config_dir(environ)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    config: dict[str, str] = {}
    current = _config_file(user_dir).get("currentContext")
    if isinstance(current, str) and current:
        config["currentContext"] = current
    write_private_file(directory / "config.json", json.dumps(config))
    link = directory / "contexts"
    if link.is_symlink():
        link.unlink()
    if (user_dir / "contexts").is_dir():
        link.symlink_to(user_dir / "contexts", target_is_directory=True)
    return {"DOCKER_CONFIG": str(directory)}


def docker_client(timeout: float = 60.0) -> Any:
    """A docker SDK client whose engine answered a ping, or a clear error saying how to fix it.

    It follows the docker CLI's current context, as ``kind`` and ``docker exec`` do:
    ``docker.from_env`` alone reads only DOCKER_HOST and would talk to another engine on rootless
    Docker, colima or Docker Desktop.
    """
    endpoint = context_endpoint()
    try:
        if endpoint is None:
            client = docker.from_env(timeout=int(timeout))
        else:
            client = docker.DockerClient(
                base_url=endpoint.host,
                tls=endpoint.tls_config(),
                timeout=int(timeout),
                use_ssh_client=endpoint.host.startswith("ssh://"),
            )
        client.ping()
    except DockerException as exc:
        raise DockerUnavailableError(first_line(exc)) from exc
    except Exception as exc:  # requests' connection errors, a malformed DOCKER_HOST
        raise DockerUnavailableError(f"{type(exc).__name__}: {exc}"[:200]) from exc
    return client


def docker_available() -> str | None:
    """None when an engine answers, else why not."""
    try:
        docker_client(timeout=10).close()
    except DockerUnavailableError as exc:
        return str(exc)
    return None
