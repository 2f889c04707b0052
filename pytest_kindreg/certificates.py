"""A throw-away certificate authority with server and client certificates for the registry."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pytest_kindreg.credentials import write_private_file

_VALIDITY = datetime.timedelta(days=2)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pytest-kindreg"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _san(names: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


@dataclass(frozen=True)
class IssuedCertificate:
    cert_pem: bytes
    key_pem: bytes = field(repr=False)

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed CA (ECDSA P-256) that lives as long as one test run."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)

    @classmethod
    def create(cls, common_name: str = "pytest-kindreg test CA") -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(_pem(cert), _key_pem(key))

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    def _issue(self, common_name: str, usage: x509.ObjectIdentifier, sans: Iterable[str]) -> IssuedCertificate:
        ca_key = serialization.load_pem_private_key(self.key_pem, password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_encipherment=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    content_commitment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        names = list(sans)
        if names:
            builder = builder.add_extension(_san(names), critical=False)
        return IssuedCertificate(_pem(builder.sign(ca_key, hashes.SHA256())), _key_pem(key))

    def issue_server(self, *names: str) -> IssuedCertificate:
        """A server certificate valid for every given DNS name or IP address."""
        if not names:
            raise ValueError("a server certificate needs at least one name")
        return self._issue(names[0], ExtendedKeyUsageOID.SERVER_AUTH, names)

    def issue_client(self, common_name: str = "kindreg-client") -> IssuedCertificate:
        return self._issue(common_name, ExtendedKeyUsageOID.CLIENT_AUTH, ())


@dataclass(frozen=True)
class TlsFiles:
    """Where the PEM files of one registry's TLS setup were written (keys 0600)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path | None = None
    client_key: Path | None = None

    @classmethod
    def in_dir(cls, directory: Path, client_auth: bool) -> TlsFiles:
        """The file layout of one registry's TLS setup under ``directory`` (as the container mounts it)."""
        client = (directory / "client.cert", directory / "client.key") if client_auth else (None, None)
        return cls(directory / "ca.crt", directory / "server.crt", directory / "server.key", *client)

    @property
    def client_pair(self) -> tuple[str, str] | None:
        if self.client_cert is None or self.client_key is None:
            return None
        return str(self.client_cert), str(self.client_key)


def write_tls_files(directory: Path, server_names: Iterable[str], client_auth: bool) -> TlsFiles:
    ca = CertificateAuthority.create()
    server = ca.issue_server(*server_names)
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles.in_dir(directory, client_auth)
    files.ca.write_bytes(ca.cert_pem)
    files.server_cert.write_bytes(server.cert_pem)
    write_private_file(files.server_key, server.key_pem)
    if files.client_cert is not None and files.client_key is not None:
        client = ca.issue_client()
        files.client_cert.write_bytes(client.cert_pem)
        write_private_file(files.client_key, client.key_pem)
    return files
