"""The one seam through which pytest-kindreg runs external commands (kind, docker, ctr)."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence

from pytest_kindreg.errors import CommandError

log = logging.getLogger("pytest_kindreg")


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 300.0,
    check: bool = True,
    hint: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (never through a shell) with the caller's environment plus ``env``.

    Raises :class:`CommandError` carrying argv, exit code and the tail of stderr.
    """
    args = [str(a) for a in argv]
    full_env = {**os.environ, **(env or {})}
    log.debug("running %s", args)
    try:
        proc = subprocess.run(
            args, env=full_env, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise CommandError(args, None, stderr, hint or f"no answer within {timeout:.0f}s") from exc
    except FileNotFoundError as exc:
        raise CommandError(args, 127, str(exc), hint or f"{args[0]} is not installed or not on PATH") from exc
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, proc.stderr, hint)
    return proc
