"""A kind config with ``networking.disableDefaultCNI: true`` on a real cluster: a child pytest
session whose conftest implements ``pytest_kindreg_cluster_created`` and installs the lab's own
pod network from it (``custom_cni/``). kind's ``--wait`` is skipped for such a config, the hook
runs before the plugin waits for Ready nodes, and pods pull under every strategy.

The same session checks what the plugin keeps of that config: containerd registry settings under
the version-3 key and a JSON 6902 patch (on the node's real containerd), and a relative hostPath
resolved against the config file's directory while pytest runs from another directory.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_kindreg.node_image import read_image_file
from pytest_kindreg.settings import Settings
from pytest_kindreg.strategies import STRATEGIES

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent / "custom_cni"


def strategies_for_the_node_image(settings: Settings, docker: Any) -> list[str]:
    """``--kindreg-strategy`` options for the strategies this run's node image can serve (a
    strategy may need a newer Kubernetes, ``min_kubernetes``); none when all can, or when the
    image's version cannot be told (kind's default image)."""
    text = read_image_file(docker, settings.node_image, "/kind/version") if settings.node_image else None
    match = re.search(r"(\d+)\.(\d+)", text or "")
    if match is None:
        return []
    version = (int(match[1]), int(match[2]))
    usable = [name for name, cls in STRATEGIES.items() if (getattr(cls, "min_kubernetes", None) or (0, 0)) <= version]
    return [] if len(usable) == len(STRATEGIES) else [f"--kindreg-strategy={name}" for name in usable]


def test_a_suite_installs_its_cni_from_the_hook(
    pytester: pytest.Pytester, kind_options: list[str], kindreg_settings: Settings, kindreg_docker: Any
) -> None:
    shutil.copytree(HERE / "files", pytester.path / "config" / "files")
    shutil.copy(HERE / "kind-config.yaml", pytester.path / "config" / "kind-config.yaml")
    tests = pytester.mkdir("tests")
    shutil.copy(HERE / "cni_conftest.py", tests / "conftest.py")
    shutil.copy(HERE / "custom_cni_session.py", tests / "test_custom_cni_session.py")
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        *kind_options,
        *strategies_for_the_node_image(kindreg_settings, kindreg_docker),
        "--kindreg-kind-config",
        str(pytester.path / "config" / "kind-config.yaml"),
        str(tests),
        "-v",
        timeout=1500,
    )
    print(f"custom CNI session: {time.monotonic() - started:.0f} s")
    outcomes = result.parseoutcomes()
    assert result.ret == 0, result.stdout.str()[-6000:]
    assert outcomes.get("passed", 0) >= 4 and not outcomes.get("skipped"), outcomes
    assert "Traceback" not in result.stdout.str()
