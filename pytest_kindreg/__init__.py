"""pytest-kindreg: kind clusters wired to a local private container registry."""

from __future__ import annotations

import importlib
from importlib.metadata import version as _version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_kindreg.cluster import KindCluster
    from pytest_kindreg.credentials import Credentials
    from pytest_kindreg.docker_engine import RunIdentity
    from pytest_kindreg.environment import KindRegistryEnvironment
    from pytest_kindreg.errors import (
        ClusterError,
        CommandError,
        DockerUnavailableError,
        ImageMissingError,
        KindConfigError,
        KindregError,
        KindUnavailableError,
        PodStartError,
        PortInUseError,
        RegistryError,
        UnknownStrategyError,
    )
    from pytest_kindreg.registry import PrivateRegistry
    from pytest_kindreg.workspace import KindPrivateRegistry, PullRefusal

# The version lives in pyproject.toml only; an installed package reports it from its metadata.
__version__ = _version("pytest-kindreg")

# Where each public name lives. Imported on first use: a process that needs one small module
# (the token service's) does not pay for the Kubernetes and Docker clients.
_EXPORTS = {
    "ClusterError": "errors",
    "CommandError": "errors",
    "Credentials": "credentials",
    "DockerUnavailableError": "errors",
    "ImageMissingError": "errors",
    "KindCluster": "cluster",
    "KindConfigError": "errors",
    "KindPrivateRegistry": "workspace",
    "KindRegistryEnvironment": "environment",
    "KindUnavailableError": "errors",
    "KindregError": "errors",
    "PodStartError": "errors",
    "PortInUseError": "errors",
    "PrivateRegistry": "registry",
    "PullRefusal": "workspace",
    "RegistryError": "errors",
    "RunIdentity": "docker_engine",
    "UnknownStrategyError": "errors",
}

__all__ = [
    "ClusterError",
    "CommandError",
    "Credentials",
    "DockerUnavailableError",
    "ImageMissingError",
    "KindCluster",
    "KindConfigError",
    "KindPrivateRegistry",
    "KindRegistryEnvironment",
    "KindUnavailableError",
    "KindregError",
    "PodStartError",
    "PortInUseError",
    "PrivateRegistry",
    "PullRefusal",
    "RegistryError",
    "RunIdentity",
    "UnknownStrategyError",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_kindreg' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pytest_kindreg.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*globals(), *__all__]
