"""``kindreg`` / ``python -m pytest_kindreg``: doctor, cleanup, build-images."""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import resources

from pytest_kindreg import __version__


def _doctor(args: argparse.Namespace) -> int:
    from pytest_kindreg.doctor import run_checks

    checks = run_checks(
        kind_bin=args.kind_bin,
        node_image=args.node_image,
        registry_image=args.registry_image,
        test_image=args.test_image,
        cluster=args.cluster,
    )
    for check in checks:
        print(check.line())
    failed = [c for c in checks if c.status == "FAIL"]
    print(f"\n{len(failed)} problem(s)" if failed else "\nall required checks passed")
    return 1 if failed else 0


def _cleanup(args: argparse.Namespace) -> int:
    from pytest_kindreg.docker_engine import docker_client
    from pytest_kindreg.errors import KindregError
    from pytest_kindreg.host_sysctls import HostSysctls
    from pytest_kindreg.reaper import find_leftovers, reap

    try:
        docker = docker_client(timeout=15)
    except KindregError as exc:
        print(f"kindreg cleanup: {exc}", file=sys.stderr)
        docker = None
    leftovers = find_leftovers(docker)
    for kind, names in vars(leftovers).items():
        for name in names:
            print(f"{'would remove' if args.dry_run else 'removing'} {kind.replace('_', ' ')}: {name}")
    problems: list[str] = []
    if args.dry_run or not leftovers:
        print(f"kindreg cleanup: {leftovers.describe()} left by dead runs")
    else:
        problems = reap(docker, leftovers, kind_bin=args.kind_bin, say=lambda line: print(f"kindreg cleanup: {line}"))
        for problem in problems:
            print(f"could not remove {problem}", file=sys.stderr)
        print(f"kindreg cleanup: removed {leftovers.describe()}")
    # The VM-wide sysctls kubelet changed, once no kind cluster runs (pytest_kindreg.host_sysctls).
    sysctls = HostSysctls().restore(dry_run=args.dry_run)
    for line in sysctls.messages():
        print(f"kindreg cleanup: {line}", file=sys.stderr if line.startswith("could not") else sys.stdout)
    return 1 if problems else 0


def _build_images(args: argparse.Namespace) -> int:
    script = resources.files("pytest_kindreg") / "data" / "build-images.sh"
    with resources.as_file(script) as path:
        return subprocess.call(["bash", str(path), *(["--force"] if args.force else [])])


def main(argv: list[str] | None = None) -> int:
    from pytest_kindreg.registry import DEFAULT_IMAGE, DEFAULT_TEST_IMAGE

    parser = argparse.ArgumentParser(prog="kindreg", description="pytest-kindreg helper commands")
    parser.add_argument("--version", action="version", version=f"pytest-kindreg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    doctor = sub.add_parser("doctor", help="check Docker, kind, images and node containerd; say what to fix")
    doctor.add_argument("--kind-bin")
    doctor.add_argument("--node-image")
    doctor.add_argument("--registry-image", default=DEFAULT_IMAGE)
    doctor.add_argument("--test-image", default=DEFAULT_TEST_IMAGE)
    doctor.add_argument("--cluster", help="also check each node's containerd and kubelet in this existing cluster")
    doctor.set_defaults(func=_doctor)
    cleanup = sub.add_parser("cleanup", help="remove what dead runs left behind (never a live run's)")
    cleanup.add_argument("--dry-run", action="store_true")
    cleanup.add_argument("--kind-bin")
    # Ignored, kept so that existing scripts still run: temp dirs are reaped by their ownership
    # record, never by age (an ownerless directory is never removed).
    cleanup.add_argument("--min-age", type=float, help=argparse.SUPPRESS)
    cleanup.set_defaults(func=_cleanup)
    build = sub.add_parser("build-images", help="build registry:2 and the test image offline from Debian packages")
    build.add_argument("--force", action="store_true")
    build.set_defaults(func=_build_images)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
