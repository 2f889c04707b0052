"""One registry's identities: the record every process reads, and what is rendered from it."""

from __future__ import annotations

import pytest

from pytest_kindreg.credentials import Credentials
from pytest_kindreg.registry_identities import RegistryIdentities
from pytest_kindreg.token_acl import Scope


def test_two_identities_with_the_push_one_separate() -> None:
    ids = RegistryIdentities.random(["apps/*"])
    assert ids.push.username != ids.pull.username
    assert ids.push.username.startswith("kindreg-push-")
    acl = ids.acl()
    assert acl.granted(ids.push.username, Scope.parse("repository:any/thing:pull,push")) == {"pull", "push"}
    assert acl.granted(ids.pull.username, Scope.parse("repository:apps/x:pull,push")) == {"pull"}
    assert acl.granted(ids.pull.username, Scope.parse("repository:any/thing:pull")) == set()


def test_extra_identities_have_their_own_scope_and_can_be_removed() -> None:
    ids = RegistryIdentities.random()
    sa = Credentials.random("kindreg-sa")
    ids = ids.with_extra(sa, ["payments/*"])
    assert [c.username for c in ids.htpasswd_users()] == [ids.push.username, ids.pull.username, sa.username]
    assert ids.acl().granted(sa.username, Scope.parse("repository:payments/api:pull")) == {"pull"}
    assert ids.acl().granted(sa.username, Scope.parse("repository:web/api:pull")) == set()
    assert ids.without_extra([sa.username]).extra == {}
    with pytest.raises(ValueError, match="already"):
        ids.with_extra(ids.push, ["*"])


def test_record_round_trips_and_keeps_passwords_out_of_repr() -> None:
    ids = RegistryIdentities.random(["a/*"]).with_extra(Credentials.random(), ["b"]).with_service_account_key("d", "e")
    assert RegistryIdentities.from_json(ids.to_json()) == ids
    assert ids.pull.password not in repr(ids)
