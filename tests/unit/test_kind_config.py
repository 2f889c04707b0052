"""Unit tests for pytest_kindreg.kind_config (no Docker, no kind)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from pytest_kindreg.errors import KindConfigError
from pytest_kindreg.kind_config import (
    CONFIG_PATH_PATCH,
    ClusterContribution,
    ExtraMount,
    KindClusterConfig,
    validate_kind_config,
)

IMAGE = "kindest/node:v1.33.1"
CREDS = ExtraMount("/tmp/run/config.json", "/var/lib/kubelet/config.json")
CERTS = ExtraMount("/tmp/run/certs", "/etc/containerd/certs.d/localhost:5001", read_only=False)
AUTH_PATCH = (
    '[plugins."io.containerd.grpc.v1.cri".registry.configs."kind-registry:5000".auth]\n'
    '  username = "u"\n  password = "p"'
)


def make(**overrides: Any) -> KindClusterConfig:
    kwargs: dict[str, Any] = {
        "name": "kindreg-test",
        "node_image": IMAGE,
        "workers": 2,
        "contributions": (
            ClusterContribution(extra_mounts=(CREDS,), source="node-config"),
            ClusterContribution(extra_mounts=(CERTS,), containerd_patches=(AUTH_PATCH,), source="mtls"),
        ),
    }
    kwargs.update(overrides)
    return KindClusterConfig(**kwargs)


def valid_doc() -> dict[str, Any]:
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "name": "x",
        "nodes": [
            {
                "role": "control-plane",
                "image": IMAGE,
                "labels": {"a": "b"},
                "extraMounts": [{"containerPath": "/c", "hostPath": "/h", "readOnly": True}],
                "extraPortMappings": [{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}],
                "kubeadmConfigPatchesJSON6902": [{"group": "g", "version": "v", "kind": "k", "patch": "[]"}],
            },
            {"role": "worker"},
        ],
        "networking": {"ipFamily": "ipv4", "apiServerPort": -1, "disableDefaultCNI": False},
        "featureGates": {"Foo": True},
        "runtimeConfig": {"api/alpha": "false"},
        "containerdConfigPatches": [CONFIG_PATH_PATCH],
    }


# --- rendering ------------------------------------------------------------------------------------------


def test_to_dict_shape() -> None:
    doc = make().to_dict()
    assert list(doc) == ["kind", "apiVersion", "name", "nodes", "containerdConfigPatches"]
    assert doc["kind"] == "Cluster"
    assert doc["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert doc["name"] == "kindreg-test"
    assert [n["role"] for n in doc["nodes"]] == ["control-plane", "worker", "worker"]


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_rendered_config_passes_validator(workers: int) -> None:
    config = make(workers=workers)
    validate_kind_config(config.to_dict())
    validate_kind_config(yaml.safe_load(config.to_yaml()))


def test_yaml_round_trips_to_dict() -> None:
    config = make()
    text = config.to_yaml()
    assert yaml.safe_load(text) == config.to_dict()
    assert text.startswith("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n")  # sort_keys=False


def test_config_path_patch_constant() -> None:
    assert CONFIG_PATH_PATCH == (
        '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"'
    )


@pytest.mark.parametrize(
    "contributions",
    [
        (),
        (ClusterContribution(source="plain"),),
        (ClusterContribution(containerd_patches=(CONFIG_PATH_PATCH,), source="a"),),
        (
            ClusterContribution(containerd_patches=(CONFIG_PATH_PATCH, AUTH_PATCH), source="a"),
            ClusterContribution(containerd_patches=(CONFIG_PATH_PATCH,), source="b"),
        ),
    ],
)
def test_config_path_patch_present_exactly_once_and_first(
    contributions: tuple[ClusterContribution, ...],
) -> None:
    patches = make(contributions=contributions).to_dict()["containerdConfigPatches"]
    assert patches.count(CONFIG_PATH_PATCH) == 1
    assert patches[0] == CONFIG_PATH_PATCH


def test_patches_deduplicated_in_order() -> None:
    other = '[plugins."io.containerd.grpc.v1.cri"]\n  enable_cdi = true'
    config = make(
        contributions=(
            ClusterContribution(containerd_patches=(AUTH_PATCH,), source="a"),
            ClusterContribution(containerd_patches=(other, AUTH_PATCH), source="b"),
        )
    )
    assert config.to_dict()["containerdConfigPatches"] == [CONFIG_PATH_PATCH, AUTH_PATCH, other]


def test_mounts_on_every_node_including_workers() -> None:
    doc = make(workers=3).to_dict()
    expected = [
        {
            "hostPath": "/tmp/run/config.json",
            "containerPath": "/var/lib/kubelet/config.json",
            "readOnly": True,
        },
        {
            "hostPath": "/tmp/run/certs",
            "containerPath": "/etc/containerd/certs.d/localhost:5001",
            "readOnly": False,
        },
    ]
    assert len(doc["nodes"]) == 4
    for node in doc["nodes"]:
        assert node["extraMounts"] == expected


def test_identical_mount_from_two_strategies_rendered_once() -> None:
    config = make(
        contributions=(
            ClusterContribution(extra_mounts=(CREDS,), source="a"),
            ClusterContribution(extra_mounts=(CREDS,), source="b"),
        )
    )
    for node in config.to_dict()["nodes"]:
        assert node["extraMounts"] == [CREDS.to_dict()]


def test_no_mounts_no_extra_mounts_key() -> None:
    for node in make(contributions=()).to_dict()["nodes"]:
        assert "extraMounts" not in node


def test_extra_mount_to_dict_keys() -> None:
    assert ExtraMount("/a", "/b").to_dict() == {"hostPath": "/a", "containerPath": "/b", "readOnly": True}
    assert ExtraMount("/a", "/b", read_only=False).to_dict()["readOnly"] is False


def test_node_image_on_every_node() -> None:
    nodes = make(workers=2).to_dict()["nodes"]
    assert [n.get("image") for n in nodes] == [IMAGE, IMAGE, IMAGE]


def test_no_node_image_means_no_image_key() -> None:
    for node in make(node_image=None).to_dict()["nodes"]:
        assert "image" not in node


def test_to_dict_returns_independent_copies() -> None:
    config = make()
    doc = config.to_dict()
    doc["nodes"][0]["extraMounts"].append({"hostPath": "/evil", "containerPath": "/evil"})
    assert doc["nodes"][1]["extraMounts"] == config.to_dict()["nodes"][1]["extraMounts"]


# --- fingerprint ----------------------------------------------------------------------------------------


def test_fingerprint_is_stable_sha256() -> None:
    first = make().fingerprint()
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert make().fingerprint() == first


def test_fingerprint_ignores_name() -> None:
    assert make(name="one").fingerprint() == make(name="two").fingerprint()


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(
            {
                "contributions": (
                    ClusterContribution(extra_mounts=(ExtraMount("/other/config.json", CREDS.container_path),)),
                    ClusterContribution(extra_mounts=(CERTS,), containerd_patches=(AUTH_PATCH,)),
                )
            },
            id="mount-host-path",
        ),
        pytest.param(
            {
                "contributions": (
                    ClusterContribution(extra_mounts=(CREDS,)),
                    ClusterContribution(
                        extra_mounts=(ExtraMount(CERTS.host_path, CERTS.container_path, read_only=True),),
                        containerd_patches=(AUTH_PATCH,),
                    ),
                )
            },
            id="mount-read-only",
        ),
        pytest.param(
            {
                "contributions": (
                    ClusterContribution(extra_mounts=(CREDS,)),
                    ClusterContribution(extra_mounts=(CERTS,), containerd_patches=(AUTH_PATCH.replace('"p"', '"q"'),)),
                )
            },
            id="patch",
        ),
        pytest.param({"contributions": (ClusterContribution(extra_mounts=(CREDS, CERTS)),)}, id="patch-removed"),
        pytest.param({"workers": 1}, id="workers"),
        pytest.param({"node_image": "kindest/node:v1.34.0"}, id="image"),
    ],
)
def test_fingerprint_changes_with_content(changed: dict[str, Any]) -> None:
    assert make(**changed).fingerprint() != make().fingerprint()


def test_fingerprint_ignores_strategy_source_labels() -> None:
    # source is only for error messages; it does not change the cluster
    relabelled = tuple(
        ClusterContribution(c.extra_mounts, c.containerd_patches, source=f"x-{c.source}") for c in make().contributions
    )
    assert make(contributions=relabelled).fingerprint() == make().fingerprint()


# --- construction-time validation -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "Upper", "under_score", "sp ace", "slash/x", "trailing\n"])
def test_bad_name_rejected(name: str) -> None:
    with pytest.raises(KindConfigError, match=r"^cluster name: .* is not a valid kind cluster name.*\^\[a-z0-9\.-\]"):
        make(name=name)


@pytest.mark.parametrize("name", ["a", "kind", "my.cluster-1", "0"])
def test_good_names_accepted(name: str) -> None:
    assert make(name=name).name == name


@pytest.mark.parametrize("workers", [-1, True])
def test_bad_workers_rejected(workers: Any) -> None:
    with pytest.raises(KindConfigError, match=r"^workers: must be an integer >= 0"):
        make(workers=workers)


def test_mount_conflict_names_both_strategies() -> None:
    with pytest.raises(ValueError, match=r"conflict") as excinfo:
        make(
            contributions=(
                ClusterContribution(extra_mounts=(CREDS,), source="node-config"),
                ClusterContribution(
                    extra_mounts=(ExtraMount("/elsewhere/config.json", CREDS.container_path),),
                    source="kubelet-copy",
                ),
            )
        )
    message = str(excinfo.value)
    assert "/var/lib/kubelet/config.json" in message
    assert "'node-config'" in message
    assert "'kubelet-copy'" in message
    assert "/tmp/run/config.json" in message
    assert "/elsewhere/config.json" in message


def test_mount_conflict_detected_after_path_normalisation() -> None:
    with pytest.raises(ValueError, match=r"conflict on containerPath '/var/lib/kubelet/config.json'"):
        make(
            contributions=(
                ClusterContribution(extra_mounts=(CREDS,), source="a"),
                ClusterContribution(extra_mounts=(ExtraMount("/b", "/var/lib//kubelet/config.json"),), source="b"),
            )
        )


def test_mount_read_only_disagreement_is_a_conflict() -> None:
    with pytest.raises(ValueError, match=r"conflict.*'a' wants readOnly=True but strategy 'b' wants readOnly=False"):
        make(
            contributions=(
                ClusterContribution(extra_mounts=(CREDS,), source="a"),
                ClusterContribution(
                    extra_mounts=(ExtraMount(CREDS.host_path, CREDS.container_path, read_only=False),),
                    source="b",
                ),
            )
        )


def test_same_mount_twice_is_not_a_conflict() -> None:
    make(
        contributions=(
            ClusterContribution(extra_mounts=(CREDS,), source="a"),
            ClusterContribution(extra_mounts=(CREDS,), source="b"),
        )
    )


@pytest.mark.parametrize("host_path", ["relative/config.json", "./config.json", "config.json", ""])
def test_relative_host_path_rejected(host_path: str) -> None:
    with pytest.raises(ValueError, match=r"strategy 'creds'.*hostPath .* must be an absolute path"):
        make(contributions=(ClusterContribution(extra_mounts=(ExtraMount(host_path, "/x"),), source="creds"),))


def test_relative_container_path_rejected() -> None:
    with pytest.raises(ValueError, match=r"containerPath 'x' must be an absolute path"):
        make(contributions=(ClusterContribution(extra_mounts=(ExtraMount("/x", "x"),), source="creds"),))


MIRROR_PATCHES = [
    pytest.param(
        '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."localhost:5001"]\n'
        '  endpoint = ["http://kind-registry:5000"]',
        id="table",
    ),
    pytest.param(
        '[plugins."io.containerd.grpc.v1.cri".registry]\n'
        '  mirrors."localhost:5001".endpoint = ["http://kind-registry:5000"]',
        id="dotted-key",
    ),
    pytest.param(
        '[plugins."io.containerd.cri.v1.images".registry . mirrors."docker.io"]\n  endpoint = ["https://x"]',
        id="v3-key-spaced",
    ),
    pytest.param(
        '[plugins."io.containerd.grpc.v1.cri"]\n  registry = { mirrors = { "a" = { endpoint = ["http://b"] } } }',
        id="inline-table",
    ),
]


@pytest.mark.parametrize("patch", MIRROR_PATCHES)
def test_mirrors_patch_rejected(patch: str) -> None:
    with pytest.raises(
        ValueError, match=r"strategy 'legacy'.*registry\.mirrors must not be used.*#3884.*#12612"
    ) as excinfo:
        make(contributions=(ClusterContribution(containerd_patches=(patch,), source="legacy"),))
    assert "containerd 1.7" in str(excinfo.value)
    assert "2.2.0" in str(excinfo.value)


TLS_PATCHES = [
    pytest.param(
        '[plugins."io.containerd.grpc.v1.cri".registry.configs."kind-registry:5000".tls]\n  ca_file = "/etc/ca.crt"',
        id="table",
    ),
    pytest.param(
        '[plugins."io.containerd.grpc.v1.cri".registry.configs."kind-registry:5000"]\n'
        "  tls.insecure_skip_verify = true",
        id="dotted-key",
    ),
    pytest.param(
        '[plugins."io.containerd.grpc.v1.cri".registry]\n  configs."kind-registry:5000".tls.cert_file = "/c.cert"',
        id="dotted-key-in-registry",
    ),
    pytest.param(
        '[plugins."io.containerd.grpc.v1.cri".registry.configs."r:5000".tls ]\n  ca_file = "/etc/ca.crt"',
        id="space-before-bracket",
    ),
]


@pytest.mark.parametrize("patch", TLS_PATCHES)
def test_tls_patch_rejected(patch: str) -> None:
    with pytest.raises(ValueError, match=r"strategy 'mtls'.*configs\.<host>\.tls must not be used") as excinfo:
        make(contributions=(ClusterContribution(containerd_patches=(patch,), source="mtls"),))
    message = str(excinfo.value)
    assert "containerd 1.7" in message
    assert "containerd 2.x" in message
    assert "ignores it" in message


def test_auth_patch_is_allowed() -> None:
    # registry.configs.<host>.auth is the deprecated-but-working last resort; it must stay usable
    config = make(contributions=(ClusterContribution(containerd_patches=(AUTH_PATCH,), source="auth"),))
    assert AUTH_PATCH in config.to_dict()["containerdConfigPatches"]


def test_unnamed_contribution_is_described() -> None:
    with pytest.raises(ValueError, match=r"from an unnamed contribution"):
        make(contributions=(ClusterContribution(extra_mounts=(ExtraMount("rel", "/x"),)),))


# --- validate_kind_config -------------------------------------------------------------------------------


def test_validator_accepts_full_valid_doc() -> None:
    validate_kind_config(valid_doc())


def test_validator_accepts_minimal_doc() -> None:
    validate_kind_config({"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4"})


def _with(path: list[str | int], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(valid_doc())
    target: Any = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param(["extraField"], r"^extraField: unknown field", id="top-level"),
        pytest.param(["nodes", 0, "extraMount"], r"^nodes\[0\]\.extraMount: unknown field", id="node"),
        pytest.param(
            ["nodes", 0, "extraMounts", 0, "readonly"],
            r"^nodes\[0\]\.extraMounts\[0\]\.readonly: unknown field",
            id="mount",
        ),
        pytest.param(
            ["nodes", 0, "extraPortMappings", 0, "port"],
            r"^nodes\[0\]\.extraPortMappings\[0\]\.port: unknown field",
            id="port-mapping",
        ),
        pytest.param(["networking", "podCIDR"], r"^networking\.podCIDR: unknown field", id="networking"),
        pytest.param(
            ["nodes", 0, "kubeadmConfigPatchesJSON6902", 0, "name"],
            r"^nodes\[0\]\.kubeadmConfigPatchesJSON6902\[0\]\.name: unknown field",
            id="json6902",
        ),
    ],
)
def test_unknown_field_rejected_with_path(path: list[str | int], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        validate_kind_config(_with(path, "x"))


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        pytest.param(["kind"], "Config", r"^kind: must be 'Cluster'", id="kind"),
        pytest.param(
            ["apiVersion"],
            "kind.x-k8s.io/v1alpha3",
            r"^apiVersion: must be 'kind\.x-k8s\.io/v1alpha4', got 'kind\.x-k8s\.io/v1alpha3'",
            id="apiVersion",
        ),
        pytest.param(["name"], "Bad_Name", r"^name: 'Bad_Name' is not a valid kind cluster name", id="name"),
        pytest.param(["nodes"], {"role": "worker"}, r"^nodes: expected a list, got dict", id="nodes-not-list"),
        pytest.param(["nodes", 1, "role"], "master", r"^nodes\[1\]\.role: 'master' is not one of", id="role"),
        pytest.param(["nodes", 0, "image"], 5, r"^nodes\[0\]\.image: expected a string, got int", id="image"),
        pytest.param(["nodes", 0, "labels", "a"], 1, r"^nodes\[0\]\.labels\.a: expected a string", id="label"),
        pytest.param(
            ["nodes", 0, "extraMounts", 0, "readOnly"],
            "true",
            r"^nodes\[0\]\.extraMounts\[0\]\.readOnly: expected a bool, got str",
            id="readOnly",
        ),
        pytest.param(
            ["nodes", 0, "extraMounts", 0, "propagation"],
            "rshared",
            r"^nodes\[0\]\.extraMounts\[0\]\.propagation: 'rshared' is not one of",
            id="propagation",
        ),
        pytest.param(
            ["nodes", 0, "extraMounts"],
            {"containerPath": "/c"},
            r"^nodes\[0\]\.extraMounts: expected a list",
            id="extraMounts-not-list",
        ),
        pytest.param(
            ["nodes", 0, "extraPortMappings", 0, "hostPort"],
            True,
            r"^nodes\[0\]\.extraPortMappings\[0\]\.hostPort: expected an integer, got bool",
            id="hostPort-bool",
        ),
        pytest.param(
            ["nodes", 0, "extraPortMappings", 0, "containerPort"],
            2**31,
            r"containerPort: 2147483648 does not fit in an int32",
            id="containerPort-range",
        ),
        pytest.param(
            ["networking", "apiServerPort"],
            "6443",
            r"^networking\.apiServerPort: expected an integer",
            id="port",
        ),
        pytest.param(["networking", "ipFamily"], "ipv5", r"^networking\.ipFamily: 'ipv5'", id="ipFamily"),
        pytest.param(
            ["networking", "dnsSearch"],
            "example.com",
            r"^networking\.dnsSearch: expected a list",
            id="dnsSearch",
        ),
        pytest.param(["featureGates", "Foo"], "yes", r"^featureGates\.Foo: expected a bool", id="featureGate"),
        pytest.param(["runtimeConfig", "api/alpha"], False, r"^runtimeConfig\.api/alpha: expected a string", id="rc"),
        pytest.param(
            ["containerdConfigPatches"],
            CONFIG_PATH_PATCH,
            r"^containerdConfigPatches: expected a list, got str",
            id="patches-not-list",
        ),
        pytest.param(
            ["containerdConfigPatches", 0],
            {"a": 1},
            r"^containerdConfigPatches\[0\]: expected a string, got dict",
            id="patch-not-string",
        ),
        pytest.param(["networking"], ["ipv4"], r"^networking: expected a mapping, got list", id="networking-type"),
    ],
)
def test_bad_value_rejected_with_path(path: list[str | int], value: Any, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        validate_kind_config(_with(path, value))


@pytest.mark.parametrize("api_version", [None, "v1", "kind.x-k8s.io/v1alpha4 "])
def test_wrong_or_missing_api_version(api_version: str | None) -> None:
    doc = valid_doc()
    if api_version is None:
        del doc["apiVersion"]
    else:
        doc["apiVersion"] = api_version
    with pytest.raises(ValueError, match=r"^apiVersion: must be 'kind\.x-k8s\.io/v1alpha4'"):
        validate_kind_config(doc)


def test_missing_kind_rejected() -> None:
    doc = valid_doc()
    del doc["kind"]
    with pytest.raises(ValueError, match=r"^kind: missing; a kind config starts with kind: Cluster"):
        validate_kind_config(doc)


def test_no_control_plane_rejected() -> None:
    doc = valid_doc()
    doc["nodes"] = [{"role": "worker"}, {"role": "worker"}]
    with pytest.raises(ValueError, match=r"^nodes: must have at least one control-plane node"):
        validate_kind_config(doc)


def test_node_without_role_defaults_to_control_plane() -> None:
    doc = valid_doc()
    doc["nodes"] = [{"image": IMAGE}, {"role": "worker"}]
    validate_kind_config(doc)


def test_rendered_config_with_unknown_field_is_caught() -> None:
    # the validator really inspects the renderer's output shape, not just any dict
    doc = make().to_dict()
    doc["nodes"][-1]["extraMounts"][0]["mountPropagation"] = "None"
    with pytest.raises(ValueError, match=r"^nodes\[2\]\.extraMounts\[0\]\.mountPropagation: unknown field"):
        validate_kind_config(doc)


def test_validator_rejects_non_mapping_root() -> None:
    with pytest.raises(ValueError, match=r"expected a mapping, got list"):
        validate_kind_config([])  # type: ignore[arg-type]


def test_strategy_kubeadm_patches_follow_the_users_own_kubelet_args() -> None:
    from pytest_kindreg.credential_providers import kubeadm_patches
    from pytest_kindreg.kind_config import ClusterContribution, KindClusterConfig, UserKindConfig

    user_patch = "kind: JoinConfiguration\nnodeRegistration:\n  kubeletExtraArgs:\n    v: '4'\n"
    base = UserKindConfig(
        {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "kubeadmConfigPatches": [user_patch]}
    )
    ours = ClusterContribution(kubeadm_patches=kubeadm_patches(), source="credential_provider")
    doc = KindClusterConfig(name="c", base=base, contributions=(ours, ours)).to_dict()
    # The user's patch first (kind merges them in order: maps merge, so both sets of args stay), ours once.
    assert doc["kubeadmConfigPatches"] == [user_patch, *kubeadm_patches()]
    assert "image-credential-provider-config" in doc["kubeadmConfigPatches"][1]
    assert KindClusterConfig(name="c").to_dict().get("kubeadmConfigPatches") is None
