"""Races at the cluster's edges, as pure decisions: a new namespace's ServiceAccount, and a node
lease renewed by a restarted kubelet. The real cluster exercises both in tests/e2e."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from pytest_kindreg import ClusterError, Credentials, PrivateRegistry
from pytest_kindreg.cluster import lease_renewed
from pytest_kindreg.node_credentials import NodeCredentials
from pytest_kindreg.strategies import PullSecretStrategy, StrategyContext
from pytest_kindreg.workspace import KindPrivateRegistry, wait_for_service_account

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


class _Api:
    """The CoreV1Api calls a workspace's setup makes, in order; the ServiceAccount appears late."""

    def __init__(self, missing_reads: int) -> None:
        self.missing_reads = missing_reads
        self.calls: list[str] = []

    def create_namespace(self, body: Any) -> None:
        self.calls.append("create_namespace")

    def read_namespaced_service_account(self, name: str, namespace: str) -> Any:
        self.calls.append(f"read_service_account {namespace}/{name}")
        if self.missing_reads:
            self.missing_reads -= 1
            raise ApiException(status=404, reason="Not Found")
        return object()

    def create_namespaced_secret(self, namespace: str, body: Any) -> None:
        self.calls.append("create_secret")


def test_waits_until_the_service_account_exists() -> None:
    api = _Api(missing_reads=2)
    wait_for_service_account(api, "kr-ns", timeout=10)
    assert api.calls == ["read_service_account kr-ns/default"] * 3


def test_a_service_account_that_never_comes_names_the_namespace() -> None:
    with pytest.raises(
        ClusterError, match=r"timed out after 1s waiting for ServiceAccount 'default' in namespace kr-x"
    ):
        wait_for_service_account(_Api(missing_reads=1000), "kr-x", timeout=1)


class _Cluster:
    """What a workspace asks of its cluster before any call: an API client."""

    def api_client(self) -> Any:
        from kubernetes import client

        return client.ApiClient()


def test_setup_waits_for_the_service_account_before_anything_uses_the_namespace(tmp_path: Path) -> None:
    registry = PrivateRegistry(credentials=Credentials("user", "pass"))
    registry._port = 5001
    ctx = StrategyContext("pull_secret", registry, tmp_path, NodeCredentials(tmp_path / "kubelet.json"))
    workspace = KindPrivateRegistry(PullSecretStrategy(), ctx, _Cluster(), namespace="kr-ns")  # type: ignore[arg-type]
    api = _Api(missing_reads=1)
    workspace.core = api
    workspace.setup()
    assert api.calls == [
        "create_namespace",
        "read_service_account kr-ns/default",
        "read_service_account kr-ns/default",
        "create_secret",
    ]


@pytest.mark.parametrize(
    ("before", "now", "renewed"),
    [
        (T0, T0, False),  # the value read after the restart: no renewal yet
        (T0, T0 - datetime.timedelta(seconds=1), False),
        (T0, T0 + datetime.timedelta(microseconds=1), True),  # renewTime is a MicroTime
        (T0, None, False),
        (None, T0, True),  # no lease before: the first one is the new kubelet's
        (T0.replace(tzinfo=None), T0 + datetime.timedelta(seconds=10), True),  # naive values are UTC
    ],
)
def test_lease_renewal_compares_the_lease_with_itself(
    before: datetime.datetime | None, now: datetime.datetime | None, renewed: bool
) -> None:
    assert lease_renewed(before, now) is renewed


def test_a_host_clock_ahead_of_the_node_does_not_matter() -> None:
    # The host is an hour ahead of the node: the node's renewals all look "before now" to the
    # host, but they are still later than the lease's own previous value.
    host_now = T0 + datetime.timedelta(hours=1)
    renewal = T0 + datetime.timedelta(seconds=10)
    assert renewal < host_now
    assert lease_renewed(T0, renewal)
