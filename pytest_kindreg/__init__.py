"""pytest-kindreg: kind clusters wired to a local private container registry."""

from importlib.metadata import version as _version

from pytest_kindreg.cluster import KindCluster
from pytest_kindreg.credentials import Credentials
from pytest_kindreg.docker_engine import RunIdentity
from pytest_kindreg.environment import KindRegistryEnvironment
from pytest_kindreg.errors import (
    ClusterError,
    CommandError,
    DockerUnavailableError,
    ImageMissingError,
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

__all__ = [
    "ClusterError",
    "CommandError",
    "Credentials",
    "DockerUnavailableError",
    "ImageMissingError",
    "KindCluster",
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
