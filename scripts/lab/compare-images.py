"""Compare two images' file trees and metadata: what the kind lab's "no behaviour change" rests on.

    .venv/bin/python scripts/lab/compare-images.py IMAGE-A IMAGE-B

Each image's filesystem is read from ``docker export`` of a created (never started) container:
every entry's path, type, mode, owner, size, content digest and link target. Modification times
are reported apart: a rebuild writes files anew, so they differ even where nothing else does.
Exit status 0 when the trees (mtimes aside) and the run metadata are the same, 1 otherwise.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
from typing import IO, cast

Entry = tuple[str, int, str, str, int, str, str]  # type, mode, uid:gid, uname:gname, size, sha256, link
# What `docker create` itself puts into every container (its mtimes are the container's).
DOCKER_MADE = {".dockerenv", "dev", "dev/console", "dev/pts", "dev/shm", "etc", "etc/hostname", "etc/hosts"}
DOCKER_MADE |= {"etc/mtab", "etc/resolv.conf", "proc", "sys"}


def tree(image: str) -> tuple[dict[str, Entry], dict[str, int]]:
    container = subprocess.run(
        ["docker", "create", image, "/nonexistent"], capture_output=True, text=True, check=True
    ).stdout.strip()
    entries: dict[str, Entry] = {}
    mtimes: dict[str, int] = {}
    try:
        export = subprocess.Popen(["docker", "export", container], stdout=subprocess.PIPE)
        with tarfile.open(fileobj=cast(IO[bytes], export.stdout), mode="r|") as archive:
            for member in archive:
                digest = ""
                if member.isfile():
                    data = archive.extractfile(member)
                    assert data is not None
                    digest = hashlib.sha256(data.read()).hexdigest()
                path = member.name.rstrip("/") or "."
                entries[path] = (
                    member.type.decode(),
                    member.mode,
                    f"{member.uid}:{member.gid}",
                    f"{member.uname}:{member.gname}",
                    member.size,
                    digest,
                    member.linkname,
                )
                if path not in DOCKER_MADE:
                    mtimes[path] = int(member.mtime)
        if export.wait() != 0:
            raise SystemExit(f"docker export of {image} failed")
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
    return entries, mtimes


def metadata(image: str) -> str:
    fields = " ".join(
        f"{{{{json .Config.{field}}}}}"
        for field in ("Env", "Entrypoint", "Cmd", "StopSignal", "User", "WorkingDir", "Volumes", "ExposedPorts")
    )
    return subprocess.run(
        ["docker", "image", "inspect", "-f", fields, image], capture_output=True, text=True, check=True
    ).stdout.strip()


def main(a: str, b: str) -> int:
    (tree_a, mtimes_a), (tree_b, mtimes_b) = tree(a), tree(b)
    only_a = sorted(set(tree_a) - set(tree_b))
    only_b = sorted(set(tree_b) - set(tree_a))
    changed = sorted(p for p in set(tree_a) & set(tree_b) if tree_a[p] != tree_b[p])
    newer = sum(1 for p in set(mtimes_a) & set(mtimes_b) if mtimes_a[p] != mtimes_b[p])
    print(f"{a}: {len(tree_a)} entries; {b}: {len(tree_b)} entries")
    for path in only_a:
        print(f"  only in {a}: {path}")
    for path in only_b:
        print(f"  only in {b}: {path}")
    for path in changed:
        print(f"  differs: {path}\n    {tree_a[path]}\n    {tree_b[path]}")
    print(f"  same path, type, mode, owner, size, content and link target: {len(tree_a) - len(only_a) - len(changed)}")
    print(f"  (modification times differ on {newer} of them)")
    meta_a, meta_b = metadata(a), metadata(b)
    print(f"  metadata {'same' if meta_a == meta_b else 'differs'}: {meta_a}")
    if meta_a != meta_b:
        print(f"                           {meta_b}")
    # Labels are shown, not compared: the lab's key label names the image repository too.
    for image in (a, b):
        labels = subprocess.run(
            ["docker", "image", "inspect", "-f", "{{json .Config.Labels}}", image], capture_output=True, text=True
        ).stdout.strip()
        print(f"  labels of {image}: {labels}")
    return 0 if not (only_a or only_b or changed) and meta_a == meta_b else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
