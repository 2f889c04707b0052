"""``access_token``: credentials written into running nodes, then kubelet restarted on each,
as kind's guide (kind-gcr.sh) prescribes. Supports rotation with a token source."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from pytest_kindreg.credentials import Credentials
from pytest_kindreg.strategies.base import BaseStrategy, StrategyContext

TokenSource = Callable[[StrategyContext], Credentials]


def rotate_registry_password(ctx: StrategyContext) -> Credentials:
    """The default token source: the registry issues a new password and forgets the old one,
    the way a short-lived access token (or a re-issued ``_json_key``) replaces the previous one."""
    return ctx.registry.rotate_credentials()


class AccessTokenStrategy(BaseStrategy):
    name: ClassVar[str] = "access_token"
    description: ClassVar[str] = "credentials written into running nodes, kubelet restarted"
    prepares_nodes_early: ClassVar[bool] = True  # node credentials: the registry's host is enough

    def __init__(self, token_source: TokenSource = rotate_registry_password) -> None:
        self.token_source = token_source
        self.rotations = 0

    def install(self, ctx: StrategyContext, credentials: Credentials) -> None:
        """Write ``credentials`` into every running node, then restart kubelet on each."""
        ctx.node_credentials.apply(ctx.require_cluster(), {ctx.image_host: credentials}, restart_kubelet=True)

    def prepare_nodes(self, ctx: StrategyContext, *, reused: bool) -> None:
        assert ctx.registry.credentials is not None
        self.install(ctx, ctx.registry.credentials)

    def rotate(self, ctx: StrategyContext) -> Credentials:
        """Get a fresh token, write it into every node and restart kubelet again."""
        credentials = self.token_source(ctx)
        self.install(ctx, credentials)
        self.rotations += 1
        return credentials
