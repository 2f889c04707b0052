"""The plugin's temp directories: one per-user parent it owns, and an ownership record in each.

Every temp dir the plugin creates lives in ``$TMPDIR/pytest-kindreg-<uid>/`` (mode 0700, owned
by this user, not a symlink: checked before every use) and holds ``.kindreg-owner.json`` with the
run id, pid and process start time of the run that made it. The reaper removes a directory only
when that record proves a dead run of this user made it; anything else, whatever its name, is
left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from pytest_kindreg.docker_engine import RunIdentity, process_start_time
from pytest_kindreg.errors import KindregError

OWNER_FILE = ".kindreg-owner.json"


class TempRootError(KindregError):
    """The per-user parent directory exists but is not safely ours."""


def temp_root(base: str | Path | None = None) -> Path:
    """``<base or $TMPDIR>/pytest-kindreg-<uid>`` (not created, not checked)."""
    return Path(base or tempfile.gettempdir()) / f"pytest-kindreg-{os.getuid()}"


def root_problem(root: Path) -> str | None:
    """None when ``root`` is a real directory (no symlink) owned by this user with mode 0700."""
    try:
        info = os.lstat(root)
    except FileNotFoundError:
        return "it does not exist"
    if stat.S_ISLNK(info.st_mode):
        return "it is a symlink"
    if not stat.S_ISDIR(info.st_mode):
        return "it is not a directory"
    if info.st_uid != os.getuid():
        return f"it is owned by uid {info.st_uid}, not {os.getuid()}"
    if stat.S_IMODE(info.st_mode) != 0o700:
        return f"its mode is {stat.S_IMODE(info.st_mode):04o}, not 0700"
    return None


def owned_root(base: str | Path | None = None) -> Path:
    """The per-user parent, created 0700 if absent; raises if it is not safely ours."""
    root = temp_root(base)
    with contextlib.suppress(FileExistsError):
        os.mkdir(root, 0o700)
        os.chmod(root, 0o700)  # a umask may have taken bits from the owner too
    problem = root_problem(root)
    if problem:
        raise TempRootError(
            f"refusing to use {root} for pytest-kindreg's temp files: {problem}. "
            f"Remove it (or fix it with `chmod 700 {root}`) if it is yours."
        )
    return root


def make_temp_dir(identity: RunIdentity, prefix: str) -> Path:
    """A new 0700 directory ``<root>/<prefix>-XXXXXXXX`` that records ``identity`` as its owner."""
    directory = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=owned_root()))
    record = {
        "run_id": identity.run_id,
        "pid": identity.pid,
        "pid_start": process_start_time(identity.pid),
        "host": socket.gethostname(),
        "created": time.time(),
    }
    # Written under a temporary name and renamed: the reaper never reads half a record.
    partial = directory / f"{OWNER_FILE}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle)
    partial.replace(directory / OWNER_FILE)
    return directory


def read_owner(directory: Path) -> dict[str, Any] | None:
    """The ownership record of ``directory``, or None unless it is a real directory of this user
    holding a regular, readable record of this user (symlinks are never followed)."""
    try:
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            return None
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            fd = os.open(OWNER_FILE, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
        with os.fdopen(fd) as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
                return None
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("run_id"), str)
        or not isinstance(record.get("pid"), int)
    ):
        return None
    return record


def owned_dirs(base: str | Path | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """Each directory in the per-user parent with its ownership record (none if the parent is unsafe)."""
    root = temp_root(base)
    if root_problem(root):
        return []
    found = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return []
    for entry in entries:
        record = read_owner(Path(entry.path))
        if record is not None:
            found.append((Path(entry.path), record))
    return found
