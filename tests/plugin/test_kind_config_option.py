"""``--kindreg-kind-config`` / ini ``kindreg_kind_config`` and the ``kindreg_kind_config`` fixture,
as a user meets them: bad input is one usage error naming the file and the key, before anything
exists; a good config reaches the fixture."""

from __future__ import annotations

import pytest

CLUSTER = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n"
TWO_NODES = CLUSTER + "nodes:\n- role: control-plane\n- role: worker\n  labels: {tier: pull}\n"
SHOW_CONFIG = """
def test_config(kindreg_kind_config, kindreg_settings):
    assert kindreg_kind_config is kindreg_settings.kind_config
    print("ORIGIN", kindreg_kind_config.origin)
    print("NODES", [n["role"] for n in kindreg_kind_config.document["nodes"]])
"""


def _usage_error(pytester: pytest.Pytester, *args: str) -> str:
    pytester.makepyfile("def test_x(kind_private_registry):\n    pass\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr.str()  # one message
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert "kindreg: creating" not in result.stdout.str()  # nothing was started
    return errors[0]


@pytest.mark.parametrize(
    ("text", "key_and_problem"),
    [
        (None, "no such file"),
        ("kind: Cluster\nnodes: [\n", "not valid YAML at line 3"),
        ("apiVersion: v1\nkind: ConfigMap\n", "kind: must be 'Cluster', got 'ConfigMap'"),
        (CLUSTER + "nodes:\n- role: control-plane\n  extraMount: []\n", "nodes[0].extraMount: unknown field"),
        (
            CLUSTER + "containerdConfigPatches:\n- |\n  [plugins.'io.containerd.grpc.v1.cri'.registry.mirrors.'x']\n"
            "    endpoint = ['http://y']\n",
            'containerdConfigPatches[0]: plugins."io.containerd.grpc.v1.cri".registry.mirrors: registry.mirrors',
        ),
        (
            CLUSTER
            + "containerdConfigPatches:\n- |\n  [plugins.'io.containerd.grpc.v1.cri'.registry.configs.'r:1'.tls]\n"
            "    ca_file = '/ca'\n",
            'containerdConfigPatches[0]: plugins."io.containerd.grpc.v1.cri".registry.configs."r:1".tls',
        ),
        (
            CLUSTER + "containerdConfigPatches:\n- |\n  [plugins.'io.containerd.grpc.v1.cri'.registry]\n"
            "    config_path = ['/etc/docker/certs.d']\n",
            'containerdConfigPatches[0]: plugins."io.containerd.grpc.v1.cri".registry.config_path = '
            "['/etc/docker/certs.d']: config_path must be a string",
        ),
    ],
)
def test_a_bad_kind_config_is_one_usage_error_naming_file_and_key(
    pytester: pytest.Pytester, text: str | None, key_and_problem: str
) -> None:
    path = pytester.path / "kind.yaml"
    if text is not None:
        path.write_text(text)
    error = _usage_error(pytester, "--kindreg-kind-config", "kind.yaml")
    assert error.startswith(f"ERROR: kind config {path}: "), error
    assert key_and_problem in error


def test_nodes_in_the_config_and_workers_option_conflict(pytester: pytest.Pytester) -> None:
    (pytester.path / "kind.yaml").write_text(TWO_NODES)
    error = _usage_error(pytester, "--kindreg-kind-config", "kind.yaml", "--kindreg-workers", "1")
    assert f"kind config {pytester.path / 'kind.yaml'}: nodes: the config lists its nodes" in error
    assert "--kindreg-workers" in error


def test_workers_from_ini_also_conflict(pytester: pytest.Pytester) -> None:
    (pytester.path / "kind.yaml").write_text(TWO_NODES)
    pytester.makeini("[pytest]\nkindreg_kind_config = kind.yaml\nkindreg_workers = 0\n")
    assert "nodes: the config lists its nodes" in _usage_error(pytester)


def test_the_configs_name_and_the_cluster_name_option_conflict(pytester: pytest.Pytester) -> None:
    (pytester.path / "kind.yaml").write_text(CLUSTER + "name: dev\n")
    error = _usage_error(pytester, "--kindreg-kind-config", "kind.yaml", "--kindreg-cluster-name", "ci")
    assert "name: 'dev' conflicts with the cluster name 'ci' given by --kindreg-cluster-name" in error


def test_the_configs_name_is_the_cluster_name_when_no_option_says_otherwise(pytester: pytest.Pytester) -> None:
    (pytester.path / "kind.yaml").write_text(CLUSTER + "name: dev\n")
    pytester.makepyfile("def test_x(kindreg_settings):\n    pass\n")
    result = pytester.runpytest("--kindreg-kind-config", "kind.yaml", "--kindreg-cluster-name", "dev")
    result.assert_outcomes(passed=1)


def test_option_path_is_relative_to_the_invocation_dir(pytester: pytest.Pytester) -> None:
    (pytester.path / "configs").mkdir()
    (pytester.path / "configs" / "two.yaml").write_text(TWO_NODES)
    pytester.makepyfile(SHOW_CONFIG)
    result = pytester.runpytest("-s", "--kindreg-kind-config", "configs/two.yaml")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [f"*ORIGIN {pytester.path / 'configs' / 'two.yaml'}", "NODES ['control-plane', 'worker']"]
    )
    result.stdout.fnmatch_lines([f"kindreg: *kind config {pytester.path / 'configs' / 'two.yaml'}*"])  # header


def test_ini_path_is_relative_to_the_ini_file(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    (pytester.path / "ci").mkdir()
    (pytester.path / "ci" / "kind.yaml").write_text(TWO_NODES)
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_show.py").write_text(SHOW_CONFIG)
    pytester.makeini("[pytest]\nkindreg_kind_config = ci/kind.yaml\n")
    # run from another directory: the ini value still means <ini dir>/ci/kind.yaml
    monkeypatch.chdir(pytester.path / "tests")
    result = pytester.runpytest_subprocess("-s", ".", "-c", str(pytester.path / "tox.ini"))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*ORIGIN {pytester.path / 'ci' / 'kind.yaml'}"])


def test_the_fixture_can_be_overridden_with_a_dict(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def kindreg_kind_config():
            return {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4",
                    "networking": {"podSubnet": "10.200.0.0/16"}}
        """
    )
    pytester.makepyfile("def test_x(kindreg_kind_config):\n    assert kindreg_kind_config['networking']\n")
    pytester.runpytest().assert_outcomes(passed=1)


def test_no_kind_config_by_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_x(kindreg_kind_config, kindreg_settings):
            assert kindreg_kind_config is None
            assert kindreg_settings.workers is None
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
    result = pytester.runpytest("--collect-only")
    result.stdout.fnmatch_lines(["kindreg: *kind config none*"])


RELATIVE_MOUNT = (
    CLUSTER + "nodes:\n- role: control-plane\n  extraMounts:\n  - {hostPath: node-files, containerPath: /opt/x}\n"
)
SHOW_MOUNT = """
from pytest_kindreg.kind_config import KindClusterConfig

def test_mount(kindreg_kind_config):
    config = KindClusterConfig(name="x", base=kindreg_kind_config)
    print("HOSTPATH", config.to_dict()["nodes"][0]["extraMounts"][0]["hostPath"])
    print("FINGERPRINT", config.fingerprint())
"""


def test_relative_host_paths_are_relative_to_the_config_file_from_any_directory(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    (pytester.path / "ci" / "node-files").mkdir(parents=True)
    (pytester.path / "ci" / "kind.yaml").write_text(RELATIVE_MOUNT)
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_mount.py").write_text(SHOW_MOUNT)
    pytester.makeini("[pytest]\nkindreg_kind_config = ci/kind.yaml\n")
    expected = f"HOSTPATH {pytester.path / 'ci' / 'node-files'}"
    fingerprints = set()
    for cwd, args in (
        (pytester.path, ["tests"]),  # the ini file's directory
        (pytester.path / "tests", ["."]),  # `cd tests && pytest`
        (pytester.path / "ci", ["../tests", "--kindreg-kind-config", "kind.yaml"]),  # the option, from the config's dir
    ):
        monkeypatch.chdir(cwd)
        result = pytester.runpytest_subprocess("-s", "-c", str(pytester.path / "tox.ini"), *args)
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines([f"*{expected}"])
        fingerprints |= {line.split()[1] for line in result.outlines if line.startswith("FINGERPRINT")}
    assert len(fingerprints) == 1  # the same cluster config, wherever pytest runs


def test_a_hook_implementation_makes_disable_default_cni_usable(pytester: pytest.Pytester) -> None:
    (pytester.path / "kind.yaml").write_text(CLUSTER + "networking:\n  disableDefaultCNI: true\n")
    pytester.makepyfile("def test_x(kind_private_registry):\n    pass\n")
    assert _usage_error(pytester, "--kindreg-kind-config", "kind.yaml", "--collect-only").endswith(
        "implement the hook pytest_kindreg_cluster_created(cluster) in a conftest.py and install your CNI there "
        "(it is called after kind create, before the plugin waits for Ready nodes)"
    )
    # In a conftest file of the tests' own directory (loaded at collection), the hook is found.
    (pytester.path / "sub").mkdir()
    (pytester.path / "sub" / "conftest.py").write_text("def pytest_kindreg_cluster_created(cluster):\n    pass\n")
    (pytester.path / "sub" / "test_y.py").write_text("def test_y(kind_private_registry):\n    pass\n")
    result = pytester.runpytest("--kindreg-kind-config", "kind.yaml", "--collect-only", "sub")
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    # Tests that need no cluster run whatever the config says.
    (pytester.path / "test_plain.py").write_text("def test_plain():\n    pass\n")
    pytester.runpytest("--kindreg-kind-config", "kind.yaml", "test_plain.py").assert_outcomes(passed=1)
