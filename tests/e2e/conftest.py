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
