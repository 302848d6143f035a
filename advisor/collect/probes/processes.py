"""Target processes (CPU affinity, threads, seccomp) and whether irqbalance runs."""

from __future__ import annotations

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


def pids_by_comm(comms: str) -> list[int]:
    """Processes whose name matches `comms`: command-name globs, comma-separated (`nginx,wrk`,
    `php-fpm*`), each cut to the 15 bytes the kernel keeps: the family the analysis matches
    samples with, so that `--comm` means one thing wherever it is taken."""
    from advisor.profile import comm_family  # here: a probe run alone needs none of the analysis

    family = comm_family(comms)
    return [pid for pid in pids() if (name := read_comm(pid)) is not None and family.matches(name)]


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
