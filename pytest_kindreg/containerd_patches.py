"""How kind patches each node's containerd config, and the registry patch pytest-kindreg adds to it.

kind (``pkg/internal/patch/toml.go``, ``ContainerdTOML`` in v0.32+, ``TOML`` before) reads the
node's ``/etc/containerd/config.toml`` as JSON, applies every ``containerdConfigPatches`` entry as
an RFC 7386 merge patch in order (v0.32+ skips one whose top-level ``version`` differs from the
config's), then every ``containerdConfigPatchesJSON6902`` entry as an RFC 6902 patch (both with
evanphx/json-patch v5), and writes TOML back. containerd 2.x then migrates a version-2 config:
the CRI plugin's ``registry`` table *replaces* the version-3 images plugin's (``migrateConfig`` in
``plugins/cri/images/plugin.go``).

So the plugin's own patch, which comes after the user's, carries the user's registry settings:
the user's ``config_path`` roots with :data:`~pytest_kindreg.containerd.CERTS_D` added, and a
version-3 registry table copied into the version-2 one, which every containerd reads (1.7
directly, 2.x by that migration). JSON 6902 patches apply after every merge patch, the plugin's
too, so they are checked instead: any that would undo the plugin's ``config_path`` is refused.
"""

from __future__ import annotations

import copy
import datetime
import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from pytest_kindreg.containerd import CERTS_D

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, as a package
    import tomli as tomllib

__all__ = [
    "KIND_CONFIG_VERSION",
    "V2_REGISTRY",
    "V3_REGISTRY",
    "JSONPatchError",
    "apply_json6902",
    "cri_registry",
    "json6902_problem",
    "kind_patched_config",
    "merge_patch",
    "registry_patch",
    "registry_tables_problem",
    "user_registry_tables",
    "with_certs_d",
]

V2_CRI = "io.containerd.grpc.v1.cri"
V3_IMAGES = "io.containerd.cri.v1.images"
V2_REGISTRY = ("plugins", V2_CRI, "registry")
V3_REGISTRY = ("plugins", V3_IMAGES, "registry")
# kind's node config (images/base/files/etc/containerd/config.toml) is version 2 in every
# release up to v0.33 (containerd 2.x migrates it); kind v0.32+ skips patches of another version.
KIND_CONFIG_VERSION = 2


# -- kind's patching, mirrored ---------------------------------------------------------------------
def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as evanphx/json-patch's ``MergePatch``: tables merge key by key, ``null`` removes
    a key, anything else (arrays included) replaces. (TOML has no null: kind's patches never remove.)"""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = merge_patch(result.get(key), value)
        else:
            result[key] = copy.deepcopy(value)
    return result


class JSONPatchError(ValueError):
    """An RFC 6902 patch that evanphx/json-patch (so kind) would refuse to apply."""


_INDEX = re.compile(r"[+-]?[0-9]+")  # Go's strconv.Atoi


def _atoi(key: str) -> int:
    if not _INDEX.fullmatch(key):
        raise JSONPatchError(f"{key!r} is not an array index")
    return int(key)


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def pointer_tokens(path: str) -> list[str]:
    """The reference tokens of a JSON pointer ("" is the whole document)."""
    return [] if path == "" else [_unescape(part) for part in path.split("/")[1:]]


def _get(container: Any, key: str) -> Any:
    """The value at ``key`` (a missing key or index raises, as the library's ``get`` does)."""
    if isinstance(container, dict):
        if key not in container:
            raise JSONPatchError(f"unable to get nonexistent key: {key}")
        return container[key]
    index = _atoi(key)
    if index < 0:
        if index < -len(container):
            raise JSONPatchError(f"Unable to access invalid index: {index}")
        index += len(container)
    if index >= len(container):
        raise JSONPatchError(f"Unable to access invalid index: {index}")
    return container[index]


def _find(doc: Any, path: str) -> tuple[Any, str] | None:
    """The container holding the last token of ``path`` and that token (``findObject``)."""
    parts = path.split("/")
    if len(parts) < 2:
        return None
    current = doc
    for part in parts[1:-1]:
        try:
            current = _get(current, _unescape(part))
        except JSONPatchError:
            return None
        if not isinstance(current, dict | list):  # a null or a scalar: not a container
            return None
    return current, _unescape(parts[-1])


def _add(container: Any, key: str, value: Any) -> None:
    if isinstance(container, dict):
        container[key] = value
        return
    if key == "-":
        container.append(value)
        return
    index, size = _atoi(key), len(container) + 1
    if index >= size or index < -size:
        raise JSONPatchError(f"Unable to access invalid index: {index}")
    container.insert(index + size if index < 0 else index, value)


def _remove(container: Any, key: str) -> None:
    if isinstance(container, dict):
        if key not in container:
            raise JSONPatchError(f"unable to remove nonexistent key: {key}")
        del container[key]
        return
    index = _atoi(key)
    if index >= len(container) or index < -len(container):
        raise JSONPatchError(f"Unable to access invalid index: {index}")
    del container[index]


def _operation_field(operation: Any, name: str) -> str:
    value = operation.get(name) if isinstance(operation, dict) else None
    if not isinstance(value, str):
        raise JSONPatchError(f"operation missing {name} field")
    return value


def apply_json6902(doc: Any, operations: Sequence[Any]) -> Any:
    """``operations`` applied to a copy of ``doc`` as evanphx/json-patch v5's ``Patch.Apply`` with
    the options kind uses (the library's defaults: negative indices allowed, a missing path on
    remove an error, no paths created on add)."""
    doc = copy.deepcopy(doc)
    for operation in operations:
        kind = operation.get("op") if isinstance(operation, dict) else None
        if kind not in ("add", "remove", "replace", "move", "copy", "test"):
            raise JSONPatchError(f"Unexpected kind: {kind}")
        assert isinstance(operation, dict)
        path = _operation_field(operation, "path")
        value = copy.deepcopy(operation.get("value"))
        if kind == "replace" and path == "":
            if not isinstance(value, dict | list):
                raise JSONPatchError("replace operation value must be object or array")
            doc = value
            continue
        if kind == "test" and path == "":
            if doc != value:
                raise JSONPatchError(f"testing value {path} failed")
            continue
        if kind in ("move", "copy"):
            source = _operation_field(operation, "from")
            found = _find(doc, source)
            if found is None:
                raise JSONPatchError(f"{kind} operation does not apply: doc is missing from path: {source}")
            value = copy.deepcopy(_get(*found))
            if kind == "move":
                _remove(*found)
        found = _find(doc, path)
        if found is None:
            raise JSONPatchError(f'{kind} operation does not apply: doc is missing path: "{path}"')
        container, key = found
        if kind == "remove":
            _remove(container, key)
        elif kind == "replace":
            _get(container, key)  # must exist
            if isinstance(container, dict):
                container[key] = value
            else:
                index = _atoi(key)
                container[index] = value
        elif kind == "test":
            try:
                current = _get(container, key)
            except JSONPatchError:
                current = None
            if current != value:
                raise JSONPatchError(f"testing value {path} failed")
        else:  # add, and the second half of move and copy
            _add(container, key, value)
    return doc


def kind_patched_config(
    base: str | dict[str, Any],
    patches: Sequence[str] = (),
    patches_json6902: Sequence[str] = (),
    *,
    version_aware: bool = True,
) -> dict[str, Any]:
    """A node's containerd config after kind's patching: ``patches`` merged in order, then
    ``patches_json6902`` applied in order. ``version_aware``: kind v0.32+ skips a merge patch
    whose top-level ``version`` is set and differs from the config's (older kind applies all)."""
    doc: dict[str, Any] = tomllib.loads(base) if isinstance(base, str) else copy.deepcopy(base)
    version = doc.get("version", 0)
    if version_aware and not version:
        raise ValueError("failed to detect containerd config version")
    for patch in patches:
        patch_doc = tomllib.loads(patch)
        patch_version = patch_doc.get("version", 0)
        if version_aware and patch_version and patch_version != version:
            continue
        doc = merge_patch(doc, patch_doc)
    for patch in patches_json6902:
        result = apply_json6902(doc, json.loads(patch))
        if not isinstance(result, dict):
            raise JSONPatchError("the patched containerd config is not a table")
        doc = result
    return doc


def _table(doc: Any, *keys: str) -> dict[str, Any] | None:
    for key in keys:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc if isinstance(doc, dict) else None


def cri_registry(config: dict[str, Any], containerd_major: int) -> dict[str, Any] | None:
    """The CRI ``registry`` table containerd ``containerd_major`` uses with this config.toml:
    1.x reads the version-2 table; 2.x reads the version-3 one after migrating a version-2 config,
    where the version-2 table, if there is one, replaces it wholesale."""
    version = config.get("version", 1)
    if containerd_major < 2:
        return _table(config, *V2_REGISTRY) if version == 2 else None
    if version < 3:
        cri = _table(config, "plugins", V2_CRI) or {}
        if "registry" in cri:
            return cri["registry"] if isinstance(cri["registry"], dict) else None
    return _table(config, *V3_REGISTRY)


# -- the plugin's patch -------------------------------------------------------------------------------
def user_registry_tables(patches: Sequence[str]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The CRI registry tables (version-2 key, version-3 key) the user's merge patches leave on
    kind's node config, which has none of its own (patches for another config version are
    skipped, as kind v0.32+ does)."""
    merged: dict[str, Any] = {}
    for patch in patches:
        doc = tomllib.loads(patch)
        if doc.get("version", 0) in (0, KIND_CONFIG_VERSION):
            merged = merge_patch(merged, doc)
    return _table(merged, *V2_REGISTRY), _table(merged, *V3_REGISTRY)


def with_certs_d(config_path: str | None) -> str:
    """``config_path`` with :data:`CERTS_D` first among its roots (unchanged if it has it): the
    plugin's hosts.toml files are then found first, the user's own roots after them."""
    roots = [root for root in (config_path or "").split(":") if root]
    return config_path if config_path and CERTS_D in roots else ":".join([CERTS_D, *roots])


def registry_tables_problem(patches: Sequence[str]) -> str | None:
    """Why the user's merge patches' registry tables cannot work together, or None."""
    v2, v3 = user_registry_tables(patches)
    if v2 is not None and v3 is not None:
        return (
            f"plugins.{_quote(V2_CRI)}.registry and plugins.{_quote(V3_IMAGES)}.registry are both set: "
            "containerd 2.x replaces the second with the first when it migrates kind's version-2 config, "
            f"so the second never applies; keep one (plugins.{_quote(V2_CRI)}.registry works on every containerd)"
        )
    return None


def registry_patch(user_patches: Sequence[str] = ()) -> str:
    """pytest-kindreg's containerd patch, applied after ``user_patches``: the user's ``config_path``
    roots with :data:`CERTS_D` added, under the version-2 key every containerd reads; a version-3
    registry table of the user's is carried into it (containerd 2.x would otherwise replace it
    by this table). Without registry settings of the user's it is
    ``config_path = "/etc/containerd/certs.d"`` alone."""
    v2, v3 = user_registry_tables(user_patches)
    used = v2 if v2 is not None else (v3 or {})
    config_path = used.get("config_path")
    table: dict[str, Any] = {"config_path": with_certs_d(config_path if isinstance(config_path, str) else None)}
    if v2 is None:
        table.update((key, value) for key, value in (v3 or {}).items() if key != "config_path")
    lines = [f"[plugins.{_quote(V2_CRI)}.registry]"]
    lines += [f"  {_key(key)} = {_value(value)}" for key, value in table.items()]
    return "\n".join(lines)


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a TOML basic string is a JSON string


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _quote(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)  # inf, -inf, nan and 1e+100 are TOML as Python writes them
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {type(value).__name__}")


# -- checking JSON 6902 patches -------------------------------------------------------------------------
_MIRRORS_WHY = "registry.mirrors must not be used (see containerdConfigPatches); write hosts.toml files instead"
_TLS_WHY = "registry.configs.<host>.tls must not be used (see containerdConfigPatches); use hosts.toml ca/client"
_V3_WHY = (
    f"containerd 2.x replaces plugins.{_quote(V3_IMAGES)}.registry with the version-2 table the plugin's "
    "config_path patch writes; put these settings in a containerdConfigPatches merge patch instead "
    "(the plugin carries a version-3 registry table over)"
)


def _within(path: Sequence[str], prefix: Sequence[str]) -> bool:
    return tuple(path[: len(prefix)]) == tuple(prefix)


def _at(value: Any, keys: Sequence[str]) -> Any:
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _registry_value_problem(registry: Any) -> str | None:
    """Why a whole registry table put in place by a JSON 6902 operation cannot be used."""
    if not isinstance(registry, dict):
        return f"removes the registry table and with it the config_path {CERTS_D} the plugin sets"
    if "mirrors" in registry:
        return _MIRRORS_WHY
    configs = registry.get("configs")
    if isinstance(configs, dict) and any(isinstance(c, dict) and "tls" in c for c in configs.values()):
        return _TLS_WHY
    return _config_path_problem(registry.get("config_path"))


def _config_path_problem(value: Any) -> str | None:
    if not isinstance(value, str) or CERTS_D not in value.split(":"):
        return (
            f"sets config_path to {json.dumps(value)}, without {CERTS_D}: JSON 6902 patches apply after every "
            f"merge patch, the plugin's too, so containerd would not read the plugin's hosts.toml files; keep "
            f'{CERTS_D} among the roots, e.g. "{CERTS_D}:/etc/docker/certs.d"'
        )
    return None


def _write_problem(path: list[str], value: Any) -> str | None:
    """Why putting ``value`` at ``path`` (add, replace) cannot work next to the plugin's patch."""
    if _within(V3_REGISTRY, path) and _at(value, V3_REGISTRY[len(path) :]) is not None:
        return _V3_WHY
    if _within(path, V3_REGISTRY):
        return _V3_WHY
    if path == ["version"] or (not path and isinstance(value, dict) and value.get("version") != KIND_CONFIG_VERSION):
        return (
            f"changes the config version: kind's node config and the plugin's patch are version "
            f"{KIND_CONFIG_VERSION}, which containerd 2.x would then no longer read"
        )
    if _within(V2_REGISTRY, path):  # the whole registry table, or a table above it
        return _registry_value_problem(_at(value, V2_REGISTRY[len(path) :]))
    if _within(path, V2_REGISTRY):
        rest = path[len(V2_REGISTRY) :]
        if rest[0] == "mirrors":
            return _MIRRORS_WHY
        if rest[0] == "configs":
            wrapped: Any = value
            for key in reversed(rest[1:]):
                wrapped = {key: wrapped}
            if _registry_value_problem({"configs": wrapped, "config_path": CERTS_D}) == _TLS_WHY:
                return _TLS_WHY
        if rest == ["config_path"]:
            return _config_path_problem(value)
    return None


def _operation_problem(operation: Any) -> str | None:
    if not isinstance(operation, dict):
        return "is not an object"
    kind = operation.get("op")
    if kind not in ("add", "remove", "replace", "move", "copy", "test"):
        return f"op {kind!r} is not an RFC 6902 operation (add, remove, replace, move, copy, test)"
    pointers = ["path", "from"] if kind in ("move", "copy") else ["path"]
    for name in pointers:
        pointer = operation.get(name)
        if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
            return f"{name}: {json.dumps(pointer)} is not a JSON pointer (e.g. /plugins/...)"
    path = pointer_tokens(operation["path"])
    config_path = [*V2_REGISTRY, "config_path"]
    if kind == "remove" and _within(config_path, path):
        return f"removes config_path, which the plugin sets to read {CERTS_D} (JSON 6902 patches apply after it)"
    if kind in ("add", "replace"):
        return _write_problem(path, operation.get("value"))
    if kind in ("move", "copy"):
        if kind == "move" and _within(config_path, pointer_tokens(operation["from"])):
            return f"moves config_path away, which the plugin sets to read {CERTS_D}"
        if _within(V2_REGISTRY, path) or _within(path, V2_REGISTRY) or _within(V3_REGISTRY, path):
            verb = "moves" if kind == "move" else "copies"
            return f"{verb} a value from kind's config into the CRI registry settings, which cannot be checked up front"
        if _within(path, V3_REGISTRY):
            return _V3_WHY
    return None


def json6902_problem(patch: str) -> str | None:
    """Why a ``containerdConfigPatchesJSON6902`` entry cannot be used next to the plugin's
    hosts.toml files, or None. kind decodes it with ``jsonpatch.DecodePatch``: JSON only."""
    try:
        operations = json.loads(patch)
    except ValueError as exc:
        return f"not valid JSON ({exc}); kind decodes these patches as JSON, YAML is not accepted"
    if not isinstance(operations, list):
        return f"expected a JSON array of RFC 6902 operations, got {type(operations).__name__}"
    for i, operation in enumerate(operations):
        problem = _operation_problem(operation)
        if problem:
            where = operation.get("path") if isinstance(operation, dict) else None
            return f"[{i}]" + (f" {operation.get('op')} {where}" if isinstance(where, str) else "") + f": {problem}"
    return None
