"""PrivateRegistry against the real Docker engine and the real distribution registry."""

from __future__ import annotations

import json
import re
import secrets
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from docker.errors import APIError

from pytest_kindreg import Credentials, ImageMissingError, PortInUseError, PrivateRegistry, RegistryError

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]


@pytest.fixture
def registry(kindreg_docker: Any) -> Iterator[PrivateRegistry]:
    with PrivateRegistry(docker=kindreg_docker) as reg:
        yield reg


def _remove_local(docker: Any, reference: str) -> None:
    docker.images.remove(reference, noprune=True)


def test_host_port_and_credentials(registry: PrivateRegistry, kindreg_docker: Any) -> None:
    assert registry.host == f"127.0.0.1:{registry.port}"
    ports = kindreg_docker.api.inspect_container(registry.name)["HostConfig"]["PortBindings"]["5000/tcp"]
    assert ports == [{"HostIp": "127.0.0.1", "HostPort": str(registry.port)}]  # never 0.0.0.0
    assert registry.username and registry.password
    assert registry.password not in repr(registry)
    assert registry.password not in str(registry)


def test_v2_requires_auth(registry: PrivateRegistry) -> None:
    anonymous = registry.get("/v2/", authenticated=False)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    assert registry.get("/v2/").status_code == 200
    wrong = requests.get(f"{registry.url}/v2/", auth=(registry.username, "wrong"), timeout=5)
    assert wrong.status_code == 401


def test_authenticated_push_and_pull(registry: PrivateRegistry, kindreg_docker: Any, kindreg_test_image: str) -> None:
    reference = registry.push(kindreg_test_image, repository="team/app", tag="1.0")
    assert reference == f"{registry.host}/team/app:1.0"
    assert registry.tags("team/app") == ["1.0"]
    _remove_local(kindreg_docker, reference)
    image = registry.pull(reference)
    assert reference in image.tags
    _remove_local(kindreg_docker, reference)


def test_anonymous_pull_is_refused(registry: PrivateRegistry, kindreg_docker: Any, kindreg_test_image: str) -> None:
    reference = registry.push(kindreg_test_image, repository="anon/pull", tag="1")
    _remove_local(kindreg_docker, reference)
    with pytest.raises(APIError, match="no basic auth credentials|unauthorized"):
        kindreg_docker.images.pull(f"{registry.host}/anon/pull", tag="1")


def test_anonymous_and_wrong_password_push_are_refused(
    registry: PrivateRegistry, kindreg_docker: Any, kindreg_test_image: str
) -> None:
    target = f"{registry.host}/anon/push"
    kindreg_docker.images.get(kindreg_test_image).tag(target, "1")
    try:
        for auth in (None, {"username": registry.username, "password": "wrong"}):
            lines = list(kindreg_docker.images.push(target, tag="1", auth_config=auth, stream=True, decode=True))
            errors = [line["error"] for line in lines if "error" in line]
            assert errors, lines
            assert re.search("no basic auth credentials|authentication required", errors[-1])
        assert "anon/push" not in list(registry.catalog())
    finally:
        _remove_local(kindreg_docker, f"{target}:1")


def test_tls_registry_refuses_clients_without_the_ca(kindreg_docker: Any, kindreg_test_image: str) -> None:
    with PrivateRegistry(tls=True, docker=kindreg_docker) as reg:
        assert reg.url.startswith("https://")
        with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
            requests.get(f"{reg.url}/v2/", auth=(reg.username, reg.password), timeout=5, verify=True)
        assert reg.get("/v2/").status_code == 200  # with the CA
        # The server certificate names the container, so nodes can verify it on kind's network.
        assert reg.tls_files is not None
        pem = reg.tls_files.server_cert.read_bytes()
        from cryptography import x509

        san = x509.load_pem_x509_certificate(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert reg.name in san.value.get_values_for_type(x509.DNSName)
        reference = reg.push(kindreg_test_image, repository="tls/app", tag="1")
        assert reg.tags("tls/app") == ["1"]
        _remove_local(kindreg_docker, reference)


def _handshake(port: int, ca: Path, pair: tuple[str, str] | None) -> str:
    context = ssl.create_default_context(cafile=str(ca))
    if pair:
        context.load_cert_chain(*pair)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return tls.recv(200).decode(errors="replace")


def test_mtls_requires_a_client_certificate(kindreg_docker: Any, kindreg_test_image: str) -> None:
    with PrivateRegistry(client_auth=True, docker=kindreg_docker) as reg:
        files = reg.tls_files
        assert files is not None and files.client_pair is not None
        # Without a client certificate the TLS handshake itself fails (TLS 1.3 alert).
        with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED|certificate required|alert"):
            _handshake(reg.port, files.ca, None)
        assert _handshake(reg.port, files.ca, files.client_pair).startswith("HTTP/1.1 401")
        assert reg.get("/v2/").status_code == 200
        # The host pushes although the Docker daemon sends no client certificate to loopback.
        reference = reg.push(kindreg_test_image, repository="mtls/app", tag="1")
        assert reg.tags("mtls/app") == ["1"]
        _remove_local(kindreg_docker, reference)
        reg.pull(reference)
        _remove_local(kindreg_docker, reference)


def test_certificate_only_registry(kindreg_docker: Any, kindreg_test_image: str) -> None:
    with PrivateRegistry(client_auth=True, htpasswd=False, docker=kindreg_docker) as reg:
        assert reg.credentials is None
        with pytest.raises(RegistryError, match="no password auth"):
            _ = reg.password
        reference = reg.push(kindreg_test_image, repository="cert/app", tag="1")
        assert reg.tags("cert/app") == ["1"]
        _remove_local(kindreg_docker, reference)


def test_rotation_invalidates_the_old_password(registry: PrivateRegistry) -> None:
    old = registry.credentials
    assert old is not None
    new = registry.rotate_credentials()
    assert new != old
    assert requests.get(f"{registry.url}/v2/", auth=(old.username, old.password), timeout=5).status_code == 401
    assert registry.get("/v2/").status_code == 200
    chosen = Credentials("chosen", "pass:word")
    registry.rotate_credentials(chosen)
    assert requests.get(f"{registry.url}/v2/", auth=("chosen", "pass:word"), timeout=5).status_code == 200


def test_files_with_keys_are_private_and_removed(kindreg_docker: Any) -> None:
    reg = PrivateRegistry(client_auth=True, docker=kindreg_docker).start()
    workdir = reg.workdir
    assert reg.tls_files is not None and reg.tls_files.client_key is not None
    for path in (reg.tls_files.server_key, reg.tls_files.client_key, workdir / "auth" / "htpasswd"):
        assert path.stat().st_mode & 0o077 == 0, path
    reg.stop()
    assert not workdir.exists()
    assert kindreg_docker.containers.list(all=True, filters={"name": reg.name}, ignore_removed=True) == []


def test_killed_registry_is_restarted_on_next_use(
    registry: PrivateRegistry, kindreg_docker: Any, kindreg_test_image: str
) -> None:
    reference = registry.push(kindreg_test_image, repository="kill/app", tag="1")
    registry.container.kill()
    registry.ensure_running()
    assert registry.tags("kill/app") == ["1"]  # same port, same storage
    _remove_local(kindreg_docker, reference)


def test_removed_registry_gives_a_clear_error(kindreg_docker: Any, kindreg_test_image: str) -> None:
    with PrivateRegistry(docker=kindreg_docker) as reg:
        reg.container.remove(force=True, v=True)
        with pytest.raises(RegistryError, match="was removed during the run"):
            reg.push(kindreg_test_image)


def test_port_in_use_is_reported(kindreg_docker: Any) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortInUseError, match=rf"127\.0\.0\.1:{port} is already in use"):
            PrivateRegistry(port=port, docker=kindreg_docker).start()


def test_missing_image_says_how_to_build_it(kindreg_docker: Any) -> None:
    with pytest.raises(ImageMissingError, match="kindreg build-images"):
        PrivateRegistry(image="kindreg-test/no-such-registry:0", docker=kindreg_docker).start()


def test_missing_local_image_on_push(registry: PrivateRegistry) -> None:
    with pytest.raises(ImageMissingError, match="not available locally"):
        registry.push("kindreg-test/absent:1")


def test_registry_that_cannot_start_shows_its_log(kindreg_docker: Any) -> None:
    # busybox is not a registry: it exits at once, and the error says so with the log tail.
    reg = PrivateRegistry(image="kindreg-test/busybox:1.0", docker=kindreg_docker, ready_timeout=10)
    with pytest.raises(RegistryError, match="exited while starting|was not ready within"):
        reg.start()
    assert reg.container is None


def test_stop_removes_the_local_tags_it_made(kindreg_docker: Any, kindreg_test_image: str) -> None:
    with PrivateRegistry(client_auth=True, docker=kindreg_docker) as reg:
        pushed = reg.push(kindreg_test_image, repository="tags/app", tag="1")
        assert pushed in kindreg_docker.images.get(kindreg_test_image).tags
    remaining = kindreg_docker.images.get(kindreg_test_image).tags
    assert pushed not in remaining
    assert kindreg_test_image in remaining  # the source image itself is untouched


def test_attached_handle_shares_the_registry_and_sees_rotations(kindreg_docker: Any, kindreg_test_image: str) -> None:
    with PrivateRegistry(client_auth=True, docker=kindreg_docker) as owner:
        other = PrivateRegistry.attach(owner.export_state(), docker=kindreg_docker)
        try:
            assert "password" not in json.dumps(owner.export_state())
            assert other.host == owner.host
            assert other.credentials == owner.credentials
            owner.rotate_credentials()
            assert other.credentials == owner.credentials  # re-read from the 0600 record
            reference = other.push(kindreg_test_image, repository="attached/app", tag="1")
            assert owner.tags("attached/app") == ["1"]
            assert reference.startswith(owner.host)
        finally:
            other.detach()
        assert owner.container.status in ("running", "created")  # detach did not stop it
        assert owner.get("/v2/").status_code == 200


def test_prepare_tells_the_host_before_start(kindreg_docker: Any) -> None:
    registry = PrivateRegistry(docker=kindreg_docker)
    try:
        registry.prepare()
        planned = registry.host
        assert "not started" in repr(registry)
        registry.start()
        assert registry.host == planned
        assert registry.get("/v2/", authenticated=True).status_code == 200
    finally:
        registry.stop()


def test_a_prepared_port_taken_meanwhile_moves_the_registry(kindreg_docker: Any) -> None:
    registry = PrivateRegistry(docker=kindreg_docker)
    try:
        registry.prepare()
        with socket.socket() as thief:
            thief.bind(("127.0.0.1", registry.port))  # another process takes the planned port
            thief.listen()
            taken = registry.port
            registry.start()
            assert registry.port != taken
            assert registry.get("/v2/", authenticated=True).status_code == 200
    finally:
        registry.stop()


def test_prepare_names_a_missing_image_before_anything_starts(kindreg_docker: Any) -> None:
    with pytest.raises(ImageMissingError, match="kindreg build-images"):
        PrivateRegistry(image="kindreg-test/no-such-registry:0", docker=kindreg_docker).prepare()


def test_prepare_puts_the_container_on_an_existing_network(kindreg_docker: Any) -> None:
    network = kindreg_docker.networks.create(
        f"kindreg-test-net-{secrets.token_hex(3)}", labels={"io.kindreg.managed": "true"}
    )
    registry = PrivateRegistry(docker=kindreg_docker)
    try:
        registry.prepare(network.name)
        registry.start()
        attached = kindreg_docker.api.inspect_container(registry.name)["NetworkSettings"]["Networks"]
        assert list(attached) == [network.name]  # created on it, not on the default bridge
        registry.connect(network.name)  # already there: nothing to do
        assert registry.get("/v2/", authenticated=True).status_code == 200  # still published on 127.0.0.1
    finally:
        registry.stop()
        network.remove()


def test_prepare_with_a_missing_network_leaves_the_connect_for_later(kindreg_docker: Any) -> None:
    registry = PrivateRegistry(docker=kindreg_docker)
    try:
        registry.prepare("kindreg-test-no-such-network")
        registry.start()
        assert list(kindreg_docker.api.inspect_container(registry.name)["NetworkSettings"]["Networks"]) == ["bridge"]
    finally:
        registry.stop()
