#!/usr/bin/env python
"""Benchmark: ``pytest_kindreg.PrivateRegistry`` against testcontainers' ``DockerRegistryContainer``,
and our token mode (``PrivateRegistry(auth="token")``) beside our htpasswd mode.

The three run the same cycle, interleaved in one process, each cycle timed end to end with
``time.perf_counter``:

1. start a ``registry:2`` container with htpasswd auth (token mode: token auth and the token
   service beside it), until an authenticated ``GET /v2/`` answers 200;
2. push the local image ``kindreg-test/busybox:1.0`` to it with the credentials;
3. remove the local tag and pull it back with the credentials;
4. stop (remove) the container and remove the local tags the cycle created.

One untimed warm-up cycle of each implementation comes first (it also checks that the htpasswd
registries really refuse anonymous requests, and counts from the registry log the requests a cycle
makes), then ``--pairs`` timed rounds of all three whose order alternates (ABC, CBA, ...) to spread
drift and noise over the implementations. Last, untimed, one registry of each runs side by side to measure what a single
authenticated and anonymous ``GET /v2/`` costs on each: that, with the request counts, explains
the difference.

Usage::

    python benchmarks/bench_registry.py --pairs 7

It is a report, not a test: it exits 0 whether or not the targets (ours <= 1/3 of testcontainers;
token mode <= 1.2x htpasswd mode) are met, 1 if the benchmark itself could not run, 130 on Ctrl-C
or SIGTERM. Every container (and token service) it creates is removed on the way out, also on
Ctrl-C, SIGTERM or an exception.
"""

from __future__ import annotations

import os

# testcontainers reads its configuration when it is imported, so this comes first.
# - Ryuk (testcontainers' reaper container) is off: its image cannot be pulled here, and this
#   script removes its containers itself (try/finally plus a sweep by label).
# - The engine runs inside this machine, which itself is a container (/.dockerenv): left alone,
#   testcontainers would reach the registry through the default gateway's address. Pin it to
#   127.0.0.1 and the published port, which is where ours is reached too.
TESTCONTAINERS_ENV = {
    "TESTCONTAINERS_RYUK_DISABLED": "true",
    "TC_HOST": "127.0.0.1",
    "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
}
os.environ.update(TESTCONTAINERS_ENV)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import importlib.metadata  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from types import FrameType  # noqa: E402
from typing import Any, cast  # noqa: E402

import bcrypt  # noqa: E402
import requests  # noqa: E402
from docker.errors import APIError, ImageNotFound, NotFound  # noqa: E402

from pytest_kindreg import Credentials, PrivateRegistry, RunIdentity  # noqa: E402
from pytest_kindreg.docker_engine import LABEL_PID, LABEL_RUN, docker_client  # noqa: E402

try:  # the home of the class since testcontainers 4.x; ``testcontainers.registry`` is a deprecated alias
    from testcontainers.community.registry import DockerRegistryContainer
except ImportError:  # pragma: no cover - older testcontainers
    from testcontainers.registry import DockerRegistryContainer

REGISTRY_IMAGE = "registry:2"
SOURCE_IMAGE = "kindreg-test/busybox:1.0"
REPOSITORY = "bench/busybox"
TARGET_RATIO = 1 / 3
TOKEN_TARGET_RATIO = 1.2
BENCH_LABEL = "io.kindreg.bench"
OURS = "ours"
OURS_TOKEN = "ours (token)"
TC = "testcontainers"
IMPLS = (OURS, OURS_TOKEN, TC)
PHASES = ("start", "push", "pull", "stop")
GET_SAMPLES = 9
LOG_SETTLE = 0.3
ACCESS_LOG = re.compile(r'"(?:GET|HEAD|PUT|POST|PATCH|DELETE) \S+ HTTP/[\d.]+" (\d{3}) ')
AUTHORIZED = 'msg="authorized request"'


class BenchError(Exception):
    """The benchmark could not do what it measures (not a slow result: a broken one)."""


@dataclass
class Cycle:
    impl: str
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.phases.values())


@dataclass(frozen=True)
class Endpoint:
    """What the inspection hooks need of a started registry, whichever implementation runs it."""

    host: str
    username: str
    password: str
    container: Any


@dataclass
class Inspection:
    """Facts gathered, untimed, during the warm-up cycle of one implementation."""

    #: phase -> (password-checked requests, all requests), from the registry log
    requests: dict[str, tuple[int, int]] = field(default_factory=dict)
    _baseline: tuple[int, int] = (0, 0)

    def _count(self, phase: str, endpoint: Endpoint) -> None:
        checked, total = _count_requests(endpoint.container)
        self.requests[phase] = (checked - self._baseline[0], total - self._baseline[1])
        self._baseline = (checked, total)

    @property
    def checked(self) -> int:
        return sum(checked for checked, _total in self.requests.values())

    def summary(self) -> str:
        return " + ".join(f"{phase} {checked}/{total}" for phase, (checked, total) in self.requests.items())

    def after_start(self, endpoint: Endpoint) -> None:
        self._count("start", endpoint)
        url = f"http://{endpoint.host}/v2/"
        with requests.Session() as session:
            authed = session.get(url, auth=(endpoint.username, endpoint.password), timeout=10)
            anonymous = session.get(url, timeout=10)
        if authed.status_code != 200:
            raise BenchError(f"authenticated GET {url} answered {authed.status_code} right after start")
        if anonymous.status_code != 401:
            raise BenchError(f"anonymous GET {url} answered {anonymous.status_code}: auth is not enforced")
        # These two checks are not the cycle's: move the baseline past them.
        self._baseline = _count_requests(endpoint.container)

    def after_push(self, endpoint: Endpoint) -> None:
        self._count("push", endpoint)

    def before_stop(self, endpoint: Endpoint) -> None:
        self._count("pull", endpoint)


@dataclass
class RequestCost:
    """Median duration of one GET /v2/ on a registry, with and without the credentials."""

    auth: list[float] = field(default_factory=list)
    anon: list[float] = field(default_factory=list)

    @property
    def auth_get(self) -> float:
        return statistics.median(self.auth)

    @property
    def anon_get(self) -> float:
        return statistics.median(self.anon)

    @property
    def check(self) -> float:
        """What the password check adds to one request: authenticated minus anonymous."""
        return max(0.0, self.auth_get - self.anon_get)

    def sample(self, session: requests.Session, endpoint: Endpoint) -> None:
        url = f"http://{endpoint.host}/v2/"
        for auth, status, times in (((endpoint.username, endpoint.password), 200, self.auth), (None, 401, self.anon)):
            started = time.perf_counter()
            response = session.get(url, auth=auth, timeout=10)
            times.append(time.perf_counter() - started)
            if response.status_code != status:
                raise BenchError(f"GET {url} answered {response.status_code}, expected {status}")


def _count_requests(container: Any) -> tuple[int, int]:
    """(requests that passed the htpasswd check, all HTTP requests) so far, from the registry log."""
    time.sleep(LOG_SETTLE)  # the registry logs a request after answering it
    logs = container.logs().decode(errors="replace")
    return logs.count(AUTHORIZED), len(ACCESS_LOG.findall(logs))


class Bench:
    """Runs cycles and keeps track of everything they create, so that all of it can be removed."""

    def __init__(self) -> None:
        self.client: Any = docker_client()
        self.bench_id = secrets.token_hex(4)
        # One identity for all of our registries: their containers carry its run id and our pid.
        self.identity = RunIdentity()
        self.source_id: str = ""
        self.local_tags: set[str] = set()
        self.cycles = 0

    # -- set-up and clean-up ------------------------------------------------------------------
    def preflight(self) -> None:
        """Both images must be local: neither implementation may pull them (no registry is reachable)."""
        for image in (REGISTRY_IMAGE, SOURCE_IMAGE):
            try:
                found = self.client.images.get(image)
            except ImageNotFound:
                raise BenchError(
                    f"image {image} is not present locally; build it with pytest_kindreg/data/build-images.sh"
                ) from None
            if image == SOURCE_IMAGE:
                self.source_id = str(found.id)

    def _own_containers(self) -> list[Any]:
        theirs = self.client.containers.list(all=True, filters={"label": f"{BENCH_LABEL}={self.bench_id}"})
        ours = self.client.containers.list(
            all=True,
            filters={"label": [f"{LABEL_RUN}={self.identity.run_id}", f"{LABEL_PID}={self.identity.pid}"]},
        )
        return [*theirs, *ours]

    def sweep(self) -> list[str]:
        """Remove whatever this run created and still exists; return what had to be removed."""
        leftovers: list[str] = []
        for container in self._own_containers():
            with contextlib.suppress(NotFound):
                container.remove(force=True, v=True)
                leftovers.append(f"container {container.name}")
        for tag in sorted(self.local_tags):
            if self._untag(tag):
                leftovers.append(f"tag {tag}")
        self.local_tags.clear()
        return leftovers

    def _untag(self, reference: str) -> bool:
        """Remove one local tag (never the image it names: ``kindreg-test/busybox:1.0`` keeps it)."""
        try:
            self.client.images.remove(reference, noprune=True)
        except ImageNotFound:
            return False
        return True

    def _verify_pulled(self, image: Any, reference: str) -> None:
        if image.id != self.source_id:
            raise BenchError(f"pulled {reference} is {image.id}, pushed {self.source_id}")

    def _next(self) -> str:
        self.cycles += 1
        return str(self.cycles)

    # -- the cycle, once per implementation ----------------------------------------------------
    def run(self, impl: str, inspection: Inspection | None = None) -> Cycle:
        if impl == TC:
            return self.cycle_tc(inspection)
        return self.cycle_ours(inspection, auth="token" if impl == OURS_TOKEN else "htpasswd")

    def cycle_ours(self, inspection: Inspection | None = None, auth: str = "htpasswd") -> Cycle:
        tag = self._next()
        cycle = Cycle(OURS_TOKEN if auth == "token" else OURS)
        reg = PrivateRegistry(image=REGISTRY_IMAGE, identity=self.identity, role=f"bench-{tag}", auth=auth)
        try:
            with _phase(cycle, "start"):
                reg.start()
            endpoint = Endpoint(reg.host, reg.username, reg.password, reg.container)
            if inspection:
                inspection.after_start(endpoint)
            reference = f"{reg.host}/{REPOSITORY}:{tag}"
            self.local_tags.add(reference)  # before push() tags it, so an interrupted push leaves nothing
            with _phase(cycle, "push"):
                if reg.push(SOURCE_IMAGE, repository=REPOSITORY, tag=tag) != reference:
                    raise BenchError(f"PrivateRegistry.push did not return {reference}")
            if inspection:
                inspection.after_push(endpoint)
            with _phase(cycle, "pull"):
                self._untag(reference)
                self._verify_pulled(reg.pull(reference), reference)
            if inspection:
                inspection.before_stop(endpoint)
            with _phase(cycle, "stop"):
                reg.stop()
                self._untag(reference)
        finally:
            reg.stop()  # idempotent; removes the container if anything above failed
        return cycle

    def _tc_registry(self, credentials: Credentials) -> DockerRegistryContainer:
        registry = DockerRegistryContainer(
            image=REGISTRY_IMAGE,
            port=5000,
            username=credentials.username,
            password=credentials.password,
            labels={BENCH_LABEL: self.bench_id},
        )
        # Published on 127.0.0.1 only, as ours is (testcontainers' default is every interface).
        # docker-py reads a 1-tuple as (host ip,) with a random host port. testcontainers types
        # the values int | None; seen through a cast, mypy gives the same answer whether or not
        # the optional testcontainers is installed (a `type: ignore` is unused without it).
        ports = cast("dict[str, Any]", registry.ports)
        ports["5000"] = ("127.0.0.1",)
        return registry

    def cycle_tc(self, inspection: Inspection | None = None) -> Cycle:
        tag = self._next()
        cycle = Cycle(TC)
        credentials = Credentials.random("tc")
        auth_config = credentials.as_docker_auth_config()
        registry = self._tc_registry(credentials)
        stopped = False
        try:
            with _phase(cycle, "start"):
                # start() waits in _readiness_probe for an authenticated GET /v2 (redirected to /v2/)
                # to pass raise_for_status(), and a 4xx/5xx there is raised, not retried: when start()
                # returns, the authenticated /v2/ answered 200. No extra poll is needed.
                registry.start()
                host = registry.get_registry()
            endpoint = Endpoint(host, credentials.username, credentials.password, registry.get_wrapped_container())
            if inspection:
                inspection.after_start(endpoint)
            repository = f"{host}/{REPOSITORY}"
            reference = f"{repository}:{tag}"
            self.local_tags.add(reference)
            with _phase(cycle, "push"):
                self.client.images.get(SOURCE_IMAGE).tag(repository, tag)
                for line in self.client.images.push(
                    repository, tag=tag, auth_config=auth_config, stream=True, decode=True
                ):
                    if "error" in line or "errorDetail" in line:
                        raise BenchError(f"push of {reference} failed: {line.get('error') or line}")
            if inspection:
                inspection.after_push(endpoint)
            with _phase(cycle, "pull"):
                self._untag(reference)
                try:
                    pulled = self.client.images.pull(repository, tag=tag, auth_config=auth_config)
                except APIError as exc:
                    raise BenchError(f"pull of {reference} failed: {exc.explanation or exc}") from exc
                self._verify_pulled(pulled, reference)
            if inspection:
                inspection.before_stop(endpoint)
            with _phase(cycle, "stop"):
                registry.stop()
                stopped = True
                self._untag(reference)
        finally:
            if not stopped:
                with contextlib.suppress(Exception):
                    registry.stop()
        return cycle

    # -- what one request costs -----------------------------------------------------------------
    def request_costs(self, samples: int = GET_SAMPLES) -> dict[str, RequestCost]:
        """Run one registry of each side by side and time GET /v2/ on them in turn (untimed part)."""
        costs = {OURS: RequestCost(), TC: RequestCost()}
        reg = PrivateRegistry(image=REGISTRY_IMAGE, identity=self.identity, role="bench-requests")
        credentials = Credentials.random("tc")
        registry = self._tc_registry(credentials)
        try:
            reg.start()
            registry.start()
            endpoints = {
                OURS: Endpoint(reg.host, reg.username, reg.password, reg.container),
                TC: Endpoint(
                    registry.get_registry(),
                    credentials.username,
                    credentials.password,
                    registry.get_wrapped_container(),
                ),
            }
            # One keep-alive session per registry: time the registry, not TCP set-up.
            with requests.Session() as ours, requests.Session() as theirs:
                sessions = {OURS: ours, TC: theirs}
                for number in range(samples):
                    for impl in (OURS, TC) if number % 2 == 0 else (TC, OURS):
                        costs[impl].sample(sessions[impl], endpoints[impl])
        finally:
            reg.stop()
            with contextlib.suppress(Exception):
                registry.stop()
        return costs


@contextlib.contextmanager
def _phase(cycle: Cycle, name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    cycle.phases[name] = time.perf_counter() - started


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _bcrypt_seconds(rounds: int) -> float:
    started = time.perf_counter()
    bcrypt.hashpw(b"a throw-away password", bcrypt.gensalt(rounds=rounds))
    return time.perf_counter() - started


# -- report -------------------------------------------------------------------------------------
def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def print_rounds(rounds: list[tuple[str, dict[str, Cycle]]]) -> None:
    print(
        f"{'round':>5}  {'first':<14}  {'ours [s]':>9}  {'ours (token) [s]':>16}  {'testcontainers [s]':>18}  "
        f"{'ours/tc':>7}  {'token/ours':>10}"
    )
    for number, (first, done) in enumerate(rounds, 1):
        ours, token, tc = done[OURS].total, done[OURS_TOKEN].total, done[TC].total
        print(
            f"{number:>5}  {first:<14}  {ours:>9.3f}  {token:>16.3f}  {tc:>18.3f}  {ours / tc:>7.2f}  "
            f"{token / ours:>10.2f}"
        )


def print_phases(cycles: dict[str, list[Cycle]]) -> None:
    print("median per phase [s]:")
    print(f"  {'':<14}  " + "  ".join(f"{p:>6}" for p in PHASES) + f"  {'total':>6}")
    for impl, runs in cycles.items():
        cells = [statistics.median(c.phases[p] for c in runs) for p in PHASES]
        total = statistics.median(c.total for c in runs)
        print(f"  {impl:<14}  " + "  ".join(f"{v:>6.3f}" for v in cells) + f"  {total:>6.3f}")


def print_explanation(
    found: dict[str, Inspection], costs: dict[str, RequestCost], cycles: dict[str, list[Cycle]]
) -> None:
    ours, tc = found[OURS], found[TC]
    print("what explains the difference (measured: warm-up cycles, registry logs, a registry of each side by side):")
    print(
        f"  password check per request = authenticated minus anonymous GET /v2/ (keep-alive, interleaved, "
        f"median of {GET_SAMPLES}): ours {_ms(costs[OURS].check)}, testcontainers {_ms(costs[TC].check)} "
        f"(authenticated {_ms(costs[OURS].auth_get)} vs {_ms(costs[TC].auth_get)}, "
        f"anonymous {_ms(costs[OURS].anon_get)} vs {_ms(costs[TC].anon_get)})"
    )
    print(
        "    the registry verifies the htpasswd bcrypt hash on every request that carries credentials; "
        "testcontainers hashes with cost 12 (hard-coded), ours with cost 4 (throw-away credentials)"
    )
    checks_ours, checks_tc = ours.checked, tc.checked
    print(
        f"  password-checked requests per cycle (registry log, checked/all): ours {checks_ours} = "
        f"{ours.summary()}; testcontainers {checks_tc} = {tc.summary()}"
    )
    cost_ours, cost_tc = checks_ours * costs[OURS].check, checks_tc * costs[TC].check
    print(f"    -> password checks cost ~{cost_tc:.2f} s of a testcontainers cycle, ~{cost_ours:.2f} s of ours")
    hash12 = statistics.median(_bcrypt_seconds(12) for _ in range(3))
    hash4 = statistics.median(_bcrypt_seconds(4) for _ in range(3))
    print(
        f"  hashing the htpasswd entry in the client (this process, median of 3): cost 12 {_ms(hash12)} "
        f"(testcontainers' start()), cost 4 {_ms(hash4)} (ours)"
    )
    median_ours = statistics.median(c.total for c in cycles[OURS])
    median_tc = statistics.median(c.total for c in cycles[TC])
    explained = (cost_tc + hash12) - (cost_ours + hash4)
    difference = median_tc - median_ours
    share = f" ({explained / difference:.0%})" if difference > 0 else ""
    print(
        f"  => bcrypt cost 12 vs 4 accounts for ~{explained:.2f} s of the {difference:.2f} s between the "
        f"medians{share}; the rest ({difference - explained:+.2f} s) is container start-up, waiting and "
        "noise (see the start column)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--pairs", type=int, default=7, help="timed pairs (ABBA order), default 7")
    args = parser.parse_args(argv)
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")

    signal.signal(signal.SIGTERM, _interrupt)
    print(
        "testcontainers: Ryuk reaper disabled by this script (TESTCONTAINERS_RYUK_DISABLED=true; its image "
        "cannot be pulled here, and the script removes its own containers); "
        "TC_HOST=127.0.0.1, TESTCONTAINERS_CONNECTION_MODE=docker_host; port published on 127.0.0.1 only"
    )
    bench: Bench | None = None
    try:
        bench = Bench()
        bench.preflight()
        print(
            f"testcontainers {importlib.metadata.version('testcontainers')}, "
            f"pytest-kindreg {importlib.metadata.version('pytest-kindreg')}, "
            f"Docker engine {bench.client.version().get('Version', '?')}, image {REGISTRY_IMAGE}, "
            f"cycle: start -> push {SOURCE_IMAGE} -> untag + pull -> stop + untag"
        )
        found = {OURS: Inspection(), TC: Inspection()}
        for impl in IMPLS:
            # Token mode has no inspection: Basic credentials mean nothing to its registry.
            warm = bench.run(impl, found.get(impl))
            print(f"warm-up (untimed) {impl}: {warm.total:.3f} s")
        print()

        rounds: list[tuple[str, dict[str, Cycle]]] = []
        for number in range(args.pairs):
            order = IMPLS if number % 2 == 0 else tuple(reversed(IMPLS))  # ABC, CBA, ABC, ...
            done = {impl: bench.run(impl) for impl in order}
            rounds.append((order[0], done))
            print(
                f"  round {number + 1}/{args.pairs}: " + ", ".join(f"{impl} {done[impl].total:.3f} s" for impl in IMPLS)
            )
        print()

        cycles = {impl: [done[impl] for _first, done in rounds] for impl in IMPLS}
        print_rounds(rounds)
        medians = {impl: statistics.median(c.total for c in cycles[impl]) for impl in IMPLS}
        ratio = medians[OURS] / medians[TC]
        print(
            f"median: ours {medians[OURS]:.3f} s, ours (token) {medians[OURS_TOKEN]:.3f} s, "
            f"testcontainers {medians[TC]:.3f} s"
        )
        print(f"ratio ours / testcontainers (median over medians): {ratio:.2f}")
        verdict = "MET" if ratio <= TARGET_RATIO else "NOT met"
        print(f"verdict: target ours <= 1/3 of testcontainers ({TARGET_RATIO:.2f}) {verdict} ({ratio:.2f})")
        token_ratio = medians[OURS_TOKEN] / medians[OURS]
        verdict = "MET" if token_ratio <= TOKEN_TARGET_RATIO else "NOT met"
        print(f"verdict: target token mode <= {TOKEN_TARGET_RATIO:.1f}x htpasswd mode {verdict} ({token_ratio:.2f})")
        print()
        print_phases(cycles)
        print()
        print_explanation(found, bench.request_costs(), cycles)
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; removing what the benchmark created", file=sys.stderr)
        return 130
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
                leftovers = bench.sweep()
                if leftovers:
                    print(f"removed leftovers: {', '.join(leftovers)}", file=sys.stderr)
                bench.client.close()
            except Exception as exc:
                print(
                    f"clean-up failed ({type(exc).__name__}: {exc}); look for containers labelled "
                    f"{BENCH_LABEL}={bench.bench_id} or {LABEL_RUN}={bench.identity.run_id}",
                    file=sys.stderr,
                )
            finally:
                signal.signal(signal.SIGINT, previous[0])
                signal.signal(signal.SIGTERM, previous[1])


if __name__ == "__main__":
    sys.exit(main())
