"""Shared helpers for pytest-kindreg's own tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_kindreg.docker_engine import LABEL_PID


def own_resources(docker: Any) -> set[str]:
    """Containers and networks labelled as created by this test process (pid label)."""
    own = {"label": f"{LABEL_PID}={os.getpid()}"}
    containers = {c.name for c in docker.containers.list(all=True, filters=own, ignore_removed=True)}
    return containers | {n.name for n in docker.networks.list(filters=own)}


@pytest.fixture
def no_leftovers(kindreg_docker: Any) -> Iterator[None]:
    """Fail the test if it leaves behind a container or network this process created."""
    before = own_resources(kindreg_docker)
    yield
    left = own_resources(kindreg_docker) - before
    assert not left, f"left behind: {sorted(left)}"
