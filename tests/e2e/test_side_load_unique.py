"""side_load publishes a new image ID per push, into the real nodes of a kind cluster (real
Docker engine, real registry, real ``kind load``), and the content stays the same."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_kindreg import KindCluster
from pytest_kindreg.strategies.side_load import NONCE_LABEL
from pytest_kindreg.workspace import KindPrivateRegistry

pytestmark = pytest.mark.e2e


def _image_id_on(cluster: KindCluster, node: str, image: str) -> str:
    template = ["-o", "go-template", "--template", "{{.status.id}}"]
    return cluster.exec(node, ["crictl", "inspecti", *template, image]).strip()


def _run(docker: Any, image: str) -> bytes:
    output: bytes = docker.containers.run(image, ["sh", "-c", "md5sum /bin/busybox; ls /bin | wc -l"], remove=True)
    return output


@pytest.mark.kindreg_strategy("side_load")
def test_each_side_load_publish_has_a_new_image_id(
    kind_private_registry: KindPrivateRegistry, kind_cluster: KindCluster, kindreg_docker: Any, kindreg_test_image: str
) -> None:
    source = kindreg_docker.images.get(kindreg_test_image)
    published = [kind_private_registry.push(kindreg_test_image) for _ in range(2)]
    for node in kind_cluster.nodes():
        loaded = [_image_id_on(kind_cluster, node, reference) for reference in published]
        # Kubelet keys its pulled-with-credentials records on the image ID: each push has a new
        # one, and none is the source's, which another strategy may have pulled with credentials.
        assert len({source.id, *loaded}) == 3, loaded

    node = kind_cluster.nodes()[0]
    for reference in published:
        # The registry serves exactly what the nodes got: pull it back with no local copy left.
        kindreg_docker.images.remove(reference, noprune=True)
        pulled = kind_private_registry.registry.pull(reference)
        assert pulled.id == _image_id_on(kind_cluster, node, reference)
        assert pulled.attrs["RootFS"]["Layers"] == source.attrs["RootFS"]["Layers"]  # same filesystem
        assert pulled.labels[NONCE_LABEL]
        assert pulled.attrs["Config"]["Cmd"] == source.attrs["Config"]["Cmd"]
        assert _run(kindreg_docker, reference) == _run(kindreg_docker, kindreg_test_image)
        assert kind_private_registry.run_pod(reference).status.phase == "Running"

    # The variants' temporary tags are gone; the pushed references keep the images until stop().
    assert not [tag for image in kindreg_docker.images.list() for tag in image.tags if "kindreg-side-load/" in tag]
