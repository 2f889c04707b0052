"""The users of one registry and what each may read: the host's push identity, the cluster's
read-only identity, further read-only identities (one per granted ServiceAccount, say), and the
service-account keys issued for it.

Kept in one record (``credentials.json``, 0600) so that every process sharing the registry
(pytest-xdist workers) sees rotations and grants; the registry's htpasswd file and the token
service's ACL are rendered from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pytest_kindreg.credentials import Credentials
from pytest_kindreg.registry_tokens import ACCESS_TOKEN_USERNAME
from pytest_kindreg.token_acl import Acl, registry_acl


@dataclass(frozen=True)
class ReadOnlyIdentity:
    credentials: Credentials
    pull_scope: tuple[str, ...]


@dataclass(frozen=True)
class RegistryIdentities:
    push: Credentials
    pull: Credentials
    pull_scope: tuple[str, ...] = ("*",)
    extra: Mapping[str, ReadOnlyIdentity] = field(default_factory=dict)  # username -> identity
    service_account_keys: Mapping[str, str] = field(default_factory=dict)  # key digest -> account

    @classmethod
    def random(cls, pull_scope: Sequence[str] = ("*",), pull: Credentials | None = None) -> RegistryIdentities:
        return cls(
            push=Credentials.random("kindreg-push"), pull=pull or Credentials.random(), pull_scope=tuple(pull_scope)
        )

    def with_pull(self, pull: Credentials) -> RegistryIdentities:
        if pull.username in self.extra or pull.username == self.push.username:
            raise ValueError(f"username {pull.username!r} is already another identity of this registry")
        return replace(self, pull=pull)

    def with_extra(self, credentials: Credentials, pull_scope: Sequence[str]) -> RegistryIdentities:
        if credentials.username in (self.push.username, self.pull.username):
            raise ValueError(f"username {credentials.username!r} is already an identity of this registry")
        extra = dict(self.extra)
        extra[credentials.username] = ReadOnlyIdentity(credentials, tuple(pull_scope))
        return replace(self, extra=extra)

    def without_extra(self, usernames: Iterable[str]) -> RegistryIdentities:
        gone = set(usernames)
        return replace(self, extra={name: ident for name, ident in self.extra.items() if name not in gone})

    def with_service_account_key(self, digest: str, account: str) -> RegistryIdentities:
        keys = dict(self.service_account_keys)
        keys[digest] = account
        return replace(self, service_account_keys=keys)

    # -- what is rendered from it ------------------------------------------------------------
    def htpasswd_users(self) -> list[Credentials]:
        return [self.push, self.pull, *(ident.credentials for ident in self.extra.values())]

    def acl(self, cluster_accounts: Sequence[str] = ()) -> Acl:
        """Push identity: everything; every other identity: pull on its own scope. Access tokens,
        service-account keys and ``cluster_accounts`` (a client certificate's) stand for the
        cluster's identity and get its scope."""
        read: dict[str, Sequence[str]] = {self.pull.username: self.pull_scope, ACCESS_TOKEN_USERNAME: self.pull_scope}
        read.update((account, self.pull_scope) for account in cluster_accounts)
        read.update((account, self.pull_scope) for account in self.service_account_keys.values())
        read.update((name, ident.pull_scope) for name, ident in self.extra.items())
        return registry_acl(self.push.username, read)

    # -- the record ------------------------------------------------------------------------
    def to_json(self) -> str:
        def creds(c: Credentials) -> dict[str, str]:
            return {"username": c.username, "password": c.password}

        return json.dumps(
            {
                "push": creds(self.push),
                "pull": creds(self.pull),
                "pull_scope": list(self.pull_scope),
                "extra": {n: {**creds(i.credentials), "pull_scope": list(i.pull_scope)} for n, i in self.extra.items()},
                "service_account_keys": dict(self.service_account_keys),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> RegistryIdentities:
        data: dict[str, Any] = json.loads(text)

        def creds(d: Mapping[str, Any]) -> Credentials:
            return Credentials(str(d["username"]), str(d["password"]))

        return cls(
            push=creds(data["push"]),
            pull=creds(data["pull"]),
            pull_scope=tuple(data.get("pull_scope") or ("*",)),
            extra={
                name: ReadOnlyIdentity(creds(item), tuple(item.get("pull_scope") or ("*",)))
                for name, item in (data.get("extra") or {}).items()
            },
            service_account_keys=dict(data.get("service_account_keys") or {}),
        )
