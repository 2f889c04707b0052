"""``kindreg cleanup`` on a dead run's real kind cluster: it thaws the cgroup v1 freezer cgroups
left FROZEN in its nodes, deletes it, and puts back the VM-wide sysctls its kubelet changed.

(That a plain pytest run leaves the sysctls as they were is checked by ``scripts/test.sh``'s wheel
stage, outside any guard: ``scripts/check-host-unchanged.sh``.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from pytest_kindreg import KindCluster, RunIdentity
from pytest_kindreg.docker_nodes import FREEZER_ROOT
from pytest_kindreg.host_sysctls import (
    KIND_CLUSTER_LABEL,
    KUBELET_SYSCTLS,
    PROC_SYS,
    read_sysctls,
    running_kind_clusters,
)
from pytest_kindreg.kind_config import KindClusterConfig
from pytest_kindreg.reaper import register_run
from pytest_kindreg.settings import Settings

pytestmark = pytest.mark.e2e


def _freeze_a_pod_container(node_id: str) -> Path:
    """Freeze one pod container's cgroup inside the node, as runc does while it sets one up."""
    states = [p for p in (FREEZER_ROOT / "docker" / node_id).rglob("freezer.state") if "kubepods" in str(p)]
    # A leaf (a container's own cgroup): freezing a parent would show its children FROZEN too.
    leaves = sorted(p for p in states if not any(q.parent.parent == p.parent for q in states))
    assert leaves, f"no pod cgroup under {FREEZER_ROOT / 'docker' / node_id}"
    state = leaves[-1]
    state.write_text("FROZEN")
    return state


def test_cleanup_thaws_deletes_and_restores_a_dead_runs_cluster(
    pytestconfig: pytest.Config, kindreg_docker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Freezing a cgroup by hand takes cgroup v1 with Docker's cgroupfs layout, and root: elsewhere
    # the test checks the rest (the dead run's cluster deleted, the sysctls put back or the
    # command to do it said).
    freeze = (FREEZER_ROOT / "docker").is_dir() and os.geteuid() == 0
    settings = Settings.from_config(pytestconfig)
    state_dir = tmp_path / "state"
    monkeypatch.setenv("KINDREG_STATE_DIR", str(state_dir))  # this run's records, the cleanup's too
    names = ("vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops")
    kubelets = {name: KUBELET_SYSCTLS[name] for name in names}
    before = read_sysctls(PROC_SYS, names)
    # Another kind cluster's kubelet (another run on this engine) makes the host's values unknowable.
    judge_sysctls = not running_kind_clusters() and before != kubelets
    name = f"kindreg-e2e-dead-{uuid.uuid4().hex[:6]}"
    cluster = KindCluster(name, kind_bin=settings.kind_bin, workdir=tmp_path / "cluster")
    try:
        # A run that created its cluster and died: its record names a pid that is gone.
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        register_run(RunIdentity(pid=int(dead.stdout)), cluster=name, keep_cluster=False, cluster_created=True)
        cluster.create(KindClusterConfig(name=name, node_image=settings.node_image))
        if judge_sysctls:
            assert read_sysctls(PROC_SYS, names) == kubelets  # what the cleanup has to put back
        (node,) = kindreg_docker.containers.list(filters={"label": f"{KIND_CLUSTER_LABEL}={name}"})
        frozen = _freeze_a_pod_container(node.id) if freeze else None

        result = subprocess.run(
            [sys.executable, "-m", "pytest_kindreg", "cleanup", "--kind-bin", cluster.kind_bin],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        after_cleanup = read_sysctls(PROC_SYS, names)
        if frozen is not None:
            # At least the one frozen here: runc also freezes a cgroup for a moment while it sets
            # its resources (cgroup v1, systemd driver), and the cleanup may meet one such.
            thawed = re.search(rf"thawed (\d+) frozen cgroup\(s\) in the nodes of cluster {name}\b", result.stdout)
            assert thawed is not None and int(thawed.group(1)) >= 1, output
            assert not frozen.exists(), output  # the node and its cgroups are gone
        assert f"removing clusters: {name}" in result.stdout, output
        assert kindreg_docker.containers.list(all=True, filters={"label": f"{KIND_CLUSTER_LABEL}={name}"}) == []
        if running_kind_clusters():
            # Another cluster's kubelet (e.g. this session's) set the values before this run could
            # read the host's: nothing is known to put back, and nothing may be written.
            assert "put back the host's sysctls" not in output, output
            assert after_cleanup == read_sysctls(PROC_SYS, names) == before, output
        elif judge_sysctls and os.geteuid() == 0:
            assert "put back the host's sysctls kubelet had changed" in output, output
            assert read_sysctls(PROC_SYS, names) == before, output
        elif judge_sysctls:  # not root: said, with the command, and the cleanup still succeeds
            assert "could not put back the host's sysctls kubelet changed" in result.stderr, output
            command = result.stderr.split("run `sudo sysctl -w ", 1)[1].split("`")[0].split()
            assert {f"{n}={v}" for n, v in before.items() if v != kubelets[n]} <= set(command), output
    finally:
        if name in cluster.kind("get", "clusters").split():
            cluster.created = True
            cluster.delete()
