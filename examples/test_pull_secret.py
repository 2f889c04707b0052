"""``pull_secret``: a ``kubernetes.io/dockerconfigjson`` Secret named in the pod's ``imagePullSecrets``.

Proves that a pod pulls from the password-protected registry with the Secret, and that the
same pod without it is refused (401 / no basic auth credentials), so the Secret — not a node
cache or another strategy — is what made the pull work.
Use it by default: it is kind's "preferable and most portable route", needs nothing on the
nodes, and is what most production clusters do.
"""

from __future__ import annotations

import pytest

from pytest_kindreg.strategies.base import REFUSED_WITHOUT_PASSWORD
from pytest_kindreg.workspace import KindPrivateRegistry


@pytest.mark.kindreg_strategy("pull_secret")
def test_pod_pulls_with_pull_secret(kind_private_registry: KindPrivateRegistry, kindreg_test_image: str) -> None:
    ref = kind_private_registry.push(kindreg_test_image)
    pod = kind_private_registry.run_pod(ref)
    assert pod.status.phase == "Running"
    assert [s.name for s in pod.spec.image_pull_secrets] == ["kindreg-pull-secret"]

    refusal = kind_private_registry.negative_control(kindreg_test_image)
    # Same registry host, only the Secret is gone: the registry said "who are you?".
    assert refusal.image.startswith(kind_private_registry.registry.host + "/")
    assert REFUSED_WITHOUT_PASSWORD.fullmatch(refusal.reason)
