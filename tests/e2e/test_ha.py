"""An HA kind cluster (three control-plane nodes) on real kind, through child pytest runs.

kind puts its own container in front of the control planes, ``<name>-external-load-balancer``
(haproxy or envoy, by kind release), which carries the cluster's label: it is kind's, not a
Kubernetes node, so it is never health-checked, wired or written to. Every strategy pulls (and
its negative control holds) on such a cluster, and a kept one is reused.

This takes minutes on two cores: scripts/test.sh runs it in the default lab variant's stage
only (deselected in the others, so no stage sees a skip).
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from pytest_kindreg import KindCluster
from pytest_kindreg.cluster import (
    CONTROL_PLANE_TAINT,
    KIND_LOAD_BALANCER_ROLE,
    KIND_ROLE_LABEL,
    find_kind,
)
from pytest_kindreg.host_sysctls import KIND_CLUSTER_LABEL
from pytest_kindreg.settings import Settings

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

HA_CONFIG = """\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: control-plane
- role: control-plane
"""


def _containers(docker: Any, cluster: str) -> dict[str, Any]:
    """Every container kind labelled as the cluster's, by name."""
    listed = docker.containers.list(all=True, filters={"label": f"{KIND_CLUSTER_LABEL}={cluster}"}, ignore_removed=True)
    return {c.name: c for c in listed}


def _clusters(kind: str) -> list[str]:
    return subprocess.run(
        [kind, "get", "clusters"], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()


@pytest.fixture
def ha_cluster_name(pytestconfig: pytest.Config) -> Any:
    """A new cluster name; the cluster is deleted after the test, whatever happened."""
    kind = find_kind(Settings.from_config(pytestconfig).kind_bin)
    name = f"kindreg-e2e-ha-{uuid.uuid4().hex[:6]}"
    yield name
    if name in _clusters(kind):
        subprocess.run([kind, "delete", "cluster", "--name", name], capture_output=True, timeout=300, check=False)


def test_an_ha_cluster_serves_every_strategy_and_is_reused(
    pytester: pytest.Pytester,
    kind_options: list[str],
    pytestconfig: pytest.Config,
    ha_cluster_name: str,
    kindreg_docker: Any,
    tmp_path: Path,
) -> None:
    kind = find_kind(Settings.from_config(pytestconfig).kind_bin)
    name = ha_cluster_name
    config = pytester.path / "ha.yaml"
    config.write_text(HA_CONFIG)
    # The example every strategy runs: a pull, and a negative control that must be refused.
    example = (EXAMPLES / "test_all_strategies.py").read_text()
    marker = re.search(r"kindreg_strategy\(([^)]*)\)", example)
    assert marker, "examples/test_all_strategies.py has no kindreg_strategy marker"
    strategies = len(re.findall(r"\"(\w+)\"", marker.group(1)))
    pytester.makepyfile(test_all_strategies=example)
    options = [*kind_options, f"--kindreg-cluster-name={name}", f"--kindreg-kind-config={config}"]

    started = time.monotonic()
    first = pytester.runpytest_subprocess(*options, "--kindreg-keep-cluster")
    first.assert_outcomes(passed=strategies)
    created = time.monotonic() - started

    containers = _containers(kindreg_docker, name)
    balancer = f"{name}-external-load-balancer"
    assert balancer in containers, sorted(containers)
    assert containers[balancer].labels.get(KIND_ROLE_LABEL) == KIND_LOAD_BALANCER_ROLE
    nodes = sorted(set(containers) - {balancer})
    assert nodes == [f"{name}-control-plane", f"{name}-control-plane2", f"{name}-control-plane3"]

    # The plugin's own view of the kept cluster: three nodes, healthy (the load balancer is no
    # node that could be "not registered"), its files in the nodes and none in the load balancer;
    # pods ran, so no control plane is tainted (kind untaints only a one-node cluster).
    cluster = KindCluster(name, kind_bin=kind, workdir=tmp_path / "adopt")
    cluster.adopt()
    assert sorted(cluster.nodes()) == nodes
    assert cluster.health_problems() == []
    core = client.CoreV1Api(cluster.api_client())
    assert CONTROL_PLANE_TAINT not in {t.key for n in core.list_node().items for t in n.spec.taints or []}
    for node in nodes:
        assert containers[node].exec_run(["test", "-d", "/etc/containerd/certs.d"]).exit_code == 0, node
    assert containers[balancer].exec_run(["test", "-e", "/etc/containerd"]).exit_code == 1

    started = time.monotonic()
    second = pytester.runpytest_subprocess(*options, "--kindreg-reuse-cluster")
    second.assert_outcomes(passed=strategies)
    # The run's summary: the containerd of each of the three nodes, nothing of the load balancer.
    second.stdout.fnmatch_lines([f"*cluster {name} (reused*"])
    for node in nodes:  # every node wired, in whatever order Docker lists them
        second.stdout.fnmatch_lines([f"  {node}: containerd *"])
    assert balancer not in second.stdout.str()
    reused = time.monotonic() - started
    print(f"HA cluster: created and tested in {created:.0f} s, reused and tested in {reused:.0f} s")

    subprocess.run([kind, "delete", "cluster", "--name", name], capture_output=True, timeout=300, check=True)
    assert name not in _clusters(kind)
    assert _containers(kindreg_docker, name) == {}  # the load balancer went with the nodes
