"""``node_config``: a docker config.json with inline ``auths`` (0600 on the host) mounted at
``/var/lib/kubelet/config.json`` on every node through ``extraMounts`` at cluster creation."""

from __future__ import annotations

from typing import Any, ClassVar

from pytest_kindreg.errors import ClusterError
from pytest_kindreg.kind_config import ClusterContribution
from pytest_kindreg.node_credentials import KUBELET_CONFIG_JSON
from pytest_kindreg.strategies.base import BaseStrategy, StrategyContext


class NodeConfigStrategy(BaseStrategy):
    name: ClassVar[str] = "node_config"
    description: ClassVar[str] = "config.json mounted at /var/lib/kubelet/config.json on every node"
    prepares_nodes_early: ClassVar[bool] = True  # node credentials: the registry's host is enough
    node_files: ClassVar[tuple[str, ...]] = (KUBELET_CONFIG_JSON,)

    def _auths(self, ctx: StrategyContext) -> dict[str, Any]:
        assert ctx.registry.credentials is not None
        return {ctx.image_host: ctx.registry.credentials}

    def cluster_contribution(self, ctx: StrategyContext) -> ClusterContribution:
        mount = ctx.node_credentials.mount()
        ctx.node_credentials.update_host_file(self._auths(ctx))
        return ClusterContribution(extra_mounts=(mount,), source=self.name)

    def prepare_nodes(self, ctx: StrategyContext, *, reused: bool) -> None:
        cluster = ctx.require_cluster()
        if reused:
            # A reused cluster keeps the mount; this run's registry has new credentials and port.
            ctx.node_credentials.apply(cluster, self._auths(ctx), restart_kubelet=True)
        for node in cluster.nodes():
            if ctx.image_host not in ctx.node_credentials.keys_on(cluster, node):
                raise ClusterError(
                    f"node_config: {node}:/var/lib/kubelet/config.json has no entry for {ctx.image_host}; "
                    "the extraMount did not take effect"
                )
