"""The tunnel's request-head check and rewrite: pure logic on bytes."""

from __future__ import annotations

import base64

import pytest

from pytest_kindreg import Credentials
from pytest_kindreg.tunnel import BadRequest, request_scope, rewrite_request_head, unauthorized_response

SECRET = Credentials("kindreg-tunnel", "s3cret-token")


def REGISTRY(request_line: bytes) -> str:
    return "Basic " + Credentials("user", "pa:ss").basic_auth()


def NONE(request_line: bytes) -> None:
    return None


def _basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def _head(*headers: bytes, line: bytes = b"PATCH /v2/app/blobs/uploads/x HTTP/1.1") -> bytes:
    return b"\r\n".join([line, b"Host: 127.0.0.1:5001", *headers]) + b"\r\n\r\n"


def _headers(head: bytes) -> list[bytes]:
    return head.split(b"\r\n")[1:-2]


def test_the_tunnel_secret_is_replaced_by_the_registry_credentials() -> None:
    head = _head(
        b"authorization: " + _basic("kindreg-tunnel", "s3cret-token"),
        b"Transfer-Encoding: chunked",
        b"Connection: keep-alive",
        b"Keep-Alive: timeout=5",
    )
    forwarded = rewrite_request_head(head, SECRET, REGISTRY)
    assert forwarded is not None
    assert forwarded.startswith(b"PATCH /v2/app/blobs/uploads/x HTTP/1.1\r\n")
    assert forwarded.endswith(b"\r\n\r\n")
    assert _headers(forwarded) == [
        b"Host: 127.0.0.1:5001",
        b"Transfer-Encoding: chunked",
        b"Authorization: " + _basic("user", "pa:ss"),
        b"Connection: close",  # one request per connection: each one is checked
    ]
    assert b"s3cret-token" not in forwarded
    assert base64.b64encode(b"kindreg-tunnel:s3cret-token") not in forwarded


def test_without_registry_credentials_no_authorization_is_forwarded() -> None:
    forwarded = rewrite_request_head(_head(b"Authorization: " + _basic("kindreg-tunnel", "s3cret-token")), SECRET, NONE)
    assert forwarded is not None
    assert _headers(forwarded) == [b"Host: 127.0.0.1:5001", b"Connection: close"]


@pytest.mark.parametrize(
    "headers",
    [
        (),
        (b"Authorization: " + _basic("kindreg-tunnel", "wrong"),),
        (b"Authorization: " + _basic("user", "pa:ss"),),  # the registry's password is not the tunnel's
        (b"Authorization: Bearer s3cret-token",),
        (b"Authorization: Basic !!!not-base64",),
        (
            b"Authorization: " + _basic("kindreg-tunnel", "s3cret-token"),
            b"Authorization: " + _basic("kindreg-tunnel", "s3cret-token"),
        ),
    ],
    ids=["none", "wrong-secret", "registry-password", "bearer", "bad-base64", "twice"],
)
def test_requests_without_exactly_the_secret_are_refused(headers: tuple[bytes, ...]) -> None:
    assert rewrite_request_head(_head(*headers), SECRET, REGISTRY) is None


@pytest.mark.parametrize(
    "head",
    [
        b"\x16\x03\x01garbage\r\n\r\n",
        b"GET /v2/\r\nHost: x\r\n\r\n",
        _head(b" folded-continuation"),
        _head(b"NoColonHere"),
        _head(b"Authorization : " + _basic("kindreg-tunnel", "s3cret-token")),
    ],
    ids=["binary", "http-0.9", "folded", "no-colon", "space-before-colon"],
)
def test_malformed_heads_are_bad_requests(head: bytes) -> None:
    with pytest.raises(BadRequest):
        rewrite_request_head(head, SECRET, REGISTRY)


def test_the_refusal_is_a_basic_challenge_with_no_registry_data() -> None:
    response = unauthorized_response()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b'Www-Authenticate: Basic realm="kindreg-tunnel"' in head.split(b"\r\n")
    assert f"Content-Length: {len(body)}".encode() in head.split(b"\r\n")
    assert b"UNAUTHORIZED" in body
    assert unauthorized_response(head_only=True) == head + b"\r\n\r\n"


@pytest.mark.parametrize(
    ("line", "scope"),
    [
        (b"HEAD /v2/team/app/blobs/sha256:ab HTTP/1.1", "repository:team/app:pull"),
        (b"GET /v2/app/manifests/1.0 HTTP/1.1", "repository:app:pull"),
        (b"POST /v2/team/app/blobs/uploads/ HTTP/1.1", "repository:team/app:pull,push"),
        (b"PATCH /v2/a/b/c/blobs/uploads/uuid?_state=x HTTP/1.1", "repository:a/b/c:pull,push"),
        (b"PUT /v2/app/manifests/1.0 HTTP/1.1", "repository:app:pull,push"),
        (b"GET /v2/ HTTP/1.1", None),
        (b"GET /v2/_catalog HTTP/1.1", None),
    ],
)
def test_request_scope_is_what_a_token_must_grant(line: bytes, scope: str | None) -> None:
    assert request_scope(line) == scope


def test_the_upstream_authorization_is_asked_per_request_line() -> None:
    seen: list[bytes] = []

    def bearer(request_line: bytes) -> str:
        seen.append(request_line)
        return "Bearer " + str(request_scope(request_line))

    head = _head(b"Authorization: " + _basic("kindreg-tunnel", "s3cret-token"))
    forwarded = rewrite_request_head(head, SECRET, bearer)
    assert forwarded is not None
    assert b"Authorization: Bearer repository:app:pull,push" in _headers(forwarded)
    assert seen == [b"PATCH /v2/app/blobs/uploads/x HTTP/1.1"]
