"""Render and check kind v1alpha4 ``Cluster`` configs.

A user's own kind config (:class:`UserKindConfig`, from a YAML file or a dict) is the base;
strategies contribute extra mounts and containerd patches; :class:`KindClusterConfig` merges them
into one config, refusing combinations that kind or containerd would reject (or silently ignore)
at cluster-creation time, when the failure is slow and hard to read.

The checks mirror kind's own: its YAML reader (go.yaml.in/yaml/v3 with ``KnownFields(true)``:
unknown fields and duplicate keys are errors; ``pkg/internal/apis/config/encoding/load.go``) and
its validation (``pkg/internal/apis/config/validate.go``: name, ports, subnets, proxy mode, port
mappings), plus what Docker would refuse later (relative container paths, one host port twice).

Relative ``hostPath``s are resolved against the config file's directory (a dict's: the working
directory when it is loaded) and given to kind as absolute paths, so a config works from any
directory and its fingerprint does not depend on where pytest runs.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import os
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import yaml

from pytest_kindreg.containerd import CERTS_D, CONFIG_PATH, MIRRORS, forbidden_registry_settings
from pytest_kindreg.containerd_patches import json6902_problem, registry_patch, registry_tables_problem
from pytest_kindreg.errors import KindConfigError

__all__ = [
    "API_VERSION",
    "CONFIG_PATH_PATCH",
    "ClusterContribution",
    "ExtraMount",
    "KindClusterConfig",
    "KindConfigSource",
    "UserKindConfig",
    "check_cluster_name",
    "check_node_files",
    "config_differences",
    "load_kind_config",
    "missing_cni_installer",
    "resolve_cluster_name",
    "validate_kind_config",
]

API_VERSION = "kind.x-k8s.io/v1alpha4"

# kind <= v0.30 ships containerd 2.0/2.1 (or 1.7) whose default config_path is "", so hosts.toml files
# under certs.d are ignored without this; containerd >= 2.2 defaults to it, so it is harmless there.
# The plugin's patch when the user's patches set no registry settings (see registry_patch).
CONFIG_PATH_PATCH = registry_patch()

_NAME_RE = re.compile(r"[a-z0-9.-]+")  # kind's ^[a-z0-9.-]+$, used with fullmatch


def check_cluster_name(name: object, where: str) -> str:
    """``name`` if kind accepts it as a cluster name, else one :class:`KindConfigError` saying where
    it came from (``where``: an option, an ini key, a config's ``name:``, an argument)."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise KindConfigError(f"{where}: {_name_problem(name)}")
    return name


def _name_problem(name: object) -> str:
    return (
        f"{name!r} is not a valid kind cluster name: kind takes lowercase letters, digits, '.' and '-' "
        "only (^[a-z0-9.-]+$)"
    )


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
_FORBIDDEN_CONFIG_PATH_WHY = (
    f"containerd would not read {CERTS_D}, where pytest-kindreg writes every registry's hosts.toml "
    f"(and the plugin's own config_path patch would override yours); keep {CERTS_D} among the "
    f'colon-separated roots, e.g. config_path = "{CERTS_D}:/etc/docker/certs.d"'
)
_CONFIG_PATH_TYPE_WHY = "config_path must be a string: directories separated by ':'"
_WHY = {MIRRORS: _FORBIDDEN_MIRRORS_WHY, CONFIG_PATH: _FORBIDDEN_CONFIG_PATH_WHY}


def _patch_problem(patch: str, where: str, *, roots_of_users: bool = False) -> str | None:
    """Why a containerd config patch cannot be used next to pytest-kindreg's hosts.toml files, or None.

    ``roots_of_users``: a user's patch, whose config_path roots the plugin's own patch keeps and
    adds /etc/containerd/certs.d to (a strategy's patch must keep that root itself).
    """
    try:
        found = forbidden_registry_settings(patch)
    except ValueError as exc:
        return f"{where}: {exc}"
    for key, what, value in found:
        if what == CONFIG_PATH and roots_of_users and isinstance(value, str):
            continue
        shown = f" = {value!r}" if what == CONFIG_PATH else ""
        why = _CONFIG_PATH_TYPE_WHY if what == CONFIG_PATH and not isinstance(value, str) else _WHY.get(what)
        return f"{where}: {key}{shown}: {why or _FORBIDDEN_TLS_WHY}"
    return None


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
    # kubeadm merge patches (YAML), after the user's: e.g. kubelet flags for credential providers.
    kubeadm_patches: tuple[str, ...] = ()
    source: str = ""


def _describe(source: str) -> str:
    return f"strategy {source!r}" if source else "an unnamed contribution"


# ---------------------------------------------------------------------------------------------------------
# The user's own kind config


def _plain(value: Any) -> Any:
    """``value`` as plain dicts, lists, str, int, float and bool, every object its own copy.

    A dict config may hold OrderedDicts, ruamel's CommentedMap/ScalarString, tuples, and the same
    node object twice (``[{"role": "worker"}] * 2``, a YAML anchor): kind gets YAML from
    ``yaml.safe_dump``, which refuses the first ones, and the plugin adds its mounts per node.
    """
    if isinstance(value, Mapping):
        return {(str(k) if isinstance(k, str) else k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    for plain in (bool, str, int, float):  # bool first: it is an int too
        if isinstance(value, plain):
            return plain(value)
    return value  # None, or something the checks name by its type


def _absolute_host_paths(document: dict[str, Any], base: Path) -> None:
    """Relative ``hostPath``s resolved against ``base`` (kind would use its working directory)."""
    for node in document.get("nodes") or []:
        for mount in node.get("extraMounts") or []:
            host_path = mount["hostPath"]
            if not os.path.isabs(host_path):
                mount["hostPath"] = os.path.abspath(os.path.join(base, host_path))


@dataclass(frozen=True)
class UserKindConfig:
    """A user's kind v1alpha4 ``Cluster``, checked: the base every cluster config is built on.

    ``origin`` names where it came from (a file path, or ``<dict>``) in every error message.
    ``relative_to``: the directory relative ``hostPath``s are resolved against (the config file's
    directory; default: the working directory); the document holds them absolute.
    """

    document: Mapping[str, Any] = field(repr=False)
    origin: str = "<dict>"
    relative_to: InitVar[str | os.PathLike[str] | None] = None

    def __post_init__(self, relative_to: str | os.PathLike[str] | None) -> None:
        where = f"kind config {self.origin}"
        # A private plain copy: later changes to the caller's dict cannot change a checked config.
        document = _plain(self.document)
        try:
            validate_kind_config(document)
        except ValueError as exc:
            raise KindConfigError(f"{where}: {exc}") from None
        patches = document.get("containerdConfigPatches") or []
        for i, patch in enumerate(patches):
            problem = _patch_problem(patch, f"{where}: containerdConfigPatches[{i}]", roots_of_users=True)
            if problem:
                raise KindConfigError(problem)
        problem = registry_tables_problem(patches)
        if problem:
            raise KindConfigError(f"{where}: containerdConfigPatches: {problem}")
        for i, patch in enumerate(document.get("containerdConfigPatchesJSON6902") or []):
            problem = json6902_problem(patch)
            if problem:
                separator = "" if problem.startswith("[") else ": "
                raise KindConfigError(f"{where}: containerdConfigPatchesJSON6902[{i}]{separator}{problem}")
        _absolute_host_paths(document, Path(relative_to) if relative_to is not None else Path.cwd())
        object.__setattr__(self, "document", document)

    def __repr__(self) -> str:
        return f"<UserKindConfig {self.origin}>"

    @property
    def name(self) -> str | None:
        value = self.document.get("name")
        return str(value) if value else None

    @property
    def has_nodes(self) -> bool:
        return bool(self.document.get("nodes"))  # kind treats an empty list as one control-plane

    @property
    def disables_default_cni(self) -> bool:
        """``networking.disableDefaultCNI: true``: kind installs no pod network; the suite must."""
        return bool((self.document.get("networking") or {}).get("disableDefaultCNI"))

    def renamed(self, name: str) -> UserKindConfig:
        """The same config for a cluster called ``name`` (e.g. one xdist worker's)."""
        document = dict(self.document)
        document["name"] = name
        return UserKindConfig(document, self.origin)


# What KindCluster, KindRegistryEnvironment and KindClusterConfig take as a user's kind config.
KindConfigSource: TypeAlias = str | os.PathLike[str] | Mapping[str, Any] | UserKindConfig


def load_kind_config(source: KindConfigSource) -> UserKindConfig:
    """A checked :class:`UserKindConfig` from a YAML file's path or a dict.

    Every problem is one :class:`~pytest_kindreg.errors.KindConfigError` naming the file and the key.
    """
    if isinstance(source, UserKindConfig):
        return source
    if isinstance(source, Mapping):
        return UserKindConfig(source)
    if not isinstance(source, str | os.PathLike):
        raise KindConfigError(
            f"kind config: expected a YAML file's path, a dict or a UserKindConfig, got {type(source).__name__}"
        )
    path = Path(source)
    where = f"kind config {path}"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise KindConfigError(f"{where}: no such file") from None
    except OSError as exc:
        raise KindConfigError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    try:
        # kind's YAML reader takes UTF-8, or UTF-16 with its byte order mark.
        text = raw.decode("utf-16") if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise KindConfigError(
            f"{where}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save the file as UTF-8"
        ) from None
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        for node in nodes:
            duplicate = _duplicate_key(node, "", set())
            if duplicate:
                raise KindConfigError(f"{where}: {duplicate}")
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise KindConfigError(f"{where}: not valid YAML{at}: {problem}") from None
    if len(documents) != 1:
        raise KindConfigError(
            f"{where}: expected one YAML document (a kind.x-k8s.io/v1alpha4 Cluster), found {len(documents)}"
        )
    if not isinstance(documents[0], Mapping):
        raise KindConfigError(
            f"{where}: <root>: expected a kind.x-k8s.io/v1alpha4 Cluster mapping, got {type(documents[0]).__name__}"
        )
    return UserKindConfig(documents[0], str(path), relative_to=path.absolute().parent)


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _duplicate_key(node: yaml.Node, path: str, seen: set[int]) -> str | None:
    """The first mapping key given twice under ``node``, as kind's YAML reader reports it."""
    if id(node) in seen:  # an alias: checked where its anchor is (and no endless loop)
        return None
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found = _duplicate_key(item, f"{path}[{i}]", seen)
            if found:
                return found
    elif isinstance(node, yaml.MappingNode):
        lines: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            sub = path
            if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE_TAG:
                sub = f"{path}.{key.value}" if path else str(key.value)
                line = key.start_mark.line + 1
                first = lines.get((key.tag, key.value))
                if first is not None:
                    return (
                        f"{sub}: mapping key {json.dumps(key.value)} already defined at line {first} "
                        f"(again at line {line}); kind's YAML reader refuses duplicate keys"
                    )
                lines[(key.tag, key.value)] = line
            found = _duplicate_key(value, sub, seen)
            if found:
                return found
    return None


NO_CNI_INSTALLER_HOW = (
    "pass on_cluster_created= to KindRegistryEnvironment (on_created= to KindCluster.create), a function "
    "that takes the KindCluster and installs your CNI; under pytest, implement the hook "
    "pytest_kindreg_cluster_created(cluster) in a conftest.py"
)


def missing_cni_installer(config: UserKindConfig, how: str = NO_CNI_INSTALLER_HOW) -> KindConfigError:
    """The error for a config with ``disableDefaultCNI: true`` and nothing to install a CNI."""
    return KindConfigError(
        f"kind config {config.origin}: networking.disableDefaultCNI: true: kind installs no pod network, so no "
        f"node becomes Ready until the suite installs one; {how}"
    )


def resolve_cluster_name(
    explicit: str | None, user_config: UserKindConfig | None, option: str = "cluster_name"
) -> str | None:
    """The cluster's name: ``explicit`` if given, else the config's ``name:``, else None (the caller's default).

    Both given and different is an error: one of them would be silently ignored.
    """
    configured = user_config.name if user_config is not None else None
    if explicit and configured and explicit != configured:
        assert user_config is not None
        raise KindConfigError(
            f"kind config {user_config.origin}: name: {configured!r} conflicts with the cluster name {explicit!r} "
            f"given by {option}; the cluster is named by {option} if given, else by the config's name:. "
            "Drop one of them or make them equal."
        )
    return explicit or configured


def config_differences(recorded: Mapping[str, Any], needed: Mapping[str, Any], limit: int = 6) -> list[str]:
    """Where two rendered kind configs differ, as ``key: recorded …, needed …`` lines (at most ``limit``)."""
    found: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for key in list(a) + [k for k in b if k not in a]:
                walk(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{path}[{i}]")
        elif a != b:
            found.append(f"{path or '<root>'}: recorded {_short(a)}, needed {_short(b)}")

    walk(recorded, needed, "")
    return found[:limit] + ([f"... and {len(found) - limit} more"] if len(found) > limit else [])


def _short(value: Any) -> str:
    text = "absent" if value is None else json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KindClusterConfig:
    """The config ``kind create cluster`` gets: the user's (``base``), or one control-plane node plus
    ``workers`` workers, with every contribution applied to every node.

    The base's own keys are all kept (nodes, networking, feature gates, kubeadm and containerd
    patches); the plugin's containerd patches come after the user's, its mounts after each node's own.
    """

    name: str
    node_image: str | None = None
    workers: int | None = None
    contributions: tuple[ClusterContribution, ...] = ()
    base: UserKindConfig | None = None

    def __post_init__(self) -> None:
        check_cluster_name(self.name, "cluster name")
        if self.workers is not None and (
            isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0
        ):
            raise KindConfigError(f"workers: must be an integer >= 0, got {self.workers!r}")
        if self.node_image is not None and (not isinstance(self.node_image, str) or not self.node_image):
            raise KindConfigError(f"node_image: must be a non-empty image reference or None, got {self.node_image!r}")
        if self.base is not None:
            self._check_base(self.base)
        seen: dict[str, tuple[ExtraMount, str]] = {}
        for contribution in self.contributions:
            for mount in contribution.extra_mounts:
                self._check_mount(mount, contribution.source, seen)
            for patch in contribution.containerd_patches:
                problem = _patch_problem(patch, f"containerd patch from {_describe(contribution.source)}")
                if problem:
                    raise ValueError(problem)
        self._check_user_mounts()

    def _check_base(self, base: UserKindConfig) -> None:
        where = f"kind config {base.origin}"
        if base.has_nodes and self.workers is not None:
            raise KindConfigError(
                f"{where}: nodes: the config lists its nodes, so workers cannot be added to them "
                f"(--kindreg-workers / workers={self.workers}); list the workers in the config's nodes, "
                "or drop nodes and use --kindreg-workers"
            )
        resolve_cluster_name(self.name, base)

    @property
    def disables_default_cni(self) -> bool:
        """The user's config sets ``networking.disableDefaultCNI: true``."""
        return self.base is not None and self.base.disables_default_cni

    def _check_user_mounts(self) -> None:
        """A user's mount must not hide what the plugin mounts or writes on every node."""
        check_node_files(
            self.base,
            {
                c.source or "an unnamed contribution": [m.container_path for m in c.extra_mounts]
                for c in self.contributions
            },
        )

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
        # After the user's patches (kind merges in order): their config_path roots with certs.d added.
        user = (self.base.document.get("containerdConfigPatches") or []) if self.base is not None else []
        patches = [registry_patch(user)]
        for contribution in self.contributions:
            for patch in contribution.containerd_patches:
                if patch not in patches:
                    patches.append(patch)
        return patches

    def check_host_paths(self) -> None:
        """Raise if a user's mount names a host path that does not exist now: Docker would create an
        empty directory in its place and the node would see nothing. Checked just before creation,
        since a session fixture may create the path first."""
        if self.base is None:
            return
        relative = "the directory of the config file" if self.base.origin != "<dict>" else "the working directory"
        for i, node in enumerate(self.base.document.get("nodes") or []):
            for j, mount in enumerate(node.get("extraMounts") or []):
                host_path = str(mount.get("hostPath", ""))
                if not os.path.exists(host_path):
                    raise KindConfigError(
                        f"kind config {self.base.origin}: nodes[{i}].extraMounts[{j}].hostPath: {host_path!r} does "
                        f"not exist (a relative hostPath is resolved against {relative}); create it first, "
                        "or fix the path"
                    )

    def node_images(self) -> list[str]:
        """Every node image the rendered config names (empty: kind's default image only)."""
        images = [node.get("image") for node in self.to_dict()["nodes"]]
        return sorted({image for image in images if image})

    def to_dict(self) -> dict[str, Any]:
        mounts = self._mounts()
        doc: dict[str, Any] = {"kind": "Cluster", "apiVersion": API_VERSION, "name": self.name}
        user = copy.deepcopy(dict(self.base.document)) if self.base is not None else {}
        # The user's keys in the user's order (name excepted: see resolve_cluster_name).
        doc.update((key, value) for key, value in user.items() if key not in doc)
        # Each node its own copy: the plugin's mounts are added once per node, never twice to one object.
        nodes: list[dict[str, Any]] = [copy.deepcopy(node) for node in user.get("nodes") or []] or [
            {"role": "control-plane"},
            *({"role": "worker"} for _ in range(self.workers or 0)),
        ]
        for node in nodes:
            if self.node_image is not None:
                node.setdefault("image", self.node_image)  # a node's own image wins
            # Credentials and certs must be on every node: any of them may be scheduled to pull.
            if mounts:
                node["extraMounts"] = [*node.get("extraMounts", []), *(dict(m) for m in mounts)]
        doc["nodes"] = nodes
        user_patches = list(user.get("containerdConfigPatches") or [])
        doc["containerdConfigPatches"] = user_patches + [p for p in self._patches() if p not in user_patches]
        kubeadm = list(user.get("kubeadmConfigPatches") or [])
        for contribution in self.contributions:
            kubeadm += [p for p in contribution.kubeadm_patches if p not in kubeadm]
        if kubeadm:
            doc["kubeadmConfigPatches"] = kubeadm
        return doc

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def fingerprint(self) -> str:
        """sha256 of everything but the name: equal fingerprints mean an existing cluster can be reused."""
        doc = self.to_dict()
        del doc["name"]
        canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_node_files(config: UserKindConfig | None, owners: Mapping[str, Sequence[str]]) -> None:
    """Raise if a mount of the user's config would hide what the plugin puts on every node: the
    registries' hosts.toml files under /etc/containerd/certs.d, and the files each strategy in
    ``owners`` (strategy name → container paths) mounts or writes (node_config and access_token:
    kubelet's ``/var/lib/kubelet/config.json``). Checked before anything is created."""
    if config is None:
        return
    for i, node in enumerate(config.document.get("nodes") or []):
        for j, mount in enumerate(node.get("extraMounts") or []):
            target = posixpath.normpath(str(mount.get("containerPath", "")))
            where = f"kind config {config.origin}: nodes[{i}].extraMounts[{j}].containerPath"
            hidden = target.rstrip("/") + "/"
            if target == CERTS_D or CERTS_D.startswith(hidden):
                raise KindConfigError(
                    f"{where}: {target} would hide {CERTS_D}, where pytest-kindreg writes each registry's "
                    f"hosts.toml; mount single registries' directories ({CERTS_D}/<host>) instead"
                )
            for owner, paths in owners.items():
                for path in map(posixpath.normpath, paths):
                    if target == path or path.startswith(hidden):
                        raise KindConfigError(
                            f"{where}: {target} would hide {path}, which strategy {owner!r} mounts or writes on "
                            f"every node; remove this mount or deselect {owner!r}"
                        )


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
_PROXY_MODES = frozenset({"iptables", "ipvs", "nftables", "none"})
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_CIDR = re.compile(r"[^/]+/[0-9]+")  # Go's net.ParseCIDR wants address/prefix-length
_WILDCARD = ipaddress.ip_address("0.0.0.0")  # noqa: S104 - kind's default listen address


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


def _int32(value: object, path: str) -> int:
    # bool is an int subclass in Python but not a number to kind's decoder.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{path}: expected an integer, got {_type_name(value)}")
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise ValueError(f"{path}: {value} does not fit in an int32")
    return value


def _port(value: object, path: str) -> int:
    port = _int32(value, path)
    if not -1 <= port <= 65535:  # kind's validatePort; -1 lets Docker pick
        raise ValueError(f"{path}: {port} is not a port number (0 to 65535, or -1 to let Docker pick one)")
    return port


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
    for key in ("hostPath", "containerPath"):
        if not mount.get(key):
            raise ValueError(f"{path}.{key}: required (Docker mounts hostPath at containerPath)")
    if not posixpath.isabs(mount["containerPath"]):
        raise ValueError(
            f"{path}.containerPath: {mount['containerPath']!r} must be an absolute path in the node (Docker refuses "
            "a relative mount point)"
        )


def _listen_address(value: object, path: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    text = _string(value, path)
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{path}: {text!r} is not an IP address (kind: invalid listen address)") from None


def _check_port_doc(value: object, path: str) -> None:
    port = _mapping(value, path)
    _known(port, _PORT_KEYS, path)
    for key, sub in port.items():
        if key in ("containerPort", "hostPort"):
            _port(sub, f"{path}.{key}")
        elif key == "protocol":
            _string(sub, f"{path}.{key}", _PROTOCOLS)
        elif key == "listenAddress":
            if sub != "":
                _listen_address(sub, f"{path}.{key}")
        else:
            _string(sub, f"{path}.{key}")


def _check_host_ports(nodes: list[Any]) -> None:
    """kind's validatePortMappings, across all nodes (they publish on one Docker host): one host
    port, protocol and listen address once; a wildcard address (0.0.0.0, ::) clashes with any."""
    bound: dict[str, dict[str, str]] = {}
    for i, node in enumerate(nodes):
        for j, mapping in enumerate(node.get("extraPortMappings") or []):
            where = f"nodes[{i}].extraPortMappings[{j}]"
            host_port = mapping.get("hostPort", 0)
            if host_port in (0, -1):  # a random port each: duplicates are fine
                continue
            address = mapping.get("listenAddress") or ""
            ip = _listen_address(address, f"{where}.listenAddress") if address else _WILDCARD
            if ip == ipaddress.ip_address("::"):
                ip = _WILDCARD
            key = f"{host_port}/{mapping.get('protocol') or 'TCP'}"
            taken = bound.setdefault(key, {})
            clash = (
                next(iter(taken.values()), None) if ip == _WILDCARD else taken.get(str(ip), taken.get(str(_WILDCARD)))
            )
            if clash is not None:
                raise ValueError(
                    f"{where}.hostPort: {key} on {ip} is mapped already by {clash} (kind: port mapping with same "
                    "listen address, port and protocol already configured)"
                )
            taken[str(ip)] = where


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


def _check_subnets(value: str, path: str, family: str) -> None:
    """kind's validateSubnets: CIDRs separated by ',', one per family of ``family``."""
    networks = []
    for text in value.split(","):
        try:
            if not _CIDR.fullmatch(text):
                raise ValueError("not address/prefix-length")
            networks.append(ipaddress.ip_network(text, strict=False))  # Go masks host bits too
        except ValueError as exc:
            raise ValueError(f"{path}: {text!r} is not a CIDR ({exc})") from None
    families = {network.version for network in networks}
    if family == "dual":
        if len(networks) > 2 or (len(networks) == 2 and families != {4, 6}):
            raise ValueError(f"{path}: {value!r}: ipFamily dual takes one CIDR, or two CIDRs, one of each IP family")
    elif len(networks) > 1:
        raise ValueError(f"{path}: {value!r}: only one CIDR allowed for single-stack networking (ipFamily {family})")
    elif families != {4 if family == "ipv4" else 6}:
        raise ValueError(
            f"{path}: {value!r}: expected an {'IPv4' if family == 'ipv4' else 'IPv6'} CIDR for ipFamily {family}"
        )


def _check_networking_doc(value: object, path: str) -> None:
    networking = _mapping(value, path)
    _known(networking, _NETWORKING_KEYS, path)
    for key, sub in networking.items():
        sub_path = f"{path}.{key}"
        if key == "apiServerPort":
            _port(sub, sub_path)
        elif key == "disableDefaultCNI":
            _bool(sub, sub_path)
        elif key == "dnsSearch":
            _string_list(sub, sub_path)
        elif key == "ipFamily":
            _string(sub, sub_path, _IP_FAMILIES)
        elif key == "kubeProxyMode":
            _string(sub, sub_path, _PROXY_MODES)
        else:
            _string(sub, sub_path)
    family = networking.get("ipFamily") or "ipv4"
    for key in ("podSubnet", "serviceSubnet"):
        if networking.get(key):  # empty: kind's default for the family
            _check_subnets(networking[key], f"{path}.{key}", family)


def validate_kind_config(doc: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the offending field if kind would reject ``doc``."""
    root = _mapping(doc, "<root>")
    # What the document is comes first: a Pod manifest is not a Cluster with unknown fields.
    if "kind" not in root:
        raise ValueError(f"kind: missing; a kind config starts with kind: Cluster and apiVersion: {API_VERSION}")
    if root.get("kind") != "Cluster":
        raise ValueError(f"kind: must be 'Cluster', got {root.get('kind')!r}")
    if root.get("apiVersion") != API_VERSION:
        raise ValueError(f"apiVersion: must be {API_VERSION!r}, got {root.get('apiVersion')!r}")
    _known(root, _CLUSTER_KEYS, "")
    if "name" in root:
        name = _string(root["name"], "name")
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"name: {_name_problem(name)}")
    roles: list[str] = []
    if "nodes" in root:
        nodes = _list(root["nodes"], "nodes")
        roles = [_check_node_doc(node, f"nodes[{i}]") for i, node in enumerate(nodes)]
        _check_host_ports(nodes)
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
