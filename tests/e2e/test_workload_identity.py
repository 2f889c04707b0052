"""``workload_identity`` on real nodes (Kubernetes >= 1.34): pulls bound to the pod's ServiceAccount.

kubelet hands the provider plugin the pod's ServiceAccount token (KEP-4412); the plugin checks it
with a TokenReview and answers with that ServiceAccount's own registry identity. On 1.35, KEP-2535
keys kubelet's records of such pulls on the ServiceAccount (namespace, name, UID). Every pod of a
test runs on one node, so that node's image cache and pull records are what is tested.

On a lab variant older than 1.34 these tests are deselected (the variant's options exclude the
strategy) and ``test_selecting_it_on_an_older_node_is_one_error`` runs instead.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from pytest_kindreg import KindCluster, KindRegistryEnvironment
from pytest_kindreg.credential_providers import IDENTITY_ANNOTATION
from pytest_kindreg.docker_engine import LABEL_RUN
from pytest_kindreg.errors import ClusterError
from pytest_kindreg.settings import Settings
from pytest_kindreg.strategies.base import REFUSED_WITHOUT_PASSWORD
from pytest_kindreg.workspace import KindPrivateRegistry

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def node(kind_cluster: KindCluster) -> str:
    return kind_cluster.nodes()[-1]


def _pulled_events(ws: KindPrivateRegistry, pod: Any) -> list[str]:
    return [e.message for e in ws.events(pod.metadata.name) if e.reason == "Pulling"]


@pytest.mark.kubernetes_at_least("1.34")
@pytest.mark.kindreg_strategy("workload_identity")
def test_granted_service_account_pulls_and_others_do_not(
    kind_private_registry: KindPrivateRegistry, kindreg_test_image: str, node: str
) -> None:
    ws = kind_private_registry
    reference = ws.push(kindreg_test_image)
    pod = ws.run_pod(reference, node_name=node)
    assert pod.spec.service_account_name == "kindreg-puller"
    assert pod.status.phase == "Running"

    # The namespace's `default` ServiceAccount has no identity: kubelet does not even call the plugin.
    refusal = ws.expect_pull_refused(ws.push(kindreg_test_image), service_account="default", node_name=node)
    assert REFUSED_WITHOUT_PASSWORD.search(refusal.reason)

    # Copying the annotation does not make an identity: the plugin checks the token's ServiceAccount.
    granted = ws.core.read_namespaced_service_account("kindreg-puller", ws.namespace)
    from kubernetes import client

    ws.core.create_namespaced_service_account(
        ws.namespace,
        client.V1ServiceAccount(
            metadata=client.V1ObjectMeta(name="impostor", annotations=dict(granted.metadata.annotations))
        ),
    )
    impostor = ws.expect_pull_refused(ws.push(kindreg_test_image), service_account="impostor", node_name=node)
    causes = ws.diagnose(ws.core.read_namespaced_pod(impostor.pod_name, ws.namespace))
    assert any("has no registry identity granted" in cause for cause in causes), causes


@pytest.mark.kubernetes_at_least("1.35")
@pytest.mark.kindreg_strategy("workload_identity")
def test_a_cached_image_is_checked_again_for_another_service_account(
    kind_private_registry: KindPrivateRegistry, kindreg_test_image: str, node: str, kind_cluster: KindCluster
) -> None:
    """KEP-2535 x KEP-4412: the image pulled for one ServiceAccount is on the node, yet a pod of
    another one must pull it again with its own identity, and is refused without one."""
    ws = kind_private_registry
    reference = ws.push(kindreg_test_image)
    assert ws.run_pod(reference, node_name=node).status.phase == "Running"
    kind_cluster.exec(node, ["crictl", "inspecti", "-q", reference])  # cached on that node

    from kubernetes import client

    ws.core.create_namespaced_service_account(
        ws.namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="other"))
    )
    ws.expect_pull_refused(reference, service_account="other", node_name=node)

    ws.grant_service_account("other")
    pod = ws.run_pod(reference, service_account="other", node_name=node)
    assert _pulled_events(ws, pod), "kubelet used the cached image without checking the new ServiceAccount"


@pytest.mark.kubernetes_at_least("1.35")
@pytest.mark.kindreg_strategy("workload_identity")
def test_a_recreated_service_account_is_checked_again(
    kind_private_registry: KindPrivateRegistry, kindreg_test_image: str, node: str
) -> None:
    from kubernetes import client

    ws = kind_private_registry
    reference = ws.push(kindreg_test_image)
    assert ws.run_pod(reference, node_name=node).status.phase == "Running"
    old = ws.core.read_namespaced_service_account("kindreg-puller", ws.namespace)
    ws.core.delete_namespaced_service_account("kindreg-puller", ws.namespace)
    ws.core.create_namespaced_service_account(
        ws.namespace,
        client.V1ServiceAccount(
            metadata=client.V1ObjectMeta(name="kindreg-puller", annotations=dict(old.metadata.annotations))
        ),
    )
    # Same name, same annotation, a new UID: the record of the old one does not cover it, and the
    # plugin finds the grant was for the old UID.
    refusal = ws.expect_pull_refused(reference, node_name=node)
    causes = ws.diagnose(ws.core.read_namespaced_pod(refusal.pod_name, ws.namespace))
    assert any("is not the one granted" in cause for cause in causes), causes

    ws.grant_service_account("kindreg-puller")
    pod = ws.run_pod(reference, node_name=node)
    assert _pulled_events(ws, pod), "kubelet did not check the re-created ServiceAccount"


@pytest.mark.kubernetes_at_least("1.35")
@pytest.mark.kindreg_strategy("workload_identity")
def test_kubelets_pull_records_name_the_service_account(
    kind_private_registry: KindPrivateRegistry, kindreg_test_image: str, node: str, kind_cluster: KindCluster
) -> None:
    ws = kind_private_registry
    reference = ws.push(kindreg_test_image)
    assert ws.run_pod(reference, node_name=node).status.phase == "Running"
    image_id = kind_cluster.exec(
        node, ["crictl", "inspecti", "-o", "go-template", "--template", "{{.status.id}}", reference]
    ).strip()
    records = kind_cluster.exec(node, ["sh", "-c", "cat /var/lib/kubelet/image_manager/pulled/* | tr '\\n' ' '; echo"])
    account = ws.core.read_namespaced_service_account("kindreg-puller", ws.namespace)
    wanted = {"uid": account.metadata.uid, "namespace": ws.namespace, "name": "kindreg-puller"}
    found = []
    for record in re.findall(r"\{.*?\}\s*(?=\{|$)", records.strip()) or [records]:
        try:
            found.append(json.loads(record))
        except ValueError:
            continue
    mine = [r for r in found if r.get("imageRef") == image_id]
    assert mine, f"no pull record for {image_id} on {node}"
    accounts = [
        sa
        for r in mine
        for mapping in (r.get("credentialMapping") or {}).values()
        for sa in mapping.get("kubernetesServiceAccounts") or []
    ]
    assert wanted in accounts, accounts


@pytest.mark.kindreg_strategy("workload_identity")
@pytest.mark.kubernetes_at_least("1.34")
def test_the_grant_is_an_annotation_and_a_0600_file_on_every_node(
    kind_private_registry: KindPrivateRegistry, kind_cluster: KindCluster
) -> None:
    ws = kind_private_registry
    account = ws.core.read_namespaced_service_account("kindreg-puller", ws.namespace)
    assert account.metadata.annotations[IDENTITY_ANNOTATION].startswith("kindreg-sa-")
    for name in kind_cluster.nodes():
        mode = kind_cluster.exec(
            name, ["stat", "-c", "%a", "/etc/kubernetes/kindreg-credential-providers/secrets/workload.json"]
        )
        assert mode.strip() == "600"


@pytest.mark.kubernetes_below("1.34")
def test_selecting_it_on_an_older_node_is_one_error(pytestconfig: pytest.Config, kindreg_docker: Any) -> None:
    settings = Settings.from_config(pytestconfig)
    environment = KindRegistryEnvironment(
        ["pull_secret", "workload_identity"], kind_bin=settings.kind_bin, node_image=settings.node_image
    )
    with pytest.raises(ClusterError) as refused:
        environment.start()
    message = str(refused.value)
    assert "strategy workload_identity needs Kubernetes >= 1.34" in message
    assert re.search(r"runs Kubernetes v1\.3[0-3]\.\d+", message), message
    assert "\n" not in message
    # Before any registry started: this environment made no container and no network.
    own = {"label": f"{LABEL_RUN}={environment.identity.run_id}"}
    assert kindreg_docker.containers.list(all=True, filters=own) == []
    assert kindreg_docker.networks.list(filters=own) == []
