"""``side_load``: the host pulls with credentials, then ``kind load`` puts the image into every node.

Nodes never hold credentials; pods use a pinned tag with ``imagePullPolicy: IfNotPresent``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pytest_kindreg.strategies.base import BaseStrategy, PodPatch, StrategyContext


class SideLoadStrategy(BaseStrategy):
    name: ClassVar[str] = "side_load"
    description: ClassVar[str] = "pull on the host with credentials, then kind load into the nodes"

    def prepare_namespace(self, ctx: StrategyContext, core: Any, namespace: str) -> PodPatch:
        return PodPatch(image_pull_policy="IfNotPresent")

    def publish(self, ctx: StrategyContext, reference: str) -> str:
        if reference.endswith(":latest"):
            raise ValueError(f"side_load needs a pinned tag, not {reference!r}: ':latest' makes kubelet pull")
        # Credentials go to the engine per request (docker SDK auth_config): no config file is written.
        ctx.registry.pull(reference)
        ctx.require_cluster().load_image(reference)
        return reference

    def negative_control(self, ctx: StrategyContext, fresh_reference: str) -> tuple[str, PodPatch]:
        # A tag never loaded into the nodes: kubelet must pull it, and nodes hold no credentials.
        return fresh_reference, PodPatch(image_pull_policy="IfNotPresent")
