"""Independent calls side by side (Docker and ``docker exec`` calls that each wait on their own)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor


def in_parallel(calls: Sequence[Callable[[], object]]) -> None:
    """Run ``calls`` side by side; once all are done, raise the first error (if any)."""
    if len(calls) <= 1:
        for call in calls:
            call()
        return
    with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="kindreg") as pool:
        futures = [pool.submit(call) for call in calls]
    for future in futures:
        future.result()
