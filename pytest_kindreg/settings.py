"""Options and ini keys, resolved once into a frozen :class:`Settings`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_kindreg.registry import DEFAULT_IMAGE, DEFAULT_TEST_IMAGE

REQUIREMENTS = ("docker", "kind")
DEFAULT_STRATEGIES = ("pull_secret",)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("kindreg", "kind clusters with a private registry (pytest-kindreg)")

    def option(name: str, ini_type: Any, help: str, default: Any = None, **kwargs: Any) -> None:
        group.addoption(f"--{name.replace('_', '-')}", dest=name, default=None, help=help, **kwargs)
        parser.addini(name, help=help, type=ini_type, default=default)

    option(
        "kindreg_strict",
        "bool",
        "turn every kindreg skip (no Docker, no kind) into an error",
        default=False,
        action="store_true",
    )
    group.addoption(
        "--kindreg-require",
        dest="kindreg_require",
        action="append",
        default=None,
        metavar="REQUIREMENT",
        choices=list(REQUIREMENTS),
        help="make a missing requirement an error instead of a skip (repeatable: docker, kind)",
    )
    parser.addini(
        "kindreg_require",
        "requirements whose absence is an error (docker, kind)",
        type="linelist",
        default=[],
    )
    group.addoption(
        "--kindreg-strategy",
        dest="kindreg_strategy",
        action="append",
        default=None,
        metavar="NAME",
        help="run only the tests of this strategy (repeatable); the others are deselected",
    )
    parser.addini(
        "kindreg_default_strategies",
        "strategies for tests without a kindreg_strategy marker",
        type="linelist",
        default=list(DEFAULT_STRATEGIES),
    )
    option("kindreg_registry_image", "string", f"registry image (default {DEFAULT_IMAGE})", default=DEFAULT_IMAGE)
    option(
        "kindreg_test_image",
        "string",
        f"local image the examples push (default {DEFAULT_TEST_IMAGE})",
        default=DEFAULT_TEST_IMAGE,
    )
    option("kindreg_kind_bin", "string", "path of the kind binary (default: $KIND, then kind on PATH)")
    option("kindreg_node_image", "string", "kind node image, e.g. kindest/node:v1.33.1 (default: kind's)")
    option("kindreg_cluster_name", "string", "kind cluster name (default: kindreg-<run id>)")
    option(
        "kindreg_workers",
        "string",
        "number of worker nodes besides the control plane (default 0)",
        default="0",
    )
    option("kindreg_keep_cluster", "bool", "keep the cluster after the run", default=False, action="store_true")
    option(
        "kindreg_xdist",
        "string",
        "under pytest-xdist: 'shared' (one cluster and one set of registries for all workers, the default) "
        "or 'per-worker'",
        default="shared",
    )
    option(
        "kindreg_reuse_cluster",
        "bool",
        "reuse an existing cluster of that name after a health check (implies keeping it)",
        default=False,
        action="store_true",
    )


@dataclass(frozen=True)
class Settings:
    strict: bool = False
    required: frozenset[str] = frozenset()
    strategies_selected: tuple[str, ...] = ()
    default_strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    registry_image: str = DEFAULT_IMAGE
    test_image: str = DEFAULT_TEST_IMAGE
    kind_bin: str | None = None
    node_image: str | None = None
    cluster_name: str | None = None
    workers: int = 0
    keep_cluster: bool = False
    reuse_cluster: bool = False
    xdist: str = "shared"

    def requires(self, requirement: str) -> bool:
        return self.strict or requirement in self.required

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        def get(name: str) -> Any:
            value = config.getoption(name, default=None)
            return config.getini(name) if value is None else value

        required = set(config.getoption("kindreg_require", default=None) or []) | set(config.getini("kindreg_require"))
        unknown = required - set(REQUIREMENTS)
        if unknown:
            raise pytest.UsageError(
                f"{sorted(unknown)[0]!r} is not a valid kindreg_require value. Valid values: {', '.join(REQUIREMENTS)}"
            )
        try:
            workers = int(get("kindreg_workers"))
            if workers < 0:
                raise ValueError
        except ValueError:
            raise pytest.UsageError(
                f"--kindreg-workers takes a whole number >= 0, not {get('kindreg_workers')!r}"
            ) from None
        xdist = str(get("kindreg_xdist"))
        if xdist not in ("shared", "per-worker"):
            raise pytest.UsageError(f"{xdist!r} is not a valid kindreg_xdist mode. Valid modes: shared, per-worker")
        return cls(
            xdist=xdist,
            strict=bool(get("kindreg_strict")),
            required=frozenset(required),
            strategies_selected=tuple(config.getoption("kindreg_strategy", default=None) or ()),
            default_strategies=tuple(config.getini("kindreg_default_strategies")) or DEFAULT_STRATEGIES,
            registry_image=str(get("kindreg_registry_image")),
            test_image=str(get("kindreg_test_image")),
            kind_bin=get("kindreg_kind_bin") or os.environ.get("KIND") or None,
            node_image=get("kindreg_node_image") or None,
            cluster_name=get("kindreg_cluster_name") or None,
            workers=workers,
            keep_cluster=bool(get("kindreg_keep_cluster")) or bool(get("kindreg_reuse_cluster")),
            reuse_cluster=bool(get("kindreg_reuse_cluster")),
        )
