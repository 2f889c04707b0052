"""The nodes' ``/var/lib/kubelet/config.json``, shared by ``node_config`` and ``access_token``.

kubelet reads only the first config.json it finds, so both strategies must share one file.
Each owns the ``auths`` entries of its own image hosts and rewrites only those (a JSON merge),
so neither clobbers the other. When ``node_config`` mounts the file from the host, writes go to
the host file in place (a renamed file would not show through a single-file bind mount).
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_kindreg.credentials import Credentials, merge_docker_config, write_private_file
from pytest_kindreg.kind_config import ExtraMount
from pytest_kindreg.parallel import in_parallel

if TYPE_CHECKING:
    from pytest_kindreg.docker_nodes import DockerNodes

KUBELET_CONFIG_JSON = "/var/lib/kubelet/config.json"


class NodeCredentials:
    def __init__(self, host_file: Path) -> None:
        self.host_file = host_file
        self.mounted = False
        self._lock = threading.Lock()
        self._deferring = False
        self._pending_restart: DockerNodes | None = None

    def __repr__(self) -> str:
        return f"<NodeCredentials {self.host_file} mounted={self.mounted}>"

    def _read_host_file(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.host_file.read_text() or "{}"))
        except FileNotFoundError:
            return {}

    def mount(self) -> ExtraMount:
        """The extraMount that puts the host file at kubelet's path on every node."""
        with self._lock:
            if not self.host_file.exists():
                write_private_file(self.host_file, json.dumps({"auths": {}}))
            self.mounted = True
        return ExtraMount(host_path=str(self.host_file), container_path=KUBELET_CONFIG_JSON, read_only=True)

    def update_host_file(self, auths: Mapping[str, Credentials]) -> None:
        with self._lock:
            merged = json.dumps(merge_docker_config(self._read_host_file(), auths), indent=2)
            write_private_file(self.host_file, merged)  # in place: the bind mount keeps showing it

    def forget(self, hosts: Iterable[str]) -> None:
        """Drop the host file's entries for ``hosts`` (e.g. a registry port that was not used after all)."""
        gone = set(hosts)
        with self._lock:
            doc = self._read_host_file()
            auths = doc.get("auths") or {}
            if gone & set(auths):
                doc["auths"] = {key: value for key, value in auths.items() if key not in gone}
                write_private_file(self.host_file, json.dumps(doc, indent=2))

    def apply(self, cluster: DockerNodes, auths: Mapping[str, Credentials], *, restart_kubelet: bool) -> None:
        """Merge ``auths`` into every node's config.json, then (optionally) restart kubelet on each.

        The restart is what kind's guide prescribes: kubelet caches the file for 5 minutes.
        """
        if self.mounted:
            self.update_host_file(auths)
        else:
            for node in cluster.nodes():
                current = cluster.read_file(node, KUBELET_CONFIG_JSON)
                merged = merge_docker_config(json.loads(current) if current else {}, auths)
                cluster.write_file(node, KUBELET_CONFIG_JSON, json.dumps(merged, indent=2), mode="0600")
        if restart_kubelet:
            self.restart_kubelets(cluster)

    def restart_kubelets(self, cluster: DockerNodes) -> None:
        """Restart kubelet on every node, or once at the end of :meth:`restarts_deferred`."""
        if self._deferring:
            self._pending_restart = cluster
        else:
            _restart_kubelets(cluster)

    @contextlib.contextmanager
    def restarts_deferred(self) -> Iterator[None]:
        """Within the block, the kubelet restarts that :meth:`apply` and :meth:`restart_kubelets`
        ask for become one restart per node at the end (only if the block completes)."""
        self._deferring = True
        try:
            yield
            pending = self._pending_restart
        finally:
            self._deferring = False
            self._pending_restart = None
        if pending is not None:
            _restart_kubelets(pending)

    def keys_on(self, cluster: DockerNodes, node: str) -> list[str]:
        """The servers a node's config.json has credentials for (never the credentials)."""
        current = cluster.read_file(node, KUBELET_CONFIG_JSON)
        return sorted(json.loads(current).get("auths", {})) if current else []


def _restart_kubelets(cluster: DockerNodes) -> None:
    # Each node's kubelet comes back on its own: side by side, a restart costs one node's time.
    in_parallel([functools.partial(cluster.restart_kubelet, node) for node in cluster.nodes()])
