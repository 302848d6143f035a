"""BPF counters for the window: bcc's `BPF(text=...)` where it compiles, bcc's CO-RE tools otherwise.

bcc compiles C at run time against the running kernel's headers; many servers (this one included)
have BTF but no headers, where only the prebuilt CO-RE tools (libbpf-tools) and bpftrace work. Both
paths give the same counters.json fields; the status says which one ran and why the other did not.

All of this is opt-in (`advise run --bpf`): every probe runs on a hot path of the server (each
syscall, each softirq), which on a loaded nginx costs far more throughput than the perf sampling
(bench/bench_overhead.py). Whatever /proc already counts is not traced at all (procfs.py).

`plan()` prepares the jobs (compiling and attaching the bcc program if it can, so a compile failure
is known before the window starts); the caller runs them together with perf stat, then
`assemble()` turns their results into counters.json fields and collector statuses.
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import os
import sys
import time
from typing import Callable

from advisor.collect import core_tools
from advisor.collect.core_tools import SOFTIRQ_NAMES, Children

BCC_DIR = "/usr/lib/python3/dist-packages/bcc"  # Debian's python3-bpfcc (system python only)


# ---------------------------------------------------------------- importing bcc

def import_bcc(directory: str = BCC_DIR):
    """Load the `bcc` package from exactly `directory`, without putting dist-packages on sys.path.

    The venv does not see system packages on purpose; bcc is pure Python over libbcc.so (ctypes) and
    imports only the standard library, so it can be loaded on its own. Raises ImportError if absent.
    """
    if "bcc" in sys.modules:
        return sys.modules["bcc"]
    init = os.path.join(directory, "__init__.py")
    if not os.path.isfile(init):
        raise ImportError(f"bcc not installed ({init} absent; Debian package python3-bpfcc)")
    spec = importlib.util.spec_from_file_location("bcc", init, submodule_search_locations=[directory])
    module = importlib.util.module_from_spec(spec)
    sys.modules["bcc"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        for name in [n for n in sys.modules if n == "bcc" or n.startswith("bcc.")]:
            del sys.modules[name]
        raise
    return module


def kernel_header_dirs(release: str | None = None) -> list[str]:
    """Where bcc looks for the running kernel's headers (the first found is used)."""
    release = release or os.uname().release
    candidates = [f"/lib/modules/{release}/build", f"/lib/modules/{release}/source",
                  *sorted(glob.glob(f"/usr/src/linux-headers-{release}*")), "/sys/kernel/kheaders.tar.xz"]
    if os.environ.get("BCC_KERNEL_SOURCE"):
        candidates.insert(0, os.environ["BCC_KERNEL_SOURCE"])
    return [path for path in candidates if os.path.exists(path)]


def bcc_can_compile() -> tuple[bool, str]:
    """(True, where the headers are) or (False, why `BPF(text=...)` cannot compile here)."""
    release = os.uname().release
    try:
        import_bcc()
    except Exception as exc:  # libbcc.so missing raises OSError from ctypes, not ImportError
        return False, f"bcc python module unusable: {type(exc).__name__}: {exc}"
    found = kernel_header_dirs(release)
    if not found:
        return False, (f"no kernel headers for {release} (/lib/modules/{release}/build, "
                       f"/usr/src/linux-headers-{release}*, /sys/kernel/kheaders.tar.xz all absent): "
                       "BPF(text=) cannot compile")
    return True, f"kernel headers at {found[0]}"


# ---------------------------------------------------------------- the bcc program

BCC_PROGRAM = r"""
struct softirq_key { u32 cpu; u32 vec; };

BPF_HASH(syscalls_by_nr, u32, u64, 1024);      // the target's syscalls (all, without a target)
BPF_HASH(syscalls_by_tgid, u32, u64, 10240);   // every process
BPF_PERCPU_ARRAY(softirq_start, u64, 1);
BPF_HASH(softirq_ns, struct softirq_key, u64, 1024);
BPF_HASH(softirq_count, struct softirq_key, u64, 1024);

static inline bool is_target(u32 tgid) {
    TARGET_FILTER
}
"""

# Only the probes of what was asked for are attached: each one runs on a hot path.
BCC_SYSCALL_PROBES = r"""
TRACEPOINT_PROBE(raw_syscalls, sys_enter) {
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    syscalls_by_tgid.increment(tgid);
    if (!is_target(tgid))
        return 0;
    u32 nr = args->id;
    syscalls_by_nr.increment(nr);
    return 0;
}
"""

BCC_SOFTIRQ_PROBES = r"""
TRACEPOINT_PROBE(irq, softirq_entry) {
    u32 zero = 0;
    u64 now = bpf_ktime_get_ns();
    softirq_start.update(&zero, &now);
    return 0;
}

TRACEPOINT_PROBE(irq, softirq_exit) {
    u32 zero = 0;
    u64 *start = softirq_start.lookup(&zero);
    if (!start || *start == 0)
        return 0;
    struct softirq_key key = {};
    key.cpu = bpf_get_smp_processor_id();
    key.vec = args->vec;
    softirq_ns.increment(key, bpf_ktime_get_ns() - *start);
    softirq_count.increment(key);
    *start = 0;
    return 0;
}
"""


def target_filter(pids: list[int] | None, comm: str | None) -> str:
    """C body of is_target(): the target's processes by tgid, else by comm, else everything.

    The comm is compared byte by byte (numeric codes, so any name is safe to paste into C); the
    kernel keeps 15 bytes of it.
    """
    if pids:
        return "return " + " || ".join(f"tgid == {int(pid)}" for pid in pids) + ";"
    if comm:
        name = comm.encode()[:15]
        tests = " || ".join(f"c[{i}] != {byte}" for i, byte in enumerate(name))
        return ("char c[16] = {};\n    bpf_get_current_comm(&c, sizeof(c));\n"
                f"    if ({tests} || c[{len(name)}] != 0)\n        return false;\n    return true;")
    return "return true;"


def bcc_program(pids: list[int] | None, comm: str | None,
                selection: frozenset[str] = frozenset({"syscalls", "softirq-time"})) -> str:
    text = BCC_PROGRAM.replace("TARGET_FILTER", target_filter(pids, comm))
    if "syscalls" in selection:
        text += BCC_SYSCALL_PROBES
    if "softirq-time" in selection:
        text += BCC_SOFTIRQ_PROBES
    return text


class BccCounters:
    """The compiled program, attached from construction; `collect()` zeroes, waits and reads."""

    def __init__(self, pids: list[int] | None, comm: str | None, ncpu: int, selection: frozenset[str]):
        self.bcc = import_bcc()
        self.ncpu = ncpu
        self.selection = selection
        self.bpf = self.bcc.BPF(text=bcc_program(pids, comm, selection))

    def close(self) -> None:
        self.bpf.cleanup()

    def collect(self, seconds: int) -> dict:
        try:
            for name in ("syscalls_by_nr", "syscalls_by_tgid", "softirq_ns", "softirq_count"):
                self.bpf[name].clear()
            start = time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - start
            return self._read(elapsed)
        finally:
            self.close()

    def _read(self, elapsed: float) -> dict:
        from_bcc = importlib.import_module("bcc.syscall").syscall_name  # not imported by bcc itself
        by_name: dict[str, int] = {}
        for nr, count in self.bpf["syscalls_by_nr"].items():
            name = from_bcc(nr.value).decode(errors="replace")
            by_name[name] = by_name.get(name, 0) + count.value
        by_tgid = sorted(((k.value, v.value) for k, v in self.bpf["syscalls_by_tgid"].items()),
                         key=lambda kv: -kv[1])[:20]
        softirqs: dict[str, dict] = {}
        counts = {(k.cpu, k.vec): v.value for k, v in self.bpf["softirq_count"].items()}
        for key, nsecs in self.bpf["softirq_ns"].items():
            if key.vec >= len(SOFTIRQ_NAMES) or key.cpu >= self.ncpu:
                continue
            entry = softirqs.setdefault(SOFTIRQ_NAMES[key.vec],
                                        {"per_cpu_usecs": [0] * self.ncpu, "per_cpu_counts": [0] * self.ncpu})
            entry["per_cpu_usecs"][key.cpu] += nsecs.value // 1000
            entry["per_cpu_counts"][key.cpu] += counts.get((key.cpu, key.vec), 0)
        return {"elapsed": elapsed, "probes": sorted(self.selection), "by_name": by_name,
                "by_process": [{"pid": pid, "comm": _comm(pid), "count": n} for pid, n in by_tgid],
                "softirqs": softirqs}


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return "?"


# ---------------------------------------------------------------- planning and assembling

# What `--bpf` may run; each costs throughput while it runs (bench/bench_overhead.py).
#   syscalls      every syscall of the target by name (bcc program or one syscount per target process)
#   softirq-time  time in each softirq vector per CPU (bcc program or bpftrace on softirq_entry/exit)
#   tracepoints   perf stat counts: system-wide migrations, NAPI polls, packets received, lock contention
#   runqlat       run-queue latency histogram (sched_wakeup/sched_switch): p50/p99
# Everything else the BPF tools used to count comes from /proc at no cost (procfs.py): softirq
# counts per CPU, hard interrupts by name, context switches, the target's migrations.
CHOICES = ("syscalls", "softirq-time", "tracepoints", "runqlat")
DEFAULT_SELECTION = frozenset({"syscalls", "softirq-time", "tracepoints"})


def plan(seconds: int, pids: list[int] | None, comm: str | None, children: Children,
         ncpu: int, selection: frozenset[str] = DEFAULT_SELECTION) -> tuple[dict[str, Callable[[], object]], dict]:
    """The BPF jobs to run for the window and the status of the bcc path.

    With bcc: one program for syscalls and softirq time. Without: the CO-RE syscount (one per
    target process, capped) and bpftrace for per-CPU softirq time. runqlat either way when asked.
    """
    status: dict = {}
    jobs: dict[str, Callable[[], object]] = {}
    if "runqlat" in selection:
        jobs["runqlat"] = lambda: core_tools.run_runqlat(children, seconds)
    in_program = selection & {"syscalls", "softirq-time"}
    if not in_program:
        return jobs, status
    can, why = bcc_can_compile()
    if can:
        try:
            counters = BccCounters(pids, comm, ncpu, in_program)
        except Exception as exc:  # bcc raises a bare Exception("Failed to compile BPF module ...")
            status["bcc"] = {"status": "failed", "detail": f"{why}, but: {exc}"}
        else:
            status["bcc"] = {"status": "ok", "detail": why}
            jobs["bcc"] = lambda: counters.collect(seconds)
            return jobs, status
    else:
        status["bcc"] = {"status": "unavailable", "detail": why}
    if "syscalls" in selection:
        targets = list(pids or [])
        if targets:
            for pid in targets[:core_tools.MAX_TARGET_PIDS]:
                jobs[f"syscount -p {pid}"] = (lambda p=pid: core_tools.run_syscount(children, seconds, p))
        else:
            jobs["syscount"] = lambda: core_tools.run_syscount(children, seconds)
    if "softirq-time" in selection:
        jobs["bpftrace"] = lambda: core_tools.run_bpftrace_softirqs(children, seconds, ncpu)
    return jobs, status


def _scope(pids: list[int] | None, comm: str | None) -> str:
    if pids:
        shown = pids[:core_tools.MAX_TARGET_PIDS]
        text = "pid " + ",".join(map(str, shown))
        if len(pids) > len(shown):
            text += f" (first {len(shown)} of {len(pids)} processes{' named ' + comm if comm else ''})"
        elif comm:
            text += f" ({comm})"
        return text
    return f"comm {comm}" if comm else "system"


def assemble(results: dict[str, tuple[str, object, float]], seconds: int, pids: list[int] | None,
             comm: str | None, status: dict) -> tuple[dict, dict]:
    """Job results -> (counters.json fields, statuses).

    `results` maps each job name to ("ok", value, wall seconds) or ("failed", reason, wall seconds).
    """
    fields: dict = {}
    ok = {name: value for name, (state, value, _) in results.items() if state == "ok"}
    scope = _scope(pids, comm)

    if "bcc" in results:
        state, value, wall = results["bcc"]
        if state != "ok":
            status["bcc"] = {"status": "failed", "detail": f"{value}", "seconds": round(wall, 2)}
        else:
            status["bcc"]["detail"] += f"; ran for {value['elapsed']:.1f} s"
            elapsed = value["elapsed"]
            if "syscalls" in value["probes"]:
                total = sum(value["by_name"].values())
                fields["syscalls"] = {"per_sec": round(total / elapsed, 1), "by_name": value["by_name"],
                                      "by_process": value["by_process"], "scope": scope,
                                      "source": "bcc BPF(text=): raw_syscalls:sys_enter"}
            if "softirq-time" in value["probes"]:
                fields["softirqs"] = {
                    vec: {"per_cpu_usecs": entry["per_cpu_usecs"], "total_usecs": sum(entry["per_cpu_usecs"])}
                    for vec, entry in value["softirqs"].items()}
    else:
        by_name_jobs = [n for n in results if n == "syscount" or n.startswith("syscount -p ")]
        if by_name_jobs and all(n in ok for n in by_name_jobs):
            by_name: dict[str, int] = {}
            for name in by_name_jobs:
                for call, count in ok[name].items():
                    by_name[call] = by_name.get(call, 0) + count
            by_name = dict(sorted(by_name.items(), key=lambda kv: -kv[1]))
            fields["syscalls"] = {"per_sec": round(sum(by_name.values()) / seconds, 1), "by_name": by_name,
                                  "scope": scope, "source": "libbpf-tools syscount (counted at sys_exit)"}
        if "bpftrace" in ok:
            fields["softirqs"] = {vec: {"per_cpu_usecs": per_cpu, "total_usecs": sum(per_cpu)}
                                  for vec, per_cpu in ok["bpftrace"].items()}
    if "runqlat" in ok:
        fields["runqlat_usecs"] = ok["runqlat"]

    tool_jobs = {n: r for n, r in results.items() if n not in ("bcc", "bpftrace")}
    if tool_jobs:
        status["libbpf-tools"] = _summary(tool_jobs, seconds)
    if "bpftrace" in results:
        status["bpftrace"] = _summary({"bpftrace softirq per-CPU time": results["bpftrace"]}, seconds)
    return fields, status


def _summary(jobs: dict[str, tuple[str, object, float]], seconds: int) -> dict:
    """One status for a group of tools: failed if any failed, with each tool's own outcome."""
    failed = {n: str(v) for n, (state, v, _) in jobs.items() if state != "ok"}
    ran = [n for n in jobs if n not in failed]
    parts = []
    if ran:
        parts.append(f"{', '.join(ran)} ran for {seconds} s")
    parts += [f"{reason}" if reason.startswith(name.split()[0]) else f"{name}: {reason}"
              for name, reason in failed.items()]
    return {"status": "failed" if failed else "ok", "detail": "; ".join(parts),
            "tools": {n: {"status": state, "seconds": round(wall, 2),
                          **({"detail": str(v)} if state != "ok" else {})}
                      for n, (state, v, wall) in jobs.items()}}
