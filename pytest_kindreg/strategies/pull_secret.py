"""``pull_secret``: a ``kubernetes.io/dockerconfigjson`` Secret in the test's namespace, named in
the pod's ``imagePullSecrets`` — the kind guide's "preferable and most portable route"."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pytest_kindreg.credentials import Credentials, docker_config
from pytest_kindreg.strategies.base import BaseStrategy, PodPatch, StrategyContext

SECRET_NAME = "kindreg-pull-secret"  # noqa: S105 - a name, not a password


def pull_secret_manifest(
    name: str, namespace: str, server: str, ctx: StrategyContext, credentials: Credentials | None = None
) -> Any:
    """A dockerconfigjson Secret for ``server`` with the cluster's credentials (or the given ones,
    e.g. an access token a refresher renews)."""
    from kubernetes import client

    credentials = credentials or ctx.registry.credentials
    assert credentials is not None
    return client.V1Secret(
        metadata=client.V1ObjectMeta(
            name=name, namespace=namespace, labels={"app.kubernetes.io/managed-by": "kindreg"}
        ),
        type="kubernetes.io/dockerconfigjson",
        # Keyed on the image host exactly as pods write it, without scheme (seed 002 §6).
        string_data={".dockerconfigjson": json.dumps(docker_config({server: credentials}))},
    )


class PullSecretStrategy(BaseStrategy):
    name: ClassVar[str] = "pull_secret"
    description: ClassVar[str] = "imagePullSecrets: a dockerconfigjson Secret in the pod's namespace"

    def prepare_namespace(self, ctx: StrategyContext, core: Any, namespace: str) -> PodPatch:
        core.create_namespaced_secret(namespace, pull_secret_manifest(SECRET_NAME, namespace, ctx.image_host, ctx))
        return PodPatch(image_pull_secrets=(SECRET_NAME,))

    def negative_control(self, ctx: StrategyContext, fresh_reference: str) -> tuple[str, PodPatch]:
        return fresh_reference, PodPatch()
