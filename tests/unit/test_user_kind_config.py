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
    check_cluster_name,
    check_node_files,
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
            '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = ["/etc/containerd/certs.d"]',
            r"registry\.config_path = \['/etc/containerd/certs\.d'\]: config_path must be a string",
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
    monkeypatch.chdir(tmp_path)
    config = KindClusterConfig(name="x", base=UserKindConfig(doc))  # a fixture may create it later
    monkeypatch.chdir("/")  # resolved when the dict was loaded, not when the cluster is created
    with pytest.raises(
        KindConfigError,
        match=rf"nodes\[1\]\.extraMounts\[0\]\.hostPath: '{tmp_path}/data/here' does not exist \(a relative "
        r"hostPath is resolved against the working directory\)",
    ):
        config.check_host_paths()
    (tmp_path / "data" / "here").mkdir(parents=True)
    config.check_host_paths()


# --- the shapes users write ---------------------------------------------------------------------------------


ANCHORS = """\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- &worker
  role: worker
  labels: {pool: pull}
  extraMounts:
  - {hostPath: /srv/data, containerPath: /data}
- *worker
"""


def test_a_yaml_anchor_node_gets_the_plugins_mount_once_per_node(tmp_path: Path) -> None:
    config = load_kind_config(write(tmp_path, ANCHORS))
    nodes = merged(dict(config.document))["nodes"]
    assert [n["role"] for n in nodes] == ["control-plane", "worker", "worker"]
    for node in nodes[1:]:
        assert node["extraMounts"] == [{"hostPath": "/srv/data", "containerPath": "/data"}, CREDS.to_dict()]
    assert nodes[1] is not nodes[2]


def test_a_repeated_dict_node_gets_the_plugins_mount_once_per_node() -> None:
    worker = {"role": "worker"}
    doc = {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "nodes": [{"role": "control-plane"}, *[worker] * 2],
    }
    config = KindClusterConfig(
        name="x",
        contributions=(ClusterContribution(extra_mounts=(CREDS,), source="node_config"),),
        base=UserKindConfig(doc),
    )
    rendered = yaml.safe_load(config.to_yaml())
    assert [n["extraMounts"] for n in rendered["nodes"]] == [[CREDS.to_dict()]] * 3
    assert config.to_dict() == config.to_dict()  # rendering twice adds nothing twice


def test_non_plain_mappings_are_normalised() -> None:
    from collections import OrderedDict

    from ruamel.yaml import YAML

    round_trip = YAML().load(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4  # comment\nnodes:\n- role: control-plane\n"
        "  labels: {tier: 'pull'}\n"
    )
    ordered = OrderedDict(
        [("kind", "Cluster"), ("apiVersion", "kind.x-k8s.io/v1alpha4"), ("nodes", (OrderedDict(role="worker"),))]
    )
    ordered["nodes"] = (OrderedDict(role="control-plane"), *ordered["nodes"])
    for doc in (round_trip, ordered):
        config = KindClusterConfig(name="x", base=UserKindConfig(doc))
        text = config.to_yaml()  # yaml.safe_dump refuses CommentedMap, OrderedDict, ScalarString
        assert yaml.safe_load(text)["nodes"][0]["role"] == "control-plane"
        assert type(config.base.document) is dict  # type: ignore[union-attr]
    assert UserKindConfig(round_trip).document["nodes"][0]["labels"] == {"tier": "pull"}


def test_duplicate_keys_are_refused_like_kinds_yaml_reader(tmp_path: Path) -> None:
    path = write(
        tmp_path, "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: worker\n  role: control-plane\n"
    )
    with pytest.raises(
        KindConfigError,
        match=rf'^kind config {path}: nodes\[0\]\.role: mapping key "role" already defined at line 4 '
        r"\(again at line 5\)",
    ):
        load_kind_config(path)
    flow = write(
        tmp_path, "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking: {ipFamily: ipv4, ipFamily: ipv6}\n"
    )
    with pytest.raises(
        KindConfigError, match=r": networking\.ipFamily: mapping key \"ipFamily\" already defined at line 3"
    ):
        load_kind_config(flow)
    top = write(tmp_path, "kind: Cluster\nkind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n")
    with pytest.raises(KindConfigError, match=r": kind: mapping key \"kind\" already defined at line 1"):
        load_kind_config(top)
    # An alias is not a duplicate, and YAML merge keys are not keys.
    merge_keys = write(
        tmp_path,
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n"
        "nodes:\n- &cp {role: control-plane}\n- <<: *cp\n  labels: {a: b}\n",
    )
    assert load_kind_config(merge_keys).document["nodes"][1] == {"role": "control-plane", "labels": {"a": "b"}}


def test_a_file_that_is_not_utf8_is_one_message(tmp_path: Path) -> None:
    path = tmp_path / "kind.yaml"
    path.write_bytes("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nname: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(KindConfigError, match=rf"^kind config {path}: not UTF-8 text \(byte 0xe9 at offset 58\)"):
        load_kind_config(path)
    # kind's reader takes UTF-16 with a byte order mark, and a UTF-8 byte order mark
    path.write_bytes("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n".encode("utf-16"))
    assert load_kind_config(path).document["kind"] == "Cluster"
    path.write_bytes(b"\xef\xbb\xbfkind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n")
    assert load_kind_config(path).document["kind"] == "Cluster"


def test_a_pod_manifest_is_told_it_is_not_a_cluster(tmp_path: Path) -> None:
    path = write(tmp_path, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers: []\n")
    with pytest.raises(KindConfigError, match=rf"^kind config {path}: kind: must be 'Cluster', got 'Pod'$"):
        load_kind_config(path)


CLUSTER: dict[str, Any] = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4"}


def node(**fields: Any) -> dict[str, Any]:
    return {"role": "control-plane", **fields}


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"networking": {"apiServerPort": 70000}}, r"networking\.apiServerPort: 70000 is not a port number"),
        ({"networking": {"apiServerPort": -5}}, r"networking\.apiServerPort: -5 is not a port number"),
        ({"networking": {"kubeProxyMode": "userspace"}}, r"kubeProxyMode: 'userspace' is not one of"),
        ({"networking": {"podSubnet": "10.244.0.0"}}, r"podSubnet: '10\.244\.0\.0' is not a CIDR"),
        ({"networking": {"podSubnet": "10.244.0.0/33"}}, r"podSubnet: '10\.244\.0\.0/33' is not a CIDR"),
        ({"networking": {"serviceSubnet": "fd00::/112"}}, r"serviceSubnet: 'fd00::/112': expected an IPv4 CIDR"),
        ({"networking": {"podSubnet": "10.1.0.0/16,10.2.0.0/16"}}, r"only one CIDR allowed for single-stack"),
        (
            {"networking": {"ipFamily": "dual", "podSubnet": "10.1.0.0/16,10.2.0.0/16"}},
            r"ipFamily dual takes one CIDR, or two CIDRs, one of each",
        ),
        ({"nodes": [node(extraPortMappings=[{"containerPort": 80, "hostPort": 65536}])]}, r"hostPort: 65536 is not"),
        ({"nodes": [node(extraPortMappings=[{"containerPort": -2}])]}, r"containerPort: -2 is not a port number"),
        (
            {"nodes": [node(extraPortMappings=[{"containerPort": 80, "listenAddress": "localhost"}])]},
            r"listenAddress: 'localhost' is not an IP address",
        ),
        (
            {
                "nodes": [
                    node(
                        extraPortMappings=[
                            {"containerPort": 80, "hostPort": 8080},
                            {"containerPort": 81, "hostPort": 8080},
                        ]
                    )
                ]
            },
            r"^nodes\[0\]\.extraPortMappings\[1\]\.hostPort: 8080/TCP on 0\.0\.0\.0 is mapped already by "
            r"nodes\[0\]\.extraPortMappings\[0\]",
        ),
        (
            {
                "nodes": [
                    node(extraPortMappings=[{"containerPort": 80, "hostPort": 8080, "listenAddress": "127.0.0.1"}]),
                    node(
                        role="worker",
                        extraPortMappings=[{"containerPort": 80, "hostPort": 8080, "listenAddress": "::"}],
                    ),
                ]
            },
            r"^nodes\[1\]\.extraPortMappings\[0\]\.hostPort: 8080/TCP on 0\.0\.0\.0 is mapped already by nodes\[0\]",
        ),
        (
            {"nodes": [node(extraMounts=[{"hostPath": "/h", "containerPath": "data"}])]},
            r"containerPath: 'data' must be",
        ),
        ({"nodes": [node(extraMounts=[{"containerPath": "/data"}])]}, r"extraMounts\[0\]\.hostPath: required"),
    ],
)
def test_what_kind_or_docker_would_refuse_later_is_refused_now(doc: dict[str, Any], expected: str) -> None:
    anchored = expected[1:] if expected.startswith("^") else ".*" + expected
    with pytest.raises(KindConfigError, match=r"^kind config <dict>: " + anchored):
        UserKindConfig({**CLUSTER, **doc})


@pytest.mark.parametrize(
    "doc",
    [
        {"networking": {"apiServerPort": -1, "kubeProxyMode": "none"}},
        {"networking": {"apiServerPort": 0, "kubeProxyMode": "nftables", "podSubnet": "10.244.1.7/16"}},
        {"networking": {"ipFamily": "ipv6", "podSubnet": "fd00:10:244::/56", "serviceSubnet": "fd00:10:96::/112"}},
        {"networking": {"ipFamily": "dual", "podSubnet": "10.244.0.0/16,fd00:10:244::/56"}},
        {"networking": {"ipFamily": "dual", "podSubnet": "10.244.0.0/16"}},
        # the same host port on other addresses or protocols, and random ports, are fine (kind's rule)
        {
            "nodes": [
                node(extraPortMappings=[{"containerPort": 80, "hostPort": 8080, "listenAddress": "127.0.0.1"}]),
                node(
                    role="worker",
                    extraPortMappings=[
                        {"containerPort": 80, "hostPort": 8080, "listenAddress": "127.0.0.2"},
                        {"containerPort": 80, "hostPort": 8080, "protocol": "UDP"},
                        {"containerPort": 81, "hostPort": 0},
                        {"containerPort": 82, "hostPort": 0},
                        {"containerPort": 83, "hostPort": -1},
                    ],
                ),
            ]
        },
    ],
)
def test_what_kind_accepts_is_accepted(doc: dict[str, Any]) -> None:
    UserKindConfig({**CLUSTER, **doc})


def test_json6902_patches_are_checked_like_merge_patches() -> None:
    patch = '[{"op": "remove", "path": "/plugins/io.containerd.grpc.v1.cri/registry/config_path"}]'
    with pytest.raises(
        KindConfigError,
        match=r"^kind config <dict>: containerdConfigPatchesJSON6902\[0\]\[0\] remove "
        r"/plugins/io\.containerd\.grpc\.v1\.cri/registry/config_path: removes config_path",
    ):
        UserKindConfig({**CLUSTER, "containerdConfigPatchesJSON6902": [patch]})
    with pytest.raises(KindConfigError, match=r"containerdConfigPatchesJSON6902\[0\]: not valid JSON"):
        UserKindConfig({**CLUSTER, "containerdConfigPatchesJSON6902": ["- op: remove\n  path: /x\n"]})


def test_the_users_config_path_roots_are_kept() -> None:
    own = '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/docker/certs.d"'
    patches = merged({**user_doc(), "containerdConfigPatches": [own]})["containerdConfigPatches"]
    assert patches == [
        own,
        '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"',
    ]
    both = (
        '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"'
    )
    assert merged({**user_doc(), "containerdConfigPatches": [both]})["containerdConfigPatches"] == [both]


def test_v2_and_v3_registry_tables_together_are_refused() -> None:
    patches = [
        '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/a"',
        "[plugins.'io.containerd.cri.v1.images'.registry.headers]\n  X = ['y']",
    ]
    with pytest.raises(KindConfigError, match=r"^kind config <dict>: containerdConfigPatches: .*both set"):
        UserKindConfig({**CLUSTER, "containerdConfigPatches": patches})


# --- relative host paths: one rule ------------------------------------------------------------------------


def test_relative_host_paths_are_relative_to_the_config_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ci" / "files").mkdir(parents=True)
    path = write(
        tmp_path / "ci",
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n  extraMounts:\n"
        "  - {hostPath: files, containerPath: /a}\n  - {hostPath: ../ci/./files/, containerPath: /b}\n"
        "  - {hostPath: /abs, containerPath: /c}\n",
    )
    fingerprints = set()
    for cwd in (tmp_path, tmp_path / "ci", Path("/")):
        monkeypatch.chdir(cwd)
        config = load_kind_config(path.relative_to(tmp_path) if cwd == tmp_path else path)
        mounts = config.document["nodes"][0]["extraMounts"]
        assert [m["hostPath"] for m in mounts] == [str(tmp_path / "ci" / "files")] * 2 + ["/abs"]
        rendered = KindClusterConfig(name="x", base=config)
        assert rendered.to_dict()["nodes"][0]["extraMounts"][0]["hostPath"] == str(tmp_path / "ci" / "files")
        fingerprints.add(rendered.fingerprint())
    assert len(fingerprints) == 1  # the same cluster, wherever pytest runs


def test_relative_host_paths_of_a_dict_are_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = UserKindConfig({**CLUSTER, "nodes": [node(extraMounts=[{"hostPath": "data", "containerPath": "/d"}])]})
    assert config.document["nodes"][0]["extraMounts"][0]["hostPath"] == str(tmp_path / "data")
    assert config.renamed("y").document == {**config.document, "name": "y"}


# --- what the plugin puts on every node is not hidden ---------------------------------------------------------


def test_check_node_files_names_the_strategy() -> None:
    config = UserKindConfig(
        {**CLUSTER, "nodes": [node(extraMounts=[{"hostPath": "/h", "containerPath": "/var/lib/kubelet"}])]}
    )
    check_node_files(config, {"pull_secret": ()})
    with pytest.raises(
        KindConfigError,
        match=r"^kind config <dict>: nodes\[0\]\.extraMounts\[0\]\.containerPath: /var/lib/kubelet would hide "
        r"/var/lib/kubelet/config\.json, which strategy 'access_token' mounts or writes on every node",
    ):
        check_node_files(config, {"pull_secret": (), "access_token": ("/var/lib/kubelet/config.json",)})


def test_disable_default_cni_is_known() -> None:
    assert UserKindConfig({**CLUSTER, "networking": {"disableDefaultCNI": True}}).disables_default_cni
    assert not UserKindConfig({**CLUSTER, "networking": {"disableDefaultCNI": False}}).disables_default_cni
    assert not UserKindConfig(CLUSTER).disables_default_cni
    assert KindClusterConfig(
        name="x", base=UserKindConfig({**CLUSTER, "networking": {"disableDefaultCNI": True}})
    ).disables_default_cni


@pytest.mark.parametrize("name", ["My_Cluster", "", "a b", 5])
def test_an_invalid_cluster_name_is_one_kind_config_error(name: Any) -> None:
    with pytest.raises(KindConfigError, match=r"^--opt: .* is not a valid kind cluster name"):
        check_cluster_name(name, "--opt")
    with pytest.raises(KindConfigError, match=r"^kind config <dict>: name: "):
        UserKindConfig({**CLUSTER, "name": name})


# --- the Python API: the same checks, before anything starts --------------------------------------------------


def test_the_classes_refuse_an_invalid_name_with_one_kind_config_error() -> None:
    from pytest_kindreg import KindCluster, KindRegistryEnvironment

    with pytest.raises(KindConfigError, match=r"^cluster_name: 'My_Cluster' is not a valid kind cluster name"):
        KindRegistryEnvironment(["pull_secret"], cluster_name="My_Cluster")
    with pytest.raises(KindConfigError, match=r"^KindCluster name: 'My_Cluster' is not a valid kind cluster name"):
        KindCluster("My_Cluster", kind_bin="/nonexistent/kind")  # refused before kind is looked for


def test_the_environment_wants_a_cni_installer_for_disable_default_cni() -> None:
    from pytest_kindreg import KindRegistryEnvironment

    config = {**CLUSTER, "networking": {"disableDefaultCNI": True}}
    with pytest.raises(
        KindConfigError, match=r"^kind config <dict>: networking\.disableDefaultCNI: true: .*on_cluster_created="
    ):
        KindRegistryEnvironment(["pull_secret"], kind_config=config)
    env = KindRegistryEnvironment(["pull_secret"], kind_config=config, on_cluster_created=lambda cluster: None)
    assert env.kind_config is not None and env.kind_config.disables_default_cni


def test_the_environment_checks_its_strategies_node_files() -> None:
    from pytest_kindreg import KindRegistryEnvironment

    config = {
        **CLUSTER,
        "nodes": [node(extraMounts=[{"hostPath": "/h", "containerPath": "/var/lib/kubelet/config.json"}])],
    }
    KindRegistryEnvironment(["pull_secret", "side_load"], kind_config=config)  # no strategy of these puts a file there
    for strategy in ("node_config", "access_token"):
        with pytest.raises(KindConfigError, match=rf"which strategy '{strategy}' mounts or writes on every node"):
            KindRegistryEnvironment(["pull_secret", strategy], kind_config=config)


def test_the_shipped_example_config_works_from_any_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "kind-config.yaml"
    for cwd in (example.parent.parent, example.parent.parent / "tests", Path("/")):
        monkeypatch.chdir(cwd)
        config = KindClusterConfig(name="x", base=load_kind_config(example))
        config.check_host_paths()  # examples/node-files, found from here
        mounts = [m for n in config.to_dict()["nodes"] for m in n.get("extraMounts", [])]
        assert [m["hostPath"] for m in mounts] == [str(example.parent / "node-files")]
