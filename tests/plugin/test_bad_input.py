"""Every bad input a user can give, fed to a real ``pytest`` run (pytester): one message naming the
file (or option, or ini key) and the key, no traceback, and nothing created first — no container,
network, kind cluster, run record or temp dir.

Each case is a row: where the bad input comes from, the expected exit code, and the message.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_kindreg.settings import Settings
from pytest_kindreg.tempdirs import temp_root
from tests.conftest import own_resources

pytestmark = pytest.mark.docker

CLUSTER = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n"
V2 = "[plugins.'io.containerd.grpc.v1.cri'.registry]"
V3 = "[plugins.'io.containerd.cri.v1.images'.registry]"
CHILD_TEST = """
import pytest

@pytest.mark.kindreg_strategy("pull_secret", "node_config")
def test_x(kind_private_registry):
    pass
"""
# The config from code instead of a file: the kindreg_kind_config fixture overridden.
DICT_FIXTURE = """
import pytest

@pytest.fixture(scope="session")
def kindreg_kind_config():
    return {config}
"""


@dataclass(frozen=True)
class Case:
    message: str  # a regex; {path} is the run's directory
    config: str | bytes | None = None  # kind.yaml, given with --kindreg-kind-config
    args: tuple[str, ...] = ()
    ini: str = ""
    conftest: str = ""
    exit_code: pytest.ExitCode = pytest.ExitCode.USAGE_ERROR
    files: dict[str, str] = field(default_factory=dict)


def config_case(yaml_text: str | bytes, key_and_message: str) -> Case:
    return Case(message=r"kind config {path}/kind\.yaml: " + key_and_message, config=yaml_text)


def node_with(text: str) -> str:
    return CLUSTER + "nodes:\n- role: control-plane\n" + text


def patch(text: str) -> str:
    pieces = text.split("\n---\n")
    return (
        CLUSTER
        + "containerdConfigPatches:\n"
        + "".join("- |\n" + "".join(f"  {line}\n" for line in piece.splitlines()) for piece in pieces)
    )


CASES: dict[str, Case] = {
    # What the file is comes first: a Pod manifest is not a Cluster with unknown fields.
    "pod manifest": config_case(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers: []\n",
        r"kind: must be 'Cluster', got 'Pod'$",
    ),
    "not utf-8": config_case((CLUSTER + "name: caf\u00e9\n").encode("latin-1"), r"not UTF-8 text \(byte 0xe9"),
    "duplicate key": config_case(
        CLUSTER + "nodes:\n- role: worker\n  role: control-plane\n",
        r'nodes\[0\]\.role: mapping key "role" already defined at line 4 \(again at line 5\)',
    ),
    "name in the config": config_case(
        CLUSTER + "name: My_Cluster\n", r"name: 'My_Cluster' is not a valid kind cluster"
    ),
    "name option": Case(
        message=r"--kindreg-cluster-name: 'My_Cluster' is not a valid kind cluster name",
        args=("--kindreg-cluster-name", "My_Cluster"),
    ),
    "name ini": Case(
        message=r"ini kindreg_cluster_name \(in {path}/tox\.ini\): 'My_Cluster' is not a valid kind cluster name",
        ini="kindreg_cluster_name = My_Cluster\n",
    ),
    "name option with a config": Case(
        message=r"--kindreg-cluster-name: 'my cluster' is not a valid kind cluster name",
        config=CLUSTER,
        args=("--kindreg-cluster-name", "my cluster"),
    ),
    "host port above 65535": config_case(
        node_with("  extraPortMappings:\n  - {containerPort: 80, hostPort: 70000}\n"),
        r"nodes\[0\]\.extraPortMappings\[0\]\.hostPort: 70000 is not a port number",
    ),
    "negative apiServerPort": config_case(
        CLUSTER + "networking:\n  apiServerPort: -5\n", r"networking\.apiServerPort: -5 is not a port number"
    ),
    "kubeProxyMode": config_case(
        CLUSTER + "networking:\n  kubeProxyMode: userspace\n",
        r"networking\.kubeProxyMode: 'userspace' is not one of iptables, ipvs, nftables, none",
    ),
    "podSubnet": config_case(
        CLUSTER + "networking:\n  podSubnet: 10.244.0.0/40\n",
        r"networking\.podSubnet: '10\.244\.0\.0/40' is not a CIDR",
    ),
    "serviceSubnet": config_case(
        CLUSTER + "networking:\n  serviceSubnet: 10.96.0.0\n",
        r"networking\.serviceSubnet: '10\.96\.0\.0' is not a CIDR",
    ),
    "one hostPort twice": config_case(
        node_with(
            "  extraPortMappings:\n  - {containerPort: 80, hostPort: 8080, listenAddress: 127.0.0.1}\n"
            "  - {containerPort: 81, hostPort: 8080, listenAddress: 127.0.0.1}\n"
        ),
        r"nodes\[0\]\.extraPortMappings\[1\]\.hostPort: 8080/TCP on 127\.0\.0\.1 is mapped already",
    ),
    "relative containerPath": config_case(
        node_with("  extraMounts:\n  - {hostPath: /tmp, containerPath: data}\n"),
        r"nodes\[0\]\.extraMounts\[0\]\.containerPath: 'data' must be an absolute path",
    ),
    "mirrors": config_case(
        patch("[plugins.'io.containerd.grpc.v1.cri'.registry.mirrors.'docker.io']\n  endpoint = ['https://m']"),
        r'containerdConfigPatches\[0\]: plugins\."io\.containerd\.grpc\.v1\.cri"\.registry\.mirrors: registry\.mirrors',
    ),
    "v2 and v3 registry tables": config_case(
        patch(V2 + "\n  config_path = '/a'\n---\n" + V3 + "\n  config_path = '/b'"),
        r"containerdConfigPatches: .*are both set: containerd 2\.x replaces the second with the first",
    ),
    "JSON 6902 removes config_path": config_case(
        CLUSTER + 'containerdConfigPatchesJSON6902:\n- |\n  [{"op": "remove", '
        '"path": "/plugins/io.containerd.grpc.v1.cri/registry/config_path"}]\n',
        r"containerdConfigPatchesJSON6902\[0\]\[0\] remove /plugins/io\.containerd\.grpc\.v1\.cri/registry/"
        r"config_path: removes config_path",
    ),
    "JSON 6902 adds mirrors": config_case(
        CLUSTER + 'containerdConfigPatchesJSON6902:\n- |\n  [{"op": "add", '
        '"path": "/plugins/io.containerd.grpc.v1.cri/registry/mirrors", "value": {}}]\n',
        r"containerdConfigPatchesJSON6902\[0\]\[0\] add .*/registry/mirrors: registry\.mirrors must not be used",
    ),
    "JSON 6902 as YAML": config_case(
        CLUSTER + "containerdConfigPatchesJSON6902:\n- |\n  - op: remove\n    path: /version\n",
        r"containerdConfigPatchesJSON6902\[0\]: not valid JSON",
    ),
    # Known only once the tests are collected (their strategies, their conftests' hooks).
    "node_config's mount": config_case(
        node_with("  extraMounts:\n  - {hostPath: /etc/hostname, containerPath: /var/lib/kubelet/config.json}\n"),
        r"nodes\[0\]\.extraMounts\[0\]\.containerPath: /var/lib/kubelet/config\.json would hide "
        r"/var/lib/kubelet/config\.json, which strategy 'node_config' mounts or writes",
    ),
    "disableDefaultCNI without the hook": config_case(
        CLUSTER + "networking:\n  disableDefaultCNI: true\n",
        r"networking\.disableDefaultCNI: true: kind installs no pod network.*implement the hook "
        r"pytest_kindreg_cluster_created\(cluster\) in a conftest\.py",
    ),
    # A config built in code: checked when the session's environment is made, before it starts.
    "dict config, bad port": Case(
        message=r"kindreg: kind config <dict>: networking\.apiServerPort: 70000 is not a port number",
        conftest=DICT_FIXTURE.format(
            config='{"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "networking": {"apiServerPort": 70000}}'
        ),
        exit_code=pytest.ExitCode.TESTS_FAILED,
    ),
    "dict config, disableDefaultCNI without the hook": Case(
        message=r"kindreg: kind config <dict>: networking\.disableDefaultCNI: true: .*pytest_kindreg_cluster_created",
        conftest=DICT_FIXTURE.format(
            config='{"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", '
            '"networking": {"disableDefaultCNI": True}}'
        ),
        exit_code=pytest.ExitCode.TESTS_FAILED,
    ),
    "dict config, mount over certs.d": Case(
        message=r"kindreg: kind config <dict>: nodes\[0\]\.extraMounts\[0\]\.containerPath: /etc/containerd would "
        r"hide /etc/containerd/certs\.d",
        conftest=DICT_FIXTURE.format(
            config='{"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "nodes": [{"role": "control-plane", '
            '"extraMounts": [{"hostPath": "/tmp", "containerPath": "/etc/containerd"}]}]}'
        ),
        exit_code=pytest.ExitCode.TESTS_FAILED,
    ),
}


def kind_clusters(docker: Any) -> set[str]:
    """Every kind cluster on the engine, by its nodes' label."""
    containers = docker.containers.list(all=True, filters={"label": "io.x-k8s.kind.cluster"}, ignore_removed=True)
    return {c.labels["io.x-k8s.kind.cluster"] for c in containers}


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_input_is_one_message_and_nothing_is_created(
    name: str,
    pytester: pytest.Pytester,
    kindreg_docker: Any,
    kindreg_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    case = CASES[name]
    # The child's run records and temp dirs go where this test can look.
    monkeypatch.setenv("KINDREG_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    pytester.makepyfile(CHILD_TEST)
    if case.conftest:
        pytester.makeconftest(case.conftest)
    if case.ini:
        pytester.makeini("[pytest]\n" + case.ini)
    args = list(case.args)
    if case.config is not None:
        path = pytester.path / "kind.yaml"
        path.write_bytes(case.config if isinstance(case.config, bytes) else case.config.encode())
        args += ["--kindreg-kind-config", "kind.yaml"]
    if kindreg_settings.kind_bin:  # a run that got as far as kind would use the real one
        args.append(f"--kindreg-kind-bin={kindreg_settings.kind_bin}")
    before_resources, before_clusters = own_resources(kindreg_docker), kind_clusters(kindreg_docker)

    result = pytester.runpytest(*args, "-p", "no:cacheprovider")

    output = result.stdout.str() + result.stderr.str()
    message = re.compile(case.message.format(path=re.escape(str(pytester.path))))
    assert result.ret == case.exit_code, output
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output
    if case.exit_code == pytest.ExitCode.USAGE_ERROR:
        errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
        assert len(errors) == 1, output  # one message...
        assert message.search(errors[0]), errors[0]  # ...naming the file (or option, or ini key) and the key
    else:
        # A session fixture's error, reported for each test that needed it: one message, one line each.
        lines = [line for line in result.stdout.lines if "kind config <dict>" in line]
        assert lines, output
        assert all(message.search(line) for line in lines), lines
        assert len({line[line.index("kindreg: ") :] for line in lines}) == 1, lines
    # Nothing was created first.
    assert own_resources(kindreg_docker) == before_resources
    assert kind_clusters(kindreg_docker) <= before_clusters
    assert not list((tmp_path / "state").glob("runs/*")), "a run record was written"
    assert not temp_root(tmp_path / "tmp").exists(), "a temp dir was made"
    assert "kindreg: creating" not in output
