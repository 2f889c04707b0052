"""Credentials that expire on a clock, as cloud registries' do (ECR's last 12 h, GCP's access
tokens 1 h), and service-account key files used whole as the password (seed 000's ``_json_key``).

* an access token in the nodes works until its TTL, then the node's pull says "access token
  expired"; ``rotate_credentials()`` installs a fresh one and pulls work again;
* a pull-secret refresher (here a loop in the test; in your cluster a CronJob or an operator)
  renews the Secret's token before it expires, and pods keep pulling across three expiries;
* a pull secret made with seed 002's own ``kubectl create secret docker-registry ...
  --docker-username=_json_key --docker-password="$(cat key.json)"`` pulls, and the same key with one
  character changed past byte 72 (all bcrypt would look at) is refused.
"""

from __future__ import annotations

import time

import pytest

from pytest_kindreg import KindCluster
from pytest_kindreg.strategies.base import PodPatch
from pytest_kindreg.strategies.pull_secret import SECRET_NAME, pull_secret_manifest
from pytest_kindreg.workspace import KindPrivateRegistry

TTL = 15.0  # seconds: short, so the test sees several expiries


@pytest.mark.kindreg_strategy("access_token")
def test_node_access_token_expires_and_rotation_renews_it(
    kind_private_registry: KindPrivateRegistry, kindreg_test_image: str
) -> None:
    ws = kind_private_registry
    strategy = ws.strategy
    token = ws.registry.issue_access_token(ttl=TTL)
    issued = time.monotonic()
    strategy.install(ws.context, token)  # type: ignore[attr-defined]  # into every node, kubelet restarted
    assert ws.run_pod(ws.push(kindreg_test_image)).status.phase == "Running"

    time.sleep(max(0.0, TTL - (time.monotonic() - issued)) + 1)
    refusal = ws.expect_pull_refused(ws.push(kindreg_test_image))  # a fresh tag: the node must pull
    assert "401 Unauthorized (access token expired)" in refusal.message

    ws.rotate_credentials()  # a fresh token into the nodes
    assert ws.run_pod(ws.push(kindreg_test_image)).status.phase == "Running"


@pytest.mark.kindreg_strategy("pull_secret")
def test_a_refresher_keeps_pods_pulling_across_expiries(
    kind_private_registry: KindPrivateRegistry, kindreg_test_image: str
) -> None:
    ws = kind_private_registry

    def refresh() -> float:
        """What a pull-secret refresher does: a fresh short-lived token into the Secret."""
        token = ws.registry.issue_access_token(ttl=TTL)
        ws.core.replace_namespaced_secret(
            SECRET_NAME,
            ws.namespace,
            pull_secret_manifest(SECRET_NAME, ws.namespace, ws.registry.host, ws.context, token),
        )
        return time.monotonic()

    started = renewed = refresh()
    pulls = 0
    while time.monotonic() - started < 3 * TTL + 1:  # three tokens expire meanwhile
        if time.monotonic() - renewed > TTL / 2:
            renewed = refresh()  # renewed at half-life, never late
        assert ws.run_pod(ws.push(kindreg_test_image)).status.phase == "Running"
        pulls += 1
    assert pulls >= 3

    # Without the refresher the last token runs out: the loop is what kept pods pulling.
    time.sleep(max(0.0, TTL - (time.monotonic() - renewed)) + 1)
    refusal = ws.expect_pull_refused(ws.push(kindreg_test_image))
    assert "access token expired" in refusal.message


@pytest.mark.kindreg_strategy("pull_secret")
def test_json_key_pull_secret_checked_whole(
    kind_private_registry: KindPrivateRegistry, kind_cluster: KindCluster, kindreg_test_image: str
) -> None:
    ws = kind_private_registry
    key = ws.registry.issue_service_account_key()
    node = next(n for n in kind_cluster.nodes() if n.endswith("control-plane"))

    def kubectl_create_secret(name: str, key_json: str) -> None:
        # Seed 002's command, run where kubectl is: the key file's content on stdin as key.json.
        kind_cluster.exec(
            node,
            [
                "sh",
                "-c",
                'cat > /tmp/key.json && kubectl --kubeconfig /etc/kubernetes/admin.conf -n "$1" create secret '
                'docker-registry "$2" --docker-server="$3" --docker-username=_json_key '
                '--docker-password="$(cat /tmp/key.json)"; status=$?; rm -f /tmp/key.json; exit $status',
                "sh",
                ws.namespace,
                name,
                ws.registry.host,
            ],
            input=key_json,
        )

    kubectl_create_secret("gcr-json-key", key.password)
    pod = ws.run_pod(ws.push(kindreg_test_image), patch=PodPatch(image_pull_secrets=("gcr-json-key",)))
    assert pod.status.phase == "Running"

    position = key.password.index("PRIVATE KEY-----") + 40  # inside the key, far past byte 72
    changed = key.password[:position] + ("A" if key.password[position] != "A" else "B") + key.password[position + 1 :]
    assert changed.encode()[:72] == key.password.encode()[:72]
    kubectl_create_secret("gcr-json-key-changed", changed)
    refusal = ws.expect_pull_refused(
        ws.push(kindreg_test_image), patch=PodPatch(image_pull_secrets=("gcr-json-key-changed",))
    )
    assert "unknown service account key" in refusal.message
