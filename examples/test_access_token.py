"""``access_token``: credentials written into running nodes, then kubelet restarted (kind's kind-gcr.sh).

Proves that pods pull with node credentials installed after the cluster exists, that the
credentials can be rotated (a new token written, kubelet restarted) and pulls keep working,
and that the registry refuses the old password afterwards.
Use it for short-lived tokens (cloud registries' access tokens, ``_json_key`` re-issues) that
change during a cluster's life.
"""

from __future__ import annotations

import pytest
import requests

from pytest_kindreg.strategies.base import REFUSED_WITHOUT_PASSWORD
from pytest_kindreg.workspace import KindPrivateRegistry


@pytest.mark.kindreg_strategy("access_token")
def test_pod_pulls_with_rotated_token(kind_private_registry: KindPrivateRegistry, kindreg_test_image: str) -> None:
    ref = kind_private_registry.push(kindreg_test_image)
    pod = kind_private_registry.run_pod(ref)
    assert pod.status.phase == "Running"

    refusal = kind_private_registry.negative_control(kindreg_test_image)
    assert refusal.image.startswith(kind_private_registry.context.anonymous_host + "/")
    assert REFUSED_WITHOUT_PASSWORD.fullmatch(refusal.reason)

    registry = kind_private_registry.registry
    old = registry.credentials
    assert old is not None
    new = kind_private_registry.rotate_credentials()
    assert new != old

    # A fresh tag, so the node must pull it with the rotated token (no cache can answer).
    pod = kind_private_registry.run_pod(kind_private_registry.push(kindreg_test_image))
    assert pod.status.phase == "Running"

    stale = requests.get(registry.url + "/v2/", auth=(old.username, old.password), timeout=10, **registry.tls_kwargs())
    assert stale.status_code == 401
