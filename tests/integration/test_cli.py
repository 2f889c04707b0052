"""The ``kindreg`` command (python -m pytest_kindreg): doctor, cleanup, build-images."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.docker


def kindreg(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_kindreg", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_doctor_reports_what_is_there_and_what_to_fix(kindreg_docker: Any) -> None:
    result = kindreg("doctor", "--kind-bin", "/nonexistent/kind", "--node-image", "kindest/node:v0.0.0-absent")
    assert result.returncode == 0, result.stdout + result.stderr  # kind and the node image are warnings
    out = result.stdout
    assert "[  ok] docker: engine" in out
    assert "[warn] kind: kind is not available (no kind binary at '/nonexistent/kind')" in out
    assert "[  ok] registry image: registry:2 present" in out
    assert "[warn] node image: kindest/node:v0.0.0-absent is not present locally" in out
    assert "fix: `docker pull kindest/node:v0.0.0-absent`" in out
    assert "all required checks passed" in out


def test_doctor_fails_without_docker_and_says_how_to_fix() -> None:
    result = kindreg("doctor", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert result.returncode == 1
    assert "[FAIL] docker: no Docker engine answers" in result.stdout
    assert "fix: start dockerd" in result.stdout


def test_doctor_flags_a_missing_registry_image(kindreg_docker: Any) -> None:
    result = kindreg("doctor", "--registry-image", "kindreg-test/no-such:0")
    assert result.returncode == 1
    assert "[FAIL] registry image: kindreg-test/no-such:0 is not present locally" in result.stdout
    assert "kindreg build-images" in result.stdout


def test_cleanup_dry_run_and_removal(kindreg_docker: Any, kindreg_test_image: str, tmp_path: Path) -> None:
    # A dead run's leftovers: a labelled container whose pid is gone, and its temp dir with a key.
    from pytest_kindreg import RunIdentity
    from pytest_kindreg.tempdirs import make_temp_dir

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    identity = RunIdentity(pid=int(dead.stdout))
    container = kindreg_docker.containers.create(
        kindreg_test_image, ["sleep", "60"], name=identity.name("registry"), labels=identity.labels("registry")
    )
    leftover_dir = make_temp_dir(identity, identity.name("registry"))  # as the dead run made it
    (leftover_dir / "client.key").write_text("KEY")
    env = {"KINDREG_STATE_DIR": str(tmp_path / "state")}
    try:
        dry = kindreg("cleanup", "--dry-run", env=env)
        assert f"would remove containers: {container.name}" in dry.stdout
        assert f"would remove directories: {leftover_dir}" in dry.stdout
        assert leftover_dir.exists()
        done = kindreg("cleanup", env=env)
        assert done.returncode == 0, done.stderr
        assert kindreg_docker.containers.list(all=True, filters={"name": container.name}, ignore_removed=True) == []
        assert not leftover_dir.exists()
    finally:
        subprocess.run(["docker", "rm", "-f", container.name], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(leftover_dir)], check=False)


def test_build_images_is_idempotent(kindreg_docker: Any) -> None:
    result = kindreg("build-images")
    assert result.returncode == 0, result.stderr
    assert "registry:2 present" in result.stdout
