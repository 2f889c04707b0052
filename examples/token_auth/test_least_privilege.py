"""Least privilege under every strategy, with a token-auth registry (``kindreg_registry_auth =
token``): the cluster's identity pulls what its scope names, and nothing more.

For each strategy: its pod pulls and its negative control is refused, as in htpasswd mode; the
credentials it gave the cluster cannot push (the refusal names the missing ``push`` action;
certificate's credential is its client certificate, which the realm reads as well); and a
repository outside ``kindreg_pull_scope`` is refused to the cluster although the host pushed it —
diagnosed as a scope problem, not a wrong password.
"""

from __future__ import annotations

import re
import secrets

import pytest
import requests

from pytest_kindreg.errors import RegistryError
from pytest_kindreg.registry_auth import RegistryAuth
from pytest_kindreg.workspace import KindPrivateRegistry

ALL = (
    "pull_secret",
    "side_load",
    "node_config",
    "access_token",
    "certificate",
    "credential_provider",
    "workload_identity",
)


@pytest.mark.kindreg_strategy(*ALL)
def test_pulls_hold_in_token_mode(kind_private_registry: KindPrivateRegistry, kindreg_test_image: str) -> None:
    assert kind_private_registry.run_pod(kind_private_registry.push(kindreg_test_image)).status.phase == "Running"
    refusal = kind_private_registry.negative_control(kindreg_test_image)
    assert kind_private_registry.strategy.refusal.search(refusal.reason), refusal.message


@pytest.mark.kindreg_strategy(*ALL)
def test_the_clusters_identity_cannot_push_or_read_outside_its_scope(
    kind_private_registry: KindPrivateRegistry, kindreg_test_image: str
) -> None:
    ws = kind_private_registry
    registry = ws.registry
    assert registry.token_auth
    repository = f"{ws.namespace}/by-cluster"
    if registry.credentials is None:
        # certificate: the cluster's credential is its client certificate, which the realm reads too.
        as_cluster = RegistryAuth(None, registry._realm_url, **registry.tls_kwargs())
        upload = requests.post(
            f"{registry.url}/v2/{repository}/blobs/uploads/", auth=as_cluster, timeout=10, **registry.tls_kwargs()
        )
        assert upload.status_code == 401 and 'error="insufficient_scope"' in upload.headers["WWW-Authenticate"]
        assert registry.granted_actions(repository) == ["pull"]  # push is the missing action
    else:
        with pytest.raises(RegistryError, match="the 'push' action is missing, this identity is read-only"):
            registry.push(kindreg_test_image, repository=repository, credentials=registry.credentials)

    outside = registry.push(kindreg_test_image, repository="outside/busybox", tag=secrets.token_hex(3))
    if ws.strategy.name == "side_load":  # the host pulls for the cluster, as the cluster's identity
        with pytest.raises(RegistryError, match="granted nothing on repository:outside/busybox"):
            ws.strategy.publish(ws.context, outside)
        return
    refusal = ws.expect_pull_refused(
        outside, pattern=re.compile(r"insufficient_scope|access to the resource is denied")
    )
    causes = ws.diagnose(ws.core.read_namespaced_pod(refusal.pod_name, ws.namespace))
    assert "Not a wrong password" in causes[0], causes
