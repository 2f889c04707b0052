"""pytest-xdist: per-worker registries without collisions, and one resource shared by every worker
(the mechanism the kind environment uses), checked with real registry containers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("xdist")
pytestmark = pytest.mark.docker


def test_each_worker_gets_a_working_registry(pytester: pytest.Pytester, kindreg_docker: Any, tmp_path: Path) -> None:
    out = tmp_path / "hosts"
    out.mkdir()
    pytester.makepyfile(
        f"""
        import os, pathlib, pytest

        @pytest.mark.parametrize("n", range(4))
        def test_push(private_registry, kindreg_test_image, n):
            private_registry.push(kindreg_test_image, repository="w/app", tag=str(n))
            assert str(n) in private_registry.tags("w/app")
            worker = os.environ["PYTEST_XDIST_WORKER"]
            pathlib.Path({str(out)!r}, worker).write_text(private_registry.name + " " + private_registry.host)
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "--kindreg-require", "docker", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    seen = {p.name: p.read_text() for p in out.iterdir()}
    assert len(seen) == 2
    assert len(set(seen.values())) == 2  # distinct names and ports


SHARED_CONFTEST = """
import os
import pathlib

import pytest

from pytest_kindreg import PrivateRegistry, RunIdentity
from pytest_kindreg.sharing import SharedResource, Sharing


@pytest.fixture(scope="session")
def shared_registry(tmp_path_factory, kindreg_docker):
    identity = RunIdentity(pid=os.getppid())
    shared = SharedResource(
        tmp_path_factory.getbasetemp().parent / "kindreg-shared",
        "registry",
        Sharing(
            create=lambda: PrivateRegistry(client_auth=True, identity=identity, role="shared").start(),
            export=PrivateRegistry.export_state,
            attach=PrivateRegistry.attach,
            close=PrivateRegistry.stop,
            detach=PrivateRegistry.detach,
        ),
    )
    registry = shared.acquire()
    yield registry
    closed = shared.release(registry)
    pathlib.Path(OUT, os.environ["PYTEST_XDIST_WORKER"] + ".closed").write_text(str(closed))
"""


def test_one_resource_shared_by_all_workers_closed_by_the_last(
    pytester: pytest.Pytester, kindreg_docker: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    pytester.makeconftest(f"OUT = {str(out)!r}\n" + SHARED_CONFTEST)
    pytester.makepyfile(
        f"""
        import os, pathlib, time, pytest

        @pytest.mark.parametrize("n", range(6))
        def test_push(shared_registry, kindreg_test_image, n):
            # mTLS: every worker pushes through its own client-certificate tunnel.
            shared_registry.push(kindreg_test_image, repository="shared/app", tag=str(n))
            assert str(n) in shared_registry.tags("shared/app")
            time.sleep(0.3)
            worker = os.environ["PYTEST_XDIST_WORKER"]
            pathlib.Path({str(out)!r}, worker + "-" + str(n)).write_text(shared_registry.name)
        """
    )
    result = pytester.runpytest_subprocess("-n", "3", "--kindreg-require", "docker", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
    names = {p.read_text() for p in out.iterdir() if not p.name.endswith(".closed")}
    assert len(names) == 1  # one registry for every worker
    closed = sorted(p.read_text() for p in out.glob("*.closed"))
    assert closed.count("True") == 1  # exactly one worker, the last, closed it
    (name,) = names
    assert kindreg_docker.containers.list(all=True, filters={"name": name}, ignore_removed=True) == []
