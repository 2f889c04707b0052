"""Docker engine access, and the identity (labels, names) of everything one run creates."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any

import docker
from docker.errors import DockerException

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


def docker_client(timeout: float = 60.0) -> Any:
    """A docker SDK client whose engine answered a ping, or a clear error saying how to fix it."""
    try:
        client = docker.from_env(timeout=int(timeout))
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
