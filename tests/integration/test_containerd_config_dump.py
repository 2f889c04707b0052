"""``containerd config dump`` as a kind node prints it, read by the plugin's parser.

Real inputs: Debian's containerd 1.7 (trixie) and 2.x (sid) binaries, and kind's node
``/etc/containerd/config.toml`` merged with the plugin's containerdConfigPatches the way kind
merges them (table by table). containerd 2.x writes the dump with single quotes, so a pattern
for ``config_path = "…"`` finds nothing there (kind-containerd-facts §10).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_kindreg.containerd import CERTS_D, config_paths, parse_config_version, parse_containerd_version
from pytest_kindreg.kind_config import KindClusterConfig
from pytest_kindreg.plugin import _require
from pytest_kindreg.settings import Settings
from tests.integration.containerd_harness import (
    KIND_VERSION,
    Unavailable,
    debian_containerd,
    deep_merge,
    kind_base_config,
    toml_dumps,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

pytestmark = pytest.mark.containerd

MAJOR = {"trixie": 1, "sid": 2}


@pytest.fixture(scope="module")
def kind_node_config() -> dict[str, Any]:
    """kind's node config with every containerdConfigPatch the plugin sends, merged as kind does."""
    try:
        base = kind_base_config(KIND_VERSION)
    except Unavailable as exc:
        pytest.skip(str(exc))
    config: dict[str, Any] = tomllib.loads(base)
    for patch in KindClusterConfig(name="kindreg-test").to_dict()["containerdConfigPatches"]:
        config = deep_merge(config, tomllib.loads(patch))
    return config


def _dump(bin_dir: Path, config: Path) -> str:
    result = subprocess.run(
        [str(bin_dir / "containerd"), "--config", str(config), "config", "dump"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("suite", sorted(MAJOR))
def test_cri_config_path_of_a_real_dump(
    kindreg_settings: Settings, kind_node_config: dict[str, Any], suite: str, tmp_path: Path
) -> None:
    try:
        bin_dir = debian_containerd(suite)
    except Unavailable as exc:
        _require(kindreg_settings, "docker", str(exc))
        raise
    version = subprocess.run([str(bin_dir / "containerd"), "--version"], capture_output=True, text=True, check=True)
    assert parse_containerd_version(version.stdout)[0] == MAJOR[suite], version.stdout
    config = tmp_path / "config.toml"
    config.write_text(toml_dumps(kind_node_config))
    dump = _dump(bin_dir, config)

    assert config_paths(dump) == [CERTS_D]
    # The transfer service has a config_path of its own (empty); it is not the CRI's.
    assert tomllib.loads(dump)["plugins"]["io.containerd.transfer.v1.local"]["config_path"] == ""
    if MAJOR[suite] == 2:
        assert parse_config_version(dump) == 3
        assert "[plugins.'io.containerd.cri.v1.images'.registry]" in dump
        assert f"config_path = '{CERTS_D}'" in dump
        assert f'"{CERTS_D}"' not in dump  # nothing for a double-quote pattern to find
    else:
        assert parse_config_version(dump) == 2
        assert f'config_path = "{CERTS_D}"' in dump
