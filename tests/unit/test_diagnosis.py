"""pytest_kindreg.diagnosis against crafted kubernetes client objects (no cluster).

Event and CRI error strings are the ones kubelet and containerd emit (kind-containerd-facts §8).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
from kubernetes import client

from pytest_kindreg.diagnosis import (
    KUBELET_LOG_RULES,
    diagnose_pull_failure,
    failed_pulls,
    format_event,
    image_host,
    pull_failure_reason,
    pull_policy,
    secret_cache_missed,
    summarize_pod,
)

IMAGE = "127.0.0.1:5001/app:1"
DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"
HOST = "127.0.0.1:5001"
NS = "team-a"
USER = "kindreg-user"
PASSWORD = "s3cr3t-Pa55word-xyz"
CRI_PREFIX = (
    f'Failed to pull image "{IMAGE}": rpc error: code = Unknown desc = failed to pull and unpack image '
    f'"{IMAGE}": failed to resolve reference "{IMAGE}": '
)
HEAD_URL = "https://kind-registry:5000/v2/app/manifests/1"


# --------------------------------------------------------------------------------------------------
# builders


def dockerconfigjson(auths: dict[str, Any] | None = None, server: str = HOST) -> dict[str, Any]:
    if auths is None:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        auths = {server: {"username": USER, "password": PASSWORD, "auth": token}}
    return {"auths": auths}


def make_secret(
    name: str = "regcred",
    *,
    config: Any = None,
    raw: str | None = None,
    secret_type: str = DOCKERCONFIGJSON,
    key: str = ".dockerconfigjson",
    plain: bool = False,
) -> client.V1Secret:
    """A Secret with base64 ``data`` (as the API returns it), or ``string_data`` when plain."""
    text = raw if raw is not None else json.dumps(config if config is not None else dockerconfigjson())
    metadata = client.V1ObjectMeta(name=name, namespace=NS)
    if plain:
        return client.V1Secret(metadata=metadata, type=secret_type, string_data={key: text})
    encoded = base64.b64encode(text.encode()).decode()
    return client.V1Secret(metadata=metadata, type=secret_type, data={key: encoded})


def waiting(reason: str, message: str | None = None, image: str = IMAGE, name: str = "app") -> Any:
    return client.V1ContainerStatus(
        name=name,
        image=image,
        image_id="",
        ready=False,
        restart_count=0,
        state=client.V1ContainerState(waiting=client.V1ContainerStateWaiting(reason=reason, message=message)),
    )


def running(image: str = IMAGE, name: str = "app") -> Any:
    return client.V1ContainerStatus(
        name=name,
        image=image,
        image_id="sha256:abc",
        ready=True,
        restart_count=0,
        state=client.V1ContainerState(running=client.V1ContainerStateRunning(started_at=None)),
    )


def make_pod(
    *,
    pull_secrets: tuple[str, ...] = ("regcred",),
    image: str = IMAGE,
    statuses: list[Any] | None = None,
    phase: str = "Pending",
) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name="app-pod", namespace=NS),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="app", image=image)],
            image_pull_secrets=[client.V1LocalObjectReference(name=n) for n in pull_secrets] or None,
        ),
        status=client.V1PodStatus(phase=phase, container_statuses=statuses),
    )


def failing_pod(message: str, **kwargs: Any) -> client.V1Pod:
    return make_pod(statuses=[waiting("ErrImagePull", message)], **kwargs)


def event(reason: str, message: str, kind: str = "Warning", count: int = 1) -> client.CoreV1Event:
    return client.CoreV1Event(
        metadata=client.V1ObjectMeta(name="app-pod.17f", namespace=NS),
        involved_object=client.V1ObjectReference(kind="Pod", name="app-pod", namespace=NS),
        reason=reason,
        message=message,
        type=kind,
        count=count,
    )


def pull_failed(cri_error: str) -> list[client.CoreV1Event]:
    """The events kubelet records for one failed pull attempt."""
    return [
        event("Pulling", f'Pulling image "{IMAGE}"', kind="Normal"),
        event("Failed", CRI_PREFIX + cri_error),
        event("Failed", "Error: ErrImagePull"),
    ]


def joined(causes: list[str]) -> str:
    return "\n".join(causes)


NO_BASIC_AUTH = (
    "pull access denied, repository does not exist or may require authorization: "
    "authorization failed: no basic auth credentials"
)
UNAUTHORIZED = f"unexpected status from HEAD request to {HEAD_URL.replace('https', 'http')}: 401 Unauthorized"
UNKNOWN_CA = (
    f'failed to do request: Head "{HEAD_URL}": tls: failed to verify certificate: '
    "x509: certificate signed by unknown authority"
)
HTTP_TO_HTTPS = f'failed to do request: Head "{HEAD_URL}": http: server gave HTTP response to HTTPS client'
CLIENT_CERT = f'failed to do request: Head "{HEAD_URL}": remote error: tls: certificate required'
BAD_CERT = f'failed to do request: Head "{HEAD_URL}": remote error: tls: bad certificate'
REFUSED_V6 = (
    'failed to do request: Head "https://localhost:5001/v2/app/manifests/1": '
    "dial tcp [::1]:5001: connect: connection refused"
)
REFUSED_V4 = (
    'failed to do request: Head "http://127.0.0.1:5001/v2/app/manifests/1": '
    "dial tcp 127.0.0.1:5001: connect: connection refused"
)


# --------------------------------------------------------------------------------------------------
# format_event, image_host


def test_format_event_core_v1() -> None:
    e = event("Failed", "Error: ErrImagePull")
    assert format_event(e) == "Warning Failed: Error: ErrImagePull"


def test_format_event_events_v1_uses_note() -> None:
    e = client.EventsV1Event(
        metadata=client.V1ObjectMeta(name="x"),
        event_time=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
        reason="BackOff",
        type="Normal",
        note=f'Back-off pulling image "{IMAGE}"',
    )
    assert format_event(e) == f'Normal BackOff: Back-off pulling image "{IMAGE}"'


def test_format_event_tolerates_missing_fields() -> None:
    class Bare:
        message = "line one\nline two"

    assert format_event(Bare()) == "line one line two"


@pytest.mark.parametrize(
    ("image", "host"),
    [
        ("127.0.0.1:5000/a/b:1", "127.0.0.1:5000"),
        ("localhost:5001/app:1", "localhost:5001"),
        ("localhost/x", "localhost"),
        ("kind-registry:5000/app@sha256:" + "0" * 64, "kind-registry:5000"),
        ("ghcr.io/org/app:v1", "ghcr.io"),
        ("busybox", "docker.io"),
        ("busybox:1.36", "docker.io"),
        ("library/busybox:1.36", "docker.io"),
        ("docker.io/library/busybox", "docker.io"),
        ("index.docker.io/library/busybox", "docker.io"),
    ],
)
def test_image_host(image: str, host: str) -> None:
    assert image_host(image) == host


# --------------------------------------------------------------------------------------------------
# healthy pods


def test_healthy_pod_has_no_causes() -> None:
    pod = make_pod(statuses=[running()], phase="Running")
    events = [
        event("Scheduled", "Successfully assigned team-a/app-pod to kind-worker", kind="Normal"),
        event("Pulling", f'Pulling image "{IMAGE}"', kind="Normal"),
        event("Pulled", f'Successfully pulled image "{IMAGE}" in 412ms', kind="Normal"),
        event("Created", "Created container app", kind="Normal"),
        event("Started", "Started container app", kind="Normal"),
    ]
    assert diagnose_pull_failure(pod, [make_secret()], events) == []


def test_nothing_recognizable_gives_empty_list() -> None:
    pod = make_pod(pull_secrets=(), statuses=[waiting("ImagePullBackOff", f'Back-off pulling image "{IMAGE}"')])
    assert diagnose_pull_failure(pod, [], [event("BackOff", f'Back-off pulling image "{IMAGE}"')]) == []


# --------------------------------------------------------------------------------------------------
# 1. missing / misnamed / wrong-namespace secrets


def test_misnamed_secret_suggests_close_match() -> None:
    pod = failing_pod(CRI_PREFIX + NO_BASIC_AUTH, pull_secrets=("regcreds",))
    causes = diagnose_pull_failure(pod, [make_secret("regcred")], pull_failed(NO_BASIC_AUTH))
    assert "imagePullSecret 'regcreds' does not exist in namespace 'team-a'" in causes[0]
    assert "did you mean 'regcred'" in causes[0]


def test_secret_in_other_namespace() -> None:
    pod = failing_pod(CRI_PREFIX + NO_BASIC_AUTH)
    causes = diagnose_pull_failure(pod, [], pull_failed(NO_BASIC_AUTH), {"regcred": ["default", NS]})
    first = causes[0]
    assert "does not exist" in first
    assert "namespace(s) 'default'" in first
    assert f"'{NS}'," not in first  # the pod's own namespace is not listed as "elsewhere"
    assert "its own namespace" in first


def test_missing_secret_ranks_before_no_basic_auth() -> None:
    pod = failing_pod(CRI_PREFIX + NO_BASIC_AUTH)
    causes = diagnose_pull_failure(pod, [], pull_failed(NO_BASIC_AUTH))
    assert "does not exist" in causes[0]
    assert "kubectl create secret docker-registry regcred" in causes[0]
    assert any("no basic auth credentials" in c for c in causes[1:])


def test_failed_to_retrieve_pull_secret_event() -> None:
    # the secret list passed in may be stale; the kubelet event alone still explains it
    pod = failing_pod(CRI_PREFIX + NO_BASIC_AUTH)
    retrieve = event(
        "FailedToRetrieveImagePullSecret",
        "Unable to retrieve some image pull secrets (regcred); attempting to pull the image may not succeed.",
    )
    causes = diagnose_pull_failure(pod, [make_secret()], [retrieve])
    assert any("could not retrieve imagePullSecret(s) 'regcred'" in c and "missing" in c for c in causes)


def test_failed_to_retrieve_event_not_repeated_when_already_missing() -> None:
    pod = failing_pod(CRI_PREFIX + NO_BASIC_AUTH)
    retrieve = event(
        "FailedToRetrieveImagePullSecret",
        "Unable to retrieve some image pull secrets (regcred); attempting to pull the image may not succeed.",
    )
    causes = diagnose_pull_failure(pod, [], [retrieve])
    assert sum("regcred" in c for c in causes) == 1


# --------------------------------------------------------------------------------------------------
# 2. wrong secret type


def test_opaque_secret_is_wrong_type() -> None:
    pod = failing_pod(CRI_PREFIX + NO_BASIC_AUTH)
    causes = diagnose_pull_failure(pod, [make_secret(secret_type="Opaque")], pull_failed(NO_BASIC_AUTH))
    wrong = causes[0]
    assert "type 'Opaque'" in wrong
    assert "kubernetes.io/dockerconfigjson" in wrong
    assert "legacy kubernetes.io/dockercfg" in wrong


def test_legacy_dockercfg_secret_is_accepted() -> None:
    legacy = make_secret(config=dockerconfigjson()["auths"], secret_type="kubernetes.io/dockercfg", key=".dockercfg")
    pod = make_pod(statuses=[running()], phase="Running")
    assert diagnose_pull_failure(pod, [legacy], []) == []


# --------------------------------------------------------------------------------------------------
# 3. .dockerconfigjson content


def test_not_json() -> None:
    pod = failing_pod(CRI_PREFIX + NO_BASIC_AUTH)
    causes = diagnose_pull_failure(pod, [make_secret(raw="{auths: nope")], [])
    assert "is not valid JSON" in causes[0]


def test_invalid_base64() -> None:
    broken = client.V1Secret(
        metadata=client.V1ObjectMeta(name="regcred", namespace=NS),
        type="kubernetes.io/dockerconfigjson",
        data={".dockerconfigjson": "%%% not base64 %%%"},
    )
    causes = diagnose_pull_failure(failing_pod(CRI_PREFIX + NO_BASIC_AUTH), [broken], [])
    assert "not valid base64" in causes[0]


def test_json_without_auths_in_string_data() -> None:
    secret = make_secret(config={"credsStore": "desktop"}, plain=True)
    causes = diagnose_pull_failure(failing_pod(CRI_PREFIX + NO_BASIC_AUTH), [secret], [])
    assert "no non-empty 'auths'" in causes[0]


def test_unwrapped_host_map_hints_at_auths() -> None:
    secret = make_secret(config=dockerconfigjson()["auths"])
    causes = diagnose_pull_failure(failing_pod(CRI_PREFIX + NO_BASIC_AUTH), [secret], [])
    assert '{"auths": ...}' in causes[0]


def test_server_with_scheme_is_flagged_but_still_matches() -> None:
    secret = make_secret(config=dockerconfigjson(server=f"https://{HOST}"))
    causes = diagnose_pull_failure(failing_pod(CRI_PREFIX + NO_BASIC_AUTH), [secret], [])
    scheme = [c for c in causes if "without scheme" in c]
    assert len(scheme) == 1
    assert scheme[0].startswith("warning:")
    assert f"--docker-server={HOST}" in scheme[0]
    # kubelet strips the scheme, so the host itself is covered: no "image is on" mismatch
    assert not any("but the image" in c for c in causes)


def test_secret_for_other_host() -> None:
    secret = make_secret(config=dockerconfigjson(server="kind-registry:5000"))
    pod = failing_pod(CRI_PREFIX + NO_BASIC_AUTH)
    causes = diagnose_pull_failure(pod, [secret], pull_failed(NO_BASIC_AUTH))
    mismatch = causes[0]
    assert "has credentials for ['kind-registry:5000']" in mismatch
    assert f"but the image '{IMAGE}' is on {HOST}" in mismatch
    assert f"--docker-server={HOST}" in mismatch
    assert any("none of its usable pull secrets ('regcred') has an auths entry" in c for c in causes)


def test_port_must_match() -> None:
    secret = make_secret(config=dockerconfigjson(server="127.0.0.1:5000"))
    causes = diagnose_pull_failure(failing_pod(CRI_PREFIX + NO_BASIC_AUTH), [secret], [])
    assert any(f"is on {HOST}" in c for c in causes)


@pytest.mark.parametrize(
    ("server", "image"),
    [
        ("*.example.com", "reg.example.com/app:1"),
        ("reg.example.com/team", "reg.example.com/team/app:1"),
        ("https://index.docker.io/v1/", "busybox:1.36"),
    ],
)
def test_kubelet_style_key_matching(server: str, image: str) -> None:
    secret = make_secret(config=dockerconfigjson(server=server))
    pod = failing_pod(f'Failed to pull image "{image}": ...', image=image)
    assert not any("but the image" in c for c in diagnose_pull_failure(pod, [secret], []))


def test_glob_does_not_match_bare_domain() -> None:
    secret = make_secret(config=dockerconfigjson(server="*.example.com"))
    pod = failing_pod("...", image="example.com/app:1")
    assert any("but the image" in c for c in diagnose_pull_failure(pod, [secret], []))


def test_auths_entry_without_credentials() -> None:
    secret = make_secret(config=dockerconfigjson({HOST: {"email": "a@b.c"}}))
    causes = diagnose_pull_failure(failing_pod(CRI_PREFIX + NO_BASIC_AUTH), [secret], [])
    assert any("supplies no credentials" in c for c in causes)


# --------------------------------------------------------------------------------------------------
# 4. kubelet events and container status messages


@pytest.mark.parametrize(
    ("cri_error", "expected"),
    [
        (UNAUTHORIZED, ["401 Unauthorized", "username or password is wrong", "pull secret 'regcred'"]),
        (UNKNOWN_CA, ["lacks the registry CA", f"/etc/containerd/certs.d/{HOST}/hosts.toml"]),
        (HTTP_TO_HTTPS, ['explicit [host."http://', "plain-HTTP registry"]),
        (CLIENT_CERT, ["requires a TLS client certificate", "client = "]),
        (BAD_CERT, ["requires a TLS client certificate"]),
        (REFUSED_V4, ["is loopback", "hosts.toml mirror is missing"]),
        (REFUSED_V6, ["[::1]:5001", "is loopback", "hosts.toml mirror is missing"]),
        ("lookup kind-registry on 172.18.0.1:53: no such host", ["cannot resolve 'kind-registry'"]),
        ("dial tcp 172.18.0.3:5000: connect: connection refused", ["not running or not listening"]),
    ],
)
def test_event_strings_map_to_causes(cri_error: str, expected: list[str]) -> None:
    pod = failing_pod(CRI_PREFIX + cri_error)
    causes = diagnose_pull_failure(pod, [make_secret()], pull_failed(cri_error))
    assert causes, cri_error
    for words in expected:
        assert words in causes[0], (words, causes)


def test_no_basic_auth_without_pull_secrets() -> None:
    pod = failing_pod(CRI_PREFIX + NO_BASIC_AUTH, pull_secrets=())
    causes = diagnose_pull_failure(pod, [], pull_failed(NO_BASIC_AUTH))
    assert len(causes) == 1
    assert "no credentials reached the registry for 127.0.0.1:5001" in causes[0]
    assert "the pod has no imagePullSecrets" in causes[0]
    assert "/var/lib/kubelet/config.json" in causes[0]


def test_not_found() -> None:
    image = "127.0.0.1:5001/app:2"
    message = (
        f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to pull and unpack image '
        f'"{image}": failed to resolve reference "{image}": {image}: not found'
    )
    pod = failing_pod(message, image=image)
    causes = diagnose_pull_failure(pod, [make_secret()], [event("Failed", message)])
    assert causes == [
        f"image '{image}' was not found on the registry (NotFound): push that repository and tag first, "
        "or fix the name/tag in the pod spec."
    ]


def test_err_image_never_pull() -> None:
    message = f'Container image "{IMAGE}" is not present with pull policy of Never'
    pod = make_pod(statuses=[waiting("ErrImageNeverPull", message)])
    causes = diagnose_pull_failure(pod, [make_secret()], [event("ErrImageNeverPull", message)])
    assert len(causes) == 1
    assert "ErrImageNeverPull" in causes[0]
    assert "kind load docker-image" in causes[0]


def test_duplicate_symptoms_give_one_cause() -> None:
    # the same CRI error arrives in the status message, the event and again on back-off
    events = [*pull_failed(UNKNOWN_CA), event("Failed", CRI_PREFIX + UNKNOWN_CA, count=4)]
    causes = diagnose_pull_failure(failing_pod(CRI_PREFIX + UNKNOWN_CA), [make_secret()], events)
    assert len(causes) == 1


def test_transport_error_ranks_before_secret_problem() -> None:
    pod = failing_pod(CRI_PREFIX + UNKNOWN_CA, pull_secrets=("regcreds",))
    causes = diagnose_pull_failure(pod, [make_secret()], pull_failed(UNKNOWN_CA))
    assert "x509" in causes[0]
    assert "did you mean 'regcred'" in causes[1]


def test_causes_never_contain_secret_data() -> None:
    secret = make_secret(config=dockerconfigjson(server="https://kind-registry:5000"))
    pod = failing_pod(CRI_PREFIX + UNAUTHORIZED)
    text = joined(diagnose_pull_failure(pod, [secret], pull_failed(UNAUTHORIZED)))
    assert PASSWORD not in text
    assert base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() not in text


# --------------------------------------------------------------------------------------------------
# summarize_pod


def test_summarize_pod() -> None:
    pod = failing_pod(CRI_PREFIX + NO_BASIC_AUTH)
    events = [*pull_failed(NO_BASIC_AUTH), event("BackOff", f'Back-off pulling image "{IMAGE}"', count=3)]
    summary = summarize_pod(pod, events)
    lines = summary.splitlines()
    assert lines[0] == f"pod {NS}/app-pod: phase Pending"
    assert "  imagePullSecrets: regcred" in lines
    assert f"  container app ({IMAGE}): waiting: ErrImagePull: {CRI_PREFIX}{NO_BASIC_AUTH}" in lines
    assert "events:" in lines
    assert f'  Warning BackOff: Back-off pulling image "{IMAGE}" (x3)' in lines
    assert f"  Warning Failed: {CRI_PREFIX}{NO_BASIC_AUTH}" in lines


def test_summarize_pod_without_status_or_events() -> None:
    pod = make_pod(pull_secrets=(), statuses=None)
    summary = summarize_pod(pod, [])
    assert f"container app ({IMAGE}): no status yet" in summary
    assert summary.endswith("events: none")


@pytest.mark.parametrize(
    "reason",
    ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "RegistryUnavailable", "SignatureValidationFailed"],
)
def test_pull_failure_reason_stops_the_wait_on_image_problems(reason: str) -> None:
    assert pull_failure_reason(make_pod(statuses=[waiting(reason)])) == reason


def test_pull_failure_reason_sees_init_containers() -> None:
    pod = make_pod(statuses=[waiting("PodInitializing")])
    assert pod.status is not None
    pod.status.init_container_statuses = [waiting("ImagePullBackOff", name="init")]
    assert pull_failure_reason(pod) == "ImagePullBackOff"


@pytest.mark.parametrize("statuses", [None, [running()], [waiting("ContainerCreating")]])
def test_pull_failure_reason_none_while_starting_or_running(statuses: list[Any] | None) -> None:
    assert pull_failure_reason(make_pod(statuses=statuses)) is None


# --------------------------------------------------------------------------------------------------
# KEP-2535: kubelet re-verifies credentials for images already on the node (Kubernetes >= 1.35)


def test_refused_pull_of_an_image_on_the_node_is_kubelet_reverifying() -> None:
    # A pod without a pull secret asks for an image kubelet pulled for another pod with one.
    pod = failing_pod(CRI_PREFIX + NO_BASIC_AUTH, pull_secrets=())
    causes = diagnose_pull_failure(pod, [], pull_failed(NO_BASIC_AUTH), cached_images=[IMAGE], reverifying_node=True)
    assert "already on the node" in causes[0]
    assert "KEP-2535" in causes[0] and "KubeletEnsureSecretPulledImages" in causes[0]
    assert f"pull secret keyed on {HOST}" in causes[0]
    assert any("the pod has no imagePullSecrets" in c for c in causes[1:])  # the plain cause stays


def test_refused_pull_of_an_image_not_on_the_node_is_not_blamed_on_kep2535() -> None:
    pod = failing_pod(CRI_PREFIX + NO_BASIC_AUTH, pull_secrets=())
    causes = diagnose_pull_failure(
        pod, [], pull_failed(NO_BASIC_AUTH), cached_images=["127.0.0.1:5001/other:1"], reverifying_node=True
    )
    assert not any("KEP-2535" in c for c in causes)
    assert "no credentials reached the registry" in causes[0]


def test_never_pull_of_an_image_that_is_on_the_node() -> None:
    message = f'Container image "{IMAGE}" is not present with pull policy of Never'
    pod = make_pod(pull_secrets=(), statuses=[waiting("ErrImageNeverPull", message)])
    causes = diagnose_pull_failure(
        pod, [], [event("ErrImageNeverPull", message)], cached_images=[IMAGE], reverifying_node=True
    )
    assert causes[0].startswith(f"image '{IMAGE}' IS on the node")
    assert "KEP-2535" in causes[0]
    assert not any("not present on the node" in c for c in causes)


@pytest.mark.parametrize(
    ("pod_image", "node_name"),
    [
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("team/app", "docker.io/team/app:latest"),
        ("127.0.0.1:5001/app@sha256:" + "a" * 64, "127.0.0.1:5001/app@sha256:" + "a" * 64),
    ],
)
def test_cached_images_match_as_containerd_names_them(pod_image: str, node_name: str) -> None:
    message = f'Container image "{pod_image}" is not present with pull policy of Never'
    pod = make_pod(image=pod_image, pull_secrets=(), statuses=[waiting("ErrImageNeverPull", message, image=pod_image)])
    pod.spec.containers[0].image_pull_policy = "Never"  # as the API server returns it
    causes = diagnose_pull_failure(
        pod, [], [event("ErrImageNeverPull", message)], cached_images=[node_name], reverifying_node=True
    )
    assert "IS on the node" in causes[0]


def test_always_pulls_anyway_so_a_refusal_is_not_reverification() -> None:
    pod = failing_pod(CRI_PREFIX + NO_BASIC_AUTH, pull_secrets=())
    pod.spec.containers[0].image_pull_policy = "Always"
    causes = diagnose_pull_failure(pod, [], pull_failed(NO_BASIC_AUTH), cached_images=[IMAGE], reverifying_node=True)
    assert not any("KEP-2535" in c for c in causes)
    assert "no credentials reached the registry" in causes[0]


def test_a_node_that_does_not_reverify_is_not_blamed() -> None:
    # A 1.32 kubelet (gate off: no imagePullCredentialsVerificationPolicy in /configz), or an unknown one.
    pod = failing_pod(CRI_PREFIX + NO_BASIC_AUTH, pull_secrets=())
    for node in (False, None):
        causes = diagnose_pull_failure(
            pod, [], pull_failed(NO_BASIC_AUTH), cached_images=[IMAGE], reverifying_node=node
        )
        assert not any("KEP-2535" in c for c in causes)
    message = f'Container image "{IMAGE}" is not present with pull policy of Never'
    never = make_pod(pull_secrets=(), statuses=[waiting("ErrImageNeverPull", message)])
    causes = diagnose_pull_failure(
        never, [], [event("ErrImageNeverPull", message)], cached_images=[IMAGE], reverifying_node=False
    )
    assert "does not re-verify" in causes[0] and "KEP-2535" not in joined(causes)


def test_init_container_images_count() -> None:
    init_image = "127.0.0.1:5001/init:2"
    pod = make_pod(pull_secrets=())
    pod.spec.init_containers = [client.V1Container(name="init", image=init_image, image_pull_policy="IfNotPresent")]
    pod.status.init_container_statuses = [
        waiting("ErrImagePull", CRI_PREFIX + NO_BASIC_AUTH, image=init_image, name="init")
    ]
    causes = diagnose_pull_failure(pod, [], [], cached_images=[init_image], reverifying_node=True)
    assert f"image '{init_image}' is already on the node" in causes[0]
    assert "KEP-2535" in causes[0]
    assert pull_policy(pod, init_image) == "IfNotPresent"


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("r:5000/a:1", "IfNotPresent"),
        ("r:5000/a", "Always"),
        ("r:5000/a:latest", "Always"),
        ("a@sha256:" + "b" * 64, "IfNotPresent"),
    ],
)
def test_default_pull_policy(image: str, policy: str) -> None:
    assert pull_policy(make_pod(image=image), image) == policy


# --------------------------------------------------------------------------------------------------
# Token auth: what the token service and the registry say


@pytest.mark.parametrize(
    "cri_error",
    [
        "pull access denied, repository does not exist or may require authorization: server message: "
        "insufficient_scope: authorization failed",
        "denied: requested access to the resource is denied",
    ],
)
def test_scope_refusal_is_not_a_wrong_password(cri_error: str) -> None:
    causes = diagnose_pull_failure(failing_pod(CRI_PREFIX + cri_error), [make_secret()], pull_failed(cri_error))
    assert "lack of scope" in causes[0] and "Not a wrong password" in causes[0]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("access token expired", "has expired"),
        ("invalid credentials", "wrong or were rotated"),
        ("unknown service account key", "whole document"),
    ],
)
def test_token_service_reasons_are_explained(reason: str, expected: str) -> None:
    cri_error = (
        f"failed to fetch oauth token: unexpected status from GET request to http://172.17.0.1:4000/token"
        f"?scope=repository%3Aapp%3Apull&service=reg: 401 Unauthorized ({reason})"
    )
    causes = diagnose_pull_failure(failing_pod(CRI_PREFIX + cri_error), [make_secret()], pull_failed(cri_error))
    assert any(expected in c for c in causes), causes


# --------------------------------------------------------------------------------------------------
# Credential provider plugins: kubelet's journal says why a pull went without credentials

KUBELET = 'E1205 10:00:00.000000     123 plugin.go:418] "Failed to provide credentials for image" err='


PROVIDER_LOG_CASES = {
    "no credentials for the image": (
        KUBELET + '"failed to get credential from external registry credential provider: error execing '
        "credential provider plugin kindreg-credential-provider for image 127.0.0.1:5001/app: exit status 1: "
        'kindreg-credential-provider: no credentials for 127.0.0.1:5001\\n" image="127.0.0.1:5001/app"',
        "had no credentials for the image: no credentials for 127.0.0.1:5001",
    ),
    "apiVersion mismatch": (
        KUBELET + '"failed to get credential from external registry credential provider: apiVersion from '
        "credential plugin response did not match expected apiVersion:credentialprovider.kubelet.k8s.io/v1, "
        'actual apiVersion:credentialprovider.kubelet.k8s.io/v1beta1" image="127.0.0.1:5001/app"',
        "another apiVersion",
    ),
    "node may not request the audience": (
        KUBELET + '"failed to get service account token: serviceaccounts \\"puller\\" is forbidden: audience '
        '\\"kindreg-x\\" not found in pod spec volume, system:node:kind-worker is not authorized to request '
        'tokens for this audience" image="127.0.0.1:5001/app"',
        "request-serviceaccounts-token-audience",
    ),
    "provider not found": (
        'E1205 "Failed to start kubelet" err="plugin binary executable /etc/kubernetes/bin/prov did not exist"',
        "plugin of kubelet is missing",
    ),
    "invalid response": (
        KUBELET + '"failed to get credential from external registry credential provider: credential provider '
        'plugin did not return a valid cacheKeyType: " image="127.0.0.1:5001/app"',
        "response is not valid",
    ),
    "provider exec failed": (
        KUBELET + '"failed to get credential from external registry credential provider: error execing credential '
        'provider plugin p for image 127.0.0.1:5001/app: fork/exec /x/p: permission denied" image="x"',
        "kubelet's credential provider plugin p failed",
    ),
    "ServiceAccount not readable": (
        KUBELET + '"failed to get service account: serviceaccounts \\"puller\\" not found" image="x"',
        "could not read the pod's ServiceAccount",
    ),
}


@pytest.mark.parametrize("rule", sorted(PROVIDER_LOG_CASES))
def test_credential_provider_failures_are_named(rule: str) -> None:
    line, expected = PROVIDER_LOG_CASES[rule]
    assert next(r for r in KUBELET_LOG_RULES if r.name == rule).pattern.search(line)
    cri_error = "authorization failed: no basic auth credentials"
    causes = diagnose_pull_failure(failing_pod(CRI_PREFIX + cri_error), [], pull_failed(cri_error), kubelet_log=[line])
    assert any(expected in c for c in causes), causes


def test_every_kubelet_log_rule_has_a_case() -> None:
    assert {rule.name for rule in KUBELET_LOG_RULES} == set(PROVIDER_LOG_CASES)


# --------------------------------------------------------------------------------------------------
# kubelet's secret cache missing its first sync: run_pod waits for the next pull

RETRIEVE_FAILED = event(
    "FailedToRetrieveImagePullSecret",
    "Unable to retrieve some image pull secrets (regcred); attempting to pull the image may not succeed.",
)


def test_secret_cache_missed_when_every_secret_exists() -> None:
    pod = failing_pod(CRI_PREFIX + NO_BASIC_AUTH)
    assert secret_cache_missed(pod, [RETRIEVE_FAILED, *pull_failed(NO_BASIC_AUTH)], ["regcred", "other"])


@pytest.mark.parametrize(
    ("events", "secrets"),
    [
        ([RETRIEVE_FAILED], []),  # really missing: retrying would not help
        (pull_failed(NO_BASIC_AUTH), ["regcred"]),  # kubelet had the secret: the credentials are wrong
    ],
)
def test_secret_cache_not_missed(events: list[Any], secrets: list[str]) -> None:
    assert not secret_cache_missed(failing_pod(CRI_PREFIX + NO_BASIC_AUTH), events, secrets)


def test_secret_cache_not_missed_without_pull_secrets() -> None:
    pod = failing_pod(CRI_PREFIX + NO_BASIC_AUTH, pull_secrets=())
    assert not secret_cache_missed(pod, [RETRIEVE_FAILED], ["regcred"])


def test_failed_pulls_counts_kubelet_pull_failures() -> None:
    first = event("Failed", f"Failed to pull image {IMAGE!r}: no basic auth credentials")
    assert failed_pulls([RETRIEVE_FAILED, first, event("Failed", "Error: ErrImagePull")]) == 1
    again = event("Failed", f"Failed to pull image {IMAGE!r}: no basic auth credentials", count=2)
    assert failed_pulls([again, event("BackOff", "Back-off pulling image")]) == 2
