"""``credential_provider``: a kubelet image credential provider plugin (KEP-2133, GA since
Kubernetes 1.26) on every node, the way EKS, GKE and AKS nodes pull (``ecr-credential-provider``,
``auth-provider-gcp``, ``acr-credential-provider``): kubelet execs it per image whose host its
``matchImages`` names and pulls with the credentials it answers. Nodes keep no ``config.json``.
"""

from __future__ import annotations

import functools
from typing import ClassVar

from pytest_kindreg.credential_providers import NODE_DIR, KubeletCredentialProviders, ProviderSpec, credentials_entry
from pytest_kindreg.errors import ClusterError
from pytest_kindreg.kind_config import ClusterContribution
from pytest_kindreg.parallel import in_parallel
from pytest_kindreg.strategies.base import BaseStrategy, StrategyContext

PROVIDER_NAME = "kindreg-credential-provider"


def provider_flags_problem(ctx: StrategyContext, node: str) -> str | None:
    """Why ``node``'s kubelet runs without the plugin's provider flags, or None."""
    cmdline = ctx.require_cluster().exec(node, ["sh", "-c", 'tr "\\0" " " < /proc/"$(pidof kubelet)"/cmdline'])
    providers = ctx.require_providers()
    wanted = f"--image-credential-provider-config={providers.node_path('config.yaml')}"
    return None if wanted in cmdline else f"the kubelet of {node} runs without {wanted}"


def restart_if_outdated(ctx: StrategyContext, *, reused: bool) -> None:
    """kubelet reads its provider config only when it starts: restart it where that config changed
    since (a reused cluster, a registry that had to move to another port), once for all strategies."""
    providers = ctx.require_providers()
    if reused or providers.config_changed_since_start():
        ctx.node_credentials.restart_kubelets(ctx.require_cluster())
    providers.mark_started()


def check_provider_flags(ctx: StrategyContext) -> None:
    """Every node's kubelet runs with the provider flags (one exec per node, side by side)."""
    cluster = ctx.require_cluster()
    problems: dict[str, str | None] = {}

    def check(node: str) -> None:
        problems[node] = provider_flags_problem(ctx, node)

    in_parallel([functools.partial(check, node) for node in cluster.nodes()])
    found = [problem for problem in problems.values() if problem]
    if found:
        raise ClusterError(f"{ctx.name}: {'; '.join(found)}: the kubeadm kubeletExtraArgs patch did not take effect")


class CredentialProviderStrategy(BaseStrategy):
    name: ClassVar[str] = "credential_provider"
    description: ClassVar[str] = "a kubelet image credential provider plugin on every node (KEP-2133)"
    node_files: ClassVar[tuple[str, ...]] = (NODE_DIR,)
    prepares_nodes_early: ClassVar[bool] = True  # the config names the registry's host, known before it starts

    def cluster_contribution(self, ctx: StrategyContext) -> ClusterContribution:
        providers: KubeletCredentialProviders = ctx.require_providers()
        assert ctx.registry.credentials is not None
        args = ("static", providers.node_path("secrets", "static.json"))
        providers.register(ProviderSpec(PROVIDER_NAME, (ctx.image_host,), args))
        entry = credentials_entry(ctx.registry.credentials)
        providers.update_secrets("static", {ctx.image_host: entry}, replace=True)
        return providers.contribution(self.name)

    def prepare_nodes(self, ctx: StrategyContext, *, reused: bool) -> None:
        restart_if_outdated(ctx, reused=reused)
        check_provider_flags(ctx)
