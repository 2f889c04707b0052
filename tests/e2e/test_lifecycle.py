"""Cluster lifecycle on real kind clusters, through child pytest runs: keep then reuse, one
cluster shared by xdist workers, SIGINT during creation, and ``kindreg doctor --cluster``."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from pytest_kindreg import KindCluster, KindRegistryEnvironment, PrivateRegistry
from pytest_kindreg.cluster import find_kind
from pytest_kindreg.docker_engine import LABEL_MANAGED
from pytest_kindreg.kubelet import credential_verification
from pytest_kindreg.settings import Settings

pytestmark = pytest.mark.e2e

KIND_LABEL = "io.x-k8s.kind.cluster"


def _cluster_name(what: str) -> str:
    return f"kindreg-e2e-{what}-{uuid.uuid4().hex[:6]}"


def _kind(pytestconfig: pytest.Config) -> str:
    return find_kind(Settings.from_config(pytestconfig).kind_bin)


def _clusters(kind: str) -> set[str]:
    out = subprocess.run([kind, "get", "clusters"], capture_output=True, text=True, timeout=60, check=True)
    return set(out.stdout.split())


def _node_containers(docker: Any, cluster: str) -> list[str]:
    return [
        c.name
        for c in docker.containers.list(all=True, filters={"label": f"{KIND_LABEL}={cluster}"}, ignore_removed=True)
    ]


def _managed_containers(docker: Any) -> set[str]:
    return {c.name for c in docker.containers.list(all=True, filters={"label": LABEL_MANAGED}, ignore_removed=True)}


@pytest.fixture
def delete_afterwards(pytestconfig: pytest.Config) -> Any:
    """Names of clusters a test asked to keep: deleted after it, whatever happened, with the
    files a kept cluster keeps in the state dir (its kubeconfig, node credentials)."""
    from pytest_kindreg.environment import default_state_dir

    names: list[str] = []
    yield names
    kind = _kind(pytestconfig)
    for name in names:
        if name in _clusters(kind):
            subprocess.run([kind, "delete", "cluster", "--name", name], capture_output=True, timeout=300, check=False)
        # Only the directory named after a cluster this test created (a unique name).
        shutil.rmtree(default_state_dir() / name, ignore_errors=True)
    for name in names:
        assert not (default_state_dir() / name).exists()


KEEP_THEN_REUSE = """
import pytest
from kubernetes import client

def test_mark(kind_cluster):
    core = client.CoreV1Api(kind_cluster.api_client())
    marks = core.list_namespaced_config_map("default", label_selector="kindreg-e2e=mark").items
    if {reuse}:
        assert [m.metadata.name for m in marks] == ["first-run"], "not the kept cluster"
    else:
        assert marks == []
        core.create_namespaced_config_map("default", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="first-run", labels={{"kindreg-e2e": "mark"}})))

@pytest.mark.kindreg_strategy("pull_secret", "node_config", "access_token", "credential_provider")
def test_pull(kind_private_registry, kindreg_test_image):
    assert kind_private_registry.run_pod(kind_private_registry.push(kindreg_test_image)).status.phase == "Running"
"""


def _kubelet_starts(cluster: str) -> int:
    """How often systemd started kubelet on the cluster's control-plane node so far."""
    journal = subprocess.run(
        ["docker", "exec", f"{cluster}-control-plane", "journalctl", "-u", "kubelet.service", "-o", "cat"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return sum(line.startswith("Started kubelet") for line in journal.splitlines())


def test_keep_then_reuse_the_cluster(
    pytester: pytest.Pytester, kind_options: list[str], pytestconfig: pytest.Config, delete_afterwards: list[str]
) -> None:
    name = _cluster_name("keep")
    delete_afterwards.append(name)
    kind = _kind(pytestconfig)

    pytester.makepyfile(test_keep=KEEP_THEN_REUSE.format(reuse=False))
    first = pytester.runpytest_subprocess(*kind_options, f"--kindreg-cluster-name={name}", "--kindreg-keep-cluster")
    first.assert_outcomes(passed=5)
    assert name in _clusters(kind), "--kindreg-keep-cluster removed the cluster"

    pytester.makepyfile(test_keep=KEEP_THEN_REUSE.format(reuse=True))
    starts = _kubelet_starts(name)
    started = time.monotonic()
    second = pytester.runpytest_subprocess(*kind_options, f"--kindreg-cluster-name={name}", "--kindreg-reuse-cluster")
    second.assert_outcomes(passed=5)
    # node_config (new credentials on a reused cluster), access_token and credential_provider (its
    # provider config names this run's registry) each ask for a kubelet restart at start-up: the
    # environment makes that one restart.
    assert _kubelet_starts(name) - starts == 1
    assert name in _clusters(kind), "--kindreg-reuse-cluster implies keeping the cluster"
    second.stdout.fnmatch_lines(["*reus*"])
    print(f"reuse run: {time.monotonic() - started:.1f} s")

    # A kept cluster is never silently reused for another config: the message says what differs.
    (pytester.path / "kind.yaml").write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  podSubnet: 10.230.0.0/16\n"
    )
    third = pytester.runpytest_subprocess(
        *kind_options, f"--kindreg-cluster-name={name}", "--kindreg-reuse-cluster", "--kindreg-kind-config=kind.yaml"
    )
    third.assert_outcomes(errors=5)
    third.stdout.fnmatch_lines(
        [
            f"*cluster '{name}' exists but was not created with the configuration this run needs*"
            f"kind config {pytester.path / 'kind.yaml'}*",
            '*networking: recorded absent, needed {"podSubnet": "10.230.0.0/16"}*',
        ]
    )
    assert name in _clusters(kind), "a refused reuse must leave the kept cluster alone"


def test_reuse_moves_a_registry_whose_port_was_taken(
    pytestconfig: pytest.Config, delete_afterwards: list[str], monkeypatch: pytest.MonkeyPatch, kindreg_test_image: str
) -> None:
    """On a reused cluster the node credentials are written, and kubelet restarted, while the
    registries start, keyed on the ports prepare() picked. A port taken meanwhile moves its
    registry: the credentials are written again for the new host, the stale entries go, and
    pods still pull under both node-credential strategies."""
    settings = Settings.from_config(pytestconfig)
    name = _cluster_name("moved")
    delete_afterwards.append(name)
    common: dict[str, Any] = {
        "cluster_name": name,
        "kind_bin": settings.kind_bin,
        "node_image": settings.node_image,
        "registry_image": settings.registry_image,
    }
    strategies = ["access_token", "node_config"]
    with KindRegistryEnvironment(strategies, keep_cluster=True, **common):
        pass

    taken: list[socket.socket] = []
    prepare = PrivateRegistry.prepare

    def prepare_then_take_the_port(self: PrivateRegistry, network: str | None = None) -> None:
        prepare(self, network)
        # Another process binds the port between prepare() and start(): a real socket.
        sock = socket.socket()
        sock.bind(("127.0.0.1", self.port))
        sock.listen()
        taken.append(sock)

    monkeypatch.setattr(PrivateRegistry, "prepare", prepare_then_take_the_port)
    try:
        with KindRegistryEnvironment(strategies, reuse_cluster=True, **common) as env:
            assert env.cluster is not None and env.cluster.reused
            stale = {f"127.0.0.1:{sock.getsockname()[1]}" for sock in taken}
            hosts = {ctx.image_host for ctx in env.contexts.values()}
            assert len(stale) == 2 and not stale & hosts, "the registries did not move"
            for node in env.cluster.nodes():
                keys = set(env.contexts["node_config"].node_credentials.keys_on(env.cluster, node))
                assert hosts <= keys and not stale & keys, f"{node}: config.json keyed on {sorted(keys)}"
            for strategy in strategies:
                ws = env.workspace(strategy)
                ws.setup()
                try:
                    assert ws.run_pod(ws.push(kindreg_test_image)).status.phase == "Running"
                finally:
                    ws.teardown()
    finally:
        for sock in taken:
            sock.close()


def test_xdist_workers_share_one_cluster(
    pytester: pytest.Pytester, kind_options: list[str], pytestconfig: pytest.Config, tmp_path: Path, kindreg_docker: Any
) -> None:
    pytest.importorskip("xdist")
    name = _cluster_name("xdist")
    out = tmp_path / "seen"
    out.mkdir()
    pytester.makepyfile(
        f"""
        import os, pathlib, pytest

        @pytest.mark.kindreg_strategy("pull_secret", "side_load")
        @pytest.mark.parametrize("n", range(2))
        def test_pull(kind_private_registry, kind_cluster, kindreg_test_image, n):
            pod = kind_private_registry.run_pod(kind_private_registry.push(kindreg_test_image))
            assert pod.status.phase == "Running"
            worker = os.environ["PYTEST_XDIST_WORKER"]
            pathlib.Path({str(out)!r}, worker + "-" + kind_private_registry.namespace).write_text(kind_cluster.name)
        """
    )
    result = pytester.runpytest_subprocess(*kind_options, "-n", "2", f"--kindreg-cluster-name={name}")
    result.assert_outcomes(passed=4)
    workers = {p.name.split("-")[0] for p in out.iterdir()}
    assert workers == {"gw0", "gw1"}
    assert {p.read_text() for p in out.iterdir()} == {name}  # one cluster for both workers
    assert name not in _clusters(_kind(pytestconfig))  # the last worker out deleted it
    assert _node_containers(kindreg_docker, name) == []


def test_sigint_during_cluster_creation_leaves_nothing(
    pytester: pytest.Pytester, kind_options: list[str], pytestconfig: pytest.Config, kindreg_docker: Any
) -> None:
    name = _cluster_name("sigint")
    kind = _kind(pytestconfig)
    pytester.makepyfile("def test_cluster(kind_cluster):\n    pass\n")
    networks_before = {n.name for n in kindreg_docker.networks.list()}
    managed_before = _managed_containers(kindreg_docker)
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", *kind_options, f"--kindreg-cluster-name={name}"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # SIGINT reaches the child only, as a Ctrl-C in its terminal would
    )
    try:
        deadline = time.monotonic() + 180
        while not _node_containers(kindreg_docker, name):  # kind has started the node
            assert child.poll() is None, f"the run ended before creating a node:\n{child.stdout.read()}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "no node container appeared"
            time.sleep(0.2)
        time.sleep(2)  # inside `kind create cluster`, while the node boots
        os.killpg(child.pid, signal.SIGINT)
        output, _ = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    assert child.returncode != 0, output
    assert name not in _clusters(kind), output
    assert _node_containers(kindreg_docker, name) == [], output
    assert _managed_containers(kindreg_docker) <= managed_before, output  # its registries are gone too
    assert {n.name for n in kindreg_docker.networks.list()} <= networks_before | {"kind"}, output


def test_doctor_reads_containerd_of_the_cluster(kind_cluster: KindCluster, kindreg_environment: Any) -> None:
    node = kind_cluster.nodes()[0]
    major, minor, _patch = kind_cluster.containerd_version(node)
    doctor = [sys.executable, "-m", "pytest_kindreg", "doctor"]
    result = subprocess.run(
        [*doctor, "--kind-bin", kind_cluster.kind_bin, "--cluster", kind_cluster.name],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if node in line]
    assert lines, result.stdout
    assert all(line.startswith("[  ok]") for line in lines), result.stdout
    assert f"{major}.{minor}." in "\n".join(lines), result.stdout
    assert "/etc/containerd/certs.d" in result.stdout
    # Each node's kubelet: its version and its live credential verification policy (/configz).
    for name in kind_cluster.nodes():
        expected = credential_verification(kind_cluster.api_client(), name)
        assert f"[  ok] kubelet in {name}: {expected.describe()}" in result.stdout, result.stdout
        assert expected.kubelet_version in expected.describe()
        # ...and its image credential provider plugins, with the gate for ServiceAccount tokens.
        providers = next(line for line in result.stdout.splitlines() if f"credential providers in {name}:" in line)
        provider_ctx = kindreg_environment.contexts.get("credential_provider")
        if provider_ctx is not None:
            assert f"kindreg-credential-provider (matchImages {provider_ctx.image_host})" in providers, providers
        else:
            assert "no image credential provider configured" in providers, providers
        minor = int(expected.kubelet_version.split(".")[1])
        gate = "on" if minor >= 34 else "unknown"  # before 1.34 kubelet has no such gate to report
        assert f"ServiceAccount tokens for providers {gate}" in providers, providers
