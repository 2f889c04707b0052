"""Errors raised by pytest-kindreg. Each says what failed and what to do about it."""

from __future__ import annotations


def first_line(value: object, limit: int = 200) -> str:
    """The first line of an error's text (empty if it has none), cut to ``limit`` characters."""
    lines = str(value).splitlines()
    return (lines[0] if lines else "")[:limit]


class KindregError(Exception):
    """Base class of every pytest-kindreg error."""


class MissingRequirementError(KindregError):
    """A tool or service the run needs is not there (Docker engine, kind binary, image)."""

    def __init__(self, requirement: str, message: str) -> None:
        super().__init__(message)
        self.requirement = requirement


class DockerUnavailableError(MissingRequirementError):
    def __init__(self, detail: str) -> None:
        super().__init__(
            "docker",
            "no Docker engine answers "
            f"({detail}). Start one (e.g. `dockerd &` or `systemctl start docker`) "
            "or point DOCKER_HOST at it.",
        )


class KindUnavailableError(MissingRequirementError):
    def __init__(self, detail: str) -> None:
        super().__init__(
            "kind",
            f"kind is not available ({detail}). Install it "
            "(https://kind.sigs.k8s.io/docs/user/quick-start/#installation) and put it on PATH, "
            "or pass --kindreg-kind-bin / set KIND to its path.",
        )


class ImageMissingError(MissingRequirementError):
    def __init__(self, image: str, hint: str) -> None:
        super().__init__("image", f"image {image!r} is not available locally and could not be pulled. {hint}")
        self.image = image


class CommandError(KindregError):
    """An external command (kind, docker, containerd tools) failed or timed out."""

    def __init__(self, argv: list[str], returncode: int | None, stderr: str, hint: str = "") -> None:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        status = "timed out" if returncode is None else f"exited with {returncode}"
        message = f"command {' '.join(argv)!r} {status}"
        if tail:
            message += f"\n--- stderr (tail) ---\n{tail}"
        if hint:
            message += f"\nhint: {hint}"
        super().__init__(message)
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr


class RegistryError(KindregError):
    """The private registry could not be started, reached, or used."""


class PortInUseError(RegistryError):
    def __init__(self, port: int) -> None:
        super().__init__(
            f"port 127.0.0.1:{port} is already in use; choose another port or leave it unset "
            "so that a free one is picked"
        )
        self.port = port


class ClusterError(KindregError):
    """The kind cluster could not be created, reused, or reached."""


class PodStartError(KindregError):
    """A pod did not reach Running; carries the pod's events and a diagnosis."""

    def __init__(self, message: str, events: list[str], diagnosis: list[str]) -> None:
        super().__init__(message)
        self.events = events
        self.diagnosis = diagnosis


class UnknownStrategyError(KindregError, ValueError):
    def __init__(self, name: object, valid: list[str]) -> None:
        super().__init__(f"{name!r} is not a valid kindreg strategy. Valid strategies: {', '.join(valid)}")
        self.name = name
        self.valid = valid


class KindConfigError(KindregError, ValueError):
    """A user's kind config cannot be used; the message names the file (or ``<dict>``) and the key."""
