"""The child session on the custom-CNI cluster (run by tests/e2e/test_custom_cni.py as test_custom_cni_session.py)."""

from __future__ import annotations

import ipaddress

import pytest
from kubernetes import client

from pytest_kindreg import KindCluster
from pytest_kindreg.strategies import STRATEGY_NAMES
from pytest_kindreg.workspace import KindPrivateRegistry

POD_SUBNET = ipaddress.ip_network("10.233.0.0/16")


@pytest.mark.kindreg_strategy(*STRATEGY_NAMES)
def test_pods_pull_and_get_addresses_from_the_installed_network(
    kind_private_registry: KindPrivateRegistry, kindreg_test_image: str
) -> None:
    pod = kind_private_registry.run_pod(kind_private_registry.push(kindreg_test_image))
    assert pod.status.phase == "Running"
    assert ipaddress.ip_address(pod.status.pod_ip) in POD_SUBNET


def test_the_hook_installed_the_network_on_every_node(kind_cluster: KindCluster) -> None:
    apps = client.AppsV1Api(kind_cluster.api_client())
    daemon_set = apps.read_namespaced_daemon_set("kindreg-net", "kube-system")
    assert daemon_set.status.number_ready == len(kind_cluster.nodes()) == 2
    env = {e.name: e.value for e in daemon_set.spec.template.spec.containers[0].env if e.value}
    assert env["POD_SUBNET"] == str(POD_SUBNET)
    assert env["CONTROL_PLANE_ENDPOINT"] == f"{kind_cluster.name}-control-plane:6443"


def test_the_users_registry_settings_reached_containerd(kind_cluster: KindCluster) -> None:
    for node in kind_cluster.nodes():
        _version, _config_version, roots = kind_cluster.containerd_facts(node)
        assert roots == ["/etc/containerd/certs.d", "/etc/docker/certs.d"], node
        dump = kind_cluster.exec(node, ["containerd", "config", "dump"])
        assert "X-Kindreg-Test" in dump, node  # the user's version-3 table, carried over
        assert "X-Kindreg-Json6902" in dump, node  # the JSON 6902 patch, applied after the plugin's


def test_a_relative_host_path_is_relative_to_the_config_file(kind_cluster: KindCluster) -> None:
    marker = kind_cluster.exec(f"{kind_cluster.name}-worker", ["cat", "/opt/kindreg-cni-test/marker.txt"])
    assert marker.strip() == "mounted from a path relative to kind-config.yaml"
