"""Render and check kind v1alpha4 ``Cluster`` configs.

Strategies contribute extra mounts and containerd patches; :class:`KindClusterConfig` merges them into one
config, refusing combinations that kind or containerd would reject (or silently ignore) at cluster-creation
time, when the failure is slow and hard to read.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = [
    "API_VERSION",
    "CONFIG_PATH_PATCH",
    "ClusterContribution",
    "ExtraMount",
    "KindClusterConfig",
    "validate_kind_config",
]

API_VERSION = "kind.x-k8s.io/v1alpha4"

# kind <= v0.30 ships containerd 2.0/2.1 (or 1.7) whose default config_path is "", so hosts.toml files
# under certs.d are ignored without this; containerd >= 2.2 defaults to it, so it is harmless there.
CONFIG_PATH_PATCH = '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"'

_NAME_RE = re.compile(r"[a-z0-9.-]+")  # kind's ^[a-z0-9.-]+$, used with fullmatch

_FORBIDDEN_MIRRORS_WHY = (
    "registry.mirrors must not be used: containerd 1.7 (kind <= v0.26) refuses it next to config_path "
    '("`mirrors` cannot be set when `config_path` is provided") and containerd 2.2.0/2.2.1 (kind v0.31.0) '
    "fails the same way even without an explicit config_path (kind #3884, containerd #12612); "
    "write /etc/containerd/certs.d/<host>/hosts.toml instead"
)
_FORBIDDEN_TLS_WHY = (
    "registry.configs.<host>.tls must not be used: containerd 1.7 (kind <= v0.26) refuses it next to "
    'config_path ("`configs.tls` cannot be set when `config_path` is provided") and containerd 2.x '
    "ignores it (kind #3884); put ca/client entries in /etc/containerd/certs.d/<host>/hosts.toml instead"
)


@dataclass(frozen=True)
class ExtraMount:
    """A bind mount from the host into every kind node container."""

    host_path: str
    container_path: str
    read_only: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"hostPath": self.host_path, "containerPath": self.container_path, "readOnly": self.read_only}


@dataclass(frozen=True)
class ClusterContribution:
    """What one registry strategy needs from ``kind create cluster``."""

    extra_mounts: tuple[ExtraMount, ...] = ()
    containerd_patches: tuple[str, ...] = ()
    source: str = ""


def _describe(source: str) -> str:
    return f"strategy {source!r}" if source else "an unnamed contribution"


def _toml_key_paths(patch: str) -> Iterable[str]:
    """Yield the table headers and the full dotted path of every key line, whitespace around dots removed.

    Not a TOML parser (tomllib is 3.11+): enough to see ``registry.mirrors`` however it is spelled
    (table header, sub-table, or dotted key inside ``[...registry]``).
    """
    table = ""
    for raw in patch.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = re.match(r"^\[\[?(.+?)\]\]?\s*(#.*)?$", line)
        if header:
            table = re.sub(r"\s*\.\s*", ".", header.group(1).strip())
            yield table
            continue
        key = re.match(r'^((?:"[^"]*"|\'[^\']*\'|[A-Za-z0-9_.\-\s])+?)\s*=', line)
        if key:
            dotted = re.sub(r"\s*\.\s*", ".", key.group(1).strip())
            yield f"{table}.{dotted}" if table else dotted


_MIRRORS_RE = re.compile(r"""(^|\.)["']?registry["']?\.["']?mirrors["']?(\.|$)""")
_TLS_RE = re.compile(r"""(^|\.)["']?registry["']?\.["']?configs["']?\.("[^"]*"|'[^']*'|[^.]+)\.["']?tls["']?(\.|$)""")


def _check_patch(patch: str, source: str) -> None:
    paths = list(_toml_key_paths(patch))
    # Raw-text checks too, for inline tables such as `registry = { mirrors = ... }`.
    flat = re.sub(r"\s*\.\s*", ".", patch)
    if any(_MIRRORS_RE.search(p) for p in paths) or "registry.mirrors" in flat or re.search(r"\bmirrors\s*=", patch):
        raise ValueError(f"containerd patch from {_describe(source)}: {_FORBIDDEN_MIRRORS_WHY}")
    has_configs = "registry.configs" in flat or re.search(r"\bconfigs\s*=", patch) is not None
    if (
        any(_TLS_RE.search(p) for p in paths)
        or ".tls]" in flat
        or (has_configs and re.search(r"\btls\b", patch) is not None)
    ):
        raise ValueError(f"containerd patch from {_describe(source)}: {_FORBIDDEN_TLS_WHY}")


@dataclass(frozen=True)
class KindClusterConfig:
    """One control-plane node plus ``workers`` workers, with every contribution applied to every node."""

    name: str
    node_image: str | None = None
    workers: int = 0
    contributions: tuple[ClusterContribution, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not _NAME_RE.fullmatch(self.name):
            raise ValueError(
                f"cluster name {self.name!r} is invalid: kind requires a non-empty name matching ^[a-z0-9.-]+$"
            )
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"workers must be an integer >= 0, got {self.workers!r}")
        if self.node_image is not None and not self.node_image:
            raise ValueError("node_image must be a non-empty image reference or None")
        seen: dict[str, tuple[ExtraMount, str]] = {}
        for contribution in self.contributions:
            for mount in contribution.extra_mounts:
                self._check_mount(mount, contribution.source, seen)
            for patch in contribution.containerd_patches:
                _check_patch(patch, contribution.source)

    @staticmethod
    def _check_mount(mount: ExtraMount, source: str, seen: dict[str, tuple[ExtraMount, str]]) -> None:
        who = _describe(source)
        # kind would resolve a relative hostPath against its own cwd, which is not ours to predict.
        if not posixpath.isabs(mount.host_path):
            raise ValueError(f"extra mount from {who}: hostPath {mount.host_path!r} must be an absolute path")
        if not posixpath.isabs(mount.container_path):
            raise ValueError(f"extra mount from {who}: containerPath {mount.container_path!r} must be an absolute path")
        key = posixpath.normpath(mount.container_path)
        previous = seen.get(key)
        if previous is None:
            seen[key] = (mount, source)
            return
        other, other_source = previous
        if posixpath.normpath(other.host_path) != posixpath.normpath(mount.host_path):
            raise ValueError(
                f"extra mount conflict on containerPath {key!r}: {_describe(other_source)} mounts "
                f"{other.host_path!r} there but {who} mounts {mount.host_path!r}"
            )
        if other.read_only != mount.read_only:
            # Docker refuses a duplicate mount point, so both cannot be rendered.
            raise ValueError(
                f"extra mount conflict on containerPath {key!r}: {_describe(other_source)} wants "
                f"readOnly={other.read_only} but {who} wants readOnly={mount.read_only}"
            )

    def _mounts(self) -> list[dict[str, Any]]:
        mounts: list[dict[str, Any]] = []
        seen: set[str] = set()
        for contribution in self.contributions:
            for mount in contribution.extra_mounts:
                key = posixpath.normpath(mount.container_path)
                if key not in seen:  # identical duplicates were accepted by __post_init__
                    seen.add(key)
                    mounts.append(mount.to_dict())
        return mounts

    def _patches(self) -> list[str]:
        patches = [CONFIG_PATH_PATCH]
        for contribution in self.contributions:
            for patch in contribution.containerd_patches:
                if patch not in patches:
                    patches.append(patch)
        return patches

    def to_dict(self) -> dict[str, Any]:
        mounts = self._mounts()
        nodes: list[dict[str, Any]] = []
        for role in ["control-plane"] + ["worker"] * self.workers:
            node: dict[str, Any] = {"role": role}
            if self.node_image is not None:
                node["image"] = self.node_image
            # Credentials and certs must be on every node: any of them may be scheduled to pull.
            if mounts:
                node["extraMounts"] = [dict(m) for m in mounts]
            nodes.append(node)
        return {
            "kind": "Cluster",
            "apiVersion": API_VERSION,
            "name": self.name,
            "nodes": nodes,
            "containerdConfigPatches": self._patches(),
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def fingerprint(self) -> str:
        """sha256 of everything but the name: equal fingerprints mean an existing cluster can be reused."""
        doc = self.to_dict()
        del doc["name"]
        canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# Strict checker mirroring kind's decoder (yaml KnownFields(true)) plus the validation kind does afterwards.

_CLUSTER_KEYS = frozenset(
    {
        "kind",
        "apiVersion",
        "name",
        "nodes",
        "networking",
        "featureGates",
        "runtimeConfig",
        "kubeadmConfigPatches",
        "kubeadmConfigPatchesJSON6902",
        "containerdConfigPatches",
        "containerdConfigPatchesJSON6902",
    }
)
_NODE_KEYS = frozenset(
    {
        "role",
        "image",
        "labels",
        "extraMounts",
        "extraPortMappings",
        "kubeadmConfigPatches",
        "kubeadmConfigPatchesJSON6902",
    }
)
_MOUNT_KEYS = frozenset({"containerPath", "hostPath", "readOnly", "selinuxRelabel", "propagation"})
_PORT_KEYS = frozenset({"containerPort", "hostPort", "listenAddress", "protocol"})
_NETWORKING_KEYS = frozenset(
    {
        "ipFamily",
        "apiServerPort",
        "apiServerAddress",
        "podSubnet",
        "serviceSubnet",
        "disableDefaultCNI",
        "kubeProxyMode",
        "dnsSearch",
    }
)
_JSON6902_KEYS = frozenset({"group", "version", "kind", "patch"})
_ROLES = frozenset({"control-plane", "worker"})
_PROPAGATIONS = frozenset({"None", "HostToContainer", "Bidirectional"})
_PROTOCOLS = frozenset({"TCP", "UDP", "SCTP"})
_IP_FAMILIES = frozenset({"ipv4", "ipv6", "dual"})
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _mapping(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{path}: expected a mapping, got {_type_name(value)}")
    for key in value:
        if not isinstance(key, str):
            raise ValueError(f"{path}: keys must be strings, got {_type_name(key)} {key!r}")
    return value


def _list(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{path}: expected a list, got {_type_name(value)}")
    return value


def _string(value: object, path: str, allowed: frozenset[str] | None = None) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{path}: expected a string, got {_type_name(value)}")
    if allowed is not None and value not in allowed:
        raise ValueError(f"{path}: {value!r} is not one of {', '.join(sorted(allowed))}")
    return value


def _bool(value: object, path: str) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{path}: expected a bool, got {_type_name(value)}")


def _int32(value: object, path: str) -> None:
    # bool is an int subclass in Python but not a number to kind's decoder.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{path}: expected an integer, got {_type_name(value)}")
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise ValueError(f"{path}: {value} does not fit in an int32")


def _known(doc: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
    for key in doc:
        if key not in allowed:
            where = f"{path}.{key}" if path else key
            raise ValueError(f"{where}: unknown field (allowed: {', '.join(sorted(allowed))})")


def _string_list(value: object, path: str) -> None:
    for i, item in enumerate(_list(value, path)):
        _string(item, f"{path}[{i}]")


def _string_map(value: object, path: str) -> None:
    for key, item in _mapping(value, path).items():
        _string(item, f"{path}.{key}")


def _json6902_list(value: object, path: str) -> None:
    for i, item in enumerate(_list(value, path)):
        item_path = f"{path}[{i}]"
        patch = _mapping(item, item_path)
        _known(patch, _JSON6902_KEYS, item_path)
        for key, sub in patch.items():
            _string(sub, f"{item_path}.{key}")


def _check_mount_doc(value: object, path: str) -> None:
    mount = _mapping(value, path)
    _known(mount, _MOUNT_KEYS, path)
    for key, sub in mount.items():
        if key in ("readOnly", "selinuxRelabel"):
            _bool(sub, f"{path}.{key}")
        elif key == "propagation":
            _string(sub, f"{path}.{key}", _PROPAGATIONS)
        else:
            _string(sub, f"{path}.{key}")


def _check_port_doc(value: object, path: str) -> None:
    port = _mapping(value, path)
    _known(port, _PORT_KEYS, path)
    for key, sub in port.items():
        if key in ("containerPort", "hostPort"):
            _int32(sub, f"{path}.{key}")
        elif key == "protocol":
            _string(sub, f"{path}.{key}", _PROTOCOLS)
        else:
            _string(sub, f"{path}.{key}")


def _check_node_doc(value: object, path: str) -> str:
    node = _mapping(value, path)
    _known(node, _NODE_KEYS, path)
    for key, sub in node.items():
        sub_path = f"{path}.{key}"
        if key == "role":
            _string(sub, sub_path, _ROLES)
        elif key == "image":
            _string(sub, sub_path)
        elif key == "labels":
            _string_map(sub, sub_path)
        elif key == "extraMounts":
            for i, mount in enumerate(_list(sub, sub_path)):
                _check_mount_doc(mount, f"{sub_path}[{i}]")
        elif key == "extraPortMappings":
            for i, port in enumerate(_list(sub, sub_path)):
                _check_port_doc(port, f"{sub_path}[{i}]")
        elif key == "kubeadmConfigPatches":
            _string_list(sub, sub_path)
        else:
            _json6902_list(sub, sub_path)
    return str(node.get("role", "control-plane"))  # kind's default role


def _check_networking_doc(value: object, path: str) -> None:
    networking = _mapping(value, path)
    _known(networking, _NETWORKING_KEYS, path)
    for key, sub in networking.items():
        sub_path = f"{path}.{key}"
        if key == "apiServerPort":
            _int32(sub, sub_path)
        elif key == "disableDefaultCNI":
            _bool(sub, sub_path)
        elif key == "dnsSearch":
            _string_list(sub, sub_path)
        elif key == "ipFamily":
            _string(sub, sub_path, _IP_FAMILIES)
        else:
            _string(sub, sub_path)


def validate_kind_config(doc: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the offending field if kind would reject ``doc``."""
    root = _mapping(doc, "<root>")
    _known(root, _CLUSTER_KEYS, "")
    if root.get("kind") != "Cluster":
        raise ValueError(f"kind: must be 'Cluster', got {root.get('kind')!r}")
    if root.get("apiVersion") != API_VERSION:
        raise ValueError(f"apiVersion: must be {API_VERSION!r}, got {root.get('apiVersion')!r}")
    if "name" in root:
        name = _string(root["name"], "name")
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"name: {name!r} does not match ^[a-z0-9.-]+$")
    roles: list[str] = []
    if "nodes" in root:
        roles = [_check_node_doc(node, f"nodes[{i}]") for i, node in enumerate(_list(root["nodes"], "nodes"))]
    # kind turns a missing or empty node list into one control-plane.
    if roles and "control-plane" not in roles:
        raise ValueError("nodes: must have at least one control-plane node")
    if "networking" in root:
        _check_networking_doc(root["networking"], "networking")
    if "featureGates" in root:
        for gate, enabled in _mapping(root["featureGates"], "featureGates").items():
            _bool(enabled, f"featureGates.{gate}")
    if "runtimeConfig" in root:
        _string_map(root["runtimeConfig"], "runtimeConfig")
    for key in ("kubeadmConfigPatches", "containerdConfigPatches", "containerdConfigPatchesJSON6902"):
        if key in root:
            _string_list(root[key], key)
    if "kubeadmConfigPatchesJSON6902" in root:
        _json6902_list(root["kubeadmConfigPatchesJSON6902"], "kubeadmConfigPatchesJSON6902")
