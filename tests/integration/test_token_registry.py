"""Token mode against the real parts: registry:2 (distribution) with token auth, the plugin's token
service in its own process, the Docker engine pushing and pulling through the Bearer flow, and
Debian's containerd 1.7 and 2.x fetching as a node would (``ctr --user``: the OAuth2 POST first)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from pytest_kindreg.containerd import HostsToml, hosts_dir
from pytest_kindreg.credentials import Credentials
from pytest_kindreg.docker_engine import RunIdentity, process_alive
from pytest_kindreg.errors import RegistryError
from pytest_kindreg.registry import PrivateRegistry
from pytest_kindreg.registry_tokens import TokenSigner, registry_token_claims
from pytest_kindreg.settings import Settings
from tests.integration.containerd_harness import StandaloneContainerd, Unavailable, debian_containerd
from tests.integration.test_containerd_node_files import _require_containerd

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]


@pytest.fixture(scope="module")
def token_registry(kindreg_docker: Any) -> Iterator[PrivateRegistry]:
    # Module-scoped: one token service and registry for the read-only checks below.
    with PrivateRegistry(
        auth="token", pull_scope=["apps/*"], docker=kindreg_docker, identity=RunIdentity(), role="token"
    ) as registry:
        yield registry


@pytest.fixture(scope="module")
def pushed(token_registry: PrivateRegistry, kindreg_docker: Any) -> dict[str, str]:
    from pytest_kindreg.registry import DEFAULT_TEST_IMAGE

    return {
        "inside": token_registry.push(DEFAULT_TEST_IMAGE, repository="apps/busybox", tag="1.0"),
        "outside": token_registry.push(DEFAULT_TEST_IMAGE, repository="private/busybox", tag="1.0"),
    }


def _listening_addresses(pid: int) -> set[str]:
    """``ip:port`` of the TCP sockets process ``pid`` listens on (from /proc, no tools needed)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = str(fd.readlink()) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
            host_hex, port_hex = fields[1].split(":")
            host = ".".join(str(int(host_hex[i : i + 2], 16)) for i in (6, 4, 2, 0))
            found.add(f"{host}:{int(port_hex, 16)}")
    return found


def test_registry_challenges_with_the_realm_which_listens_on_the_bridge_gateway_only(
    token_registry: PrivateRegistry,
) -> None:
    anonymous = requests.get(f"{token_registry.url}/v2/", timeout=10)
    assert anonymous.status_code == 401
    realm = token_registry.realm
    assert realm is not None
    assert anonymous.headers["WWW-Authenticate"] == f'Bearer realm="{realm}",service="{token_registry.name}"'
    # Basic credentials mean nothing to a token-mode registry: a client must go through the realm.
    push = token_registry.push_credentials
    assert push is not None
    basic = requests.get(f"{token_registry.url}/v2/", auth=(push.username, push.password), timeout=10)
    assert basic.status_code == 401
    assert token_registry.get("/v2/").status_code == 200
    service = token_registry._token_service
    assert service is not None
    listening = _listening_addresses(service.pid)
    assert listening == {f"{service.host}:{service.port}"}
    assert not service.host.startswith("0.") and service.host != "127.0.0.1"


def test_realm_answers_get_and_containerds_oauth2_post(token_registry: PrivateRegistry) -> None:
    realm, creds = token_registry.realm, token_registry.credentials
    assert realm is not None and creds is not None
    scope = "repository:apps/busybox:pull,push"
    got = requests.get(
        realm,
        params={"service": token_registry.name, "scope": scope},
        auth=(creds.username, creds.password),
        timeout=10,
    )
    assert got.status_code == 200
    body = got.json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at"}
    posted = requests.post(
        realm,
        data={
            "grant_type": "password",
            "client_id": "containerd-client",
            "username": creds.username,
            "password": creds.password,
            "scope": scope,
            "service": token_registry.name,
        },
        timeout=10,
    )
    assert posted.status_code == 200
    claims = jwt.decode(posted.json()["access_token"], options={"verify_signature": False})
    assert claims["access"] == [{"type": "repository", "name": "apps/busybox", "actions": ["pull"]}]
    assert claims["aud"] == token_registry.name
    refused = requests.post(realm, data={"grant_type": "refresh_token", "refresh_token": "x"}, timeout=10)
    assert refused.status_code == 400
    wrong = requests.get(realm, params={"scope": scope}, auth=(creds.username, "wrong"), timeout=10)
    assert (wrong.status_code, wrong.reason) == (401, "Unauthorized (invalid credentials)")


def test_the_cluster_identity_is_read_only_and_scoped(
    token_registry: PrivateRegistry, pushed: dict[str, str], kindreg_docker: Any
) -> None:
    from pytest_kindreg.registry import DEFAULT_TEST_IMAGE

    cluster = token_registry.credentials
    image = token_registry.pull(pushed["inside"], credentials=cluster)
    assert image.id
    with pytest.raises(RegistryError) as refused_push:
        token_registry.push(DEFAULT_TEST_IMAGE, repository="apps/busybox", tag="by-cluster", credentials=cluster)
    message = str(refused_push.value)
    assert "denied" in message
    assert "'push' action is missing" in message and "read-only" in message
    assert cluster is not None and cluster.password not in message
    with pytest.raises(RegistryError) as refused_pull:
        token_registry.pull(pushed["outside"], credentials=cluster)
    assert "granted nothing on repository:private/busybox" in str(refused_pull.value)
    # The host's identity may do both, everywhere, and list the catalog.
    assert token_registry.granted_actions("private/busybox", token_registry.push_credentials) == ["pull", "push"]
    assert set(token_registry.catalog()) >= {"apps/busybox", "private/busybox"}
    assert token_registry.tags("apps/busybox") == ["1.0"]


def test_registry_trusts_only_tokens_of_the_runs_ca(token_registry: PrivateRegistry) -> None:
    claims = registry_token_claims(
        issuer="pytest-kindreg token service",
        service=token_registry.name,
        subject="intruder",
        access=[{"type": "repository", "name": "apps/busybox", "actions": ["pull", "push"]}],
    )
    forged = TokenSigner.create().sign(claims)  # right claims, another CA
    response = requests.get(
        f"{token_registry.url}/v2/apps/busybox/tags/list", headers={"Authorization": f"Bearer {forged}"}, timeout=10
    )
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_access_token_expires_on_its_clock(token_registry: PrivateRegistry, pushed: dict[str, str]) -> None:
    token = token_registry.issue_access_token(ttl=3)
    assert token.username == "oauth2accesstoken"
    assert token_registry.get("/v2/apps/busybox/tags/list", credentials=token).status_code == 200
    time.sleep(3.5)
    assert token_registry.get("/v2/apps/busybox/tags/list", credentials=token).status_code == 401
    realm = token_registry.realm
    assert realm is not None
    expired = requests.get(realm, auth=(token.username, token.password), timeout=10)
    assert (expired.status_code, expired.reason) == (401, "Unauthorized (access token expired)")
    assert token_registry.get("/v2/apps/busybox/tags/list", credentials=token_registry.issue_access_token(60)).ok


def test_service_account_key_is_checked_whole(token_registry: PrivateRegistry, pushed: dict[str, str]) -> None:
    key = token_registry.issue_service_account_key()
    assert key.username == "_json_key" and len(key.password) > 2000
    assert token_registry.get("/v2/apps/busybox/tags/list", credentials=key).status_code == 200
    position = 200  # well past the 72 bytes bcrypt would compare
    changed = key.password[:position] + ("A" if key.password[position] != "A" else "B") + key.password[position + 1 :]
    assert changed.encode()[:72] == key.password.encode()[:72]
    assert (
        token_registry.get("/v2/apps/busybox/tags/list", credentials=Credentials("_json_key", changed)).status_code
        == 401
    )


def test_rotation_replaces_the_cluster_identity_and_keeps_the_push_one(kindreg_docker: Any) -> None:
    with PrivateRegistry(auth="token", docker=kindreg_docker, role="token-rotate") as registry:
        old, push = registry.credentials, registry.push_credentials
        new = registry.rotate_credentials()
        assert new != old and registry.push_credentials == push
        assert registry.get("/v2/", credentials=old).status_code == 401
        assert registry.get("/v2/", credentials=new).status_code == 200


def test_stop_ends_the_token_service(kindreg_docker: Any) -> None:
    registry = PrivateRegistry(auth="token", docker=kindreg_docker, role="token-stop").start()
    service = registry._token_service
    assert service is not None and process_alive(service.pid, service.start_time)
    workdir = registry.workdir
    registry.stop()
    assert not process_alive(service.pid, service.start_time)
    assert not workdir.exists()


def test_token_options_are_checked_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="needs token auth"):
        PrivateRegistry(pull_scope=["apps/*"])
    with pytest.raises(ValueError, match="Valid modes: htpasswd, token"):
        PrivateRegistry(auth="oauth")


@pytest.mark.containerd
@pytest.mark.parametrize("suite", ["trixie", "sid"], ids=["containerd1.7", "containerd2.x"])
def test_containerd_pulls_through_the_bearer_flow(
    suite: str,
    kindreg_settings: Settings,
    token_registry: PrivateRegistry,
    pushed: dict[str, str],
    tmp_path: Path,
) -> None:
    """What a node's containerd does with the CRI credentials kubelet hands it: the OAuth2 POST
    first (with a secret), the realm's token, the pull; refused outside the scope."""
    _require_containerd(kindreg_settings)
    try:
        bin_dir = debian_containerd(suite)
    except Unavailable as exc:
        pytest.fail(str(exc))
    certs_d = tmp_path / "certs.d"
    directory = Path(hosts_dir(token_registry.host, str(certs_d)))
    directory.mkdir(parents=True)
    (directory / "hosts.toml").write_text(HostsToml(endpoint=token_registry.url).render())
    creds = token_registry.credentials
    assert creds is not None
    service = token_registry._token_service
    assert service is not None
    with StandaloneContainerd(bin_dir=bin_dir) as ctrd:
        version = ctrd.ctr("version").stdout
        log_before = service.log_path.read_text()
        fetched = ctrd.fetch(pushed["inside"], certs_d, user=f"{creds.username}:{creds.password}")
        assert fetched.returncode == 0, f"{version}\n{fetched.stderr}\n{ctrd.log_tail()}"
        new_lines = service.log_path.read_text()[len(log_before) :]
        assert re.search(r'"POST /token HTTP/1.1" 200', new_lines), new_lines  # containerd's OAuth2 form
        refused = ctrd.fetch(pushed["outside"], certs_d, user=f"{creds.username}:{creds.password}")
        assert refused.returncode != 0
        assert "insufficient_scope" in refused.stderr, refused.stderr
        anonymous = ctrd.fetch(pushed["inside"], certs_d)
        assert anonymous.returncode != 0
        assert "401 Unauthorized (authentication required)" in anonymous.stderr, anonymous.stderr


@pytest.fixture(scope="module")
def certificate_token_registry(kindreg_docker: Any) -> Iterator[PrivateRegistry]:
    """The certificate strategy's registry in token mode: its client certificate is the cluster's
    credential, and the realm (HTTPS) reads it too."""
    with PrivateRegistry(
        auth="token", client_auth=True, htpasswd=False, pull_scope=["apps/*"], docker=kindreg_docker, role="token-mtls"
    ) as registry:
        yield registry


def test_a_client_certificate_is_a_read_only_identity_in_token_mode(
    certificate_token_registry: PrivateRegistry,
) -> None:
    from pytest_kindreg.registry import DEFAULT_TEST_IMAGE
    from pytest_kindreg.registry_auth import RegistryAuth

    registry = certificate_token_registry
    assert registry.credentials is None  # no password for the cluster: the certificate is its credential
    realm = registry.realm
    assert realm is not None and realm.startswith("https://")
    # The host pushes through the tunnel, which trades the push identity for scoped tokens.
    reference = registry.push(DEFAULT_TEST_IMAGE, repository="apps/busybox", tag="1.0")
    assert registry.pull(reference).id
    registry.push(DEFAULT_TEST_IMAGE, repository="private/busybox", tag="1.0")

    as_cluster = RegistryAuth(None, registry._realm_url, **registry.tls_kwargs())
    assert registry.granted_actions("apps/busybox") == ["pull"]
    assert registry.granted_actions("private/busybox") == []
    tags = requests.get(
        f"{registry.url}/v2/apps/busybox/tags/list", auth=as_cluster, timeout=10, **registry.tls_kwargs()
    )
    assert tags.status_code == 200
    upload = requests.post(
        f"{registry.url}/v2/apps/busybox/blobs/uploads/", auth=as_cluster, timeout=10, **registry.tls_kwargs()
    )
    assert upload.status_code == 401
    assert 'error="insufficient_scope"' in upload.headers["WWW-Authenticate"]
    # Without the certificate the realm (and the registry) know nobody.
    files = registry.tls_files
    assert files is not None
    anonymous = requests.get(realm, params={"scope": "repository:apps/busybox:pull"}, verify=str(files.ca), timeout=10)
    assert (anonymous.status_code, anonymous.reason) == (401, "Unauthorized (authentication required)")


@pytest.mark.containerd
@pytest.mark.parametrize("suite", ["trixie", "sid"], ids=["containerd1.7", "containerd2.x"])
def test_containerd_presents_the_hosts_client_certificate_to_the_realm(
    suite: str, kindreg_settings: Settings, certificate_token_registry: PrivateRegistry, tmp_path: Path
) -> None:
    """The certificate strategy's node files (hosts.toml with ca and client) in token mode: containerd
    fetches the realm with the same TLS client as the registry, so the certificate identifies it."""
    from pytest_kindreg.registry import DEFAULT_TEST_IMAGE

    _require_containerd(kindreg_settings)
    try:
        bin_dir = debian_containerd(suite)
    except Unavailable as exc:
        pytest.fail(str(exc))
    registry = certificate_token_registry
    inside = registry.push(DEFAULT_TEST_IMAGE, repository="apps/busybox", tag="ctrd")
    outside = registry.push(DEFAULT_TEST_IMAGE, repository="private/busybox", tag="ctrd")
    files = registry.tls_files
    assert files is not None and files.client_cert is not None and files.client_key is not None
    directory = Path(hosts_dir(registry.host, str(tmp_path / "certs.d")))
    directory.mkdir(parents=True)
    for source, name in ((files.ca, "ca.crt"), (files.client_cert, "client.cert"), (files.client_key, "client.key")):
        (directory / name).write_bytes(source.read_bytes())
    hosts = HostsToml(
        endpoint=registry.url,
        ca=str(directory / "ca.crt"),
        client=(str(directory / "client.cert"), str(directory / "client.key")),
    )
    (directory / "hosts.toml").write_text(hosts.render())
    with StandaloneContainerd(bin_dir=bin_dir) as ctrd:
        fetched = ctrd.fetch(inside, tmp_path / "certs.d")
        assert fetched.returncode == 0, f"{fetched.stderr}\n{ctrd.log_tail()}"
        refused = ctrd.fetch(outside, tmp_path / "certs.d")
        assert refused.returncode != 0
        assert "insufficient_scope" in refused.stderr, refused.stderr
