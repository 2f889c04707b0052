"""The docker CLI's current context reaches ``kind load``'s private DOCKER_CONFIG and the docker
SDK client, while the user's registry credentials never do.

Real docker CLI and engine: a docker context points at a second unix socket, a forwarder (in
this process) that reaches the same engine and counts connections. The default socket stays
reachable here, so a call that ignored the context would still work; the count shows which way
it went.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import socketserver
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_kindreg import runner
from pytest_kindreg.docker_engine import docker_client, private_docker_env

pytestmark = pytest.mark.docker

CONTEXT = "kindreg-test-ctx"
FAKE_SECRET = "kindreg-fake-secret-7f3a"


def _engine_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        pytest.skip(f"the engine is not on a unix socket (DOCKER_HOST={host})")
    return host.removeprefix("unix://")


class _Forwarder(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, upstream: str) -> None:
        self.upstream = upstream
        self.connections = 0
        self._count_lock = threading.Lock()
        super().__init__(path, _Forward)


class _Forward(socketserver.BaseRequestHandler):
    server: _Forwarder

    def handle(self) -> None:
        with self.server._count_lock:
            self.server.connections += 1
        with socket.socket(socket.AF_UNIX) as upstream:
            upstream.connect(self.server.upstream)
            back = threading.Thread(target=_pump, args=(upstream, self.request), daemon=True)
            back.start()
            _pump(self.request, upstream)
            back.join(timeout=30)


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@dataclass
class ContextSetup:
    user_config: Path
    private_dir: Path
    forwarder: _Forwarder


@pytest.fixture
def context_setup(monkeypatch: pytest.MonkeyPatch) -> Iterator[ContextSetup]:
    """A user docker config whose current context is a forwarding socket, and which also holds
    registry credentials (auths, credsStore, credHelpers) that must go nowhere."""
    upstream = _engine_socket()
    with tempfile.TemporaryDirectory(prefix="kr-ctx-test-") as tmp:
        root = Path(tmp)
        user_config = root / "user-docker"
        user_config.mkdir()
        forwarder = _Forwarder(str(root / "engine.sock"), upstream)
        thread = threading.Thread(target=forwarder.serve_forever, daemon=True)
        thread.start()
        try:
            runner.run(
                ["docker", "context", "create", CONTEXT, "--docker", f"host=unix://{root / 'engine.sock'}"],
                env={"DOCKER_CONFIG": str(user_config)},
            )
            auth = base64.b64encode(f"someone:{FAKE_SECRET}".encode()).decode()
            (user_config / "config.json").write_text(
                json.dumps(
                    {
                        "auths": {"registry.example:5000": {"auth": auth}},
                        "credsStore": "kindreg-fake-store",
                        "credHelpers": {"other.example": "kindreg-fake-helper"},
                        "currentContext": CONTEXT,
                    }
                )
            )
            monkeypatch.setenv("DOCKER_CONFIG", str(user_config))
            monkeypatch.delenv("DOCKER_HOST", raising=False)
            monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
            yield ContextSetup(user_config, root / "private", forwarder)
        finally:
            forwarder.shutdown()
            forwarder.server_close()
            thread.join(timeout=5)


def _files_under(directory: Path) -> list[Path]:
    found: list[Path] = []
    for parent, _dirs, files in os.walk(directory, followlinks=True):  # the linked context store too
        found.extend(Path(parent) / name for name in files)
    return found


def test_kind_load_env_follows_the_context_without_credentials(
    context_setup: ContextSetup, kindreg_test_image: str
) -> None:
    env = private_docker_env(context_setup.private_dir)
    before = context_setup.forwarder.connections
    image_id = runner.run(["docker", "image", "inspect", "-f", "{{.Id}}", kindreg_test_image], env=env).stdout
    assert image_id.startswith("sha256:")
    assert context_setup.forwarder.connections > before, "the docker CLI ignored the current context"

    config = json.loads((context_setup.private_dir / "config.json").read_text())
    assert config == {"currentContext": CONTEXT}  # no auths, credsStore, credHelpers
    assert (context_setup.private_dir / "config.json").stat().st_mode & 0o077 == 0
    files = _files_under(context_setup.private_dir)
    assert any(path.name == "meta.json" for path in files)
    for path in files:
        text = path.read_text(errors="replace")
        assert FAKE_SECRET not in text, path
        assert "kindreg-fake" not in text, path


def test_docker_context_env_var_is_followed_too(
    context_setup: ContextSetup, kindreg_test_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (context_setup.user_config / "config.json").write_text("{}")
    monkeypatch.setenv("DOCKER_CONTEXT", CONTEXT)
    env = private_docker_env(context_setup.private_dir)
    before = context_setup.forwarder.connections
    runner.run(["docker", "image", "inspect", kindreg_test_image], env=env)
    assert context_setup.forwarder.connections > before


def test_docker_sdk_client_follows_the_context(context_setup: ContextSetup) -> None:
    before = context_setup.forwarder.connections
    client = docker_client(timeout=20)
    try:
        assert client.version()["ApiVersion"]
    finally:
        client.close()
    assert context_setup.forwarder.connections > before, "the docker SDK client ignored the current context"


def test_docker_host_overrides_the_context_for_both(
    context_setup: ContextSetup, kindreg_test_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{_engine_socket()}")
    before = context_setup.forwarder.connections
    env = private_docker_env(context_setup.private_dir)
    runner.run(["docker", "image", "inspect", kindreg_test_image], env=env)
    client = docker_client(timeout=20)
    client.close()
    assert context_setup.forwarder.connections == before
