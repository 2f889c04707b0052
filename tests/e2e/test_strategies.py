"""End-to-end against a real kind cluster: every strategy pulls a pushed image into a Running
pod, and its negative control proves the pull worked *because of* the strategy.

These run wherever ``kind`` and Docker are present (see .github/workflows/ci.yml) and skip
elsewhere with the plugin's reason; ``--kindreg-strict`` makes that an error.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from pytest_kindreg import KindCluster, PodStartError
from pytest_kindreg.strategies.base import REFUSED_WITHOUT_PASSWORD
from pytest_kindreg.workspace import KindPrivateRegistry

pytestmark = pytest.mark.e2e

ALL = ("pull_secret", "side_load", "node_config", "access_token", "certificate", "credential_provider")


@pytest.mark.kindreg_strategy(*ALL)
def test_pull_works_with_the_strategy_and_fails_without_it(
    kind_private_registry: KindPrivateRegistry, kindreg_test_image: str
) -> None:
    reference = kind_private_registry.push(kindreg_test_image)
    pod = kind_private_registry.run_pod(reference)
    assert pod.status.phase == "Running"
    assert pod.spec.containers[0].image == reference

    refusal = kind_private_registry.negative_control(kindreg_test_image)
    assert kind_private_registry.strategy.refusal.search(refusal.reason)


@pytest.mark.kindreg_strategy("pull_secret")
def test_pull_secret_is_namespaced_and_keyed_on_the_image_host(kind_private_registry: KindPrivateRegistry) -> None:
    from pytest_kindreg.strategies.pull_secret import SECRET_NAME

    secret = kind_private_registry.core.read_namespaced_secret(SECRET_NAME, kind_private_registry.namespace)
    assert secret.type == "kubernetes.io/dockerconfigjson"
    import base64
    import json

    auths = json.loads(base64.b64decode(secret.data[".dockerconfigjson"]))["auths"]
    assert list(auths) == [kind_private_registry.registry.host]
    others = kind_private_registry.core.list_secret_for_all_namespaces(field_selector=f"metadata.name={SECRET_NAME}")
    assert {s.metadata.namespace for s in others.items} >= {kind_private_registry.namespace}
    assert "default" not in {s.metadata.namespace for s in others.items}


@pytest.mark.kindreg_strategy("pull_secret")
def test_failed_pull_is_diagnosed(kind_private_registry: KindPrivateRegistry, kindreg_test_image: str) -> None:
    from pytest_kindreg.strategies.base import PodPatch

    reference = kind_private_registry.push(kindreg_test_image)
    with pytest.raises(PodStartError) as info:
        kind_private_registry.run_pod(reference, patch=PodPatch(image_pull_secrets=("kindreg-pull-secrte",)))
    text = str(info.value)
    assert "ErrImagePull" in text or "ImagePullBackOff" in text
    assert any("does not exist" in cause for cause in info.value.diagnosis)
    assert any("kindreg-pull-secret" in cause for cause in info.value.diagnosis)  # "did you mean"
    assert kind_private_registry.registry.password not in text


@pytest.mark.kindreg_strategy("pull_secret")
def test_pull_secret_reader_role_is_least_privilege(kind_private_registry: KindPrivateRegistry) -> None:
    from kubernetes import client

    from pytest_kindreg.rbac import can_i, pull_secret_reader_role, role_binding, wait_until_allowed
    from pytest_kindreg.strategies.pull_secret import SECRET_NAME

    ns = kind_private_registry.namespace
    core, rbac = kind_private_registry.core, client.RbacAuthorizationV1Api(kind_private_registry.api_client)
    core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="dev-team")))
    rbac.create_namespaced_role(ns, pull_secret_reader_role(ns, SECRET_NAME))
    rbac.create_namespaced_role_binding(ns, role_binding(ns, "pull-secret-reader", "dev-team"))
    api = kind_private_registry.api_client
    wait_until_allowed(api, ns, "dev-team", "get", SECRET_NAME)  # the binding is in effect...
    assert can_i(api, ns, "dev-team", "get", SECRET_NAME)  # ...and then only for this
    assert not can_i(api, ns, "dev-team", "get", "some-other-secret")
    assert not can_i(api, ns, "dev-team", "list")
    assert not can_i(api, ns, "dev-team", "update", SECRET_NAME)
    assert not can_i(api, ns, "default", "get", SECRET_NAME)


@pytest.mark.kindreg_strategy("access_token")
def test_access_token_rotation(kind_private_registry: KindPrivateRegistry, kindreg_test_image: str) -> None:
    registry = kind_private_registry.registry
    strategy: Any = kind_private_registry.strategy
    old = registry.credentials
    assert old is not None

    # The registry issues a new token: the one still on the nodes stops working...
    new = registry.rotate_credentials()
    assert requests.get(f"{registry.url}/v2/", auth=(old.username, old.password), timeout=5).status_code == 401
    stale = kind_private_registry.push(kindreg_test_image)
    refusal = kind_private_registry.expect_pull_refused(stale, pattern=REFUSED_WITHOUT_PASSWORD)
    assert "401" in refusal.message or "authorization failed" in refusal.message

    # ...until the new one is written into the nodes and kubelet restarted.
    strategy.install(kind_private_registry.context, new)
    fresh = kind_private_registry.push(kindreg_test_image)
    assert kind_private_registry.run_pod(fresh).status.phase == "Running"

    # rotate() does both steps in one call.
    rotated = kind_private_registry.rotate_credentials()
    assert rotated != new
    assert kind_private_registry.run_pod(kind_private_registry.push(kindreg_test_image)).status.phase == "Running"


@pytest.mark.kindreg_strategy("node_config", "access_token")
def test_node_config_and_access_token_share_kubelet_config(
    kind_private_registry: KindPrivateRegistry, kind_cluster: KindCluster, kindreg_environment: Any
) -> None:
    # Both strategies are collected (this marker), so the environment set up both.
    hosts = {kindreg_environment.contexts[name].image_host for name in ("node_config", "access_token")}
    for node in kind_cluster.nodes():
        # One file, merged: neither strategy clobbered the other's entry.
        assert hosts <= set(kind_private_registry.context.node_credentials.keys_on(kind_cluster, node))


def test_one_cluster_serves_every_strategy(kind_cluster: KindCluster, kindreg_environment: Any) -> None:
    from kubernetes import client

    assert set(kindreg_environment.contexts) >= {"pull_secret"}
    for ctx in kindreg_environment.contexts.values():
        assert ctx.cluster is kind_cluster
    hosting = client.CoreV1Api(kind_cluster.api_client()).read_namespaced_config_map(
        "local-registry-hosting", "kube-public"
    )
    assert "localRegistryHosting.v1" in hosting.data
    assert kind_cluster.kubeconfig.stat().st_mode & 0o077 == 0


def test_containerd_is_detected_at_runtime(kind_cluster: KindCluster) -> None:
    node = kind_cluster.nodes()[0]
    major, _minor, _patch = kind_cluster.containerd_version(node)
    config_version, paths = kind_cluster.containerd_config(node)
    assert major in (1, 2)
    assert config_version == (2 if major == 1 else 3)
    assert any("/etc/containerd/certs.d" in p for p in paths)


@pytest.mark.kindreg_strategy("pull_secret")
def test_pull_secret_through_the_default_service_account(
    kind_private_registry: KindPrivateRegistry, kindreg_test_image: str
) -> None:
    from pytest_kindreg.strategies.base import PodPatch

    reference = kind_private_registry.push(kindreg_test_image)
    kind_private_registry.attach_pull_secrets_to_default_service_account()
    # The pod itself names no pull secret: the ServiceAccount admission adds it.
    pod = kind_private_registry.run_pod(reference, patch=PodPatch())
    assert [s.name for s in pod.spec.image_pull_secrets] == ["kindreg-pull-secret"]


@pytest.mark.kindreg_strategy("pull_secret")
def test_a_pull_made_before_kubelet_had_the_secret_is_retried(
    kind_private_registry: KindPrivateRegistry, kindreg_test_image: str
) -> None:
    """kubelet waits at most 1 s for its secret cache, so on a busy node it may pull without a
    pull secret that exists (FailedToRetrieveImagePullSecret). run_pod then waits for kubelet's
    next pull instead of failing. Made here for real: the secret is created after the first pull."""
    from pytest_kindreg.strategies.pull_secret import SECRET_NAME, PullSecretStrategy

    ws = kind_private_registry
    reference = ws.push(kindreg_test_image)
    ws.core.delete_namespaced_secret(SECRET_NAME, ws.namespace)
    pod, failure = ws._start_pod(reference, None, None, 120.0, None, None, None)
    assert failure in ("ErrImagePull", "ImagePullBackOff"), failure
    # While the secret is still missing, the failure stands at once: retrying would not help.
    started = time.monotonic()
    assert ws._retry_if_secret_cache_missed(pod, failure, 120.0)[1] == failure
    assert time.monotonic() - started < 5
    PullSecretStrategy().prepare_namespace(ws.context, ws.core, ws.namespace)
    pod, failure, events = ws._retry_if_secret_cache_missed(pod, failure, 120.0)
    assert failure is None, [e.message for e in events]
    assert pod.status.phase == "Running"
