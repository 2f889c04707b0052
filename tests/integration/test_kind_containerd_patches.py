"""The user's containerd patches and the plugin's, applied the way kind applies them to kind's real
node ``config.toml`` (from kind's Go module), read back by real containerd 1.7 and 2.x binaries
(``containerd config dump``, Debian trixie and sid).

What this shows, for every case: the CRI registry settings containerd really uses keep the user's
``config_path`` roots (with ``/etc/containerd/certs.d`` added) and the user's version-3 registry
table; the plugin's model of containerd's v2 → v3 migration (``cri_registry``) predicts the dump;
and each JSON 6902 patch the plugin refuses really leaves containerd without the plugin's root.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_kindreg.containerd import CERTS_D, config_paths, parse_containerd_version
from pytest_kindreg.containerd_patches import cri_registry, json6902_problem, kind_patched_config
from pytest_kindreg.kind_config import CONFIG_PATH_PATCH, KindClusterConfig, UserKindConfig
from pytest_kindreg.plugin import _require
from pytest_kindreg.settings import Settings
from tests.integration.containerd_harness import (
    KIND_LATEST_VERSION,
    KIND_VERSION,
    Unavailable,
    debian_containerd,
    kind_base_config,
    toml_dumps,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

pytestmark = pytest.mark.containerd

MAJOR = {"trixie": 1, "sid": 2}
# The first kind with containerd 2.x nodes and the lab's newest: both node configs are version 2.
KIND_VERSIONS = (KIND_VERSION, KIND_LATEST_VERSION)
V2 = '[plugins."io.containerd.grpc.v1.cri".registry]\n'
V3 = '[plugins."io.containerd.cri.v1.images".registry]\n'
V2_PATH = "/plugins/io.containerd.grpc.v1.cri/registry"
HEADER_V3 = '  [plugins."io.containerd.cri.v1.images".registry.headers]\n    X-Team = ["a"]\n'
HEADER_V2 = '  [plugins."io.containerd.grpc.v1.cri".registry.headers]\n    X-Team = ["a"]\n'


@pytest.fixture(scope="module", params=KIND_VERSIONS)
def kind_config_toml(request: pytest.FixtureRequest) -> str:
    try:
        return kind_base_config(request.param)
    except Unavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module", params=sorted(MAJOR))
def containerd_bin(request: pytest.FixtureRequest, kindreg_settings: Settings) -> tuple[int, Path]:
    try:
        return MAJOR[request.param], debian_containerd(request.param)
    except Unavailable as exc:
        _require(kindreg_settings, "docker", str(exc))
        raise


def dump(bin_dir: Path, config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """``containerd config dump`` of ``config``: what that containerd reads from it."""
    path = tmp_path / "config.toml"
    path.write_text(toml_dumps(config))
    result = subprocess.run(
        [str(bin_dir / "containerd"), "--config", str(path), "config", "dump"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = tomllib.loads(result.stdout)
    return loaded


def cluster_patches(kind_doc: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The containerd patches of the config the plugin gives kind, for a user's config."""
    rendered = KindClusterConfig(name="kindreg-x", base=UserKindConfig(kind_doc)).to_dict()
    return rendered["containerdConfigPatches"], rendered.get("containerdConfigPatchesJSON6902") or []


def user(patches: Sequence[str] = (), json6902: Sequence[Any] = ()) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4"}
    if patches:
        doc["containerdConfigPatches"] = list(patches)
    if json6902:
        doc["containerdConfigPatchesJSON6902"] = [json.dumps(p) for p in json6902]
    return doc


CASES = {
    "no registry settings": (user(), [CERTS_D], None),
    # The README's recommended value: both roots stay (the plugin's patch used to cut it to one).
    "v2 both roots": (
        user([V2 + f'  config_path = "{CERTS_D}:/etc/docker/certs.d"']),
        [CERTS_D, "/etc/docker/certs.d"],
        None,
    ),
    "v2 other root": (user([V2 + '  config_path = "/etc/docker/certs.d"']), [CERTS_D, "/etc/docker/certs.d"], None),
    "v2 headers": (user([V2 + HEADER_V2]), [CERTS_D], {"X-Team": ["a"]}),
    # containerd 2.x's own key: carried into the v2 table, which 2.x migrates over it.
    "v3 root and headers": (
        user([V3 + '  config_path = "/etc/docker/certs.d"\n' + HEADER_V3]),
        [CERTS_D, "/etc/docker/certs.d"],
        {"X-Team": ["a"]},
    ),
    # JSON 6902 patches apply after every merge patch, the plugin's too.
    "json6902 headers": (
        user(json6902=[[{"op": "add", "path": V2_PATH + "/headers", "value": {"X-Team": ["a"]}}]]),
        [CERTS_D],
        {"X-Team": ["a"]},
    ),
    "json6902 roots": (
        user(json6902=[[{"op": "replace", "path": V2_PATH + "/config_path", "value": f"{CERTS_D}:/srv/certs"}]]),
        [CERTS_D, "/srv/certs"],
        None,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_users_registry_settings_survive_on_a_real_containerd(
    case: str, kind_config_toml: str, containerd_bin: tuple[int, Path], tmp_path: Path
) -> None:
    major, bin_dir = containerd_bin
    kind_doc, roots, headers = CASES[case]
    patches, json6902 = cluster_patches(kind_doc)
    merged = kind_patched_config(kind_config_toml, patches, json6902)
    dumped = dump(bin_dir, merged, tmp_path)
    registry = cri_registry(dumped, major) or {}

    assert config_paths(toml_dumps(dumped)) == roots
    assert (registry.get("headers") or None) == headers
    # The plugin's model of what containerd reads from the config agrees with containerd.
    predicted = cri_registry(merged, major) or {}
    assert predicted.get("config_path") == registry.get("config_path")
    assert (predicted.get("headers") or None) == headers


def test_without_the_carry_over_containerd_2_drops_a_version_3_table(
    kind_config_toml: str, containerd_bin: tuple[int, Path], tmp_path: Path
) -> None:
    """Why the plugin's patch carries a v3 table over: the plain v2 config_path patch after the
    user's v3 patch makes containerd 2.x replace the user's table (the old behaviour)."""
    major, bin_dir = containerd_bin
    user_patch = V3 + '  config_path = "/etc/docker/certs.d"\n' + HEADER_V3
    registry = cri_registry(
        dump(bin_dir, kind_patched_config(kind_config_toml, [user_patch, CONFIG_PATH_PATCH]), tmp_path), major
    )
    assert registry is not None
    assert registry["config_path"] == CERTS_D
    assert not registry.get("headers")  # the user's header is gone (on 1.7 it was never read)
    if major == 2:  # alone, the user's table is what 2.x reads
        alone = cri_registry(dump(bin_dir, kind_patched_config(kind_config_toml, [user_patch]), tmp_path), major)
        assert alone is not None
        assert alone["headers"] == {"X-Team": ["a"]}


REFUSED = {
    "remove config_path": [{"op": "remove", "path": V2_PATH + "/config_path"}],
    "replace config_path": [{"op": "replace", "path": V2_PATH + "/config_path", "value": "/etc/docker/certs.d"}],
    "replace registry": [{"op": "replace", "path": V2_PATH, "value": {"headers": {}}}],
    "remove registry": [{"op": "remove", "path": V2_PATH}],
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_refused_json6902_patch_really_cuts_the_plugins_root(
    case: str, kind_config_toml: str, containerd_bin: tuple[int, Path], tmp_path: Path
) -> None:
    _major, bin_dir = containerd_bin
    patch = json.dumps(REFUSED[case])
    assert json6902_problem(patch) is not None
    merged = kind_patched_config(kind_config_toml, [CONFIG_PATH_PATCH], [patch])
    roots = config_paths(toml_dumps(dump(bin_dir, merged, tmp_path)))
    out = subprocess.run([str(bin_dir / "containerd"), "--version"], capture_output=True, text=True, check=True)
    if parse_containerd_version(out.stdout) >= (2, 2, 0) and case != "replace config_path":
        assert roots == [CERTS_D, "/etc/docker/certs.d"]  # containerd 2.2's own default fills the gap
    else:
        assert CERTS_D not in roots
