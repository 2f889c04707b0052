"""``workload_identity``: pulls bound to the pod's ServiceAccount (KEP-4412, Kubernetes 1.34+).

kubelet requests a token of the pod's ServiceAccount for the provider's audience and hands it to
the provider plugin (``tokenAttributes``: ``requireServiceAccount``, ``cacheType: ServiceAccount``, a
required annotation), which checks it with a TokenReview (made with the node's own credentials)
and answers with the registry identity granted to that ServiceAccount — by name and UID. The way
GKE's and Azure's workload identity and Harbor's workload-identity federation tie registry access
to a workload instead of a node. A pod of an ungranted ServiceAccount gets no credentials; on 1.35
KEP-2535 keys its records of such pulls on the ServiceAccount, so a cached image is pulled again
(and refused) for another ServiceAccount's pod.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pytest_kindreg.credential_providers import IDENTITY_ANNOTATION, NODE_DIR, ProviderSpec, credentials_entry
from pytest_kindreg.credentials import Credentials
from pytest_kindreg.kind_config import ClusterContribution
from pytest_kindreg.strategies.base import BaseStrategy, PodPatch, StrategyContext
from pytest_kindreg.strategies.credential_provider import check_provider_flags, restart_if_outdated

PROVIDER_NAME = "kindreg-workload-identity-provider"
SECRETS = "workload"
DEFAULT_SERVICE_ACCOUNT = "kindreg-puller"


def audience(ctx: StrategyContext) -> str:
    """The run's token audience: the registry's own name (one per run), never a real service's."""
    return ctx.registry.name


def _rbac_name(ctx: StrategyContext) -> str:
    return f"kindreg:workload-identity:{ctx.registry.name}"


class WorkloadIdentityStrategy(BaseStrategy):
    name: ClassVar[str] = "workload_identity"
    description: ClassVar[str] = "the pod's ServiceAccount token traded by a provider plugin for its own identity"
    node_files: ClassVar[tuple[str, ...]] = (NODE_DIR,)
    prepares_nodes_early: ClassVar[bool] = True  # the config names the registry's host, known before it starts
    min_kubernetes: ClassVar[tuple[int, int] | None] = (1, 34)
    min_kubernetes_why: ClassVar[str] = (
        "kubelet hands credential provider plugins the pod's ServiceAccount token from Kubernetes 1.34 on "
        "(KEP-4412, gate KubeletServiceAccountTokenForCredentialProviders, beta and on by default)"
    )

    def cluster_contribution(self, ctx: StrategyContext) -> ClusterContribution:
        providers = ctx.require_providers()
        providers.register(
            ProviderSpec(
                PROVIDER_NAME,
                (ctx.image_host,),
                ("workload", providers.node_path("secrets", f"{SECRETS}.json"), audience(ctx), IDENTITY_ANNOTATION),
                token_attributes={
                    "serviceAccountTokenAudience": audience(ctx),
                    "requireServiceAccount": True,
                    "requiredServiceAccountAnnotationKeys": [IDENTITY_ANNOTATION],
                    "cacheType": "ServiceAccount",
                },
            )
        )
        providers.update_secrets(SECRETS, {})  # the file exists before the first grant
        return providers.contribution(self.name)

    def prepare_nodes(self, ctx: StrategyContext, *, reused: bool) -> None:
        self._allow_nodes(ctx)
        restart_if_outdated(ctx, reused=reused)
        check_provider_flags(ctx)

    def _allow_nodes(self, ctx: StrategyContext) -> None:
        """What nodes need beyond their defaults: tokens for this audience (the NodeRestriction
        admission's ServiceAccountNodeAudienceRestriction, on since 1.33, allows a node only audiences
        its pods' volumes name) and TokenReviews (the provider checks tokens with the node's credentials)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        rbac = client.RbacAuthorizationV1Api(ctx.require_cluster().api_client())
        name = _rbac_name(ctx)
        role = client.V1ClusterRole(
            metadata=client.V1ObjectMeta(name=name, labels={"app.kubernetes.io/managed-by": "kindreg"}),
            rules=[
                client.V1PolicyRule(
                    api_groups=[""], resources=[audience(ctx)], verbs=["request-serviceaccounts-token-audience"]
                ),
                client.V1PolicyRule(api_groups=["authentication.k8s.io"], resources=["tokenreviews"], verbs=["create"]),
            ],
        )
        binding = client.V1ClusterRoleBinding(
            metadata=client.V1ObjectMeta(name=name, labels={"app.kubernetes.io/managed-by": "kindreg"}),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=name),
            subjects=[client.RbacV1Subject(kind="Group", name="system:nodes", api_group="rbac.authorization.k8s.io")],
        )
        for create, replace, body in (
            (rbac.create_cluster_role, rbac.replace_cluster_role, role),
            (rbac.create_cluster_role_binding, rbac.replace_cluster_role_binding, binding),
        ):
            try:
                create(body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                replace(name, body)

    def prepare_namespace(self, ctx: StrategyContext, core: Any, namespace: str) -> PodPatch:
        self.grant(ctx, core, namespace, DEFAULT_SERVICE_ACCOUNT)
        return PodPatch(service_account=DEFAULT_SERVICE_ACCOUNT)

    def grant(self, ctx: StrategyContext, core: Any, namespace: str, name: str) -> Credentials:
        """Give ServiceAccount ``name`` (created if missing) a registry identity of its own: the
        provider answers its pods' pulls with it, bound to the ServiceAccount's UID."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            account = core.read_namespaced_service_account(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            account = core.create_namespaced_service_account(
                namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
            )
        credentials = ctx.registry.add_identity("kindreg-sa")
        # The node-side entry first: once the annotation exists, kubelet calls the provider.
        ctx.require_providers().update_secrets(
            SECRETS, {f"{namespace}/{name}": credentials_entry(credentials, uid=str(account.metadata.uid))}
        )
        core.patch_namespaced_service_account(
            name, namespace, {"metadata": {"annotations": {IDENTITY_ANNOTATION: credentials.username}}}
        )
        return credentials

    def negative_control(self, ctx: StrategyContext, fresh_reference: str) -> tuple[str, PodPatch]:
        # The same image host and image, from a pod of the namespace's ungranted `default` ServiceAccount.
        return fresh_reference, PodPatch(service_account="default")

    def cleanup(self, ctx: StrategyContext) -> None:
        """Remove the cluster-wide RBAC this run added (it matters only on a kept cluster)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        if ctx.cluster is None:
            return
        rbac = client.RbacAuthorizationV1Api(ctx.cluster.api_client())
        for delete in (rbac.delete_cluster_role_binding, rbac.delete_cluster_role):
            try:
                delete(_rbac_name(ctx))
            except ApiException as exc:
                if exc.status != 404:
                    raise
