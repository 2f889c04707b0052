"""``kindreg doctor``: checks what pytest-kindreg needs and says what to fix."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

from pytest_kindreg.cluster import KindCluster, find_kind
from pytest_kindreg.containerd import CERTS_D
from pytest_kindreg.credentials import write_private_file
from pytest_kindreg.docker_engine import RunIdentity, docker_client
from pytest_kindreg.errors import KindregError, first_line
from pytest_kindreg.registry import BUILD_HINT, DEFAULT_IMAGE, DEFAULT_TEST_IMAGE
from pytest_kindreg.tempdirs import make_temp_dir


@dataclass(frozen=True)
class Check:
    status: str  # "ok", "warn" or "FAIL"
    what: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"[{self.status:>4}] {self.what}: {self.detail}"
        return text + (f"\n         fix: {self.fix}" if self.fix else "")


def _image_check(docker: Any, image: str, what: str, fix: str, missing_status: str = "FAIL") -> Check:
    from docker.errors import ImageNotFound

    try:
        docker.images.get(image)
    except ImageNotFound:
        return Check(missing_status, what, f"{image} is not present locally", fix)
    return Check("ok", what, f"{image} present")


def run_checks(
    *,
    kind_bin: str | None = None,
    node_image: str | None = None,
    registry_image: str = DEFAULT_IMAGE,
    test_image: str = DEFAULT_TEST_IMAGE,
    cluster: str | None = None,
) -> list[Check]:
    checks: list[Check] = []
    try:
        docker = docker_client(timeout=15)
        version = docker.version()
        checks.append(Check("ok", "docker", f"engine {version.get('Version')} (API {version.get('ApiVersion')})"))
    except KindregError as exc:
        checks.append(Check("FAIL", "docker", str(exc), "start dockerd, or `bash scripts/setup.sh` on Debian"))
        docker = None
    try:
        kind = find_kind(kind_bin)
        from pytest_kindreg import runner

        checks.append(Check("ok", "kind", runner.run([kind, "version"], timeout=30).stdout.strip()))
    except KindregError as exc:
        checks.append(
            Check(
                "warn",
                "kind",
                str(exc).split(" Install")[0],
                "install kind from https://kind.sigs.k8s.io (Docker-level features work without it)",
            )
        )
        kind = None
    if docker is not None:
        checks.append(_image_check(docker, registry_image, "registry image", BUILD_HINT))
        checks.append(_image_check(docker, test_image, "test image", "`kindreg build-images`", "warn"))
        if node_image:
            checks.append(
                _image_check(
                    docker,
                    node_image,
                    "node image",
                    f"`docker pull {node_image}` where a registry is reachable",
                    "warn",
                )
            )
    checks.append(
        Check("ok", "containerd (host)", host_containerd)
        if (host_containerd := shutil.which("containerd"))
        else Check(
            "warn",
            "containerd (host)",
            "not installed; only pytest-kindreg's own node-file tests use it",
            "apt-get install containerd",
        )
    )
    if cluster and kind is not None:
        checks.extend(_cluster_checks(cluster, kind))
    return checks


def _cluster_checks(cluster: str, kind: str) -> list[Check]:
    """Each node of an existing cluster: does containerd's CRI plugin read certs.d, and which
    kubelet, with which image credential verification (KEP-2535), runs there?"""
    checks: list[Check] = []
    workdir = make_temp_dir(RunIdentity(), "kindreg-doctor")  # KindCluster's files; removed after
    try:
        kc = KindCluster(cluster, kind_bin=kind, workdir=workdir)
        if not kc.exists():
            return [Check("warn", f"cluster {cluster}", "does not exist")]
        write_private_file(kc.kubeconfig, kc.kind("get", "kubeconfig", "--name", cluster))
        for node in kc.nodes():
            containerd, config_version, paths = kc.containerd_facts(node)
            version = ".".join(map(str, containerd))
            ok = CERTS_D in paths
            checks.append(
                Check(
                    "ok" if ok else "FAIL",
                    f"containerd in {node}",
                    f"{version}, config version {config_version}, CRI config_path {paths}",
                    "" if ok else "recreate the cluster with pytest-kindreg's config_path patch",
                )
            )
            checks.append(_kubelet_check(kc, node))
            checks.append(_provider_check(kc, node))
    except (KindregError, ValueError) as exc:
        checks.append(Check("FAIL", f"cluster {cluster}", str(exc)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return checks


def _kubelet_check(cluster: KindCluster, node: str) -> Check:
    """The kubelet's version and live verification policy, from the API server (never guessed)."""
    from pytest_kindreg.kubelet import credential_verification

    try:
        verification = credential_verification(cluster.api_client(), node)
    except Exception as exc:
        return Check(
            "warn",
            f"kubelet in {node}",
            f"cannot read its live configuration through the API server: {first_line(exc)}",
            f"check `kubectl get --raw /api/v1/nodes/{node}/proxy/configz`",
        )
    return Check("ok", f"kubelet in {node}", verification.describe())


def _provider_check(cluster: KindCluster, node: str) -> Check:
    """The node's image credential provider plugins: names, matchImages, ServiceAccount tokens."""
    from pytest_kindreg.kubelet import credential_provider_setup

    try:
        setup = credential_provider_setup(cluster, node)
    except (KindregError, ValueError) as exc:
        return Check(
            "warn",
            f"credential providers in {node}",
            f"cannot read them: {first_line(exc)}",
            f"check `docker exec {node} cat /var/lib/kubelet/kubeadm-flags.env`",
        )
    return Check("ok", f"credential providers in {node}", setup.describe())
