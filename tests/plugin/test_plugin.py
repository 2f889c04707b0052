"""The plugin as a user meets it, through pytester: fixtures, markers, options, skips, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

NO_DOCKER = "unix:///nonexistent/kindreg-test/docker.sock"
NO_KIND = "/nonexistent/kindreg-test/kind"

STRATEGY_TEST = """
import pytest

{marker}
def test_x(kind_private_registry):
    pass
"""


def _collect_ids(pytester: pytest.Pytester, *args: str) -> list[str]:
    result = pytester.runpytest("--collect-only", "-q", *args)
    return [line.split("::", 1)[1] for line in result.outlines if "::" in line]


@pytest.mark.docker
def test_private_registry_fixture_in_a_user_suite(pytester: pytest.Pytester, kindreg_docker: object) -> None:
    pytester.makepyfile(
        """
        def test_push(private_registry, kindreg_test_image):
            ref = private_registry.push(kindreg_test_image, repository="user/app", tag="2")
            assert ref == private_registry.host + "/user/app:2"
            assert private_registry.get("/v2/", authenticated=False).status_code == 401
            assert private_registry.tags("user/app") == ["2"]

        def test_same_registry_for_the_session(private_registry):
            assert private_registry.tags("user/app") == ["2"]
        """
    )
    result = pytester.runpytest("--kindreg-require", "docker", "-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_without_docker_tests_skip_and_say_why(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_DOCKER)
    pytester.makepyfile("def test_x(private_registry):\n    pass\n")
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*kindreg: no Docker engine answers*Start one*DOCKER_HOST*"])


@pytest.mark.parametrize("flags", [["--kindreg-strict"], ["--kindreg-require", "docker"]])
def test_without_docker_strict_runs_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, flags: list[str]
) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_DOCKER)
    pytester.makepyfile("def test_x(private_registry):\n    pass\n")
    result = pytester.runpytest(*flags)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no Docker engine answers*required by --kindreg-strict/--kindreg-require*"])


def test_strict_from_ini(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_DOCKER)
    pytester.makeini("[pytest]\nkindreg_strict = true\n")
    pytester.makepyfile("def test_x(private_registry):\n    pass\n")
    pytester.runpytest().assert_outcomes(errors=1)


@pytest.mark.docker
def test_without_kind_cluster_tests_skip_naming_kind(pytester: pytest.Pytester, kindreg_docker: object) -> None:
    pytester.makepyfile(STRATEGY_TEST.format(marker=""))
    result = pytester.runpytest("-rs", "--kindreg-kind-bin", NO_KIND, "--kindreg-require", "docker")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"*kind is not available (no kind binary at '{NO_KIND}')*Install it*"])


@pytest.mark.docker
@pytest.mark.parametrize("flags", [["--kindreg-strict"], ["--kindreg-require", "kind"]])
def test_without_kind_strict_runs_error(pytester: pytest.Pytester, kindreg_docker: object, flags: list[str]) -> None:
    pytester.makepyfile(STRATEGY_TEST.format(marker=""))
    result = pytester.runpytest("--kindreg-kind-bin", NO_KIND, *flags)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*kind is not available*required by*"])


def test_docker_required_but_kind_may_be_absent(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """What CI here needs: Docker-level tests must run, kind-level ones may skip."""
    monkeypatch.setenv("KIND", NO_KIND)
    pytester.makepyfile("def test_registry(kindreg_docker):\n    pass\n\n" + STRATEGY_TEST.format(marker=""))
    result = pytester.runpytest("--kindreg-require", "docker")
    if "no Docker engine" in result.stdout.str():
        result.assert_outcomes(errors=2)
    else:
        result.assert_outcomes(passed=1, skipped=1)


def test_marker_parametrizes_with_strategy_ids(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(STRATEGY_TEST.format(marker='@pytest.mark.kindreg_strategy("pull_secret", "side_load")'))
    assert _collect_ids(pytester) == ["test_x[pull_secret]", "test_x[side_load]"]


def test_all_five_strategies(pytester: pytest.Pytester) -> None:
    names = ("pull_secret", "side_load", "node_config", "access_token", "certificate")
    marker = "@pytest.mark.kindreg_strategy(" + ", ".join(repr(n) for n in names) + ")"
    pytester.makepyfile(STRATEGY_TEST.format(marker=marker))
    assert _collect_ids(pytester) == [f"test_x[{n}]" for n in names]


def test_default_strategy_and_ini_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(STRATEGY_TEST.format(marker=""))
    assert _collect_ids(pytester) == ["test_x[pull_secret]"]
    pytester.makeini("[pytest]\nkindreg_default_strategies =\n    side_load\n    certificate\n")
    assert _collect_ids(pytester) == ["test_x[side_load]", "test_x[certificate]"]


def test_class_marker_applies_and_function_marker_wins(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.kindreg_strategy("node_config")
        class TestNodes:
            def test_a(self, kind_private_registry):
                pass

            @pytest.mark.kindreg_strategy("certificate")
            def test_b(self, kind_private_registry):
                pass
        """
    )
    assert _collect_ids(pytester) == ["TestNodes::test_a[node_config]", "TestNodes::test_b[certificate]"]


def test_tests_without_the_fixture_are_not_parametrized(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.kindreg_strategy("side_load")
        def test_plain():
            pass
        """
    )
    assert _collect_ids(pytester) == ["test_plain"]


def test_typo_in_marker_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(STRATEGY_TEST.format(marker='@pytest.mark.kindreg_strategy("pul_secret")'))
    result = pytester.runpytest()
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        [
            "*UsageError*'pul_secret' is not a valid kindreg strategy. Valid strategies: "
            "pull_secret, side_load, node_config, access_token, certificate*"
        ]
    )


@pytest.mark.parametrize(
    ("marker", "shown"),
    [
        ("@pytest.mark.kindreg_strategy()", "args=()"),
        ('@pytest.mark.kindreg_strategy(name="pull_secret")', "kwargs={'name': 'pull_secret'}"),
        ("@pytest.mark.kindreg_strategy(3)", "3 is not a valid kindreg strategy"),
    ],
)
def test_malformed_marker_arguments(pytester: pytest.Pytester, marker: str, shown: str) -> None:
    pytester.makepyfile(STRATEGY_TEST.format(marker=marker))
    result = pytester.runpytest()
    assert result.ret != 0
    assert shown in result.stdout.str()
    assert "Valid strategies: pull_secret" in result.stdout.str()


def test_strategy_option_deselects_the_others(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        STRATEGY_TEST.format(marker='@pytest.mark.kindreg_strategy("pull_secret", "side_load", "certificate")')
    )
    args = ["--kindreg-strategy", "side_load", "--kindreg-strategy", "certificate"]
    assert _collect_ids(pytester, *args) == ["test_x[side_load]", "test_x[certificate]"]
    result = pytester.runpytest("--collect-only", *args)
    result.stdout.fnmatch_lines(["*3 tests collected*1 deselected*"])


@pytest.mark.parametrize(
    "args",
    [["--kindreg-strategy", "sideload"], ["-o", "kindreg_default_strategies=pullsecret"]],
)
def test_typo_in_strategy_options_is_a_usage_error(pytester: pytest.Pytester, args: list[str]) -> None:
    pytester.makepyfile(STRATEGY_TEST.format(marker=""))
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*is not a valid kindreg strategy. Valid strategies: pull_secret*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kindreg-require", "podman"], "*invalid choice: 'podman'*"),
        (["--kindreg-workers", "two"], "*--kindreg-workers takes a whole number >= 0, not 'two'*"),
        (["--kindreg-no-such-option"], "*unrecognized arguments: --kindreg-no-such-option*"),
    ],
)
def test_bad_options_say_what_is_wrong(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_marker_is_registered_for_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(STRATEGY_TEST.format(marker='@pytest.mark.kindreg_strategy("certificate")'))
    result = pytester.runpytest("--strict-markers", "--collect-only", "-q")
    assert result.ret == 0
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.kindreg_strategy(*names)*"])


def test_report_header(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--kindreg-require", "docker", "--kindreg-node-image", "kindest/node:v1.33.1")
    result.stdout.fnmatch_lines(
        ["kindreg: registry image registry:2 (htpasswd auth), node image kindest/node:v1.33.1*required: docker"]
    )


def test_report_header_in_token_mode(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--kindreg-registry-auth", "token", "--kindreg-pull-scope", "team/*")
    result.stdout.fnmatch_lines(["kindreg: registry image registry:2 (token auth, pull scope team/*), *"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--kindreg-registry-auth", "oauth"],
            "'oauth' is not a valid registry auth mode. Valid modes: htpasswd, token",
        ),
        (["--kindreg-pull-scope", "team/*"], "the pull scope ['team/*'] needs token auth"),
        (
            ["--kindreg-access-token-ttl", "soon"],
            "--kindreg-access-token-ttl takes a number of seconds > 0, not 'soon'",
        ),
        (["--kindreg-access-token-ttl", "0"], "--kindreg-access-token-ttl takes a number of seconds > 0, not '0'"),
        (["--kindreg-exclude-strategy", "workload_idenity"], "'workload_idenity' is not a valid kindreg strategy"),
        (["--kindreg-token-listen", "0.0.0.0"], "would listen on every interface"),  # noqa: S104
    ],
    ids=["auth-mode", "scope-without-token", "ttl-text", "ttl-zero", "exclude-typo", "listen-everywhere"],
)
def test_token_and_strategy_options_are_checked_up_front(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_excluded_strategies_are_deselected_not_skipped(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.kindreg_strategy("pull_secret", "workload_identity")
        def test_x(kind_private_registry):
            pass
        """
    )
    # Collection only: which cases run is decided before any cluster exists.
    result = pytester.runpytest("--kindreg-exclude-strategy", "workload_identity", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_x[[]pull_secret[]]", "*1/2 tests collected (1 deselected)*"])
    assert "workload_identity]" not in result.stdout.str()


@pytest.mark.docker
def test_password_never_in_a_failing_verbose_run(
    pytester: pytest.Pytester, kindreg_docker: object, tmp_path: Path
) -> None:
    secret_file = tmp_path / "password"
    pytester.makepyfile(
        f"""
        import logging

        def test_fails(private_registry):
            open({str(secret_file)!r}, "w").write(private_registry.password)
            logging.getLogger("pytest_kindreg").warning("registry %r", private_registry)
            print(private_registry, private_registry.credentials)
            assert private_registry is None, private_registry
        """
    )
    result = pytester.runpytest("-vv", "-rA", "--showlocals", "--kindreg-require", "docker")
    result.assert_outcomes(failed=1)
    password = secret_file.read_text()
    assert len(password) >= 16
    output = result.stdout.str() + result.stderr.str()
    assert "PrivateRegistry" in output
    assert password not in output


@pytest.mark.docker
def test_failing_test_gets_the_registry_log(pytester: pytest.Pytester, kindreg_docker: object) -> None:
    pytester.makepyfile(
        """
        def test_fails(private_registry):
            assert private_registry.get("/v2/", authenticated=False).status_code == 200
        """
    )
    result = pytester.runpytest("--kindreg-require", "docker")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*kindreg registry kindreg-*-registry log (tail)*", '*"GET /v2/ HTTP/1.1" 401*'])


@pytest.mark.docker
def test_port_in_use_is_one_actionable_message(pytester: pytest.Pytester, kindreg_docker: object) -> None:
    pytester.makeconftest(
        """
        import socket
        import pytest
        from pytest_kindreg import PrivateRegistry

        @pytest.fixture(scope="session")
        def private_registry():
            with socket.socket() as busy:
                busy.bind(("127.0.0.1", 0))
                busy.listen()
                with PrivateRegistry(port=busy.getsockname()[1]) as registry:
                    yield registry
        """
    )
    pytester.makepyfile("def test_x(private_registry):\n    pass\n")
    result = pytester.runpytest("--kindreg-require", "docker")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*PortInUseError: port 127.0.0.1:* is already in use; choose another port or leave it unset*"]
    )


def test_marker_on_a_test_without_the_workspace_names_the_strategies_it_needs(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from pytest_kindreg.plugin import needed_key

        def pytest_collection_finish(session):
            print("NEEDED", sorted(session.config.stash[needed_key]))
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.kindreg_strategy("certificate", "side_load")
        def test_env(kindreg_environment):
            pass

        def test_cluster(kind_cluster):
            pass
        """
    )
    result = pytester.runpytest("--collect-only", "-q", "-s")
    result.stdout.fnmatch_lines(["NEEDED ['certificate', 'pull_secret', 'side_load']"])
    assert "test_env[" not in result.stdout.str()  # not parametrized
    pytester.makepyfile(
        'import pytest\n\n@pytest.mark.kindreg_strategy("certficate")\ndef test_env(kind_cluster):\n    pass\n'
    )
    result = pytester.runpytest("--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'certficate' is not a valid kindreg strategy*"])
