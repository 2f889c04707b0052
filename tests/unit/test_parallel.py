"""Side-by-side calls (registries, nodes): every call runs to its end, then the first error is raised."""

from __future__ import annotations

import functools
import threading

import pytest

from pytest_kindreg.parallel import in_parallel


def test_all_calls_run_at_the_same_time() -> None:
    barrier = threading.Barrier(3, timeout=5)  # passes only if all three wait at once
    done: list[int] = []

    def call(n: int) -> None:
        barrier.wait()
        done.append(n)

    in_parallel([functools.partial(call, n) for n in range(3)])
    assert sorted(done) == [0, 1, 2]


def test_an_error_is_raised_after_the_others_finished() -> None:
    finished = threading.Event()

    def slow() -> None:
        finished.wait(0.2)
        finished.set()

    def failing() -> None:
        raise ValueError("registry failed")

    with pytest.raises(ValueError, match="registry failed"):
        in_parallel([failing, slow])
    assert finished.is_set()  # the other call was not abandoned half-way


def test_one_call_runs_in_the_callers_thread() -> None:
    seen: list[str] = []
    in_parallel([lambda: seen.append(threading.current_thread().name)])
    assert seen == [threading.main_thread().name]
