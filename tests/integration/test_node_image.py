"""Node images whose containerd config sets ``registry.mirrors`` (kind v0.17 and older) are refused
before a cluster is created, with one message; and real containerd does refuse such a config
next to the plugin's ``config_path`` patch, so the check is grounded.

The images are tiny ``docker import`` images holding only ``/etc/containerd/config.toml``; the
check reads that file from a created, never started container, so it needs no kind. The tests
that go through ``KindCluster.create`` and the plugin use the real kind CLI.
"""

from __future__ import annotations

import io
import secrets
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_kindreg import KindCluster, KindRegistryEnvironment, PrivateRegistry
from pytest_kindreg.cluster import find_kind, kind_available
from pytest_kindreg.containerd import registry_mirrors
from pytest_kindreg.docker_engine import RunIdentity
from pytest_kindreg.kind_config import KindClusterConfig
from pytest_kindreg.node_image import NODE_CONTAINERD_CONFIG, NodeImageError, node_image_problem
from pytest_kindreg.plugin import _require
from pytest_kindreg.settings import Settings
from tests.integration.containerd_harness import (
    DEBIAN_SUITES,
    KIND_MIRRORS_VERSION,
    StandaloneContainerd,
    Unavailable,
    debian_containerd,
    deep_merge,
    kind_base_config,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]

# The registry section of kind v0.17.0's images/base/files/etc/containerd/config.toml.
OLD_NODE_CONFIG = """# explicitly use v2 config format
version = 2

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.7"

[plugins."io.containerd.grpc.v1.cri".registry.mirrors."k8s.gcr.io"]
  endpoint = ["https://registry.k8s.io", "https://k8s.gcr.io",]
"""
NEW_NODE_CONFIG = """version = 2

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
"""
REFUSAL = "`mirrors` cannot be set when `config_path` is provided"


def _import_image(docker: Any, files: dict[str, str]) -> str:
    """A local image made by ``docker import`` of just ``files`` (path → text)."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for path, text in files.items():
            body = text.encode()
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(body), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(body))
    repository, tag = "kindreg-test/node-config", secrets.token_hex(4)
    docker.api.import_image_from_data(data.getvalue(), repository=repository, tag=tag)
    return f"{repository}:{tag}"


@pytest.fixture
def image_factory(kindreg_docker: Any) -> Iterator[Callable[[dict[str, str]], str]]:
    made: list[str] = []

    def make(files: dict[str, str]) -> str:
        made.append(_import_image(kindreg_docker, files))
        return made[-1]

    yield make
    for image in made:
        kindreg_docker.images.remove(image, force=True)


@pytest.fixture
def old_node_image(image_factory: Callable[[dict[str, str]], str]) -> str:
    return image_factory({NODE_CONTAINERD_CONFIG: OLD_NODE_CONFIG})


@pytest.fixture
def real_kind(kindreg_settings: Settings) -> str:
    """The real kind CLI (these tests check what happens before and after it runs)."""
    _require(kindreg_settings, "kind", kind_available(kindreg_settings.kind_bin))
    return find_kind(kindreg_settings.kind_bin)


def _clusters(kind: str) -> set[str]:
    return set(subprocess.run([kind, "get", "clusters"], capture_output=True, text=True, check=True).stdout.split())


def _kind_nodes(docker: Any, cluster: str) -> list[str]:
    return [c.name for c in docker.containers.list(all=True, filters={"label": f"io.x-k8s.kind.cluster={cluster}"})]


def _assert_says_why_and_what_instead(message: str, image: str) -> None:
    assert f"node image {image} cannot be used" in message
    assert "registry.mirrors (k8s.gcr.io)" in message
    assert "kind v0.17 and older" in message
    assert REFUSAL in message
    assert "kind v0.18 or newer" in message and "kind v0.20 or later" in message


def test_environment_refuses_an_old_node_image_before_creating_anything(
    kindreg_docker: Any, old_node_image: str, tmp_path: Path
) -> None:
    identity = RunIdentity()
    env = KindRegistryEnvironment(
        ["pull_secret"], node_image=old_node_image, kind_bin="/nonexistent/kind", identity=identity
    )
    # kind is not even there: the check comes before anything that needs it.
    with pytest.raises(NodeImageError) as info:
        env.start()
    _assert_says_why_and_what_instead(str(info.value), old_node_image)
    assert _kind_nodes(kindreg_docker, env.cluster_name) == []
    labelled = kindreg_docker.containers.list(all=True, filters={"label": f"io.kindreg.run={identity.run_id}"})
    assert labelled == [], "a registry was started for a cluster that cannot come up"


def test_cluster_create_refuses_it_before_kind_creates_anything(
    kindreg_docker: Any, old_node_image: str, real_kind: str, tmp_path: Path
) -> None:
    name = f"kindreg-old-{secrets.token_hex(3)}"
    cluster = KindCluster(name, kind_bin=real_kind, workdir=tmp_path / "cluster")
    with pytest.raises(NodeImageError) as info:
        cluster.create(KindClusterConfig(name=name, node_image=old_node_image))
    _assert_says_why_and_what_instead(str(info.value), old_node_image)
    assert name not in _clusters(real_kind)
    assert _kind_nodes(kindreg_docker, name) == []


def test_a_failed_create_with_a_pulled_old_image_says_why(
    kindreg_docker: Any, old_node_image: str, real_kind: str, tmp_path: Path
) -> None:
    # Not local before `kind create`: real kind pulls it (from a registry of our own, plain
    # HTTP on 127.0.0.1), fails to run it as a node, and only then can the failure be explained.
    name = f"kindreg-old-{secrets.token_hex(3)}"
    with PrivateRegistry(docker=kindreg_docker, htpasswd=False) as registry:
        pulled = registry.push(old_node_image, repository="kindreg-test/old-node", tag=secrets.token_hex(4))
        kindreg_docker.images.remove(pulled)
        cluster = KindCluster(name, kind_bin=real_kind, workdir=tmp_path / "cluster")
        try:
            with pytest.raises(NodeImageError) as info:
                cluster.create(KindClusterConfig(name=name, node_image=pulled))
        finally:
            subprocess.run(["docker", "rmi", pulled], capture_output=True, check=False)
            subprocess.run([real_kind, "delete", "cluster", "--name", name], capture_output=True, check=False)
    _assert_says_why_and_what_instead(str(info.value), pulled)
    assert "failed to create cluster" in str(info.value.__cause__)  # kind's own error, kept as the cause
    assert name not in _clusters(real_kind)
    assert _kind_nodes(kindreg_docker, name) == []


def test_the_plugin_reports_it_as_one_message(
    pytester: pytest.Pytester, kindreg_docker: Any, old_node_image: str, real_kind: str
) -> None:
    before = _clusters(real_kind)
    pytester.makepyfile("def test_x(kind_private_registry):\n    pass\n")
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--kindreg-require", "docker",
        "--kindreg-kind-bin", real_kind, "--kindreg-node-image", old_node_image,
    )  # fmt: skip
    result.assert_outcomes(errors=1)
    # One message and no traceback; the short summary (untruncated under CI=true) repeats it.
    lines = [
        line
        for line in result.outlines
        if f"node image {old_node_image} cannot be used" in line and not line.startswith("ERROR ")
    ]
    assert len(lines) == 1, result.outlines
    assert not [line for line in result.outlines if line.startswith("E   ")], result.outlines
    _assert_says_why_and_what_instead(lines[0], old_node_image)
    assert _clusters(real_kind) == before  # no cluster was created


def test_images_that_can_work_pass(kindreg_docker: Any, image_factory: Callable[[dict[str, str]], str]) -> None:
    assert node_image_problem(kindreg_docker, image_factory({NODE_CONTAINERD_CONFIG: NEW_NODE_CONFIG})) is None
    assert node_image_problem(kindreg_docker, image_factory({"/etc/hostname": "x\n"})) is None  # no config
    # Not local: kind pulls it; a failed create is explained afterwards (test above).
    assert node_image_problem(kindreg_docker, f"kindreg-test/absent:{secrets.token_hex(4)}") is None


# -- grounding: real containerd refuses what the check refuses -----------------------------------
@pytest.mark.containerd
@pytest.mark.parametrize(
    ("suite", "cri_plugin"), [("trixie", "io.containerd.grpc.v1.cri"), ("sid", "io.containerd.cri.v1.images")]
)
def test_real_containerd_refuses_an_old_node_config_with_the_patch(
    kindreg_settings: Settings, suite: str, cri_plugin: str
) -> None:
    assert suite in DEBIAN_SUITES
    try:
        bin_dir = debian_containerd(suite)
        old_config = kind_base_config(KIND_MIRRORS_VERSION)
    except Unavailable as exc:
        _require(kindreg_settings, "docker", str(exc))
        raise
    # The config a kind v0.17 node would run: its own, with the plugin's patches merged as kind does.
    config = tomllib.loads(old_config)
    for patch in KindClusterConfig(name="kindreg-test").to_dict()["containerdConfigPatches"]:
        config = deep_merge(config, tomllib.loads(patch))
    assert registry_mirrors(old_config) == ["k8s.gcr.io"]  # what the image check looks for
    # Only the CRI plugin is enabled beyond the harness's minimum: it validates its config first.
    with StandaloneContainerd(bin_dir=bin_dir, base_config=config, enabled_plugins=[cri_plugin]) as ctrd:
        deadline = time.monotonic() + 20
        while REFUSAL not in ctrd.log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        log = ctrd.log_path.read_text()
        plugins = ctrd.ctr("plugins", "ls").stdout
    failed = [line for line in log.splitlines() if REFUSAL in line]
    assert failed and cri_plugin in failed[0] and "failed to load plugin" in failed[0], log[-3000:]
    rows = [line.split() for line in plugins.splitlines()]  # TYPE ID PLATFORMS STATUS
    assert [row[-1] for row in rows if len(row) == 4 and f"{row[0]}.{row[1]}" == cri_plugin] == ["error"], plugins
