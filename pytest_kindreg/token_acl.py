"""Who may do what in a token-auth registry: scopes as clients ask for them, and an ACL.

Policy as data, after cesanta/docker_auth: an ordered list of rules, each matching an account and
a resource name with glob patterns and granting actions; the first rule that matches decides, and
anything no rule matches is denied. A denied scope is not an error: the token simply leaves it out
(distribution's token spec), and the registry then answers ``insufficient_scope``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PULL, PUSH = "pull", "push"


@dataclass(frozen=True)
class Scope:
    """One requested scope, ``type[(class)]:name:action,...`` (e.g. ``repository:ci/app:pull,push``)."""

    type: str
    name: str
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Scope:
        # The name never contains ':' (repository names cannot); the type may carry a class.
        kind, sep, rest = text.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not sep or not sep2 or not kind or not name:
            raise ValueError(f"not a scope: {text!r} (expected type:name:actions)")
        kind = kind.split("(", 1)[0]  # repository(plugin) -> repository
        return cls(kind, name, tuple(a for a in actions.split(",") if a))

    def access_entry(self, actions: Iterable[str]) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "actions": sorted(set(actions))}


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """Scopes from query or form values: repeated parameters, or several separated by spaces."""
    scopes: list[Scope] = []
    for value in values:
        scopes.extend(Scope.parse(part) for part in value.split() if part)
    return scopes


@dataclass(frozen=True)
class AclRule:
    """Grant ``actions`` to accounts matching ``account`` on resources of ``type`` matching ``name``.

    Patterns are shell globs (``fnmatch``, case-sensitive): ``*`` also matches ``/``, so
    ``team/*`` covers ``team/app`` and ``team/sub/app``.
    """

    account: str
    name: str
    actions: tuple[str, ...]
    type: str = "repository"

    def matches(self, account: str, scope: Scope) -> bool:
        return (
            scope.type == self.type
            and fnmatch.fnmatchcase(account, self.account)
            and fnmatch.fnmatchcase(scope.name, self.name)
        )

    def to_dict(self) -> dict[str, Any]:
        return {"account": self.account, "name": self.name, "actions": list(self.actions), "type": self.type}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AclRule:
        return cls(str(data["account"]), str(data["name"]), tuple(data["actions"]), str(data.get("type", "repository")))


@dataclass(frozen=True)
class Acl:
    rules: tuple[AclRule, ...] = ()

    def granted(self, account: str, scope: Scope) -> set[str]:
        """The requested actions of ``scope`` that ``account`` may take (first matching rule)."""
        for rule in self.rules:
            if rule.matches(account, scope):
                allowed = set(rule.actions)
                return set(scope.actions) if "*" in allowed else set(scope.actions) & allowed
        return set()

    def access(self, account: str, scopes: Sequence[Scope]) -> list[dict[str, Any]]:
        """The ``access`` claim for ``scopes``: granted entries only, one per resource (merged)."""
        merged: dict[tuple[str, str], set[str]] = {}
        for scope in scopes:
            actions = self.granted(account, scope)
            if actions:
                merged.setdefault((scope.type, scope.name), set()).update(actions)
        return [{"type": kind, "name": name, "actions": sorted(actions)} for (kind, name), actions in merged.items()]

    def to_list(self) -> list[dict[str, Any]]:
        return [rule.to_dict() for rule in self.rules]

    @classmethod
    def from_list(cls, data: Iterable[Mapping[str, Any]]) -> Acl:
        return cls(tuple(AclRule.from_dict(item) for item in data))


def registry_acl(push_account: str, read_scopes: Mapping[str, Sequence[str]]) -> Acl:
    """The ACL of a plugin registry: the host's account may pull and push everything (and list
    the catalog); each read-only account may pull the repositories its patterns name."""
    rules = [
        AclRule(push_account, "*", (PULL, PUSH)),
        AclRule(push_account, "catalog", ("*",), type="registry"),
    ]
    for account, patterns in read_scopes.items():
        rules.extend(AclRule(account, pattern, (PULL,)) for pattern in patterns)
    return Acl(tuple(rules))
