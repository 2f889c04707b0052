"""What the e2e tests share: the kind binary and node image of this run, for child runs."""

from __future__ import annotations

import pytest

from pytest_kindreg.settings import Settings


@pytest.fixture(scope="session")
def kind_options(pytestconfig: pytest.Config) -> list[str]:
    """The parent run's kind binary and node image as options for a child pytest run."""
    settings = Settings.from_config(pytestconfig)
    options = ["--kindreg-strict", "-p", "no:cacheprovider"]
    if settings.kind_bin:
        options.append(f"--kindreg-kind-bin={settings.kind_bin}")
    if settings.node_image:
        options.append(f"--kindreg-node-image={settings.node_image}")
    return options


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kubernetes_at_least(version): runs only on nodes of that Kubernetes or newer")
    config.addinivalue_line("markers", "kubernetes_below(version): runs only on nodes older than that Kubernetes")


def _node_version(config: pytest.Config) -> tuple[int, int, int] | None:
    """The Kubernetes version of this run's node image (its /kind/version), None if not known."""
    from pytest_kindreg.cluster import find_kind
    from pytest_kindreg.docker_engine import docker_client
    from pytest_kindreg.errors import KindregError
    from pytest_kindreg.node_image import image_kubernetes_version, kind_default_image, parse_kubernetes_version

    settings = Settings.from_config(config)
    try:
        image = settings.node_image or kind_default_image(find_kind(settings.kind_bin))
        version = image_kubernetes_version(docker_client(timeout=15), image) if image else None
    except KindregError:
        return None  # no Docker or kind: the plugin's own fixtures say so
    return parse_kubernetes_version(version) if version else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests of one Kubernetes version range run on lab variants in it and are deselected on the
    others (deselected, not skipped: every collected kind-level test must run)."""
    marked = [
        i for i in items if i.get_closest_marker("kubernetes_at_least") or i.get_closest_marker("kubernetes_below")
    ]
    if not marked:
        return
    version = _node_version(config)
    if version is None:
        return
    deselected = []
    for item in marked:
        for name, keep in (("kubernetes_at_least", True), ("kubernetes_below", False)):
            marker = item.get_closest_marker(name)
            if marker is not None:
                bound = tuple(int(part) for part in str(marker.args[0]).split("."))
                if (version[: len(bound)] >= bound) != keep:
                    deselected.append(item)
                    break
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]
