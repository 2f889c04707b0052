"""Credentials, htpasswd lines and docker config.json / .dockerconfigjson content."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import bcrypt
import pytest

from pytest_kindreg.credentials import (
    Credentials,
    docker_config,
    merge_docker_config,
    normalize_server,
    parse_auth_entry,
    verify_htpasswd_line,
    write_private_file,
)


def test_htpasswd_line_verifies_with_bcrypt() -> None:
    cred = Credentials("alice", "s3cret:with:colons")
    line = cred.htpasswd_line()
    user, _, hashed = line.partition(":")
    assert user == "alice"
    assert hashed.startswith("$2b$04$")  # cost 4, documented trade-off for throw-away credentials
    assert bcrypt.checkpw(b"s3cret:with:colons", hashed.encode())
    assert verify_htpasswd_line(line, "s3cret:with:colons")
    assert not verify_htpasswd_line(line, "s3cret")


def test_random_credentials_differ_and_hide_the_password() -> None:
    a, b = Credentials.random(), Credentials.random()
    assert a != b
    assert a.password not in repr(a)
    assert a.password not in str(a)
    assert a.username in repr(a)


@pytest.mark.parametrize("username", ["", "a:b"])
def test_bad_usernames_are_refused(username: str) -> None:
    with pytest.raises(ValueError, match="must not contain ':'"):
        Credentials(username, "pw")


@pytest.mark.parametrize("password", ["plain", "with:colon", ":leading", "trailing:", "ünïcode:ß"])
def test_docker_config_round_trips(password: str) -> None:
    cred = Credentials("bob", password)
    config = docker_config({"https://127.0.0.1:5001/": cred})
    # The key is the image host as pods write it: no scheme, no trailing slash.
    assert list(config["auths"]) == ["127.0.0.1:5001"]
    entry = config["auths"]["127.0.0.1:5001"]
    assert base64.b64decode(entry["auth"]).decode() == f"bob:{password}"
    assert parse_auth_entry(json.loads(json.dumps(entry))) == cred
    assert parse_auth_entry({"username": "bob", "password": password}) == cred
    # No credential helpers: they do not work inside kind nodes.
    assert set(config) == {"auths"}


def test_dockerconfigjson_matches_kubectl_create_secret_format() -> None:
    cred = Credentials("u", "p")
    entry = docker_config({"reg:5000": cred})["auths"]["reg:5000"]
    assert entry == {"username": "u", "password": "p", "auth": base64.b64encode(b"u:p").decode()}


def test_parse_auth_entry_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="user:password"):
        parse_auth_entry({"auth": base64.b64encode(b"nocolon").decode()})


@pytest.mark.parametrize(
    ("server", "key"),
    [("https://a:1", "a:1"), ("http://a:1/", "a:1"), ("a:1", "a:1"), ("reg.example.com", "reg.example.com")],
)
def test_normalize_server(server: str, key: str) -> None:
    assert normalize_server(server) == key


def test_merge_keeps_other_owners_entries() -> None:
    one, two, three = Credentials("one", "1"), Credentials("two", "2"), Credentials("three", "3")
    existing = docker_config({"a:1": one, "b:2": two}) | {"HttpHeaders": {"X": "y"}}
    merged = merge_docker_config(existing, {"b:2": three})
    assert parse_auth_entry(merged["auths"]["a:1"]) == one
    assert parse_auth_entry(merged["auths"]["b:2"]) == three
    assert merged["HttpHeaders"] == {"X": "y"}
    assert parse_auth_entry(existing["auths"]["b:2"]) == two  # input untouched


def test_private_files_are_0600_and_rewrites_keep_the_inode(tmp_path: Path) -> None:
    path = write_private_file(tmp_path / "sub" / "key.pem", "secret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    inode = path.stat().st_ino
    write_private_file(path, "changed")
    assert path.read_text() == "changed"
    assert path.stat().st_ino == inode
    os.chmod(path, 0o644)
    write_private_file(path, "again")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_node_credentials_forget_only_the_named_hosts(tmp_path: Path) -> None:
    from pytest_kindreg.node_credentials import NodeCredentials

    creds = NodeCredentials(tmp_path / "config.json")
    creds.mount()
    creds.update_host_file({"127.0.0.1:1": Credentials("a", "b"), "127.0.0.1:2": Credentials("c", "d")})
    inode = (tmp_path / "config.json").stat().st_ino
    creds.forget(h for h in ["127.0.0.1:1", "127.0.0.1:9"])  # an iterator, as the environment passes it
    auths = json.loads((tmp_path / "config.json").read_text())["auths"]
    assert list(auths) == ["127.0.0.1:2"]
    assert (tmp_path / "config.json").stat().st_ino == inode  # rewritten in place: the bind mount shows it
    assert oct((tmp_path / "config.json").stat().st_mode & 0o777) == "0o600"
