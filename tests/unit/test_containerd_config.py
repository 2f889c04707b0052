"""hosts.toml rendering and containerd version parsing (pure logic)."""

from __future__ import annotations

import sys

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

from pytest_kindreg.containerd import (
    HostsToml,
    config_paths,
    hosts_dir,
    parse_config_version,
    parse_containerd_version,
    registry_mirrors,
)


def test_plain_mirror_has_an_explicit_host_table() -> None:
    parsed = tomllib.loads(HostsToml("http://kindreg-abc-reg:5000").render())
    # containerd 1.7 rejects a file with root-level fields only (containerd #10027).
    assert parsed == {"host": {"http://kindreg-abc-reg:5000": {"capabilities": ["pull", "resolve"]}}}


def test_mtls_host_names_ca_and_client_pair() -> None:
    d = hosts_dir("127.0.0.1:5001")
    assert d == "/etc/containerd/certs.d/127.0.0.1:5001"
    text = HostsToml("https://reg:5000", ca=f"{d}/ca.crt", client=(f"{d}/client.cert", f"{d}/client.key")).render()
    host = tomllib.loads(text)["host"]["https://reg:5000"]
    assert host["ca"] == f"{d}/ca.crt"
    assert host["client"] == [[f"{d}/client.cert", f"{d}/client.key"]]
    assert "server" not in tomllib.loads(text)  # no settings-less second try of the same endpoint


def test_toml_strings_are_escaped() -> None:
    text = HostsToml('https://a"b:5000', ca='C:\\x"y').render()
    assert tomllib.loads(text)["host"]['https://a"b:5000']["ca"] == 'C:\\x"y'


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("containerd github.com/containerd/containerd/v2 v2.0.2 c507a0257ea6462fbd6f5ba4f5c74facb04021f4", (2, 0, 2)),
        ("containerd containerd.io 1.7.24 88bf19b2105c8b17560993bee28a01ddc2f97182", (1, 7, 24)),
        ("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3", (1, 6, 20)),
        ("containerd github.com/containerd/containerd/v2 v2.2.0 1c4457e", (2, 2, 0)),
    ],
)
def test_containerd_versions(output: str, version: tuple[int, int, int]) -> None:
    assert parse_containerd_version(output) == version


def test_unreadable_version() -> None:
    with pytest.raises(ValueError, match="cannot read a containerd version"):
        parse_containerd_version("containerd: command not found")


def test_config_dump_parsing() -> None:
    dump = """version = 3
root = "/var/lib/containerd"

[plugins]
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "/etc/containerd/certs.d"
  [plugins."io.containerd.transfer.v1.local"]
    config_path = ""
"""
    assert parse_config_version(dump) == 3
    assert config_paths(dump) == ["/etc/containerd/certs.d"]
    with pytest.raises(ValueError, match="no top-level version"):
        parse_config_version("root = 1")


def test_containerd_2_single_quoted_dump() -> None:
    # go-toml v2 (containerd 2.x) quotes with ' wherever it can (kind-containerd-facts §10).
    dump = """version = 3

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = '/etc/containerd/certs.d'
"""
    assert parse_config_version(dump) == 3
    assert config_paths(dump) == ["/etc/containerd/certs.d"]


@pytest.mark.parametrize(
    ("version", "cri_plugin"), [(2, "io.containerd.grpc.v1.cri"), (3, "io.containerd.cri.v1.images")]
)
def test_only_the_cri_registry_config_path_counts(version: int, cri_plugin: str) -> None:
    dump = f"""version = {version}

[plugins."{cri_plugin}".registry]
  config_path = ''

[plugins."io.containerd.transfer.v1.local"]
  config_path = "/etc/containerd/certs.d"
"""
    assert config_paths(dump) == []


def test_config_path_roots_are_split() -> None:
    dump = """version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"
"""
    assert config_paths(dump) == ["/etc/containerd/certs.d", "/etc/docker/certs.d"]


def test_the_other_versions_key_does_not_count() -> None:
    dump = """version = 3
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
"""
    assert config_paths(dump) == []


def test_unreadable_dump() -> None:
    with pytest.raises(ValueError, match="not valid TOML"):
        config_paths("version = 3\n[plugins\n")
    with pytest.raises(ValueError, match="version 1"):
        config_paths("version = 1\n")


@pytest.mark.parametrize(
    ("config", "hosts"),
    [
        ('[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\nendpoint = ["https://r"]', ["docker.io"]),
        ("[plugins.'io.containerd.cri.v1.images'.registry.mirrors.'a:5000']\nendpoint = ['http://a']", ["a:5000"]),
        ('[plugins.cri.registry.mirrors."x"]\nendpoint = []', ["x"]),
        ('[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = "/etc/containerd/certs.d"', []),
    ],
)
def test_registry_mirrors(config: str, hosts: list[str]) -> None:
    assert registry_mirrors("version = 2\n" + config) == hosts
