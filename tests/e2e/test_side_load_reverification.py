"""End-to-end: a side-loaded image still runs on a node where kubelet already pulled the same
source content *with credentials*.

Kubelet's credential re-verification (KEP-2535, feature gate ``KubeletEnsureSecretPulledImages``:
alpha in Kubernetes 1.33, beta and on by default from 1.35) keys its records on the image ID.
If side_load loaded the very image ID a pull_secret pod had pulled with credentials, kubelet
would re-verify the side-loaded copy for a pod without credentials, pull it itself, and fail
with ``no basic auth credentials``. side_load therefore publishes a variant with a new image ID
on every push.

The test guards the ordering (a credentialed pull of the source first, then side_load, on one
node) and that the IDs differ, on any cluster. It does not prove the re-verification itself:
the kind lab runs Kubernetes 1.32, which has no such gate (and 1.35+, where it is on by default,
refuses this host's cgroup v1). On a 1.35+ cluster the same test runs with the gate on.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest

from pytest_kindreg import KindCluster
from pytest_kindreg.diagnosis import pull_failure_reason, summarize_pod
from pytest_kindreg.strategies import PullSecretStrategy
from pytest_kindreg.strategies.base import PodPatch
from pytest_kindreg.workspace import KindPrivateRegistry

pytestmark = pytest.mark.e2e


def _run_on(workspace: KindPrivateRegistry, node: str, image: str, patch: PodPatch, timeout: float = 180.0) -> Any:
    """Run a pod on ``node`` (both pods must meet the same kubelet) until Running; fail with its events."""
    manifest = workspace.pod_manifest(image, patch=patch)
    manifest.spec.node_name = node
    workspace.core.create_namespaced_pod(workspace.namespace, manifest)
    deadline = time.monotonic() + timeout
    while True:
        pod = workspace.core.read_namespaced_pod(manifest.metadata.name, workspace.namespace)
        if pod.status.phase == "Running":
            return pod
        failure = pull_failure_reason(pod) or (pod.status.phase if pod.status.phase == "Failed" else None)
        if failure or time.monotonic() > deadline:
            events = workspace.events(manifest.metadata.name)
            pytest.fail(f"pod with {image} on {node} did not run: {failure or 'timeout'}\n{summarize_pod(pod, events)}")
        time.sleep(1.0)


def _image_id(kind_cluster: KindCluster, node: str, image: str) -> str:
    return kind_cluster.exec(
        node, ["crictl", "inspecti", "-o", "go-template", "--template", "{{.status.id}}", image]
    ).strip()


def _credentialed_pull_then_side_load(
    workspace: KindPrivateRegistry, kind_cluster: KindCluster, image: str, node: str
) -> None:
    # pull_secret's way, in this namespace and against this registry: the plain source image,
    # pulled by kubelet with a pull secret, so kubelet records its ID as pulled with credentials.
    plain = workspace.registry.push(
        image, repository=f"{workspace.namespace}/plain", tag=f"credentialed-{secrets.token_hex(3)}"
    )
    with_secret = PullSecretStrategy().prepare_namespace(workspace.context, workspace.core, workspace.namespace)
    _run_on(workspace, node, plain, PodPatch(with_secret.image_pull_secrets, "IfNotPresent"))

    # side_load's way: no credentials on the node, in the pod, or in the namespace's defaults.
    side_loaded = workspace.push(image)
    assert _image_id(kind_cluster, node, side_loaded) != _image_id(kind_cluster, node, plain)
    pod = _run_on(workspace, node, side_loaded, workspace.pod_patch)
    assert not pod.spec.image_pull_secrets


@pytest.mark.kindreg_strategy("side_load")
def test_side_load_runs_after_a_credentialed_pull_of_the_same_content(
    kind_private_registry: KindPrivateRegistry, kind_cluster: KindCluster, kindreg_test_image: str
) -> None:
    node = kind_cluster.nodes()[-1]
    _credentialed_pull_then_side_load(kind_private_registry, kind_cluster, kindreg_test_image, node)
