"""The client-certificate tunnel lends the client identity to the plugin's own pushes and pulls
only: real Docker engine, real distribution registry, requests from this process standing in
for any other local process."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from pytest_kindreg import PrivateRegistry

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]

REPOSITORY = "tunnel-secret-team/app"


@pytest.fixture(params=[False, True], ids=["cert-only", "cert+htpasswd"])
def mtls_registry(request: pytest.FixtureRequest, kindreg_docker: Any, kindreg_test_image: str) -> Iterator[Any]:
    with PrivateRegistry(tls=True, client_auth=True, htpasswd=request.param, docker=kindreg_docker) as reg:
        # Something worth hiding: a repository the catalog would list.
        reference = reg.push(kindreg_test_image, repository=REPOSITORY, tag="1")
        kindreg_docker.images.remove(reference, noprune=True)
        yield reg


def _tunnel_url(reg: PrivateRegistry, path: str) -> str:
    assert reg.tunnel_address is not None
    return f"http://{reg.tunnel_address}{path}"


def _assert_refused(response: requests.Response) -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="kindreg-tunnel"'
    assert "tunnel-secret-team" not in response.text


def test_tunnel_refuses_requests_without_its_secret(mtls_registry: PrivateRegistry) -> None:
    _assert_refused(requests.get(_tunnel_url(mtls_registry, "/v2/_catalog"), timeout=10))
    _assert_refused(requests.get(_tunnel_url(mtls_registry, f"/v2/{REPOSITORY}/tags/list"), timeout=10))
    wrong = requests.get(_tunnel_url(mtls_registry, "/v2/_catalog"), auth=("kindreg-tunnel", "wrong"), timeout=10)
    _assert_refused(wrong)
    if mtls_registry.credentials is not None:
        # The registry's own password is not the tunnel's: it alone does not lend the client identity.
        creds = mtls_registry.credentials
        _assert_refused(
            requests.get(_tunnel_url(mtls_registry, "/v2/_catalog"), auth=(creds.username, creds.password), timeout=10)
        )


def test_a_refused_request_cannot_smuggle_a_second_one(mtls_registry: PrivateRegistry) -> None:
    assert mtls_registry.tunnel_address is not None
    host, port = mtls_registry.tunnel_address.split(":")
    request = f"GET /v2/_catalog HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request * 2)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.count(b"HTTP/1.1 ") == 1
    assert received.startswith(b"HTTP/1.1 401")
    assert b"tunnel-secret-team" not in received


def test_plugin_pushes_and_pulls_through_the_tunnel(
    mtls_registry: PrivateRegistry, kindreg_docker: Any, kindreg_test_image: str
) -> None:
    reference = mtls_registry.push(kindreg_test_image, repository="tunnel/app", tag="2")
    assert mtls_registry.tags("tunnel/app") == ["2"]
    kindreg_docker.images.remove(reference, noprune=True)
    image = mtls_registry.pull(reference)
    assert reference in image.tags
    kindreg_docker.images.remove(reference, noprune=True)


def test_the_tunnel_secret_forwards_and_is_replaced(mtls_registry: PrivateRegistry) -> None:
    tunnel = mtls_registry._tunnel
    assert tunnel is not None
    secret = tunnel.credentials
    answer = requests.get(
        _tunnel_url(mtls_registry, "/v2/_catalog"), auth=(secret.username, secret.password), timeout=10
    )
    assert answer.status_code == 200  # with htpasswd: the tunnel sent the registry's credentials instead
    assert REPOSITORY in answer.json()["repositories"]
    assert secret.password not in repr(tunnel)
    assert secret.password not in repr(mtls_registry)


def test_attached_handle_opens_its_own_guarded_tunnel(kindreg_docker: Any, kindreg_test_image: str) -> None:
    with PrivateRegistry(client_auth=True, docker=kindreg_docker) as owner:
        other = PrivateRegistry.attach(owner.export_state(), docker=kindreg_docker)
        try:
            assert other.tunnel_address is not None and other.tunnel_address != owner.tunnel_address
            _assert_refused(requests.get(_tunnel_url(other, "/v2/_catalog"), timeout=10))
            reference = other.push(kindreg_test_image, repository="attached/tunnel", tag="1")
            assert owner.tags("attached/tunnel") == ["1"]
            kindreg_docker.images.remove(reference, noprune=True)
            # Each tunnel's secret lives in its process's memory only: not in the shared state or files.
            for handle in (owner, other):
                assert handle._tunnel is not None
                secret = handle._tunnel.credentials.password
                assert secret not in json.dumps(owner.export_state())
                for path in owner.workdir.rglob("*"):
                    assert not path.is_file() or secret.encode() not in path.read_bytes(), path
        finally:
            other.detach()
