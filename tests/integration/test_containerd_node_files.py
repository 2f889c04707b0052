"""The files the strategies write into kind nodes, checked against a real containerd and a real registry.

No cluster: a standalone containerd of the test's own (``containerd_harness``) pulls through
``ctr content fetch --hosts-dir``, which runs the same ``ConfigureHosts`` code the CRI plugin uses
for ``/etc/containerd/certs.d/<image-host>/hosts.toml`` on a node. The image host is an
unresolvable alias (``.invalid``, RFC 6761), so a successful pull can only have gone through the
endpoint ``hosts.toml`` names — as ``localhost:5001`` is mapped to ``kind-registry:5000`` in kind.
``ctr --user`` answers whatever host containerd contacts, like the server-less credentials
kubelet sends over CRI (kind-containerd-facts §5, [derived]).

The node ``config.json`` (node_config strategy) is checked with the real docker CLI instead:
both read the same inline ``auths`` format.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker.errors import ImageNotFound

from pytest_kindreg.containerd import HostsToml, hosts_dir
from pytest_kindreg.credentials import docker_config, write_private_file
from pytest_kindreg.docker_engine import RunIdentity
from pytest_kindreg.plugin import _require
from pytest_kindreg.registry import PrivateRegistry
from pytest_kindreg.settings import Settings
from tests.integration.containerd_harness import StandaloneContainerd, which_containerd

pytestmark = [pytest.mark.containerd, pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]

ALIAS = "kindreg-alias.invalid:5000"  # never resolves: only hosts.toml can make it reachable


def _processes_with(marker: str) -> list[int]:
    """PIDs whose command line mentions ``marker`` (our containerd's private config path)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            pids.append(int(entry.name))
    return pids


def _require_containerd(settings: Settings) -> None:
    """Skip without containerd/ctr, or fail when the run requires its Docker-backed tests."""
    _require(settings, "docker", which_containerd())


@pytest.fixture(scope="module")
def standalone_containerd(kindreg_settings: Settings) -> Iterator[StandaloneContainerd]:
    _require_containerd(kindreg_settings)
    with StandaloneContainerd() as ctrd:
        config_path = str(ctrd.config_path)
        directory = ctrd.directory
        assert _processes_with(config_path) == [ctrd.pid]
        yield ctrd
    assert _processes_with(config_path) == [], "the standalone containerd outlived its harness"
    assert not directory.exists(), f"{directory} was not removed"


@pytest.fixture
def registry_factory(kindreg_docker: Any, kindreg_identity: RunIdentity) -> Any:
    """``with registry_factory(**options) as reg``: a registry of this run, cleaned up on exit."""

    def make(**options: Any) -> PrivateRegistry:
        return PrivateRegistry(identity=kindreg_identity, docker=kindreg_docker, **options)

    return make


def _push(registry: PrivateRegistry, docker: Any, image: str, repository: str) -> str:
    """Push ``image`` as ``repository:1.0``; return the same path under the alias image host."""
    reference = registry.push(image, repository=repository, tag="1.0")
    docker.images.remove(reference, noprune=True)  # push leaves a host-side tag behind
    return f"{ALIAS}/{repository}:1.0"


def _write_hosts(root: Path, hosts: HostsToml) -> Path:
    """Write ``<root>/<alias>/hosts.toml`` the way a node has it under /etc/containerd/certs.d."""
    directory = Path(hosts_dir(ALIAS, str(root)))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hosts.toml").write_text(hosts.render())
    return directory


def _copy_tls_files(registry: PrivateRegistry, root: Path) -> Path:
    """ca.crt, client.cert, client.key under the alias dir: the certificate strategy's node layout."""
    files = registry.tls_files
    assert files is not None
    directory = Path(hosts_dir(ALIAS, str(root)))
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(files.ca, directory / "ca.crt")
    if files.client_cert is not None and files.client_key is not None:
        shutil.copyfile(files.client_cert, directory / "client.cert")
        write_private_file(directory / "client.key", files.client_key.read_bytes())
    return directory


def _assert_pulled(ctrd: StandaloneContainerd, reference: str, result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"fetch of {reference} failed:\n{result.stderr}\n{ctrd.log_tail()}"
    blobs = ctrd.ctr("content", "ls", "-q", timeout=30).stdout.split()
    assert len(blobs) >= 3, blobs  # manifest, config and at least one layer
    # Remove them, so the next fetch of the same blobs downloads them again.
    removed = ctrd.ctr("content", "rm", *blobs, timeout=30)
    assert removed.returncode == 0, removed.stderr
    assert ctrd.ctr("content", "ls", "-q", timeout=30).stdout.split() == []


def _failure(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, f"pull should have failed:\n{result.stdout}"
    assert "ctr: " in result.stderr
    return result.stderr


def _assert_unauthorized(stderr: str, host: str, *, anonymous: bool) -> None:
    """A 401 from ``host`` (the mapped endpoint, not the alias).

    containerd 1.6: ``pulling from host H failed with status code [manifests T]: 401 Unauthorized``;
    1.7+/2.x: ``unexpected status from HEAD request to http(s)://H/v2/...: 401 Unauthorized``, and
    for no credentials at all ``... authorization failed: no basic auth credentials``.
    """
    if anonymous and "no basic auth credentials" in stderr:
        return
    assert host in stderr, stderr
    assert "401 Unauthorized" in stderr, stderr


class _LogMark:
    """The registry's log lines written after this point."""

    def __init__(self, registry: PrivateRegistry) -> None:
        self.registry = registry
        self.start = len(registry.container.logs().splitlines())

    def lines(self) -> str:
        return "\n".join(
            line.decode(errors="replace") for line in self.registry.container.logs().splitlines()[self.start :]
        )


@contextlib.contextmanager
def _refused_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (nobody else can take it), not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


# -- a. plain HTTP + htpasswd: hosts.toml mirror mapping, credentials answered by the mirror ----------
def test_htpasswd_registry_behind_alias(
    standalone_containerd: StandaloneContainerd,
    registry_factory: Any,
    kindreg_docker: Any,
    kindreg_test_image: str,
    tmp_path: Path,
) -> None:
    ctrd = standalone_containerd
    with registry_factory() as reg:
        ref = _push(reg, kindreg_docker, kindreg_test_image, "nodefiles/htpasswd")
        endpoint = f"http://127.0.0.1:{reg.port}"
        user = f"{reg.username}:{reg.password}"
        certs_d = tmp_path / "certs.d"
        _write_hosts(certs_d, HostsToml(endpoint=endpoint))

        # Without a hosts.toml the alias goes nowhere: the success below is the mapping's doing.
        unmapped = _failure(ctrd.fetch(ref, tmp_path / "empty-certs.d", user=user))
        assert f'"https://{ALIAS}/v2/nodefiles/htpasswd/manifests/1.0"' in unmapped
        assert "lookup kindreg-alias.invalid" in unmapped

        mark = _LogMark(reg)
        no_user = _failure(ctrd.fetch(ref, certs_d))
        _assert_unauthorized(no_user, reg.host, anonymous=True)
        log = mark.lines()
        assert '"HEAD /v2/nodefiles/htpasswd/manifests/1.0?ns=kindreg-alias.invalid%3A5000 HTTP/1.1" 401' in log
        assert "error authenticating user" not in log  # nothing was sent

        mark = _LogMark(reg)
        wrong_password = _failure(ctrd.fetch(ref, certs_d, user=f"{reg.username}:not-{reg.password}"))
        _assert_unauthorized(wrong_password, reg.host, anonymous=False)
        # --user reached the mirror, which checked (and refused) that very user.
        # (logfmt escapes the quotes around the name)
        assert f'error authenticating user \\"{reg.username}\\": authentication failure' in mark.lines()

        with _refused_port() as dead_port:
            dead_d = tmp_path / "dead-certs.d"
            _write_hosts(dead_d, HostsToml(endpoint=f"http://127.0.0.1:{dead_port}"))
            refused = _failure(ctrd.fetch(ref, dead_d, user=user))
        assert f"dial tcp 127.0.0.1:{dead_port}: connect: connection refused" in refused

        _assert_pulled(ctrd, ref, ctrd.fetch(ref, certs_d, user=user))


# -- b. mTLS: the certificate strategy's node files ------------------------------------------------
def test_client_certificate_registry_behind_alias(
    standalone_containerd: StandaloneContainerd,
    registry_factory: Any,
    kindreg_docker: Any,
    kindreg_test_image: str,
    tmp_path: Path,
) -> None:
    ctrd = standalone_containerd
    with registry_factory(client_auth=True, htpasswd=False) as reg:
        ref = _push(reg, kindreg_docker, kindreg_test_image, "nodefiles/mtls")
        endpoint = f"https://127.0.0.1:{reg.port}"

        full_d = tmp_path / "full"
        d = _copy_tls_files(reg, full_d)
        _write_hosts(full_d, HostsToml(endpoint, ca=f"{d}/ca.crt", client=(f"{d}/client.cert", f"{d}/client.key")))

        # Same files on disk, but hosts.toml does not name the client pair: containerd only falls
        # back to picking up *.cert/*.key files when there is no hosts.toml at all.
        no_client_d = tmp_path / "no-client"
        d2 = _copy_tls_files(reg, no_client_d)
        _write_hosts(no_client_d, HostsToml(endpoint, ca=f"{d2}/ca.crt"))
        no_client = _failure(ctrd.fetch(ref, no_client_d))
        assert f'"{endpoint}/v2/nodefiles/mtls/manifests/1.0' in no_client
        # The alert depends on the registry's Go: older crypto/tls (the local registry:2, 2.8.2 built
        # with go1.19.8) sends bad_certificate; newer ones send certificate_required on TLS 1.3.
        assert (
            "remote error: tls: bad certificate" in no_client or "remote error: tls: certificate required" in no_client
        ), no_client

        no_ca_d = tmp_path / "no-ca"
        d3 = _copy_tls_files(reg, no_ca_d)
        _write_hosts(no_ca_d, HostsToml(endpoint, client=(f"{d3}/client.cert", f"{d3}/client.key")))
        no_ca = _failure(ctrd.fetch(ref, no_ca_d))
        assert f'"{endpoint}/v2/nodefiles/mtls/manifests/1.0' in no_ca
        assert "x509: certificate signed by unknown authority" in no_ca

        _assert_pulled(ctrd, ref, ctrd.fetch(ref, full_d))


# -- c. TLS + htpasswd: CA-only hosts.toml, password from the pull -------------------------------------
def test_tls_htpasswd_registry_behind_alias(
    standalone_containerd: StandaloneContainerd,
    registry_factory: Any,
    kindreg_docker: Any,
    kindreg_test_image: str,
    tmp_path: Path,
) -> None:
    ctrd = standalone_containerd
    with registry_factory(tls=True) as reg:
        ref = _push(reg, kindreg_docker, kindreg_test_image, "nodefiles/tls")
        endpoint = f"https://127.0.0.1:{reg.port}"
        user = f"{reg.username}:{reg.password}"

        ca_d = tmp_path / "ca"
        d = _copy_tls_files(reg, ca_d)
        _write_hosts(ca_d, HostsToml(endpoint, ca=f"{d}/ca.crt"))

        no_ca_d = tmp_path / "no-ca"
        _copy_tls_files(reg, no_ca_d)
        _write_hosts(no_ca_d, HostsToml(endpoint))
        no_ca = _failure(ctrd.fetch(ref, no_ca_d, user=user))
        assert f'"{endpoint}/v2/nodefiles/tls/manifests/1.0' in no_ca
        assert "x509: certificate signed by unknown authority" in no_ca

        # TLS alone is not the credential here.
        no_user = _failure(ctrd.fetch(ref, ca_d))
        _assert_unauthorized(no_user, reg.host, anonymous=True)

        _assert_pulled(ctrd, ref, ctrd.fetch(ref, ca_d, user=user))


# -- d. node_config: the node's config.json, read by a real docker CLI ---------------------------------
def _docker_pull(config_dir: Path, reference: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "--config", str(config_dir), "pull", reference],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _remove_tag(docker: Any, reference: str) -> None:
    with contextlib.suppress(ImageNotFound):
        docker.images.remove(reference, noprune=True)


def test_node_config_json_authenticates_a_pull(
    registry_factory: Any, kindreg_docker: Any, kindreg_test_image: str, tmp_path: Path
) -> None:
    if shutil.which("docker") is None:
        pytest.fail("the docker CLI is not on PATH (the engine answers, the client is missing)")
    with registry_factory() as reg:
        reference = reg.push(kindreg_test_image, repository="nodefiles/config-json", tag="1.0")
        try:
            _remove_tag(kindreg_docker, reference)

            empty_d = tmp_path / "empty"
            write_private_file(empty_d / "config.json", json.dumps({"auths": {}}))
            refused = _docker_pull(empty_d, reference)
            assert refused.returncode != 0, refused.stdout
            assert (
                f'Head "http://{reg.host}/v2/nodefiles/config-json/manifests/1.0": no basic auth credentials'
                in refused.stderr
            ), refused.stderr
            with pytest.raises(ImageNotFound):
                kindreg_docker.images.get(reference)

            node_d = tmp_path / "node"
            path = write_private_file(node_d / "config.json", json.dumps(docker_config({reg.host: reg.credentials})))
            assert path.stat().st_mode & 0o777 == 0o600
            pulled = _docker_pull(node_d, reference)
            assert pulled.returncode == 0, pulled.stderr
            assert reference in kindreg_docker.images.get(reference).tags
        finally:
            _remove_tag(kindreg_docker, reference)


# -- the harness itself -----------------------------------------------------------------------------
def test_harness_stops_containerd_and_removes_its_dirs(kindreg_settings: Settings) -> None:
    _require_containerd(kindreg_settings)
    with StandaloneContainerd() as ctrd:
        config_path, directory, pid = str(ctrd.config_path), ctrd.directory, ctrd.pid
        assert _processes_with(config_path) == [pid]
        assert ctrd.ctr("version", timeout=10).returncode == 0
        assert "/var/lib/containerd" not in ctrd.render_config()
    assert _processes_with(config_path) == []
    assert not directory.exists()
    assert ctrd.process is None
