"""``KindPrivateRegistry``: what the ``kind_private_registry`` fixture yields for one test —
the strategy in effect, its registry, the cluster, a client, and a namespace of its own."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_kindreg.cluster import wait_for
from pytest_kindreg.diagnosis import (
    diagnose_pull_failure,
    failed_pulls,
    format_event,
    pull_failure_reason,
    secret_cache_missed,
    summarize_pod,
)
from pytest_kindreg.errors import KindregError, PodStartError
from pytest_kindreg.registry import split_reference
from pytest_kindreg.strategies.base import BaseStrategy, PodPatch, StrategyContext

if TYPE_CHECKING:
    from pytest_kindreg.cluster import KindCluster
    from pytest_kindreg.credentials import Credentials
    from pytest_kindreg.registry import PrivateRegistry


# A pod runs (or its pull fails) 0.6-1.1 s after creation on a kind node: a 1 s poll added about
# 0.6 s per pod, 6 s per five-strategy session (benchmarks/README.md). One GET per poll.
POD_POLL_INTERVAL = 0.2
RETRY_POLL_INTERVAL = 0.5  # kubelet's pull back-off is 10 s at first

log = logging.getLogger("pytest_kindreg")


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:limit].strip("-") or "test"


def wait_for_service_account(core: Any, namespace: str, name: str = "default", timeout: float = 60.0) -> None:
    """Wait until the ServiceAccount controller has created ``name`` in a new namespace.

    Until then admission refuses pods (``serviceaccount "default" not found``, after only a few
    short retries) and a patch of the ServiceAccount is a 404, which under load is seconds.
    """

    def exists() -> None:
        core.read_namespaced_service_account(name, namespace)

    wait_for(
        f"ServiceAccount {name!r} in namespace {namespace} (the ServiceAccount controller creates it; "
        "pods and ServiceAccount patches in the namespace fail until it exists)",
        exists,
        timeout,
        0.2,
    )


def _pod_verdict(pod: Any) -> str | None:
    """ "" when the pod runs (or already Succeeded: a short command ran, so the pull worked), a
    failure reason when it failed or its image pull did, None while undecided."""
    phase = pod.status.phase if pod.status else None
    if phase in ("Running", "Succeeded"):
        return ""
    if phase == "Failed":
        return "Failed"
    return pull_failure_reason(pod)


@dataclass(frozen=True)
class PullRefusal:
    """A pull the registry refused, as the pod's events tell it."""

    image: str
    reason: str
    message: str
    pod_name: str = ""  # the refused pod, in the workspace's namespace: diagnose() explains it


class KindPrivateRegistry:
    def __init__(
        self,
        strategy: BaseStrategy,
        context: StrategyContext,
        cluster: KindCluster,
        *,
        namespace: str | None = None,
        run_id: str = "",
        test_name: str = "",
    ) -> None:
        from kubernetes import client

        self.strategy = strategy
        self.context = context
        self.cluster = cluster
        self.api_client = cluster.api_client()
        self.core = client.CoreV1Api(self.api_client)
        self.namespace = namespace or f"kr-{_slug(test_name or strategy.name, 40)}-{secrets.token_hex(3)}"
        self.run_id = run_id
        self._pod_patch: PodPatch | None = None

    def __repr__(self) -> str:
        return (
            f"<KindPrivateRegistry strategy={self.strategy.name} namespace={self.namespace} registry={self.registry!r}>"
        )

    @property
    def strategy_name(self) -> str:
        return self.strategy.name

    @property
    def registry(self) -> PrivateRegistry:
        return self.context.registry

    # -- namespace lifecycle ------------------------------------------------------------------
    def setup(self) -> KindPrivateRegistry:
        from kubernetes import client

        self.core.create_namespace(
            client.V1Namespace(
                metadata=client.V1ObjectMeta(
                    name=self.namespace,
                    labels={
                        "app.kubernetes.io/managed-by": "kindreg",
                        "kindreg/run": self.run_id or "none",
                        "kindreg/strategy": self.strategy.name,
                    },
                )
            )
        )
        # Every pod and ServiceAccount patch needs setup() first, so this one wait covers them all.
        wait_for_service_account(self.core, self.namespace)
        self._pod_patch = self.strategy.prepare_namespace(self.context, self.core, self.namespace)
        return self

    def teardown(self) -> None:
        from kubernetes.client.exceptions import ApiException

        with contextlib.suppress(ApiException):
            self.core.delete_namespace(self.namespace, propagation_policy="Background", grace_period_seconds=0)

    def __enter__(self) -> KindPrivateRegistry:
        return self.setup()

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    @property
    def pod_patch(self) -> PodPatch:
        if self._pod_patch is None:
            raise KindregError("the workspace is not set up (call setup() or use it as a context manager)")
        return self._pod_patch

    def attach_pull_secrets_to_default_service_account(self) -> None:
        """Also name the strategy's pull secrets on the namespace's ``default`` ServiceAccount,
        so pods that do not list ``imagePullSecrets`` themselves get them too."""
        names = [{"name": name} for name in self.pod_patch.image_pull_secrets]
        if not names:
            raise KindregError(f"strategy {self.strategy.name} has no pull secret to attach")
        self.core.patch_namespaced_service_account("default", self.namespace, {"imagePullSecrets": names})
        wanted = [name["name"] for name in names]
        probe = self.pod_manifest("kindreg/admission-probe:dry-run", patch=PodPatch())

        def admitted() -> None:
            # The ServiceAccount admission reads an informer cache that may not have the patch yet.
            pod = self.core.create_namespaced_pod(self.namespace, probe, dry_run="All")
            got = [ref.name for ref in pod.spec.image_pull_secrets or []]
            if got != wanted:
                raise KindregError(f"new pods get imagePullSecrets {got}, not yet {wanted}")

        wait_for(f"pods in {self.namespace} to get the default ServiceAccount's pull secrets", admitted, 30, 0.5)

    # -- images -------------------------------------------------------------------------------
    def push(self, local_image: str, repository: str | None = None, tag: str | None = None) -> str:
        """Push a local image to this strategy's registry and make it available the strategy's way.

        Returns the reference pods should use. The tag is unique to this call unless given, so
        no node cache can answer for another test (and side-loaded tags are never ``latest``).
        ``side_load`` pushes a variant with a unique label, hence a new image ID (same layers).
        """
        src_repo, src_tag = split_reference(local_image)
        repository = repository or f"{self.namespace}/{src_repo.rsplit('/', 1)[-1]}"
        tag = tag or f"{src_tag}-{secrets.token_hex(3)}"
        source = self.strategy.prepare_image(self.context, local_image)
        try:
            reference = self.registry.push(source, repository=repository, tag=tag)
        finally:
            if source != local_image:
                # Only the temporary tag: the pushed reference keeps the image while the registry lives.
                with contextlib.suppress(Exception):
                    self.registry.docker.images.remove(source, noprune=True)
        return self.strategy.publish(self.context, reference)

    # -- pods ---------------------------------------------------------------------------------
    def pod_manifest(
        self,
        image: str,
        *,
        name: str | None = None,
        command: list[str] | None = None,
        patch: PodPatch | None = None,
        node_name: str | None = None,
        node_selector: Mapping[str, str] | None = None,
    ) -> Any:
        """A pod that runs ``image`` with the strategy applied; ``node_name`` or ``node_selector``
        pin it (e.g. to a labelled worker of your kind config)."""
        from kubernetes import client

        patch = self.pod_patch if patch is None else patch
        container = client.V1Container(
            name="main",
            image=image,
            command=command or ["sleep", "3600"],
            image_pull_policy=patch.image_pull_policy,
        )
        return client.V1Pod(
            metadata=client.V1ObjectMeta(name=name or f"pod-{secrets.token_hex(3)}", namespace=self.namespace),
            spec=client.V1PodSpec(
                containers=[container],
                image_pull_secrets=[client.V1LocalObjectReference(name=n) for n in patch.image_pull_secrets] or None,
                service_account_name=patch.service_account,
                restart_policy="Never",
                termination_grace_period_seconds=0,
                node_name=node_name,
                node_selector=dict(node_selector) if node_selector else None,
            ),
        )

    def events(self, pod_name: str) -> list[Any]:
        events = self.core.list_namespaced_event(self.namespace, field_selector=f"involvedObject.name={pod_name}")
        return sorted(events.items, key=lambda e: str(e.last_timestamp or e.event_time or ""))

    def _wait_pod(self, name: str, timeout: float, resource_version: str | None = None) -> tuple[Any, str | None]:
        """Wait until the pod runs or its image pull fails; (pod, failure reason or None).

        Watches the pod from ``resource_version`` (its creation), so a change is seen when the
        API server has it, not at the next poll; polls if the watch cannot be used.
        """
        deadline = time.monotonic() + timeout
        if resource_version:
            with contextlib.suppress(Exception):  # e.g. 410 Gone: the poll below takes over
                outcome = self._watch_pod(name, resource_version, deadline)
                if outcome is not None:
                    return outcome
        while True:
            pod = self.core.read_namespaced_pod(name, self.namespace)
            verdict = _pod_verdict(pod)
            if verdict is not None:
                return pod, verdict or None
            if time.monotonic() > deadline:
                return pod, "Timeout"
            time.sleep(POD_POLL_INTERVAL)

    def _watch_pod(self, name: str, resource_version: str, deadline: float) -> tuple[Any, str | None] | None:
        from kubernetes import watch

        while time.monotonic() < deadline:
            stream = watch.Watch()
            remaining = max(1, int(deadline - time.monotonic()))
            try:
                for event in stream.stream(
                    self.core.list_namespaced_pod,
                    self.namespace,
                    field_selector=f"metadata.name={name}",
                    resource_version=resource_version,
                    timeout_seconds=remaining,
                ):
                    pod = event["object"]
                    resource_version = pod.metadata.resource_version or resource_version
                    verdict = _pod_verdict(pod)
                    if verdict is not None:
                        return pod, verdict or None
            finally:
                stream.stop()
        return None  # the deadline passed: the final read decides

    def diagnose(self, pod: Any, events: list[Any] | None = None) -> list[str]:
        """Likely causes of the pod's pull failure (seed 002's checklist); fetches events if not given."""
        secrets_here = self.core.list_namespaced_secret(self.namespace).items
        wanted = {ref.name for ref in pod.spec.image_pull_secrets or []}
        elsewhere: dict[str, list[str]] = {}
        if wanted - {s.metadata.name for s in secrets_here}:
            with contextlib.suppress(Exception):
                for secret in self.core.list_secret_for_all_namespaces().items:
                    if secret.metadata.name in wanted and secret.metadata.namespace != self.namespace:
                        elsewhere.setdefault(secret.metadata.name, []).append(secret.metadata.namespace)
        if events is None:
            events = self.events(pod.metadata.name)
        cached = self._cached_images(pod)
        return diagnose_pull_failure(
            pod,
            secrets_here,
            events,
            elsewhere,
            cached,
            reverifying_node=self._reverifying_node(pod) if cached else None,
            kubelet_log=self._kubelet_log(pod),
        )

    def _cached_images(self, pod: Any) -> list[str]:
        """The pod's images (init containers' too) that are already on its node."""
        node = pod.spec.node_name
        if not node:
            return []
        cached = []
        for container in [*(pod.spec.init_containers or []), *(pod.spec.containers or [])]:
            try:
                self.cluster.exec(node, ["crictl", "inspecti", "-q", container.image])
            except KindregError:
                continue  # not on the node (or the node is gone): nothing to add
            cached.append(container.image)
        return cached

    def _reverifying_node(self, pod: Any) -> bool | None:
        """Whether the pod's node re-verifies credentials of cached images, read from its kubelet's
        live configuration (KEP-2535); None when it cannot be read."""
        from pytest_kindreg.kubelet import credential_verification

        try:
            return credential_verification(self.api_client, pod.spec.node_name).verifies_pulled_images
        except Exception:
            return None

    def _kubelet_log(self, pod: Any, lines: int = 400) -> list[str]:
        """The node's recent kubelet journal lines about the pod's images (credential providers)."""
        node = pod.spec.node_name
        if not node:
            return []
        repositories = {
            split_reference(c.image)[0] for c in [*(pod.spec.init_containers or []), *(pod.spec.containers or [])]
        }
        journal = self.cluster.journal_tail(node, unit="kubelet", lines=lines)
        return [line for line in journal.splitlines() if any(repo in line for repo in repositories)]

    def run_pod(
        self,
        image: str,
        *,
        name: str | None = None,
        command: list[str] | None = None,
        timeout: float = 180.0,
        patch: PodPatch | None = None,
        node_name: str | None = None,
        node_selector: Mapping[str, str] | None = None,
        service_account: str | None = None,
    ) -> Any:
        """Create a pod with the strategy applied and wait until it is Running (or already Succeeded).
        ``service_account`` runs it as that ServiceAccount (workload_identity: a granted one pulls).

        On failure raises :class:`PodStartError` with the pod's events (e.g. ``ErrImagePull ...
        401 Unauthorized``) and the likely causes.
        """
        patch = self._with_service_account(patch, service_account)
        pod, failure = self._start_pod(image, name, command, timeout, patch, node_name, node_selector)
        if failure is None:
            return pod
        pod, failure, events = self._retry_if_secret_cache_missed(pod, failure, timeout)
        if failure is None:
            return pod
        raise self._start_error(pod, image, failure, events)

    def _retry_if_secret_cache_missed(
        self, pod: Any, failure: str, timeout: float
    ) -> tuple[Any, str | None, list[Any]]:
        """A failed pull whose pull secrets all exist, but which kubelet made without them (its
        secret cache had not synced), is not the credentials' failure: kubelet's next pull, after
        a back-off of about 10 s, decides. (pod, failure or None, events)."""
        events = self.events(pod.metadata.name)
        secrets_here = (s.metadata.name for s in self.core.list_namespaced_secret(self.namespace).items)
        if not secret_cache_missed(pod, events, secrets_here):
            return pod, failure, events
        log.info("pod %s: kubelet pulled before its secret cache synced; waiting for its retry", pod.metadata.name)
        return self._await_pull_retry(pod, events, timeout)

    def _await_pull_retry(self, pod: Any, events: list[Any], timeout: float) -> tuple[Any, str | None, list[Any]]:
        """Wait for kubelet's next pull of a pod whose pull failed: (pod, failure or None, events)."""
        name = pod.metadata.name
        failed = failed_pulls(events)
        deadline = time.monotonic() + timeout
        while True:
            time.sleep(RETRY_POLL_INTERVAL)
            pod = self.core.read_namespaced_pod(name, self.namespace)
            verdict = _pod_verdict(pod)
            if verdict == "":
                return pod, None, events
            events = self.events(name)
            if failed_pulls(events) > failed:
                return pod, verdict or "ErrImagePull", events
            if time.monotonic() > deadline:
                return pod, "Timeout", events

    def _start_pod(
        self,
        image: str,
        name: str | None,
        command: list[str] | None,
        timeout: float,
        patch: PodPatch | None,
        node_name: str | None,
        node_selector: Mapping[str, str] | None,
    ) -> tuple[Any, str | None]:
        """Create the pod and wait until it runs or fails: (pod, failure reason or None)."""
        manifest = self.pod_manifest(
            image, name=name, command=command, patch=patch, node_name=node_name, node_selector=node_selector
        )
        created = self.core.create_namespaced_pod(self.namespace, manifest)
        return self._wait_pod(manifest.metadata.name, timeout, created.metadata.resource_version)

    def _start_message(self, pod: Any, image: str, failure: str, events: list[Any]) -> str:
        return (
            f"pod {self.namespace}/{pod.metadata.name} ({image}, strategy {self.strategy.name}) did not start: "
            f"{failure}\n{summarize_pod(pod, events)}"
        )

    def _start_error(self, pod: Any, image: str, failure: str, events: list[Any]) -> PodStartError:
        """The pod's failure with its events and likely causes."""
        diagnosis = self.diagnose(pod, events)
        message = self._start_message(pod, image, failure, events)
        if diagnosis:
            message += "\nlikely causes:\n" + "\n".join(f"  - {d}" for d in diagnosis)
        return PodStartError(message, [format_event(e) for e in events], diagnosis)

    def expect_pull_refused(
        self,
        image: str,
        *,
        patch: PodPatch | None = None,
        timeout: float = 180.0,
        pattern: re.Pattern[str] | None = None,
        node_name: str | None = None,
        node_selector: Mapping[str, str] | None = None,
        service_account: str | None = None,
    ) -> PullRefusal:
        """Create a pod that must NOT be able to pull ``image``; returns the refusal the node saw.

        Fails if the pod runs, or if the pull failed for a reason other than credentials.
        """
        pattern = pattern or self.strategy.refusal
        patch = self._with_service_account(patch, service_account)
        pod, failure = self._start_pod(image, None, None, timeout, patch, node_name, node_selector)
        if failure is None:
            raise AssertionError(
                f"pod {pod.metadata.name} ran {image} although the {self.strategy.name} credentials were removed: "
                "something else supplied them (node cache, another strategy's credentials)"
            )
        events = self.events(pod.metadata.name)
        text = "\n".join(format_event(e) for e in events) + "\n" + self._start_message(pod, image, failure, events)
        match = pattern.search(text)
        if not match:
            # Only now the likely causes: a refusal as expected needs no diagnosis.
            raise AssertionError(
                f"the pull of {image} failed, but not for lack of credentials (expected /{pattern.pattern}/):\n"
                f"{self._start_error(pod, image, failure, events)}"
            )
        return PullRefusal(image, match.group(0), text, pod.metadata.name)

    def negative_control(
        self, local_image: str, *, node_name: str | None = None, node_selector: Mapping[str, str] | None = None
    ) -> PullRefusal:
        """Push ``local_image`` under a fresh tag and prove that, with this strategy's credentials
        removed, nodes cannot pull it (recognised from the pod's events)."""
        src_repo, _tag = split_reference(local_image)
        repository = f"{self.namespace}/{src_repo.rsplit('/', 1)[-1]}-negative"
        fresh = self.registry.push(local_image, repository=repository, tag=f"neg-{secrets.token_hex(4)}")
        reference, patch = self.strategy.negative_control(self.context, fresh)
        return self.expect_pull_refused(reference, patch=patch, node_name=node_name, node_selector=node_selector)

    def _with_service_account(self, patch: PodPatch | None, service_account: str | None) -> PodPatch | None:
        if service_account is None:
            return patch
        return dataclasses.replace(self.pod_patch if patch is None else patch, service_account=service_account)

    def grant_service_account(self, name: str) -> Credentials:
        """workload_identity only: give ServiceAccount ``name`` of this namespace (created if missing,
        annotated in place if it exists) a registry identity of its own; its pods then pull."""
        grant = getattr(self.strategy, "grant", None)
        if grant is None:
            raise KindregError(
                f"strategy {self.strategy.name} does not bind pulls to ServiceAccounts (only workload_identity)"
            )
        credentials: Credentials = grant(self.context, self.core, self.namespace, name)
        return credentials

    def rotate_credentials(self) -> Any:
        """access_token only: fetch a fresh token, write it to the nodes, restart kubelet."""
        rotate = getattr(self.strategy, "rotate", None)
        if rotate is None:
            raise KindregError(f"strategy {self.strategy.name} has no credential rotation (only access_token)")
        return rotate(self.context)
