"""access_token on real containers and a real registry: tokens written into running "nodes",
rotation through a token source. kubelet cannot run here, so the node class records the
restart requests (the real restart is covered by the e2e tests on kind)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
import requests

from pytest_kindreg import Credentials, PrivateRegistry
from pytest_kindreg.credentials import parse_auth_entry
from pytest_kindreg.docker_nodes import ContainerNodes
from pytest_kindreg.node_credentials import KUBELET_CONFIG_JSON, NodeCredentials
from pytest_kindreg.strategies import AccessTokenStrategy, StrategyContext

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]


class RecordingNodes(ContainerNodes):
    def __init__(self, names: list[str]) -> None:
        super().__init__(names)
        self.restarts: list[str] = []

    def restart_kubelet(self, node: str, timeout: float = 120.0) -> None:
        self.restarts.append(node)


@pytest.fixture
def nodes(node_containers: list[str]) -> RecordingNodes:
    return RecordingNodes(node_containers)


def _token_on(nodes: ContainerNodes, node: str, host: str) -> Credentials:
    return parse_auth_entry(json.loads(nodes.read_file(node, KUBELET_CONFIG_JSON) or "{}")["auths"][host])


def test_tokens_are_written_and_kubelet_restarted_on_every_node(
    kindreg_docker: Any, nodes: RecordingNodes, tmp_path: Path
) -> None:
    with PrivateRegistry(docker=kindreg_docker) as registry:
        ctx = StrategyContext("access_token", registry, tmp_path, NodeCredentials(tmp_path / "unused.json"))
        ctx.cluster = cast(Any, nodes)
        strategy = AccessTokenStrategy()
        strategy.prepare_nodes(ctx, reused=False)
        assert nodes.restarts == nodes.nodes()
        for node in nodes.nodes():
            assert _token_on(nodes, node, registry.host) == registry.credentials

        old = registry.credentials
        assert old is not None
        new = strategy.rotate(ctx)  # default token source: the registry issues a new password
        assert new != old
        assert strategy.rotations == 1
        assert nodes.restarts == nodes.nodes() * 2
        for node in nodes.nodes():
            assert _token_on(nodes, node, registry.host) == new
        # The old token no longer works at the registry; the new one does.
        assert requests.get(f"{registry.url}/v2/", auth=(old.username, old.password), timeout=5).status_code == 401
        assert requests.get(f"{registry.url}/v2/", auth=(new.username, new.password), timeout=5).status_code == 200


def test_custom_token_source(kindreg_docker: Any, nodes: RecordingNodes, tmp_path: Path) -> None:
    """The guide's models: a short-lived access token user, or a `_json_key` service-account key."""
    issued: list[Credentials] = []

    def json_key_source(ctx: StrategyContext) -> Credentials:
        key = Credentials("_json_key", json.dumps({"type": "service_account", "n": len(issued)}))
        issued.append(ctx.registry.rotate_credentials(key))
        return key

    with PrivateRegistry(docker=kindreg_docker) as registry:
        ctx = StrategyContext("access_token", registry, tmp_path, NodeCredentials(tmp_path / "unused.json"))
        ctx.cluster = cast(Any, nodes)
        strategy = AccessTokenStrategy(token_source=json_key_source)
        first = strategy.rotate(ctx)
        second = strategy.rotate(ctx)
        assert [first, second] == issued
        assert first.password != second.password
        assert _token_on(nodes, nodes.nodes()[0], registry.host) == second
        assert registry.get("/v2/").status_code == 200
        response = requests.get(f"{registry.url}/v2/", auth=(first.username, first.password), timeout=5)
        assert response.status_code == 401
