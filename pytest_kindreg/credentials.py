"""Registry credentials and the files built from them: htpasswd, docker config.json, pull secrets.

Throw-away test credentials are hashed with bcrypt at the lowest cost (4): the registry checks
the hash on every request, and cost 12 (htpasswd -B's default) costs ~0.25 s a request.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt

BCRYPT_ROUNDS = 4


@dataclass(frozen=True)
class Credentials:
    """A username and password. The password never appears in repr() or str()."""

    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.username or ":" in self.username:
            # htpasswd and the docker "auth" field both split user from password at the first ':'
            raise ValueError("a registry username must be non-empty and must not contain ':'")

    def __str__(self) -> str:
        return f"{self.username}:********"

    @classmethod
    def random(cls, prefix: str = "kindreg") -> Credentials:
        return cls(f"{prefix}-{secrets.token_hex(4)}", secrets.token_urlsafe(24))

    def htpasswd_line(self, rounds: int = BCRYPT_ROUNDS) -> str:
        hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=rounds)).decode()
        return f"{self.username}:{hashed}"

    def basic_auth(self) -> str:
        """The base64 ``user:password`` string of docker's ``auth`` field."""
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    def auth_entry(self) -> dict[str, str]:
        """One ``auths`` entry, as ``kubectl create secret docker-registry`` writes it."""
        return {"username": self.username, "password": self.password, "auth": self.basic_auth()}

    def as_docker_auth_config(self) -> dict[str, str]:
        """The ``auth_config`` argument of the docker SDK's push and pull."""
        return {"username": self.username, "password": self.password}


def verify_htpasswd_line(line: str, password: str) -> bool:
    _user, _, hashed = line.strip().partition(":")
    return bcrypt.checkpw(password.encode(), hashed.encode())


def normalize_server(server: str) -> str:
    """The key kubelet and docker match against an image reference: host[:port], no scheme."""
    for scheme in ("https://", "http://"):
        if server.startswith(scheme):
            server = server[len(scheme) :]
    return server.rstrip("/")


def docker_config(auths: Mapping[str, Credentials]) -> dict[str, Any]:
    """A docker config.json with inline ``auths`` only.

    No credsStore/credHelpers: kubelet ignores them and their helper binaries are not in nodes.
    """
    return {"auths": {normalize_server(server): cred.auth_entry() for server, cred in auths.items()}}


def parse_auth_entry(entry: Mapping[str, Any]) -> Credentials:
    """Read credentials back from an ``auths`` entry; the password may contain ':'."""
    if "auth" in entry:
        user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
        if not sep:
            raise ValueError("docker auth entry is not base64('user:password')")
        return Credentials(user, password)
    return Credentials(str(entry["username"]), str(entry["password"]))


def merge_docker_config(existing: Mapping[str, Any], auths: Mapping[str, Credentials]) -> dict[str, Any]:
    """Add or replace only the given servers' entries, leaving everything else as it was.

    Several strategies may own entries in one node's /var/lib/kubelet/config.json: each
    rewrites its own keys and never anybody else's.
    """
    merged = json.loads(json.dumps(existing)) if existing else {}
    merged.setdefault("auths", {}).update(docker_config(auths)["auths"])
    return merged


def write_private_file(path: Path, content: str | bytes) -> Path:
    """Write a file readable by its owner only (0600), created with that mode from the start.

    An existing file is truncated, not replaced: its inode stays, so a single-file bind mount
    (kind's extraMounts) sees the new content.
    """
    data = content.encode() if isinstance(content, str) else content
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:  # write() of a file object writes all of data; os.write may not
        os.fchmod(fd, 0o600)
        handle.write(data)
    return path
