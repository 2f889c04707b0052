"""Leftovers of dead runs: find and remove them, never what a live run or the user owns.

Every run records itself in ``~/.cache/pytest-kindreg/runs/<run id>.json`` (pid, process start
time, cluster, keep flag); every container and network it creates carries its labels; every temp
dir it creates holds an ownership record (:mod:`pytest_kindreg.tempdirs`). A run is dead when its
process is gone (or the pid was reused by another process).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_kindreg.docker_engine import (
    LABEL_HOST,
    LABEL_MANAGED,
    LABEL_PID,
    LABEL_PID_START,
    LABEL_RUN,
    RunIdentity,
    process_alive,
    process_start_time,
)
from pytest_kindreg.errors import first_line
from pytest_kindreg.tempdirs import owned_dirs, read_owner, temp_root

log = logging.getLogger("pytest_kindreg")


def state_dir() -> Path:
    return Path(os.environ.get("KINDREG_STATE_DIR") or Path.home() / ".cache" / "pytest-kindreg")


def runs_dir() -> Path:
    return state_dir() / "runs"


def register_run(identity: RunIdentity, **details: Any) -> Path:
    """Record (or update) the run so that a later run can reap it if this process dies."""
    path = runs_dir() / f"{identity.run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    record: dict[str, Any] = {}
    with contextlib.suppress(FileNotFoundError, ValueError):
        record = json.loads(path.read_text())
    record.update(
        {
            "run_id": identity.run_id,
            "pid": identity.pid,
            "pid_start": process_start_time(identity.pid),
            "host": socket.gethostname(),
        }
    )
    record.update(details)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)
    return path


def unregister_run(identity: RunIdentity) -> None:
    with contextlib.suppress(FileNotFoundError):
        (runs_dir() / f"{identity.run_id}.json").unlink()


@dataclass
class Leftovers:
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    clusters: list[str] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)
    run_files: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any((self.containers, self.networks, self.clusters, self.directories, self.run_files))

    def describe(self) -> str:
        parts = [f"{len(v)} {k}" for k, v in vars(self).items() if v]
        return ", ".join(parts) or "nothing"


def _alive(labels: dict[str, str]) -> bool:
    if labels.get(LABEL_HOST) not in (None, "", socket.gethostname()):
        return True  # another machine's process: we cannot tell, so never touch it
    try:
        pid = int(labels.get(LABEL_PID, "0"))
    except ValueError:
        return True
    return process_alive(pid, labels.get(LABEL_PID_START, ""))


def find_leftovers(docker: Any) -> Leftovers:
    """What dead runs left behind (containers, networks, clusters, temp dirs, run records)."""
    found = Leftovers()
    live_runs: set[str] = set()
    if runs_dir().is_dir():
        for path in runs_dir().glob("*.json"):
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            labels = {
                LABEL_PID: str(record.get("pid", 0)),
                LABEL_PID_START: record.get("pid_start", ""),
                LABEL_HOST: record.get("host", ""),
            }
            if _alive(labels):
                live_runs.add(str(record.get("run_id")))
                continue
            found.run_files.append(str(path))
            if record.get("cluster") and not record.get("keep_cluster") and record.get("cluster_created"):
                found.clusters.append(str(record["cluster"]))
    if docker is not None:
        for container in docker.containers.list(all=True, filters={"label": LABEL_MANAGED}, ignore_removed=True):
            if not _alive(container.labels):
                found.containers.append(container.name)
            else:
                live_runs.add(container.labels.get(LABEL_RUN, ""))
        for network in docker.networks.list(filters={"label": LABEL_MANAGED}):
            if not _alive(network.attrs.get("Labels") or {}):
                found.networks.append(network.name)
    # Only directories whose ownership record proves a dead run of this user made them: a name
    # proves nothing (a user's /tmp/kindreg-notes-keepme was once taken for a leftover).
    for directory, owner in owned_dirs():
        labels = {
            LABEL_PID: str(owner.get("pid", 0)),
            LABEL_PID_START: str(owner.get("pid_start", "")),
            LABEL_HOST: str(owner.get("host", "")),
        }
        if owner["run_id"] not in live_runs and not _alive(labels):
            found.directories.append(str(directory))
    return found


def _thaw_cluster(docker: Any, cluster: str) -> int:
    """Thaw cgroup v1 freezer cgroups left FROZEN in a dead run's cluster's nodes (else Docker
    cannot kill them); how many were thawed."""
    from pytest_kindreg.docker_nodes import thaw_frozen
    from pytest_kindreg.host_sysctls import KIND_CLUSTER_LABEL

    if docker is None:
        return 0
    nodes = docker.containers.list(all=True, filters={"label": f"{KIND_CLUSTER_LABEL}={cluster}"}, ignore_removed=True)
    return thaw_frozen([node.id for node in nodes])


def reap(
    docker: Any, leftovers: Leftovers, kind_bin: str | None = None, say: Callable[[str], None] = log.info
) -> list[str]:
    """Remove ``leftovers``; returns what could not be removed, with why."""
    from docker.errors import NotFound

    problems: list[str] = []
    for name in leftovers.containers:
        try:
            docker.containers.get(name).remove(force=True, v=True)
        except NotFound:
            pass
        except Exception as exc:
            problems.append(f"container {name}: {exc}")
    for name in leftovers.networks:
        try:
            docker.networks.get(name).remove()
        except NotFound:
            pass
        except Exception as exc:
            problems.append(f"network {name}: {exc}")
    if leftovers.clusters:
        from pytest_kindreg import runner
        from pytest_kindreg.cluster import find_kind

        try:
            kind = find_kind(kind_bin)
            for cluster in leftovers.clusters:
                thawed = _thaw_cluster(docker, cluster)
                if thawed:
                    say(f"thawed {thawed} frozen cgroup(s) in the nodes of cluster {cluster}")
                deleted = runner.run([kind, "delete", "cluster", "--name", cluster], timeout=300, check=False)
                if deleted.returncode != 0:
                    why = (deleted.stderr.strip().splitlines() or [f"exit status {deleted.returncode}"])[-1]
                    problems.append(f"cluster {cluster}: kind delete failed: {first_line(why)}")
        except Exception as exc:
            problems.append(f"clusters {leftovers.clusters}: {exc}")
    for name in leftovers.directories:
        directory = Path(name)
        # Checked again right before removal: still in our parent, still a real dir with a record.
        if directory.parent == temp_root() and read_owner(directory) is not None:
            shutil.rmtree(directory, ignore_errors=True)  # never follows symlinks inside
    for path in leftovers.run_files:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return problems
