"""Least privilege for pull secrets (seed 002 §7): a namespaced Role that can only ``get`` the
pull secret by name, bound to one ServiceAccount, and a SubjectAccessReview to check it."""

from __future__ import annotations

from typing import Any


def pull_secret_reader_role(namespace: str, secret_name: str, role_name: str = "pull-secret-reader") -> Any:
    from kubernetes import client

    return client.V1Role(
        metadata=client.V1ObjectMeta(name=role_name, namespace=namespace),
        rules=[
            client.V1PolicyRule(api_groups=[""], resources=["secrets"], resource_names=[secret_name], verbs=["get"])
        ],
    )


def role_binding(namespace: str, role_name: str, service_account: str) -> Any:
    from kubernetes import client

    return client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name=f"{role_name}-{service_account}", namespace=namespace),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name=role_name),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=service_account, namespace=namespace)],
    )


def can_i(api_client: Any, namespace: str, service_account: str, verb: str, name: str | None = None) -> bool:
    """Ask the API server (SubjectAccessReview) whether the ServiceAccount may ``verb`` secrets."""
    from kubernetes import client

    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{namespace}:{service_account}",
            groups=["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
            resource_attributes=client.V1ResourceAttributes(
                namespace=namespace, verb=verb, resource="secrets", name=name
            ),
        )
    )
    result = client.AuthorizationV1Api(api_client).create_subject_access_review(review)
    return bool(result.status.allowed)


def wait_until_allowed(
    api_client: Any, namespace: str, service_account: str, verb: str, name: str | None = None, timeout: float = 30.0
) -> None:
    """Wait until the authorizer, which reads RBAC objects from an informer cache, allows it."""
    from pytest_kindreg.cluster import wait_for
    from pytest_kindreg.errors import KindregError

    def allowed() -> None:
        if not can_i(api_client, namespace, service_account, verb, name):
            raise KindregError(f"{service_account} may not yet {verb} secret {name}")

    wait_for(f"RBAC to allow {service_account} to {verb} secret {name} in {namespace}", allowed, timeout, 0.5)
