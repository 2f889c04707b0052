"""What strategies write into nodes, checked on real containers standing in for kind nodes:
file modes, in-place writes through a single-file bind mount, and the shared kubelet config.json
that node_config (mounted at creation) and access_token (written at runtime) both use."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any, cast

import pytest

from pytest_kindreg import Credentials, PrivateRegistry
from pytest_kindreg.credentials import parse_auth_entry
from pytest_kindreg.docker_nodes import ContainerNodes
from pytest_kindreg.node_credentials import KUBELET_CONFIG_JSON, NodeCredentials
from pytest_kindreg.strategies import CertificateStrategy, NodeConfigStrategy, StrategyContext
from tests.conftest import start_node_containers

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]


@pytest.fixture
def nodes(node_containers: list[str]) -> ContainerNodes:
    return ContainerNodes(node_containers)


def _mode(nodes: ContainerNodes, node: str, path: str) -> str:
    return nodes.exec(node, ["stat", "-c", "%a", path]).strip()


def test_write_file_creates_dirs_with_the_mode(nodes: ContainerNodes) -> None:
    nodes.write_file_all("/etc/containerd/certs.d/127.0.0.1:5001/client.key", "KEY", mode="0600")
    for node in nodes.nodes():
        assert nodes.read_file(node, "/etc/containerd/certs.d/127.0.0.1:5001/client.key") == "KEY"
        assert _mode(nodes, node, "/etc/containerd/certs.d/127.0.0.1:5001/client.key") == "600"
    assert nodes.read_file(nodes.nodes()[0], "/no/such/file") is None


def test_access_token_writes_merge_per_node(nodes: ContainerNodes) -> None:
    """Unmounted: each node's config.json is read, merged and written back (0600)."""
    keyring = NodeCredentials(Path("/nonexistent/unused.json"))
    first, second = Credentials("first", "1:1"), Credentials("second", "2")
    keyring.apply(nodes, {"127.0.0.1:5001": first}, restart_kubelet=False)
    keyring.apply(nodes, {"127.0.0.1:5002": second}, restart_kubelet=False)
    rotated = Credentials("first", "rotated")
    keyring.apply(nodes, {"127.0.0.1:5001": rotated}, restart_kubelet=False)
    for node in nodes.nodes():
        auths = json.loads(nodes.read_file(node, KUBELET_CONFIG_JSON) or "{}")["auths"]
        assert parse_auth_entry(auths["127.0.0.1:5001"]) == rotated
        assert parse_auth_entry(auths["127.0.0.1:5002"]) == second
        assert _mode(nodes, node, KUBELET_CONFIG_JSON) == "600"
    with pytest.raises(NotImplementedError, match="no kubelet"):
        keyring.apply(nodes, {"x:1": first}, restart_kubelet=True)


def test_node_config_mount_and_access_token_share_one_file(
    kindreg_docker: Any, kindreg_test_image: str, tmp_path: Path
) -> None:
    """Mounted (node_config): runtime writes go to the host file in place, seen by every node."""
    keyring = NodeCredentials(tmp_path / "kubelet-config.json")
    with PrivateRegistry(docker=kindreg_docker) as registry:
        ctx = StrategyContext("node_config", registry, tmp_path, keyring)
        contribution = NodeConfigStrategy().cluster_contribution(ctx)
        (mount,) = contribution.extra_mounts
        assert (mount.container_path, mount.read_only) == (KUBELET_CONFIG_JSON, True)
        assert stat.S_IMODE(Path(mount.host_path).stat().st_mode) == 0o600
        inode = Path(mount.host_path).stat().st_ino
        volumes = {mount.host_path: {"bind": mount.container_path, "mode": "ro"}}
        containers = start_node_containers(kindreg_docker, kindreg_test_image, 2, volumes)
        try:
            nodes = ContainerNodes([c.name for c in containers])
            assert registry.host in keyring.keys_on(nodes, nodes.nodes()[0])
            token = Credentials("token-user", "short-lived")
            keyring.apply(nodes, {"127.0.0.1:6000": token}, restart_kubelet=False)  # access_token's entry
            assert Path(mount.host_path).stat().st_ino == inode  # in place: the bind mount still shows it
            for node in nodes.nodes():
                auths = json.loads(nodes.read_file(node, KUBELET_CONFIG_JSON) or "{}")["auths"]
                assert parse_auth_entry(auths[registry.host]) == registry.credentials
                assert parse_auth_entry(auths["127.0.0.1:6000"]) == token
        finally:
            for container in containers:
                container.remove(force=True)


def test_certificate_strategy_node_files(kindreg_docker: Any, nodes: ContainerNodes, tmp_path: Path) -> None:
    with PrivateRegistry(docker=kindreg_docker, **CertificateStrategy.registry_options) as registry:
        ctx = StrategyContext("certificate", registry, tmp_path, NodeCredentials(tmp_path / "unused.json"))
        ctx.cluster = cast(Any, nodes)
        CertificateStrategy().prepare_nodes(ctx, reused=False)
        directory = f"/etc/containerd/certs.d/{registry.host}"
        assert registry.tls_files is not None and registry.tls_files.client_key is not None
        for node in nodes.nodes():
            assert _mode(nodes, node, f"{directory}/client.key") == "600"
            assert nodes.read_file(node, f"{directory}/client.key") == registry.tls_files.client_key.read_text()
            assert nodes.read_file(node, f"{directory}/ca.crt") == registry.tls_files.ca.read_text()
            hosts = nodes.read_file(node, f"{directory}/hosts.toml") or ""
            assert f'[host."https://{registry.name}:5000"]' in hosts
            assert f'client = [["{directory}/client.cert", "{directory}/client.key"]]' in hosts
            assert f'ca = "{directory}/ca.crt"' in hosts
