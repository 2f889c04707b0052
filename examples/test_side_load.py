"""``side_load``: the host pulls with credentials, then ``kind load`` copies the image into every node.

Proves that a pod runs an image the nodes could never pull themselves (they hold no
credentials), and that a tag which was not side-loaded is refused for lack of credentials.
Use it when nodes must not know any registry password, or to test air-gapped deployments;
pods need a pinned tag and ``imagePullPolicy: IfNotPresent``.
"""

from __future__ import annotations

import pytest

from pytest_kindreg.strategies.base import REFUSED_WITHOUT_PASSWORD
from pytest_kindreg.workspace import KindPrivateRegistry


@pytest.mark.kindreg_strategy("side_load")
def test_pod_runs_side_loaded_image(kind_private_registry: KindPrivateRegistry, kindreg_test_image: str) -> None:
    ref = kind_private_registry.push(kindreg_test_image)
    assert not ref.endswith(":latest")  # ':latest' would make kubelet pull instead of using the loaded image
    pod = kind_private_registry.run_pod(ref)
    assert pod.status.phase == "Running"
    assert pod.spec.containers[0].image_pull_policy == "IfNotPresent"

    refusal = kind_private_registry.negative_control(kindreg_test_image)
    # A tag that was never loaded: kubelet has to pull it, and the nodes have no credentials.
    assert REFUSED_WITHOUT_PASSWORD.fullmatch(refusal.reason)
