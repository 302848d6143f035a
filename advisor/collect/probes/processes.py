"""Target processes (CPU affinity, threads, seccomp) and whether irqbalance runs."""

from __future__ import annotations

import fnmatch
import os

from .common import ProbeError, pids, probe, read_text

STATUS_FIELDS = {
    "Threads": "threads",
    "Cpus_allowed_list": "cpus_allowed_list",
    "Seccomp": "seccomp_mode",            # 0 off, 1 strict, 2 filter
    "Seccomp_filters": "seccomp_filters",  # number of attached filters (kernel >= 5.9)
    "Speculation_Store_Bypass": "speculation_store_bypass",
}
INTEGER_FIELDS = {"threads", "seccomp_mode", "seccomp_filters"}


def read_comm(pid: int) -> str | None:
    try:
        return read_text(f"/proc/{pid}/comm").rstrip("\n")
    except ProbeError:
        return None  # the process ended while we looked


COMM_LEN = 15  # the kernel keeps a process name's first 15 bytes (TASK_COMM_LEN 16)


def pids_by_comm(comms: str) -> list[int]:
    """Processes whose name matches `comms`: command-name globs, comma-separated (`nginx,wrk`,
    `php-fpm*`), each cut to the 15 bytes the kernel keeps: what `--comm` means wherever it is
    taken (the analysis matches samples the same way: advisor.profile.comm_family)."""
    patterns = [name[:COMM_LEN] for name in comms.split(",") if name]
    found = []
    for pid in pids():
        name = read_comm(pid)
        if name is not None and any(fnmatch.fnmatchcase(name, p) for p in patterns):
            found.append(pid)
    return found


@probe
def process_info(pid: int) -> dict:
    try:
        status = read_text(f"/proc/{pid}/status")
    except ProbeError:
        raise ProbeError(f"no process {pid}") from None
    info: dict = {"pid": pid, "comm": read_comm(pid)}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in STATUS_FIELDS:
            name, value = STATUS_FIELDS[key], value.strip()
            info[name] = int(value) if name in INTEGER_FIELDS else value
    for name in STATUS_FIELDS.values():
        info.setdefault(name, None)
    try:
        info["exe"] = os.readlink(f"/proc/{pid}/exe")
    except OSError as exc:  # kernel threads have no exe; other users' need root
        info["exe"] = None
        info["exe_error"] = exc.strerror
    return info


def processes_state(target_pids=None, comm: str | None = None) -> list[dict]:
    wanted = list(target_pids or [])
    if comm:
        wanted += [pid for pid in pids_by_comm(comm) if pid not in wanted]
    return [process_info(pid) for pid in wanted]


def workers_summary(processes: list[dict], cpu_count: int | None) -> dict:
    """Worker processes and threads against the CPUs: more busy workers than CPUs thrash."""
    alive = [p for p in processes if "error" not in p]
    return {
        "processes": len(alive),
        "threads": sum(p.get("threads") or 0 for p in alive),
        "cpus": cpu_count,
    }


@probe
def irqbalance_state() -> dict:
    running = [pid for pid in pids() if read_comm(pid) == "irqbalance"]
    return {"running": bool(running), "pids": running}
