"""The strategies, picked by name: the five of kind's "Private Registries" guide, and kubelet's
credential provider plugins with and without the pod's ServiceAccount token."""

from __future__ import annotations

from pytest_kindreg.errors import UnknownStrategyError
from pytest_kindreg.strategies.access_token import AccessTokenStrategy
from pytest_kindreg.strategies.base import BaseStrategy, PodPatch, Strategy, StrategyContext
from pytest_kindreg.strategies.certificate import CertificateStrategy
from pytest_kindreg.strategies.credential_provider import CredentialProviderStrategy
from pytest_kindreg.strategies.node_config import NodeConfigStrategy
from pytest_kindreg.strategies.pull_secret import PullSecretStrategy
from pytest_kindreg.strategies.side_load import SideLoadStrategy
from pytest_kindreg.strategies.workload_identity import WorkloadIdentityStrategy

STRATEGIES: dict[str, type[BaseStrategy]] = {
    cls.name: cls
    for cls in (
        PullSecretStrategy,
        SideLoadStrategy,
        NodeConfigStrategy,
        AccessTokenStrategy,
        CertificateStrategy,
        CredentialProviderStrategy,
        WorkloadIdentityStrategy,
    )
}
STRATEGY_NAMES: tuple[str, ...] = tuple(STRATEGIES)


def validate_strategy_names(names: object) -> tuple[str, ...]:
    """The names as a tuple, or :class:`UnknownStrategyError` naming the bad one and the valid ones."""
    values = tuple(names) if isinstance(names, list | tuple) else (names,)
    for value in values:
        if not isinstance(value, str) or value not in STRATEGIES:
            raise UnknownStrategyError(value, list(STRATEGY_NAMES))
    return tuple(str(v) for v in values)


def create_strategy(name: str) -> BaseStrategy:
    validate_strategy_names(name)
    return STRATEGIES[name]()


__all__ = [
    "STRATEGIES",
    "STRATEGY_NAMES",
    "AccessTokenStrategy",
    "BaseStrategy",
    "CertificateStrategy",
    "CredentialProviderStrategy",
    "NodeConfigStrategy",
    "PodPatch",
    "PullSecretStrategy",
    "SideLoadStrategy",
    "Strategy",
    "StrategyContext",
    "WorkloadIdentityStrategy",
    "create_strategy",
    "validate_strategy_names",
]
