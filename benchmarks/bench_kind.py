#!/usr/bin/env python
"""Benchmark: what pytest-kindreg's kind cluster and its five strategies cost, step by step.

Needs ``kind`` (on PATH, or ``$KIND``) and a Docker engine; without either it prints
``skipped: ...`` and exits 0. Each repetition, timed with ``time.perf_counter``:

1. a plain cluster: ``KindCluster(name).create(KindClusterConfig(name=...))``, pytest-kindreg's
   config with no strategy contribution (``kind create cluster --wait``, then until healthy), then
   its deletion;
2. the same creation by pytest-kind's ``KindCluster`` (``pytest_kind``), when it is importable and
   can be pointed at the same kind binary (it is never downloaded); the order of 1 and 2
   alternates between repetitions;
3. ``KindRegistryEnvironment`` with all five strategies: ``start()`` (registries, cluster with the
   strategies' contributions, wiring, node preparation), broken down into those parts. Its
   overhead beyond a plain cluster is the difference with step 1;
4. per strategy: ``ws = env.workspace(name); ws.setup(); ref = ws.push(image); ws.run_pod(ref)``,
   then ``ws.negative_control(image)``, then ``ws.teardown()``;
5. ``env.close()`` (registries stopped, cluster deleted).

It prints the median of every step over ``--repeat`` repetitions. Usage::

    python benchmarks/bench_kind.py --repeat 3 --node-image kindest/node:<version>

It is a report, not a test: exit 0 when every step ran (or when skipped), 1 if a step failed or
the benchmark could not run, 130 on Ctrl-C or SIGTERM. Every cluster it created is deleted on the
way out, also after an exception or an interruption. It pulls nothing: the images it needs must
be local (kind itself pulls its default node image if that is missing; the script says so).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import inspect
import logging
import os
import secrets
import shutil
import signal
import statistics
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
from pytest_kindreg.environment import KindRegistryEnvironment
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

PLAIN_CREATE = "plain cluster: KindCluster.create (no contributions)"
PLAIN_DELETE = "plain cluster: KindCluster.delete"
PEER_CREATE = "pytest-kind: KindCluster.create()"
PEER_READY = "pytest-kind: create() + until healthy (same check)"
PEER_DELETE = "pytest-kind: KindCluster.delete()"
ENV_START = "env: KindRegistryEnvironment.start() (5 strategies)"
ENV_CREATE = "  of which kind cluster with contributions"
ENV_WIRE = "  of which wiring (networks, hosts.toml, KEP-1755)"
ENV_OTHER = "  of which the rest"
ENV_CLOSE = "env: close() (teardown)"


def _registry_row(name: str) -> str:
    return f"  of which registry start: {name}"


def _prepare_row(name: str) -> str:
    return f"  of which prepare_nodes: {name}"


def _pull_row(name: str) -> str:
    return f"{name}: setup + push + run_pod"


def _negative_row(name: str) -> str:
    return f"{name}: negative_control"


def _ws_teardown_row(name: str) -> str:
    return f"{name}: ws.teardown()"


class BenchError(Exception):
    """The benchmark could not do what it measures (not a slow result: a broken one)."""


@dataclass
class Samples:
    """Seconds per step, in the order steps were first seen, and what failed."""

    values: dict[str, list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(self, step: str, seconds: float) -> None:
        self.values.setdefault(step, []).append(seconds)

    @contextlib.contextmanager
    def timed(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.add(step, time.perf_counter() - started)

    def median(self, step: str) -> float | None:
        found = self.values.get(step)
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


def missing_requirements() -> list[str]:
    """The ``skipped: ...`` lines: empty when kind and a Docker engine are both there."""
    reasons: list[str] = []
    try:
        find_kind()
    except KindUnavailableError:
        where = os.environ.get("KIND")
        if where:
            reasons.append(f"skipped: kind not found at KIND={where!r} (install kind to run this benchmark)")
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


@contextlib.contextmanager
def _start_breakdown(env: KindRegistryEnvironment, parts: dict[str, float]) -> Iterator[None]:
    """Time the parts of ``env.start()`` into ``parts``: per-strategy registry start and node
    preparation, cluster creation with the contributions, wiring. Patches are undone on the way out."""
    original_start = PrivateRegistry.start
    original_create = KindCluster.create

    @contextlib.contextmanager
    def timed(row: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            parts[row] = parts.get(row, 0.0) + time.perf_counter() - started

    def registry_start(self: PrivateRegistry) -> PrivateRegistry:
        with timed(_registry_row(self.role.removeprefix("reg-"))):
            return original_start(self)

    def cluster_create(self: KindCluster, config: KindClusterConfig) -> None:
        with timed(ENV_CREATE):
            original_create(self, config)

    def timed_method(obj: object, attr: str, row: str) -> None:
        method: Callable[..., Any] = getattr(obj, attr)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with timed(row):
                return method(*args, **kwargs)

        setattr(obj, attr, wrapper)

    timed_method(env, "_wire", ENV_WIRE)
    for name, strategy in env.strategies.items():
        timed_method(strategy, "prepare_nodes", _prepare_row(name))
    setattr(PrivateRegistry, "start", registry_start)  # noqa: B010
    setattr(KindCluster, "create", cluster_create)  # noqa: B010
    try:
        yield
    finally:
        setattr(PrivateRegistry, "start", original_start)  # noqa: B010
        setattr(KindCluster, "create", original_create)  # noqa: B010


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.kind = find_kind()
        self.docker = docker_client()
        self.bench_id = secrets.token_hex(3)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{self.bench_id}-"))
        self.samples = Samples()
        self.peer = find_peer(args.node_image)
        self.clusters: set[str] = set()  # every cluster name this run may have created
        self.env: KindRegistryEnvironment | None = None
        self.local_image_ids: set[str] = set()
        self.node_image_note = ""

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

    def describe(self) -> str:
        kind_version = runner.run([self.kind, "version"], check=False).stdout.strip() or "?"
        engine = self.docker.version().get("Version", "?")
        return (
            f"pytest-kindreg {importlib.metadata.version('pytest-kindreg')}, {kind_version} ({self.kind}), "
            f"Docker engine {engine}, node image {self.args.node_image or 'kind default'}, "
            f"registry image {self.args.registry_image}, pushed image {self.args.image}, "
            f"strategies {', '.join(STRATEGY_NAMES)}, repetitions {self.args.repeat}"
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

    # -- steps -------------------------------------------------------------------------------
    def plain(self, repetition: int) -> None:
        name = f"bench-kind-{self.bench_id}-plain-{repetition}"
        workdir = self.tmp / name
        self.clusters.add(name)
        cluster = KindCluster(name, kind_bin=self.kind, workdir=workdir)
        created = False
        try:
            with self.samples.timed(PLAIN_CREATE):
                cluster.create(KindClusterConfig(name=name, node_image=self.args.node_image))
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
            probe = KindCluster(name, kind_bin=self.kind, workdir=workdir)  # created=False: never deletes
            try:
                probe.wait_healthy()
            finally:
                probe.delete()
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

    def environment(self, repetition: int) -> None:
        env = KindRegistryEnvironment(
            STRATEGY_NAMES,
            node_image=self.args.node_image,
            kind_bin=self.kind,
            registry_image=self.args.registry_image,
        )
        self.env = env
        self.clusters.add(env.cluster_name)
        parts: dict[str, float] = {}
        try:
            started = time.perf_counter()
            with _start_breakdown(env, parts):
                env.start()
            total = time.perf_counter() - started
            # Only a start that succeeded counts, with all its parts.
            self.samples.add(ENV_START, total)
            for row, seconds in parts.items():
                self.samples.add(row, seconds)
            self.samples.add(ENV_OTHER, total - sum(parts.values()))
        except Exception as exc:
            self.samples.fail(repetition, "KindRegistryEnvironment.start()", exc)
            self._close_env(repetition)
            return
        try:
            for name in env.strategy_names:
                self.strategy(repetition, env, name)
        finally:
            self._close_env(repetition)

    def strategy(self, repetition: int, env: KindRegistryEnvironment, name: str) -> None:
        print(f"    strategy {name}", flush=True)
        ws = env.workspace(name, test_name=f"bench-{name}")
        try:
            with self.samples.timed(_pull_row(name)):
                ws.setup()
                ref = ws.push(self.args.image)
                ws.run_pod(ref)
            with self.samples.timed(_negative_row(name)):
                ws.negative_control(self.args.image)
        except Exception as exc:
            self.samples.fail(repetition, f"strategy {name}", exc)
        finally:
            try:
                with self.samples.timed(_ws_teardown_row(name)):
                    ws.teardown()
            except Exception as exc:
                self.samples.fail(repetition, f"strategy {name} teardown", exc)

    def _close_env(self, repetition: int) -> None:
        env, self.env = self.env, None
        if env is None:
            return
        try:
            with self.samples.timed(ENV_CLOSE):
                env.close()
        except Exception as exc:
            self.samples.fail(repetition, "KindRegistryEnvironment.close()", exc)

    def run(self) -> None:
        for repetition in range(1, self.args.repeat + 1):
            print(f"repetition {repetition}/{self.args.repeat}", flush=True)
            steps: list[tuple[str, Callable[[int], None]]] = [("plain cluster", self.plain)]
            if self.peer.cls is not None:
                steps.append(("pytest-kind cluster", self.peer_create))
                if repetition % 2 == 0:  # A B, B A, ...: drift falls on both
                    steps.reverse()
            steps.append(("KindRegistryEnvironment, 5 strategies", self.environment))
            for label, step in steps:
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
        shutil.rmtree(self.tmp, ignore_errors=True)
        with contextlib.suppress(Exception):
            self.docker.close()
        return problems


# -- report -------------------------------------------------------------------------------------
def _rows() -> list[str]:
    rows = [PLAIN_CREATE, PLAIN_DELETE, PEER_CREATE, PEER_READY, PEER_DELETE, ENV_START, ENV_CREATE, ENV_WIRE]
    rows += [_registry_row(name) for name in STRATEGY_NAMES]
    rows += [_prepare_row(name) for name in STRATEGY_NAMES]
    rows.append(ENV_OTHER)
    for name in STRATEGY_NAMES:
        rows += [_pull_row(name), _negative_row(name), _ws_teardown_row(name)]
    rows.append(ENV_CLOSE)
    return rows


def print_table(samples: Samples, peer: Peer) -> None:
    rows = [row for row in _rows() if peer.cls is not None or not row.startswith("pytest-kind:")]
    width = max(len(row) for row in rows)
    print(f"{'step':<{width}}  {'median [s]':>10}  {'n':>2}  values [s]")
    for row in rows:
        values = samples.values.get(row)
        if not values:
            print(f"{row:<{width}}  {'-':>10}  {0:>2}  (no successful run)")
            continue
        cells = " ".join(f"{v:.2f}" for v in values)
        print(f"{row:<{width}}  {statistics.median(values):>10.2f}  {len(values):>2}  {cells}")


def print_differences(samples: Samples, peer: Peer) -> None:
    plain, start = samples.median(PLAIN_CREATE), samples.median(ENV_START)
    create = samples.median(ENV_CREATE)
    print("differences (medians):")
    if plain is not None and start is not None:
        print(f"  env start - plain creation = {start - plain:+.2f} s: the five strategies' overhead")
    if plain is not None and create is not None:
        print(
            f"  kind cluster with contributions - plain creation = {create - plain:+.2f} s (mounts, containerd patches)"
        )
    for name in STRATEGY_NAMES:
        own = [samples.median(row(name)) for row in (_registry_row, _prepare_row)]
        if all(v is not None for v in own):
            registry, prepare = own
            assert registry is not None and prepare is not None
            print(
                f"  {name}: registry start {registry:.2f} s + prepare_nodes {prepare:.2f} s = "
                f"{registry + prepare:.2f} s of env start"
            )
    peer_create, peer_ready = samples.median(PEER_CREATE), samples.median(PEER_READY)
    if peer.cls is None:
        print(f"  pytest-kind comparison skipped: {peer.reason}")
    elif plain is not None and peer_ready is not None and peer_create is not None:
        print(
            f"  plain creation (ours, waits until healthy) {plain:.2f} s vs pytest-kind create() {peer_create:.2f} s "
            f"(returns without waiting), {peer_ready:.2f} s until healthy: ours / pytest-kind = "
            f"{plain / peer_ready:.2f} (same kind binary, same node image, same health check)"
        )


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=1, help="repetitions (median per step), default 1")
    parser.add_argument("--node-image", default=None, help="kind node image (default: kind's own default)")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help=f"local image to push, default {DEFAULT_IMAGE}")
    parser.add_argument(
        "--registry-image", default=DEFAULT_REGISTRY_IMAGE, help=f"registry image, default {DEFAULT_REGISTRY_IMAGE}"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    skipped = missing_requirements()
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
        print_differences(bench.samples, bench.peer)
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
