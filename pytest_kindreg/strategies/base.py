"""The protocol every strategy follows, and what strategies are handed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pytest_kindreg.kind_config import ClusterContribution

if TYPE_CHECKING:
    from pytest_kindreg.cluster import KindCluster
    from pytest_kindreg.credential_providers import KubeletCredentialProviders
    from pytest_kindreg.node_credentials import NodeCredentials
    from pytest_kindreg.registry import PrivateRegistry

# What a node says when a pull had no usable credentials (see the facts on CRI error strings).
REFUSED_WITHOUT_PASSWORD = re.compile(r"no basic auth credentials|401 Unauthorized|authorization failed")
# TLS alerts a server sends when no client certificate came: certificate_required (TLS 1.3,
# newer Go), bad_certificate (older Go), handshake_failure (TLS 1.2). Not x509 errors: those
# mean the node does not trust the registry, a different fault.
REFUSED_WITHOUT_CLIENT_CERT = re.compile(r"certificate required|bad certificate|handshake failure")


@dataclass
class StrategyContext:
    """One strategy's registry and cluster, as the strategy sees them."""

    name: str
    registry: PrivateRegistry
    workdir: Path
    node_credentials: NodeCredentials
    cluster: KindCluster | None = None
    access_token_ttl: float = 3600.0  # token mode: how long access tokens issued for the cluster live
    credential_providers: KubeletCredentialProviders | None = None  # shared by the provider strategies

    @property
    def image_host(self) -> str:
        """What pods write in ``image:``; hosts.toml maps it to the registry on kind's network."""
        return self.registry.host

    @property
    def anonymous_host(self) -> str:
        """A second image host for the same registry that no credential is keyed on."""
        return f"{self.registry.name}-anonymous:5000"

    def require_providers(self) -> KubeletCredentialProviders:
        if self.credential_providers is None:
            raise RuntimeError(f"strategy {self.name} needs the nodes' credential provider directory, which is not set")
        return self.credential_providers

    def require_cluster(self) -> KindCluster:
        if self.cluster is None:
            raise RuntimeError(f"strategy {self.name} needs the cluster, which is not created yet")
        return self.cluster


@dataclass(frozen=True)
class PodPatch:
    """What a pod spec needs for a strategy: pull secrets, a pull policy, a ServiceAccount."""

    image_pull_secrets: tuple[str, ...] = ()
    image_pull_policy: str | None = None
    service_account: str | None = None


class Strategy(Protocol):
    """An auth strategy: one small class per kind-guide section.

    Each method has one concern; the defaults in :class:`BaseStrategy` do nothing.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    registry_options: ClassVar[dict[str, Any]]
    refusal: ClassVar[re.Pattern[str]]

    def cluster_contribution(self, ctx: StrategyContext) -> ClusterContribution:
        """(a) What the cluster config must carry at creation (mounts, containerd patches)."""

    def prepare_nodes(self, ctx: StrategyContext, *, reused: bool) -> None:
        """(b) Node preparation once the cluster exists (files, kubelet restarts)."""

    def prepare_namespace(self, ctx: StrategyContext, core: Any, namespace: str) -> PodPatch:
        """(c) Per-test objects (e.g. a pull Secret) and what each pod needs."""

    def prepare_image(self, ctx: StrategyContext, local_image: str) -> str:
        """The local image to push for ``local_image``. If it is another one, it is a temporary
        tag, which the caller removes once pushed."""

    def publish(self, ctx: StrategyContext, reference: str) -> str:
        """Make a pushed image available the strategy's way; returns the reference pods use."""

    def negative_control(self, ctx: StrategyContext, fresh_reference: str) -> tuple[str, PodPatch]:
        """The same image with this strategy's credentials removed: (reference, pod patch)."""

    def cleanup(self, ctx: StrategyContext) -> None:
        """(d) Undo what the strategy did outside the per-test namespace."""


class BaseStrategy:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    registry_options: ClassVar[dict[str, Any]] = {}
    refusal: ClassVar[re.Pattern[str]] = REFUSED_WITHOUT_PASSWORD
    # Paths on every node that the strategy mounts or writes: a user's kind config may not mount
    # over them (checked before anything starts, see kind_config.check_node_files).
    node_files: ClassVar[tuple[str, ...]] = ()
    # True when prepare_nodes needs only the registry's host and credentials, not the running
    # registry or its TLS files: on a reused cluster it then runs while the registries start.
    prepares_nodes_early: ClassVar[bool] = False
    # The oldest Kubernetes (major, minor) every node must run, and why; checked before anything starts.
    min_kubernetes: ClassVar[tuple[int, int] | None] = None
    min_kubernetes_why: ClassVar[str] = ""

    def cluster_contribution(self, ctx: StrategyContext) -> ClusterContribution:
        return ClusterContribution(source=self.name)

    def prepare_nodes(self, ctx: StrategyContext, *, reused: bool) -> None:
        return None

    def prepare_namespace(self, ctx: StrategyContext, core: Any, namespace: str) -> PodPatch:
        return PodPatch()

    def prepare_image(self, ctx: StrategyContext, local_image: str) -> str:
        return local_image

    def publish(self, ctx: StrategyContext, reference: str) -> str:
        return reference

    def negative_control(self, ctx: StrategyContext, fresh_reference: str) -> tuple[str, PodPatch]:
        # Node-level credentials cannot be removed for one pod: use the alias host they are not keyed on.
        return fresh_reference.replace(ctx.image_host, ctx.anonymous_host, 1), PodPatch()

    def cleanup(self, ctx: StrategyContext) -> None:
        return None

    def __repr__(self) -> str:
        return f"<strategy {self.name}>"
