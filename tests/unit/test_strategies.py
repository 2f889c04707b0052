"""Strategy pieces that are pure logic: names, pull secret content, negative-control references."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_kindreg import Credentials, PrivateRegistry, UnknownStrategyError
from pytest_kindreg.credentials import parse_auth_entry
from pytest_kindreg.node_credentials import NodeCredentials
from pytest_kindreg.strategies import (
    STRATEGY_NAMES,
    CertificateStrategy,
    NodeConfigStrategy,
    PullSecretStrategy,
    SideLoadStrategy,
    StrategyContext,
    create_strategy,
    validate_strategy_names,
)
from pytest_kindreg.strategies.base import REFUSED_WITHOUT_CLIENT_CERT, REFUSED_WITHOUT_PASSWORD, PodPatch
from pytest_kindreg.strategies.pull_secret import pull_secret_manifest


def test_the_seven_names() -> None:
    assert STRATEGY_NAMES == (
        "pull_secret",
        "side_load",
        "node_config",
        "access_token",
        "certificate",
        "credential_provider",
        "workload_identity",
    )
    for name in STRATEGY_NAMES:
        assert create_strategy(name).name == name


@pytest.mark.parametrize("bad", ["pullsecret", "", 3, None, ["pull_secret"]])
def test_unknown_names_list_the_valid_ones(bad: Any) -> None:
    with pytest.raises(UnknownStrategyError, match="Valid strategies: pull_secret, side_load, node_config"):
        validate_strategy_names([bad])


class _Offline(PrivateRegistry):
    """Enough of a registry for pure logic: a fixed port and credentials, never started."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(credentials=Credentials("user", "pa:ss"), **kwargs)
        self._port = 5001


def _ctx(tmp_path: Path, **kwargs: Any) -> StrategyContext:
    return StrategyContext("x", _Offline(**kwargs), tmp_path, NodeCredentials(tmp_path / "kubelet.json"))


def test_pull_secret_is_dockerconfigjson_keyed_on_the_image_host(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    secret = pull_secret_manifest("regcred", "ns1", ctx.image_host, ctx)
    assert secret.type == "kubernetes.io/dockerconfigjson"
    assert secret.metadata.namespace == "ns1"
    auths = json.loads(secret.string_data[".dockerconfigjson"])["auths"]
    assert list(auths) == ["127.0.0.1:5001"]  # no scheme (seed 002 §6)
    assert parse_auth_entry(auths["127.0.0.1:5001"]) == Credentials("user", "pa:ss")


def test_negative_controls(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    fresh = "127.0.0.1:5001/ns/app-negative:neg-1"
    assert PullSecretStrategy().negative_control(ctx, fresh) == (fresh, PodPatch())  # no secret, default policy
    ref, patch = SideLoadStrategy().negative_control(ctx, fresh)
    assert (ref, patch.image_pull_policy) == (fresh, "IfNotPresent")
    ref, _ = NodeConfigStrategy().negative_control(ctx, fresh)
    assert ref == f"{ctx.anonymous_host}/ns/app-negative:neg-1"
    assert ctx.anonymous_host.endswith("-anonymous:5000")


def test_side_load_refuses_latest(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pinned tag"):
        SideLoadStrategy().publish(_ctx(tmp_path), "127.0.0.1:5001/app:latest")


def test_node_config_contributes_a_0600_mount_with_inline_auths(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    contribution = NodeConfigStrategy().cluster_contribution(ctx)
    (mount,) = contribution.extra_mounts
    assert mount.to_dict() == {
        "hostPath": str(tmp_path / "kubelet.json"),
        "containerPath": "/var/lib/kubelet/config.json",
        "readOnly": True,
    }
    assert (tmp_path / "kubelet.json").stat().st_mode & 0o777 == 0o600
    config = json.loads((tmp_path / "kubelet.json").read_text())
    assert set(config) == {"auths"}  # no credsStore / credHelpers
    assert parse_auth_entry(config["auths"]["127.0.0.1:5001"]) == Credentials("user", "pa:ss")


def test_refusal_patterns() -> None:
    assert REFUSED_WITHOUT_PASSWORD.search("authorization failed: no basic auth credentials")
    assert REFUSED_WITHOUT_PASSWORD.search("failed with status code [manifests 1.0]: 401 Unauthorized")
    assert not REFUSED_WITHOUT_PASSWORD.search("x509: certificate signed by unknown authority")
    assert CertificateStrategy.refusal is REFUSED_WITHOUT_CLIENT_CERT
    assert REFUSED_WITHOUT_CLIENT_CERT.search("remote error: tls: certificate required")
    assert REFUSED_WITHOUT_CLIENT_CERT.search("remote error: tls: bad certificate")
    assert not REFUSED_WITHOUT_CLIENT_CERT.search("401 Unauthorized")
    unknown_ca = "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    assert not REFUSED_WITHOUT_CLIENT_CERT.search(unknown_ca)
