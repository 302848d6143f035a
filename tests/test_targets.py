"""advisor.collect.targets: process trees, cgroups and network namespaces resolved on this machine.

Real processes and a real cgroup (this machine mounts cgroup2 at /sys/fs/cgroup/unified, next to
v1 controllers without perf_event). One mountinfo is given as text: the v1 perf_event layout this
machine does not have.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest

from advisor.collect import targets
from advisor.errors import EnvironmentProblem, UsageError
from advisor.proc import descendants, kill_group

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="creating a cgroup needs root")


@pytest.fixture
def tree():
    """sh with two sleeping children (a master and its workers); all gone after the test."""
    proc = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"], start_new_session=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(descendants(proc.pid)) < 2:
        time.sleep(0.02)
    yield proc
    kill_group(proc)


@pytest.fixture
def cgroup():
    """A fresh cgroup2 group with a sub-group, removed after the test (its processes killed)."""
    mounts = [m for m in targets.cgroup_mounts() if os.path.isfile(os.path.join(m, "cgroup.procs"))]
    if not mounts:
        pytest.skip("no cgroup2 hierarchy mounted here")
    name = f"advisor-test-{uuid.uuid4().hex[:8]}"
    top = os.path.join(mounts[0], name)
    os.makedirs(os.path.join(top, "sub"))
    procs = []
    yield name, top, procs
    for proc in procs:
        proc.kill()
        proc.wait(timeout=10)
    for directory in (os.path.join(top, "sub"), top):
        for _ in range(50):
            try:
                os.rmdir(directory)
                break
            except OSError:
                time.sleep(0.05)


def start_in(directory: str, argv: list[str]) -> subprocess.Popen:
    """Start argv already inside the cgroup at `directory` (it joins before exec)."""
    procs_file = os.path.join(directory, "cgroup.procs")

    def join() -> None:
        with open(procs_file, "w", encoding="ascii") as handle:
            handle.write(str(os.getpid()))

    return subprocess.Popen(argv, preexec_fn=join)


def test_a_pid_brings_its_descendants(tree):
    target = targets.resolve(pid=tree.pid)
    kids = target.pids[1:]
    assert target.pids[0] == tree.pid and len(kids) == 2
    for kid in kids:  # each is a child of the shell (a `sleep`, or the shell's fork about to become one)
        with open(f"/proc/{kid}/stat") as handle:
            assert int(handle.read().rsplit(")", 1)[1].split()[1]) == tree.pid
    assert target.scoped and target.perf_scope() == ["-p", ",".join(map(str, target.pids))]
    assert target.describe() == f"process {tree.pid} and 2 descendants"


def _maps_readable(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/maps", "rb"):
            return True
    except PermissionError:
        return False


ZOMBIE_PARENT = """
import os, sys, time
child = os.fork()
if child == 0:
    os._exit(0)
print(child, flush=True)  # never reaped: a zombie while this process lives
time.sleep(60)
"""


def test_a_zombie_is_no_target_and_a_zombie_child_is_left_out_of_the_tree():
    """perf record -p fails at once ("No such process") on a zombie: `--pid ZOMBIE` ended in
    perf's message after three restarts, and a server with one unreaped child could not be
    recorded at all."""
    import sys

    parent = subprocess.Popen([sys.executable, "-c", ZOMBIE_PARENT], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        zombie = int(parent.stdout.readline())
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "Z" not in open(f"/proc/{zombie}/stat").read().rsplit(")", 1)[1][:3]:
            time.sleep(0.05)
        with pytest.raises(UsageError) as refused:
            targets.resolve(pid=zombie)
        assert str(refused.value) == f"--pid {zombie}: the process has exited (a zombie: its parent has not reaped it)"
        assert zombie in descendants(parent.pid)
        target = targets.resolve(pid=parent.pid)
        assert target.pids == [parent.pid] and target.perf_scope() == ["-p", str(parent.pid)]
        assert target.refresh() and target.pids == [parent.pid]
    finally:
        kill_group(parent)


@pytest.mark.skipif(_maps_readable(1), reason="needs a process whose memory map root cannot read "
                                             "(in this project's sandbox: its PID 1)")
def test_a_process_perf_cannot_trace_is_named_before_perf_fails_without_a_word():
    """perf record -p exits 255 with no message when it cannot read a process's maps."""
    with pytest.raises(EnvironmentProblem) as err:
        targets.resolve(pid=1)
    assert str(err.value) == ("--pid 1: it cannot be traced: /proc/1/maps is not readable (a sandbox or "
                              "another user namespace protects it)")
    with pytest.raises(EnvironmentProblem, match=f"--pid {os.getpid()}: process 1 below it cannot be traced"):
        targets.check_traceable([os.getpid(), 1], os.getpid())
    targets.check_traceable([os.getpid(), 999_999_999], os.getpid())  # gone: perf's to say


def test_cgroup_mounts_on_this_machine_and_a_v1_perf_event_layout(tmp_path):
    here = targets.cgroup_mounts()
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        v2 = [line.split()[4] for line in handle if " - cgroup2 " in line]
    assert here[:len(v2)] == v2
    fake = tmp_path / "mountinfo"
    fake.write_text(
        "30 25 0:26 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu\n"
        "31 25 0:27 / /sys/fs/cgroup/perf_event rw,relatime shared:10 - cgroup cgroup rw,perf_event\n"
        "garbage line\n")
    assert targets.cgroup_mounts(str(fake)) == ["/sys/fs/cgroup/perf_event"]
    # a cgroup2 hierarchy (whatever this host mounts), with optional fields and an escaped space:
    # it comes first, v1 perf_event after it
    fake.write_text(
        "31 25 0:27 / /sys/fs/cgroup/perf_event rw,relatime shared:10 - cgroup cgroup rw,perf_event\n"
        "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:11 master:3 - cgroup2 cgroup2 "
        "rw,nsdelegate,memory_recursiveprot\n"
        "36 35 0:31 / /mnt/my\\040cgroups rw,relatime - cgroup2 none rw\n"
        "37 24 0:32 / /sys/fs/bpf rw,relatime - bpf bpf rw\n")
    assert targets.cgroup_mounts(str(fake)) == ["/sys/fs/cgroup", "/mnt/my cgroups", "/sys/fs/cgroup/perf_event"]
    assert targets.cgroup_mounts(str(tmp_path / "absent")) == []
    with pytest.raises(UsageError, match="no cgroup2"):
        targets.resolve_cgroup("x", mounts=[])


@root_only
def test_a_cgroup_resolves_by_relative_or_absolute_path_and_counts_sub_groups(cgroup):
    name, top, procs = cgroup
    procs.append(start_in(top, ["sleep", "30"]))
    procs.append(start_in(os.path.join(top, "sub"), ["sleep", "30"]))
    assert targets.resolve_cgroup(name) == (name, top)
    assert targets.resolve_cgroup(top) == (name, top)
    assert targets.resolve_cgroup(f"/{name}/sub/")[0] == f"{name}/sub"
    target = targets.resolve(cgroup=name)
    assert target.pids == sorted(p.pid for p in procs)
    assert target.perf_scope() == ["-a", "-G", name] and target.scoped
    assert targets.resolve(cgroup=f"{name}/sub").pids == [procs[1].pid]
    with pytest.raises(UsageError, match="no such cgroup"):
        targets.resolve(cgroup=f"{name}/absent")


@root_only
def test_an_empty_cgroup_and_two_targets_are_refused(cgroup):
    name, _top, _procs = cgroup
    with pytest.raises(UsageError, match="no process in it"):
        targets.resolve(cgroup=f"{name}/sub")
    with pytest.raises(UsageError, match="one target"):
        targets.resolve(comm="nginx", cgroup=name)
    with pytest.raises(UsageError, match="no such process"):
        targets.resolve(pid=2 ** 22 + 1)
    with pytest.raises(UsageError, match="no such network namespace"):
        targets.resolve(netns="advisor-no-such-netns")
