"""containerd registry host configuration (hosts.toml), version detection and config reading for kind nodes.

Only ``config_path`` + ``hosts.toml`` is used: ``registry.mirrors`` and ``registry.configs.*.tls``
break containerd 1.7 next to config_path, are ignored by 2.x, and ``mirrors`` breaks 2.2.0.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, as a package
    import tomli as tomllib

CERTS_D = "/etc/containerd/certs.d"


def hosts_dir(image_host: str, root: str = CERTS_D) -> str:
    """The directory containerd reads for ``image_host`` (``host[:port]`` as written in images)."""
    return f"{root}/{image_host}"


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class HostsToml:
    """``hosts.toml`` mapping an image host to a registry endpoint.

    Always one explicit ``[host."…"]`` table: containerd 1.7 rejects a file with only
    root-level fields (``invalid `host` tree``, containerd #10027).
    """

    endpoint: str
    ca: str | None = None
    client: tuple[str, str] | None = None
    capabilities: Sequence[str] = ("pull", "resolve")

    def render(self) -> str:
        # No root-level `server`: it would be a second, settings-less try of the same endpoint.
        lines = [
            f"[host.{_toml_string(self.endpoint)}]",
            "  capabilities = [" + ", ".join(_toml_string(c) for c in self.capabilities) + "]",
        ]
        if self.ca:
            lines.append(f"  ca = {_toml_string(self.ca)}")
        if self.client:
            cert, key = self.client
            lines.append(f"  client = [[{_toml_string(cert)}, {_toml_string(key)}]]")
        return "\n".join(lines) + "\n"


_VERSION = re.compile(r"\bv?(\d+)\.(\d+)\.(\d+)")


def parse_containerd_version(output: str) -> tuple[int, int, int]:
    """``containerd --version`` → (major, minor, patch); works for upstream, v2 and distro builds."""
    # Skip the module path (".../containerd/v2"), take the first x.y.z after it.
    for token in output.split()[1:]:
        match = _VERSION.match(token)
        if match:
            major, minor, patch = (int(g) for g in match.groups())
            return major, minor, patch
    raise ValueError(f"cannot read a containerd version from {output.strip()!r}")


# The CRI plugin's registry table, by config version: containerd 1.x dumps version 2, 2.x dumps
# version 3 (later versions keep the 2.x plugin ids). Other plugins have a config_path of their own
# (the transfer service's), which is not what the CRI pulls with in kind (kind-containerd-facts §4.2).
_CRI_REGISTRY_PLUGIN = {1: "cri", 2: "io.containerd.grpc.v1.cri", 3: "io.containerd.cri.v1.images"}


def _load(text: str) -> dict[str, Any]:
    # A TOML parser, not a pattern: containerd 2.x writes single-quoted strings and keys
    # (go-toml v2), 1.x double-quoted ones.
    try:
        doc: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"containerd config is not valid TOML: {exc}") from exc
    return doc


def _table(value: Any, *keys: str) -> dict[str, Any]:
    """``value[k1][k2]...`` when every step is a table, else an empty table."""
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else {}


def _version(doc: dict[str, Any]) -> int:
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError("containerd config dump has no top-level version")
    return version


def parse_config_version(dump: str) -> int:
    """The top-level ``version = N`` of ``containerd config dump`` (2 for 1.x, 3 for 2.x)."""
    return _version(_load(dump))


def config_paths(dump: str) -> list[str]:
    """The roots of the CRI plugin's ``registry.config_path`` in ``containerd config dump``
    (colon-separated there), in order; empty when it is unset or empty."""
    doc = _load(dump)
    version = _version(doc)
    if version < 2:
        raise ValueError(f"containerd config dump has version {version}; containerd dumps 2 (1.x) or 3 (2.x)")
    value = _table(doc, "plugins", _CRI_REGISTRY_PLUGIN[min(version, 3)], "registry").get("config_path")
    return [root for root in value.split(":") if root] if isinstance(value, str) else []


def _dotted(keys: Sequence[str]) -> str:
    """A TOML dotted key, quoting the parts that need it (``plugins."io.containerd.grpc.v1.cri"``)."""
    return ".".join(k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_string(k) for k in keys)


# What a containerd config patch must not set next to pytest-kindreg's hosts.toml files.
MIRRORS, CONFIGS_TLS, CONFIG_PATH = "mirrors", "configs.tls", "config_path"


def forbidden_registry_settings(patch: str) -> list[tuple[str, str, Any]]:
    """``(dotted key, what, value)`` for each CRI registry setting in a containerd config patch that
    cannot work with ``config_path`` + ``hosts.toml``: ``registry.mirrors``,
    ``registry.configs.<host>.tls``, and a ``registry.config_path`` without :data:`CERTS_D`.

    Read as TOML, so every spelling counts (tables, dotted keys, inline tables, any quoting).
    Raises ``ValueError`` if the patch is not TOML: kind would fail on it only after the nodes exist.
    """
    try:
        doc = tomllib.loads(patch)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML: {exc}") from exc
    found: list[tuple[str, str, Any]] = []

    def check(registry: dict[str, Any], path: list[str]) -> None:
        if MIRRORS in registry:
            found.append((_dotted([*path, MIRRORS]), MIRRORS, registry[MIRRORS]))
        configs = registry.get("configs")
        for host, host_config in (configs if isinstance(configs, dict) else {}).items():
            if isinstance(host_config, dict) and "tls" in host_config:
                found.append((_dotted([*path, "configs", host, "tls"]), CONFIGS_TLS, host_config["tls"]))
        if CONFIG_PATH in registry:
            value = registry[CONFIG_PATH]
            if not isinstance(value, str) or CERTS_D not in value.split(":"):
                found.append((_dotted([*path, CONFIG_PATH]), CONFIG_PATH, value))

    def walk(table: dict[str, Any], path: list[str]) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                if key == "registry":
                    check(value, [*path, key])
                walk(value, [*path, key])

    walk(doc, [])
    return found


def registry_mirrors(config: str) -> list[str]:
    """The hosts a containerd ``config.toml`` (any version) sets CRI ``registry.mirrors`` for.

    containerd refuses mirrors next to ``config_path`` (1.6/1.7: the CRI plugin does not load;
    2.x: the CRI images plugin does not), and kind <= v0.17 node images ship them.
    """
    doc = _load(config)
    tables = (_table(doc, "plugins", plugin, "registry", "mirrors") for plugin in _CRI_REGISTRY_PLUGIN.values())
    return sorted({host for mirrors in tables for host in mirrors})
