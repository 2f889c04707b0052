"""Certificates chain to the CA, carry the right SANs and key usages; keys are 0600."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from pytest_kindreg.certificates import CertificateAuthority, write_tls_files


def _verify_signed_by(cert: x509.Certificate, ca: x509.Certificate) -> None:
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert cert.signature_hash_algorithm is not None
    public_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    cert.verify_directly_issued_by(ca)


def test_server_certificate_chains_and_covers_names() -> None:
    ca = CertificateAuthority.create()
    server = ca.issue_server("localhost", "127.0.0.1", "kindreg-abc-registry").certificate
    _verify_signed_by(server, ca.certificate)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "kindreg-abc-registry"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_client_certificate_is_for_client_auth_only() -> None:
    ca = CertificateAuthority.create()
    client = ca.issue_client("node").certificate
    _verify_signed_by(client, ca.certificate)
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    usage = client.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign


def test_ca_is_a_ca() -> None:
    ca = CertificateAuthority.create().certificate
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert ca.issuer == ca.subject


def test_a_certificate_from_another_ca_does_not_chain() -> None:
    one, other = CertificateAuthority.create(), CertificateAuthority.create()
    with pytest.raises(Exception):  # noqa: B017, PT011 - cryptography raises InvalidSignature/ValueError
        _verify_signed_by(other.issue_client().certificate, one.certificate)


def test_server_needs_a_name() -> None:
    with pytest.raises(ValueError, match="at least one name"):
        CertificateAuthority.create().issue_server()


def test_key_material_never_in_repr() -> None:
    ca = CertificateAuthority.create()
    issued = ca.issue_client()
    assert b"PRIVATE KEY" in issued.key_pem
    assert "PRIVATE KEY" not in repr(issued)
    assert "PRIVATE KEY" not in repr(ca)


@pytest.mark.parametrize("client_auth", [False, True])
def test_written_files_and_modes(tmp_path: Path, client_auth: bool) -> None:
    files = write_tls_files(tmp_path / "certs", ["localhost"], client_auth=client_auth)
    assert stat.S_IMODE(files.server_key.stat().st_mode) == 0o600
    assert files.ca.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    if client_auth:
        assert files.client_key is not None and files.client_pair is not None
        assert stat.S_IMODE(files.client_key.stat().st_mode) == 0o600
    else:
        assert files.client_pair is None
