"""Scopes as clients send them, and the ACL's first-match, default-deny decisions."""

from __future__ import annotations

import pytest

from pytest_kindreg.token_acl import Acl, AclRule, Scope, parse_scopes, registry_acl


def test_scope_parsing_takes_what_docker_and_containerd_send() -> None:
    assert Scope.parse("repository:ci/app:pull,push") == Scope("repository", "ci/app", ("pull", "push"))
    assert Scope.parse("repository(plugin):ci/app:pull") == Scope("repository", "ci/app", ("pull",))
    assert Scope.parse("registry:catalog:*") == Scope("registry", "catalog", ("*",))
    # Repeated parameters (GET) and space-separated ones (containerd's POST form) alike.
    scopes = parse_scopes(["repository:a:pull repository:b:pull,push", "repository:c:pull"])
    assert [s.name for s in scopes] == ["a", "b", "c"]


@pytest.mark.parametrize("text", ["repository", "repository:app", ":app:pull", "repository::pull"])
def test_malformed_scopes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a scope"):
        Scope.parse(text)


def test_first_matching_rule_decides_and_anything_else_is_denied() -> None:
    acl = Acl(
        (
            AclRule("ci-bot", "secret/*", ()),  # matches first: nothing, although a later rule grants all
            AclRule("ci-bot", "*", ("pull", "push")),
            AclRule("*", "public/*", ("pull",)),
        )
    )
    assert acl.granted("ci-bot", Scope.parse("repository:secret/app:pull")) == set()
    assert acl.granted("ci-bot", Scope.parse("repository:team/app:pull,push")) == {"pull", "push"}
    assert acl.granted("reader", Scope.parse("repository:public/app:pull,push")) == {"pull"}
    assert acl.granted("reader", Scope.parse("repository:team/app:pull")) == set()
    # The type must match too: a repository rule does not open the catalog.
    assert acl.granted("ci-bot", Scope.parse("registry:catalog:*")) == set()


def test_access_claim_keeps_granted_scopes_only_and_merges_duplicates() -> None:
    acl = registry_acl("pusher", {"reader": ["apps/*"]})
    access = acl.access(
        "reader",
        parse_scopes(["repository:apps/web:pull,push", "repository:apps/web:pull", "repository:other/x:pull"]),
    )
    assert access == [{"type": "repository", "name": "apps/web", "actions": ["pull"]}]
    assert acl.access("pusher", parse_scopes(["registry:catalog:*"])) == [
        {"type": "registry", "name": "catalog", "actions": ["*"]}
    ]


def test_glob_star_crosses_slashes() -> None:
    acl = registry_acl("pusher", {"reader": ["team/*"]})
    assert acl.granted("reader", Scope.parse("repository:team/sub/app:pull")) == {"pull"}
    assert acl.granted("reader", Scope.parse("repository:teamx/app:pull")) == set()


def test_acl_round_trips_through_its_file_form() -> None:
    acl = registry_acl("pusher", {"reader": ["a/*", "b"]})
    assert Acl.from_list(acl.to_list()) == acl
