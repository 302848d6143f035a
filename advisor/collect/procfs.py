"""Kernel counters from /proc: the default collector of `advise run`, because it is nearly free.

The kernel keeps these counters whether anyone reads them or not, so reading a few files at the
start and at the end of the window costs the server nothing (no tracepoint is enabled, no program
runs on its hot path). What each file gives:

    /proc/softirqs                 softirq handlers run, per vector and CPU -> softirqs.<VEC>
    /proc/stat                     ctxt (context switches), intr (every interrupt, local timer and
                                   IPIs included), processes (forks), per-CPU time split
    /proc/interrupts               every interrupt line per CPU -> hardirqs.by_name
    /proc/PID/task/TID/sched       se.nr_migrations, nr_switches of each thread
    /proc/PID/task/TID/schedstat   time spent waiting on a run queue, and timeslices run
    /proc/PID/io                   syscr / syscw (see SYSCR_SYSCW below: NOT every syscall)
    /proc/PID/task/TID/stat        field 39: the CPU a thread last ran on (sampled in the window)

Per-thread counters miss threads that exit during the window (their counts go with them); a
thread born during the window counts from 0, which is right.
"""

from __future__ import annotations

import os
import time

from advisor.collect.probes.common import ProbeError
from advisor.collect.probes.interrupts import cpu_numbers, interrupt_rows, per_cpu
from advisor.errors import InputError

# What syscr/syscw count, checked on this kernel (6.18) with a loop of each call (io_uring from the
# kernel source: its reads and writes call the file's read_iter/write_iter directly):
SYSCR_SYSCW = (
    "syscr counts read, readv, pread64, preadv, preadv2 calls (failed ones too, e.g. EAGAIN), syscw "
    "write, writev, pwrite64, pwritev, pwritev2; sendfile and copy_file_range count in both; recv, "
    "recvfrom, recvmsg, send, sendto, sendmsg, splice, io_uring and every other syscall in neither")

# Placement sampling of the target's threads costs a few reads per thread: keep it under ~0.5 %
# of one CPU by sleeping at least this many times as long as a sweep took (40 samples in 10 s
# are plenty to see which CPUs a server runs on).
PLACEMENT_MIN_INTERVAL_S = 0.25
PLACEMENT_DUTY = 200
# Reading every task's sched and schedstat costs ~0.1 ms a task, twice: past this many tasks the
# system-wide migrations (no target given) are not read.
SYSTEM_WIDE_MAX_TASKS = 20000

STAT_CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


# ---------------------------------------------------------------- system-wide files

def _cpu_columns(header: str, path: str) -> list[int]:
    try:
        return cpu_numbers(header)
    except ProbeError as exc:
        raise InputError(str(exc), path, 1) from None


def read_softirqs(path: str = "/proc/softirqs", ncpu: int | None = None) -> dict[str, list[int]]:
    """{vector: [count on cpu0, cpu1, ...]} since boot."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    columns = _cpu_columns(lines[0], path)
    table = {}
    for number, line in enumerate(lines[1:], 2):
        name, _, rest = line.partition(":")
        values = rest.split()
        if len(values) != len(columns) or not all(v.isdigit() for v in values):
            raise InputError(f"unexpected row {line.strip()[:60]!r}", path, number)
        table[name.strip()] = per_cpu(columns, [int(v) for v in values], ncpu or len(columns))
    return table


def read_stat(path: str = "/proc/stat", ncpu: int | None = None) -> dict:
    """{ctxt, intr, processes, cpu_ticks: {field: [ticks per cpu]}} since boot."""
    found: dict = {}
    ticks: dict[int, list[int]] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            key, _, rest = line.partition(" ")
            if key in ("ctxt", "processes", "intr"):
                first = rest.split(maxsplit=1)[0] if rest.strip() else ""
                if not first.isdigit():
                    raise InputError(f"{key}: not a number: {first[:30]!r}", path, number)
                found[key] = int(first)
            elif key.startswith("cpu") and key[3:].isdigit():
                values = rest.split()[:len(STAT_CPU_FIELDS)]
                if len(values) < 7 or not all(v.isdigit() for v in values):
                    raise InputError(f"unexpected row {line.strip()[:60]!r}", path, number)
                ticks[int(key[3:])] = [int(v) for v in values] + [0] * (len(STAT_CPU_FIELDS) - len(values))
    missing = [k for k in ("ctxt", "intr") if k not in found]
    if missing or not ticks:
        raise InputError(f"no {', '.join(missing) or 'cpuN'} line", path, None)
    columns = sorted(ticks)
    found["cpu_ticks"] = {field: per_cpu(columns, [ticks[c][i] for c in columns], ncpu or len(columns))
                          for i, field in enumerate(STAT_CPU_FIELDS)}
    return found


def read_interrupts(path: str = "/proc/interrupts") -> dict[str, tuple[str, int]]:
    """{row key ('41', 'LOC', ...): (name, count summed over CPUs)} since boot.

    The name of a numbered line is its last word (the handler: 'virtio3-rx'), as bcc's hardirqs
    prints it; the other lines keep their key (LOC, RES, CAL, TLB...). ERR and MIS have one count.
    """
    with open(path, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    try:
        _, parsed = interrupt_rows(text)
    except ProbeError as exc:
        raise InputError(str(exc), path, 1) from None
    rows = {}
    for number, key, counts, words, line in parsed:
        if not key:
            raise InputError(f"unexpected row {line.strip()[:60]!r}", path, number)
        if not counts:
            raise InputError(f"no count in {line.strip()[:60]!r}", path, number)
        rows[key] = (words[-1] if key.isdigit() and words else key, sum(counts))
    return rows


# ---------------------------------------------------------------- per-process files

def task_ids(pids: list[int] | None) -> list[tuple[int, int]]:
    """(pid, tid) of every thread of `pids`, or of every task on the box when pids is None."""
    if pids is None:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    found = []
    for pid in pids:
        try:
            found += [(pid, int(tid)) for tid in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue  # gone
    return found


def read_task_sched(pid: int, tid: int) -> tuple[int, int, int, int, int] | None:
    """(se.nr_migrations, nr_switches, ns waited on a run queue, timeslices, ns on a CPU) of one
    thread; None if gone."""
    try:
        with open(f"/proc/{pid}/task/{tid}/sched", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
        with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as handle:
            ran, waited, slices = handle.read().split()
    except (OSError, ValueError):
        return None
    migrations = switches = None
    for line in text.splitlines():
        if line.startswith("se.nr_migrations "):
            migrations = int(line.rsplit(":", 1)[1])
        elif line.startswith("nr_switches "):
            switches = int(line.rsplit(":", 1)[1])
    if migrations is None or switches is None:
        return None
    return migrations, switches, int(waited), int(slices), int(ran)


def read_process_io(pid: int) -> tuple[int, int] | None:
    """(syscr, syscw) of a process, all its threads (live and exited) summed; None if gone."""
    try:
        with open(f"/proc/{pid}/io", encoding="ascii") as handle:
            fields = dict(line.split(":", 1) for line in handle.read().splitlines() if ":" in line)
        return int(fields["syscr"]), int(fields["syscw"])
    except (OSError, KeyError, ValueError):
        return None


def thread_placement(pid: int, tid: int) -> tuple[int, int] | None:
    """(CPU it last ran on: stat field 39, utime + stime in ticks) of one thread; None if gone."""
    try:
        with open(f"/proc/{pid}/task/{tid}/stat", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # fields from 3 (state) on; comm may hold spaces
    return int(fields[39 - 3]), int(fields[14 - 3]) + int(fields[15 - 3])


def _delta(before: tuple | None, after: tuple) -> tuple:
    """after - before, field by field; a task absent before (born in the window, or a reused id
    whose counts went down) counts from 0."""
    if before is None or any(b > a for a, b in zip(after, before)):
        return after
    return tuple(a - b for a, b in zip(after, before))


class PlacementSampler:
    """Where the target's threads run: each sample credits a thread's current CPU with the CPU
    ticks it used since the previous sample (threads that used none count as 0.1, so a mostly
    idle server still shows where it wakes)."""

    def __init__(self, pids: list[int], ncpu: int):
        self.pids, self.weights, self.samples = pids, [0.0] * ncpu, 0
        self._ticks: dict[tuple[int, int], int] = {}
        self.busy_s = 0.0

    def sample(self) -> float:
        """One sweep over the target's threads; returns how long it took (seconds)."""
        started = time.monotonic()
        for pid, tid in task_ids(self.pids):
            seen = thread_placement(pid, tid)
            if seen is None or seen[0] >= len(self.weights):
                continue
            cpu, ticks = seen
            used = ticks - self._ticks.get((pid, tid), ticks)
            self._ticks[(pid, tid)] = ticks
            self.weights[cpu] += used if used > 0 else 0.1
        self.samples += 1
        took = time.monotonic() - started
        self.busy_s += took
        return took


# ---------------------------------------------------------------- the window

class Snapshot:
    """Every counter at one instant; parts that could not be read are None, with the reason."""

    def __init__(self, pids: list[int] | None, ncpu: int):
        self.time = time.monotonic()
        self.errors: dict[str, str] = {}
        self.softirqs = self._read("/proc/softirqs", lambda: read_softirqs(ncpu=ncpu))
        self.stat = self._read("/proc/stat", lambda: read_stat(ncpu=ncpu))
        self.interrupts = self._read("/proc/interrupts", read_interrupts)
        started = time.monotonic()
        ids = task_ids(pids)
        self.tasks: dict | None = None
        if pids is None and len(ids) > SYSTEM_WIDE_MAX_TASKS:
            self.skipped = f"{len(ids)} tasks, more than {SYSTEM_WIDE_MAX_TASKS}: not read (give a target)"
        else:
            self.tasks = {one: seen for one in ids if (seen := read_task_sched(*one)) is not None}
        # system-wide: every process but this one (whose own /proc reads would count as syscr)
        io_pids = pids if pids is not None else sorted({pid for pid, _ in ids} - {os.getpid()})
        self.io = {pid: seen for pid in io_pids if (seen := read_process_io(pid)) is not None}
        self.tasks_read_s = time.monotonic() - started

    def _read(self, name: str, reader):
        try:
            return reader()
        except (OSError, InputError, ValueError, IndexError) as exc:
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            return None


def _rate(count: float, seconds: float) -> float:
    return round(count / seconds, 1)


def window_fields(before: Snapshot, after: Snapshot, pids: list[int] | None) -> tuple[dict, dict]:
    """Two snapshots -> (counters.json fields, {dotted field: where it came from})."""
    seconds = max(after.time - before.time, 1e-3)
    scope = "system" if pids is None else "pid " + ",".join(map(str, pids))
    fields: dict = {}
    sources: dict = {}

    if before.softirqs is not None and after.softirqs is not None:
        softirqs = {}
        for vec, counts in after.softirqs.items():
            if vec in before.softirqs:
                per_cpu = [max(0, b - a) for a, b in zip(before.softirqs[vec], counts)]
                softirqs[vec] = {"per_cpu_counts": per_cpu, "per_sec": _rate(sum(per_cpu), seconds)}
        fields["softirqs"] = softirqs
        sources["softirqs.*.per_cpu_counts"] = sources["softirqs.*.per_sec"] = \
            "/proc/softirqs deltas (softirqs run, per vector and CPU; system-wide)"

    if before.stat is not None and after.stat is not None:
        fields["sched"] = {
            "context_switches_per_sec": _rate(after.stat["ctxt"] - before.stat["ctxt"], seconds)}
        sources["sched.context_switches_per_sec"] = "/proc/stat ctxt delta (system-wide)"
        if "processes" in after.stat and "processes" in before.stat:
            fields["sched"]["forks_per_sec"] = _rate(after.stat["processes"] - before.stat["processes"], seconds)
            sources["sched.forks_per_sec"] = "/proc/stat processes delta (system-wide)"
        fields["hardirqs"] = {"per_sec": _rate(after.stat["intr"] - before.stat["intr"], seconds)}
        sources["hardirqs.per_sec"] = ("/proc/stat intr delta: every interrupt (device IRQs, local timer, "
                                       "IPIs...; system-wide)")
        ticks = {field: [max(0, b - a) for a, b in zip(before.stat["cpu_ticks"][field], values)]
                 for field, values in after.stat["cpu_ticks"].items()}
        totals = [sum(ticks[field][cpu] for field in STAT_CPU_FIELDS) for cpu in range(len(ticks["idle"]))]
        fields["cpu_time_pct"] = {field: [round(100.0 * t / total, 1) if total else None
                                          for t, total in zip(values, totals)]
                                  for field, values in ticks.items()}
        sources["cpu_time_pct"] = ("/proc/stat per-CPU ticks: share of each CPU's time (irq/softirq exact "
                                   "only with CONFIG_IRQ_TIME_ACCOUNTING, else tick-sampled)")

    if before.interrupts is not None and after.interrupts is not None:
        by_name: dict[str, int] = {}
        device = 0
        for key, (name, count) in after.interrupts.items():
            delta = max(0, count - before.interrupts.get(key, (name, count))[1])
            if delta:
                by_name[name] = by_name.get(name, 0) + delta
                device += delta if key.isdigit() else 0
        hardirqs = fields.setdefault("hardirqs", {})
        hardirqs["by_name"] = dict(sorted(by_name.items(), key=lambda kv: -kv[1]))
        hardirqs["device_per_sec"] = _rate(device, seconds)
        sources["hardirqs.by_name"] = "/proc/interrupts deltas (numbered lines by handler name, others by key)"
        sources["hardirqs.device_per_sec"] = "/proc/interrupts deltas of the numbered (device) lines"

    if before.tasks is not None and after.tasks is not None:
        fields.setdefault("sched", {}).update(_task_fields(before.tasks, after.tasks, pids, seconds, sources))

    reads = writes = 0
    for pid, seen in after.io.items():
        r, w = _delta(before.io.get(pid), seen)
        reads, writes = reads + r, writes + w
    fields["syscalls"] = {
        "per_sec": _rate(reads + writes, seconds), "per_sec_is_lower_bound": True,
        "by_name": {"read": reads, "write": writes}, "scope": scope,
        "source": ("lower bound from /proc/PID/io: by_name.read = syscr, by_name.write = syscw, per_sec = "
                   "their sum (a sendfile counts twice); " + SYSCR_SYSCW + "; --bpf counts every syscall by name")}
    sources["syscalls"] = "/proc/PID/io syscr/syscw deltas (see syscalls.source)"
    return fields, sources


def _task_fields(before: dict, after: dict, pids: list[int] | None, seconds: float, sources: dict) -> dict:
    """Migrations, context switches and run-queue wait of the target's threads (or of every task)."""
    migrations = switches = waited = slices = ran = 0
    for ids, seen in after.items():
        m, s, w, n, r = _delta(before.get(ids), seen)
        migrations, switches, waited, slices, ran = migrations + m, switches + s, waited + w, slices + n, ran + r
    where = "the target's threads" if pids is not None else "every task"
    sched = {"migrations_per_sec": _rate(migrations, seconds),
             "migrations_scope": "system" if pids is None else "pid " + ",".join(map(str, pids))}
    sources["sched.migrations_per_sec"] = (f"/proc/PID/task/TID/sched se.nr_migrations deltas of {where} "
                                           f"({len(after)} at the end; exited tasks not counted)")
    if pids is not None:
        sched["target_context_switches_per_sec"] = _rate(switches, seconds)
        sources["sched.target_context_switches_per_sec"] = "/proc/PID/task/TID/sched nr_switches deltas"
        sched["target_cpus_used"] = round(ran / 1e9 / seconds, 3) if seconds > 0 else None
        sources["sched.target_cpus_used"] = ("/proc/PID/task/TID/schedstat time on a CPU, deltas over the "
                                             "window: CPUs' worth of time the target's threads ran")
    if slices:
        sched["runqueue_wait_avg_usecs"] = round(waited / slices / 1000.0, 1)
        sources["sched.runqueue_wait_avg_usecs"] = (f"/proc/PID/task/TID/schedstat: time waiting on a run "
                                                    f"queue per timeslice, mean over {where}")
    return sched


class ProcfsWindow:
    """Snapshot at start(), placement samples while waiting, snapshot and deltas at finish()."""

    def __init__(self, pids: list[int] | None, ncpu: int):
        self.pids, self.ncpu = pids, ncpu
        self.sampler = PlacementSampler(pids, ncpu) if pids else None
        self.before: Snapshot | None = None

    def start(self) -> None:
        self.before = Snapshot(self.pids, self.ncpu)

    def wait_until(self, end: float) -> None:
        """Sleep until `end` (time.monotonic()), sampling the target's placement meanwhile."""
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            if self.sampler is None:
                time.sleep(left)
                continue
            took = self.sampler.sample()
            time.sleep(min(left, max(PLACEMENT_MIN_INTERVAL_S, PLACEMENT_DUTY * took)))

    def finish(self) -> tuple[dict, dict, dict]:
        """(counters.json fields, sources, status)."""
        after = Snapshot(self.pids, self.ncpu)
        fields, sources = window_fields(self.before, after, self.pids)
        errors = {**self.before.errors, **after.errors}
        where = "the target's" if self.pids else "all"
        parts = [f"/proc/softirqs, /proc/stat, /proc/interrupts deltas over {after.time - self.before.time:.1f} s"]
        if after.tasks is None:
            parts.append(f"per-task sched files: {after.skipped}")
        else:
            parts.append(f"sched, schedstat and io of {where} {len(after.tasks)} tasks read in "
                         f"{1000 * after.tasks_read_s:.1f} ms")
        if self.sampler:
            parts.append(f"placement of {len(self.pids)} target process(es) sampled {self.sampler.samples} "
                         f"times ({1000 * self.sampler.busy_s:.0f} ms in all)")
        if errors:
            parts += [f"{name} unreadable: {why}" for name, why in errors.items()]
        status = {"status": "failed" if errors else "ok", "detail": "; ".join(parts),
                  "tasks_read_ms": round(1000 * after.tasks_read_s, 2)}
        return fields, sources, status

    @property
    def placement(self) -> list[float] | None:
        return self.sampler.weights if self.sampler else None
