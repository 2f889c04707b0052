"""``workload_identity``: registry access follows the pod's ServiceAccount, not the node
(Kubernetes 1.34+, KEP-4412), as with GKE/Azure workload identity or Harbor's workload-identity
federation: kubelet hands a provider plugin the pod's ServiceAccount token, which is traded for
that ServiceAccount's own registry identity.

Proves "only pods of the ServiceAccounts we granted may pull": the test namespace's granted
ServiceAccount pulls, another one is refused until it is granted too.
"""

from __future__ import annotations

import pytest

from pytest_kindreg.workspace import KindPrivateRegistry


@pytest.mark.kindreg_strategy("workload_identity")
def test_only_granted_service_accounts_pull(
    kind_private_registry: KindPrivateRegistry, kindreg_test_image: str
) -> None:
    registry = kind_private_registry
    ref = registry.push(kindreg_test_image)
    # run_pod uses the namespace's granted ServiceAccount (kindreg-puller) by default.
    assert registry.run_pod(ref).status.phase == "Running"

    # ci-deployer is not granted yet: its pod gets no credentials.
    registry.core.create_namespaced_service_account(registry.namespace, {"metadata": {"name": "ci-deployer"}})
    registry.expect_pull_refused(registry.push(kindreg_test_image), service_account="ci-deployer")

    registry.grant_service_account("ci-deployer")
    assert registry.run_pod(registry.push(kindreg_test_image), service_account="ci-deployer").status.phase == "Running"
