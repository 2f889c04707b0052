"""side_load's per-push variant, as pure logic: what gets built differs per push, and only in a label."""

from __future__ import annotations

from pathlib import Path

from pytest_kindreg import Credentials, PrivateRegistry
from pytest_kindreg.node_credentials import NodeCredentials
from pytest_kindreg.strategies import STRATEGY_NAMES, StrategyContext, create_strategy
from pytest_kindreg.strategies.side_load import NONCE_LABEL, UniqueVariant

BASE = "sha256:" + "ab" * 32


def test_each_variant_of_the_same_image_is_different() -> None:
    first, second = UniqueVariant(BASE), UniqueVariant(BASE)
    assert first.nonce != second.nonce
    assert first.tag != second.tag
    assert first.dockerfile() != second.dockerfile()


def test_a_variant_adds_a_label_and_no_layer() -> None:
    variant = UniqueVariant(BASE, nonce="0123456789abcdef")
    assert variant.dockerfile() == f"FROM {BASE}\nLABEL {NONCE_LABEL}=0123456789abcdef\n".encode()
    assert variant.tag == "kindreg-side-load/variant:0123456789abcdef"


def test_only_side_load_pushes_a_variant(tmp_path: Path) -> None:
    registry = PrivateRegistry(credentials=Credentials("user", "pass"))
    ctx = StrategyContext("x", registry, tmp_path, NodeCredentials(tmp_path / "kubelet.json"))
    for name in STRATEGY_NAMES:
        if name != "side_load":
            assert create_strategy(name).prepare_image(ctx, "acme/app:1") == "acme/app:1"
