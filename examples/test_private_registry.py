"""The private registry on its own: no cluster, Docker alone.

Proves that ``private_registry`` is really private — anonymous clients are refused with 401,
the generated credentials are accepted — and that a pushed image lands where its reference says.
Use this fixture when the code under test talks to a registry (pushes, tag listing, mirroring)
but does not need Kubernetes.
"""

from __future__ import annotations

from pytest_kindreg import PrivateRegistry


def test_push_needs_and_uses_credentials(private_registry: PrivateRegistry, kindreg_test_image: str) -> None:
    reference = private_registry.push(kindreg_test_image, repository="examples/busybox", tag="v1")

    assert reference.startswith(private_registry.host + "/")
    assert reference == f"{private_registry.host}/examples/busybox:v1"

    assert private_registry.get("/v2/", authenticated=False).status_code == 401
    assert private_registry.get("/v2/").status_code == 200

    assert "v1" in private_registry.tags("examples/busybox")
