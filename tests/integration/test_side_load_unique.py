"""side_load publishes a new image ID per push: real Docker engine, real registry, real pulls.

Only ``kind load`` itself needs a cluster; a recorder stands in for it and notes what side_load
hands over (tests/e2e runs the real thing). The recorder notes the image ID the host has under
the loaded name at that moment, which is what ``kind load docker-image`` copies into the nodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_kindreg import PrivateRegistry
from pytest_kindreg.node_credentials import NodeCredentials
from pytest_kindreg.strategies import SideLoadStrategy, StrategyContext
from pytest_kindreg.strategies.side_load import NONCE_LABEL
from pytest_kindreg.workspace import KindPrivateRegistry

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]


class _KindLoadRecorder:
    """Stands in for the kind cluster: what side_load loads, and the image ID it has then."""

    def __init__(self, docker: Any) -> None:
        self.docker = docker
        self.loaded: list[tuple[str, str]] = []

    def api_client(self) -> Any:
        from kubernetes import client

        return client.ApiClient()

    def load_image(self, image: str) -> None:
        self.loaded.append((image, self.docker.images.get(image).id))


@pytest.fixture
def side_load(kindreg_docker: Any, tmp_path: Path) -> Iterator[tuple[KindPrivateRegistry, _KindLoadRecorder]]:
    recorder = _KindLoadRecorder(kindreg_docker)
    with PrivateRegistry(docker=kindreg_docker, **SideLoadStrategy.registry_options) as registry:
        ctx = StrategyContext(
            "side_load",
            registry,
            tmp_path,
            NodeCredentials(tmp_path / "kubelet.json"),
            cluster=recorder,  # type: ignore[arg-type]
        )
        yield KindPrivateRegistry(SideLoadStrategy(), ctx, recorder, namespace="kr-side-load-ids"), recorder  # type: ignore[arg-type]


def _run(docker: Any, image: str) -> bytes:
    output: bytes = docker.containers.run(image, ["sh", "-c", "md5sum /bin/busybox; ls /bin | wc -l"], remove=True)
    return output


def test_each_side_load_publish_has_a_new_image_id(
    side_load: tuple[KindPrivateRegistry, _KindLoadRecorder], kindreg_docker: Any, kindreg_test_image: str
) -> None:
    workspace, recorder = side_load
    source = kindreg_docker.images.get(kindreg_test_image)
    first = workspace.push(kindreg_test_image)
    second = workspace.push(kindreg_test_image)

    assert [image for image, _id in recorder.loaded] == [first, second]
    first_id, second_id = (image_id for _image, image_id in recorder.loaded)
    # Kubelet keys its pulled-with-credentials records on the image ID: each push has a new one,
    # and none is the source's, which another strategy may have pulled with credentials.
    assert len({source.id, first_id, second_id}) == 3

    for reference, image_id in recorder.loaded:
        # The registry serves exactly what was loaded: pull it back with no local copy left.
        kindreg_docker.images.remove(reference, noprune=True)
        pulled = workspace.registry.pull(reference)
        assert pulled.id == image_id
        assert pulled.attrs["RootFS"]["Layers"] == source.attrs["RootFS"]["Layers"]  # same filesystem
        assert pulled.labels[NONCE_LABEL]
        assert pulled.attrs["Config"]["Cmd"] == source.attrs["Config"]["Cmd"]
        assert _run(kindreg_docker, reference) == _run(kindreg_docker, kindreg_test_image)

    # The variants' temporary tags are gone; the pushed references keep the images until stop().
    assert not [tag for image in kindreg_docker.images.list() for tag in image.tags if "kindreg-side-load/" in tag]
