"""``KindCluster``: drives the ``kind`` CLI found on PATH. Usable without pytest."""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import platform
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from pytest_kindreg import runner
from pytest_kindreg.containerd import config_paths, parse_config_version, parse_containerd_version
from pytest_kindreg.credentials import write_private_file
from pytest_kindreg.docker_engine import RunIdentity, docker_client
from pytest_kindreg.docker_nodes import DockerNodes, thaw_frozen
from pytest_kindreg.errors import ClusterError, CommandError, KindUnavailableError, first_line
from pytest_kindreg.host_sysctls import KIND_CLUSTER_LABEL, HostSysctls, report_once
from pytest_kindreg.kind_config import (
    KindClusterConfig,
    KindConfigSource,
    check_cluster_name,
    config_differences,
    load_kind_config,
    missing_cni_installer,
)
from pytest_kindreg.node_image import NodeImageError, check_node_image, node_image_problem
from pytest_kindreg.tempdirs import make_temp_dir

log = logging.getLogger("pytest_kindreg")

FINGERPRINT_CONFIGMAP = "kindreg-cluster-config"
RESTART_POLL_INTERVAL = 0.2  # seconds between checks while a restarted kubelet comes back
# kind's role label (sigs.k8s.io/kind pkg/cluster/internal/providers/docker/constants.go; the
# cluster label is host_sysctls.KIND_CLUSTER_LABEL).
KIND_ROLE_LABEL = "io.x-k8s.kind.role"
# The API server proxy kind adds in front of several control-plane nodes (haproxy up to kind
# v0.31, envoy from v0.32): it carries the cluster label, but it is kind's, not a Kubernetes node.
KIND_LOAD_BALANCER_ROLE = "external-load-balancer"
CONTROL_PLANE_TAINT = "node-role.kubernetes.io/control-plane"


def find_kind(kind_bin: str | None = None) -> str:
    """The kind binary: an explicit path, else ``$KIND``, else ``kind`` on PATH."""
    candidate = kind_bin or os.environ.get("KIND") or "kind"
    found = shutil.which(candidate)
    if not found:
        where = "on PATH" if candidate == "kind" else f"at {candidate!r}"
        raise KindUnavailableError(f"no kind binary {where}")
    return found


def kind_available(kind_bin: str | None = None) -> str | None:
    """None when a kind binary is found, else why not."""
    try:
        find_kind(kind_bin)
    except KindUnavailableError as exc:
        return str(exc)
    return None


class _NotYet(Exception):
    pass


def wait_for(what: str, check: Callable[[], None], timeout: float, interval: float = 1.0) -> None:
    """Call ``check`` until it stops raising, within one deadline; the timeout names what and why."""
    last: list[str] = []

    def attempt() -> None:
        try:
            check()
        except Exception as exc:
            last[:] = [f"{type(exc).__name__}: {exc}"]
            raise _NotYet from exc

    try:
        for try_ in Retrying(
            stop=stop_after_delay(timeout), wait=wait_fixed(interval), retry=retry_if_exception_type(_NotYet)
        ):
            with try_:
                attempt()
    except RetryError as exc:
        raise ClusterError(
            f"timed out after {timeout:.0f}s waiting for {what}; last error: {last[0] if last else 'none'}"
        ) from exc


def raw_get(api_client: Any, path: str) -> str:
    """GET a non-resource path (``/readyz``) through a kubernetes ``ApiClient``, whose low-level
    API changed with the openapi-generator 7 clients (kubernetes >= 35)."""
    if hasattr(api_client, "param_serialize"):
        method, url, headers, body, post_params = api_client.param_serialize("GET", path, auth_settings=["BearerToken"])
        response = api_client.call_api(method, url, header_params=headers, body=body, post_params=post_params)
        response.read()
        text = response.data.decode(errors="replace") if isinstance(response.data, bytes) else str(response.data)
        if response.status >= 400:
            raise ClusterError(f"GET {path} answered {response.status}: {text[:200]}")
        return text
    return str(
        api_client.call_api(
            path,
            "GET",
            auth_settings=["BearerToken"],
            response_type="str",
            _return_http_data_only=True,
            _preload_content=True,
        )
    )


def _ready_status(node_status: Any) -> str | None:
    """The status ("True", "False", "Unknown") of a node's Ready condition, None if it has none."""
    ready = [c for c in node_status.conditions or [] if c.type == "Ready"]
    return str(ready[0].status) if ready else None


def lease_renewed(before: datetime.datetime | None, now: datetime.datetime | None) -> bool:
    """Whether a node lease's ``renewTime`` (``now``) shows a renewal after ``before``.

    Both values come from the lease, written by the node's kubelet: comparing them never mixes
    this host's clock with the node's.
    """
    if now is None:
        return False
    if before is None:
        return True

    def utc(value: datetime.datetime) -> datetime.datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=datetime.timezone.utc)

    return utc(now) > utc(before)


def kind_node_containers(listing: str) -> list[tuple[str, str]]:
    """(container id, name) of a cluster's Kubernetes nodes, in listing order, from ``docker ps``
    lines ``ID<TAB>NAME<TAB>ROLE``: every container of the cluster but kind's external load
    balancer, told by its role label, never by its name."""
    nodes = []
    for line in listing.splitlines():
        if not line.strip():
            continue
        container_id, name, role = [*line.split("\t"), "", ""][:3]
        if role.strip() != KIND_LOAD_BALANCER_ROLE:
            nodes.append((container_id.strip(), name.strip()))
    return nodes


def only_control_planes(nodes: list[dict[str, Any]]) -> bool:
    """Whether a rendered config's nodes are several control planes and no worker: kind removes
    the control-plane taint only from a cluster of one node, so on such a cluster no pod could
    ever be scheduled."""
    return len(nodes) > 1 and all(node.get("role", "control-plane") == "control-plane" for node in nodes)


def log_progress(message: str) -> None:
    """Where progress lines go when nobody asked for them: the log."""
    log.info("kindreg: %s", message)


class KindCluster(DockerNodes):
    """A kind cluster with its own kubeconfig file (0600), never the user's ``~/.kube/config``."""

    def __init__(
        self,
        name: str,
        *,
        kind_bin: str | None = None,
        workdir: Path | None = None,
        create_timeout: float = 600.0,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.name = check_cluster_name(name, "KindCluster name")
        self.kind_bin = find_kind(kind_bin)
        self.workdir = workdir or make_temp_dir(RunIdentity(), name)
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.create_timeout = create_timeout
        self.progress: Callable[[str], None] = progress or log_progress
        self.created = False
        self.reused = False
        self._nodes: list[str] | None = None  # listed once the cluster is up: nodes do not change after
        self._adopted = False  # adopt() found it healthy
        self._api_client: Any = None

    def __repr__(self) -> str:
        state = "created" if self.created else "reused" if self.reused else "not up"
        return f"<KindCluster {self.name} {state} kubeconfig={str(self.kubeconfig)!r}>"

    # -- kind CLI ---------------------------------------------------------------------------
    def kind(
        self, *args: str, input: str | None = None, timeout: float = 120.0, env: dict[str, str] | None = None
    ) -> str:
        return runner.run([self.kind_bin, *args], input=input, timeout=timeout, env=env).stdout

    @property
    def _private_docker_config(self) -> dict[str, str]:
        """DOCKER_CONFIG for the docker CLI that ``kind load`` runs: the user's docker context,
        never the user's registry credentials."""
        from pytest_kindreg.docker_engine import private_docker_env

        return private_docker_env(self.workdir / "docker-config")

    def version(self) -> str:
        return self.kind("version").strip()

    @property
    def network(self) -> str:
        """The Docker network kind puts nodes on (``KIND_EXPERIMENTAL_DOCKER_NETWORK`` or ``kind``)."""
        return os.environ.get("KIND_EXPERIMENTAL_DOCKER_NETWORK") or "kind"

    def exists(self) -> bool:
        return self.name in self.kind("get", "clusters").split()

    def cluster_config(self, config: KindClusterConfig | KindConfigSource | None = None) -> KindClusterConfig:
        """``config`` as a :class:`KindClusterConfig` for this cluster: a user's kind config (a YAML
        file's path, a dict) becomes its base; None means one control-plane node."""
        if isinstance(config, KindClusterConfig):
            if config.name != self.name:
                raise ClusterError(f"config is for cluster {config.name!r}, not {self.name!r}")
            return config
        return KindClusterConfig(name=self.name, base=None if config is None else load_kind_config(config))

    def create(
        self,
        config: KindClusterConfig | KindConfigSource | None = None,
        *,
        service_account: bool = True,
        on_created: Callable[[KindCluster], object] | None = None,
    ) -> None:
        """Create the cluster from ``config`` (see :meth:`cluster_config`) and wait until it is healthy.

        With ``service_account=False`` it returns once the nodes are usable (``/readyz``, every
        node Ready with its lease), before the ``default`` ServiceAccount exists: the caller can
        write into the nodes meanwhile, and must call :meth:`wait_healthy` before using it.

        ``on_created(cluster)`` runs once kind has created the cluster, before the wait for healthy
        nodes: where a config with ``networking.disableDefaultCNI: true`` gets its CNI installed
        (such a config without it is refused before anything is created).
        """
        config = self.cluster_config(config)
        if config.disables_default_cni and on_created is None:
            assert config.base is not None
            raise missing_cni_installer(config.base)
        config.check_host_paths()
        # A node image containerd cannot run with our config_path patch fails here, in one message,
        # instead of as a cluster that never comes up.
        for image in config.node_images():
            check_node_image(docker_client(), image)
        self.progress(f"creating kind cluster {self.name} (this takes a minute)...")
        started = time.monotonic()
        # The host's sysctls before a kubelet of this cluster rewrites them: delete() puts them back.
        HostSysctls().record()
        # Owned from the first second: an interrupted or failed create is deleted too.
        self.created = True
        try:
            self.kind(
                "create",
                "cluster",
                "--name",
                self.name,
                "--config",
                "-",
                "--kubeconfig",
                str(self.kubeconfig),
                # Without a CNI no node becomes Ready before on_created installs one: kind would
                # wait its whole --wait for nothing (and then only warn).
                *(() if config.disables_default_cni else ("--wait", f"{int(self.create_timeout)}s")),
                input=config.to_yaml(),
                timeout=self.create_timeout + 60,
            )
        except CommandError as exc:
            # An image that was not local before has been pulled by kind now: say why, if we know.
            for image in config.node_images():
                problem = node_image_problem(docker_client(), image)
                if problem:
                    raise NodeImageError(problem) from exc
            raise
        self.kubeconfig.chmod(0o600)
        self.progress(f"cluster {self.name} created in {time.monotonic() - started:.0f}s")
        # kind's --wait covers the control plane only: workers may still be registering.
        self._nodes = self._list_nodes()
        if only_control_planes(config.to_dict()["nodes"]):
            self._untaint_control_planes()
        if on_created is not None:
            on_created(self)
        self.wait_healthy(service_account=service_account)
        self._record_fingerprint(config)

    def adopt(self) -> None:
        """Take over an existing cluster's kubeconfig and check that it is healthy (the first half
        of :meth:`reuse`, which needs no config)."""
        write_private_file(self.kubeconfig, self.kind("get", "kubeconfig", "--name", self.name))
        self._nodes = self._list_nodes()
        problems = self.health_problems()
        if problems:
            raise ClusterError(
                f"cluster {self.name!r} exists but is not healthy ({'; '.join(problems)}); delete it with "
                f"`kind delete cluster --name {self.name}` or choose another --kindreg-cluster-name"
            )
        self._adopted = True

    def reuse(self, config: KindClusterConfig | KindConfigSource | None = None) -> None:
        """Adopt an existing cluster, only if it is healthy and was made from the same config."""
        config = self.cluster_config(config)
        if not self._adopted:
            self.adopt()
        recorded, recorded_yaml = self.recorded_config()
        if recorded != config.fingerprint():
            source = f"this run's kind config {config.base.origin}" if config.base else "this run's settings"
            raise ClusterError(
                f"cluster {self.name!r} exists but was not created with the configuration this run needs "
                f"({source}, the node image, workers, the mounts and containerd patches of the selected "
                f"strategies; recorded {recorded[:12] if recorded else 'nothing'}, needed "
                f"{config.fingerprint()[:12]}). {self._differences(recorded_yaml, config)}Delete it with "
                f"`kind delete cluster --name {self.name}` or use another --kindreg-cluster-name."
            )
        self.reused = True

    @staticmethod
    def _differences(recorded_yaml: str | None, config: KindClusterConfig) -> str:
        import yaml

        try:
            recorded = yaml.safe_load(recorded_yaml or "")
        except yaml.YAMLError:
            recorded = None
        if not isinstance(recorded, dict):
            return ""
        needed = config.to_dict()
        for doc in (recorded, needed):
            doc.pop("name", None)
        lines = config_differences(recorded, needed)
        return "What differs:\n" + "\n".join(f"  {line}" for line in lines) + "\n" if lines else ""

    def delete(self) -> None:
        """Delete the cluster, only if this object created it."""
        if self.created:
            delete = ["delete", "cluster", "--name", self.name, "--kubeconfig", str(self.kubeconfig)]
            try:
                self.kind(*delete, timeout=300)
            except CommandError as exc:
                # A node whose nested container stayed frozen (cgroup v1) cannot be killed: thaw, retry.
                if "did not receive an exit event" not in exc.stderr or not thaw_frozen(self._node_container_ids()):
                    raise
                self.progress(f"thawed frozen containers in the nodes of {self.name}; deleting it again")
                self.kind(*delete, timeout=300)
            self.created = False
            # The last kind cluster gone: the VM-wide sysctls its kubelet changed go back.
            report_once(HostSysctls().restore(), self.progress)
        self._nodes = None
        if self._api_client is not None:
            with contextlib.suppress(Exception):
                self._api_client.close()
            self._api_client = None

    # -- Kubernetes API ---------------------------------------------------------------------
    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` bound to this cluster's own kubeconfig."""
        if self._api_client is None:
            from kubernetes import config as kube_config

            self._api_client = kube_config.new_client_from_config(config_file=str(self.kubeconfig))
        return self._api_client

    def health_problems(self, *, service_account: bool = True) -> list[str]:
        """What keeps the cluster from being usable: /readyz, every node of the cluster registered,
        Ready and holding its lease, the default ServiceAccount. Empty when healthy."""
        from kubernetes import client

        api = self.api_client()
        problems: list[str] = []
        try:
            body = raw_get(api, "/readyz")
            if "ok" not in body:
                problems.append(f"/readyz answered {body!r}")
            core = client.CoreV1Api(api)
            registered = core.list_node().items
            for node in registered:
                if _ready_status(node.status) != "True":
                    problems.append(f"node {node.metadata.name} is not Ready")
            missing = sorted(set(self.nodes()) - {node.metadata.name for node in registered})
            if missing:
                problems.append(f"node(s) {', '.join(missing)} not registered yet")
            # A kubelet renews its lease once it is fully up; before, a restart cannot be judged by it.
            leases = client.CoordinationV1Api(api).list_namespaced_lease("kube-node-lease").items
            leaseless = sorted(set(self.nodes()) - {lease.metadata.name for lease in leases})
            if leaseless:
                problems.append(f"node(s) {', '.join(leaseless)} have no lease yet")
            if service_account:
                core.read_namespaced_service_account("default", "default")
        except Exception as exc:
            problems.append(f"{type(exc).__name__}: {first_line(exc)}")
        return problems

    def wait_healthy(self, timeout: float = 180.0, *, service_account: bool = True) -> None:
        def check() -> None:
            problems = self.health_problems(service_account=service_account)
            if problems:
                raise ClusterError("; ".join(problems))

        what = "nodes Ready with their leases, default ServiceAccount" if service_account else "nodes Ready"
        wait_for(
            f"cluster {self.name} to be healthy (/readyz, {what})",
            check,
            timeout,
            # The default ServiceAccount comes 3-4 s after `kind create --wait` returns: a coarse
            # poll would add up to its whole interval to every creation (benchmarks/README.md).
            interval=0.5,
        )

    def _untaint_control_planes(self) -> None:
        """For several control planes and no worker (an HA config), what kind does for one node:
        the control-plane taint goes, so that pods can run."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        core = client.CoreV1Api(self.api_client())

        def untaint() -> None:
            for node in core.list_node().items:
                for index, taint in enumerate(node.spec.taints or []):
                    if taint.key == CONTROL_PLANE_TAINT:
                        path = f"/spec/taints/{index}"
                        # JSON patch with a test: a taint list changed meanwhile fails, and is read again.
                        patch = [
                            {"op": "test", "path": f"{path}/key", "value": taint.key},
                            {"op": "remove", "path": path},
                        ]
                        try:
                            core.patch_node(node.metadata.name, patch)
                        except ApiException as exc:
                            raise ClusterError(
                                f"could not remove {taint.key} from {node.metadata.name}: {exc.reason}"
                            ) from exc
                        break

        wait_for(f"the control-plane taint of cluster {self.name} to be removed", untaint, 30, interval=0.5)
        self.progress(f"cluster {self.name} has only control-plane nodes: their taint removed, as kind does for one")

    def _record_fingerprint(self, config: KindClusterConfig) -> None:
        from kubernetes import client

        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=FINGERPRINT_CONFIGMAP, namespace="kube-system"),
            data={"fingerprint": config.fingerprint(), "config.yaml": config.to_yaml()},
        )
        client.CoreV1Api(self.api_client()).create_namespaced_config_map("kube-system", body)

    def recorded_config(self) -> tuple[str | None, str | None]:
        """(fingerprint, rendered config YAML) recorded when this cluster was created, if any."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            cm = client.CoreV1Api(self.api_client()).read_namespaced_config_map(FINGERPRINT_CONFIGMAP, "kube-system")
        except ApiException:
            return None, None
        data = cm.data or {}
        return str(data.get("fingerprint") or "") or None, data.get("config.yaml")

    def recorded_fingerprint(self) -> str | None:
        return self.recorded_config()[0]

    # -- nodes ------------------------------------------------------------------------------
    def nodes(self) -> list[str]:
        return list(self._nodes) if self._nodes is not None else self._list_nodes()

    def _node_containers(self) -> list[tuple[str, str]]:
        """(id, name) of the cluster's node containers: what ``kind get nodes`` lists (the same
        ``docker ps``), without kind's load balancer."""
        out = runner.run(
            [
                "docker",
                "ps",
                "-a",
                "--no-trunc",
                "--filter",
                f"label={KIND_CLUSTER_LABEL}={self.name}",
                "--format",
                f'{{{{.ID}}}}\t{{{{.Names}}}}\t{{{{.Label "{KIND_ROLE_LABEL}"}}}}',
            ],
            timeout=60,
            env=self._private_docker_config,
        ).stdout
        return kind_node_containers(out)

    def _node_container_ids(self) -> list[str]:
        return [container_id for container_id, _name in self._node_containers()]

    def _list_nodes(self) -> list[str]:
        return [name for _id, name in self._node_containers()]

    def restart_kubelet(self, node: str, timeout: float = 120.0) -> None:
        """Restart kubelet and wait, within one deadline, until it is healthy and the node Ready."""
        from kubernetes import client

        core = client.CoreV1Api(self.api_client())
        coordination = client.CoordinationV1Api(self.api_client())

        def renew_time() -> datetime.datetime | None:
            from kubernetes.client.exceptions import ApiException

            try:
                lease = coordination.read_namespaced_lease(node, "kube-node-lease")
            except ApiException as exc:
                if exc.status == 404:  # a kubelet restarted right after joining may not have made it yet
                    return None
                raise
            return lease.spec.renew_time if lease.spec else None

        self.exec(node, ["systemctl", "restart", "kubelet.service"])
        started = time.monotonic()
        # Read once systemctl has returned and the old kubelet is gone, so any later renewal is the
        # new kubelet's. After a read before the restart, the old kubelet could still renew once.
        before = renew_time()

        def healthz() -> None:
            self.exec(node, ["curl", "-sf", "http://127.0.0.1:10248/healthz"])

        # kubelet answers about 0.3 s after systemctl returns: poll finely, or each restart waits a
        # whole interval (1 s by default) for nothing (benchmarks/README.md).
        wait_for(f"kubelet on {node} to answer /healthz after restart", healthz, timeout, RESTART_POLL_INTERVAL)

        def ready() -> None:
            # Ready stays True through a short restart; the node lease proves the new kubelet reports.
            renewed = renew_time()
            if not lease_renewed(before, renewed):
                raise ClusterError(f"node lease of {node} last renewed {renewed}, not since the kubelet restart")
            ready = _ready_status(core.read_node_status(node).status)
            if ready != "True":
                raise ClusterError(f"node {node} Ready={ready or 'missing'}")
            # The new kubelet takes pods only once its sync loop runs, which after a restart waits
            # for the runtime-dependent modules (cAdvisor) with a backoff of up to 5 s: a pod
            # created before then waits that long. Its sync loop has run when it knows the pods
            # bound to its node.
            self._check_kubelet_knows_its_pods(node)

        wait_for(
            f"node {node} to renew its lease, be Ready and sync its pods after the kubelet restart",
            ready,
            max(1.0, timeout - (time.monotonic() - started)),
            RESTART_POLL_INTERVAL,
        )

    def _check_kubelet_knows_its_pods(self, node: str) -> None:
        from kubernetes import client

        bound = client.CoreV1Api(self.api_client()).list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}")
        wanted = {
            (p.metadata.namespace, p.metadata.name) for p in bound.items if p.status.phase in ("Pending", "Running")
        }
        listed = json.loads(raw_get(self.api_client(), f"/api/v1/nodes/{node}/proxy/pods")).get("items") or []
        known = {(p["metadata"].get("namespace"), p["metadata"]["name"]) for p in listed}
        missing = sorted(f"{ns}/{name}" for ns, name in wanted - known)
        if missing:
            raise ClusterError(f"the kubelet on {node} does not run its pods yet ({', '.join(missing[:3])} ...)")

    def containerd_version(self, node: str) -> tuple[int, int, int]:
        return parse_containerd_version(self.exec(node, ["containerd", "--version"]))

    def containerd_facts(self, node: str) -> tuple[tuple[int, int, int], int, list[str]]:
        """(containerd version, config version, the CRI plugin's config_path roots), read at runtime
        with one ``docker exec``: ``containerd --version`` and ``containerd config dump``."""
        separator = "--- kindreg: containerd config dump ---"
        out = self.exec(node, ["sh", "-c", f'containerd --version && echo "{separator}" && containerd config dump'])
        version, _, dump = out.partition(separator + "\n")
        return parse_containerd_version(version), parse_config_version(dump), config_paths(dump)

    def containerd_config(self, node: str) -> tuple[int, list[str]]:
        """(config version, the CRI plugin's config_path roots) from ``containerd config dump`` at runtime."""
        dump = self.exec(node, ["containerd", "config", "dump"])
        return parse_config_version(dump), config_paths(dump)

    def journal_tail(self, node: str, unit: str = "containerd", lines: int = 40) -> str:
        try:
            return self.exec(node, ["journalctl", "-u", unit, "-n", str(lines), "--no-pager"])
        except CommandError as exc:
            return f"(journal unavailable: {exc})"

    # -- images -----------------------------------------------------------------------------
    def load_image(self, image: str) -> None:
        """``kind load docker-image``; falls back to ``docker save`` + ``kind load image-archive``
        for Docker's containerd image store, where the first fails (kind #3795)."""
        self.progress(f"loading {image} into the nodes of {self.name}...")
        try:
            self.kind("load", "docker-image", image, "--name", self.name, timeout=300, env=self._private_docker_config)
            return
        except CommandError as exc:
            if "digest" not in exc.stderr and "not found" not in exc.stderr:
                raise
        # Inside the cluster's own work dir, which carries its ownership record.
        with tempfile.TemporaryDirectory(prefix="load-", dir=self.workdir) as tmp:
            archive = str(Path(tmp) / "image.tar")
            arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
            try:
                runner.run(
                    ["docker", "save", "--platform", f"linux/{arch}", "-o", archive, image],
                    timeout=300,
                    env=self._private_docker_config,
                )
            except CommandError as exc:
                if not re.search(r"unknown flag|platform", exc.stderr):
                    raise
                runner.run(["docker", "save", "-o", archive, image], timeout=300, env=self._private_docker_config)
            self.kind(
                "load", "image-archive", archive, "--name", self.name, timeout=300, env=self._private_docker_config
            )
