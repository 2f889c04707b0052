"""The host's kernel settings that kubelet in a kind node changes, recorded and put back.

kind runs every node privileged in the host's user namespace, so when kubelet starts it rewrites
VM-wide sysctls (Kubernetes ``pkg/kubelet/cm/container_manager_linux.go``, ``setupKernelTunables``,
the same in 1.32 and 1.35): :data:`KUBELET_SYSCTLS`. They are not network-namespaced: they change
the host for as long as nobody writes them back. What kube-proxy sets stays inside the node:
``net.netfilter.nf_conntrack_tcp_*``/``udp_*`` and ``net.ipv4.conf.*`` are per network namespace,
and the one global value it would write, ``net.netfilter.nf_conntrack_max`` (with its module's
hashsize), kind's kubeadm config skips (``conntrack.maxPerCore: 0``).

:meth:`HostSysctls.record` runs before ``kind create``: it keeps the values from before any
kubelet of ours changed them, in a file beside the run records (``~/.cache/pytest-kindreg``) so
that another process (an xdist worker, ``kindreg cleanup``) can put them back.
:meth:`HostSysctls.restore` runs after a cluster is deleted: once no kind cluster runs on the
Docker engine, it writes back each recorded value that kubelet changed; a value that is neither
the recorded one nor kubelet's was set by someone else, and stays. Writing ``/proc/sys`` needs
root: without it, the run goes on and says once what to run. Usable without pytest::

    HostSysctls().restore().messages()
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pytest_kindreg import runner
from pytest_kindreg.errors import CommandError, first_line

log = logging.getLogger("pytest_kindreg")

PROC_SYS = Path("/proc/sys")
KIND_CLUSTER_LABEL = "io.x-k8s.kind.cluster"  # kind's label on every container of a cluster

# name -> the value kubelet writes (k8s.io/component-helpers/node/util/sysctl).
KUBELET_SYSCTLS: dict[str, str] = {
    "vm.overcommit_memory": "1",
    "vm.panic_on_oom": "0",
    "kernel.panic": "10",
    "kernel.panic_on_oops": "1",
    "kernel.keys.root_maxkeys": "1000000",
    "kernel.keys.root_maxbytes": "25000000",
}

RECORD_FILE = "host-sysctls.json"


def sysctl_path(root: Path, name: str) -> Path:
    return root.joinpath(*name.split("."))


def read_sysctls(root: Path, names: Iterable[str]) -> dict[str, str]:
    """The current values of ``names`` under ``root`` (``/proc/sys``); absent ones are left out."""
    values: dict[str, str] = {}
    for name in names:
        with contextlib.suppress(OSError):
            values[name] = " ".join(sysctl_path(root, name).read_text().split())
    return values


def boot_id(root: Path) -> str:
    """This boot's id: a record from another boot describes settings the reboot already reset."""
    try:
        return sysctl_path(root, "kernel.random.boot_id").read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class HostRecord:
    """The host's values from before kubelet changed them; ``restored`` once they were put back
    and no kind cluster ran (then the next record reads the host afresh)."""

    boot_id: str
    values: dict[str, str]
    restored: bool = False

    def to_json(self) -> str:
        return json.dumps({"boot_id": self.boot_id, "values": self.values, "restored": self.restored})

    @classmethod
    def from_json(cls, text: str) -> HostRecord | None:
        try:
            data = json.loads(text)
            values = {str(k): str(v) for k, v in dict(data["values"]).items()}
            return cls(str(data["boot_id"]), values, bool(data.get("restored", False)))
        except (ValueError, TypeError, KeyError):
            return None  # unreadable: as if there were none


def next_record(
    previous: HostRecord | None, current: Mapping[str, str], boot: str, clusters_running: Callable[[], bool]
) -> HostRecord:
    """What to record before a ``kind create``.

    The current values, unless a record of this boot still holds values kubelet may have
    changed since (not restored yet: a cluster runs, or a run died before putting them back;
    or restored while another kind cluster kept running): those are the host's, kept.
    """
    if previous is None or previous.boot_id != boot or (previous.restored and not clusters_running()):
        return HostRecord(boot, dict(current))
    # A sysctl the previous record lacks (absent then) gets today's value.
    return HostRecord(boot, {**current, **previous.values})


def values_to_restore(
    record: HostRecord, current: Mapping[str, str], kubelet: Mapping[str, str] = KUBELET_SYSCTLS
) -> dict[str, tuple[str, str]]:
    """name -> (current value, recorded value) for each sysctl kubelet changed: it now holds
    kubelet's value and the record another. Any other value was set by someone else: kept."""
    return {
        name: (current[name], recorded)
        for name, recorded in record.values.items()
        if name in current and name in kubelet and current[name] == kubelet[name] != recorded
    }


def running_kind_clusters() -> list[str]:
    """Names of the kind clusters with a running container on the Docker engine."""
    out = runner.run(
        [
            "docker",
            "ps",
            "--filter",
            f"label={KIND_CLUSTER_LABEL}",
            "--format",
            f'{{{{.Label "{KIND_CLUSTER_LABEL}"}}}}',
        ],
        timeout=60,
    ).stdout
    return sorted(set(out.split()))


def sysctl_command(values: Mapping[str, str]) -> str:
    return "sudo sysctl -w " + " ".join(f"{name}={value}" for name, value in values.items())


@dataclass
class RestoreOutcome:
    """What :meth:`HostSysctls.restore` did: put back, could not put back, or waits for."""

    restored: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (kubelet's, host's)
    failed: dict[str, tuple[str, str]] = field(default_factory=dict)
    error: str = ""
    waiting_for: list[str] = field(default_factory=list)  # kind clusters still running
    pending: dict[str, tuple[str, str]] = field(default_factory=dict)  # changed, not put back (yet)
    dry_run: bool = False

    @staticmethod
    def _changes(values: Mapping[str, tuple[str, str]]) -> str:
        return ", ".join(f"{name} {host} (kubelet had set {now})" for name, (now, host) in values.items())

    def messages(self) -> list[str]:
        lines = []
        if self.restored:
            lines.append(f"put back the host's sysctls kubelet had changed: {self._changes(self.restored)}")
        if self.failed:
            lines.append(
                f"could not put back the host's sysctls kubelet changed ({self._changes(self.failed)}): "
                f"{self.error}; run `{sysctl_command({n: host for n, (_, host) in self.failed.items()})}`"
            )
        if self.pending and self.waiting_for:
            lines.append(
                f"kubelet changed the host's sysctls ({self._changes(self.pending)}); kind cluster(s) "
                f"{', '.join(self.waiting_for)} still run, so they stay until the last is deleted "
                "(then `kindreg cleanup` puts them back)"
            )
        elif self.pending and self.dry_run:
            lines.append(f"would put back the host's sysctls kubelet had changed: {self._changes(self.pending)}")
        elif self.pending:
            lines.append(
                f"kubelet changed the host's sysctls ({self._changes(self.pending)}); {self.error}; "
                "`kindreg cleanup` puts them back once no kind cluster runs"
            )
        return lines


def default_record_file() -> Path:
    from pytest_kindreg.reaper import state_dir

    return state_dir() / RECORD_FILE


class HostSysctls:
    """Record the sysctls kubelet changes before a ``kind create``; put them back after the last
    kind cluster is gone. ``root`` is ``/proc/sys`` (a parameter for tests and for hosts whose
    ``/proc/sys`` is mounted elsewhere); ``running_clusters`` lists the kind clusters running;
    ``kubelet`` maps each sysctl to the value kubelet writes."""

    def __init__(
        self,
        record_file: Path | None = None,
        *,
        root: Path = PROC_SYS,
        running_clusters: Callable[[], list[str]] = running_kind_clusters,
        kubelet: Mapping[str, str] = KUBELET_SYSCTLS,
    ) -> None:
        self.record_file = record_file or default_record_file()
        self.root = root
        self.running_clusters = running_clusters
        self.kubelet = dict(kubelet)

    def __repr__(self) -> str:
        return f"<HostSysctls {str(self.record_file)!r} root={str(self.root)!r}>"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One process at a time reads and rewrites the record (xdist workers, cleanup)."""
        self.record_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.record_file.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def read_record(self) -> HostRecord | None:
        try:
            return HostRecord.from_json(self.record_file.read_text())
        except OSError:
            return None

    def _write_record(self, record: HostRecord) -> None:
        tmp = self.record_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(record.to_json())
        tmp.replace(self.record_file)

    def _clusters_running(self) -> bool:
        try:
            return bool(self.running_clusters())
        except CommandError:
            return True  # cannot tell: keep the values recorded before

    def record(self) -> HostRecord | None:
        """Before ``kind create``: record the host's values (see :func:`next_record`). Never raises:
        a record that cannot be written costs only the restore (logged)."""
        try:
            with self._locked():
                current = read_sysctls(self.root, self.kubelet)
                record = next_record(self.read_record(), current, boot_id(self.root), self._clusters_running)
                self._write_record(record)
                return record
        except OSError as exc:
            log.warning("kindreg: cannot record the host's sysctls in %s: %s", self.record_file, exc)
            return None

    def restore(self, *, dry_run: bool = False) -> RestoreOutcome:
        """After a cluster is deleted: put back what kubelet changed, once no kind cluster runs.
        Never raises; the outcome says what was done and what to do."""
        outcome = RestoreOutcome(dry_run=dry_run)
        try:
            with self._locked():
                record = self.read_record()
                if record is None or record.restored or record.boot_id != boot_id(self.root):
                    return outcome
                changed = values_to_restore(record, read_sysctls(self.root, record.values), self.kubelet)
                try:
                    outcome.waiting_for = self.running_clusters()
                except CommandError as exc:
                    outcome.pending, outcome.error = changed, f"cannot list the running kind clusters ({exc})"
                    return outcome
                if outcome.waiting_for or dry_run:
                    outcome.pending = changed
                    return outcome
                for name, (now, host) in changed.items():
                    try:
                        sysctl_path(self.root, name).write_text(host)
                    except OSError as exc:
                        outcome.failed[name] = (now, host)
                        outcome.error = f"{type(exc).__name__}: {exc.strerror or exc} (writing /proc/sys needs root)"
                    else:
                        outcome.restored[name] = (now, host)
                if not outcome.failed:
                    self._write_record(HostRecord(record.boot_id, record.values, restored=True))
        except OSError as exc:
            outcome.error = f"cannot read the record {self.record_file}: {first_line(exc)}"
        return outcome


_said: set[str] = set()


def report_once(outcome: RestoreOutcome, say: Callable[[str], None]) -> None:
    """Pass ``outcome``'s messages to ``say``; what cannot be done is said once per process."""
    for message in outcome.messages():
        if message.startswith("put back"):
            say(message)
        elif message not in _said:
            _said.add(message)
            say(message)
