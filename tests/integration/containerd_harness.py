"""A throw-away containerd of the test's own, for checking node files with the real resolver.

``StandaloneContainerd`` starts the host's ``containerd`` binary (or one from ``bin_dir``) with its
own root, state dir, sockets and a minimal config (no CRI, no runtimes, only the native
snapshotter), so it starts in milliseconds next to any other containerd (Docker's, the system's)
without touching them. ``fetch`` runs ``ctr content fetch --hosts-dir`` against it: the same
``ConfigureHosts`` code that reads ``/etc/containerd/certs.d/<host>/hosts.toml`` for the CRI plugin
on a kind node.

Real inputs for config tests, fetched once into ``~/.cache/pytest-kindreg-test`` (never
committed, never installed over the host's containerd):

* ``debian_containerd(suite)``: Debian's containerd of ``trixie`` (1.7) or ``sid`` (2.x), by
  ``apt-get download`` and ``dpkg-deb -x``;
* ``kind_base_config()``: the ``/etc/containerd/config.toml`` of kind's node images, from the Go
  module of kind.

``python -m tests.integration.containerd_harness fetch`` fetches both (``scripts/setup.sh`` runs it).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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


class Unavailable(RuntimeError):
    """A real input (binary, upstream file) could not be found or fetched; says why."""


# -- TOML for the test's own configs (tomllib only reads) ----------------------------------------
def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {type(value).__name__}")


def toml_dumps(doc: Mapping[str, Any], path: tuple[str, ...] = ()) -> str:
    """TOML text for ``doc``: scalars and lists inline, every nested table as a ``[a."b".c]`` table."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    text = "\n".join(lines) + ("\n" if lines else "")
    for key, value in doc.items():
        if isinstance(value, dict):
            sub = (*path, key)
            text += f"\n[{'.'.join(_toml_key(k) for k in sub)}]\n" + toml_dumps(value, sub)
    return text


def deep_merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``patch`` over ``base``, table by table: how kind applies containerdConfigPatches."""
    merged = dict(base)
    for key, value in patch.items():
        old = merged.get(key)
        merged[key] = deep_merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return merged


# -- real inputs, fetched once -------------------------------------------------------------------
def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pytest-kindreg-test"


DEBIAN_SUITES = ("trixie", "sid")  # containerd 1.7.x and 2.x
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def _run(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=600, **kwargs)


def _apt_download(suite: str, into: Path) -> None:
    """``apt-get download containerd/<suite>`` into ``into``: with the system's apt sources, else
    with private ones (deb.debian.org, Debian's keyring) kept in the cache, for machines whose apt
    does not know the suite (a stable Debian, Ubuntu)."""
    system = _run(["apt-get", "download", f"containerd/{suite}"], cwd=into)
    if system.returncode == 0:
        return
    if shutil.which("apt-get") is None:
        raise Unavailable("apt-get not found: Debian's containerd packages are fetched with it")
    if not os.path.exists(DEBIAN_KEYRING):
        raise Unavailable(f"apt does not know Debian {suite} and {DEBIAN_KEYRING} is missing (debian-archive-keyring)")
    apt = cache_dir() / "apt"
    (apt / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (apt / "sources.list.d").mkdir(exist_ok=True)
    sources = apt / "sources.list"
    sources.write_text(
        "".join(f"deb [signed-by={DEBIAN_KEYRING}] http://deb.debian.org/debian {s} main\n" for s in DEBIAN_SUITES)
    )
    options = [
        *("-o", f"Dir::Etc::SourceList={sources}"),
        *("-o", f"Dir::Etc::SourceParts={apt / 'sources.list.d'}"),
        *("-o", f"Dir::State::Lists={apt / 'lists'}"),
        *("-o", f"Dir::Cache={apt / 'cache'}"),
        *("-o", "Debug::NoLocking=true"),
    ]
    update = _run(["apt-get", *options, "update"])
    private = _run(["apt-get", *options, "download", f"containerd/{suite}"], cwd=into)
    if private.returncode != 0:
        raise Unavailable(
            f"apt-get download containerd/{suite} failed with the system's sources "
            f"({system.stderr.strip()[-200:]}) and with deb.debian.org "
            f"({(private.stderr or update.stderr).strip()[-200:]})"
        )


def debian_containerd(suite: str) -> Path:
    """The ``usr/bin`` (containerd, ctr) of Debian ``suite``'s containerd package, unpacked into
    ``<cache>/containerd/<package version>``; fetched on first use, then read from the cache."""
    root = cache_dir() / "containerd"
    marker = root / f"{suite}.version"
    if marker.is_file():
        bin_dir = root / marker.read_text().strip() / "usr" / "bin"
        if (bin_dir / "containerd").is_file() and (bin_dir / "ctr").is_file():
            return bin_dir
    if shutil.which("dpkg-deb") is None:
        raise Unavailable("dpkg-deb not found: Debian's containerd packages are unpacked with it")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="download-", dir=root) as tmp:
        _apt_download(suite, Path(tmp))
        debs = list(Path(tmp).glob("containerd_*.deb"))
        if len(debs) != 1:
            raise Unavailable(f"apt-get download containerd/{suite} gave {debs}")
        version = _run(["dpkg-deb", "-f", str(debs[0]), "Version"]).stdout.strip()
        unpacked = Path(tmp) / "unpacked"
        extract = _run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)])
        if extract.returncode != 0 or not version:
            raise Unavailable(f"dpkg-deb could not unpack {debs[0].name}: {extract.stderr.strip()[-200:]}")
        # Renamed into place: a concurrent fetch of the same version finds it whole or not at all.
        with contextlib.suppress(OSError):
            unpacked.rename(root / version)
        partial = root / f".{suite}.version.{os.getpid()}"
        partial.write_text(version + "\n")
        partial.replace(marker)
    return debian_containerd(suite)


KIND_MODULE = "sigs.k8s.io/kind"
KIND_VERSION = "v0.27.0"  # the first kind with containerd 2.x node images; the base config is still version 2
KIND_MIRRORS_VERSION = "v0.17.0"  # the last kind whose node config sets registry.mirrors
KIND_LATEST_VERSION = "v0.33.0"  # the lab's newest kind (tests/integration/test_kind_containerd_patches.py)
KIND_CONFIG_IN_MODULE = "images/base/files/etc/containerd/config.toml"


def _module_caches() -> list[Path]:
    caches = [os.environ.get("GOMODCACHE", "")]
    if shutil.which("go"):
        caches.append(_run(["go", "env", "GOMODCACHE"]).stdout.strip())
    caches += [os.path.join(p, "pkg", "mod") for p in os.environ.get("GOPATH", "").split(os.pathsep) if p]
    caches.append(str(Path.home() / "go" / "pkg" / "mod"))
    return [Path(c) for c in caches if c]


def kind_base_config(version: str = KIND_VERSION) -> str:
    """kind's ``images/base/files/etc/containerd/config.toml`` at ``version``: from the Go module
    cache, else ``go mod download``, else the module zip from the Go module proxy (cached)."""
    for cache in _module_caches():
        path = cache / f"{KIND_MODULE}@{version}" / KIND_CONFIG_IN_MODULE
        if path.is_file():
            return path.read_text()
    copy = cache_dir() / "kind" / version / "config.toml"
    if copy.is_file():
        return copy.read_text()
    reasons = []
    if shutil.which("go"):
        with tempfile.TemporaryDirectory() as tmp:
            result = _run(["go", "mod", "download", "-json", f"{KIND_MODULE}@{version}"], cwd=tmp)
        try:
            return (Path(json.loads(result.stdout)["Dir"]) / KIND_CONFIG_IN_MODULE).read_text()
        except (ValueError, KeyError, OSError):
            reasons.append(f"go mod download: {(result.stderr or result.stdout).strip()[-200:]}")
    else:
        reasons.append("no go binary")
    proxy = next(
        (p for p in os.environ.get("GOPROXY", "").split(",") if p.startswith("http")), "https://proxy.golang.org"
    )
    url = f"{proxy.rstrip('/')}/{KIND_MODULE}/@v/{version}.zip"
    try:
        with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310 - a fixed https URL
            archive = zipfile.ZipFile(io.BytesIO(response.read()))
        text = archive.read(f"{KIND_MODULE}@{version}/{KIND_CONFIG_IN_MODULE}").decode()
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        reasons.append(f"{url}: {exc}")
        raise Unavailable(
            f"kind {version}'s {KIND_CONFIG_IN_MODULE} is in no Go module cache and could not be "
            f"downloaded ({'; '.join(reasons)})"
        ) from None
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(text)
    return text


class StandaloneContainerd:
    """``with StandaloneContainerd() as ctrd: ctrd.fetch(ref, hosts_dir, user="u:p")``."""

    def __init__(
        self,
        *,
        bin_dir: Path | None = None,
        base_config: Mapping[str, Any] | None = None,
        enabled_plugins: Sequence[str] = (),
        start_timeout: float = 20.0,
        pull_timeout: float = 120.0,
    ) -> None:
        """``bin_dir``: where containerd and ctr are (default: PATH). ``base_config``: a config the
        instance's own settings (paths, sockets, disabled plugins) are merged over, e.g. a kind
        node's. ``enabled_plugins``: plugins to keep that are disabled by default (the CRI)."""
        self.containerd = str(bin_dir / "containerd") if bin_dir else "containerd"
        self.ctr_bin = str(bin_dir / "ctr") if bin_dir else "ctr"
        self.bin_dir = bin_dir
        self.base_config = base_config or {}
        self.enabled_plugins = tuple(enabled_plugins)
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
        own: dict[str, Any] = {
            "version": 2,
            "root": str(d / "root"),
            "state": str(d / "state"),
            "temp": str(d / "tmp"),
            "plugin_dir": "",
            "disabled_plugins": [p for p in DISABLED_PLUGINS if p not in self.enabled_plugins],
            # Sockets owned by whoever runs the tests: containerd chowns them to uid/gid 0
            # by default, which a non-root user (a CI runner) may not do.
            "grpc": {"address": self.address, "uid": os.getuid(), "gid": os.getgid()},
            "ttrpc": {"address": self.address + ".ttrpc", "uid": os.getuid(), "gid": os.getgid()},
            "debug": {"address": "", "level": "info"},
            "metrics": {"address": ""},
        }
        return toml_dumps(deep_merge(self.base_config, own))

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> StandaloneContainerd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> StandaloneContainerd:
        reason = which_containerd() if self.bin_dir is None else None
        if reason:
            raise RuntimeError(reason)
        self._dir = Path(tempfile.mkdtemp(prefix="kindreg-ctrd-"))
        try:
            (self._dir / "tmp").mkdir()
            self.config_path.write_text(self.render_config())
            with open(self.log_path, "wb") as log:
                self.process = subprocess.Popen(
                    [self.containerd, "--config", str(self.config_path)],
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
            [self.ctr_bin, "--address", self.address, "--namespace", NAMESPACE, *args],
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


def main(argv: Sequence[str]) -> int:
    """``fetch``: put every real input in the cache now (setup.sh), so tests need no network."""
    if list(argv) != ["fetch"]:
        print("usage: python -m tests.integration.containerd_harness fetch", file=sys.stderr)
        return 2
    try:
        for suite in DEBIAN_SUITES:
            print(f"containerd ({suite}): {debian_containerd(suite)}")
        for version in (KIND_VERSION, KIND_MIRRORS_VERSION, KIND_LATEST_VERSION):
            kind_base_config(version)
            print(f"kind {version} node containerd config: found")
    except Unavailable as exc:
        print(f"containerd_harness: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
