"""containerd registry host configuration (hosts.toml) and version detection for kind nodes.

Only ``config_path`` + ``hosts.toml`` is used: ``registry.mirrors`` and ``registry.configs.*.tls``
break containerd 1.7 next to config_path, are ignored by 2.x, and ``mirrors`` breaks 2.2.0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

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


def parse_config_version(dump: str) -> int:
    """The top-level ``version = N`` of ``containerd config dump`` (2 for 1.x, 3 for 2.x)."""
    match = re.search(r"^version\s*=\s*(\d+)\s*$", dump, re.MULTILINE)
    if not match:
        raise ValueError("containerd config dump has no top-level version")
    return int(match.group(1))


def config_paths(dump: str) -> list[str]:
    """Every ``config_path`` value set in ``containerd config dump`` (empty strings dropped)."""
    return [value for value in re.findall(r'^\s*config_path\s*=\s*"([^"]*)"', dump, re.MULTILINE) if value]
