"""Checks of a kind node image before a cluster is created from it. Needs Docker, not kind."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path
from typing import Any

from docker.errors import ImageNotFound, NotFound

from pytest_kindreg.containerd import registry_mirrors
from pytest_kindreg.docker_engine import RunIdentity
from pytest_kindreg.errors import ClusterError

NODE_CONTAINERD_CONFIG = "/etc/containerd/config.toml"


class NodeImageError(ClusterError):
    """The node image cannot work with pytest-kindreg; the message says why and what to use."""


def read_image_file(docker: Any, image: str, path: str) -> str | None:
    """The text of ``path`` in the local ``image``, None if it has no such regular file.

    Read from a created container that is never started: nothing in the image runs, so any
    image works (no shell or ``cat`` needed, any architecture) and it works offline.
    """
    container = docker.containers.create(
        image,
        command=["/kindreg-never-started"],  # images without CMD/ENTRYPOINT need one to be created
        network_disabled=True,
        labels=RunIdentity().labels("node-image-check"),  # reaped like any run's if we die now
    )
    try:
        stream, _stat = container.get_archive(path)
        archive = b"".join(stream)
    except NotFound:
        return None
    finally:
        container.remove(force=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        member = tar.next()
        handle = tar.extractfile(member) if member is not None and member.isfile() else None
        return handle.read().decode(errors="replace") if handle is not None else None


_mirrors_by_image_id: dict[str, list[str]] = {}


def _mirrors_in(docker: Any, image: str) -> list[str]:
    """The CRI registry mirrors the image's containerd config sets (none without a readable one)."""
    text = read_image_file(docker, image, NODE_CONTAINERD_CONFIG)
    if text is None:
        return []
    try:
        return registry_mirrors(text)
    except ValueError:
        return []  # not ours to judge: containerd reports its own config errors


def node_image_problem(docker: Any, image: str) -> str | None:
    """Why ``image`` cannot make a working cluster with pytest-kindreg, or None.

    Only a local image is checked (kind pulls the others; :meth:`KindCluster.create` checks again
    after a failed create, when kind has pulled it).
    """
    try:
        image_id = str(docker.images.get(image).id)
    except ImageNotFound:
        return None
    # An image ID names fixed content: the environment and KindCluster.create both check the same
    # image, and a container is created and removed to read it only once per process.
    if image_id not in _mirrors_by_image_id:
        _mirrors_by_image_id[image_id] = _mirrors_in(docker, image_id)
    mirrors = _mirrors_by_image_id[image_id]
    if not mirrors:
        return None
    return (
        f"node image {image} cannot be used: its {NODE_CONTAINERD_CONFIG} sets the CRI registry.mirrors "
        f"({', '.join(mirrors)}), as node images built by kind v0.17 and older do. containerd refuses "
        "registry.mirrors next to the config_path that pytest-kindreg sets for its hosts.toml files "
        '("`mirrors` cannot be set when `config_path` is provided"), so the cluster\'s container runtime '
        "would not start. Use a node image built by kind v0.18 or newer: a kindest/node image listed in "
        "the release notes of kind v0.20 or later (https://github.com/kubernetes-sigs/kind/releases), "
        "or the default image of a current kind."
    )


def check_node_image(docker: Any, image: str | None) -> None:
    """Raise :class:`NodeImageError` if the local ``image`` cannot work (None: kind's default)."""
    if image is None:
        return
    problem = node_image_problem(docker, image)
    if problem:
        raise NodeImageError(problem)


_KIND_DEFAULT_IMAGE = re.compile(rb"kindest/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}")
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def kind_default_image(kind_bin: str) -> str | None:
    """The node image a kind binary uses when none is given: a constant compiled into it
    (``pkg/apis/config/defaults``), read from the binary itself."""
    try:
        found = set(_KIND_DEFAULT_IMAGE.findall(Path(kind_bin).read_bytes()))
    except OSError:
        return None
    return found.pop().decode() if len(found) == 1 else None


def parse_kubernetes_version(text: str) -> tuple[int, int, int] | None:
    match = _VERSION.search(text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def image_kubernetes_version(docker: Any, image: str) -> str | None:
    """The Kubernetes version of a node image: its ``/kind/version`` if the image is local, else
    its tag when that is a version (``kindest/node:v1.34.0@sha256:…``); None if neither tells."""
    try:
        docker.images.get(image)
    except ImageNotFound:
        tag = image.split("@", 1)[0].rpartition(":")[2]
        return tag if parse_kubernetes_version(tag) and tag.startswith("v") else None
    text = read_image_file(docker, image, "/kind/version")
    return text.strip() if text and parse_kubernetes_version(text) else None
