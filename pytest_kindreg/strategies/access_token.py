"""``access_token``: credentials written into running nodes, then kubelet restarted on each,
as kind's guide (kind-gcr.sh) prescribes. Supports rotation with a token source.

With a token-auth registry the credential is a real access token (``oauth2accesstoken``) that
expires on a clock (``--kindreg-access-token-ttl``), as cloud registries' do; with htpasswd the
"token" is a registry password that changes only when rotated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from pytest_kindreg.credentials import Credentials
from pytest_kindreg.node_credentials import KUBELET_CONFIG_JSON
from pytest_kindreg.strategies.base import BaseStrategy, StrategyContext

TokenSource = Callable[[StrategyContext], Credentials]
DEFAULT_ACCESS_TOKEN_TTL = 3600.0


def fresh_token(ctx: StrategyContext) -> Credentials:
    """The default token source. Token mode: a new access token, valid ``ctx.access_token_ttl``
    seconds (the old one stays valid until it expires, as real ones do). htpasswd: the registry
    issues a new password and forgets the old one."""
    if ctx.registry.token_auth:
        return ctx.registry.issue_access_token(ttl=ctx.access_token_ttl)
    return ctx.registry.rotate_credentials()


class AccessTokenStrategy(BaseStrategy):
    name: ClassVar[str] = "access_token"
    description: ClassVar[str] = "credentials written into running nodes, kubelet restarted"
    prepares_nodes_early: ClassVar[bool] = True  # node credentials: the registry's host is enough
    node_files: ClassVar[tuple[str, ...]] = (KUBELET_CONFIG_JSON,)

    def __init__(self, token_source: TokenSource = fresh_token) -> None:
        self.token_source = token_source
        self.rotations = 0

    def install(self, ctx: StrategyContext, credentials: Credentials) -> None:
        """Write ``credentials`` into every running node, then restart kubelet on each."""
        ctx.node_credentials.apply(ctx.require_cluster(), {ctx.image_host: credentials}, restart_kubelet=True)

    def prepare_nodes(self, ctx: StrategyContext, *, reused: bool) -> None:
        if ctx.registry.token_auth:
            self.install(ctx, ctx.registry.issue_access_token(ttl=ctx.access_token_ttl))
            return
        assert ctx.registry.credentials is not None
        self.install(ctx, ctx.registry.credentials)

    def rotate(self, ctx: StrategyContext) -> Credentials:
        """Get a fresh token, write it into every node and restart kubelet again."""
        credentials = self.token_source(ctx)
        self.install(ctx, credentials)
        self.rotations += 1
        return credentials
