"""The hooks pytest-kindreg declares (registered by ``pytest_addhooks`` in the plugin).

Implement them in a ``conftest.py`` (or a plugin)::

    def pytest_kindreg_cluster_created(cluster):
        cluster.exec(f"{cluster.name}-control-plane", ["kubectl", "--kubeconfig=/etc/kubernetes/admin.conf",
                     "apply", "-f", "/opt/my-cni.yaml"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_kindreg.cluster import KindCluster


@pytest.hookspec
def pytest_kindreg_cluster_created(cluster: KindCluster) -> None:
    """Called once ``kind create cluster`` has made the session's cluster, before the plugin waits
    for it to be healthy (every node Ready): install what the nodes need to become Ready here,
    e.g. the CNI of a kind config with ``networking.disableDefaultCNI: true``.

    ``cluster`` is the :class:`~pytest_kindreg.cluster.KindCluster`: its API (``api_client()``,
    ``kubeconfig``), its nodes (``nodes()``, ``exec(node, argv, input=...)``). kind's ``--wait``
    is skipped for such a config (it would wait for a Ready that needs the CNI first).

    Called only for a cluster this run creates (not for a reused one), in the process that creates
    it (under pytest-xdist: one worker), possibly in a worker thread while the registries start.
    Without an implementation, a config with ``disableDefaultCNI: true`` is refused before anything
    starts.
    """
