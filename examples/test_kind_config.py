"""Your own kind config: a 2-node cluster with a labelled worker, and a pod pinned to that worker
pulling under every strategy.

The cluster comes from ``examples/kind-config.yaml`` (ini ``kindreg_kind_config`` in this
project's ``pyproject.toml``; ``--kindreg-kind-config PATH`` on the command line). The plugin adds
what each strategy needs to every node, workers included, so a pod scheduled on any node pulls.
Use this shape when your charts expect node labels, a pod subnet, port mappings or mounts.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_kindreg.workspace import KindPrivateRegistry

POOL = {"kindreg.example/pool": "pull"}


@pytest.mark.kindreg_strategy("pull_secret", "side_load", "node_config", "access_token", "certificate")
def test_pod_on_the_labelled_worker_pulls(
    kind_private_registry: KindPrivateRegistry, kindreg_test_image: str, kindreg_kind_config: Any
) -> None:
    if kindreg_kind_config is None:
        pytest.fail("this example needs its kind config: --kindreg-kind-config examples/kind-config.yaml")
    ref = kind_private_registry.push(kindreg_test_image)
    pod = kind_private_registry.run_pod(ref, node_selector=POOL)
    node = kind_private_registry.core.read_node(pod.spec.node_name)
    assert node.metadata.labels.items() >= POOL.items()
    assert "node-role.kubernetes.io/control-plane" not in node.metadata.labels

    refusal = kind_private_registry.negative_control(kindreg_test_image, node_selector=POOL)
    assert kind_private_registry.strategy.refusal.fullmatch(refusal.reason), refusal.message
