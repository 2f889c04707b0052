"""Shared helpers for pytest-kindreg's own tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_kindreg.docker_engine import LABEL_PID, RunIdentity


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


def start_node_containers(
    docker: Any, image: str, count: int, mounts: dict[str, dict[str, str]] | None = None
) -> list[Any]:
    """Running containers that stand in for kind nodes (files, ``docker exec``), labelled as ours."""
    identity = RunIdentity()
    return [
        docker.containers.run(
            image,
            ["sleep", "600"],
            detach=True,
            name=identity.name(f"node{i}"),
            labels=identity.labels("test-node"),
            volumes=mounts or {},
            network_mode="none",
        )
        for i in range(count)
    ]


@pytest.fixture
def node_containers(kindreg_docker: Any, kindreg_test_image: str) -> Iterator[list[str]]:
    """Two running stand-in node containers, removed after the test."""
    containers = start_node_containers(kindreg_docker, kindreg_test_image, 2)
    yield [c.name for c in containers]
    for container in containers:
        container.remove(force=True)
