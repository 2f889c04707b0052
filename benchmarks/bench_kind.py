#!/usr/bin/env python
"""Benchmark: what pytest-kindreg's kind cluster and its strategies cost, step by step.

Needs ``kind`` (``--kind-bin``, else ``$KIND``, else on PATH) and a Docker engine; without either
it prints ``skipped: ...`` and exits 0. Each repetition, timed with ``time.perf_counter``:

1. cold creation of one cluster without strategies, side by side (the order alternates between
   repetitions): the plugin's ``KindCluster(name).create(KindClusterConfig(name=...))``
   (``kind create cluster --wait``, then until healthy), a bare ``kind create cluster --image IMG
   --wait 600s``, timed alone and until the same health check passes, and pytest-kind's
   ``KindCluster`` (``pytest_kind``) when it is importable and can be pointed at the same kind
   binary (it is never downloaded); each is deleted after, timed;
2. a cold session: ``KindRegistryEnvironment`` with every strategy the node image's Kubernetes
   supports (all seven from 1.34; workload_identity needs 1.34), as a run that keeps
   nothing: ``start()`` (registries, cluster with the strategies' contributions, wiring, node
   preparation, broken down into those parts), then per strategy
   ``ws = env.workspace(name); ws.setup(); ref = ws.push(image); ws.run_pod(ref);
   ws.negative_control(image); ws.teardown()``, then ``close()`` (registries stopped, cluster
   deleted); then the same cold session with the registries in token mode (``registry_auth=
   "token"``: token auth, the token service, read-only cluster identities), beside it;
3. a warm rerun: a cluster is prepared and kept by an environment of the same strategies
   (untimed), then a second ``KindRegistryEnvironment(reuse_cluster=True)`` is timed:
   ``start()`` + the same strategies + ``close()`` (cluster kept); then the kept cluster is
   deleted;
4. unless ``--no-pytest-session``: a real pytest session, ``pytest examples/test_all_strategies.py
   --kindreg-strict`` in a child process (wall clock, interpreter start included), and
   ``pytest --collect-only`` of the same file for the part that is only interpreter and plugin
   start-up.

It prints the median of every step over ``--repeat`` repetitions and the verdicts against the
goals (issue 13), as ratios to one plain ``KindCluster.create()`` timed in the same run (absolute
seconds differ by half between machines): the cold session at most 2.0 times one
creation, the warm rerun's ``start()`` + ``close()`` at most 0.2 times. Usage::

    python benchmarks/bench_kind.py --repeat 3 --kind-bin "$(command -v kind)" --node-image kindest/node:<version>

It is a report, not a test: exit 0 when every step ran (or when skipped), 1 if a step failed or
the benchmark could not run, 130 on Ctrl-C or SIGTERM. Every cluster it created is deleted on the
way out, also after an exception or an interruption. It pulls nothing: the images it needs must
be local (kind itself pulls its default node image if that is missing; the script says so).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import importlib.metadata
import inspect
import logging
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from pytest_kindreg import runner
from pytest_kindreg.cluster import KindCluster, find_kind
from pytest_kindreg.docker_engine import docker_available, docker_client
from pytest_kindreg.environment import KindRegistryEnvironment, default_state_dir
from pytest_kindreg.errors import KindUnavailableError, first_line
from pytest_kindreg.kind_config import KindClusterConfig
from pytest_kindreg.registry import PrivateRegistry
from pytest_kindreg.strategies import STRATEGY_NAMES

DEFAULT_IMAGE = "kindreg-test/busybox:1.0"
DEFAULT_REGISTRY_IMAGE = "registry:2"
BUILD_HINT = "build it with pytest_kindreg/data/build-images.sh (this benchmark never pulls)"
# Temp dirs of this script must not look like a pytest-kindreg run's (``kindreg-<run>-...``),
# or another run's reaper could take them for a dead run's leftovers.
TMP_PREFIX = "bench-kind-"
REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "test_all_strategies.py"
KIND_WAIT = "600s"

# Goals of issue 13 (item 4), as ratios to one plain KindCluster.create() of the same run.
SESSION_RATIO_GOAL = 2.0  # the cold 5-strategy session (start + strategies + close, with deletion)
WARM_RATIO_GOAL = 0.2  # what a warm rerun adds to its tests: start() + close()

# A row of the table: (section, label). Labels that start with "  of which" are the top-level
# parts of the row above them; "    of which" are parts of a part.
Row = tuple[str, str]

COLD = "cold creation: one cluster, no strategy, same node image"
SESSION = "cold session: KindRegistryEnvironment, every strategy, nothing kept (close() deletes the cluster)"
TOKEN = "cold session in token mode: the same, registry_auth='token' (token service, read-only cluster identity)"
WARM = "warm rerun: KindRegistryEnvironment(reuse_cluster=True) on the kept cluster"
PYTEST = "pytest session: examples/test_all_strategies.py in a child process, wall clock"

PLAIN_CREATE: Row = (COLD, "plugin: KindCluster.create() (no contributions)")
PLAIN_KIND: Row = (COLD, f"  of which `kind create cluster --config - --wait {KIND_WAIT}`")
PLAIN_HEALTHY: Row = (COLD, "  of which until healthy (/readyz, nodes Ready, default SA)")
PLAIN_REST: Row = (COLD, "  of which the rest (node image check, fingerprint, node list)")
PLAIN_DELETE: Row = (COLD, "plugin: KindCluster.delete()")
BARE_CREATE: Row = (COLD, f"bare kind: `kind create cluster --image IMG --wait {KIND_WAIT}`")
BARE_READY: Row = (COLD, "bare kind: the same + until healthy (the plugin's check)")
BARE_DELETE: Row = (COLD, "bare kind: `kind delete cluster`")
PEER_CREATE: Row = (COLD, "pytest-kind: KindCluster.create()")
PEER_READY: Row = (COLD, "pytest-kind: create() + until healthy (same check)")
PEER_DELETE: Row = (COLD, "pytest-kind: KindCluster.delete()")

PYTEST_COLLECT: Row = (PYTEST, "pytest --collect-only (interpreter, plugin start-up; no cluster)")
PYTEST_RUN: Row = (PYTEST, "pytest examples/test_all_strategies.py --kindreg-strict (one per strategy)")

PHASES = ("setup", "push", "run_pod", "negative_control", "teardown")


def start_row(section: str) -> Row:
    return (section, "start()")


def registry_row(section: str, name: str) -> Row:
    return (section, f"  of which registry start: {name}")


def adopt_row(section: str) -> Row:
    return (section, "  of which KindCluster.adopt (kubeconfig, health; beside the registry starts)")


def cluster_row(section: str) -> Row:
    if section == WARM:
        return (section, "  of which KindCluster.reuse (the recorded config)")
    return (section, "  of which KindCluster.create (with contributions)")


def kind_create_row(section: str) -> Row:
    return (section, f"    of which `kind create cluster --config - --wait {KIND_WAIT}`")


def healthy_row(section: str) -> Row:
    return (section, "    of which until the nodes are usable")


def final_wait_row(section: str) -> Row:
    return (section, "  of which the wait for the default ServiceAccount (after wiring)")


def wire_row(section: str) -> Row:
    return (section, "  of which wiring (networks, hosts.toml, KEP-1755)")


def prepare_row(section: str, name: str) -> Row:
    return (section, f"  of which prepare_nodes: {name}")


def restart_row(section: str) -> Row:
    return (section, "    of which kubelet restarts (all prepare_nodes)")


def start_rest_row(section: str) -> Row:
    return (section, "  of which the rest")


def phase_row(section: str, phase: str) -> Row:
    return (section, f"strategies: {phase}(), summed")


def strategy_row(section: str, name: str) -> Row:
    return (section, f"strategy {name}: setup..teardown")


def strategies_row(section: str) -> Row:
    return (section, "strategies: total")


def close_row(section: str) -> Row:
    return (section, "close() (cluster kept)" if section == WARM else "close() (registries stopped, cluster deleted)")


def stops_row(section: str) -> Row:
    return (section, "  of which registry stops")


def delete_row(section: str) -> Row:
    return (section, "  of which KindCluster.delete()")


def total_row(section: str) -> Row:
    return (section, "total: start + strategies + close")


class BenchError(Exception):
    """The benchmark could not do what it measures (not a slow result: a broken one)."""


@dataclass
class Samples:
    """Seconds per row, in the order rows were first seen, and what failed."""

    values: dict[Row, list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    counts: dict[str, list[int]] = field(default_factory=dict)

    def add(self, row: Row, seconds: float) -> None:
        self.values.setdefault(row, []).append(seconds)

    @contextlib.contextmanager
    def timed(self, row: Row) -> Iterator[None]:
        started = time.perf_counter()
        yield  # not in a finally: a step that raised records nothing
        self.add(row, time.perf_counter() - started)

    def median(self, row: Row) -> float | None:
        found = self.values.get(row)
        return statistics.median(found) if found else None

    def fail(self, repetition: int, what: str, exc: BaseException) -> None:
        line = first_line(exc, 300)
        self.failures.append(f"repetition {repetition}: {what} failed: {type(exc).__name__}: {line}")
        print(f"    FAILED {what}: {type(exc).__name__}: {line}", flush=True)


@dataclass
class Peer:
    """pytest-kind's ``KindCluster``, or why it cannot be compared."""

    cls: Any = None
    version: str = ""
    reason: str = ""


def missing_requirements(kind_bin: str | None) -> list[str]:
    """The ``skipped: ...`` lines: empty when kind and a Docker engine are both there."""
    reasons: list[str] = []
    try:
        find_kind(kind_bin)
    except KindUnavailableError:
        where = kind_bin or os.environ.get("KIND")
        if where:
            reasons.append(f"skipped: kind not found at {where!r} (install kind to run this benchmark)")
        else:
            reasons.append("skipped: kind not found on PATH (install kind to run this benchmark)")
    if not shutil.which("docker"):
        reasons.append("skipped: docker not found on PATH (install Docker to run this benchmark)")
    else:
        problem = docker_available()
        if problem:
            reasons.append(f"skipped: Docker not available (start a Docker engine to run this benchmark): {problem}")
    return reasons


def find_peer(node_image: str | None) -> Peer:
    """pytest-kind's cluster class, if it can run here without downloading anything."""
    try:
        module = importlib.import_module("pytest_kind")
    except ImportError as exc:
        return Peer(reason=f"pytest_kind is not importable ({exc}); `pip install pytest-kind` to compare")
    cls = getattr(module, "KindCluster", None)
    if cls is None:
        return Peer(reason="pytest_kind has no KindCluster")
    params = inspect.signature(cls).parameters
    if "kind_path" not in params or "kubeconfig" not in params:
        return Peer(
            reason="this pytest_kind.KindCluster takes no kind_path/kubeconfig: it would download its own "
            "kind binary (and use kind's default kubeconfig), which this benchmark never does"
        )
    if node_image and "image" not in params:
        return Peer(reason=f"this pytest_kind.KindCluster takes no image, so it cannot use --node-image {node_image}")
    dists = importlib.metadata.packages_distributions().get("pytest_kind") or ["pytest-kind"]
    try:
        version = f"{dists[0]} {importlib.metadata.version(dists[0])}"
    except importlib.metadata.PackageNotFoundError:
        version = "pytest_kind (version unknown)"
    return Peer(cls=cls, version=version)


class Instruments:
    """Wraps methods to add the time spent in them to ``parts`` (and count calls); every wrapper
    is undone by :meth:`undo`. Only used while one cluster operation runs, never concurrently."""

    def __init__(self) -> None:
        self.parts: dict[Row, float] = {}
        self.calls: dict[Row, int] = {}
        self._undo: list[Callable[[], None]] = []

    def wrap(self, owner: Any, attr: str, row_for: Callable[[tuple[Any, ...], dict[str, Any]], Row | None]) -> None:
        """Time ``owner.attr`` (a class: every instance; an object: that one) into the row
        ``row_for(args, kwargs)`` returns; a call for which it returns None is not timed."""
        original: Callable[..., Any] = getattr(owner, attr)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            row = row_for(args, kwargs)
            if row is None:
                return original(*args, **kwargs)
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.parts[row] = self.parts.get(row, 0.0) + time.perf_counter() - started
                self.calls[row] = self.calls.get(row, 0) + 1

        setattr(owner, attr, wrapper)
        if isinstance(owner, type):
            self._undo.append(lambda: setattr(owner, attr, original))
        else:
            self._undo.append(lambda: delattr(owner, attr))

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()


def _constant(row: Row) -> Callable[[tuple[Any, ...], dict[str, Any]], Row]:
    return lambda _args, _kwargs: row


def _is_kind_create(args: tuple[Any, ...]) -> bool:
    """``KindCluster.kind(self, "create", "cluster", ...)``."""
    return len(args) > 2 and args[1] == "create" and args[2] == "cluster"


@contextlib.contextmanager
def plain_breakdown() -> Iterator[Instruments]:
    """Time the parts of a plain ``KindCluster.create``: the kind CLI, the health wait."""
    instruments = Instruments()
    instruments.wrap(KindCluster, "kind", lambda args, _kw: PLAIN_KIND if _is_kind_create(args) else None)
    instruments.wrap(KindCluster, "wait_healthy", lambda _args, _kw: PLAIN_HEALTHY)
    try:
        yield instruments
    finally:
        instruments.undo()


@contextlib.contextmanager
def start_breakdown(env: KindRegistryEnvironment, section: str) -> Iterator[Instruments]:
    """Time the parts of ``env.start()``: per-strategy registry start and node preparation
    (kubelet restarts within), cluster creation or reuse with their own parts, wiring."""
    instruments = Instruments()
    instruments.wrap(
        PrivateRegistry, "start", lambda args, _kw: registry_row(section, str(args[0].role).removeprefix("reg-"))
    )
    instruments.wrap(KindCluster, "create", lambda _args, _kw: cluster_row(section))
    instruments.wrap(KindCluster, "reuse", lambda _args, _kw: cluster_row(section))
    instruments.wrap(KindCluster, "adopt", lambda _args, _kw: adopt_row(section))
    instruments.wrap(KindCluster, "kind", lambda args, _kw: kind_create_row(section) if _is_kind_create(args) else None)
    instruments.wrap(
        KindCluster,
        "wait_healthy",
        lambda _args, kw: healthy_row(section) if kw.get("service_account") is False else final_wait_row(section),
    )
    instruments.wrap(KindCluster, "restart_kubelet", lambda _args, _kw: restart_row(section))
    instruments.wrap(env, "_wire", lambda _args, _kw: wire_row(section))
    for name, strategy in env.strategies.items():
        instruments.wrap(strategy, "prepare_nodes", _constant(prepare_row(section, name)))
    try:
        yield instruments
    finally:
        instruments.undo()


@contextlib.contextmanager
def close_breakdown(section: str) -> Iterator[Instruments]:
    instruments = Instruments()
    instruments.wrap(PrivateRegistry, "stop", lambda _args, _kw: stops_row(section))
    instruments.wrap(KindCluster, "delete", lambda _args, _kw: delete_row(section))
    try:
        yield instruments
    finally:
        instruments.undo()


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.kind = find_kind(args.kind_bin)
        self.docker = docker_client()
        self.bench_id = secrets.token_hex(3)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{self.bench_id}-"))
        self.samples = Samples()
        self.peer = find_peer(args.node_image)
        self.clusters: set[str] = set()  # every cluster name this run may have created
        self.state_dirs: set[Path] = set()  # kept clusters' mounted files (under ~/.cache/pytest-kindreg)
        self.env: KindRegistryEnvironment | None = None
        self.local_image_ids: set[str] = set()
        self.node_image_note = ""
        self.strategy_names: tuple[str, ...] = STRATEGY_NAMES
        self.load_at_start = os.getloadavg()

    # -- before anything is timed ------------------------------------------------------------
    def preflight(self) -> None:
        from docker.errors import ImageNotFound

        needed = [(self.args.image, BUILD_HINT), (self.args.registry_image, BUILD_HINT)]
        if self.args.node_image:
            needed.append((self.args.node_image, "pull it first (`docker pull ...`); this benchmark never pulls"))
        for image, hint in needed:
            try:
                self.docker.images.get(image)
            except ImageNotFound as exc:
                raise BenchError(f"image {image!r} is not local: {hint}") from exc
        self.local_image_ids = {image.id for image in self.docker.images.list()}
        self.strategy_names = self._supported_strategies()
        if self.args.pytest_session and not EXAMPLE.is_file():
            raise BenchError(f"{EXAMPLE} is missing: run from a checkout, or pass --no-pytest-session")

    def _supported_strategies(self) -> tuple[str, ...]:
        """The strategies the node image's Kubernetes supports (workload_identity needs 1.34)."""
        from pytest_kindreg.node_image import image_kubernetes_version, kind_default_image, parse_kubernetes_version
        from pytest_kindreg.strategies import STRATEGIES

        image = self.args.node_image or kind_default_image(self.kind)
        version = image_kubernetes_version(self.docker, image) if image else None
        parsed = parse_kubernetes_version(version) if version else None
        if parsed is None:
            raise BenchError(f"cannot tell the Kubernetes version of node image {image}: pass --node-image")
        supported = []
        for name in STRATEGY_NAMES:
            minimum = STRATEGIES[name].min_kubernetes
            if minimum is None or parsed[:2] >= minimum:
                supported.append(name)
        return tuple(supported)

    def describe(self) -> str:
        kind_version = runner.run([self.kind, "version"], check=False).stdout.strip() or "?"
        engine = self.docker.version().get("Version", "?")
        load = ", ".join(f"{v:.2f}" for v in self.load_at_start)
        now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        return (
            f"{now}, {os.cpu_count()} CPUs, load average at start {load}, Python {platform.python_version()}\n"
            f"pytest-kindreg {importlib.metadata.version('pytest-kindreg')}, {kind_version} ({self.kind}), "
            f"Docker engine {engine}, node image {self.args.node_image or 'kind default'}, "
            f"registry image {self.args.registry_image}, pushed image {self.args.image}, "
            f"strategies {', '.join(self.strategy_names)}, repetitions {self.args.repeat}"
        )

    def _check_node_image(self, cluster: str) -> None:
        """Once: did the first creation pull its node image (which would inflate its time)?"""
        if self.node_image_note or not self.local_image_ids:
            return
        with contextlib.suppress(Exception):
            container = self.docker.containers.get(f"{cluster}-control-plane")
            image = container.attrs.get("Config", {}).get("Image", "?")
            if container.image.id not in self.local_image_ids:
                self.node_image_note = (
                    f"the first creation ({cluster}) included kind pulling the node image {image}: drop "
                    "repetition 1, or pull the image first"
                )
                print(f"    note: {self.node_image_note}", flush=True)
            else:
                self.node_image_note = f"node image {image} was local before the run"

    # -- cold creation -----------------------------------------------------------------------
    def plain(self, repetition: int) -> None:
        name = f"bench-kind-{self.bench_id}-plain-{repetition}"
        workdir = self.tmp / name
        self.clusters.add(name)
        cluster = KindCluster(name, kind_bin=self.kind, workdir=workdir)
        created = False
        try:
            with plain_breakdown() as instruments:
                started = time.perf_counter()
                cluster.create(KindClusterConfig(name=name, node_image=self.args.node_image))
                total = time.perf_counter() - started
            self.samples.add(PLAIN_CREATE, total)
            for row, seconds in instruments.parts.items():
                self.samples.add(row, seconds)
            self.samples.add(PLAIN_REST, total - sum(instruments.parts.values()))
            created = True
            self._check_node_image(name)
        except Exception as exc:
            self.samples.fail(repetition, "plain cluster creation", exc)
        finally:
            try:
                started = time.perf_counter()
                cluster.delete()  # deletes a half-created cluster too (created is set when create starts)
                if created:
                    self.samples.add(PLAIN_DELETE, time.perf_counter() - started)
            except Exception as exc:
                self.samples.fail(repetition, "plain cluster deletion", exc)
            shutil.rmtree(workdir, ignore_errors=True)

    def bare(self, repetition: int) -> None:
        """``kind create cluster`` as a user would type it: no config, the same node image."""
        name = f"bench-kind-{self.bench_id}-bare-{repetition}"
        workdir = self.tmp / name
        workdir.mkdir(mode=0o700)
        kubeconfig = workdir / "kubeconfig"
        self.clusters.add(name)
        argv = [self.kind, "create", "cluster", "--name", name, "--kubeconfig", str(kubeconfig), "--wait", KIND_WAIT]
        if self.args.node_image:
            argv[3:3] = ["--image", self.args.node_image]
        ready = False
        try:
            started = time.perf_counter()
            runner.run(argv, timeout=660)
            self.samples.add(BARE_CREATE, time.perf_counter() - started)
            # The plugin's health check, on the bare cluster's kubeconfig (same file name in workdir).
            self._wait_healthy(name, workdir)
            self.samples.add(BARE_READY, time.perf_counter() - started)
            ready = True
            self._check_node_image(name)
        except Exception as exc:
            self.samples.fail(repetition, "bare kind cluster creation", exc)
        finally:
            try:
                started = time.perf_counter()
                runner.run(
                    [self.kind, "delete", "cluster", "--name", name, "--kubeconfig", str(kubeconfig)], timeout=300
                )
                if ready:
                    self.samples.add(BARE_DELETE, time.perf_counter() - started)
            except Exception as exc:
                self.samples.fail(repetition, "bare kind cluster deletion", exc)
            shutil.rmtree(workdir, ignore_errors=True)

    def _wait_healthy(self, name: str, workdir: Path) -> None:
        """The plugin's own health check on a cluster someone else created (its kubeconfig in workdir)."""
        probe = KindCluster(name, kind_bin=self.kind, workdir=workdir)  # created=False: never deletes
        try:
            probe.wait_healthy()
        finally:
            probe.delete()

    def peer_create(self, repetition: int) -> None:
        if self.peer.cls is None:
            return
        name = f"bench-kind-{self.bench_id}-peer-{repetition}"
        workdir = self.tmp / name
        workdir.mkdir(mode=0o700)
        self.clusters.add(name)
        # pytest-kind keeps its files in ./.pytest-kind/<name>: run it from inside our temp dir.
        previous_cwd = Path.cwd()
        os.chdir(self.tmp)
        cluster: Any = None
        ready = False
        try:
            kwargs: dict[str, Any] = {"kind_path": Path(self.kind), "kubeconfig": workdir / "kubeconfig"}
            if self.args.node_image:
                kwargs["image"] = self.args.node_image
            cluster = self.peer.cls(name, **kwargs)
            started = time.perf_counter()
            cluster.create()
            self.samples.add(PEER_CREATE, time.perf_counter() - started)
            # pytest-kind returns without waiting for the cluster; ours waits (kind --wait, then
            # /readyz, nodes Ready, default ServiceAccount). Apply the same check, on its kubeconfig.
            self._wait_healthy(name, workdir)
            self.samples.add(PEER_READY, time.perf_counter() - started)
            ready = True
            self._check_node_image(name)
        except Exception as exc:
            self.samples.fail(repetition, "pytest-kind cluster creation", exc)
        finally:
            try:
                if cluster is not None:
                    started = time.perf_counter()
                    cluster.delete()
                    if ready:
                        self.samples.add(PEER_DELETE, time.perf_counter() - started)
            except Exception as exc:
                self.samples.fail(repetition, "pytest-kind cluster deletion", exc)
            finally:
                os.chdir(previous_cwd)

    # -- sessions ----------------------------------------------------------------------------
    def sessions(self, repetition: int) -> None:
        """The cold session (nothing kept), then the warm rerun on a cluster kept for it."""
        cold_name = f"bench-kind-{self.bench_id}-cold-{repetition}"
        self.clusters.add(cold_name)
        print(f"  cold session ({len(self.strategy_names)} strategies, nothing kept)", flush=True)
        cold = self.session(repetition, SESSION, cold_name, keep=False, reuse=False)
        if cold is not None:
            self.samples.add(total_row(SESSION), cold)
        token_name = f"bench-kind-{self.bench_id}-token-{repetition}"
        self.clusters.add(token_name)
        print("  cold session in token mode (the same, registry_auth='token')", flush=True)
        token = self.session(repetition, TOKEN, token_name, keep=False, reuse=False, registry_auth="token")
        if token is not None:
            self.samples.add(total_row(TOKEN), token)
        name = f"bench-kind-{self.bench_id}-env-{repetition}"
        self.clusters.add(name)
        self.state_dirs.add(default_state_dir() / name)
        try:
            print("  a kept cluster for the warm rerun (untimed)", flush=True)
            if self.prepare_kept(repetition, name):
                print("  warm rerun (reuse_cluster=True)", flush=True)
                warm = self.session(repetition, WARM, name, keep=True, reuse=True)
                if warm is not None:
                    self.samples.add(total_row(WARM), warm)
        finally:
            self.delete_kept(repetition, name)

    def _environment(
        self, name: str, *, keep: bool, reuse: bool, registry_auth: str = "htpasswd"
    ) -> KindRegistryEnvironment:
        return KindRegistryEnvironment(
            self.strategy_names,
            registry_auth=registry_auth,
            cluster_name=name,
            node_image=self.args.node_image,
            kind_bin=self.kind,
            registry_image=self.args.registry_image,
            keep_cluster=keep,
            reuse_cluster=reuse,
        )

    def prepare_kept(self, repetition: int, name: str) -> bool:
        """A cluster made and kept by an environment of the same strategies, as a first run with
        ``--kindreg-keep-cluster`` leaves it."""
        env = self.env = self._environment(name, keep=True, reuse=False)
        try:
            env.start()
            return True
        except Exception as exc:
            self.samples.fail(repetition, "the kept cluster for the warm rerun", exc)
            return False
        finally:
            self.env = None
            env.close()

    def session(
        self, repetition: int, section: str, name: str, *, keep: bool, reuse: bool, registry_auth: str = "htpasswd"
    ) -> float | None:
        """start() + the strategies + close() of one environment; their total in seconds,
        or None if any of it failed."""
        env = self._environment(name, keep=keep, reuse=reuse, registry_auth=registry_auth)
        self.env = env
        try:
            with start_breakdown(env, section) as instruments:
                started = time.perf_counter()
                env.start()
                start = time.perf_counter() - started
        except Exception as exc:
            self.samples.fail(repetition, f"{section.split(':')[0]}: start()", exc)
            self._close_env(repetition, section)
            return None
        # Only a start that succeeded counts, with all its parts.
        self.samples.add(start_row(section), start)
        for row, seconds in instruments.parts.items():
            self.samples.add(row, seconds)
        top_level = sum(seconds for (_, label), seconds in instruments.parts.items() if label.startswith("  of "))
        self.samples.add(start_rest_row(section), start - top_level)
        restarts = sum(n for row, n in instruments.calls.items() if row == restart_row(section))
        self.samples.counts.setdefault(section, []).append(restarts)
        try:
            strategies = self.strategies(repetition, env, section)
        finally:
            close = self._close_env(repetition, section)
        if strategies is None or close is None:
            return None
        return start + strategies + close

    def strategies(self, repetition: int, env: KindRegistryEnvironment, section: str) -> float | None:
        """Each strategy's push/pull cycle and negative control; their total, None if one failed."""
        sums = dict.fromkeys(PHASES, 0.0)
        complete = True
        for name in env.strategy_names:
            print(f"    strategy {name}", flush=True)
            ws = env.workspace(name, test_name=f"bench-{name}")
            phases: dict[str, float] = {}

            @contextlib.contextmanager
            def timed(phase: str, phases: dict[str, float] = phases) -> Iterator[None]:
                started = time.perf_counter()
                yield
                phases[phase] = time.perf_counter() - started

            try:
                with timed("setup"):
                    ws.setup()
                with timed("push"):
                    ref = ws.push(self.args.image)
                with timed("run_pod"):
                    ws.run_pod(ref)
                with timed("negative_control"):
                    ws.negative_control(self.args.image)
            except Exception as exc:
                self.samples.fail(repetition, f"strategy {name}", exc)
            finally:
                try:
                    with timed("teardown"):
                        ws.teardown()
                except Exception as exc:
                    self.samples.fail(repetition, f"strategy {name} teardown", exc)
            if set(phases) != set(PHASES):
                complete = False
                continue
            self.samples.add(strategy_row(section, name), sum(phases.values()))
            for phase, seconds in phases.items():
                sums[phase] += seconds
        if not complete:
            return None
        for phase, seconds in sums.items():
            self.samples.add(phase_row(section, phase), seconds)
        total = sum(sums.values())
        self.samples.add(strategies_row(section), total)
        return total

    def _close_env(self, repetition: int, section: str) -> float | None:
        env, self.env = self.env, None
        if env is None:
            return None
        try:
            with close_breakdown(section) as instruments:
                started = time.perf_counter()
                env.close()
                seconds = time.perf_counter() - started
        except Exception as exc:
            self.samples.fail(repetition, f"{section.split(':')[0]}: close()", exc)
            return None
        self.samples.add(close_row(section), seconds)
        for row, part in instruments.parts.items():
            self.samples.add(row, part)
        return seconds

    def delete_kept(self, repetition: int, name: str) -> None:
        """Delete the cluster kept for the warm rerun (untimed)."""
        state_dir = default_state_dir() / name
        try:
            if name in runner.run([self.kind, "get", "clusters"], check=False).stdout.split():
                cluster = KindCluster(name, kind_bin=self.kind, workdir=state_dir)
                cluster.created = True
                cluster.delete()
        except Exception as exc:
            self.samples.fail(repetition, "kept cluster deletion", exc)
        finally:
            shutil.rmtree(state_dir, ignore_errors=True)

    # -- a real pytest session ---------------------------------------------------------------
    def pytest_session(self, repetition: int) -> None:
        name = f"bench-kind-{self.bench_id}-pytest-{repetition}"
        self.clusters.add(name)
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--kindreg-strict",
            # The plain one-node cluster the other steps use, not this project's 2-node kind config.
            "-o",
            "kindreg_kind_config=",
            f"--kindreg-kind-bin={self.kind}",
            f"--kindreg-cluster-name={name}",
            f"--kindreg-registry-image={self.args.registry_image}",
            f"--kindreg-test-image={self.args.image}",
        ]
        if self.args.node_image:
            argv.append(f"--kindreg-node-image={self.args.node_image}")
        argv += [f"--kindreg-exclude-strategy={name}" for name in STRATEGY_NAMES if name not in self.strategy_names]
        argv.append(str(EXAMPLE.relative_to(REPO)))
        count = len(self.strategy_names)
        for row, extra, expect in (
            (PYTEST_COLLECT, ["--collect-only"], f"{count}(/{len(STRATEGY_NAMES)})? tests collected"),
            (PYTEST_RUN, [], f"{count} passed"),
        ):
            started = time.perf_counter()
            try:
                done = subprocess.run(
                    [*argv[:4], *extra, *argv[4:]], cwd=REPO, capture_output=True, text=True, timeout=1200, check=False
                )
            except subprocess.TimeoutExpired as exc:
                self.samples.fail(repetition, f"pytest {' '.join(extra)}", exc)
                return
            seconds = time.perf_counter() - started
            summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
            if done.returncode != 0 or not re.search(rf"\b{expect}\b", summary):
                tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
                self.samples.failures.append(
                    f"repetition {repetition}: pytest {' '.join(extra)} exited {done.returncode}: {summary}"
                )
                print(f"    FAILED pytest {' '.join(extra)} (exit {done.returncode}):\n{tail}", flush=True)
                return
            self.samples.add(row, seconds)

    def run(self) -> None:
        for repetition in range(1, self.args.repeat + 1):
            print(f"repetition {repetition}/{self.args.repeat}", flush=True)
            steps: list[tuple[str, Callable[[int], None]]] = [
                ("plugin: plain cluster", self.plain),
                ("bare kind create cluster", self.bare),
            ]
            if self.peer.cls is not None:
                steps.append(("pytest-kind cluster", self.peer_create))
            if repetition % 2 == 0:  # A B, B A, ...: drift falls on both
                steps.reverse()
            steps.append(("sessions", self.sessions))
            if self.args.pytest_session:
                steps.append(("pytest session (examples/test_all_strategies.py)", self.pytest_session))
            for label, step in steps:
                if label != "sessions":
                    print(f"  {label}", flush=True)
                step(repetition)

    # -- clean-up ----------------------------------------------------------------------------
    def cleanup(self) -> list[str]:
        """Close the environment if still open, delete every cluster of this run still there."""
        problems: list[str] = []
        if self.env is not None:
            try:
                self.env.close()
            except Exception as exc:
                problems.append(f"environment {self.env.cluster_name}: {type(exc).__name__}: {exc}")
            self.env = None
        if self.clusters:
            listed = runner.run([self.kind, "get", "clusters"], check=False)
            for name in sorted(self.clusters & set(listed.stdout.split())):
                done = runner.run([self.kind, "delete", "cluster", "--name", name], timeout=300, check=False)
                if done.returncode == 0:
                    print(f"deleted leftover cluster {name}", file=sys.stderr)
                else:
                    problems.append(f"cluster {name}: `kind delete cluster` exited {done.returncode}")
        for state_dir in self.state_dirs:
            shutil.rmtree(state_dir, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        with contextlib.suppress(Exception):
            self.docker.close()
        return problems


# -- report -------------------------------------------------------------------------------------
def _session_rows(section: str) -> list[Row]:
    rows = [start_row(section)]
    rows += [registry_row(section, name) for name in STRATEGY_NAMES]  # rows without a sample are left out
    rows += [adopt_row(section)] if section == WARM else []
    rows += [cluster_row(section), kind_create_row(section), healthy_row(section), wire_row(section)]
    rows += [prepare_row(section, name) for name in STRATEGY_NAMES]
    rows += [restart_row(section), final_wait_row(section), start_rest_row(section)]
    rows += [phase_row(section, phase) for phase in PHASES]
    rows += [strategy_row(section, name) for name in STRATEGY_NAMES]
    rows += [strategies_row(section), close_row(section), stops_row(section), delete_row(section)]
    rows.append(total_row(section))
    return rows


def _rows(peer: Peer) -> list[Row]:
    rows = [PLAIN_CREATE, PLAIN_KIND, PLAIN_HEALTHY, PLAIN_REST, PLAIN_DELETE, BARE_CREATE, BARE_READY, BARE_DELETE]
    if peer.cls is not None:
        rows += [PEER_CREATE, PEER_READY, PEER_DELETE]
    rows += _session_rows(SESSION) + _session_rows(TOKEN) + _session_rows(WARM) + [PYTEST_COLLECT, PYTEST_RUN]
    return rows


def print_table(samples: Samples, peer: Peer) -> None:
    # Part rows and per-strategy rows only where measured (a 1.32 node has no workload_identity).
    rows = [row for row in _rows(peer) if row in samples.values or not row[1].startswith((" ", "strategy "))]
    width = max(len(label) for _, label in rows)
    section = ""
    print(f"{'step':<{width}}  {'median [s]':>10}  {'n':>2}  values [s]")
    for row in rows:
        if row[0] != section:
            section = row[0]
            print(f"-- {section}")
        label = row[1]
        values = samples.values.get(row)
        if not values:
            print(f"{label:<{width}}  {'-':>10}  {0:>2}  (no successful run)")
            continue
        cells = " ".join(f"{v:.2f}" for v in values)
        print(f"{label:<{width}}  {statistics.median(values):>10.2f}  {len(values):>2}  {cells}")


def _verdict(met: bool) -> str:
    return "MET" if met else "NOT MET"


def print_summary(samples: Samples, peer: Peer) -> None:
    m = samples.median
    plain, bare, bare_ready = m(PLAIN_CREATE), m(BARE_CREATE), m(BARE_READY)
    print("comparisons (medians):")
    if plain is not None and bare is not None and bare_ready is not None:
        print(
            f"  cold creation: plugin {plain:.2f} s vs bare `kind create cluster` {bare:.2f} s alone, "
            f"{bare_ready:.2f} s until healthy: plugin - bare = {plain - bare:+.2f} s alone, "
            f"{plain - bare_ready:+.2f} s like for like (ratio {plain / bare_ready:.2f})"
        )
    peer_create, peer_ready = m(PEER_CREATE), m(PEER_READY)
    if peer.cls is None:
        print(f"  pytest-kind comparison skipped: {peer.reason}")
    elif plain is not None and peer_ready is not None and peer_create is not None:
        print(
            f"  plugin {plain:.2f} s vs pytest-kind create() {peer_create:.2f} s (returns without waiting), "
            f"{peer_ready:.2f} s until healthy: plugin / pytest-kind = {plain / peer_ready:.2f}"
        )
    cold, creation = m(total_row(SESSION)), m(cluster_row(SESSION))
    if cold is not None and plain is not None:
        ratio = cold / plain
        print(
            f"  cold session {cold:.2f} s = {ratio:.2f} x one plain creation ({plain:.2f} s, {cold - plain:+.2f} s); "
            f"goal <= {SESSION_RATIO_GOAL:.1f} x: {_verdict(ratio <= SESSION_RATIO_GOAL)}"
        )
        if bare_ready is not None:
            print(f"    against a bare creation until healthy ({bare_ready:.2f} s): {cold / bare_ready:.2f} x")
        if creation is not None:
            print(
                f"    of which the session's own KindCluster.create {creation:.2f} s "
                f"({creation - plain:+.2f} s vs plain: contributions, noise)"
            )
    token = m(total_row(TOKEN))
    if token is not None and cold is not None:
        token_start, cold_start = m(start_row(TOKEN)), m(start_row(SESSION))
        starts = f" (start() {token_start:.2f} s vs {cold_start:.2f} s)" if token_start and cold_start else ""
        print(
            f"  cold session in token mode {token:.2f} s = {token / cold:.2f} x the htpasswd session "
            f"({cold:.2f} s, {token - cold:+.2f} s){starts}"
        )
    warm, warm_strategies = m(total_row(WARM)), m(strategies_row(WARM))
    warm_start, warm_close = m(start_row(WARM)), m(close_row(WARM))
    if warm is not None and warm_strategies is not None and warm_start is not None and warm_close is not None:
        fixed = warm_start + warm_close
        print(
            f"  warm rerun {warm:.2f} s = start() {warm_start:.2f} s + strategies {warm_strategies:.2f} s + "
            f"close() {warm_close:.2f} s"
        )
        if plain is not None:
            ratio = fixed / plain
            print(
                f"    what reuse adds to the tests (start + close) {fixed:.2f} s = {ratio:.2f} x one plain creation; "
                f"goal <= {WARM_RATIO_GOAL:.1f} x: {_verdict(ratio <= WARM_RATIO_GOAL)}"
            )
    for section in (SESSION, WARM):
        counts = samples.counts.get(section)
        if counts:
            print(f"  kubelet restarts per start(), {section.split(':')[0]}: {', '.join(map(str, counts))}")
    run, collect = m(PYTEST_RUN), m(PYTEST_COLLECT)
    if run is not None and plain is not None:
        print(
            f"  pytest session {run:.2f} s (collect-only {collect or 0:.2f} s) = {run / plain:.2f} x one plain "
            f"creation ({plain:.2f} s)"
        )


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=1, help="repetitions (median per step), default 1")
    parser.add_argument("--kind-bin", default=None, help="kind binary (default: $KIND, then kind on PATH)")
    parser.add_argument("--node-image", default=None, help="kind node image (default: kind's own default)")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help=f"local image to push, default {DEFAULT_IMAGE}")
    parser.add_argument(
        "--registry-image", default=DEFAULT_REGISTRY_IMAGE, help=f"registry image, default {DEFAULT_REGISTRY_IMAGE}"
    )
    parser.add_argument(
        "--pytest-session",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time `pytest examples/test_all_strategies.py` in a child process (default: yes)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    skipped = missing_requirements(args.kind_bin)
    if skipped:
        for line in skipped:
            print(line)
        return 0

    logging.basicConfig(level=logging.WARNING, format="    %(message)s")
    signal.signal(signal.SIGTERM, _interrupt)
    bench: Bench | None = None
    try:
        bench = Bench(args)
        bench.preflight()
        print(bench.describe())
        if bench.peer.cls is None:
            print(f"comparison with pytest-kind skipped: {bench.peer.reason}")
        else:
            print(f"comparison with {bench.peer.version}: same kind binary, node image and health check")
        print(flush=True)
        bench.run()
        print()
        print_table(bench.samples, bench.peer)
        print()
        print_summary(bench.samples, bench.peer)
        if bench.node_image_note:
            print(f"note: {bench.node_image_note}")
        if bench.samples.failures:
            print("\nfailures:", file=sys.stderr)
            for failure in bench.samples.failures:
                print(f"  {failure}", file=sys.stderr)
            return 1
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; deleting what the benchmark created", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"benchmark could not run: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        traceback.print_exc()
        print(f"\nbenchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if bench is not None:
            # A second Ctrl-C must not cut the clean-up short.
            previous = (
                signal.signal(signal.SIGINT, signal.SIG_IGN),
                signal.signal(signal.SIGTERM, signal.SIG_IGN),
            )
            try:
                problems = bench.cleanup()
                for problem in problems:
                    print(f"clean-up: {problem}", file=sys.stderr)
                if problems:
                    print(
                        "delete them with `kind delete cluster --name NAME` (names start with "
                        f"bench-kind-{bench.bench_id} or kindreg-)",
                        file=sys.stderr,
                    )
            finally:
                signal.signal(signal.SIGINT, previous[0])
                signal.signal(signal.SIGTERM, previous[1])


if __name__ == "__main__":
    sys.exit(main())
