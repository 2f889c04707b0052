"""``certificate``: a registry that requires a TLS client certificate (mTLS), configured on the
nodes through containerd's ``/etc/containerd/certs.d/<host>/hosts.toml``.

Proves that nodes present the client certificate and pull, and that the same registry reached
under a host name without that configuration fails the TLS handshake (not a 401: there is no
password here, the certificate is the credential).
Use it when your registry authenticates clients by certificate, and to check the hosts.toml
layout that containerd 2.x requires (the old ``registry.configs.*.tls`` keys are ignored).
"""

from __future__ import annotations

import pytest

from pytest_kindreg.strategies.base import REFUSED_WITHOUT_CLIENT_CERT
from pytest_kindreg.workspace import KindPrivateRegistry


@pytest.mark.kindreg_strategy("certificate")
def test_pod_pulls_with_client_certificate(kind_private_registry: KindPrivateRegistry, kindreg_test_image: str) -> None:
    assert kind_private_registry.registry.client_auth
    ref = kind_private_registry.push(kindreg_test_image)
    pod = kind_private_registry.run_pod(ref)
    assert pod.status.phase == "Running"

    refusal = kind_private_registry.negative_control(kindreg_test_image)
    assert refusal.image.startswith(kind_private_registry.context.anonymous_host + "/")
    assert REFUSED_WITHOUT_CLIENT_CERT.fullmatch(refusal.reason)
    assert "401" not in refusal.reason
