"""Cleanup under stress, against the real Docker engine and real pytest subprocesses.

* 20 consecutive runs of a small suite: some complete, some get SIGINT or SIGTERM (which the
  plugin turns into an interrupt, so session teardown still runs), one gets SIGKILL (nothing of
  the run can clean up: the next run's ``kindreg_docker`` fixture must reap what it left).
  Afterwards no container, network, temp dir or key file of any of those runs remains.
* A missing registry image errors with one actionable message.
* ``kindreg cleanup --min-age 0`` next to a live run leaves that run alone.
* Only temp dirs whose ownership record proves a dead run made them are reaped: the user's
  look-alikes (names, symlinks, plain files, old directories) survive a plugin run and
  ``kindreg cleanup``.

Each run is ``python -m pytest <suite> -p no:cacheprovider`` with its own ``KINDREG_STATE_DIR`` and ``TMPDIR``.
Every wait has a deadline, and every child is killed in ``finally``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_kindreg.docker_engine import LABEL_PID, LABEL_RUN

pytestmark = pytest.mark.docker

RUN_TIMEOUT = 30.0  # seconds one child run (or one wait for it) may take at most
POLL = 0.05
MARKS_ENV = "KINDREG_ROBUSTNESS_MARKS"
RELEASE_ENV = "KINDREG_ROBUSTNESS_RELEASE"

SUITE_CONFTEST = '''
import pytest

from pytest_kindreg import PrivateRegistry


@pytest.fixture(scope="session")
def mtls_registry(kindreg_settings, kindreg_docker, kindreg_identity):
    """A second registry of the run, with TLS and client certificates: private KEY files on disk."""
    with PrivateRegistry(
        image=kindreg_settings.registry_image,
        identity=kindreg_identity,
        role="mtls",
        client_auth=True,
        docker=kindreg_docker,
    ) as registry:
        yield registry
'''

SUITE_TEST = f'''
import json
import os
import time
from pathlib import Path


def test_hold(private_registry, mtls_registry, kindreg_identity):
    assert private_registry.get("/v2/").status_code == 200
    assert mtls_registry.get("/v2/").status_code == 200
    keys = sorted(str(p) for p in mtls_registry.workdir.rglob("*.key"))
    assert len(keys) == 2, keys
    record = {{
        "run_id": kindreg_identity.run_id,
        "workdirs": [str(private_registry.workdir), str(mtls_registry.workdir)],
        "keys": keys,
    }}
    marks = Path(os.environ["{MARKS_ENV}"])
    tmp = marks / f".{{os.getpid()}}.tmp"
    tmp.write_text(json.dumps(record))
    tmp.replace(marks / f"{{os.getpid()}}.json")  # atomic: the parent never reads half a record
    release = os.environ.get("{RELEASE_ENV}")
    if release:
        deadline = time.monotonic() + {RUN_TIMEOUT}
        while not os.path.exists(release):
            assert time.monotonic() < deadline, "never released"
            time.sleep(0.05)
    else:
        time.sleep(0.1)
    # Nothing removed the registries or their files under the running test.
    assert private_registry.get("/v2/").status_code == 200
    assert mtls_registry.get("/v2/").status_code == 200
    assert all(os.path.exists(key) for key in keys)
'''


@dataclass
class Run:
    """One child pytest run and what was seen of it while it ran."""

    index: int
    action: str  # "complete", or the signal sent: "SIGINT", "SIGTERM", "SIGKILL"
    stage: str  # when the signal is sent: "setup" (first container exists) or "test" (test body runs)
    proc: subprocess.Popen[bytes]
    output: Path
    started: float = field(default_factory=time.monotonic)
    run_ids: set[str] = field(default_factory=set)
    containers: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)
    workdirs: set[str] = field(default_factory=set)
    returncode: int | None = None
    seconds: float = 0.0
    left_at_exit: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.output.read_text(errors="replace")[-3000:] if self.output.exists() else "(no output)"

    def describe(self) -> str:
        signal_text = "" if self.action == "complete" else f" at {self.stage}"
        return (
            f"run {self.index} ({self.action}{signal_text}) pid {self.pid} run ids {sorted(self.run_ids)} "
            f"rc {self.returncode} {self.seconds:.1f}s"
        )


def _wait_until(predicate: Callable[[], bool], what: str, timeout: float = RUN_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL)


def _restore_default_signals() -> None:
    # A parent started with SIGINT/SIGTERM ignored (e.g. a background job) passes that on
    # through exec; the child must see the signals as a user or CI would send them.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _child_env(tmp: Path, release: Path | None) -> dict[str, str]:
    """The environment of a child run: its own state dir and $TMPDIR under the test's ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["KINDREG_STATE_DIR"] = str(tmp / "state")
    env["TMPDIR"] = str(tmp / "tmp")
    env[MARKS_ENV] = str(tmp / "marks")
    env.pop(RELEASE_ENV, None)
    if release is not None:
        env[RELEASE_ENV] = str(release)
    return env


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    directory = tmp_path / "suite"
    directory.mkdir()
    (directory / "pytest.ini").write_text("[pytest]\n")  # the suite's own rootdir and ini
    (directory / "conftest.py").write_text(SUITE_CONFTEST)
    (directory / "test_hold.py").write_text(SUITE_TEST)
    (tmp_path / "marks").mkdir()
    (tmp_path / "tmp").mkdir()  # the children's $TMPDIR
    return directory


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every child started by a test; whatever still runs at the end is killed and waited for."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=RUN_TIMEOUT)


def _start_run(
    children: list[subprocess.Popen[bytes]],
    suite: Path,
    index: int,
    action: str,
    stage: str,
    *,
    release: Path | None,
) -> Run:
    """Start a child run; with ``release``, its test holds until that file exists."""
    tmp = suite.parent
    output = tmp / f"run-{index}.log"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", str(suite), "-p", "no:cacheprovider", "-q", "--kindreg-require", "docker"],
            cwd=tmp,
            env=_child_env(tmp, release),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_restore_default_signals,
        )
    children.append(proc)
    return Run(index, action, stage, proc, output)


def _containers(docker: Any, pid: int) -> dict[str, dict[str, str]]:
    """Name → labels of the containers labelled with ``pid`` (one API call: no race with removals)."""
    listed = docker.api.containers(all=True, filters={"label": f"{LABEL_PID}={pid}"})
    return {c["Names"][0].lstrip("/"): c["Labels"] or {} for c in listed}


def _networks(docker: Any, pid: int) -> set[str]:
    return {n["Name"] for n in docker.api.networks(filters={"label": f"{LABEL_PID}={pid}"})}


def _plugin_tmp(tmp: Path) -> Path:
    """Where the children's plugin keeps its temp dirs: ``$TMPDIR/pytest-kindreg-<uid>`` (README)."""
    return tmp / "tmp" / f"pytest-kindreg-{os.getuid()}"


def _run_dirs(tmp: Path, run_id: str) -> list[Path]:
    return list(_plugin_tmp(tmp).glob(f"kindreg-{run_id}-*"))


def _key_files(tmp: Path, run_id: str) -> set[str]:
    """Key files under the run's temp dirs; os.walk, because a live run removes its dirs while we look."""
    found: set[str] = set()
    for workdir in _run_dirs(tmp, run_id):
        for parent, _dirs, files in os.walk(workdir):  # walk ignores dirs that vanish under it
            found.update(os.path.join(parent, f) for f in files if f.endswith(".key"))
    return found


def _observe(docker: Any, run: Run, marks: Path) -> None:
    """Record the run ids, containers and key files the run has right now."""
    for name, labels in _containers(docker, run.pid).items():
        run.containers.add(name)
        run.run_ids.add(labels[LABEL_RUN])
    mark = marks / f"{run.pid}.json"
    if mark.exists():
        record = json.loads(mark.read_text())
        run.run_ids.add(record["run_id"])
        run.keys.update(record["keys"])
        run.workdirs.update(record["workdirs"])
    for run_id in run.run_ids:
        run.keys.update(_key_files(run.output.parent, run_id))


def _leftovers(docker: Any, runs: list[Run]) -> list[str]:
    """Every container, network, temp dir and key file of ``runs`` that still exists."""
    found: list[str] = []
    for run in runs:
        found += [f"container {name} (run {run.index})" for name in _containers(docker, run.pid)]
        found += [f"network {name} (run {run.index})" for name in _networks(docker, run.pid)]
        for run_id in run.run_ids:
            found += [f"dir {d} (run {run.index})" for d in _run_dirs(run.output.parent, run_id)]
            found += [f"key {k} (run {run.index})" for k in _key_files(run.output.parent, run_id)]
        found += [f"key {k} (run {run.index})" for k in run.keys if os.path.exists(k)]
        found += [f"dir {d} (run {run.index})" for d in run.workdirs if os.path.exists(d)]
    return sorted(set(found))


def _drive(docker: Any, run: Run, marks: Path) -> None:
    """Let the run reach its stage, send its signal, and wait (bounded) for it to end."""
    proc = run.proc
    if run.action != "complete":
        mark = marks / f"{run.pid}.json"

        def reached() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"run {run.index} ended (rc {proc.returncode}) before its signal:\n{run.log()}")
            _observe(docker, run, marks)
            return mark.exists() if run.stage == "test" else bool(run.containers)

        _wait_until(reached, f"run {run.index} to reach {run.stage}")
        proc.send_signal(getattr(signal, run.action))
    deadline = time.monotonic() + RUN_TIMEOUT
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait(timeout=RUN_TIMEOUT)
            raise AssertionError(f"run {run.index} ({run.action}) did not end within {RUN_TIMEOUT:.0f}s:\n{run.log()}")
        _observe(docker, run, marks)
        time.sleep(POLL)
    _observe(docker, run, marks)  # the mark of a quick complete run may only exist now
    run.returncode = proc.returncode
    run.seconds = time.monotonic() - run.started


# The SIGKILL run is followed by a complete one, which must reap it; the last run completes.
SCHEDULE: list[tuple[str, str]] = [
    ("complete", ""),
    ("SIGINT", "setup"),
    ("complete", ""),
    ("SIGTERM", "test"),
    ("SIGINT", "test"),
    ("SIGKILL", "test"),
    ("complete", ""),
    ("SIGTERM", "setup"),
    ("complete", ""),
    ("SIGINT", "test"),
    ("complete", ""),
    ("SIGTERM", "test"),
    ("SIGINT", "setup"),
    ("complete", ""),
    ("SIGINT", "test"),
    ("SIGTERM", "setup"),
    ("complete", ""),
    ("SIGINT", "test"),
    ("SIGTERM", "test"),
    ("complete", ""),
]
EXPECTED_RC = {"complete": 0, "SIGINT": 2, "SIGTERM": 2, "SIGKILL": -signal.SIGKILL}


def test_twenty_runs_interrupted_terminated_killed_leave_nothing(
    kindreg_docker: Any, suite: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    assert len(SCHEDULE) == 20
    assert [a for a, _ in SCHEDULE].count("SIGKILL") == 1
    assert [a for a, _ in SCHEDULE].count("SIGTERM") >= 2
    marks = suite.parent / "marks"
    runs: list[Run] = []
    killed: Run | None = None
    for index, (action, stage) in enumerate(SCHEDULE):
        hold = suite.parent / "never-released" if action != "complete" else None
        run = _start_run(children, suite, index, action, stage, release=hold)
        runs.append(run)
        _drive(kindreg_docker, run, marks)
        assert run.returncode == EXPECTED_RC[action], f"{run.describe()}:\n{run.log()}"
        assert run.run_ids, f"{run.describe()}: no container of the run was ever seen"
        run.left_at_exit = _leftovers(kindreg_docker, [run])

        if action in ("complete", "SIGINT", "SIGTERM"):
            # Teardown ran (SIGTERM is an interrupt too), also when the signal came while a
            # registry container was being created: the run removed everything itself.
            assert not run.left_at_exit, f"{run.describe()} left behind: {run.left_at_exit}\n{run.log()}"
        if action == "SIGKILL":
            # Nothing could clean up: both registries, their temp dirs and keys are still there.
            assert len(run.containers) == 2, run.containers
            assert len(run.keys) == 2, run.keys
            assert {k for k in run.left_at_exit if k.startswith("container ")} == {
                f"container {name} (run {index})" for name in run.containers
            }, run.left_at_exit
            assert all(os.path.exists(k) for k in run.keys)
            killed = run
        elif killed is not None:
            # The run after the SIGKILL one reaped what it left, at its kindreg_docker setup.
            left = _leftovers(kindreg_docker, [killed])
            assert not left, f"{run.describe()} did not reap the SIGKILLed {killed.describe()}: {left}"
            killed = None
        # Every run reaps what the dead runs before it left (it got as far as its registry, so its
        # kindreg_docker setup ran): nothing of an earlier run survives a later one.
        left = _leftovers(kindreg_docker, runs[:-1])
        assert not left, f"{run.describe()} did not reap earlier runs' leftovers: {left}"

    summary = "\n".join(
        f"{r.describe()}" + (f" left at exit: {r.left_at_exit}" if r.left_at_exit else "") for r in runs
    )
    print(f"\n{summary}")
    left = _leftovers(kindreg_docker, runs)
    assert not left, f"left behind after 20 runs: {left}\n{summary}"
    records = list((suite.parent / "state" / "runs").glob("*.json"))
    assert not records, f"run records left behind: {records}"


def test_missing_registry_image_errors_with_one_actionable_message(
    pytester: pytest.Pytester, kindreg_docker: Any, no_leftovers: None
) -> None:
    pytester.makepyfile("def test_x(private_registry):\n    pass\n")
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--kindreg-registry-image", "kindreg-test/no-such:0", "--kindreg-require", "docker"
    )
    result.assert_outcomes(errors=1)
    # The error body (the short summary repeats it, untruncated when CI is set).
    actionable = [line for line in result.outlines if line.startswith("kindreg: image 'kindreg-test/no-such:0'")]
    assert len(actionable) == 1, result.outlines
    assert "is not available locally" in actionable[0]
    assert "kindreg build-images" in actionable[0]
    assert "Traceback" not in result.stdout.str()
    # Without --kindreg-require the same problem is a skip that says why.
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs", "--kindreg-registry-image", "kindreg-test/no-such:0")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*kindreg: image 'kindreg-test/no-such:0' is not available locally*build-images*"])


def test_cleanup_never_reaps_a_live_run(
    kindreg_docker: Any, suite: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    tmp = suite.parent
    marks = tmp / "marks"
    release = tmp / "release"
    run = _start_run(children, suite, 0, "complete", "", release=release)
    proc = run.proc
    mark = marks / f"{proc.pid}.json"

    def holding() -> bool:
        assert proc.poll() is None, f"the live run ended early (rc {proc.returncode}):\n{run.log()}"
        return mark.exists()

    _wait_until(holding, "the live run to hold its registries")
    _observe(kindreg_docker, run, marks)
    assert len(run.containers) == 2 and len(run.keys) == 2, (run.containers, run.keys)

    cleanup = subprocess.run(
        [sys.executable, "-m", "pytest_kindreg", "cleanup", "--min-age", "0"],
        cwd=tmp,
        env=_child_env(tmp, None),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    for run_id in run.run_ids:
        assert run_id not in cleanup.stdout, cleanup.stdout
    assert set(_containers(kindreg_docker, proc.pid)) == run.containers
    assert all(os.path.exists(d) for d in run.workdirs), run.workdirs
    assert all(os.path.exists(k) for k in run.keys), run.keys

    release.touch()
    try:
        proc.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the live run did not finish after its release:\n{run.log()}") from None
    assert proc.returncode == 0, run.log()
    assert "1 passed" in run.log()
    assert not _leftovers(kindreg_docker, [run])


def _dead_pid() -> int:
    """The pid of a process that has exited (and been waited for)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def _lookalikes(tmp: Path) -> dict[Path, str]:
    """Things of the user's, named like the plugin's temp dirs, in $TMPDIR and in the plugin's own
    parent; returns each file (through its name as the user sees it) with its content."""
    tmpdir = tmp / "tmp"
    root = _plugin_tmp(tmp)
    root.mkdir(mode=0o700, exist_ok=True)
    # A forged record of a dead run: only where it sits (behind a symlink) keeps it from counting.
    forged = json.dumps({"run_id": "d0d0d0", "pid": _dead_pid(), "pid_start": "", "host": os.uname().nodename})
    linked = tmp / "linked-target"
    linked.mkdir()
    (linked / "precious.txt").write_text("linked content")
    (linked / ".kindreg-owner.json").write_text(forged)
    (tmp / "forged-owner.json").write_text(forged)
    files: dict[Path, str] = {}
    for parent in (tmpdir, root):
        notes = parent / "kindreg-notes-keepme"
        notes.mkdir()
        (notes / "notes.txt").write_text("my notes")
        files[notes / "notes.txt"] = "my notes"
        old = parent / "kindreg-notes-old"
        old.mkdir()
        (old / "old.txt").write_text("old notes")
        files[old / "old.txt"] = "old notes"
        link = parent / "kindreg-d0d0d0-registry-link"
        link.symlink_to(linked, target_is_directory=True)
        files[link / "precious.txt"] = "linked content"
        plain = parent / "kindreg-d0d0d0-registry-file"
        plain.write_text("plain file")
        files[plain] = "plain file"
        # A real directory whose ownership record is a symlink to a dead run's record.
        fake = parent / "kindreg-d0d0d0-registry-fake"
        fake.mkdir()
        (fake / "data.txt").write_text("not the plugin's")
        (fake / ".kindreg-owner.json").symlink_to(tmp / "forged-owner.json")
        files[fake / "data.txt"] = "not the plugin's"
        hour_ago = time.time() - 3600  # far beyond the old 30 s "ownerless" age; notes stays fresh
        for path in (old, fake, plain, link):
            os.utime(path, (hour_ago, hour_ago), follow_symlinks=False)
        os.utime(linked, (hour_ago, hour_ago))
    return files


def test_only_a_dead_runs_own_temp_dirs_are_reaped(
    kindreg_docker: Any, suite: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    """Look-alikes of the user's survive a plugin run and ``kindreg cleanup``; a SIGKILLed run's
    temp dirs (keys included) are still removed by each."""
    tmp = suite.parent
    marks = tmp / "marks"
    files = _lookalikes(tmp)
    for index, cleaner in enumerate(("plugin run", "kindreg cleanup")):
        killed = _start_run(children, suite, 2 * index, "SIGKILL", "test", release=tmp / "never-released")
        _drive(kindreg_docker, killed, marks)
        assert killed.returncode == -signal.SIGKILL, killed.log()
        assert len(killed.workdirs) == 2 and all(os.path.isdir(d) for d in killed.workdirs), killed.workdirs
        assert len(killed.keys) == 2 and all(os.path.exists(k) for k in killed.keys), killed.keys
        if cleaner == "plugin run":
            after = _start_run(children, suite, 2 * index + 1, "complete", "", release=None)
            _drive(kindreg_docker, after, marks)
            assert after.returncode == 0, after.log()
        else:
            result = subprocess.run(
                [sys.executable, "-m", "pytest_kindreg", "cleanup"],
                env=_child_env(tmp, None),
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
            )
            assert result.returncode == 0, result.stdout + result.stderr
            assert all(f"removing directories: {d}" in result.stdout for d in killed.workdirs), result.stdout
            assert "keepme" not in result.stdout and "d0d0d0" not in result.stdout, result.stdout
        left = _leftovers(kindreg_docker, [killed])
        assert not left, f"the {cleaner} did not reap {killed.describe()}: {left}"
        damaged = {str(path): content for path, content in files.items() if not _holds(path, content)}
        assert not damaged, f"the {cleaner} removed or changed what the plugin did not create: {sorted(damaged)}"
    assert (tmp / "tmp" / "kindreg-d0d0d0-registry-link").is_symlink()
    assert (_plugin_tmp(tmp) / "kindreg-d0d0d0-registry-link").is_symlink()


def _holds(path: Path, content: str) -> bool:
    try:
        return path.read_text() == content
    except OSError:
        return False
