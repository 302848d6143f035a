"""Which processes `advise run` is about, and how perf is told to sample them.

A target is a process tree (`--pid`: the process and every descendant, so an nginx master brings
its workers), a command name (`--comm`), a cgroup (`--cgroup`: every process in it and in its
sub-cgroups, the way systemd services and containers are grouped), or the processes of a network
namespace (`--netns`). perf samples every CPU unless the target is a process tree (`-p`) or a
cgroup (`-a -G`): then the profile holds only the target's samples, and the estimates are scaled
by the target's part of the CPUs' busy time (see engine.estimate.scoped_bottleneck).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import EnvironmentProblem, UsageError
from ..proc import alive, descendants
from .probes.processes import pids_by_comm

MOUNTINFO = "/proc/self/mountinfo"


@dataclass
class Target:
    pid: int | None = None
    cgroup: str | None = None  # path relative to the cgroup mount, as perf -G wants it
    pids: list[int] = field(default_factory=list)

    @property
    def scoped(self) -> bool:
        """Whether perf samples only the target (not every CPU)."""
        return self.pid is not None or self.cgroup is not None

    def refresh(self) -> bool:
        """List the --pid process tree again (one of it ended before perf attached to it);
        False when there is nothing to list again: no --pid, or that process itself is gone."""
        if self.pid is None or not alive(self.pid):
            return False
        self.pids = live_tree(self.pid)
        return True

    def perf_scope(self) -> list[str]:
        """perf record's scope options; they come after `-e` (perf wants -G after the event)."""
        if self.cgroup is not None:
            return ["-a", "-G", self.cgroup]
        if self.pid is not None:
            return ["-p", ",".join(map(str, self.pids or [self.pid]))]
        return ["-a"]

    def describe(self) -> str:
        if self.cgroup is not None:
            return f"cgroup {self.cgroup} ({len(self.pids)} processes)"
        if self.pid is not None:
            extra = len(self.pids) - 1
            return f"process {self.pid}" + (f" and {extra} descendants" if extra > 0 else "")
        return "all CPUs"


def live_tree(pid: int) -> list[int]:
    """`pid` and its descendants that still run: perf record -p fails at once ("No such process")
    on a zombie, a child that exited and that its parent has not reaped."""
    return [pid, *(child for child in descendants(pid) if alive(child))]


def check_traceable(pids: list[int], asked: int) -> None:
    """perf record -p reads each process's memory map first, and a process it may not read (a
    sandbox's, another user namespace's) makes it exit 255 without a word: say which one."""
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps", "rb"):
                pass
        except PermissionError:
            which = "it" if pid == asked else f"process {pid} below it"
            raise EnvironmentProblem(f"--pid {asked}: {which} cannot be traced: /proc/{pid}/maps is not "
                                     f"readable (a sandbox or another user namespace protects it)") from None
        except OSError:  # gone meanwhile: perf says so, if it matters
            pass


# ---------------------------------------------------------------- cgroups

def cgroup_mounts(mountinfo: str = MOUNTINFO) -> list[str]:
    """Mount points perf can filter on: the cgroup2 hierarchy, then a v1 perf_event hierarchy."""
    v2, v1 = [], []
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                left, _, right = line.partition(" - ")
                parts, fs = left.split(), right.split()
                if len(parts) < 5 or len(fs) < 3:
                    continue
                mount = parts[4].replace("\\040", " ")
                if fs[0] == "cgroup2":
                    v2.append(mount)
                elif fs[0] == "cgroup" and "perf_event" in fs[2].split(","):
                    v1.append(mount)
    except OSError:
        pass
    return v2 + v1


def resolve_cgroup(spec: str, mounts: list[str] | None = None) -> tuple[str, str]:
    """(name relative to its mount, for perf -G; its directory). `spec` is either a path under a
    cgroup mount (/sys/fs/cgroup/system.slice/nginx.service) or relative to it
    (system.slice/nginx.service, or /system.slice/nginx.service as /proc/PID/cgroup shows it)."""
    mounts = cgroup_mounts() if mounts is None else mounts
    if not mounts:
        raise UsageError(f"--cgroup {spec}: no cgroup2 (or v1 perf_event) hierarchy is mounted; "
                         "perf filters by cgroup only there")
    for mount in mounts:
        rel = os.path.relpath(os.path.normpath(spec), mount) if os.path.isabs(spec) else ".."
        if rel.startswith(".."):  # not a path under this mount: relative to it, as /proc/PID/cgroup says
            rel = os.path.normpath(spec.strip("/")) if spec.strip("/") else "."
        if rel.startswith(".."):
            continue
        directory = os.path.normpath(os.path.join(mount, rel))
        if os.path.isfile(os.path.join(directory, "cgroup.procs")):
            return ("/" if rel == "." else rel), directory
    raise UsageError(f"--cgroup {spec}: no such cgroup under {', '.join(mounts)}")


def cgroup_pids(directory: str) -> list[int]:
    """Processes in the cgroup at `directory` and in every cgroup below it."""
    found: set[int] = set()
    for root, _dirs, files in os.walk(directory):
        if "cgroup.procs" in files:
            try:
                with open(os.path.join(root, "cgroup.procs"), encoding="ascii") as handle:
                    found.update(int(p) for p in handle.read().split())
            except (OSError, ValueError):
                continue  # removed meanwhile
    return sorted(found)


# ---------------------------------------------------------------- all of them

def netns_pids(name: str) -> list[int]:
    """Processes whose network namespace is /run/netns/NAME."""
    try:
        wanted = os.stat(f"/run/netns/{name}")
    except OSError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                st = os.stat(f"/proc/{entry}/ns/net")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (wanted.st_dev, wanted.st_ino):
                found.append(int(entry))
    return sorted(found)


def resolve(comm: str | None = None, pid: int | None = None, cgroup: str | None = None,
            netns: str | None = None) -> Target:
    """The target and its processes: --pid (with descendants), --cgroup, --comm, else --netns's."""
    if sum(x is not None for x in (comm, pid, cgroup)) > 1:
        raise UsageError("--comm, --pid and --cgroup: give one target, not several")
    if netns is not None and not os.path.exists(f"/run/netns/{netns}"):
        raise UsageError(f"--netns {netns}: no such network namespace (see `ip netns list`)")
    target = Target(pid=pid)
    if pid is not None:
        if not os.path.exists(f"/proc/{pid}"):
            raise UsageError(f"--pid {pid}: no such process")
        if not alive(pid):
            raise UsageError(f"--pid {pid}: the process has exited (a zombie: its parent has not reaped it)")
        target.pids = live_tree(pid)
        check_traceable(target.pids, pid)
    elif cgroup is not None:
        target.cgroup, directory = resolve_cgroup(cgroup)
        target.pids = cgroup_pids(directory)
        if not target.pids:
            raise UsageError(f"--cgroup {cgroup}: no process in it (nothing to sample)")
    elif comm:
        target.pids = pids_by_comm(comm)
    elif netns:
        target.pids = netns_pids(netns)
    return target
