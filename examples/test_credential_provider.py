"""``credential_provider``: nodes pull through a kubelet image credential provider plugin, the way
EKS, GKE and AKS nodes do (``ecr-credential-provider``, ``auth-provider-gcp``,
``acr-credential-provider``), not with a ``config.json``.

Proves that kubelet calls the plugin for the registry's image host and pulls with what it answers,
and that an image host the plugin does not match gets no credentials (the negative control).
Use it to test a cluster setup that relies on a provider plugin, or a plugin of your own.
"""

from __future__ import annotations

import pytest

from pytest_kindreg import KindCluster
from pytest_kindreg.workspace import KindPrivateRegistry


@pytest.mark.kindreg_strategy("credential_provider")
def test_pod_pulls_through_the_provider_plugin(
    kind_private_registry: KindPrivateRegistry, kind_cluster: KindCluster, kindreg_test_image: str
) -> None:
    ref = kind_private_registry.push(kindreg_test_image)
    pod = kind_private_registry.run_pod(ref)
    assert pod.status.phase == "Running"
    assert not pod.spec.image_pull_secrets  # nothing in the pod: the node's plugin supplied them

    # No node keeps credentials for this registry in kubelet's config.json (other strategies of the
    # same cluster may keep theirs there): the plugin is where they came from.
    context = kind_private_registry.context
    for node in kind_cluster.nodes():
        assert context.image_host not in context.node_credentials.keys_on(kind_cluster, node)

    refusal = kind_private_registry.negative_control(kindreg_test_image)
    assert refusal.image.startswith(kind_private_registry.context.anonymous_host + "/")
