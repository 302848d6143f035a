"""`collect_counters()`: every kernel counter for one window, merged into the counters.json layout.

perf stat, the BPF collector's jobs (bcc or the CO-RE tools) and two /proc samplers run at the same
time, so every number describes the same seconds and the whole collection takes about `duration_s`
(plus the tools' start-up). The /proc samplers give what no tool prints here: softirq counts per
vector and CPU (/proc/softirqs) and the CPUs the target runs on (/proc/PID/task/*/stat), which
together answer `rx_cpu_matches_worker`.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

from advisor.collect import bpf, perf_stat
from advisor.collect.core_tools import Children, ToolFailed
from advisor.errors import InputError

PLACEMENT_INTERVAL_S = 0.05
# The NET_RX work must fall on the target's CPUs for this share (histogram overlap) to "match".
MATCH_OVERLAP = 0.8
MIN_NET_RX_EVENTS = 20  # fewer NET_RX softirqs in the window than this: nothing to compare


# ---------------------------------------------------------------- /proc samplers

def read_proc_softirqs(path: str = "/proc/softirqs") -> dict[str, list[int]]:
    """{vector: [count on cpu0, cpu1, ...]} since boot."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    ncpu = len(lines[0].split())
    table = {}
    for number, line in enumerate(lines[1:], 2):
        name, _, rest = line.partition(":")
        values = rest.split()
        if len(values) != ncpu or not all(v.isdigit() for v in values):
            raise InputError(f"unexpected row {line.strip()[:60]!r}", path, number)
        table[name.strip()] = [int(v) for v in values]
    return table


def softirq_deltas(before: dict[str, list[int]], after: dict[str, list[int]]) -> dict[str, list[int]]:
    return {vec: [b - a for a, b in zip(before[vec], counts)] for vec, counts in after.items() if vec in before}


def find_pids(comm: str) -> list[int]:
    """Processes whose comm is exactly `comm` (the kernel keeps its first 15 bytes)."""
    wanted = comm[:15]
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/comm", encoding="utf-8", errors="replace") as handle:
                    if handle.read().rstrip("\n") == wanted:
                        found.append(int(name))
            except OSError:
                continue
    return sorted(found)


def _thread_cpu(pid: int, tid: str) -> tuple[int, int] | None:
    """(CPU it last ran on: stat field 39, utime + stime in ticks) of one thread; None if gone."""
    try:
        with open(f"/proc/{pid}/task/{tid}/stat", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # fields from 3 (state) on; comm may hold spaces
    return int(fields[39 - 3]), int(fields[14 - 3]) + int(fields[15 - 3])


class PlacementSampler:
    """Where the target's threads run: each sample credits a thread's current CPU with the CPU
    ticks it used since the previous sample (threads that used none count as 0.1, so a mostly
    idle server still shows where it wakes)."""

    def __init__(self, pids: list[int], ncpu: int):
        self.pids, self.weights, self.samples = pids, [0.0] * ncpu, 0
        self._ticks: dict[tuple[int, str], int] = {}

    def sample(self) -> None:
        for pid in self.pids:
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                seen = _thread_cpu(pid, tid)
                if seen is None or seen[0] >= len(self.weights):
                    continue
                cpu, ticks = seen
                used = ticks - self._ticks.get((pid, tid), ticks)
                self._ticks[(pid, tid)] = ticks
                self.weights[cpu] += used if used > 0 else 0.1
        self.samples += 1


def _shares(values: list[float]) -> list[float] | None:
    total = sum(values)
    return [v / total for v in values] if total > 0 else None


def rx_cpu_match(net_rx_per_cpu: list[float] | None, net_rx_events: int | None,
                 worker_weights: list[float] | None, basis: str) -> tuple[bool | None, dict]:
    """Whether the NET_RX softirq work lands on the CPUs where the target runs.

    Compares the two per-CPU distributions by their overlap (sum of per-CPU minima of the shares):
    1.0 when they coincide, 0.0 when disjoint; "matches" from MATCH_OVERLAP up.
    """
    detail: dict = {"basis": basis}
    if worker_weights is None:
        return None, {**detail, "why": "no target process given (pid or comm)"}
    if net_rx_per_cpu is None:
        return None, {**detail, "why": "NET_RX softirqs per CPU not counted (see collectors status)"}
    if net_rx_events is not None and net_rx_events < MIN_NET_RX_EVENTS:
        return None, {**detail, "why": f"only {net_rx_events} NET_RX softirqs in the window"}
    rx, worker = _shares(net_rx_per_cpu), _shares(worker_weights)
    if rx is None:
        return None, {**detail, "why": "no NET_RX time in the window"}
    if worker is None:
        return None, {**detail, "why": "the target did not run during the window"}
    overlap = sum(min(a, b) for a, b in zip(rx, worker))
    detail.update({"net_rx_share_by_cpu": [round(x, 3) for x in rx],
                   "worker_share_by_cpu": [round(x, 3) for x in worker], "overlap": round(overlap, 3)})
    return overlap >= MATCH_OVERLAP, detail


# ---------------------------------------------------------------- the collection

def _run(job) -> tuple[str, object, float]:
    """("ok", value, seconds) or ("failed", one-line reason, seconds): a job never raises here."""
    start = time.monotonic()
    try:
        return "ok", job(), time.monotonic() - start
    except (ToolFailed, InputError) as exc:
        return "failed", str(exc), time.monotonic() - start
    except Exception as exc:  # a collector must not take the others down
        return "failed", f"{type(exc).__name__}: {exc}", time.monotonic() - start


def collect_counters(duration_s: float, pids: list[int] | None = None,
                     comm: str | None = None) -> tuple[dict, dict]:
    """Count for `duration_s` (rounded to whole seconds, at least 1: the tools count in seconds).

    Returns (counters dict in the counters.json layout, {collector: {status, detail, ...}}) with
    status ok / unavailable / failed. Never raises for a tool that is missing or dies.
    """
    seconds = max(1, round(duration_s))
    ncpu = os.cpu_count() or 1
    status: dict = {}
    target_pids = sorted(set(pids or [])) or (find_pids(comm) if comm else [])
    target_note = ""
    if comm and not pids and not target_pids:
        target_note = f"no process named {comm!r}: counted system-wide"
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=12) as pool, Children() as children:
        jobs, status = bpf.plan(seconds, target_pids, comm if target_pids else None, children, ncpu)
        jobs["perf-stat"] = lambda: perf_stat.run_perf_stat(children, seconds)
        futures = {name: pool.submit(_run, job) for name, job in jobs.items()}
        try:
            softirqs_before = read_proc_softirqs()
        except (OSError, InputError) as exc:
            softirqs_before, proc_error = None, str(exc)
        sampler = PlacementSampler(target_pids, ncpu) if target_pids else None
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if sampler:
                sampler.sample()
            time.sleep(min(PLACEMENT_INTERVAL_S, max(0.0, end - time.monotonic())))
        window = time.monotonic() - (end - seconds)
        softirq_counts = None
        if softirqs_before is not None:
            try:
                softirq_counts = softirq_deltas(softirqs_before, read_proc_softirqs())
            except (OSError, InputError) as exc:
                proc_error = str(exc)
        results = {name: future.result() for name, future in futures.items()}
    elapsed = time.monotonic() - started

    perf_result = results.pop("perf-stat")
    fields, status = bpf.assemble(results, seconds, target_pids, comm if target_pids else None, status)
    counters: dict = {"duration_s": seconds}
    counters.update(fields)
    if perf_result[0] == "ok":
        _merge_perf(counters, perf_stat.counters_from_perf(perf_result[1], seconds))
        absent = perf_result[1]["absent"]
        status["perf-stat"] = {"status": "ok", "seconds": round(perf_result[2], 2),
                               "detail": f"{len(perf_result[1]['counts'])} tracepoints counted for {seconds} s"
                                         + (f"; absent on this kernel: {', '.join(absent)}" if absent else "")}
    else:
        status["perf-stat"] = {"status": "failed", "detail": perf_result[1], "seconds": round(perf_result[2], 2)}

    if softirq_counts is not None:
        for vec, per_cpu in softirq_counts.items():
            entry = counters.setdefault("softirqs", {}).setdefault(vec, {})
            entry.setdefault("per_cpu_counts", per_cpu)
            entry.setdefault("per_sec", round(sum(per_cpu) / window, 1))
        status["procfs"] = {"status": "ok", "detail": "/proc/softirqs deltas"
                            + (f"; placement of {len(target_pids)} target process(es) sampled "
                               f"{sampler.samples} times" if sampler else "")}
    else:
        status["procfs"] = {"status": "failed", "detail": proc_error}

    if target_note:
        counters.setdefault("syscalls", {})["scope"] = "system"
        status["target"] = {"status": "failed", "detail": target_note}

    net_rx = counters.get("softirqs", {}).get("NET_RX", {})
    if "per_cpu_usecs" in net_rx:
        rx_values, basis = net_rx["per_cpu_usecs"], "NET_RX time per CPU vs target's CPU ticks per CPU"
    else:
        rx_values, basis = net_rx.get("per_cpu_counts"), "NET_RX count per CPU vs target's CPU ticks per CPU"
    events = sum(net_rx["per_cpu_counts"]) if "per_cpu_counts" in net_rx else None
    matches, detail = rx_cpu_match(rx_values, events, sampler.weights if sampler else None, basis)
    if target_note:
        detail["why"] = target_note
    counters["rx_cpu_matches_worker"] = matches
    counters["rx_cpu_placement"] = detail
    status["window"] = {"status": "ok", "detail": f"all collectors ran concurrently: {elapsed:.1f} s wall "
                                                  f"for a {seconds} s window"}
    return counters, status


def _merge_perf(counters: dict, perf_fields: dict) -> None:
    """perf stat fills what the BPF path did not give (and always adds its own extras)."""
    for section, values in perf_fields.items():
        if not isinstance(values, dict):
            continue
        target = counters.setdefault(section, {})
        for key, value in values.items():
            if value is not None and target.get(key) is None:
                target[key] = value
    syscalls = counters.get("syscalls", {})
    if "per_sec" not in syscalls and syscalls.get("system_per_sec") is not None:
        syscalls["per_sec"] = syscalls["system_per_sec"]
        syscalls["scope"] = "system"
        syscalls["source"] = "perf stat raw_syscalls:sys_enter (system-wide; no per-name counts)"
    hardirqs = counters.get("hardirqs", {})
    if "source" not in hardirqs and "per_sec" in hardirqs:
        hardirqs["source"] = "perf stat irq:irq_handler_entry"
    for section in ("net", "locks", "sched"):
        if section in counters and not counters[section]:
            del counters[section]
