"""One resource for several processes (pytest-xdist workers), after pytest-xdist's recipe
"session-scoped fixtures executed once": the first process creates it under a file lock and
publishes how to reach it, the others attach, and the last one out closes it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from filelock import FileLock

from pytest_kindreg.credentials import write_private_file

T = TypeVar("T")


@dataclass(frozen=True)
class Sharing(Generic[T]):
    """How to create, describe, attach to, close and let go of a ``T``."""

    create: Callable[[], T]
    export: Callable[[T], dict[str, Any]]
    attach: Callable[[dict[str, Any]], T]
    close: Callable[[T], None]
    detach: Callable[[T], None]


class SharedResource(Generic[T]):
    def __init__(self, directory: Path, name: str, sharing: Sharing[T], timeout: float = 900.0) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._state = directory / f"{name}.json"
        self._lock = FileLock(str(directory / f"{name}.lock"), timeout=timeout)
        self._sharing = sharing

    def _read(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self._state.read_text()))
        except FileNotFoundError:
            return {"users": 0, "state": None}

    def acquire(self) -> T:
        with self._lock:
            record = self._read()
            if record["state"] is None:
                resource = self._sharing.create()
                record = {"users": 0, "state": self._sharing.export(resource)}
            else:
                resource = self._sharing.attach(record["state"])
            record["users"] += 1
            write_private_file(self._state, json.dumps(record))
            return resource

    def release(self, resource: T) -> bool:
        """Let go; closes the resource (and returns True) when this was its last user."""
        with self._lock:
            record = self._read()
            record["users"] = max(0, record["users"] - 1)
            if record["users"] == 0:
                self._state.unlink(missing_ok=True)
                self._sharing.close(resource)
                return True
            write_private_file(self._state, json.dumps(record))
            self._sharing.detach(resource)
            return False
