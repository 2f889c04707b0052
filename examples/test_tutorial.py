"""A pod pulls from a private registry only with credentials: the tutorial's test."""

import pytest

from pytest_kindreg import KindPrivateRegistry


@pytest.mark.kindreg_strategy("pull_secret", "side_load")
def test_pod_pulls_only_with_credentials(kind_private_registry: KindPrivateRegistry, kindreg_test_image: str) -> None:
    # Push the local test image to this strategy's private registry, under a fresh tag.
    ref = kind_private_registry.push(kindreg_test_image)
    # A pod that uses the strategy's credentials runs.
    pod = kind_private_registry.run_pod(ref)
    assert pod.status.phase == "Running"
    # The same image, the strategy's credentials removed: the node's pull is refused.
    refusal = kind_private_registry.negative_control(kindreg_test_image)
    assert kind_private_registry.strategy.refusal.fullmatch(refusal.reason)
