"""What suites expect of a kind cluster beyond pulling: dynamic storage (local-path-provisioner,
StorageClass ``standard``) and a pod network that spans the nodes and reaches the registries."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import pytest

from pytest_kindreg import KindCluster
from pytest_kindreg.diagnosis import summarize_pod
from pytest_kindreg.workspace import KindPrivateRegistry

pytestmark = pytest.mark.e2e


def _wait(ws: KindPrivateRegistry, name: str, phases: tuple[str, ...], timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        pod = ws.core.read_namespaced_pod(name, ws.namespace)
        if pod.status.phase in phases:
            return pod
        if time.monotonic() > deadline:
            pytest.fail(f"pod {name} not {'/'.join(phases)}:\n{summarize_pod(pod, ws.events(name))}")
        time.sleep(0.5)


def _log_until(ws: KindPrivateRegistry, pod: str, text: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        log = str(ws.core.read_namespaced_pod_log(pod, ws.namespace))
        if text in log or time.monotonic() > deadline:
            return log
        time.sleep(0.5)


@pytest.mark.kindreg_strategy("pull_secret")
def test_a_pvc_of_the_default_class_binds_and_a_pod_writes_to_it(
    kind_private_registry: KindPrivateRegistry, kind_cluster: KindCluster, kindreg_test_image: str
) -> None:
    from kubernetes import client

    ws = kind_private_registry
    classes = client.StorageV1Api(ws.api_client).list_storage_class().items
    default = [
        c
        for c in classes
        if (c.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
    ]
    assert [(c.metadata.name, c.provisioner) for c in default] == [("standard", "rancher.io/local-path")]

    claim = client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="data"),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"], resources=client.V1VolumeResourceRequirements(requests={"storage": "16Mi"})
        ),
    )
    ws.core.create_namespaced_persistent_volume_claim(ws.namespace, claim)
    pod = ws.pod_manifest(ws.push(kindreg_test_image), command=["sh", "-c", "echo kindreg > /data/proof && sleep 3600"])
    pod.spec.containers[0].volume_mounts = [client.V1VolumeMount(name="data", mount_path="/data")]
    pod.spec.volumes = [
        client.V1Volume(
            name="data", persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(claim_name="data")
        )
    ]
    ws.core.create_namespaced_pod(ws.namespace, pod)
    running = _wait(ws, pod.metadata.name, ("Running",))

    bound = ws.core.read_namespaced_persistent_volume_claim("data", ws.namespace)
    assert bound.status.phase == "Bound"
    volume = ws.core.read_persistent_volume(bound.spec.volume_name)
    path = (volume.spec.host_path or volume.spec.local).path
    assert path.startswith("/var/local-path-provisioner/")
    # The file the pod wrote is on the node the pod ran on, in the provisioned directory.
    assert kind_cluster.exec(running.spec.node_name, ["cat", f"{path}/proof"]).strip() == "kindreg"


@pytest.mark.kindreg_strategy("pull_secret")
def test_pods_on_every_node_reach_each_other_and_the_registry_by_name(
    kind_private_registry: KindPrivateRegistry, kind_cluster: KindCluster, kindreg_test_image: str
) -> None:
    from kubernetes import client

    ws = kind_private_registry
    image = ws.push(kindreg_test_image)
    nodes = kind_cluster.nodes()
    # One web server per node (busybox httpd), then a client per node that fetches from each of
    # them and from the registry container by its name on kind's network.
    servers = {}
    for node in nodes:
        pod = ws.run_pod(image, node_name=node, command=["httpd", "-f", "-p", "8080", "-h", "/etc"])
        servers[node] = ws.core.read_namespaced_pod(pod.metadata.name, ws.namespace).status.pod_ip
    cidrs = [ipaddress.ip_network(n.spec.pod_cidr) for n in client.CoreV1Api(ws.api_client).list_node().items]
    assert all(any(ipaddress.ip_address(ip) in c for c in cidrs) for ip in servers.values()), servers
    registry = f"http://{ws.registry.name}:5000/v2/"
    fetches = [f"http://{ip}:8080/hostname" for ip in servers.values()] + [registry]
    script = "; ".join(f"wget -q -S -O /dev/null {url} 2>&1 | head -n 1 | sed 's|^|{url} |'" for url in fetches)
    for node in nodes:
        pod = ws.run_pod(image, node_name=node, command=["sh", "-c", f"{script}; echo done; sleep 3600"])
        log = _log_until(ws, pod.metadata.name, "done")
        # "<url> HTTP/1.1 <status> ...": the first response line busybox wget printed for each.
        status = dict(line.split(None, 2)[0::2] for line in log.splitlines() if " HTTP/" in line)
        expected = {url: "200" for url in fetches[:-1]}
        # The registry answers (401 without credentials): pod traffic leaves the pod subnet.
        expected[registry] = "401"
        assert {url: code.split()[0] for url, code in status.items()} == expected, (node, log)
