"""kubelet image credential provider plugins (KEP-2133) on every node, shared by the
``credential_provider`` and ``workload_identity`` strategies.

kubelet reads one ``--image-credential-provider-config`` at start and execs the named binaries of
``--image-credential-provider-bin-dir`` per image it pulls. Both flags go to kubelet through kubeadm's
``kubeletExtraArgs`` (InitConfiguration and JoinConfiguration, so every node, workers included); the
directory comes from the host by one read-only ``extraMount``, so the files exist before kubelet
first starts and later writes (grants, rotated credentials) show on every node at once.

The provider is a bash script (kind's node images have bash, curl and jq, no Python). Its secrets
are JSON files of mode 0600. In ``workload`` mode (KEP-4412, Kubernetes 1.34+) kubelet hands it the
pod's ServiceAccount token; the script checks it with a TokenReview made with the node's own
credentials and answers with that ServiceAccount's own registry identity, if it was granted one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pytest_kindreg.credentials import Credentials, write_private_file
from pytest_kindreg.kind_config import ClusterContribution, ExtraMount

NODE_DIR = "/etc/kubernetes/kindreg-credential-providers"
CONFIG_FILE = "config.yaml"
BIN_DIR = "bin"
SECRETS_DIR = "secrets"
RESPONSE_API_VERSION = "credentialprovider.kubelet.k8s.io/v1"
IDENTITY_ANNOTATION = "kindreg.io/registry-identity"

PROVIDER_SCRIPT = r"""#!/bin/bash
# A kubelet image credential provider (KEP-2133), written by pytest-kindreg.
#   static SECRETS                    the credentials of the image's registry host, from SECRETS
#   workload SECRETS AUDIENCE ANNOTATION
#                                     KEP-4412: the pod's ServiceAccount token, checked with a
#                                     TokenReview (this node's own credentials), is traded for the
#                                     registry identity granted to that ServiceAccount (name and UID)
# Request on stdin, response on stdout (its apiVersion is the request's), reasons on stderr: kubelet
# logs them ("Failed to provide credentials for image").
set -euo pipefail
fail() { echo "kindreg-credential-provider: $*" >&2; exit 1; }
mode=${1:?mode}
secrets=${2:?secrets file}
request=$(cat)
api=$(jq -er .apiVersion <<<"$request") || fail "the request has no apiVersion"
image=$(jq -er .image <<<"$request") || fail "the request has no image"
host=${image%%/*}
respond() {  # respond ENTRY CACHE_KEY_TYPE
    jq -n --arg api "$api" --arg host "$host" --arg key "$2" --argjson entry "$1" \
        '{apiVersion: $api, kind: "CredentialProviderResponse", cacheKeyType: $key, cacheDuration: "0s",
          auth: {($host): {username: $entry.username, password: $entry.password}}}'
}
case $mode in
static)
    entry=$(jq -ec --arg h "$host" '.[$h]' "$secrets") || fail "no credentials for $host"
    respond "$entry" Registry
    ;;
workload)
    audience=${3:?audience}
    annotation=${4:?annotation key}
    token=$(jq -er '.serviceAccountToken // empty' <<<"$request") || fail "no ServiceAccount token in the" \
        "request (tokenAttributes, or the gate KubeletServiceAccountTokenForCredentialProviders)"
    server=$(sed -n 's/^ *server: *//p' /etc/kubernetes/kubelet.conf | head -n 1)
    pem=/var/lib/kubelet/pki/kubelet-client-current.pem
    review=$(jq -n --arg t "$token" --arg a "$audience" \
        '{apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: {token: $t, audiences: [$a]}}')
    answer=$(curl -sS --fail-with-body --max-time 10 --cacert /etc/kubernetes/pki/ca.crt --cert "$pem" --key "$pem" \
        -H 'Content-Type: application/json' --data-binary @- "$server/apis/authentication.k8s.io/v1/tokenreviews" \
        <<<"$review" 2>&1) || fail "TokenReview with the node's credentials failed: ${answer:0:300}"
    why=$(jq -r '.status.error // "no reason given"' <<<"$answer")
    [ "$(jq -r .status.authenticated <<<"$answer")" = true ] || fail "TokenReview: the token is not authenticated: $why"
    user=$(jq -r .status.user.username <<<"$answer")
    uid=$(jq -r .status.user.uid <<<"$answer")
    [[ $user == system:serviceaccount:*:* ]] || fail "TokenReview: $user is not a ServiceAccount"
    sa=${user#system:serviceaccount:}
    sa=${sa/://}
    entry=$(jq -ec --arg sa "$sa" '.[$sa]' "$secrets") || fail "ServiceAccount $sa has no registry identity granted"
    [ "$(jq -r .uid <<<"$entry")" = "$uid" ] \
        || fail "ServiceAccount $sa (uid $uid) is not the one granted (a re-created ServiceAccount needs a new grant)"
    named=$(jq -r --arg k "$annotation" '.serviceAccountAnnotations[$k] // empty' <<<"$request")
    [ "$named" = "$(jq -r .username <<<"$entry")" ] \
        || fail "ServiceAccount $sa: annotation $annotation does not name its granted registry identity"
    respond "$entry" Image
    ;;
*) fail "unknown mode $mode" ;;
esac
"""


@dataclass(frozen=True)
class ProviderSpec:
    """One ``providers[]`` entry: the binary's name, what it matches, its arguments, tokenAttributes."""

    name: str
    match_images: tuple[str, ...]
    args: tuple[str, ...]
    token_attributes: Mapping[str, Any] | None = field(default=None, hash=False)

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.name,
            # Only the host part takes globs; a path part is a literal prefix: host[:port] only.
            "matchImages": list(self.match_images),
            "defaultCacheDuration": "0s",
            "apiVersion": RESPONSE_API_VERSION,
            "args": list(self.args),
        }
        if self.token_attributes is not None:
            entry["tokenAttributes"] = dict(self.token_attributes)
        return entry


def kubeadm_patches() -> tuple[str, ...]:
    """kubelet's provider flags for every node (merge patches: the user's own kubelet args stay)."""
    args = {
        "image-credential-provider-config": f"{NODE_DIR}/{CONFIG_FILE}",
        "image-credential-provider-bin-dir": f"{NODE_DIR}/{BIN_DIR}",
    }
    return tuple(
        yaml.safe_dump({"kind": kind, "nodeRegistration": {"kubeletExtraArgs": args}}, sort_keys=False)
        for kind in ("InitConfiguration", "JoinConfiguration")
    )


class KubeletCredentialProviders:
    """The host directory mounted at :data:`NODE_DIR` on every node, and what is in it."""

    def __init__(self, host_dir: Path) -> None:
        self.host_dir = host_dir
        self._providers: dict[str, ProviderSpec] = {}
        self._lock = threading.Lock()
        self.config_at_start: str | None = None  # what kubelet read when the cluster was created

    def __repr__(self) -> str:
        return f"<KubeletCredentialProviders {self.host_dir} providers={sorted(self._providers)}>"

    def node_path(self, *parts: str) -> str:
        return "/".join((NODE_DIR, *parts))

    def mount(self) -> ExtraMount:
        return ExtraMount(host_path=str(self.host_dir), container_path=NODE_DIR, read_only=True)

    def contribution(self, source: str) -> ClusterContribution:
        """What the cluster needs at creation: this directory on every node, kubelet's flags."""
        return ClusterContribution(extra_mounts=(self.mount(),), kubeadm_patches=kubeadm_patches(), source=source)

    def render_config(self) -> str:
        doc = {
            "apiVersion": "kubelet.config.k8s.io/v1",
            "kind": "CredentialProviderConfig",
            "providers": [spec.to_dict() for _, spec in sorted(self._providers.items())],
        }
        return yaml.safe_dump(doc, sort_keys=False)

    def register(self, spec: ProviderSpec) -> None:
        """Add (or replace) a provider and write the directory: config, binaries, secrets dir."""
        with self._lock:
            self._providers[spec.name] = spec
            self.host_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
            (self.host_dir / SECRETS_DIR).mkdir(exist_ok=True, mode=0o700)
            bin_dir = self.host_dir / BIN_DIR
            bin_dir.mkdir(exist_ok=True, mode=0o755)
            for name in self._providers:
                script = bin_dir / name
                if not script.exists() or script.read_text() != PROVIDER_SCRIPT:
                    script.write_text(PROVIDER_SCRIPT)
                script.chmod(0o755)
            config = self.render_config()
            (self.host_dir / CONFIG_FILE).write_text(config)
            if self.config_at_start is None:
                self.config_at_start = config

    def config_changed_since_start(self) -> bool:
        """Whether kubelet, which read the config when it started, has an outdated one."""
        return self.config_at_start is not None and self.config_at_start != self.render_config()

    def mark_started(self) -> None:
        self.config_at_start = self.render_config()

    def secrets_file(self, name: str) -> Path:
        return self.host_dir / SECRETS_DIR / f"{name}.json"

    def update_secrets(
        self, name: str, entries: Mapping[str, Mapping[str, str] | None], *, replace: bool = False
    ) -> None:
        """Merge ``entries`` (``None`` removes one) into a secrets file (0600), or replace its content."""
        with self._lock:
            path = self.secrets_file(name)
            try:
                current = {} if replace else json.loads(path.read_text() or "{}")
            except FileNotFoundError:
                current = {}
            for key, value in entries.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = dict(value)
            write_private_file(path, json.dumps(current, indent=2, sort_keys=True))


def credentials_entry(credentials: Credentials, **extra: str) -> dict[str, str]:
    return {"username": credentials.username, "password": credentials.password, **extra}
