"""``node_config``: a docker ``config.json`` mounted at ``/var/lib/kubelet/config.json`` on every node.

Proves that pods pull from the private registry with no Secret at all, and that the same
registry reached under a host name the file has no entry for is refused — so the mounted
file is what supplied the credentials.
Use it when every pod of a cluster pulls from the same registry and credentials are known
when the cluster is created (``extraMounts`` only apply at creation).
"""

from __future__ import annotations

import pytest

from pytest_kindreg.strategies.base import REFUSED_WITHOUT_PASSWORD
from pytest_kindreg.workspace import KindPrivateRegistry


@pytest.mark.kindreg_strategy("node_config")
def test_pod_pulls_with_node_config(kind_private_registry: KindPrivateRegistry, kindreg_test_image: str) -> None:
    ref = kind_private_registry.push(kindreg_test_image)
    pod = kind_private_registry.run_pod(ref)
    assert pod.status.phase == "Running"
    assert not pod.spec.image_pull_secrets  # the credentials come from the node, not the pod

    refusal = kind_private_registry.negative_control(kindreg_test_image)
    # Node credentials cannot be removed for one pod: the control uses an alias host they are not keyed on.
    assert refusal.image.startswith(kind_private_registry.context.anonymous_host + "/")
    assert REFUSED_WITHOUT_PASSWORD.fullmatch(refusal.reason)
