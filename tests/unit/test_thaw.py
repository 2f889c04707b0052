"""Thawing frozen cgroup v1 freezer cgroups of a kind node (a fake cgroup tree: the logic only)."""

from __future__ import annotations

from pathlib import Path

from pytest_kindreg.docker_nodes import thaw_frozen


def _cgroup(path: Path, state: str) -> Path:
    path.mkdir(parents=True)
    (path / "freezer.state").write_text(state + "\n")
    return path / "freezer.state"


def test_only_the_given_containers_frozen_cgroups_are_thawed(tmp_path: Path) -> None:
    node = "a" * 64
    frozen = _cgroup(tmp_path / "docker" / node / "kubelet.slice" / "cri-containerd-x.scope", "FROZEN")
    running = _cgroup(tmp_path / "docker" / node / "kubelet.slice" / "cri-containerd-y.scope", "THAWED")
    systemd_layout = _cgroup(tmp_path / "system.slice" / f"docker-{node}.scope" / "pod" / "c", "FROZEN")
    other = _cgroup(tmp_path / "docker" / ("b" * 64) / "c", "FROZEN")  # someone else's container

    assert thaw_frozen([node], root=tmp_path) == 2
    assert frozen.read_text() == "THAWED"
    assert systemd_layout.read_text() == "THAWED"
    assert running.read_text() == "THAWED\n"  # untouched
    assert other.read_text() == "FROZEN\n"
    assert thaw_frozen([node], root=tmp_path) == 0
    assert thaw_frozen(["c" * 64], root=tmp_path / "missing") == 0
