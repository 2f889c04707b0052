"""Which docker context is current, and what the private DOCKER_CONFIG carries: files only."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from pytest_kindreg.docker_engine import context_endpoint, current_context_name, private_docker_env
from pytest_kindreg.errors import DockerUnavailableError


def _user_config(tmp_path: Path, config: dict[str, object], contexts: dict[str, str] | None = None) -> Path:
    directory = tmp_path / "user"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(config))
    for name, host in (contexts or {}).items():
        meta = directory / "contexts" / "meta" / hashlib.sha256(name.encode()).hexdigest()
        meta.mkdir(parents=True)
        (meta / "meta.json").write_text(
            json.dumps({"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}})
        )
    return directory


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "colima"),
        ({"DOCKER_CONTEXT": "other"}, "other"),
        ({"DOCKER_HOST": "unix:///x.sock", "DOCKER_CONTEXT": "other"}, "default"),
    ],
)
def test_current_context_follows_the_cli_rules(tmp_path: Path, environ: dict[str, str], expected: str) -> None:
    user = _user_config(tmp_path, {"currentContext": "colima"})
    assert current_context_name({"DOCKER_CONFIG": str(user), **environ}) == expected


def test_no_config_means_the_default_context(tmp_path: Path) -> None:
    assert current_context_name({"DOCKER_CONFIG": str(tmp_path / "absent")}) == "default"
    assert context_endpoint({"DOCKER_CONFIG": str(tmp_path / "absent")}) is None


def test_the_endpoint_comes_from_the_context_store(tmp_path: Path) -> None:
    user = _user_config(tmp_path, {"currentContext": "colima"}, {"colima": "unix:///home/u/.colima/docker.sock"})
    endpoint = context_endpoint({"DOCKER_CONFIG": str(user)})
    assert endpoint is not None
    assert endpoint.host == "unix:///home/u/.colima/docker.sock"
    assert endpoint.tls_dir is None
    assert endpoint.tls_config() is False


def test_a_missing_current_context_is_a_clear_error(tmp_path: Path) -> None:
    user = _user_config(tmp_path, {"currentContext": "gone"})
    with pytest.raises(DockerUnavailableError, match="docker context 'gone' is current but unreadable"):
        context_endpoint({"DOCKER_CONFIG": str(user)})


def test_private_config_keeps_the_context_and_drops_credentials(tmp_path: Path) -> None:
    user = _user_config(
        tmp_path,
        {
            "auths": {"r.example": {"auth": "dTpw"}},
            "credsStore": "desktop",
            "credHelpers": {"gcr.io": "gcloud"},
            "currentContext": "colima",
        },
        {"colima": "unix:///c.sock"},
    )
    private = tmp_path / "private"
    assert private_docker_env(private, {"DOCKER_CONFIG": str(user)}) == {"DOCKER_CONFIG": str(private)}
    assert json.loads((private / "config.json").read_text()) == {"currentContext": "colima"}
    assert (private / "contexts").resolve() == (user / "contexts").resolve()
    # Rebuilt on every call: a user without contexts leaves no stale link behind.
    (user / "config.json").write_text("{}")
    shutil.rmtree(user / "contexts")
    private_docker_env(private, {"DOCKER_CONFIG": str(user)})
    assert json.loads((private / "config.json").read_text()) == {}
    assert not (private / "contexts").is_symlink()
