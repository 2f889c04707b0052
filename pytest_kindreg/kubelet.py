"""What a node's kubelet really runs with, read through the API server (``/configz``): its version and
its image-pull credential verification (KEP-2535, feature gate ``KubeletEnsureSecretPulledImages``:
alpha and off in Kubernetes 1.33 and 1.34, beta and on by default from 1.35)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pytest_kindreg.cluster import raw_get

GATE = "KubeletEnsureSecretPulledImages"
# Kubelet's policies (pkg/kubelet/apis/config): which cached images it re-verifies for a pod.
NEVER_VERIFY = "NeverVerify"
VERIFYING_POLICIES = ("NeverVerifyPreloadedImages", "NeverVerifyAllowlistedImages", "AlwaysVerify")


def kubelet_configz(api_client: Any, node: str) -> dict[str, Any]:
    """The live ``KubeletConfiguration`` of ``node``'s kubelet (``/api/v1/nodes/<node>/proxy/configz``)."""
    doc = json.loads(raw_get(api_client, f"/api/v1/nodes/{node}/proxy/configz"))
    config = doc.get("kubeletconfig") if isinstance(doc, dict) else None
    if not isinstance(config, dict):
        raise ValueError(f"/configz of node {node} has no kubeletconfig")
    return config


@dataclass(frozen=True)
class CredentialVerification:
    """How ``node``'s kubelet treats images already on the node for pods that bring no credentials.

    ``policy`` is the live ``imagePullCredentialsVerificationPolicy``; kubelet sets it (by default
    ``NeverVerifyPreloadedImages``) exactly when the gate is on, and refuses it when the gate is off,
    so None means the kubelet verifies nothing.
    """

    node: str
    kubelet_version: str
    policy: str | None
    allowlist: tuple[str, ...] = ()

    @property
    def verifies_pulled_images(self) -> bool:
        """Whether an image kubelet pulled with a pod's Secret is re-verified for pods without it."""
        return self.policy in VERIFYING_POLICIES

    def describe(self) -> str:
        if self.policy is None:
            return f"kubelet {self.kubelet_version}, no image credential verification ({GATE} off or absent)"
        allow = f", allowlist {list(self.allowlist)}" if self.allowlist else ""
        return (
            f"kubelet {self.kubelet_version}, imagePullCredentialsVerificationPolicy {self.policy}{allow} ({GATE} on)"
        )


def credential_verification(api_client: Any, node: str) -> CredentialVerification:
    """Read ``node``'s kubelet version (node status) and live verification policy (``/configz``)."""
    from kubernetes import client

    info = client.CoreV1Api(api_client).read_node(node).status.node_info
    config = kubelet_configz(api_client, node)
    policy = config.get("imagePullCredentialsVerificationPolicy") or None
    return CredentialVerification(
        node=node,
        kubelet_version=str(info.kubelet_version),
        policy=str(policy) if policy else None,
        allowlist=tuple(config.get("preloadedImagesVerificationAllowlist") or ()),
    )
