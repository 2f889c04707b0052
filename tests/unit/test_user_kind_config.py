"""A user's own kind config as the base of the cluster's config (no Docker, no kind)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_kindreg.errors import KindConfigError
from pytest_kindreg.kind_config import (
    CONFIG_PATH_PATCH,
    ClusterContribution,
    ExtraMount,
    KindClusterConfig,
    UserKindConfig,
    config_differences,
    load_kind_config,
    resolve_cluster_name,
    validate_kind_config,
)

KUBELET_PATCH = "kind: KubeletConfiguration\nmaxPods: 64\n"
USER_PATCH = '[plugins."io.containerd.grpc.v1.cri"]\n  enable_cdi = true'
CREDS = ExtraMount("/run/kindreg/config.json", "/var/lib/kubelet/config.json")


def user_doc() -> dict[str, Any]:
    """Everything the issue lists as the user's: none of it may be dropped."""
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "nodes": [
            {
                "role": "control-plane",
                "kubeadmConfigPatches": ["kind: InitConfiguration\nnodeRegistration:\n  name: cp\n"],
            },
            {
                "role": "worker",
                "image": "example/node:own",
                "labels": {"tier": "pull"},
                "extraMounts": [{"hostPath": "/srv/data", "containerPath": "/data", "readOnly": True}],
                "extraPortMappings": [{"containerPort": 30080, "listenAddress": "127.0.0.1"}],
                "kubeadmConfigPatchesJSON6902": [
                    {"group": "kubeadm.k8s.io", "version": "v1beta3", "kind": "JoinConfiguration", "patch": "[]"}
                ],
            },
        ],
        "networking": {"podSubnet": "10.200.0.0/16", "serviceSubnet": "10.201.0.0/16"},
        "featureGates": {"KubeletEnsureSecretPulledImages": True},
        "runtimeConfig": {"api/alpha": "false"},
        "kubeadmConfigPatches": [KUBELET_PATCH],
        "kubeadmConfigPatchesJSON6902": [
            {"group": "kubeadm.k8s.io", "version": "v1beta3", "kind": "ClusterConfiguration", "patch": "[]"}
        ],
        "containerdConfigPatches": [USER_PATCH],
        "containerdConfigPatchesJSON6902": ["[]"],
    }


def write(tmp_path: Path, text: str, name: str = "kind.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def merged(doc: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("contributions", (ClusterContribution(extra_mounts=(CREDS,), source="node_config"),))
    return KindClusterConfig(name="kindreg-x", base=UserKindConfig(doc or user_doc()), **kwargs).to_dict()


# --- merging: the user's config is the base, nothing of it is dropped -------------------------------------


def test_every_user_key_is_kept() -> None:
    doc = merged(node_image="lab/node:1")
    original = user_doc()
    for key in original:
        if key not in ("nodes", "containerdConfigPatches"):
            assert doc[key] == original[key], key
    assert list(doc)[:3] == ["kind", "apiVersion", "name"]
    validate_kind_config(doc)


def test_user_nodes_are_kept_with_the_plugin_mount_appended_on_every_node() -> None:
    nodes = merged(node_image="lab/node:1")["nodes"]
    original = user_doc()["nodes"]
    assert [n["role"] for n in nodes] == ["control-plane", "worker"]
    worker = nodes[1]
    for key in ("labels", "extraPortMappings", "kubeadmConfigPatchesJSON6902"):
        assert worker[key] == original[1][key]
    assert nodes[0]["kubeadmConfigPatches"] == original[0]["kubeadmConfigPatches"]
    # the user's own mount first, the plugin's after it, on workers too
    assert worker["extraMounts"] == [original[1]["extraMounts"][0], CREDS.to_dict()]
    assert nodes[0]["extraMounts"] == [CREDS.to_dict()]


def test_a_node_image_of_the_users_wins_over_the_node_image_option() -> None:
    config = KindClusterConfig(name="kindreg-x", node_image="lab/node:1", base=UserKindConfig(user_doc()))
    nodes = config.to_dict()["nodes"]
    assert [n["image"] for n in nodes] == ["lab/node:1", "example/node:own"]
    assert config.node_images() == ["example/node:own", "lab/node:1"]


def test_plugin_containerd_patches_come_after_the_users() -> None:
    patches = merged()["containerdConfigPatches"]
    assert patches == [USER_PATCH, CONFIG_PATH_PATCH]


def test_a_users_own_config_path_patch_is_not_repeated() -> None:
    doc = user_doc()
    doc["containerdConfigPatches"] = [CONFIG_PATH_PATCH]
    assert merged(doc)["containerdConfigPatches"] == [CONFIG_PATH_PATCH]


def test_config_without_nodes_gets_the_control_plane_and_workers() -> None:
    doc = user_doc()
    del doc["nodes"]
    config = KindClusterConfig(name="kindreg-x", workers=2, base=UserKindConfig(doc))
    assert [n["role"] for n in config.to_dict()["nodes"]] == ["control-plane", "worker", "worker"]
    assert config.to_dict()["networking"] == doc["networking"]


def test_the_users_dict_is_copied_not_changed() -> None:
    doc = user_doc()
    before = copy.deepcopy(doc)
    config = UserKindConfig(doc)
    merged(doc, node_image="lab/node:1")
    doc["networking"]["podSubnet"] = "changed"
    assert doc["networking"] != before["networking"]
    assert config.document["networking"] == before["networking"]


def test_fingerprint_follows_the_users_config() -> None:
    one = KindClusterConfig(name="a", base=UserKindConfig(user_doc()))
    other_doc = user_doc()
    other_doc["networking"]["podSubnet"] = "10.210.0.0/16"
    other = KindClusterConfig(name="a", base=UserKindConfig(other_doc))
    assert one.fingerprint() == KindClusterConfig(name="b", base=UserKindConfig(user_doc())).fingerprint()
    assert one.fingerprint() != other.fingerprint()
    assert one.fingerprint() != KindClusterConfig(name="a").fingerprint()


def test_config_differences_names_the_keys() -> None:
    needed = user_doc()
    needed["networking"]["podSubnet"] = "10.210.0.0/16"
    needed["nodes"][1]["labels"] = {"tier": "other"}
    lines = config_differences(user_doc(), needed)
    assert lines == [
        'nodes[1].labels.tier: recorded "pull", needed "other"',
        'networking.podSubnet: recorded "10.200.0.0/16", needed "10.210.0.0/16"',
    ]
    fewer = user_doc()
    fewer["nodes"].pop()
    assert config_differences(user_doc(), fewer)[0].startswith("nodes: recorded [")
    assert config_differences(user_doc(), user_doc()) == []


def test_config_differences_are_limited() -> None:
    needed = {f"k{i}": i for i in range(10)}
    lines = config_differences({}, needed, limit=3)
    assert lines == [*(f"k{i}: recorded absent, needed {i}" for i in range(3)), "... and 7 more"]


# --- the cluster name: one rule ---------------------------------------------------------------------------


def test_name_rule() -> None:
    named = UserKindConfig({**user_doc(), "name": "dev"})
    assert resolve_cluster_name(None, named) == "dev"
    assert resolve_cluster_name("dev", named) == "dev"
    assert resolve_cluster_name("ci", UserKindConfig(user_doc())) == "ci"
    assert resolve_cluster_name(None, None) is None
    with pytest.raises(KindConfigError, match=r"kind config <dict>: name: 'dev' conflicts with .*'ci'.*--opt"):
        resolve_cluster_name("ci", named, "--opt")
    assert KindClusterConfig(name="dev", base=named).to_dict()["name"] == "dev"
    with pytest.raises(KindConfigError, match="name: 'dev' conflicts"):
        KindClusterConfig(name="other", base=named)
    assert named.renamed("dev-gw1").name == "dev-gw1"
    assert KindClusterConfig(name="dev-gw1", base=named.renamed("dev-gw1")).to_dict()["name"] == "dev-gw1"


# --- bad input: one message naming the file and the key ---------------------------------------------------


def test_nodes_and_workers_together_are_refused() -> None:
    with pytest.raises(
        KindConfigError, match=r"kind config <dict>: nodes: the config lists its nodes.*--kindreg-workers"
    ):
        KindClusterConfig(name="x", workers=1, base=UserKindConfig(user_doc()))
    with pytest.raises(KindConfigError, match=r"workers=0"):
        KindClusterConfig(name="x", workers=0, base=UserKindConfig(user_doc()))
    empty_nodes = {**user_doc(), "nodes": []}
    assert len(KindClusterConfig(name="x", workers=1, base=UserKindConfig(empty_nodes)).to_dict()["nodes"]) == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KindConfigError, match=rf"^kind config {tmp_path}/nope.yaml: no such file$"):
        load_kind_config(tmp_path / "nope.yaml")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(KindConfigError, match=rf"^kind config {tmp_path}: cannot be read"):
        load_kind_config(tmp_path)


def test_not_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "kind: Cluster\nnodes: [\n")
    with pytest.raises(KindConfigError, match=rf"^kind config {path}: not valid YAML at line \d+, column \d+: "):
        load_kind_config(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "expected one YAML document .* found 0"),
        ("kind: Cluster\n---\nkind: Cluster\n", "expected one YAML document .* found 2"),
        ("- a\n- b\n", "<root>: expected a kind.x-k8s.io/v1alpha4 Cluster mapping, got list"),
        ("kind: Pod\napiVersion: v1\n", "kind: must be 'Cluster', got 'Pod'"),
        ("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha3\n", "apiVersion: must be"),
        ("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: master\n", r"nodes\[0\]\.role: 'master'"),
        (
            "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  podCIDR: x\n",
            "networking.podCIDR: unknown field",
        ),
    ],
)
def test_not_a_kind_cluster(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(KindConfigError, match=rf"^kind config {path}: {expected}"):
        load_kind_config(path)


HEADER = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\ncontainerdConfigPatches:\n- |-\n"


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (
            '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."localhost:5001"]\n'
            '  endpoint = ["http://kind-registry:5000"]',
            r'plugins\."io\.containerd\.grpc\.v1\.cri"\.registry\.mirrors: registry\.mirrors must not be used',
        ),
        (
            '[plugins."io.containerd.cri.v1.images".registry]\n'
            '  mirrors = { "docker.io" = { endpoint = ["https://m"] } }',
            r"registry\.mirrors: registry\.mirrors must not be used",
        ),
        (
            '[plugins."io.containerd.grpc.v1.cri".registry.configs."r:5000".tls]\n  ca_file = "/ca.crt"',
            r'registry\.configs\."r:5000"\.tls: registry\.configs\.<host>\.tls must not be used',
        ),
        (
            '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/docker/certs.d"',
            r"registry\.config_path = '/etc/docker/certs\.d': containerd would not read /etc/containerd/certs\.d",
        ),
        (
            "[plugins.'io.containerd.cri.v1.images'.registry]\n  config_path = ''",
            r"registry\.config_path = '': containerd would not read",
        ),
        ('[plugins."io.containerd.grpc.v1.cri"\n  x = 1', "not valid TOML"),
    ],
)
def test_forbidden_containerd_patches(tmp_path: Path, patch: str, expected: str) -> None:
    path = write(tmp_path, HEADER + "".join(f"  {line}\n" for line in patch.splitlines()))
    prefix = rf"^kind config {path}: containerdConfigPatches\[0\]: (plugins\.\S+)?"
    with pytest.raises(KindConfigError, match=prefix + expected):
        load_kind_config(path)


@pytest.mark.parametrize(
    "patch",
    [
        '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"',
        '[plugins."io.containerd.grpc.v1.cri".registry.configs."r:5000".auth]\n  username = "u"',
        '[plugins."io.containerd.transfer.v1.local"]\n  config_path = "/elsewhere"',  # not the CRI's
        USER_PATCH,
    ],
)
def test_usable_containerd_patches(patch: str) -> None:
    config = load_kind_config({**user_doc(), "containerdConfigPatches": [patch]})
    assert KindClusterConfig(name="x", base=config).to_dict()["containerdConfigPatches"][0] == patch


def test_a_users_mount_on_kubelets_credentials_conflicts_with_node_config() -> None:
    doc = user_doc()
    doc["nodes"][1]["extraMounts"].append({"hostPath": "/mine.json", "containerPath": "/var/lib/kubelet/config.json"})
    with pytest.raises(KindConfigError, match=r"<dict>: nodes\[1\]\.extraMounts\[1\]\.containerPath: /var/lib/kubelet"):
        merged(doc)
    # without a strategy that mounts it, the mount is the user's business
    assert merged(doc, contributions=())["nodes"][1]["extraMounts"][1]["hostPath"] == "/mine.json"


@pytest.mark.parametrize("target", ["/etc/containerd/certs.d", "/etc/containerd", "/etc/containerd/certs.d/"])
def test_a_users_mount_hiding_certs_d_is_refused(target: str) -> None:
    doc = user_doc()
    doc["nodes"][0]["extraMounts"] = [{"hostPath": "/srv/certs", "containerPath": target}]
    with pytest.raises(KindConfigError, match=r"nodes\[0\]\.extraMounts\[0\]\.containerPath: .* would hide"):
        merged(doc)


def test_a_users_mount_of_one_registrys_certs_is_fine() -> None:
    doc = user_doc()
    doc["nodes"][0]["extraMounts"] = [{"hostPath": "/srv/c", "containerPath": "/etc/containerd/certs.d/reg.example"}]
    assert merged(doc)["nodes"][0]["extraMounts"][0]["containerPath"] == "/etc/containerd/certs.d/reg.example"


def test_a_file_loads_with_its_path_as_origin(tmp_path: Path) -> None:
    path = write(tmp_path, yaml.safe_dump(user_doc()))
    config = load_kind_config(path)
    assert config.origin == str(path)
    assert repr(config) == f"<UserKindConfig {path}>"
    assert load_kind_config(config) is config
    assert load_kind_config(str(path)) == config


def test_a_missing_host_path_is_refused_before_creation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = user_doc()
    doc["nodes"][1]["extraMounts"][0]["hostPath"] = "data/here"
    config = KindClusterConfig(name="x", base=UserKindConfig(doc))  # a fixture may create it later
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KindConfigError, match=r"nodes\[1\]\.extraMounts\[0\]\.hostPath: 'data/here' does not exist"):
        config.check_host_paths()
    (tmp_path / "data" / "here").mkdir(parents=True)
    config.check_host_paths()
