"""``KindRegistryEnvironment``: the registries of the strategies in use, ONE kind cluster for all
of them, and the wiring between (networks, hosts.toml, KEP-1755). Usable without pytest::

    with KindRegistryEnvironment(["pull_secret", "certificate"]) as env:
        with env.workspace("pull_secret") as ws:  # its own namespace (and pull Secret)
            ws.run_pod(ws.push("busybox:1.36"))
"""

from __future__ import annotations

import contextlib
import functools
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from pytest_kindreg.cluster import KindCluster, log_progress
from pytest_kindreg.containerd import CERTS_D, HostsToml, hosts_dir
from pytest_kindreg.credential_providers import KubeletCredentialProviders
from pytest_kindreg.docker_engine import RunIdentity, docker_client
from pytest_kindreg.errors import ClusterError
from pytest_kindreg.kind_config import (
    ClusterContribution,
    KindClusterConfig,
    KindConfigSource,
    check_cluster_name,
    check_node_files,
    load_kind_config,
    missing_cni_installer,
    resolve_cluster_name,
)
from pytest_kindreg.node_credentials import NodeCredentials
from pytest_kindreg.node_image import (
    check_node_image,
    image_kubernetes_version,
    kind_default_image,
    parse_kubernetes_version,
)
from pytest_kindreg.parallel import in_parallel
from pytest_kindreg.reaper import register_run, unregister_run
from pytest_kindreg.registry import DEFAULT_IMAGE, DEFAULT_PULL_SCOPE, PrivateRegistry, check_auth_options
from pytest_kindreg.strategies import BaseStrategy, StrategyContext, create_strategy, validate_strategy_names
from pytest_kindreg.strategies.access_token import DEFAULT_ACCESS_TOKEN_TTL
from pytest_kindreg.tempdirs import make_temp_dir
from pytest_kindreg.workspace import KindPrivateRegistry


def default_state_dir() -> Path:
    """Where kept clusters keep their mounted files between runs (never a temp dir)."""
    return Path.home() / ".cache" / "pytest-kindreg"


class KindRegistryEnvironment:
    def __init__(
        self,
        strategies: Iterable[str],
        *,
        cluster_name: str | None = None,
        node_image: str | None = None,
        workers: int | None = None,
        kind_config: KindConfigSource | None = None,
        kind_bin: str | None = None,
        registry_image: str = DEFAULT_IMAGE,
        registry_auth: str = "htpasswd",
        pull_scope: Sequence[str] = DEFAULT_PULL_SCOPE,
        access_token_ttl: float = DEFAULT_ACCESS_TOKEN_TTL,
        token_listen: str | None = None,
        token_realm_host: str | None = None,
        keep_cluster: bool = False,
        reuse_cluster: bool = False,
        identity: RunIdentity | None = None,
        strategy_objects: dict[str, BaseStrategy] | None = None,
        progress: Callable[[str], None] | None = None,
        on_cluster_created: Callable[[KindCluster], object] | None = None,
    ) -> None:
        """``on_cluster_created(cluster)``: called once kind has created the cluster, before the
        wait for Ready nodes (not for a reused cluster); needed to install the CNI of a kind
        config with ``networking.disableDefaultCNI: true``."""
        self.strategy_names = tuple(sorted(set(validate_strategy_names(list(strategies)))))
        if not self.strategy_names:
            raise ValueError("at least one strategy is needed")
        self.identity = identity or RunIdentity()
        if cluster_name is not None:
            check_cluster_name(cluster_name, "cluster_name")
        self.kind_config = load_kind_config(kind_config) if kind_config is not None else None
        if self.kind_config is not None and self.kind_config.disables_default_cni and on_cluster_created is None:
            raise missing_cni_installer(self.kind_config)
        self.on_cluster_created = on_cluster_created
        self.cluster_name = resolve_cluster_name(cluster_name, self.kind_config) or self.identity.prefix
        self.node_image = node_image
        self.workers = workers
        # Everything about the cluster config that is known now is checked now, before anything starts.
        self._base_config = self._cluster_config(())
        self.kind_bin = kind_bin
        self.registry_image = registry_image
        self.registry_auth = registry_auth
        self.pull_scope = check_auth_options(registry_auth, pull_scope)
        if not access_token_ttl > 0:
            raise ValueError(f"access_token_ttl must be a number of seconds > 0, got {access_token_ttl!r}")
        self.access_token_ttl = access_token_ttl
        self.token_listen = token_listen
        self.token_realm_host = token_realm_host
        self.keep_cluster = keep_cluster or reuse_cluster
        self.reuse_cluster = reuse_cluster
        self.strategies: dict[str, BaseStrategy] = {
            name: (strategy_objects or {}).get(name) or create_strategy(name) for name in self.strategy_names
        }
        check_node_files(self.kind_config, {name: strategy.node_files for name, strategy in self.strategies.items()})
        self.progress: Callable[[str], None] = progress or log_progress
        self.contexts: dict[str, StrategyContext] = {}
        self.containerd: dict[str, str] = {}
        self.cluster: KindCluster | None = None
        self._tmp: Path | None = None
        self._docker: Any = None

    def __repr__(self) -> str:
        return f"<KindRegistryEnvironment cluster={self.cluster_name} strategies={list(self.strategy_names)}>"

    def __enter__(self) -> KindRegistryEnvironment:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def cluster_dir(self) -> Path:
        """Files the cluster mounts: kept with a kept cluster, else in this run's temp dir."""
        if self.keep_cluster:
            return default_state_dir() / self.cluster_name
        assert self._tmp is not None
        return self._tmp / "cluster"

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        self._docker = docker_client()
        # First: a node image or a mount that cannot work fails before any registry or cluster exists.
        self._base_config.check_host_paths()
        for image in self._base_config.node_images():
            check_node_image(self._docker, image)
        register_run(self.identity, cluster=self.cluster_name, keep_cluster=self.keep_cluster, cluster_created=False)
        self._tmp = make_temp_dir(self.identity, self.identity.prefix)
        self.cluster_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        cluster = KindCluster(
            self.cluster_name, kind_bin=self.kind_bin, workdir=self.cluster_dir, progress=self.progress
        )
        # Before any registry starts: a name taken by a cluster this run may not reuse.
        reuse = cluster.exists()
        if reuse and not self.reuse_cluster:
            raise ClusterError(
                f"a kind cluster named {self.cluster_name!r} already exists and this run did not create it; "
                "pass --kindreg-reuse-cluster to reuse it, or choose another --kindreg-cluster-name"
            )
        # Before any registry starts: a strategy the nodes' Kubernetes cannot serve is one error.
        self._check_kubernetes_versions(cluster, reuse)
        node_credentials = NodeCredentials(self.cluster_dir / "kubelet-config.json")
        providers = KubeletCredentialProviders(self.cluster_dir / "credential-providers")
        # Each strategy gets its own registry and credentials, so that one strategy's
        # credentials can never make another strategy's test pass.
        for name, strategy in self.strategies.items():
            registry = PrivateRegistry(
                image=self.registry_image,
                identity=self.identity,
                role=f"reg-{name}",
                docker=self._docker,
                auth=self.registry_auth,
                pull_scope=self.pull_scope,
                token_listen=self.token_listen,
                token_realm_host=self.token_realm_host,
                **strategy.registry_options,
            )
            workdir = self._tmp / name
            workdir.mkdir(mode=0o700)
            # In contexts before it starts, so that close() stops it whatever happens next.
            self.contexts[name] = StrategyContext(
                name,
                registry,
                workdir,
                node_credentials,
                access_token_ttl=self.access_token_ttl,
                credential_providers=providers,
            )
        # Each registry's image and port first: the cluster's config needs the registries' hosts
        # (node_config keys kubelet's credentials on them), not the running registries.
        in_parallel([functools.partial(ctx.registry.prepare, cluster.network) for ctx in self.contexts.values()])
        planned = {name: ctx.image_host for name, ctx in self.contexts.items()}
        config = self._config_of_strategies()
        self.cluster = cluster
        # Side by side: each registry start waits on its own container and readiness probe, and
        # the cluster is created meanwhile (or, to be reused, checked for health).
        early = [name for name, strategy in self.strategies.items() if strategy.prepares_nodes_early]
        if reuse:

            def adopt_and_prepare() -> None:
                cluster.adopt()
                cluster.reuse(config)
                self.progress(f"reusing healthy cluster {self.cluster_name}")
                # Credentials in the nodes need only the registries' hosts, known since prepare():
                # their kubelet restart (a second or more) runs while the registries start.
                self._prepare_nodes(cluster, node_credentials, early)

            in_parallel([ctx.registry.start for ctx in self.contexts.values()] + [adopt_and_prepare])
        else:
            # Recorded first: if this process dies during creation, the next run deletes it.
            register_run(self.identity, cluster_created=True)
            # The nodes are usable before the ServiceAccount controller has made `default`: wire
            # them meanwhile, then wait for the whole cluster (below).
            in_parallel(
                [ctx.registry.start for ctx in self.contexts.values()]
                + [functools.partial(cluster.create, config, service_account=False, on_created=self.on_cluster_created)]
            )
        for name, ctx in self.contexts.items():
            self.progress(f"registry for {name} ready at {ctx.registry.host} ({ctx.registry.name})")
        # Again with the hosts the registries really got (a port taken meanwhile makes start()
        # publish on another): the same mounts, their files rewritten in place before any pull.
        moved = {name for name, host in planned.items() if host != self.contexts[name].image_host}
        node_credentials.forget(planned[name] for name in moved)
        self._config_of_strategies()  # node_config's host file, with the hosts the registries got
        # Node credentials (and their kubelet restart) beside the wiring: neither needs the other.
        # On a reused cluster they are in place already, unless their registry had to move.
        pending = [name for name in early if not reuse or name in moved]
        in_parallel(
            [
                functools.partial(self._wire, cluster),
                functools.partial(self._prepare_nodes, cluster, node_credentials, pending),
            ]
        )
        self._prepare_nodes(cluster, node_credentials, [name for name in self.strategies if name not in early])
        if cluster.created:
            cluster.wait_healthy()

    def _node_versions(self, cluster: KindCluster, reuse: bool) -> dict[str, str | None]:
        """What runs (or will run) each node → its Kubernetes version, None where it cannot be told."""
        if reuse:
            return {
                f"node {node}": (cluster.read_file(node, "/kind/version") or "").strip() or None
                for node in cluster.nodes()
            }
        versions: dict[str, str | None] = {}
        for node in self._base_config.to_dict()["nodes"]:
            image = node.get("image") or kind_default_image(cluster.kind_bin)
            if image is None:
                versions[f"kind's default node image ({cluster.kind_bin})"] = None
            elif f"node image {image}" not in versions:
                versions[f"node image {image}"] = image_kubernetes_version(self._docker, image)
        return versions

    def _check_kubernetes_versions(self, cluster: KindCluster, reuse: bool) -> None:
        needs = {name: s for name, s in self.strategies.items() if s.min_kubernetes is not None}
        if not needs:
            return
        versions = self._node_versions(cluster, reuse)
        for name, strategy in needs.items():
            assert strategy.min_kubernetes is not None
            minimum = "{}.{}".format(*strategy.min_kubernetes)
            for where, version in versions.items():
                parsed = parse_kubernetes_version(version) if version else None
                if parsed is not None and parsed[:2] >= strategy.min_kubernetes:
                    continue
                runs = f"runs Kubernetes {version}" if version else "runs a Kubernetes version this run cannot tell"
                raise ClusterError(
                    f"strategy {name} needs Kubernetes >= {minimum} on every node, but {where} {runs}: "
                    f"{strategy.min_kubernetes_why}. Use a node image of Kubernetes {minimum} or newer "
                    f"(--kindreg-node-image), or leave {name} out (--kindreg-exclude-strategy {name})"
                )

    def _prepare_nodes(self, cluster: KindCluster, node_credentials: NodeCredentials, names: list[str]) -> None:
        for ctx in self.contexts.values():
            ctx.cluster = cluster
        # One kubelet restart for every strategy that asks for one (node_config on a reused
        # cluster, access_token): each restart costs about a second.
        with node_credentials.restarts_deferred():
            for name in names:
                self.progress(f"preparing nodes for {name}")
                self.strategies[name].prepare_nodes(self.contexts[name], reused=cluster.reused)

    def _config_of_strategies(self) -> KindClusterConfig:
        return self._cluster_config(
            tuple(self.strategies[name].cluster_contribution(ctx) for name, ctx in self.contexts.items())
        )

    def _cluster_config(self, contributions: tuple[ClusterContribution, ...]) -> KindClusterConfig:
        return KindClusterConfig(
            name=self.cluster_name,
            node_image=self.node_image,
            workers=self.workers,
            contributions=contributions,
            base=self.kind_config,
        )

    def _check_containerd(self, cluster: KindCluster, node: str) -> None:
        version, config_version, paths = cluster.containerd_facts(node)
        self.containerd[node] = f"containerd {'.'.join(map(str, version))} (config version {config_version})"
        if CERTS_D not in paths:
            raise ClusterError(
                f"containerd on {node} does not read {CERTS_D} (config_path={paths}); the node image "
                "ignored kind's containerdConfigPatches"
            )

    def _wire(self, cluster: KindCluster) -> None:
        nodes = cluster.nodes()
        # Each node's containerd and each registry's network: independent, so side by side.
        in_parallel(
            [functools.partial(self._check_containerd, cluster, node) for node in nodes]
            + [functools.partial(ctx.registry.connect, cluster.network) for ctx in self.contexts.values()]
        )
        self.containerd = {node: self.containerd[node] for node in nodes}  # in node order, for describe()
        files: dict[str, tuple[str | bytes, int]] = {}
        for ctx in self.contexts.values():
            registry = ctx.registry
            for image_host in (ctx.image_host, ctx.anonymous_host):
                directory = hosts_dir(image_host)
                ca = None
                if registry.tls_files is not None:
                    ca = f"{directory}/ca.crt"
                    files[ca] = (registry.tls_files.ca.read_bytes(), 0o644)
                hosts = HostsToml(endpoint=registry.network_endpoint, ca=ca).render()
                files[f"{directory}/hosts.toml"] = (hosts, 0o644)
        cluster.write_files_all(files)
        self._publish_local_registry_hosting(cluster)

    def _publish_local_registry_hosting(self, cluster: KindCluster) -> None:
        """KEP-1755: tools discover the (first) registry from kube-public/local-registry-hosting."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        first = self.contexts[self.strategy_names[0]].registry
        hosting = {
            "host": first.host,
            "hostFromContainerRuntime": first.host,
            "hostFromClusterNetwork": f"{first.name}:5000",
            "help": "https://kind.sigs.k8s.io/docs/user/local-registry/",
        }
        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="local-registry-hosting", namespace="kube-public"),
            data={"localRegistryHosting.v1": yaml.safe_dump(hosting, sort_keys=False)},
        )
        core = client.CoreV1Api(cluster.api_client())
        try:
            core.create_namespaced_config_map("kube-public", body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            core.replace_namespaced_config_map("local-registry-hosting", "kube-public", body)

    def describe(self) -> list[str]:
        """The resolved setup, one line each, for the report (no secrets)."""
        lines = []
        if self.cluster is not None:
            state = "reused" if self.cluster.reused else "created by this run"
            keep = ", kept after the run" if self.keep_cluster else ""
            lines.append(f"cluster {self.cluster_name} ({state}{keep}), node image {self.node_image or 'kind default'}")
            if self.kind_config is not None:
                lines.append(f"  kind config {self.kind_config.origin}")
            lines.extend(f"  {node}: {text}" for node, text in self.containerd.items())
        for name, ctx in self.contexts.items():
            registry = ctx.registry
            if registry.credentials is None:
                auth = "client certificate"
                if registry.token_auth:
                    auth += f", token auth, realm {registry.realm}, which reads the certificate; it pulls "
                    auth += ", ".join(registry.pull_scope)
            elif registry.token_auth:
                auth = f"token auth, realm {registry.realm}, cluster identity pulls {', '.join(registry.pull_scope)}"
            else:
                auth = "htpasswd"
            lines.append(f"strategy {name}: registry {registry.name} at {registry.host} ({registry.scheme}, {auth})")
        return lines

    # -- sharing between processes (pytest-xdist) ----------------------------------------------
    def export_state(self) -> dict[str, Any]:
        """Everything another process needs to :meth:`attach`; secrets stay in 0600 files."""
        assert self.cluster is not None and self._tmp is not None
        node_credentials = next(iter(self.contexts.values())).node_credentials
        return {
            "strategies": list(self.strategy_names),
            "run_id": self.identity.run_id,
            "pid": self.identity.pid,
            "tmp": str(self._tmp),
            "keep_cluster": self.keep_cluster,
            "reuse_cluster": self.reuse_cluster,
            "access_token_ttl": self.access_token_ttl,
            "kind_bin": self.kind_bin,
            "cluster": {
                "name": self.cluster.name,
                "workdir": str(self.cluster.workdir),
                "created": self.cluster.created,
                "reused": self.cluster.reused,
            },
            "node_credentials": {"host_file": str(node_credentials.host_file), "mounted": node_credentials.mounted},
            "credential_providers": str(self.cluster_dir / "credential-providers"),
            "registries": {name: ctx.registry.export_state() for name, ctx in self.contexts.items()},
        }

    @classmethod
    def attach(cls, state: dict[str, Any]) -> KindRegistryEnvironment:
        """A handle on an environment another process started: :meth:`close` ends it for every
        process, :meth:`detach` only lets go of it."""
        identity = RunIdentity(run_id=state["run_id"], pid=state["pid"])
        env = cls(
            state["strategies"],
            cluster_name=state["cluster"]["name"],
            kind_bin=state["kind_bin"],
            keep_cluster=state["keep_cluster"],
            reuse_cluster=state["reuse_cluster"],
            identity=identity,
        )
        env._docker = docker_client()
        env._tmp = Path(state["tmp"])
        cluster = KindCluster(env.cluster_name, kind_bin=env.kind_bin, workdir=Path(state["cluster"]["workdir"]))
        cluster.created, cluster.reused = state["cluster"]["created"], state["cluster"]["reused"]
        env.cluster = cluster
        node_credentials = NodeCredentials(Path(state["node_credentials"]["host_file"]))
        node_credentials.mounted = state["node_credentials"]["mounted"]
        providers = KubeletCredentialProviders(Path(state["credential_providers"]))
        for name, registry_state in state["registries"].items():
            registry = PrivateRegistry.attach(registry_state, docker=env._docker)
            env.contexts[name] = StrategyContext(
                name,
                registry,
                env._tmp / name,
                node_credentials,
                cluster,
                access_token_ttl=state["access_token_ttl"],
                credential_providers=providers,
            )
        return env

    def detach(self) -> None:
        for ctx in self.contexts.values():
            ctx.registry.detach()
        self.contexts.clear()
        self.cluster = None
        self._tmp = None

    def workspace(self, strategy: str, namespace: str | None = None, test_name: str = "") -> KindPrivateRegistry:
        """A per-test view: the strategy, its registry, the cluster, and its own namespace."""
        if strategy not in self.contexts:
            raise ValueError(f"strategy {strategy!r} was not set up by this environment ({self.strategy_names})")
        assert self.cluster is not None
        return KindPrivateRegistry(
            self.strategies[strategy],
            self.contexts[strategy],
            self.cluster,
            namespace=namespace,
            run_id=self.identity.run_id,
            test_name=test_name,
        )

    def close(self) -> None:
        for name, ctx in self.contexts.items():
            with contextlib.suppress(Exception):
                self.strategies[name].cleanup(ctx)
        cluster, self.cluster = self.cluster, None
        if cluster is not None and self.keep_cluster and (cluster.created or cluster.reused):
            self.progress(f"keeping cluster {self.cluster_name} (kubeconfig {cluster.kubeconfig})")
            cluster.created = False
        # The registries and the cluster go side by side: neither needs the other any more.
        stops: list[Callable[[], object]] = [ctx.registry.stop for ctx in self.contexts.values()]
        if cluster is not None:
            stops.append(functools.partial(self._delete_cluster, cluster))
        try:
            in_parallel(stops)
        finally:
            self.contexts.clear()
        # Only after a clean stop: otherwise the run record and its files let the reaper finish.
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        unregister_run(self.identity)

    def _delete_cluster(self, cluster: KindCluster) -> None:
        """Delete the cluster if this run made it and does not keep it; its files unless kept."""
        try:
            cluster.delete()
        finally:
            if not self.keep_cluster:
                shutil.rmtree(cluster.workdir, ignore_errors=True)
