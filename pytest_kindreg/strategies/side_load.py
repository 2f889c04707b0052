"""``side_load``: the host pulls with credentials, then ``kind load`` puts the image into every node.

Nodes never hold credentials; pods use a pinned tag with ``imagePullPolicy: IfNotPresent``.

Every push publishes a variant of the source image that differs only in one config label, so its
image ID (the config digest) is new. Kubelet's credential re-verification (KEP-2535,
``KubeletEnsureSecretPulledImages``, on by default from Kubernetes 1.35) keys its records on the
image ID: if another strategy's pod had pulled the same ID with credentials, kubelet would
re-verify the side-loaded copy, pull it, and fail with ``no basic auth credentials`` on nodes that
hold none. A label, not a layer: the filesystem stays byte-for-byte the source's.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass, field
from typing import Any, ClassVar

from docker.errors import APIError, BuildError, ImageNotFound

from pytest_kindreg.errors import ImageMissingError, KindregError
from pytest_kindreg.strategies.base import BaseStrategy, PodPatch, StrategyContext

NONCE_LABEL = "io.kindreg.side-load.nonce"


@dataclass(frozen=True)
class UniqueVariant:
    """A build of ``base`` (an image ID) that adds one label: the same layers, a new image ID."""

    base: str
    nonce: str = field(default_factory=lambda: secrets.token_hex(8))

    @property
    def tag(self) -> str:
        """A temporary local tag: removed once the variant is pushed under the caller's name."""
        return f"kindreg-side-load/variant:{self.nonce}"

    def dockerfile(self) -> bytes:
        return f"FROM {self.base}\nLABEL {NONCE_LABEL}={self.nonce}\n".encode()


def build_unique_variant(docker: Any, local_image: str) -> str:
    """Build a :class:`UniqueVariant` of ``local_image`` in the local engine; returns its tag."""
    try:
        source = docker.images.get(local_image)
    except ImageNotFound as exc:
        raise ImageMissingError(local_image, "Build or pull it first (`docker image ls` lists local images).") from exc
    variant = UniqueVariant(str(source.id))
    try:
        # FROM the image ID with pull=False: nothing is looked up in a registry.
        docker.images.build(
            fileobj=io.BytesIO(variant.dockerfile()), tag=variant.tag, pull=False, rm=True, forcerm=True
        )
    except (BuildError, APIError) as exc:
        raise KindregError(f"side_load could not build a unique variant of {local_image}: {exc}") from exc
    return variant.tag


class SideLoadStrategy(BaseStrategy):
    name: ClassVar[str] = "side_load"
    description: ClassVar[str] = "pull on the host with credentials, then kind load into the nodes"

    def prepare_namespace(self, ctx: StrategyContext, core: Any, namespace: str) -> PodPatch:
        return PodPatch(image_pull_policy="IfNotPresent")

    def prepare_image(self, ctx: StrategyContext, local_image: str) -> str:
        # A new image ID per push: see the module docstring (kubelet's credential re-verification).
        return build_unique_variant(ctx.registry.docker, local_image)

    def publish(self, ctx: StrategyContext, reference: str) -> str:
        if reference.endswith(":latest"):
            raise ValueError(f"side_load needs a pinned tag, not {reference!r}: ':latest' makes kubelet pull")
        # Credentials go to the engine per request (docker SDK auth_config): no config file is written.
        # The cluster's identity pulls, as the cluster would: read-only in token mode.
        ctx.registry.pull(reference, credentials=ctx.registry.credentials)
        ctx.require_cluster().load_image(reference)
        return reference

    def negative_control(self, ctx: StrategyContext, fresh_reference: str) -> tuple[str, PodPatch]:
        # A tag never loaded into the nodes: kubelet must pull it, and nodes hold no credentials.
        return fresh_reference, PodPatch(image_pull_policy="IfNotPresent")
