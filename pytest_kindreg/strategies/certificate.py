"""``certificate``: a registry that requires a TLS client certificate (mTLS). Nodes get the CA and
the client pair under ``/etc/containerd/certs.d/<image-host>/`` with a ``hosts.toml`` naming them
— not the removed ``registry.configs.*.tls`` keys (ignored by containerd 2.x, kind #3884)."""

from __future__ import annotations

from typing import Any, ClassVar

from pytest_kindreg.containerd import HostsToml, hosts_dir
from pytest_kindreg.strategies.base import REFUSED_WITHOUT_CLIENT_CERT, BaseStrategy, StrategyContext


class CertificateStrategy(BaseStrategy):
    name: ClassVar[str] = "certificate"
    description: ClassVar[str] = "registry behind TLS client certificates, containerd hosts.toml on nodes"
    # The client certificate is the credential: no password on this registry.
    registry_options: ClassVar[dict[str, Any]] = {"client_auth": True, "htpasswd": False}
    refusal = REFUSED_WITHOUT_CLIENT_CERT

    def prepare_nodes(self, ctx: StrategyContext, *, reused: bool) -> None:
        files = ctx.registry.tls_files
        assert files is not None and files.client_cert is not None and files.client_key is not None
        cluster = ctx.require_cluster()
        directory = hosts_dir(ctx.image_host)
        hosts = HostsToml(
            endpoint=ctx.registry.network_endpoint,
            ca=f"{directory}/ca.crt",
            client=(f"{directory}/client.cert", f"{directory}/client.key"),
        )
        # One exec per node; hosts.toml last in the archive, so it never names a missing file
        # (it replaces the wiring's CA-only one; containerd reads hosts dirs on every pull).
        cluster.write_files_all(
            {
                f"{directory}/ca.crt": (files.ca.read_bytes(), 0o644),
                f"{directory}/client.cert": (files.client_cert.read_bytes(), 0o644),
                f"{directory}/client.key": (files.client_key.read_bytes(), 0o600),
                f"{directory}/hosts.toml": (hosts.render(), 0o644),
            }
        )
