"""A conftest.py for a kind config with ``networking.disableDefaultCNI: true``: the plugin calls
``pytest_kindreg_cluster_created`` once kind has created the cluster, before it waits for Ready
nodes, and this implementation installs the pod network there.

The network here is the one the node image ships, ``/kind/manifests/default-cni.yaml``, installed
the way kind installs it (sigs.k8s.io/kind ``pkg/cluster/internal/create/actions/installcni``):
the pod subnet templated in, the API server's in-cluster address added to the DaemonSet, then
``kubectl create`` with the control plane's admin kubeconfig. Your suite would apply its own CNI
(Calico, Cilium, ...) the same way: a manifest, the node's kubectl, or the Kubernetes API through
``cluster.api_client()``.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from kubernetes import client

from pytest_kindreg import KindCluster

MANIFEST = "/kind/manifests/default-cni.yaml"


def pod_subnet(cluster: KindCluster) -> str:
    """The cluster's pod subnet, as kubeadm was configured (kind's networking.podSubnet)."""
    config_map = client.CoreV1Api(cluster.api_client()).read_namespaced_config_map("kubeadm-config", "kube-system")
    return str(yaml.safe_load(config_map.data["ClusterConfiguration"])["networking"]["podSubnet"])


def with_control_plane_endpoint(manifest: str, endpoint: str) -> str:
    """kind's patch of the DaemonSet: CONTROL_PLANE_ENDPOINT in its first container's env."""
    documents = [doc for doc in yaml.safe_load_all(manifest) if doc]
    for doc in documents:
        if doc.get("kind") == "DaemonSet":
            container: dict[str, Any] = doc["spec"]["template"]["spec"]["containers"][0]
            container.setdefault("env", []).append({"name": "CONTROL_PLANE_ENDPOINT", "value": endpoint})
    return yaml.safe_dump_all(documents, sort_keys=False)


def pytest_kindreg_cluster_created(cluster: KindCluster) -> None:
    control_plane = f"{cluster.name}-control-plane"  # kind's first control-plane node
    manifest = cluster.exec(control_plane, ["cat", MANIFEST])
    if "would you kindly template this file" in manifest:
        manifest = re.sub(r"\{\{-?\s*\.PodSubnet\s*-?\}\}", pod_subnet(cluster), manifest)
    if "would you kindly patch this file" in manifest:
        manifest = with_control_plane_endpoint(manifest, f"{control_plane}:6443")
    cluster.exec(
        control_plane,
        ["kubectl", "create", "--kubeconfig=/etc/kubernetes/admin.conf", "-f", "-"],
        input=manifest,
    )
