"""KEP-2535 (kubelet re-verifies credentials for images already on a node) shown on real nodes.

Feature gate ``KubeletEnsureSecretPulledImages``: absent before Kubernetes 1.33, alpha and off in
1.33 and 1.34, beta and on by default from 1.35. Each test reads what the node's kubelet really
runs with (``/configz`` through the API server) and asserts the behaviour that policy implies, so
the same tests prove the gate on the lab's 1.35 variant and its absence on the 1.32 ones:

(a) an image kubelet pulled for a pod *with* a pull secret is refused to a pod without one;
(b) the control: a side-loaded copy with the *same* image ID is refused too, while side_load's
    new-ID copy runs;
(c) every strategy's ``run_pod`` and ``negative_control`` hold on one shared node and one source
    image, after a credentialed pull of it.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest

from pytest_kindreg import KindCluster, KindRegistryEnvironment
from pytest_kindreg.kubelet import CredentialVerification, credential_verification
from pytest_kindreg.strategies import PullSecretStrategy
from pytest_kindreg.strategies.base import REFUSED_WITHOUT_PASSWORD, PodPatch
from pytest_kindreg.workspace import KindPrivateRegistry, PullRefusal

pytestmark = pytest.mark.e2e

ALL = ("pull_secret", "side_load", "node_config", "access_token", "certificate", "credential_provider")
IF_NOT_PRESENT = PodPatch(image_pull_policy="IfNotPresent")


def _minor(version: str) -> int:
    match = re.match(r"v?1\.(\d+)\.", version)
    assert match, version
    return int(match.group(1))


@pytest.fixture(scope="module")
def node(kind_cluster: KindCluster) -> str:
    """One node for every pod of a test: kubelet's records are per node. The last one, a worker
    when the cluster has workers."""
    return kind_cluster.nodes()[-1]


@pytest.fixture(scope="module")
def verification(kind_cluster: KindCluster, node: str) -> CredentialVerification:
    return credential_verification(kind_cluster.api_client(), node)


def _image_id(cluster: KindCluster, node: str, image: str) -> str:
    return cluster.exec(
        node, ["crictl", "inspecti", "-o", "go-template", "--template", "{{.status.id}}", image]
    ).strip()


def _credentialed_pull(workspace: KindPrivateRegistry, node: str, image: str, repository: str) -> str:
    """The plain source image pushed to the workspace's registry and pulled by kubelet on ``node``
    for a pod with a pull secret: kubelet records its image ID as pulled with that secret."""
    reference = workspace.registry.push(
        image, repository=f"{workspace.namespace}/{repository}", tag=secrets.token_hex(3)
    )
    with_secret = PullSecretStrategy().prepare_namespace(workspace.context, workspace.core, workspace.namespace)
    patch = PodPatch(with_secret.image_pull_secrets, "IfNotPresent")
    assert workspace.run_pod(reference, patch=patch, node_name=node).status.phase == "Running"
    return reference


def _diagnosis(ws: KindPrivateRegistry, refusal: PullRefusal) -> list[str]:
    return ws.diagnose(ws.core.read_namespaced_pod(refusal.pod_name, ws.namespace))


def test_the_gate_follows_the_kubelet_version(kind_cluster: KindCluster) -> None:
    for name in kind_cluster.nodes():
        found = credential_verification(kind_cluster.api_client(), name)
        minor = _minor(found.kubelet_version)
        if minor >= 35:  # beta, on by default: the lab's 1.35 variant must show it
            assert found.policy == "NeverVerifyPreloadedImages", found.describe()
            assert found.verifies_pulled_images
        elif minor < 33:  # no such gate yet
            assert found.policy is None, found.describe()


@pytest.mark.kindreg_strategy("pull_secret")
def test_a_cached_image_is_refused_to_a_pod_without_the_secret(
    kind_private_registry: KindPrivateRegistry,
    kind_cluster: KindCluster,
    kindreg_test_image: str,
    node: str,
    verification: CredentialVerification,
) -> None:
    ws = kind_private_registry
    reference = ws.push(kindreg_test_image)
    assert ws.run_pod(reference, node_name=node).status.phase == "Running"  # with the Secret
    assert _image_id(kind_cluster, node, reference)  # the image is on the node now

    if not verification.verifies_pulled_images:
        # Without the gate the cached image answers for any pod: what KEP-2535 closes.
        assert ws.run_pod(reference, patch=IF_NOT_PRESENT, node_name=node).status.phase == "Running"
        return
    # kubelet's record ties the pulled image to the Secret of this namespace...
    records = kind_cluster.exec(node, ["sh", "-c", "cat /var/lib/kubelet/image_manager/pulled/*"])
    assert ws.namespace in records
    # ...so a pod without it must pull, and the node holds no credentials: refused.
    refusal = ws.expect_pull_refused(reference, patch=IF_NOT_PRESENT, node_name=node)
    assert REFUSED_WITHOUT_PASSWORD.search(refusal.reason)
    assert any("KEP-2535" in cause for cause in _diagnosis(ws, refusal))  # diagnosed as re-verification
    never = ws.expect_pull_refused(
        reference, patch=PodPatch(image_pull_policy="Never"), node_name=node, pattern=re.compile("ErrImageNeverPull")
    )
    assert "IS on the node" in _diagnosis(ws, never)[0]


@pytest.mark.kindreg_strategy("side_load")
def test_a_side_loaded_copy_with_the_same_image_id_and_side_loads_defence(
    kind_private_registry: KindPrivateRegistry,
    kind_cluster: KindCluster,
    kindreg_test_image: str,
    node: str,
    verification: CredentialVerification,
) -> None:
    ws = kind_private_registry
    credentialed = _credentialed_pull(ws, node, kindreg_test_image, "plain")

    # The control: the same image (same ID) side-loaded under another tag, as side_load did before
    # it published new IDs. No credentials on the node, in the pod or in the namespace's defaults.
    same_id = ws.registry.push(kindreg_test_image, repository=f"{ws.namespace}/plain", tag="side-loaded")
    ws.strategy.publish(ws.context, same_id)
    assert _image_id(kind_cluster, node, same_id) == _image_id(kind_cluster, node, credentialed)
    if verification.verifies_pulled_images:
        refusal = ws.expect_pull_refused(same_id, patch=ws.pod_patch, node_name=node)
        assert REFUSED_WITHOUT_PASSWORD.search(refusal.reason)
    else:
        assert ws.run_pod(same_id, node_name=node).status.phase == "Running"

    # side_load's defence: every push is a variant with a new image ID, which kubelet never pulled.
    defended = ws.push(kindreg_test_image)
    assert _image_id(kind_cluster, node, defended) != _image_id(kind_cluster, node, credentialed)
    pod = ws.run_pod(defended, node_name=node)
    assert pod.status.phase == "Running"
    assert not pod.spec.image_pull_secrets


@pytest.mark.kindreg_strategy(*ALL)
def test_every_strategy_holds_on_one_node_after_a_credentialed_pull(
    kindreg_environment: KindRegistryEnvironment, kind_cluster: KindCluster, kindreg_test_image: str, node: str
) -> None:
    # pull_secret first: kubelet pulls the source image ID with a Secret, then every strategy
    # pulls the same source (side_load: a new ID) on the same node, and its negative control holds.
    assert set(ALL) <= set(kindreg_environment.contexts), "the marker sets up every strategy it names"
    results: dict[str, Any] = {}
    for name in ALL:
        with kindreg_environment.workspace(name, test_name=f"kep2535-{name}") as ws:
            reference = ws.push(kindreg_test_image)
            pod = ws.run_pod(reference, node_name=node)
            refusal = ws.negative_control(kindreg_test_image, node_name=node)
            assert ws.strategy.refusal.search(refusal.reason), f"{name}: {refusal.message}"
            results[name] = (pod.status.phase, refusal.reason)
    assert [phase for phase, _ in results.values()] == ["Running"] * len(ALL), results
