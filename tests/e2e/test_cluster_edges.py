"""End-to-end against a real kind cluster: the races at the cluster's edges.

- A namespace is used the moment ``setup()`` returns: pods and the ``default`` ServiceAccount
  patch must not meet ``serviceaccount "default" not found``.
- ``restart_kubelet`` returns only after the node lease was renewed by the new kubelet, judged
  against the lease's own earlier value (never the host clock).
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_kindreg import KindCluster
from pytest_kindreg.cluster import lease_renewed
from pytest_kindreg.strategies.base import PodPatch
from pytest_kindreg.workspace import KindPrivateRegistry

pytestmark = pytest.mark.e2e


@pytest.mark.kindreg_strategy("pull_secret")
def test_fresh_namespaces_take_pods_and_service_account_patches_at_once(
    kind_private_registry: KindPrivateRegistry, kindreg_environment: Any, kindreg_test_image: str
) -> None:
    reference = kind_private_registry.push(kindreg_test_image)
    for index in range(5):
        # Back to back, no pause: each namespace is created and used at once.
        with kindreg_environment.workspace("pull_secret", test_name=f"sa-race-{index}") as workspace:
            workspace.attach_pull_secrets_to_default_service_account()
            pod = workspace.run_pod(reference, patch=PodPatch(), command=["true"])
            assert pod.status.phase in ("Running", "Succeeded")


def test_kubelet_restart_waits_for_the_new_kubelet_to_renew_its_lease(kind_cluster: KindCluster) -> None:
    from kubernetes import client

    node = kind_cluster.nodes()[-1]
    coordination = client.CoordinationV1Api(kind_cluster.api_client())
    before = coordination.read_namespaced_lease(node, "kube-node-lease").spec.renew_time
    kind_cluster.restart_kubelet(node)
    after = coordination.read_namespaced_lease(node, "kube-node-lease").spec.renew_time
    assert lease_renewed(before, after)
    conditions = client.CoreV1Api(kind_cluster.api_client()).read_node_status(node).status.conditions
    assert [c.status for c in conditions if c.type == "Ready"] == ["True"]
