"""What the strategies write into real kind nodes: file modes, the certificate strategy's files,
access_token's tokens with a real kubelet restart (and a custom token source), and node_config's
mounted kubelet config.json rewritten in place."""

from __future__ import annotations

import json
import secrets
import stat

import pytest
import requests

from pytest_kindreg import Credentials, KindCluster
from pytest_kindreg.credentials import parse_auth_entry
from pytest_kindreg.node_credentials import KUBELET_CONFIG_JSON
from pytest_kindreg.strategies import AccessTokenStrategy, StrategyContext
from pytest_kindreg.workspace import KindPrivateRegistry

pytestmark = pytest.mark.e2e


def _mode(cluster: KindCluster, node: str, path: str) -> str:
    return cluster.exec(node, ["stat", "-c", "%a", path]).strip()


def _token_on(cluster: KindCluster, node: str, host: str) -> Credentials:
    return parse_auth_entry(json.loads(cluster.read_file(node, KUBELET_CONFIG_JSON) or "{}")["auths"][host])


def _kubelet_started(cluster: KindCluster, node: str) -> str:
    return cluster.exec(node, ["systemctl", "show", "kubelet.service", "-p", "ExecMainStartTimestampMonotonic"])


def test_write_file_creates_dirs_with_the_mode(kind_cluster: KindCluster) -> None:
    base = f"/tmp/kindreg-e2e-{secrets.token_hex(4)}"
    path = f"{base}/certs.d/127.0.0.1:5001/client.key"
    try:
        kind_cluster.write_file_all(path, "KEY", mode="0600")
        for node in kind_cluster.nodes():
            assert kind_cluster.read_file(node, path) == "KEY"
            assert _mode(kind_cluster, node, path) == "600"
        assert kind_cluster.read_file(kind_cluster.nodes()[0], f"{base}/no/such/file") is None
    finally:
        for node in kind_cluster.nodes():
            kind_cluster.exec(node, ["rm", "-rf", base])


@pytest.mark.kindreg_strategy("certificate")
def test_certificate_strategy_node_files(kind_private_registry: KindPrivateRegistry, kind_cluster: KindCluster) -> None:
    registry = kind_private_registry.registry
    directory = f"/etc/containerd/certs.d/{kind_private_registry.context.image_host}"
    assert registry.tls_files is not None and registry.tls_files.client_key is not None
    for node in kind_cluster.nodes():
        assert _mode(kind_cluster, node, f"{directory}/client.key") == "600"
        assert kind_cluster.read_file(node, f"{directory}/client.key") == registry.tls_files.client_key.read_text()
        assert kind_cluster.read_file(node, f"{directory}/ca.crt") == registry.tls_files.ca.read_text()
        hosts = kind_cluster.read_file(node, f"{directory}/hosts.toml") or ""
        assert f'[host."https://{registry.name}:5000"]' in hosts
        assert f'client = [["{directory}/client.cert", "{directory}/client.key"]]' in hosts
        assert f'ca = "{directory}/ca.crt"' in hosts


@pytest.mark.kindreg_strategy("access_token")
def test_tokens_are_written_and_kubelet_restarted_on_every_node(
    kind_private_registry: KindPrivateRegistry, kind_cluster: KindCluster, kindreg_test_image: str
) -> None:
    ctx = kind_private_registry.context
    registry = kind_private_registry.registry
    for node in kind_cluster.nodes():
        assert _token_on(kind_cluster, node, ctx.image_host) == registry.credentials
    started = {node: _kubelet_started(kind_cluster, node) for node in kind_cluster.nodes()}

    issued: list[Credentials] = []

    def json_key_source(ctx: StrategyContext) -> Credentials:
        """The guide's `_json_key` model: a service-account key re-issued on every rotation."""
        key = Credentials("_json_key", json.dumps({"type": "service_account", "n": len(issued)}))
        issued.append(ctx.registry.rotate_credentials(key))
        return key

    strategy = AccessTokenStrategy(token_source=json_key_source)
    first = strategy.rotate(ctx)
    second = strategy.rotate(ctx)
    assert [first, second] == issued
    assert first.password != second.password
    for node in kind_cluster.nodes():
        assert _token_on(kind_cluster, node, ctx.image_host) == second
        assert _kubelet_started(kind_cluster, node) != started[node]  # a new kubelet process
    # The registry refuses the previous key; the nodes pull with the current one.
    assert requests.get(f"{registry.url}/v2/", auth=(first.username, first.password), timeout=5).status_code == 401
    pod = kind_private_registry.run_pod(kind_private_registry.push(kindreg_test_image))
    assert pod.status.phase == "Running"


@pytest.mark.kindreg_strategy("node_config")
def test_node_config_file_is_rewritten_in_place(
    kind_private_registry: KindPrivateRegistry, kind_cluster: KindCluster
) -> None:
    """The file is a single-file bind mount: a write that renamed it would not reach the nodes."""
    keyring = kind_private_registry.context.node_credentials
    assert keyring.mounted
    host_file = keyring.host_file
    assert stat.S_IMODE(host_file.stat().st_mode) == 0o600
    inode = host_file.stat().st_ino
    extra = f"kindreg-e2e-{secrets.token_hex(3)}.invalid:5000"  # a host no image names
    token = Credentials("token-user", "short-lived")
    keyring.apply(kind_cluster, {extra: token}, restart_kubelet=False)
    assert host_file.stat().st_ino == inode
    for node in kind_cluster.nodes():
        assert _token_on(kind_cluster, node, extra) == token
        assert _token_on(kind_cluster, node, kind_private_registry.context.image_host) == (
            kind_private_registry.registry.credentials
        )
