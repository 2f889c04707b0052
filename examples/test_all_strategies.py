"""The same test under every strategy, on ONE shared cluster (one registry per strategy).

Proves that the five ways of kind's "Private Registries" guide and kubelet's credential provider
plugins (node-wide, and bound to the pod's ServiceAccount) work side by side, and that each one's
credentials are what made its pull work (its negative control is refused). The marker parametrizes
the test, so ``--kindreg-strategy NAME`` runs just one of them, and ``--kindreg-exclude-strategy
workload_identity`` leaves out the one that needs Kubernetes 1.34 or newer.
Use this shape when your own code must work whichever way a cluster gets registry access.
"""

from __future__ import annotations

import pytest

from pytest_kindreg.workspace import KindPrivateRegistry


@pytest.mark.kindreg_strategy(
    "pull_secret",
    "side_load",
    "node_config",
    "access_token",
    "certificate",
    "credential_provider",
    "workload_identity",
)
def test_pull_under_every_strategy(kind_private_registry: KindPrivateRegistry, kindreg_test_image: str) -> None:
    ref = kind_private_registry.push(kindreg_test_image)
    pod = kind_private_registry.run_pod(ref)
    assert pod.status.phase == "Running"

    refusal = kind_private_registry.negative_control(kindreg_test_image)
    assert kind_private_registry.strategy.refusal.fullmatch(refusal.reason), refusal.message
