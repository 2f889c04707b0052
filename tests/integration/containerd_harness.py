"""A throw-away containerd of the test's own, for checking node files with the real resolver.

``StandaloneContainerd`` starts the host's ``containerd`` binary with its own root, state dir,
sockets and a minimal config (no CRI, no runtimes, only the native snapshotter), so it starts
in milliseconds next to any other containerd (Docker's, the system's) without touching them.
``fetch`` runs ``ctr content fetch --hosts-dir`` against it: the same ``ConfigureHosts`` code that
reads ``/etc/containerd/certs.d/<host>/hosts.toml`` for the CRI plugin on a kind node.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

NAMESPACE = "kindreg"
INSTALL_HINT = "install it with `apt-get install containerd` (provides containerd and ctr)"

# Everything a pull does not need. CRI would fight the system containerd for its ports and
# dirs; runtimes/tasks need cgroups and shims; the other snapshotters need kernel features.
DISABLED_PLUGINS = (
    "io.containerd.grpc.v1.cri",
    "io.containerd.internal.v1.opt",
    "io.containerd.internal.v1.restart",
    "io.containerd.internal.v1.tracing",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.runtime.v1.linux",
    "io.containerd.runtime.v2.task",
    "io.containerd.monitor.v1.cgroups",
    "io.containerd.service.v1.tasks-service",
    "io.containerd.grpc.v1.tasks",
    "io.containerd.nri.v1.nri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.snapshotter.v1.overlayfs",
)


def which_containerd() -> str | None:
    """None when ``containerd`` and ``ctr`` are on PATH, else the reason to skip."""
    missing = [name for name in ("containerd", "ctr") if shutil.which(name) is None]
    if missing:
        return f"{' and '.join(missing)} not found on PATH; {INSTALL_HINT}"
    return None


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class StandaloneContainerd:
    """``with StandaloneContainerd() as ctrd: ctrd.fetch(ref, hosts_dir, user="u:p")``."""

    def __init__(self, *, start_timeout: float = 20.0, pull_timeout: float = 120.0) -> None:
        self.start_timeout = start_timeout
        self.pull_timeout = pull_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    # -- layout -------------------------------------------------------------------------------
    @property
    def directory(self) -> Path:
        if self._dir is None:
            raise RuntimeError("StandaloneContainerd is not started")
        return self._dir

    @property
    def address(self) -> str:
        # Short on purpose: a unix socket path must stay under 108 bytes.
        return str(self.directory / "c.sock")

    @property
    def config_path(self) -> Path:
        return self.directory / "config.toml"

    @property
    def log_path(self) -> Path:
        return self.directory / "containerd.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def render_config(self) -> str:
        d = self.directory
        return "\n".join(
            [
                "version = 2",
                f"root = {_toml_string(str(d / 'root'))}",
                f"state = {_toml_string(str(d / 'state'))}",
                f"temp = {_toml_string(str(d / 'tmp'))}",
                'plugin_dir = ""',
                "disabled_plugins = [" + ", ".join(_toml_string(p) for p in DISABLED_PLUGINS) + "]",
                "",
                # Sockets owned by whoever runs the tests: containerd chowns them to uid/gid 0
                # by default, which a non-root user (a CI runner) may not do.
                "[grpc]",
                f"  address = {_toml_string(self.address)}",
                f"  uid = {os.getuid()}",
                f"  gid = {os.getgid()}",
                "",
                "[ttrpc]",
                f"  address = {_toml_string(self.address + '.ttrpc')}",
                f"  uid = {os.getuid()}",
                f"  gid = {os.getgid()}",
                "",
                "[debug]",
                '  address = ""',
                '  level = "info"',
                "",
                "[metrics]",
                '  address = ""',
                "",
            ]
        )

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> StandaloneContainerd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> StandaloneContainerd:
        reason = which_containerd()
        if reason:
            raise RuntimeError(reason)
        self._dir = Path(tempfile.mkdtemp(prefix="kindreg-ctrd-"))
        try:
            (self._dir / "tmp").mkdir()
            self.config_path.write_text(self.render_config())
            with open(self.log_path, "wb") as log:
                self.process = subprocess.Popen(
                    ["containerd", "--config", str(self.config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a Ctrl-C in the terminal goes to pytest, not to it
                )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = ""
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"containerd exited with code {self.process.returncode} while starting\n{self.log_tail()}"
                )
            try:
                result = self.ctr("version", timeout=5)
            except subprocess.TimeoutExpired:
                last = "ctr version timed out"
            else:
                if result.returncode == 0 and "Server:" in result.stdout:
                    return
                last = (result.stderr or result.stdout).strip()
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"containerd did not answer `ctr version` on {self.address} within "
                    f"{self.start_timeout:.0f}s; last: {last}\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, RuntimeError):
            return "(no containerd log)"
        return "--- containerd log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    # -- commands -----------------------------------------------------------------------------
    def ctr(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ctr", "--address", self.address, "--namespace", NAMESPACE, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout or self.pull_timeout,
        )

    def fetch(self, reference: str, hosts_dir: str | Path, user: str | None = None) -> subprocess.CompletedProcess[str]:
        """``ctr content fetch --hosts-dir DIR [--user u:p] REF``; check the result yourself.

        The registry side of a pull (hosts.toml lookup, TLS, client certificate, auth) and the
        download of every blob, without unpacking layers: that needs mount privileges, which a
        non-root CI user does not have.

        ``--user`` answers the challenge of whatever host is contacted, as kubelet-supplied
        CRI credentials do for a hosts.toml mirror (they carry no server address).
        """
        args = ["content", "fetch", "--hosts-dir", str(hosts_dir)]
        if user is not None:
            args += ["--user", user]
        return self.ctr(*args, reference)
