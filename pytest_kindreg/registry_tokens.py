"""Tokens of distribution's token authentication, and the credentials built on them.

* **Registry tokens**: the short JWTs the token service hands out and ``registry:2`` checks
  (``iss`` = its issuer, ``aud`` = its service as a plain string, ``exp``, ``access``). distribution
  2.8 finds the signing key from the header's ``x5c`` chain (leaf first, standard base64 DER),
  which must lead to a certificate of its ``rootcertbundle``: here the run's throw-away CA, which
  signs nothing else.
* **Access tokens** (``oauth2accesstoken``): a credential that expires on a clock, as cloud
  registries' access tokens do. Signed by the same key with another audience, so the registry
  never takes one as a registry token; only the token service accepts them, until ``exp``.
* **Service-account keys** (``_json_key``): a JSON key document used whole as the password, as
  Google's key files are. The token service keeps each issued document's SHA-256 and compares the
  whole document; bcrypt (htpasswd) would read only its first 72 bytes, which are boilerplate.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pytest_kindreg.certificates import CertificateAuthority
from pytest_kindreg.credentials import Credentials, write_private_file

ALGORITHM = "ES256"  # the run's keys are P-256; distribution accepts ES256 with an EC P-256 key
ACCESS_TOKEN_USERNAME = "oauth2accesstoken"  # noqa: S105 - a username; what GCP/GCR and many proxies use as the username
SERVICE_ACCOUNT_KEY_USERNAME = "_json_key"  # seed 000: docker login -u _json_key --password-stdin < key.json
# distribution accepts a token up to this long after its exp (and before its nbf).
REGISTRY_LEEWAY = 60
DEFAULT_REGISTRY_TOKEN_TTL = 300


class TokenError(Exception):
    """A credential the token service does not accept; the message says why (never the secret)."""


class TokenExpiredError(TokenError):
    pass


@dataclass(frozen=True)
class TokenSigner:
    """The key that signs registry and access tokens, its certificate, and the CA the registry trusts."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes = field(repr=False)

    @classmethod
    def create(cls) -> TokenSigner:
        ca = CertificateAuthority.create("pytest-kindreg token CA")
        leaf = ca.issue_client("pytest-kindreg token signer")  # digital signature, not a server
        return cls(ca.cert_pem, leaf.cert_pem, leaf.key_pem)

    # The files, in one directory: bundle.pem (what the registry trusts) and the signer's pair.
    @staticmethod
    def bundle_path(directory: Path) -> Path:
        return directory / "bundle.pem"

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.bundle_path(directory).write_bytes(self.ca_pem)
        (directory / "signer.crt").write_bytes(self.cert_pem)
        write_private_file(directory / "signer.key", self.key_pem)
        return self.bundle_path(directory)

    @classmethod
    def load(cls, directory: Path) -> TokenSigner:
        return cls(
            cls.bundle_path(directory).read_bytes(),
            (directory / "signer.crt").read_bytes(),
            (directory / "signer.key").read_bytes(),
        )

    def _x5c(self) -> list[str]:
        from cryptography import x509

        der = x509.load_pem_x509_certificate(self.cert_pem).public_bytes(serialization.Encoding.DER)
        return [base64.b64encode(der).decode()]  # standard base64, not url-safe (RFC 7515 4.1.6)

    def sign(self, claims: Mapping[str, Any]) -> str:
        return jwt.encode(dict(claims), self.key_pem, algorithm=ALGORITHM, headers={"typ": "JWT", "x5c": self._x5c()})

    def verify(self, token: str, *, audience: str, issuer: str) -> dict[str, Any]:
        """The claims of a token this signer made for ``audience``; :class:`TokenError` otherwise."""
        from cryptography import x509

        public_key = x509.load_pem_x509_certificate(self.cert_pem).public_key()
        try:
            return dict(
                jwt.decode(
                    token,
                    public_key,  # type: ignore[arg-type]
                    algorithms=[ALGORITHM],
                    audience=audience,
                    issuer=issuer,
                    options={"require": ["exp", "aud", "iss"]},
                )
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpiredError("access token expired") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"not a valid access token ({type(exc).__name__})") from None


def registry_token_claims(
    *,
    issuer: str,
    service: str,
    subject: str,
    access: Sequence[Mapping[str, Any]],
    ttl: int = DEFAULT_REGISTRY_TOKEN_TTL,
    not_after: float | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The claims of a registry token. ``not_after`` (an access token's expiry) caps it: the registry
    accepts a token until ``exp`` + :data:`REGISTRY_LEEWAY`, so ``exp`` is set that much earlier."""
    issued = int(time.time() if now is None else now)
    expires = issued + ttl
    if not_after is not None:
        expires = min(expires, int(not_after) - REGISTRY_LEEWAY)
    return {
        "iss": issuer,
        "sub": subject,
        "aud": service,  # a plain string: distribution 2.8 refuses a list
        "exp": expires,
        "nbf": issued - 5,
        "iat": issued,
        "jti": uuid.uuid4().hex,
        "access": [dict(entry) for entry in access],
    }


def access_token_audience(service: str) -> str:
    """Access tokens' audience: not the registry's service, so the registry refuses them as bearer tokens."""
    return f"{service}/access-token"


def issue_access_token(signer: TokenSigner, *, issuer: str, service: str, subject: str, ttl: float) -> Credentials:
    """``Credentials(oauth2accesstoken, <JWT>)`` valid ``ttl`` seconds from now."""
    if ttl <= 0:
        raise ValueError(f"an access token's ttl must be > 0 seconds, got {ttl!r}")
    now = time.time()
    claims = {
        "iss": issuer,
        "sub": subject,
        "aud": access_token_audience(service),
        "iat": int(now),
        "exp": int(now + ttl),
        "jti": uuid.uuid4().hex,
    }
    return Credentials(ACCESS_TOKEN_USERNAME, signer.sign(claims))


def service_account_key_document(project: str, name: str) -> str:
    """A JSON key document shaped like a Google service-account key (about 2.3 KB): a fresh RSA key,
    its id, the account's e-mail. Used whole as the password of ``_json_key``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    email = f"{name}@{project}.iam.kindreg.invalid"
    document = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)).zfill(21),
        "auth_uri": "https://accounts.kindreg.invalid/o/oauth2/auth",
        "token_uri": "https://oauth2.kindreg.invalid/token",
        "auth_provider_x509_cert_url": "https://www.kindreg.invalid/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.kindreg.invalid/robot/v1/metadata/x509/{email}",
        "universe_domain": "kindreg.invalid",
    }
    return json.dumps(document, indent=2) + "\n"


def key_digest(document: str) -> str:
    """What the token service keeps of a key document: the SHA-256 of all of its content, as
    canonical JSON, so that layout (a shell's ``$(cat key.json)`` drops the last newline) does not
    count and every other character does. Not JSON: a digest nothing issued has."""
    try:
        canonical = json.dumps(json.loads(document), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = "not json:" + document
    return hashlib.sha256(canonical.encode()).hexdigest()


def key_account(document: str) -> str:
    """The account a key document names (its ``client_email``); :class:`TokenError` if it names none."""
    try:
        data = json.loads(document)
    except ValueError:
        raise TokenError("the _json_key password is not a JSON key document") from None
    email = data.get("client_email") if isinstance(data, dict) else None
    if not isinstance(email, str) or not email:
        raise TokenError("the _json_key document has no client_email")
    return email
