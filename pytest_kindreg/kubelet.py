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


PROVIDER_SERVICE_ACCOUNT_GATE = "KubeletServiceAccountTokenForCredentialProviders"
_CONFIG_FLAG = "--image-credential-provider-config="


@dataclass(frozen=True)
class ProviderEntry:
    name: str
    match_images: tuple[str, ...]
    audience: str | None = None  # tokenAttributes.serviceAccountTokenAudience: ServiceAccount tokens
    cache_type: str | None = None

    def describe(self) -> str:
        text = f"{self.name} (matchImages {', '.join(self.match_images) or 'none'})"
        if self.audience is not None:
            text += f" with ServiceAccount tokens (audience {self.audience}, cacheType {self.cache_type})"
        return text


@dataclass(frozen=True)
class CredentialProviderSetup:
    """The image credential provider plugins ``node``'s kubelet runs with (KEP-2133), and whether it
    may hand them pods' ServiceAccount tokens (KEP-4412)."""

    node: str
    config_path: str | None
    providers: tuple[ProviderEntry, ...] = ()
    service_account_tokens: bool | None = None  # the gate, as the kubelet's metrics report it

    def describe(self) -> str:
        gate = {True: "on", False: "off", None: "unknown"}[self.service_account_tokens]
        tokens = f"ServiceAccount tokens for providers {gate} ({PROVIDER_SERVICE_ACCOUNT_GATE})"
        if self.config_path is None:
            return f"no image credential provider configured; {tokens}"
        listed = "; ".join(p.describe() for p in self.providers) or "no providers"
        return f"{listed} (from {self.config_path}); {tokens}"


def parse_provider_config(text: str) -> tuple[ProviderEntry, ...]:
    """The providers of a ``CredentialProviderConfig`` (YAML or JSON)."""
    import yaml

    doc = yaml.safe_load(text) or {}
    entries = []
    for provider in doc.get("providers") or []:
        attributes = provider.get("tokenAttributes") or {}
        entries.append(
            ProviderEntry(
                str(provider.get("name")),
                tuple(str(m) for m in provider.get("matchImages") or ()),
                attributes.get("serviceAccountTokenAudience"),
                attributes.get("cacheType"),
            )
        )
    return tuple(entries)


def feature_enabled(metrics: str, gate: str) -> bool | None:
    """A feature gate's effective value from a component's ``/metrics`` (``kubernetes_feature_enabled``)."""
    for line in metrics.splitlines():
        if line.startswith("kubernetes_feature_enabled{") and f'name="{gate}"' in line:
            return line.rsplit(" ", 1)[-1].strip() in ("1", "1.0")
    return None


def credential_provider_setup(cluster: Any, node: str) -> CredentialProviderSetup:
    """Read ``node``'s kubelet command line, its provider config, and its metrics."""
    cmdline = cluster.exec(node, ["sh", "-c", 'tr "\\0" "\\n" < /proc/"$(pidof kubelet)"/cmdline'])
    paths = [arg[len(_CONFIG_FLAG) :] for arg in cmdline.splitlines() if arg.startswith(_CONFIG_FLAG)]
    try:
        metrics = raw_get(cluster.api_client(), f"/api/v1/nodes/{node}/proxy/metrics")
        tokens = feature_enabled(metrics, PROVIDER_SERVICE_ACCOUNT_GATE)
    except Exception:
        tokens = None
    if not paths:
        return CredentialProviderSetup(node, None, (), tokens)
    text = cluster.read_file(node, paths[-1]) or ""
    return CredentialProviderSetup(node, paths[-1], parse_provider_config(text), tokens)
