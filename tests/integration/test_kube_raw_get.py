"""``raw_get`` (used for ``/readyz``) through the installed kubernetes client, against a real HTTP
server: a registry container (no cluster is needed to exercise the client's request path)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from pytest_kindreg import ClusterError, PrivateRegistry
from pytest_kindreg.cluster import raw_get

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("no_leftovers")]


def test_raw_get_through_the_kubernetes_client(kindreg_docker: Any) -> None:
    with PrivateRegistry(htpasswd=False, docker=kindreg_docker) as registry:
        configuration = client.Configuration()
        configuration.host = registry.url
        api = client.ApiClient(configuration)
        try:
            assert raw_get(api, "/v2/").strip() == "{}"
            with pytest.raises(Exception, match="404|Not Found"):
                raw_get(api, "/v2/absent/manifests/1")
        finally:
            api.close()


def test_raw_get_error_names_the_path(kindreg_docker: Any) -> None:
    with PrivateRegistry(docker=kindreg_docker) as registry:  # htpasswd: anonymous is 401
        configuration = client.Configuration()
        configuration.host = registry.url
        api = client.ApiClient(configuration)
        try:
            with pytest.raises((ClusterError, client.exceptions.ApiException), match="401"):
                raw_get(api, "/v2/")
        finally:
            api.close()
