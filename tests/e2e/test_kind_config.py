"""A user's own kind config on a real cluster: everything in it survives the plugin's additions.

The session cluster is built from the kind config this run was given (this project's ini sets
``examples/kind-config.yaml``: two nodes, a pod subnet, a kubeadm patch, a port mapping, a label
and a mount). Each test reads that config and checks the live cluster against it.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import pytest
import yaml

from pytest_kindreg import KindCluster
from pytest_kindreg.kind_config import KindConfigSource, UserKindConfig, load_kind_config
from pytest_kindreg.kubelet import kubelet_configz

pytestmark = pytest.mark.e2e

KIND_DEFAULT_POD_SUBNET = "10.244.0.0/16"


@pytest.fixture(scope="module")
def user_config(kindreg_kind_config: KindConfigSource | None) -> UserKindConfig:
    if kindreg_kind_config is None:
        pytest.fail("these tests check the session cluster against a kind config: pass --kindreg-kind-config")
    return load_kind_config(kindreg_kind_config)


def _node_names(cluster: KindCluster, config: UserKindConfig) -> list[tuple[str, dict[str, Any]]]:
    """(node container name, the user's node) in the config's order, named as kind names them."""
    counts: dict[str, int] = {}
    named = []
    for node in config.document.get("nodes") or [{"role": "control-plane"}]:
        role = node.get("role", "control-plane")
        counts[role] = counts.get(role, 0) + 1
        suffix = "" if counts[role] == 1 else str(counts[role])
        named.append((f"{cluster.name}-{role}{suffix}", node))
    return named


def test_every_node_of_the_config_exists_with_its_labels(
    kind_cluster: KindCluster, user_config: UserKindConfig
) -> None:
    from kubernetes import client

    live = {n.metadata.name: n for n in client.CoreV1Api(kind_cluster.api_client()).list_node().items}
    expected = _node_names(kind_cluster, user_config)
    assert sorted(live) == sorted(name for name, _node in expected)
    for name, node in expected:
        assert live[name].metadata.labels.items() >= (node.get("labels") or {}).items(), name


def test_the_configs_mounts_are_in_their_nodes(kind_cluster: KindCluster, user_config: UserKindConfig) -> None:
    mounts = [(name, m) for name, node in _node_names(kind_cluster, user_config) for m in node.get("extraMounts") or []]
    assert mounts, "the config has no extraMounts to check"
    for name, mount in mounts:
        listing = kind_cluster.exec(name, ["ls", "-A", mount["containerPath"]]).split()
        host = mount["hostPath"]
        assert listing == (sorted(os.listdir(host)) if os.path.isdir(host) else [mount["containerPath"]])
        if mount.get("readOnly"):
            probe = f"{mount['containerPath']}/.kindreg-write-probe"
            result = kind_cluster.exec(name, ["sh", "-c", f"touch {probe} 2>&1 || echo read-only"])
            assert "read-only" in result.lower(), result


def test_the_configs_port_mappings_are_published(
    kind_cluster: KindCluster, user_config: UserKindConfig, kindreg_docker: Any
) -> None:
    mappings = [
        (n, p) for n, node in _node_names(kind_cluster, user_config) for p in node.get("extraPortMappings") or []
    ]
    assert mappings, "the config has no extraPortMappings to check"
    for name, mapping in mappings:
        ports = kindreg_docker.containers.get(name).attrs["NetworkSettings"]["Ports"]
        bindings = ports[f"{mapping['containerPort']}/{mapping.get('protocol', 'TCP').lower()}"]
        assert {b["HostIp"] for b in bindings} == {mapping.get("listenAddress", "0.0.0.0")}  # noqa: S104
        if mapping.get("hostPort"):
            assert {int(b["HostPort"]) for b in bindings} == {mapping["hostPort"]}


def test_every_node_takes_pod_addresses_from_the_configs_pod_subnet(
    kind_cluster: KindCluster, user_config: UserKindConfig
) -> None:
    from kubernetes import client

    subnet = ipaddress.ip_network(
        (user_config.document.get("networking") or {}).get("podSubnet", KIND_DEFAULT_POD_SUBNET)
    )
    core = client.CoreV1Api(kind_cluster.api_client())
    for node in core.list_node().items:
        assert ipaddress.ip_network(node.spec.pod_cidr).subnet_of(subnet), (node.metadata.name, node.spec.pod_cidr)  # type: ignore[arg-type]
    pods = core.list_pod_for_all_namespaces(field_selector="status.phase=Running").items
    pod_ips = [p.status.pod_ip for p in pods if p.status.pod_ip and not p.spec.host_network]
    assert pod_ips, "no pod on the pod network is running"
    assert all(ipaddress.ip_address(ip) in subnet for ip in pod_ips), pod_ips


def test_the_configs_kubelet_patch_reached_every_kubelet(
    kind_cluster: KindCluster, user_config: UserKindConfig
) -> None:
    patches = [yaml.safe_load(p) for p in user_config.document.get("kubeadmConfigPatches") or []]
    settings = {
        key: value
        for patch in patches
        if isinstance(patch, dict) and patch.get("kind") == "KubeletConfiguration"
        for key, value in patch.items()
        if key not in ("kind", "apiVersion") and not isinstance(value, (dict, list))
    }
    assert settings, "the config has no KubeletConfiguration patch with plain settings to check"
    for node in kind_cluster.nodes():
        live = kubelet_configz(kind_cluster.api_client(), node)
        assert {key: live.get(key) for key in settings} == settings, node
