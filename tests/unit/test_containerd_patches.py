"""kind's containerd patching mirrored (RFC 7386 merge patches, RFC 6902 patches as
evanphx/json-patch v5 applies them, kind v0.32+'s version awareness), containerd 2.x's migration
of the CRI registry table, and the plugin's own registry patch. Pure logic; the same functions are
checked against kind's real node config and real containerd binaries in
tests/integration/test_kind_containerd_patches.py."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import pytest

from pytest_kindreg.containerd import CERTS_D
from pytest_kindreg.containerd_patches import (
    JSONPatchError,
    apply_json6902,
    cri_registry,
    json6902_problem,
    kind_patched_config,
    merge_patch,
    registry_patch,
    registry_tables_problem,
    user_registry_tables,
    with_certs_d,
)
from pytest_kindreg.kind_config import CONFIG_PATH_PATCH

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

V2 = '[plugins."io.containerd.grpc.v1.cri".registry]\n'
V3 = '[plugins."io.containerd.cri.v1.images".registry]\n'
V2_PATH = "/plugins/io.containerd.grpc.v1.cri/registry"
V3_PATH = "/plugins/io.containerd.cri.v1.images/registry"


# --- RFC 7386 merge patches --------------------------------------------------------------------------------


def test_merge_patch_merges_tables_and_replaces_the_rest() -> None:
    target = {"a": {"b": 1, "c": [1, 2]}, "d": "x", "e": {"f": 1}}
    patch = {"a": {"c": [3], "g": True}, "d": {"h": 1}, "e": 5}
    assert merge_patch(target, patch) == {"a": {"b": 1, "c": [3], "g": True}, "d": {"h": 1}, "e": 5}
    assert target == {"a": {"b": 1, "c": [1, 2]}, "d": "x", "e": {"f": 1}}  # not changed in place


def test_merge_patch_null_removes_a_key() -> None:
    assert merge_patch({"a": 1, "b": {"c": 1, "d": 2}}, {"a": None, "b": {"c": None}, "x": None}) == {"b": {"d": 2}}


# --- RFC 6902 patches, as evanphx/json-patch v5 applies them ---------------------------------------------------


def ops(*operations: dict[str, Any]) -> list[dict[str, Any]]:
    return list(operations)


@pytest.mark.parametrize(
    ("doc", "operations", "expected"),
    [
        ({"a": {}}, ops({"op": "add", "path": "/a/b", "value": 1}), {"a": {"b": 1}}),
        ({"a": {"b": 1}}, ops({"op": "add", "path": "/a/b", "value": 2}), {"a": {"b": 2}}),  # add replaces a key
        ({"l": [1, 2]}, ops({"op": "add", "path": "/l/-", "value": 3}), {"l": [1, 2, 3]}),
        ({"l": [1, 2]}, ops({"op": "add", "path": "/l/0", "value": 0}), {"l": [0, 1, 2]}),
        ({"l": [1, 2]}, ops({"op": "add", "path": "/l/2", "value": 3}), {"l": [1, 2, 3]}),
        ({"l": [1, 2]}, ops({"op": "add", "path": "/l/-1", "value": 9}), {"l": [1, 2, 9]}),  # negative: from the end
        ({"a": 1, "b": 2}, ops({"op": "remove", "path": "/a"}), {"b": 2}),
        ({"l": [1, 2, 3]}, ops({"op": "remove", "path": "/l/-1"}), {"l": [1, 2]}),
        ({"a": 1}, ops({"op": "replace", "path": "/a", "value": [1]}), {"a": [1]}),
        ({"a": 1}, ops({"op": "replace", "path": "", "value": {"b": 2}}), {"b": 2}),
        ({"a": {"x": 1}, "b": {}}, ops({"op": "move", "from": "/a/x", "path": "/b/y"}), {"a": {}, "b": {"y": 1}}),
        ({"a": {"x": [1]}}, ops({"op": "copy", "from": "/a/x", "path": "/a/y"}), {"a": {"x": [1], "y": [1]}}),
        (
            {"a": 1},
            ops({"op": "test", "path": "/a", "value": 1}, {"op": "add", "path": "/b", "value": 2}),
            {"a": 1, "b": 2},
        ),
        ({"a/b": {"c~d": 1}}, ops({"op": "replace", "path": "/a~1b/c~0d", "value": 2}), {"a/b": {"c~d": 2}}),
    ],
)
def test_json6902_operations(doc: dict[str, Any], operations: list[dict[str, Any]], expected: Any) -> None:
    before = json.dumps(doc)
    result = apply_json6902(doc, operations)
    assert result == expected
    assert json.dumps(doc) == before  # the input is not changed


@pytest.mark.parametrize(
    ("doc", "operation", "message"),
    [
        ({}, {"op": "add", "path": "/a/b", "value": 1}, "doc is missing path"),  # no parents are created
        ({"a": 1}, {"op": "remove", "path": "/b"}, "nonexistent key: b"),  # a missing path is an error
        ({"a": 1}, {"op": "replace", "path": "/b", "value": 1}, "nonexistent key: b"),
        ({"l": [1]}, {"op": "add", "path": "/l/5", "value": 1}, "invalid index: 5"),
        ({"l": [1]}, {"op": "add", "path": "/l/x", "value": 1}, "not an array index"),
        ({"a": 1}, {"op": "test", "path": "/a", "value": 2}, "testing value /a failed"),
        ({"a": 1}, {"op": "merge", "path": "/a"}, "Unexpected kind: merge"),
        ({"a": 1}, {"op": "add", "value": 1}, "missing path field"),
        ({"a": 1}, {"op": "add", "path": "a", "value": 1}, "doc is missing path"),  # not a JSON pointer
        ({"a": 1}, {"op": "move", "from": "/x", "path": "/y"}, "nonexistent key: x"),
        ({"a": 1}, {"op": "move", "from": "/x/y", "path": "/y"}, "missing from path: /x/y"),
    ],
)
def test_json6902_refusals_match_the_library(doc: dict[str, Any], operation: dict[str, Any], message: str) -> None:
    with pytest.raises(JSONPatchError, match=message):
        apply_json6902(doc, [operation])


# --- kind's order: merge patches in order, version-aware, then every JSON 6902 patch ----------------------------


BASE = 'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "pause"\n'


def test_merge_patches_in_order_then_json6902_patches() -> None:
    merged = kind_patched_config(
        BASE,
        [V2 + '  config_path = "/a"', V2 + '  config_path = "/b"'],
        [json.dumps([{"op": "replace", "path": V2_PATH + "/config_path", "value": "/c"}])],
    )
    assert merged["plugins"]["io.containerd.grpc.v1.cri"] == {
        "sandbox_image": "pause",
        "registry": {"config_path": "/c"},
    }


def test_a_patch_for_another_config_version_is_skipped_by_kind_0_32_and_later() -> None:
    patches = ["version = 3\n" + V3 + '  config_path = "/x"', "version = 2\n" + V2 + '  config_path = "/y"']
    merged = kind_patched_config(BASE, patches)
    assert merged["version"] == 2
    assert "io.containerd.cri.v1.images" not in merged["plugins"]
    assert merged["plugins"]["io.containerd.grpc.v1.cri"]["registry"] == {"config_path": "/y"}
    older = kind_patched_config(BASE, patches, version_aware=False)  # kind <= v0.31 applies every patch
    assert older["version"] == 2  # the last one's
    assert older["plugins"]["io.containerd.cri.v1.images"]["registry"] == {"config_path": "/x"}


def test_kind_0_32_refuses_a_config_without_version() -> None:
    with pytest.raises(ValueError, match="failed to detect containerd config version"):
        kind_patched_config('[plugins."x"]\n  a = 1\n', [])


# --- what containerd reads ---------------------------------------------------------------------------------


def config(v2: dict[str, Any] | None, v3: dict[str, Any] | None, version: int = 2) -> dict[str, Any]:
    plugins: dict[str, Any] = {"io.containerd.grpc.v1.cri": {"sandbox_image": "p"}}
    if v2 is not None:
        plugins["io.containerd.grpc.v1.cri"]["registry"] = v2
    if v3 is not None:
        plugins["io.containerd.cri.v1.images"] = {"registry": v3}
    return {"version": version, "plugins": plugins}


def test_containerd_1_reads_the_version_2_table() -> None:
    assert cri_registry(config({"config_path": "/a"}, {"config_path": "/b"}), 1) == {"config_path": "/a"}
    assert cri_registry(config(None, {"config_path": "/b"}), 1) is None


def test_containerd_2_migration_replaces_the_version_3_table_with_the_version_2_one() -> None:
    assert cri_registry(config({"config_path": "/a"}, {"config_path": "/b", "headers": {}}), 2) == {"config_path": "/a"}
    assert cri_registry(config(None, {"config_path": "/b"}), 2) == {"config_path": "/b"}
    # a version-3 config is not migrated: its version-2 tables mean nothing
    assert cri_registry(config({"config_path": "/a"}, {"config_path": "/b"}, version=3), 2) == {"config_path": "/b"}


# --- the plugin's patch ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, CERTS_D),
        ("", CERTS_D),
        ("/etc/docker/certs.d", f"{CERTS_D}:/etc/docker/certs.d"),
        (f"{CERTS_D}:/etc/docker/certs.d", f"{CERTS_D}:/etc/docker/certs.d"),
        (f"/etc/docker/certs.d:{CERTS_D}", f"/etc/docker/certs.d:{CERTS_D}"),  # already there: left as it is
        ("/a::/b", f"{CERTS_D}:/a:/b"),
        (f"{CERTS_D}/x", f"{CERTS_D}:{CERTS_D}/x"),  # a subdirectory is another root
    ],
)
def test_with_certs_d(value: str | None, expected: str) -> None:
    assert with_certs_d(value) == expected


def test_without_registry_settings_the_patch_is_config_path_alone() -> None:
    assert registry_patch() == CONFIG_PATH_PATCH
    assert registry_patch(['[plugins."io.containerd.grpc.v1.cri"]\n  enable_cdi = true']) == CONFIG_PATH_PATCH
    assert tomllib.loads(CONFIG_PATH_PATCH) == {
        "plugins": {"io.containerd.grpc.v1.cri": {"registry": {"config_path": CERTS_D}}}
    }


def registry_of(patch: str) -> dict[str, Any]:
    table: dict[str, Any] = tomllib.loads(patch)["plugins"]["io.containerd.grpc.v1.cri"]["registry"]
    return table


def test_the_users_roots_are_kept() -> None:
    user = [V2 + '  config_path = "/etc/docker/certs.d"', V2 + '  config_path = "/srv/certs"']  # the last wins
    assert registry_of(registry_patch(user)) == {"config_path": f"{CERTS_D}:/srv/certs"}


def test_a_version_3_table_is_carried_into_the_version_2_one() -> None:
    user = [
        V3 + '  config_path = "/etc/docker/certs.d"\n'
        '  [plugins."io.containerd.cri.v1.images".registry.headers]\n    X-Team = ["a"]\n'
        '  [plugins."io.containerd.cri.v1.images".registry.configs."r:5000".auth]\n    username = "u\\"q"\n'
    ]
    assert registry_of(registry_patch(user)) == {
        "config_path": f"{CERTS_D}:/etc/docker/certs.d",
        "headers": {"X-Team": ["a"]},
        "configs": {"r:5000": {"auth": {"username": 'u"q'}}},
    }


def test_patches_for_another_config_version_do_not_count() -> None:
    assert user_registry_tables(["version = 3\n" + V3 + '  config_path = "/x"']) == (None, None)
    assert user_registry_tables(["version = 2\n" + V2 + '  config_path = "/x"']) == ({"config_path": "/x"}, None)


def test_both_tables_are_refused() -> None:
    problem = registry_tables_problem([V2 + '  config_path = "/a"', V3 + '  config_path = "/b"'])
    assert problem is not None
    assert "containerd 2.x replaces the second with the first" in problem
    assert registry_tables_problem([V3 + '  config_path = "/b"']) is None


# --- JSON 6902 patches checked -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operations",
    [
        [],
        [{"op": "add", "path": V2_PATH + "/headers", "value": {"X-A": ["b"]}}],
        [{"op": "replace", "path": V2_PATH + "/config_path", "value": f"{CERTS_D}:/etc/docker/certs.d"}],
        [{"op": "add", "path": V2_PATH + "/configs", "value": {"r:1": {"auth": {"username": "u"}}}}],
        [{"op": "remove", "path": V2_PATH + "/headers"}],
        [{"op": "replace", "path": "/plugins/io.containerd.grpc.v1.cri/sandbox_image", "value": "p:1"}],
        [{"op": "test", "path": V2_PATH, "value": {}}],
        [{"op": "copy", "from": "/plugins/io.containerd.grpc.v1.cri/sandbox_image", "path": "/x"}],
        [{"op": "add", "path": "/plugins/io.containerd.grpc.v1.cri", "value": {"registry": {"config_path": CERTS_D}}}],
    ],
)
def test_usable_json6902_patches(operations: list[dict[str, Any]]) -> None:
    assert json6902_problem(json.dumps(operations)) is None


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ("- op: add\n  path: /x\n  value: 1\n", "not valid JSON .*YAML is not accepted"),
        ('{"op": "add"}', "expected a JSON array of RFC 6902 operations, got dict"),
        ('["add"]', r"^\[0\]: is not an object"),
        ('[{"op": "merge", "path": "/x"}]', r"^\[0\] merge /x: op 'merge' is not an RFC 6902 operation"),
        ('[{"op": "add", "path": "x", "value": 1}]', r'path: "x" is not a JSON pointer'),
        (json.dumps([{"op": "remove", "path": V2_PATH + "/config_path"}]), "removes config_path"),
        (json.dumps([{"op": "remove", "path": V2_PATH}]), "removes config_path"),
        (json.dumps([{"op": "remove", "path": "/plugins"}]), "removes config_path"),
        (
            json.dumps([{"op": "replace", "path": V2_PATH + "/config_path", "value": "/etc/docker/certs.d"}]),
            r'sets config_path to "/etc/docker/certs.d", without /etc/containerd/certs.d',
        ),
        (
            json.dumps(
                [{"op": "add", "path": V2_PATH + "/mirrors", "value": {"docker.io": {"endpoint": ["https://m"]}}}]
            ),
            "registry.mirrors must not be used",
        ),
        (json.dumps([{"op": "add", "path": V2_PATH + "/mirrors/docker.io", "value": {}}]), "registry.mirrors"),
        (
            json.dumps([{"op": "add", "path": V2_PATH + "/configs/r:1/tls", "value": {"ca_file": "/ca"}}]),
            r"configs\.<host>\.tls must not be used",
        ),
        (json.dumps([{"op": "add", "path": V2_PATH + "/configs", "value": {"r:1": {"tls": {}}}}]), r"\.tls must not"),
        (json.dumps([{"op": "replace", "path": V2_PATH, "value": {"headers": {}}}]), "without /etc/containerd/certs.d"),
        (
            json.dumps(
                [{"op": "replace", "path": "/plugins/io.containerd.grpc.v1.cri", "value": {"sandbox_image": "p"}}]
            ),
            "removes the registry table",
        ),
        (json.dumps([{"op": "add", "path": V3_PATH + "/headers", "value": {}}]), "containerd 2.x replaces"),
        (
            json.dumps([{"op": "add", "path": "/plugins/io.containerd.cri.v1.images", "value": {"registry": {}}}]),
            "containerd 2.x replaces",
        ),
        (json.dumps([{"op": "replace", "path": "/version", "value": 3}]), "changes the config version"),
        (json.dumps([{"op": "move", "from": V2_PATH + "/config_path", "path": "/x"}]), "moves config_path away"),
        (json.dumps([{"op": "copy", "from": "/x", "path": V2_PATH + "/config_path"}]), "cannot be checked up front"),
        (json.dumps([{"op": "test", "path": "/a", "value": 1}, {"op": "remove", "path": V2_PATH}]), r"^\[1\] remove"),
    ],
)
def test_json6902_patches_that_cannot_work_are_refused(patch: str, expected: str) -> None:
    problem = json6902_problem(patch)
    assert problem is not None
    assert re.search(expected, problem), problem
