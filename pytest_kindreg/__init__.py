"""pytest-kindreg: kind clusters wired to a local private container registry."""

from pytest_kindreg.credentials import Credentials
from pytest_kindreg.docker_engine import RunIdentity
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

__all__ = [
    "ClusterError",
    "CommandError",
    "Credentials",
    "DockerUnavailableError",
    "ImageMissingError",
    "KindUnavailableError",
    "KindregError",
    "PodStartError",
    "PortInUseError",
    "PrivateRegistry",
    "RegistryError",
    "RunIdentity",
    "UnknownStrategyError",
]
