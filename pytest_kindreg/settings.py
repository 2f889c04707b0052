"""Options and ini keys, resolved once into a frozen :class:`Settings`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_kindreg.errors import KindConfigError
from pytest_kindreg.kind_config import (
    KindClusterConfig,
    UserKindConfig,
    check_cluster_name,
    load_kind_config,
    resolve_cluster_name,
)
from pytest_kindreg.registry import (
    DEFAULT_IMAGE,
    DEFAULT_PULL_SCOPE,
    DEFAULT_TEST_IMAGE,
    check_auth_options,
    check_token_listen,
)
from pytest_kindreg.strategies.access_token import DEFAULT_ACCESS_TOKEN_TTL

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
    group.addoption(
        "--kindreg-exclude-strategy",
        dest="kindreg_exclude_strategy",
        action="append",
        default=None,
        metavar="NAME",
        help="deselect the tests of this strategy (repeatable), e.g. workload_identity on clusters older than 1.34",
    )
    parser.addini(
        "kindreg_exclude_strategies",
        "strategies whose tests are deselected",
        type="linelist",
        default=[],
    )
    parser.addini(
        "kindreg_default_strategies",
        "strategies for tests without a kindreg_strategy marker",
        type="linelist",
        default=list(DEFAULT_STRATEGIES),
    )
    option("kindreg_registry_image", "string", f"registry image (default {DEFAULT_IMAGE})", default=DEFAULT_IMAGE)
    option(
        "kindreg_registry_auth",
        "string",
        "how the registries authenticate: 'htpasswd' (the default) or 'token' (distribution's Bearer token auth "
        "with the plugin's token service: the cluster's identity is read-only, limited to kindreg_pull_scope)",
        default="htpasswd",
    )
    group.addoption(
        "--kindreg-pull-scope",
        dest="kindreg_pull_scope",
        action="append",
        default=None,
        metavar="PATTERN",
        help="token mode: a repository glob the cluster's identity may pull (repeatable; default *)",
    )
    parser.addini(
        "kindreg_pull_scope",
        "token mode: repository globs the cluster's identity may pull (default *)",
        type="linelist",
        default=list(DEFAULT_PULL_SCOPE),
    )
    option(
        "kindreg_access_token_ttl",
        "string",
        "token mode: seconds an access token of the access_token strategy is valid "
        f"(default {DEFAULT_ACCESS_TOKEN_TTL:g})",
    )
    option(
        "kindreg_token_listen",
        "string",
        "token mode: the address the token service listens on (default: the Docker engine's default bridge gateway)",
    )
    option(
        "kindreg_token_realm_host",
        "string",
        "token mode: the host name clients use for the token service (default: its listen address; Docker "
        "Desktop: host.docker.internal)",
    )
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
        "kindreg_kind_config",
        "string",
        "your kind v1alpha4 Cluster config (YAML) as the base of the cluster's config; in the ini file, "
        "relative to the ini file's directory",
    )
    option(
        "kindreg_workers",
        "string",
        "number of worker nodes besides the control plane (default 0; not with a kind config that lists nodes)",
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
    strategies_excluded: tuple[str, ...] = ()
    default_strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    registry_image: str = DEFAULT_IMAGE
    registry_auth: str = "htpasswd"
    pull_scope: tuple[str, ...] = DEFAULT_PULL_SCOPE
    access_token_ttl: float = DEFAULT_ACCESS_TOKEN_TTL
    token_listen: str | None = None
    token_realm_host: str | None = None
    test_image: str = DEFAULT_TEST_IMAGE
    kind_bin: str | None = None
    node_image: str | None = None
    cluster_name: str | None = None
    workers: int | None = None
    kind_config: UserKindConfig | None = None
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
        workers_text = get("kindreg_workers")
        workers: int | None = None
        if workers_text not in (None, ""):
            try:
                workers = int(workers_text)
                if workers < 0:
                    raise ValueError
            except ValueError:
                raise pytest.UsageError(f"--kindreg-workers takes a whole number >= 0, not {workers_text!r}") from None
        cluster_name = get("kindreg_cluster_name") or None
        if cluster_name is not None:
            from_option = config.getoption("kindreg_cluster_name", default=None) is not None
            where = "--kindreg-cluster-name" if from_option else f"ini kindreg_cluster_name (in {config.inipath})"
            try:
                check_cluster_name(cluster_name, where)
            except KindConfigError as exc:
                raise pytest.UsageError(str(exc)) from None
        node_image = get("kindreg_node_image") or None
        kind_config = _kind_config(config)
        if kind_config is not None:
            try:
                resolve_cluster_name(cluster_name, kind_config, "--kindreg-cluster-name")
                # The name only matters for the checks against workers and the config's name.
                KindClusterConfig(name=kind_config.name or cluster_name or "check", workers=workers, base=kind_config)
            except KindConfigError as exc:
                raise pytest.UsageError(str(exc)) from None
        xdist = str(get("kindreg_xdist"))
        if xdist not in ("shared", "per-worker"):
            raise pytest.UsageError(f"{xdist!r} is not a valid kindreg_xdist mode. Valid modes: shared, per-worker")
        return cls(
            xdist=xdist,
            strict=bool(get("kindreg_strict")),
            required=frozenset(required),
            strategies_selected=tuple(config.getoption("kindreg_strategy", default=None) or ()),
            strategies_excluded=tuple(
                config.getoption("kindreg_exclude_strategy", default=None)
                or config.getini("kindreg_exclude_strategies")
            ),
            default_strategies=tuple(config.getini("kindreg_default_strategies")) or DEFAULT_STRATEGIES,
            registry_image=str(get("kindreg_registry_image")),
            **_registry_auth(config, get),
            test_image=str(get("kindreg_test_image")),
            kind_bin=get("kindreg_kind_bin") or os.environ.get("KIND") or None,
            node_image=node_image,
            cluster_name=cluster_name,
            workers=workers,
            kind_config=kind_config,
            keep_cluster=bool(get("kindreg_keep_cluster")) or bool(get("kindreg_reuse_cluster")),
            reuse_cluster=bool(get("kindreg_reuse_cluster")),
        )


def _kind_config(config: pytest.Config) -> UserKindConfig | None:
    """The user's kind config: ``--kindreg-kind-config`` (relative to where pytest was invoked),
    else ini ``kindreg_kind_config`` (relative to the ini file), read and checked now, before
    anything is created. A bad one is a usage error naming the file and the key."""
    value = config.getoption("kindreg_kind_config", default=None)
    base = config.invocation_params.dir
    if value is None:
        value = config.getini("kindreg_kind_config")
        base = config.inipath.parent if config.inipath is not None else config.rootpath
    if not value:
        return None
    try:
        return load_kind_config(Path(base) / os.path.expanduser(str(value)))
    except KindConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _registry_auth(config: pytest.Config, get: Any) -> dict[str, Any]:
    """The registries' auth mode and what goes with it, checked: one usage error per mistake."""
    auth = str(get("kindreg_registry_auth") or "htpasswd")
    requested = config.getoption("kindreg_pull_scope", default=None) or config.getini("kindreg_pull_scope")
    try:
        scope = check_auth_options(auth, tuple(requested) or DEFAULT_PULL_SCOPE)
    except ValueError as exc:
        raise pytest.UsageError(f"kindreg: {exc}") from None
    listen = get("kindreg_token_listen") or None
    try:
        check_token_listen(listen)
    except ValueError as exc:
        raise pytest.UsageError(f"kindreg: --kindreg-token-listen: {exc}") from None
    ttl_text = get("kindreg_access_token_ttl")
    ttl = DEFAULT_ACCESS_TOKEN_TTL
    if ttl_text not in (None, ""):
        try:
            ttl = float(ttl_text)
        except ValueError:
            ttl = -1.0
        if not ttl > 0:
            raise pytest.UsageError(f"--kindreg-access-token-ttl takes a number of seconds > 0, not {ttl_text!r}")
    return {
        "registry_auth": auth,
        "pull_scope": scope,
        "access_token_ttl": ttl,
        "token_listen": listen,
        "token_realm_host": get("kindreg_token_realm_host") or None,
    }
