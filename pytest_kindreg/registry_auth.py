"""The plugin's own registry client auth: what a registry client does with a ``401``.

``Basic`` challenge (htpasswd mode): resend with Basic credentials. ``Bearer`` challenge (token
mode): trade the credentials at the challenge's realm for a token of the challenged scope, then
resend with it — the flow every client of a production registry (GHCR, Harbor, GitLab, …) follows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from pytest_kindreg.credentials import Credentials

_PARAM = re.compile(r'(\w+)="([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…",scope="…"`` → (``bearer``, {realm, service, scope, error…})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_PARAM.findall(rest))


class TokenFetchError(requests.RequestException):
    """The realm refused the credentials; the message carries its status line and error."""


def fetch_token(
    realm: str,
    credentials: Credentials | None,
    service: str | None,
    scopes: list[str],
    *,
    timeout: float = 10.0,
    **request_kwargs: Any,
) -> str:
    """GET a registry token at ``realm`` (as Docker does), with Basic credentials if given."""
    params: list[tuple[str, str]] = [("service", service)] if service else []
    params += [("scope", scope) for scope in scopes]
    auth = HTTPBasicAuth(credentials.username, credentials.password) if credentials else None
    response = requests.get(realm, params=params, auth=auth, timeout=timeout, **request_kwargs)
    if response.status_code != 200:
        raise TokenFetchError(f"token request to {realm} answered {response.status_code} {response.reason}")
    body = response.json()
    return str(body.get("token") or body["access_token"])


class RegistryAuth(AuthBase):
    """requests auth for a registry in either mode: answers the 401's challenge once per request."""

    def __init__(
        self,
        credentials: Credentials | None,
        realm_url: Callable[[str], str] = lambda realm: realm,
        **realm_kwargs: Any,
    ) -> None:
        self.credentials = credentials
        self.realm_url = realm_url  # where this process reaches the realm (Docker Desktop: localhost)
        self.realm_kwargs = realm_kwargs

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.register_hook("response", self._on_response)  # type: ignore[no-untyped-call]
        return request

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        if response.status_code != 401 or getattr(response.request, "_kindreg_retried", False):
            return response
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        request = response.request.copy()
        if scheme == "basic" and self.credentials is not None:
            HTTPBasicAuth(self.credentials.username, self.credentials.password)(request)
        elif scheme == "bearer" and "realm" in params:
            scopes = params["scope"].split() if params.get("scope") else []
            try:
                token = fetch_token(
                    self.realm_url(params["realm"]),
                    self.credentials,
                    params.get("service"),
                    scopes,
                    **self.realm_kwargs,
                )
            except TokenFetchError:
                return response  # refused: the caller sees the registry's own 401
            request.headers["Authorization"] = f"Bearer {token}"
        else:
            return response
        request._kindreg_retried = True  # type: ignore[attr-defined]
        response.content  # noqa: B018 - release the connection before reusing it
        response.raw.release_conn()
        retried = response.connection.send(request, **kwargs)
        retried.history.append(response)
        retried.request = request
        return retried
