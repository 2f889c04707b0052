"""Files and commands inside node containers, through ``docker exec`` (kind nodes are containers)."""

from __future__ import annotations

import base64
import functools
import io
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from pytest_kindreg import runner
from pytest_kindreg.errors import CommandError
from pytest_kindreg.parallel import in_parallel


class DockerNodes:
    """Node helpers over ``docker exec``; subclasses say which containers are the nodes."""

    def nodes(self) -> list[str]:
        raise NotImplementedError

    def exec(self, node: str, argv: Sequence[str], *, input: str | None = None, timeout: float = 60.0) -> str:
        flags = ["-i"] if input is not None else []
        return runner.run(["docker", "exec", *flags, node, *argv], input=input, timeout=timeout).stdout

    def write_file(self, node: str, path: str, content: str | bytes, mode: str = "0644") -> None:
        """Write a file in a node in place (``cat >`` keeps the inode of a bind-mounted file)."""
        text = content.decode() if isinstance(content, bytes) else content
        script = 'mkdir -p "$(dirname "$1")" && umask 077 && cat > "$1" && chmod "$2" "$1"'
        self.exec(node, ["sh", "-c", script, "sh", path, mode], input=text)

    def write_file_all(self, path: str, content: str | bytes, mode: str = "0644") -> None:
        for node in self.nodes():
            self.write_file(node, path, content, mode)

    def write_files_all(self, files: Mapping[str, tuple[str | bytes, int]]) -> None:
        """Write several files (absolute path → (content, mode)) into every node with one
        ``docker exec`` per node: a tar stream, unpacked at ``/`` (directories created 0755)."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for path, (content, mode) in files.items():
                data = content.encode() if isinstance(content, str) else content
                info = tarfile.TarInfo(path.lstrip("/"))
                info.size, info.mode = len(data), mode
                archive.addfile(info, io.BytesIO(data))
        # Text through stdin (the runner speaks text): base64, decoded in the node.
        payload = base64.b64encode(buffer.getvalue()).decode()
        unpack = ["sh", "-c", "base64 -d | tar -x -f - -C / --no-same-owner"]
        in_parallel([functools.partial(self.exec, node, unpack, input=payload) for node in self.nodes()])

    def read_file(self, node: str, path: str) -> str | None:
        try:
            return self.exec(node, ["cat", path])
        except CommandError:
            return None

    def restart_kubelet(self, node: str, timeout: float = 120.0) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no kubelet")


FREEZER_ROOT = Path("/sys/fs/cgroup/freezer")


def thaw_frozen(container_ids: Sequence[str], root: Path = FREEZER_ROOT) -> int:
    """Thaw cgroup v1 freezer cgroups left FROZEN under these containers; how many were thawed.

    On cgroup v1, runc freezes a container's cgroup while it sets it up; a node deleted at that
    moment can keep a nested container FROZEN, and then no signal reaches it: Docker cannot kill
    the node ("did not receive an exit event"). Only the given containers' cgroups are touched
    (Docker's cgroupfs and systemd layouts).
    """
    thawed = 0
    for container_id in container_ids:
        for top in (root / "docker" / container_id, root / "system.slice" / f"docker-{container_id}.scope"):
            if not top.is_dir():
                continue
            for state in sorted(top.rglob("freezer.state")):
                try:
                    if state.read_text().strip() == "FROZEN":
                        state.write_text("THAWED")
                        thawed += 1
                except OSError:
                    continue  # not ours to write (not root): the caller reports Docker's own error
    return thawed


class ContainerNodes(DockerNodes):
    """Any set of running containers, addressed like nodes (used for checks outside kind)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)

    def nodes(self) -> list[str]:
        return list(self.names)
