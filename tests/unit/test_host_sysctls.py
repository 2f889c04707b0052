"""Which host sysctls are recorded before ``kind create`` and when they are put back.

A temporary directory stands in for ``/proc/sys`` (``HostSysctls(root=...)``); "kubelet" below is
the test writing kubelet's values into it, as kubelet in a kind node does to the real one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_kindreg.host_sysctls import (
    KUBELET_SYSCTLS,
    HostRecord,
    HostSysctls,
    RestoreOutcome,
    next_record,
    read_sysctls,
    report_once,
    sysctl_path,
    values_to_restore,
)

# This VM's own values (kubelet writes 1, 0, 10, 1, 1000000, 25000000).
HOST = {
    "vm.overcommit_memory": "0",
    "vm.panic_on_oom": "0",
    "kernel.panic": "1",
    "kernel.panic_on_oops": "0",
    "kernel.keys.root_maxkeys": "1000000",
    "kernel.keys.root_maxbytes": "25000000",
}


def write(root: Path, values: dict[str, str]) -> None:
    for name, value in values.items():
        path = sysctl_path(root, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")


def boot(root: Path, boot_id: str) -> None:
    write(root, {"kernel.random.boot_id": boot_id})


def kubelet_starts(root: Path) -> None:
    write(root, KUBELET_SYSCTLS)


class Clusters:
    """The kind clusters "running" on the engine, as the running_clusters callable sees them."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.asked = 0

    def __call__(self) -> list[str]:
        self.asked += 1
        return list(self.names)


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc-sys"
    write(root, HOST)
    boot(root, "boot-1")
    return root


@pytest.fixture
def clusters() -> Clusters:
    return Clusters()


@pytest.fixture
def host(proc: Path, tmp_path: Path, clusters: Clusters) -> HostSysctls:
    return HostSysctls(tmp_path / "state" / "host-sysctls.json", root=proc, running_clusters=clusters)


def test_kubelets_changes_are_put_back_once_the_last_cluster_is_gone(
    host: HostSysctls, proc: Path, clusters: Clusters
) -> None:
    record = host.record()
    assert record == HostRecord("boot-1", HOST)
    clusters.names = ["a", "b"]
    kubelet_starts(proc)

    waiting = host.restore()  # cluster a deleted, b still runs: its kubelet would only redo it
    assert waiting.restored == {} and waiting.waiting_for == ["a", "b"]
    assert read_sysctls(proc, ["vm.overcommit_memory"]) == {"vm.overcommit_memory": "1"}
    assert "kind cluster(s) a, b still run" in waiting.messages()[0]

    clusters.names = []
    done = host.restore()
    assert done.restored == {
        "vm.overcommit_memory": ("1", "0"),
        "kernel.panic": ("10", "1"),
        "kernel.panic_on_oops": ("1", "0"),
    }
    assert read_sysctls(proc, HOST) == HOST
    assert done.messages() == [
        "put back the host's sysctls kubelet had changed: "
        "vm.overcommit_memory 0 (kubelet had set 1), kernel.panic 1 (kubelet had set 10), "
        "kernel.panic_on_oops 0 (kubelet had set 1)"
    ]
    assert host.read_record() == HostRecord("boot-1", HOST, restored=True)
    assert host.restore() == RestoreOutcome()  # done: nothing more to do, nothing asked


def test_a_second_process_keeps_the_values_from_before_the_first_kubelet(
    host: HostSysctls, proc: Path, clusters: Clusters, tmp_path: Path
) -> None:
    host.record()
    clusters.names = ["first"]
    kubelet_starts(proc)
    # Another process (an xdist worker) creates its own cluster now: it reads kubelet's values,
    # and must not take them for the host's.
    other = HostSysctls(host.record_file, root=proc, running_clusters=clusters)
    assert other.record() == HostRecord("boot-1", HOST)
    clusters.names = []
    assert other.restore().restored["vm.overcommit_memory"] == ("1", "0")
    assert read_sysctls(proc, HOST) == HOST


def test_a_dead_runs_record_is_kept_and_restored_by_the_next(host: HostSysctls, proc: Path) -> None:
    host.record()
    kubelet_starts(proc)  # the run died here; its cluster was deleted by hand (or reaped)
    assert host.record() == HostRecord("boot-1", HOST)  # the next run's record keeps the host's
    assert set(host.restore().restored) == {"vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops"}


def test_after_a_restore_the_next_record_reads_the_host_afresh(
    host: HostSysctls, proc: Path, clusters: Clusters
) -> None:
    host.record()
    host.restore()
    write(proc, {"vm.overcommit_memory": "1"})  # the admin's own choice, made meanwhile
    assert host.record() == HostRecord("boot-1", {**HOST, "vm.overcommit_memory": "1"})
    assert clusters.asked == 2  # whether a kind cluster runs: asked when it matters only
    kubelet_starts(proc)
    assert "vm.overcommit_memory" not in host.restore().restored  # it is the host's value now


def test_after_a_restore_a_running_foreign_cluster_keeps_the_old_values(
    host: HostSysctls, proc: Path, clusters: Clusters
) -> None:
    host.record()
    host.restore()
    clusters.names = ["someone-elses"]
    kubelet_starts(proc)  # its kubelet: the values now are not the host's
    assert host.record() == HostRecord("boot-1", HOST)


def test_a_record_of_another_boot_is_neither_kept_nor_restored(host: HostSysctls, proc: Path) -> None:
    host.record()
    kubelet_starts(proc)
    boot(proc, "boot-2")  # rebooted: the host's own settings are back (here: kubelet's values stayed)
    assert host.restore() == RestoreOutcome()
    assert host.record() == HostRecord("boot-2", {**HOST, **KUBELET_SYSCTLS})


def test_a_value_someone_else_set_stays(host: HostSysctls, proc: Path) -> None:
    host.record()
    kubelet_starts(proc)
    write(proc, {"kernel.panic": "30"})  # neither the host's 1 nor kubelet's 10
    outcome = host.restore()
    assert "kernel.panic" not in outcome.restored
    assert read_sysctls(proc, ["kernel.panic"]) == {"kernel.panic": "30"}


def test_a_sysctl_this_kernel_lacks_is_left_out(proc: Path) -> None:
    sysctl_path(proc, "vm.panic_on_oom").unlink()
    assert "vm.panic_on_oom" not in read_sysctls(proc, KUBELET_SYSCTLS)


def test_pure_rules() -> None:
    record = HostRecord("b", {"vm.overcommit_memory": "0", "kernel.panic": "10"})
    current = {"vm.overcommit_memory": "1", "kernel.panic": "10"}
    assert values_to_restore(record, current) == {"vm.overcommit_memory": ("1", "0")}
    asked: list[bool] = []

    def running() -> bool:
        asked.append(True)
        return False

    # Not restored yet: kept, without asking Docker.
    assert next_record(record, {"vm.overcommit_memory": "1", "kernel.panic": "10", "new": "5"}, "b", running) == (
        HostRecord("b", {"vm.overcommit_memory": "0", "kernel.panic": "10", "new": "5"})
    )
    assert asked == []
    assert next_record(None, current, "b", running) == HostRecord("b", current)
    assert HostRecord.from_json("{not json") is None
    assert HostRecord.from_json(record.to_json()) == record


def test_a_write_that_needs_root_is_reported_once_with_the_command(tmp_path: Path, proc: Path) -> None:
    # A sysctl file nobody may write, not even root: the real kernel's read-only cap_last_cap.
    readonly = Path("/proc/sys/kernel/cap_last_cap")
    if not readonly.is_file():
        pytest.skip("no /proc/sys/kernel/cap_last_cap on this kernel")
    sysctl_path(proc, "vm.overcommit_memory").unlink()
    sysctl_path(proc, "vm.overcommit_memory").symlink_to(readonly)
    kubelets = readonly.read_text().strip()  # what the read-only file holds plays kubelet's value
    host = HostSysctls(
        tmp_path / "host-sysctls.json", root=proc, running_clusters=list, kubelet={"vm.overcommit_memory": kubelets}
    )
    host._write_record(HostRecord("boot-1", {"vm.overcommit_memory": "0"}))

    outcome = host.restore()
    assert outcome.restored == {} and outcome.failed == {"vm.overcommit_memory": (kubelets, "0")}
    (message,) = outcome.messages()
    assert "writing /proc/sys needs root" in message
    assert message.endswith("run `sudo sysctl -w vm.overcommit_memory=0`")
    assert host.read_record() == HostRecord("boot-1", {"vm.overcommit_memory": "0"})  # still to do
    said: list[str] = []
    report_once(outcome, said.append)
    report_once(host.restore(), said.append)
    assert said == [message]
