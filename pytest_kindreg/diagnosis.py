"""Explain why a pod cannot pull its image, from what the API server already returned.

Inputs are plain ``kubernetes.client`` model objects (``V1Pod``, ``V1Secret``, ``CoreV1Event``), so a
failed test can say *why* without node access. The rules follow kind-containerd-facts §8 (kubelet
events and containerd CRI error strings) and the usual pull-secret checklist: the secret name matches
``imagePullSecrets``, it lives in the pod's namespace, its type is ``kubernetes.io/dockerconfigjson``
and its server key is ``host[:port]`` without a scheme.

Nothing here ever puts secret *data* in a message: only secret names, types and ``auths`` keys.
"""

from __future__ import annotations

import base64
import difflib
import fnmatch
import json
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DOCKERCFG_TYPE",
    "DOCKERCONFIGJSON_TYPE",
    "KUBELET_LOG_RULES",
    "diagnose_pull_failure",
    "format_event",
    "image_host",
    "summarize_pod",
]

DOCKERCONFIGJSON_TYPE = "kubernetes.io/dockerconfigjson"
DOCKERCFG_TYPE = "kubernetes.io/dockercfg"
_DOCKERCONFIGJSON_KEY = ".dockerconfigjson"
_DOCKERCFG_KEY = ".dockercfg"
_DOCKER_HUB = "docker.io"
# kubelet's keyring treats all of these (with or without "/v1/") as the default registry
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})

# Container waiting reasons kubelet uses for image problems (kubelet images/image_manager.go).
# run_pod stops waiting on any of them: kubelet keeps retrying, but the pod cannot start as it is.
PULL_FAILURE_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "ErrImageNeverPull",
        "InvalidImageName",
        "ImageInspectError",
        "RegistryUnavailable",
        "SignatureValidationFailed",
    }
)

# Ranks: lower is more likely / more fundamental. Transport errors happen before authentication
# is even attempted, so they are the real blocker when present; a bare "no basic auth credentials"
# is usually *explained* by a secret problem, so it ranks after those.
_R_TRANSPORT = 10
_R_IMAGE = 20
_R_SECRET = 30
_R_AUTH = 40
_R_NO_CREDS = 50
_R_WARNING = 60

_SCHEME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_EVENT_IMAGE_RE = re.compile(r'(?:Failed to pull image|Back-off pulling image|Container image) "([^"]+)"')
_ANY_IMAGE_RE = re.compile(r'image "([^"]+)"')
_UNAUTHORIZED_RE = re.compile(r"\b401 Unauthorized\b|:\s*unauthorized\b", re.IGNORECASE)
_NOT_FOUND_RE = re.compile(r"code = NotFound\b|:\s*not found\s*$|\bmanifest unknown\b", re.IGNORECASE)
_TLS_CLIENT_CERT_RE = re.compile(r"tls: (?:certificate required|bad certificate)", re.IGNORECASE)
_REFUSED_RE = re.compile(r"dial tcp (\[[^\]]*\]:\d+|[^\s:]+:\d+)[^\n]*?connection refused", re.IGNORECASE)
_NO_SUCH_HOST_RE = re.compile(r"lookup ([^\s:]+)[^\n]*?no such host", re.IGNORECASE)
_SAN_MISMATCH_RE = re.compile(
    r"x509: certificate (?:is valid for [^\n]*?, not \S+|is not valid for any names)", re.IGNORECASE
)
_PULL_SECRET_EVENT_RE = re.compile(r"image pull secrets? \(([^)]*)\)", re.IGNORECASE)


@dataclass(order=True, frozen=True)
class _Finding:
    rank: int
    order: int
    text: str = field(compare=False)


class _Findings:
    """Findings ranked by likelihood; insertion order breaks ties and duplicates are dropped."""

    def __init__(self) -> None:
        self._items: list[_Finding] = []
        self._seen: set[str] = set()

    def add(self, rank: int, text: str) -> None:
        if text not in self._seen:
            self._seen.add(text)
            self._items.append(_Finding(rank, len(self._items), text))

    def texts(self) -> list[str]:
        return [item.text for item in sorted(self._items)]


# --------------------------------------------------------------------------------------------------
# Small public helpers


def format_event(event: Any) -> str:
    """``"<type> <reason>: <message>"`` on one line, for CoreV1Event or events.k8s.io/v1 Event."""
    kind = getattr(event, "type", None) or ""
    reason = getattr(event, "reason", None) or ""
    message = _event_message(event)
    head = " ".join(part for part in (str(kind), str(reason)) if part)
    text = f"{head}: {message}" if head else message
    # kubelet messages are one line, but a multi-line message would break the one-event-a-line layout
    return " ".join(text.split())


def is_registry_host(component: str) -> bool:
    """As in the docker reference grammar: a reference's first path component is a registry host
    only if it contains ``.`` or ``:`` or is ``localhost`` (else the image lives on Docker Hub)."""
    return "." in component or ":" in component or component == "localhost"


def image_host(image: str) -> str:
    """The registry host kubelet matches credentials against, e.g. ``127.0.0.1:5000`` or ``docker.io``."""
    first, sep, _rest = image.strip().partition("/")
    if sep and is_registry_host(first):
        # docker normalizes the legacy Hub name to docker.io
        return _DOCKER_HUB if first == "index.docker.io" else first
    return _DOCKER_HUB


def _image_repository(image: str) -> str:
    """The repository path after the host, without tag or digest (``a/b`` for ``h:1/a/b:2``)."""
    name = image.strip().split("@", 1)[0]
    first, sep, rest = name.partition("/")
    path = rest if sep and is_registry_host(first) else name
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path = path[:colon]
    return path


# --------------------------------------------------------------------------------------------------
# Matching auths keys the way kubelet's keyring does


def _strip_scheme(key: str) -> str:
    return _SCHEME_RE.sub("", key.strip())


def _split_port(host: str) -> tuple[str, str]:
    if host.startswith("["):  # IPv6 literal, e.g. [::1]:5000
        end = host.find("]")
        rest = host[end + 1 :] if end >= 0 else ""
        return host[: end + 1] if end >= 0 else host, rest[1:] if rest.startswith(":") else ""
    name, sep, port = host.rpartition(":")
    return (name, port) if sep else (host, "")


def _host_matches(pattern: str, host: str) -> bool:
    """Globs match per DNS label (``*.r.io`` matches ``a.r.io``, not ``r.io``); ports must be equal."""
    pattern_name, pattern_port = _split_port(pattern.lower())
    name, port = _split_port(host.lower())
    if pattern_port != port:
        return False
    pattern_labels, labels = pattern_name.split("."), name.split(".")
    return len(pattern_labels) == len(labels) and all(
        fnmatch.fnmatchcase(label, glob) for glob, label in zip(pattern_labels, labels, strict=True)
    )


def _auth_key_matches(key: str, image: str) -> bool:
    # kubelet strips http(s):// before matching, so the scheme is only a style problem (warned apart)
    key_host, _, key_path = _strip_scheme(key).partition("/")
    host = image_host(image)
    if host == _DOCKER_HUB:
        return key_host.lower() in _DOCKER_HUB_ALIASES
    if not _host_matches(key_host, host):
        return False
    key_path = key_path.strip("/")
    repository = _image_repository(image)
    return not key_path or repository == key_path or repository.startswith(key_path + "/")


# --------------------------------------------------------------------------------------------------
# Reading pod, secret and event objects defensively (crafted objects may leave fields None)


def _name(obj: Any) -> str:
    return str(getattr(getattr(obj, "metadata", None), "name", None) or "")


def _pod_namespace(pod: Any) -> str:
    return str(getattr(getattr(pod, "metadata", None), "namespace", None) or "default")


def _all_containers(pod: Any) -> list[Any]:
    spec = getattr(pod, "spec", None)
    return [*(getattr(spec, "init_containers", None) or []), *(getattr(spec, "containers", None) or [])]


def _all_statuses(pod: Any) -> list[tuple[str, Any]]:
    status = getattr(pod, "status", None)
    return [
        *(("init container", s) for s in getattr(status, "init_container_statuses", None) or []),
        *(("container", s) for s in getattr(status, "container_statuses", None) or []),
    ]


def _waiting(status: Any) -> Any:
    return getattr(getattr(status, "state", None), "waiting", None)


def _event_message(event: Any) -> str:
    # events.k8s.io/v1 Event calls the message "note"
    return str(getattr(event, "message", None) or getattr(event, "note", None) or "")


def _pull_secret_names(pod: Any) -> list[str]:
    refs = getattr(getattr(pod, "spec", None), "image_pull_secrets", None) or []
    return [str(getattr(ref, "name", None) or "") for ref in refs if getattr(ref, "name", None)]


def secret_cache_missed(pod: Any, events: Sequence[Any], secrets_in_namespace: Iterable[str]) -> bool:
    """Whether kubelet pulled without the pod's pull secrets although every one of them exists in
    its namespace (event FailedToRetrieveImagePullSecret). kubelet's watch-based secret cache
    waits at most 1 s for its first sync (``objectCache.Get`` in
    pkg/kubelet/util/manager/watch_based_manager.go), which a busy node can miss; kubelet's next
    pull, after its back-off, reads the synced cache."""
    wanted = set(_pull_secret_names(pod))
    return (
        bool(wanted)
        and wanted <= set(secrets_in_namespace)
        and any(getattr(e, "reason", None) == "FailedToRetrieveImagePullSecret" for e in events)
    )


def failed_pulls(events: Sequence[Any]) -> int:
    """How many pulls of the pod failed so far (kubelet's "Failed to pull image" events, counted)."""
    return sum(
        int(getattr(e, "count", None) or 1)
        for e in events
        if getattr(e, "reason", None) == "Failed" and _event_message(e).startswith("Failed to pull image")
    )


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(item for item in items if item))


def _spec_images(pod: Any) -> dict[Any, Any]:
    """Container name → image as the pod spec says (init containers included)."""
    return {getattr(c, "name", None): getattr(c, "image", None) for c in _all_containers(pod)}


def _status_image(spec_images: Mapping[Any, Any], status: Any) -> Any:
    """The image as the spec names it, else as the container status reports it (may be None)."""
    return spec_images.get(getattr(status, "name", None)) or getattr(status, "image", None)


def _pull_failure(status: Any) -> str | None:
    """The container's waiting reason if it is an image problem."""
    reason = getattr(_waiting(status), "reason", None)
    return str(reason) if reason in PULL_FAILURE_REASONS else None


def pull_failure_reason(pod: Any) -> str | None:
    """The first image-problem waiting reason among the pod's containers (init ones included), or None."""
    for _kind, status in _all_statuses(pod):
        reason = _pull_failure(status)
        if reason:
            return reason
    return None


def _failing_images(pod: Any, events: Sequence[Any]) -> list[str]:
    """Images kubelet reports as failing; all of the pod's images if there is no status at all."""
    spec_images = _spec_images(pod)
    found: list[str] = []
    statuses = _all_statuses(pod)
    for _kind, status in statuses:
        if _pull_failure(status):
            found.append(str(_status_image(spec_images, status) or ""))
    for event in events:
        found.extend(_EVENT_IMAGE_RE.findall(_event_message(event)))
    if not found and not statuses:
        # nothing says which container failed (pod not scheduled yet?): consider them all
        found = [str(image) for image in spec_images.values() if image]
    return _unique(found)


# --------------------------------------------------------------------------------------------------
# Pull secrets


@dataclass
class _SecretReport:
    name: str
    auth_keys: list[str] | None  # None when the secret cannot supply credentials at all


def _secret_payload(secret: Any, key: str) -> tuple[str | None, str | None]:
    """(text, error) of one secret key; stringData wins over data, as on an API server write."""
    string_data = getattr(secret, "string_data", None) or {}
    if key in string_data:
        return str(string_data[key]), None
    data = getattr(secret, "data", None) or {}
    if key not in data:
        return None, None
    raw = data[key]
    raw_text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        return base64.b64decode("".join(raw_text.split()), validate=True).decode("utf-8"), None
    except ValueError:  # binascii.Error and UnicodeDecodeError are both ValueErrors
        return None, "is not valid base64-encoded UTF-8"


def _looks_like_host_map(value: Mapping[str, Any]) -> bool:
    return bool(value) and all(isinstance(v, Mapping) and ("auth" in v or "username" in v) for v in value.values())


def _check_secret(secret: Any, findings: _Findings) -> _SecretReport:
    name = _name(secret)
    secret_type = getattr(secret, "type", None) or "Opaque"  # the API server defaults type to Opaque
    quoted = f"imagePullSecret '{name}'"
    recreate = (
        f"recreate it with `kubectl create secret docker-registry {name} --docker-server=<image host> "
        "--docker-username=... --docker-password=...`"
    )
    if secret_type == DOCKERCFG_TYPE:
        # kubelet still reads the legacy format: a bare {"host": {...}} map under .dockercfg
        key, wrapped = _DOCKERCFG_KEY, False
    elif secret_type == DOCKERCONFIGJSON_TYPE:
        key, wrapped = _DOCKERCONFIGJSON_KEY, True
    else:
        findings.add(
            _R_SECRET,
            f"{quoted} has type '{secret_type}', but kubelet only takes pull credentials from secrets of "
            f"type {DOCKERCONFIGJSON_TYPE} (or the legacy {DOCKERCFG_TYPE}) and ignores this one; "
            f"the type is immutable, so delete the secret and {recreate}.",
        )
        return _SecretReport(name, None)

    text, error = _secret_payload(secret, key)
    if text is None:
        problem = error or "is missing"
        findings.add(
            _R_SECRET,
            f"{quoted} (type {secret_type}) has no usable '{key}' key: its value {problem}; {recreate}.",
        )
        return _SecretReport(name, None)
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        findings.add(
            _R_SECRET,
            f"{quoted}: '{key}' is not valid JSON ({exc.msg} at line {exc.lineno}); "
            f"kubelet gets no credentials from it; {recreate}.",
        )
        return _SecretReport(name, None)
    if not isinstance(config, Mapping):
        findings.add(_R_SECRET, f"{quoted}: '{key}' is JSON but not an object; {recreate}.")
        return _SecretReport(name, None)

    if wrapped:
        auths = config.get("auths")
        if not isinstance(auths, Mapping) or not auths:
            hint = (
                ' (it looks like the legacy .dockercfg layout: wrap the map in {"auths": ...})'
                if _looks_like_host_map(config)
                else ""
            )
            findings.add(
                _R_SECRET,
                f"{quoted}: '{key}' has no non-empty 'auths' object{hint}, so kubelet silently finds no "
                'credentials in it (the API server does not check); it must look like {"auths": '
                '{"<host:port>": {"username": ..., "password": ..., "auth": ...}}}.',
            )
            return _SecretReport(name, None)
    else:
        auths = config

    keys = [str(k) for k in auths]
    for auth_key in keys:
        if auth_key.strip().lower().startswith(("http://", "https://")):
            bare = _strip_scheme(auth_key).rstrip("/")
            findings.add(
                _R_WARNING,
                f"warning: {quoted} has the auths key '{auth_key}': the docker server must be host[:port] "
                f"without scheme (use --docker-server={bare}). kubelet strips the scheme when matching, so "
                "this alone rarely breaks a pull, but fix it to rule it out.",
            )
        entry = auths[auth_key]
        if not isinstance(entry, Mapping) or not (
            entry.get("auth") or (entry.get("username") and entry.get("password"))
        ):
            findings.add(
                _R_SECRET,
                f"{quoted}: the auths entry '{auth_key}' has neither 'auth' nor 'username' and 'password', "
                f"so it supplies no credentials; {recreate}.",
            )
    return _SecretReport(name, keys)


def _missing_secret_text(
    name: str,
    namespace: str,
    existing: Sequence[str],
    elsewhere: Sequence[str],
) -> str:
    text = f"imagePullSecret '{name}' does not exist in namespace '{namespace}'"
    others = _unique(ns for ns in elsewhere if ns != namespace)
    if others:
        listed = ", ".join(f"'{ns}'" for ns in others)
        text += (
            f"; it exists in namespace(s) {listed}: a pod can only use pull secrets of its own namespace, "
            f"so create a copy in '{namespace}'"
        )
    close = difflib.get_close_matches(name, list(existing), n=1, cutoff=0.6)
    if close:
        text += f"; did you mean '{close[0]}'? imagePullSecrets[].name must equal the Secret's metadata.name exactly"
    if not others and not close:
        text += (
            f"; create it with `kubectl create secret docker-registry {name} -n {namespace} "
            "--docker-server=<image host> ...`"
        )
    return text + "."


# --------------------------------------------------------------------------------------------------
# Symptoms reported by kubelet (events) and container statuses


@dataclass(frozen=True)
class _Symptom:
    text: str
    reason: str
    image: str | None


def _symptoms(pod: Any, events: Sequence[Any]) -> list[_Symptom]:
    spec_images = _spec_images(pod)
    found: list[_Symptom] = []
    for _kind, status in _all_statuses(pod):
        waiting = _waiting(status)
        if waiting is not None:
            image = _status_image(spec_images, status)
            found.append(
                _Symptom(
                    str(getattr(waiting, "message", None) or ""),
                    str(getattr(waiting, "reason", None) or ""),
                    str(image) if image else None,
                )
            )
    for event in events:
        message = _event_message(event)
        match = _ANY_IMAGE_RE.search(message)
        found.append(_Symptom(message, str(getattr(event, "reason", None) or ""), match and match.group(1)))
    return found


def _describe(image: str | None) -> tuple[str, str]:
    """(host, phrase) for messages: the host kubelet matched, and the image it was pulling."""
    if image is None:
        return "<image host>", "the image"
    return image_host(image), f"image '{image}'"


def _runtime_findings(
    symptoms: Sequence[_Symptom],
    default_image: str | None,
    pull_secrets: Sequence[str],
    usable_secrets: Sequence[str],
    covering: Mapping[str, Sequence[str]],
    reported_missing: set[str],
    namespace: str,
    findings: _Findings,
    cached: set[str],
    reverified: Callable[[str | None], bool],
) -> None:
    for symptom in symptoms:
        text, image = symptom.text, symptom.image or default_image
        host, what = _describe(image)
        certs_d = f"/etc/containerd/certs.d/{host}/hosts.toml"
        on_node = image is not None and _normalized(image) in cached

        if symptom.reason == "ErrImageNeverPull" or "ErrImageNeverPull" in text:
            if on_node and reverified(image):
                findings.add(
                    _R_IMAGE,
                    f"{what} IS on the node, but kubelet did not let this pod use it (ErrImageNeverPull): "
                    f"{_REVERIFIED} With imagePullPolicy Never kubelet cannot pull it again with this pod's "
                    f"credentials: give the pod a pull secret for {host} and allow pulls (IfNotPresent).",
                )
            elif on_node:
                findings.add(
                    _R_IMAGE,
                    f"{what} is on the node, yet kubelet reported it not present for this pod (ErrImageNeverPull), "
                    "and this node's kubelet does not re-verify credentials of cached images: check that the pod "
                    "names the image exactly as it was loaded (registry host, repository, tag).",
                )
            else:
                findings.add(
                    _R_IMAGE,
                    f"{what} is not present on the node and imagePullPolicy is Never (ErrImageNeverPull): "
                    "load it first (`kind load docker-image`) or allow pulls (IfNotPresent).",
                )
        if symptom.reason == "InvalidImageName":
            findings.add(_R_IMAGE, f"{what} is not a valid image reference (InvalidImageName): fix the spec.")
        if symptom.reason == "FailedToRetrieveImagePullSecret":
            match = _PULL_SECRET_EVENT_RE.search(text)
            names = _unique(n.strip() for n in (match.group(1) if match else "").split(","))
            # the missing-secret check already explains names it saw; report only the others
            unreported = [n for n in names if n not in reported_missing]
            if unreported or not names:
                listed = ", ".join(f"'{n}'" for n in unreported) or "(names not given)"
                findings.add(
                    _R_SECRET,
                    f"kubelet could not retrieve imagePullSecret(s) {listed} "
                    f"(FailedToRetrieveImagePullSecret): the Secret is missing from namespace '{namespace}' "
                    "or was created after the pull started; create it there and the next pull retry uses it.",
                )
        if not text:
            continue

        if "server gave HTTP response to HTTPS client" in text:
            findings.add(
                _R_TRANSPORT,
                f"containerd spoke HTTPS to a plain-HTTP registry for {what}: give {certs_d} an explicit "
                f'[host."http://<registry>:<port>"] entry (a host without scheme means https).',
            )
        if _TLS_CLIENT_CERT_RE.search(text):
            findings.add(
                _R_TRANSPORT,
                f"the registry for {what} requires a TLS client certificate that the node does not present "
                f'(tls: certificate required / bad certificate): add client = [["client.crt", '
                f'"client.key"]] to the host entry in {certs_d} and copy the files into the node.',
            )
        if "x509: certificate signed by unknown authority" in text:
            findings.add(
                _R_TRANSPORT,
                f"the node does not trust the registry's certificate for {what} (x509: certificate signed by "
                f"unknown authority): the node lacks the registry CA; put it in the node and reference it "
                f'with ca = "..." in {certs_d}.',
            )
        if _SAN_MISMATCH_RE.search(text):
            findings.add(
                _R_TRANSPORT,
                f"the registry's certificate does not cover the name containerd dialed for {what}: add that "
                "name (e.g. the registry container name) to the server certificate's SANs.",
            )
        refused = _REFUSED_RE.search(text)
        if refused:
            address = refused.group(1)
            dialed, _port = _split_port(address)
            if dialed.lower() in _LOOPBACK_HOSTS or dialed.startswith("127."):
                findings.add(
                    _R_TRANSPORT,
                    f"containerd dialed {address} for {what} and was refused: the image host {host} is "
                    f"loopback, which inside a kind node is the node itself, not your registry; a hosts.toml "
                    f'mirror is missing: write {certs_d} with [host."http(s)://<registry container>:<port>"] '
                    "on the kind network.",
                )
            else:
                findings.add(
                    _R_TRANSPORT,
                    f"containerd could not connect to {address} for {what} (connection refused): the "
                    "registry is not running or not listening there; check the container and its port on "
                    "the kind network.",
                )
        no_such_host = _NO_SUCH_HOST_RE.search(text)
        if no_such_host:
            findings.add(
                _R_TRANSPORT,
                f"the node cannot resolve '{no_such_host.group(1)}' for {what} (no such host): attach the "
                "registry container to the kind network (`docker network connect kind <registry>`).",
            )
        if _NOT_FOUND_RE.search(text):
            findings.add(
                _R_IMAGE,
                f"{what} was not found on the registry (NotFound): push that repository and tag first, or "
                "fix the name/tag in the pod spec.",
            )
        if _UNAUTHORIZED_RE.search(text):
            holders = covering.get(host) or []
            source = (
                "pull secret " + ", ".join(f"'{n}'" for n in holders)
                if holders
                else "credentials sent (node config.json or containerd config)"
            )
            findings.add(
                _R_AUTH,
                f"the registry {host} rejected the {source} for {what} with 401 Unauthorized: the username "
                "or password is wrong (or outdated); recreate the credentials with the registry's current "
                "ones.",
            )
        if "insufficient_scope" in text or _DENIED_RE.search(text):
            findings.add(
                _R_AUTH - 1,
                f"the registry {host} denied {what} for lack of scope (insufficient_scope / requested access "
                "is denied): the credentials were accepted, but the token they were traded for does not grant "
                "pull on that repository: it is outside the identity's scope (token mode: kindreg_pull_scope, "
                "or the identity's own), or the repository does not exist. Not a wrong password.",
            )
        token_refusal = _TOKEN_REFUSAL_RE.search(text)
        if token_refusal:
            findings.add(_R_AUTH - 1, _TOKEN_REFUSALS[token_refusal.group(1)].format(host=host, what=what))
        if "no basic auth credentials" in text and on_node and reverified(image):
            findings.add(
                _R_NO_CREDS - 1,
                f"{what} is already on the node, yet kubelet pulled it again for this pod and the registry "
                f"{host} got no credentials: {_REVERIFIED} This pod must bring its own: a pull secret keyed "
                f"on {host} (or node credentials for it).",
            )
        if "no basic auth credentials" in text:
            if not pull_secrets:
                why = "the pod has no imagePullSecrets"
            elif not usable_secrets:
                why = "none of its imagePullSecrets is usable (see the causes above)"
            elif not covering.get(host):
                named = ", ".join(f"'{n}'" for n in usable_secrets)
                why = f"none of its usable pull secrets ({named}) has an auths entry for {host}"
            else:
                # kubelet reads secrets per pull attempt: the secret was probably created or fixed since
                why = "its pull secret for that host was not used yet (created or fixed after this attempt)"
            findings.add(
                _R_NO_CREDS,
                f"no credentials reached the registry for {host} ({what}: no basic auth credentials): {why}, "
                f"and no node /var/lib/kubelet/config.json key matches {host}; attach a "
                f"{DOCKERCONFIGJSON_TYPE} pull secret keyed on {host}, or key the node config on the image "
                "host (not the mirror endpoint).",
            )


# What the plugin's token service says in a 401's status line ("401 Unauthorized (reason)"), which
# containerd puts into the pull error.
_TOKEN_REFUSAL_RE = re.compile(
    r"401 Unauthorized \((invalid credentials|access token expired|invalid access token|"
    r"unknown service account key|authentication required)\)"
)
_TOKEN_REFUSALS = {
    "invalid credentials": "the token service of {host} refused the username or password sent for {what} "
    "(invalid credentials): they are wrong or were rotated; give the pod or node the registry's current ones.",
    "access token expired": "the access token sent for {what} has expired (the token service of {host} says "
    "so): renew it before its TTL runs out (rotate_credentials() / your refresher), then pull again.",
    "invalid access token": "the token service of {host} does not accept the access token sent for {what} "
    "(not one it issued, or altered): issue a new one.",
    "unknown service account key": "the token service of {host} does not know the _json_key document sent "
    "for {what}: it was not issued for this registry, or it was changed (the whole document is compared).",
    "authentication required": "no credentials reached the token service of {host} for {what} (an anonymous "
    "token request was refused): the pod and node supplied none for that image host.",
}
_DENIED_RE = re.compile(r"denied: requested access to the resource is denied")

_REVERIFIED = (
    "kubelet re-verifies credentials for images already on a node (KEP-2535, feature gate "
    "KubeletEnsureSecretPulledImages, on by default from Kubernetes 1.35): the copy on the node was "
    "pulled by kubelet with another pod's pull secret (or is a side-loaded image with the same ID), "
    "and this pod has no matching credentials."
)


def _normalized(image: str) -> str:
    """An image reference as containerd names it: docker.io/library/ for short names, :latest when untagged."""
    name, digest = image.split("@", 1) if "@" in image else (image, "")
    first = name.split("/", 1)[0]
    if "/" not in name or not is_registry_host(first):
        name = f"{_DOCKER_HUB}/{name if '/' in name else 'library/' + name}"
    if not digest and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return f"{name}@{digest}" if digest else name


# --------------------------------------------------------------------------------------------------
# Public entry points


def diagnose_pull_failure(
    pod: Any,
    secrets: Sequence[Any],
    events: Sequence[Any],
    other_namespace_secrets: Mapping[str, Sequence[str]] | None = None,
    cached_images: Collection[str] = (),
    reverifying_node: bool | None = None,
    kubelet_log: Sequence[str] = (),
) -> list[str]:
    """Likely causes of an image pull failure, most likely first; ``[]`` if nothing matches.

    ``secrets`` are the Secrets of the pod's namespace, ``events`` the pod's events, and
    ``other_namespace_secrets`` maps a secret name to other namespaces holding a secret of that name.
    ``cached_images`` are the pod's images that are already on its node (``crictl inspecti``, or
    the node's ``status.images`` names); ``reverifying_node`` whether that node's kubelet re-verifies
    credentials of cached images (its live ``imagePullCredentialsVerificationPolicy``, KEP-2535; None:
    unknown). A pull refused for a cached image is blamed on re-verification only where both that and
    the container's pull policy (not ``Always``, which pulls anyway) imply it. ``kubelet_log`` are
    lines of the node's kubelet journal about the pod's images: credential provider plugin failures.
    """
    namespace = _pod_namespace(pod)
    elsewhere = other_namespace_secrets or {}
    by_name = {_name(s): s for s in secrets if _name(s)}
    # a close match is more plausible among pull-type secrets; fall back to any secret
    pull_types = (DOCKERCONFIGJSON_TYPE, DOCKERCFG_TYPE)
    pull_typed = [n for n, s in by_name.items() if getattr(s, "type", None) in pull_types]
    findings = _Findings()

    pull_secrets = _unique(_pull_secret_names(pod))
    reports: list[_SecretReport] = []
    missing: set[str] = set()
    for name in pull_secrets:
        secret = by_name.get(name)
        if secret is None:
            missing.add(name)
            candidates = pull_typed if difflib.get_close_matches(name, pull_typed, n=1) else list(by_name)
            findings.add(_R_SECRET, _missing_secret_text(name, namespace, candidates, elsewhere.get(name, [])))
        else:
            reports.append(_check_secret(secret, findings))

    failing = _failing_images(pod, events)
    usable = [r for r in reports if r.auth_keys is not None]
    covering: dict[str, list[str]] = {}
    for image in failing:
        holders = [r.name for r in usable if any(_auth_key_matches(k, image) for k in r.auth_keys or [])]
        covering.setdefault(image_host(image), []).extend(holders)
        if holders:
            continue
        for report in usable:
            keys = ", ".join(f"'{k}'" for k in report.auth_keys or []) or "nothing"
            host = image_host(image)
            findings.add(
                _R_SECRET,
                f"imagePullSecret '{report.name}' has credentials for [{keys}] but the image '{image}' is on "
                f"{host}: kubelet matches auths keys against the image reference host (port included), so "
                f"recreate the secret with --docker-server={host}.",
            )

    _runtime_findings(
        _symptoms(pod, events),
        failing[0] if failing else None,
        pull_secrets,
        [r.name for r in usable],
        {host: _unique(names) for host, names in covering.items()},
        missing,
        namespace,
        findings,
        {_normalized(image) for image in cached_images},
        lambda image: bool(reverifying_node) and image is not None and pull_policy(pod, image) != "Always",
    )
    for line in kubelet_log:
        for rule in KUBELET_LOG_RULES:
            match = rule.pattern.search(line)
            if match:
                findings.add(rule.rank, rule.explain(match))
    return findings.texts()


def pull_policy(pod: Any, image: str) -> str:
    """The pull policy of the (init) container running ``image``: its own, else kubelet's default
    (``Always`` for ``:latest`` or no tag, else ``IfNotPresent``)."""
    for container in _all_containers(pod):
        if getattr(container, "image", None) == image and getattr(container, "image_pull_policy", None):
            return str(container.image_pull_policy)
    name = image.split("@", 1)[0]
    tag = name.rsplit("/", 1)[-1].partition(":")[2]
    return "IfNotPresent" if "@" in image or (tag and tag != "latest") else "Always"


# --------------------------------------------------------------------------------------------------
# kubelet's journal: image credential provider plugins (KEP-2133 / KEP-4412). kubelet logs a failed
# provider ("Failed to provide credentials for image") and pulls without credentials, so the pod's
# events show only the registry's refusal: the reason is in this log.


@dataclass(frozen=True)
class LogRule:
    """One cause: what it matches in a kubelet log line, how likely it is, what it says."""

    name: str
    pattern: re.Pattern[str]
    rank: int
    explain: Callable[[re.Match[str]], str]


KUBELET_LOG_RULES: tuple[LogRule, ...] = (
    LogRule(
        "provider not found",
        re.compile(r"plugin binary (?:executable|directory) (\S+) did not exist|executable file not found"),
        _R_TRANSPORT,
        lambda m: (
            f"a credential provider plugin of kubelet is missing ({m.group(0)}): put the binary in "
            "--image-credential-provider-bin-dir under the name its config gives."
        ),
    ),
    LogRule(
        "node may not request the audience",
        re.compile(
            r"(system:node:\S+) is not authorized to request tokens for this audience|"
            r'audience "([^"]+)" not found in pod spec volume'
        ),
        _R_SECRET,
        lambda m: (
            "the node may not request ServiceAccount tokens for the provider's audience (NodeRestriction, "
            "ServiceAccountNodeAudienceRestriction): grant group system:nodes the verb "
            "request-serviceaccounts-token-audience on that audience (a ClusterRole), so kubelet can hand the "
            "pod's token to the provider."
        ),
    ),
    LogRule(
        "apiVersion mismatch",
        re.compile(r"apiVersion from credential plugin response did not match[^\n]*"),
        _R_SECRET,
        lambda m: (
            f"the credential provider plugin answered with another apiVersion than kubelet asked for "
            f"({m.group(0)}): its response must carry the request's apiVersion."
        ),
    ),
    LogRule(
        "invalid response",
        re.compile(
            r"credential provider plugin did not return a valid cacheKeyType[^\n]*|"
            r"error decoding credential provider plugin response"
        ),
        _R_SECRET,
        lambda m: (
            f"the credential provider plugin's response is not valid ({m.group(0)}): it needs "
            "kind CredentialProviderResponse, a cacheKeyType (Image, Registry or Global) and auth."
        ),
    ),
    LogRule(
        "no credentials for the image",
        re.compile(
            r"kindreg-credential-provider: ([^\"\n]*(?:no credentials|has no registry identity|"
            r"is not the one granted|does not name its granted)[^\"\n]*)"
        ),
        _R_SECRET,
        lambda m: f"the credential provider plugin had no credentials for the image: {m.group(1)}.",
    ),
    LogRule(
        "provider exec failed",
        re.compile(r"error execing credential provider plugin (\S+) for image (\S+): ([^\"\n]*)"),
        _R_SECRET + 1,
        lambda m: (
            f"kubelet's credential provider plugin {m.group(1)} failed for {m.group(2)} ({m.group(3)}): "
            "kubelet pulled without credentials."
        ),
    ),
    LogRule(
        "ServiceAccount not readable",
        re.compile(r"failed to get service account: ([^\"\n]*)"),
        _R_SECRET,
        lambda m: f"kubelet could not read the pod's ServiceAccount for its credential provider ({m.group(1)}).",
    ),
)


def _state_text(status: Any) -> str:
    state = getattr(status, "state", None)
    waiting = getattr(state, "waiting", None)
    terminated = getattr(state, "terminated", None)
    if waiting is not None:
        detail = getattr(waiting, "message", None)
        return f"waiting: {getattr(waiting, 'reason', None) or '?'}" + (f": {detail}" if detail else "")
    if terminated is not None:
        detail = getattr(terminated, "message", None)
        reason = getattr(terminated, "reason", None) or "?"
        code = getattr(terminated, "exit_code", None)
        return f"terminated: {reason} (exit code {code})" + (f": {detail}" if detail else "")
    if getattr(state, "running", None) is not None:
        return "running" + (", ready" if getattr(status, "ready", False) else ", not ready")
    return "no state reported"


def summarize_pod(pod: Any, events: Sequence[Any]) -> str:
    """A multi-line status block for exception messages: phase, containers, then events.

    Built only from the pod and its events (never from secrets), so no credential can leak into it.
    """
    status = getattr(pod, "status", None)
    phase = getattr(status, "phase", None) or "Unknown"
    lines = [f"pod {_pod_namespace(pod)}/{_name(pod) or '?'}: phase {phase}"]
    pod_reason, pod_message = getattr(status, "reason", None), getattr(status, "message", None)
    if pod_reason or pod_message:
        lines[0] += f" ({': '.join(str(p) for p in (pod_reason, pod_message) if p)})"
    pull_secrets = _pull_secret_names(pod)
    if pull_secrets:
        lines.append(f"  imagePullSecrets: {', '.join(pull_secrets)}")

    spec_images = _spec_images(pod)
    reported: set[Any] = set()
    for kind, container_status in _all_statuses(pod):
        cname = getattr(container_status, "name", None)
        reported.add(cname)
        image = _status_image(spec_images, container_status) or "?"
        restarts = getattr(container_status, "restart_count", None) or 0
        extra = f", {restarts} restarts" if restarts else ""
        lines.append(f"  {kind} {cname} ({image}): {_state_text(container_status)}{extra}")
    for cname, image in spec_images.items():
        if cname not in reported:
            lines.append(f"  container {cname} ({image}): no status yet")

    if events:
        lines.append("events:")
        for event in events:
            count = getattr(event, "count", None) or 0
            lines.append(f"  {format_event(event)}" + (f" (x{count})" if count > 1 else ""))
    else:
        lines.append("events: none")
    return "\n".join(lines)
