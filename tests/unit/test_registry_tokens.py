"""Registry tokens, access tokens and service-account keys, and the token service's decisions
(without HTTP): pure logic over real keys, bcrypt hashes and JWTs."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography import x509

from pytest_kindreg.credentials import Credentials
from pytest_kindreg.registry_identities import RegistryIdentities
from pytest_kindreg.registry_tokens import (
    REGISTRY_LEEWAY,
    TokenExpiredError,
    TokenSigner,
    access_token_audience,
    issue_access_token,
    key_account,
    key_digest,
    registry_token_claims,
    service_account_key_document,
)
from pytest_kindreg.token_service import TokenAuthority, TokenServiceConfig, Unauthorized

SERVICE, ISSUER = "kindreg-test-registry", "pytest-kindreg token service"


@pytest.fixture(scope="module")
def signer() -> TokenSigner:
    return TokenSigner.create()


def test_registry_token_header_and_claims_are_what_distribution_accepts(signer: TokenSigner) -> None:
    claims = registry_token_claims(
        issuer=ISSUER, service=SERVICE, subject="u", access=[{"type": "repository", "name": "a", "actions": ["pull"]}]
    )
    token = signer.sign(claims)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256"
    # x5c: the signer's certificate as standard base64 DER, which chains to the bundle's CA.
    leaf = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0], validate=True))
    assert leaf == x509.load_pem_x509_certificate(signer.cert_pem)
    assert leaf.issuer == x509.load_pem_x509_certificate(signer.ca_pem).subject
    decoded = jwt.decode(token, options={"verify_signature": False})
    assert decoded["aud"] == SERVICE  # a string: distribution 2.8 refuses a list
    assert decoded["iss"] == ISSUER
    assert decoded["exp"] > time.time()


def test_a_registry_token_never_outlives_the_access_token_it_was_traded_for() -> None:
    now = 1_000_000.0
    claims = registry_token_claims(issuer=ISSUER, service=SERVICE, subject="u", access=[], now=now, not_after=now + 90)
    # distribution accepts exp + 60 s: the token is dead when the access token is.
    assert claims["exp"] + REGISTRY_LEEWAY == now + 90
    long_lived = registry_token_claims(issuer=ISSUER, service=SERVICE, subject="u", access=[], now=now, ttl=300)
    assert long_lived["exp"] == now + 300


def test_access_tokens_verify_until_they_expire(signer: TokenSigner) -> None:
    token = issue_access_token(signer, issuer=ISSUER, service=SERVICE, subject="s", ttl=60)
    assert token.username == "oauth2accesstoken"
    claims = signer.verify(token.password, audience=access_token_audience(SERVICE), issuer=ISSUER)
    assert claims["exp"] - claims["iat"] == 60
    # Not a registry token: its audience is not the registry's service.
    assert jwt.decode(token.password, options={"verify_signature": False})["aud"] != SERVICE
    expired = issue_access_token(signer, issuer=ISSUER, service=SERVICE, subject="s", ttl=0.001)
    time.sleep(1.1)
    with pytest.raises(TokenExpiredError, match="expired"):
        signer.verify(expired.password, audience=access_token_audience(SERVICE), issuer=ISSUER)
    with pytest.raises(ValueError, match="ttl"):
        issue_access_token(signer, issuer=ISSUER, service=SERVICE, subject="s", ttl=0)


def test_service_account_key_is_a_json_key_whose_first_72_bytes_are_boilerplate() -> None:
    one = service_account_key_document("proj", "ci")
    two = service_account_key_document("proj", "ci")
    assert len(one) > 2000
    assert json.loads(one)["type"] == "service_account"
    assert key_account(one) == "ci@proj.iam.kindreg.invalid"
    # What bcrypt would compare of two different keys is the same: why the whole document is checked.
    assert one.encode()[:72] == two.encode()[:72]
    assert key_digest(one) != key_digest(two)
    # `--docker-password="$(cat key.json)"` drops the last newline: layout does not count...
    assert key_digest(one.rstrip("\n")) == key_digest(one)
    # ...every character of the content does, wherever it is.
    position = one.index("PRIVATE KEY-----") + 40
    changed = one[:position] + ("A" if one[position] != "A" else "B") + one[position + 1 :]
    assert key_digest(changed) != key_digest(one)
    assert key_digest("not json") != key_digest("not json ")


@pytest.fixture
def authority(tmp_path: Path, signer: TokenSigner) -> tuple[TokenAuthority, RegistryIdentities, Path]:
    identities = RegistryIdentities.random(["apps/*"])
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("".join(c.htpasswd_line() + "\n" for c in identities.htpasswd_users()))
    signer.write(tmp_path / "token")
    config = tmp_path / "token" / "config.json"
    TokenServiceConfig(ISSUER, SERVICE, str(tmp_path / "token"), str(htpasswd), identities.acl().to_list()).write(
        config
    )
    return TokenAuthority(config), identities, config


def test_htpasswd_users_are_checked_with_bcrypt(authority: tuple[TokenAuthority, RegistryIdentities, Path]) -> None:
    service, identities, _ = authority
    assert service.authenticate(identities.push.username, identities.push.password).account == identities.push.username
    with pytest.raises(Unauthorized, match="invalid credentials"):
        service.authenticate(identities.pull.username, identities.pull.password + "x")
    with pytest.raises(Unauthorized, match="authentication required"):
        service.authenticate(None, None)


def test_the_cluster_identity_gets_pull_on_its_scope_only(
    authority: tuple[TokenAuthority, RegistryIdentities, Path],
) -> None:
    service, identities, _ = authority
    who = service.authenticate(identities.pull.username, identities.pull.password)
    response = service.token_response(who, SERVICE, ["repository:apps/web:pull,push", "repository:other/x:pull"])
    access = jwt.decode(response["token"], options={"verify_signature": False})["access"]
    assert access == [{"type": "repository", "name": "apps/web", "actions": ["pull"]}]
    assert response["access_token"] == response["token"]
    assert response["expires_in"] == 300
    with pytest.raises(ValueError, match="unknown service"):
        service.token_response(who, "another-registry", [])


def test_access_token_and_key_identities_follow_the_config_file(
    authority: tuple[TokenAuthority, RegistryIdentities, Path], signer: TokenSigner
) -> None:
    service, identities, config = authority
    token = issue_access_token(signer, issuer=ISSUER, service=SERVICE, subject="s", ttl=30)
    who = service.authenticate(token.username, token.password)
    assert who.not_after is not None
    assert service.token_response(who, SERVICE, [])["expires_in"] <= 30

    key = service_account_key_document(SERVICE, "ci")
    with pytest.raises(Unauthorized, match="unknown service account key"):
        service.authenticate("_json_key", key)
    # The registry adds the key to the config; the service re-reads the file when it changes.
    updated = identities.with_service_account_key(key_digest(key), key_account(key))
    time.sleep(0.01)
    TokenServiceConfig(
        ISSUER,
        SERVICE,
        str(config.parent),
        str(config.parent.parent / "htpasswd"),
        updated.acl().to_list(),
        dict(updated.service_account_keys),
    ).write(config)
    assert service.authenticate("_json_key", key).account == "ci@" + SERVICE + ".iam.kindreg.invalid"
    changed = key[:100] + ("x" if key[100] != "x" else "y") + key[101:]  # one byte past bcrypt's 72
    with pytest.raises(Unauthorized):
        service.authenticate("_json_key", changed)
    with pytest.raises(Unauthorized, match="invalid access token"):
        service.authenticate("oauth2accesstoken", Credentials.random().password)
