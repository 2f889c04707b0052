"""HA clusters in pure logic. Which of a kind cluster's containers are its Kubernetes nodes (kind's
external load balancer carries the cluster label too, and is told apart by its role label only),
and which configs leave no schedulable node (several control planes, no worker)."""

from __future__ import annotations

import pytest

from pytest_kindreg.cluster import KIND_LOAD_BALANCER_ROLE, kind_node_containers, only_control_planes


def _listing(*rows: tuple[str, str, str]) -> str:
    return "".join("\t".join(row) + "\n" for row in rows)


def test_the_load_balancer_of_an_ha_cluster_is_not_a_node() -> None:
    listing = _listing(
        ("c4", "ha-external-load-balancer", KIND_LOAD_BALANCER_ROLE),
        ("c3", "ha-control-plane3", "control-plane"),
        ("c2", "ha-control-plane2", "control-plane"),
        ("c1", "ha-control-plane", "control-plane"),
        ("c0", "ha-worker", "worker"),
    )
    assert kind_node_containers(listing) == [
        ("c3", "ha-control-plane3"),
        ("c2", "ha-control-plane2"),
        ("c1", "ha-control-plane"),
        ("c0", "ha-worker"),
    ]


def test_the_role_label_decides_not_the_name() -> None:
    # A cluster named "x-external-load-balancer" has a node called that; a load balancer under
    # another name is still kind's.
    listing = _listing(
        ("a", "x-external-load-balancer-control-plane", "control-plane"),
        ("b", "proxy", KIND_LOAD_BALANCER_ROLE),
    )
    assert kind_node_containers(listing) == [("a", "x-external-load-balancer-control-plane")]


@pytest.mark.parametrize("line", ["id\tname\t\n", "id\tname\n"])
def test_a_container_without_a_role_label_counts_as_a_node(line: str) -> None:
    assert kind_node_containers(line) == [("id", "name")]


def test_a_cluster_without_containers_has_no_nodes() -> None:
    assert kind_node_containers("") == []
    assert kind_node_containers("\n\n") == []


@pytest.mark.parametrize(
    ("roles", "untaint"),
    [
        (["control-plane", "control-plane", "control-plane"], True),
        ([None, "control-plane"], True),  # a node without a role is a control plane, as in kind
        (["control-plane"], False),  # kind untaints a lone control plane itself
        (["control-plane", "control-plane", "control-plane", "worker"], False),
        (["control-plane", "worker"], False),
    ],
)
def test_only_control_planes_is_several_control_planes_and_no_worker(roles: list[str | None], untaint: bool) -> None:
    nodes = [{} if role is None else {"role": role} for role in roles]
    assert only_control_planes(nodes) is untaint
