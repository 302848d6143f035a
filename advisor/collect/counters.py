"""`collect_counters()`: every kernel counter for one window, merged into the counters.json layout.

By default only /proc is read (procfs.py): the kernel counts softirqs, interrupts, context switches,
migrations and read/write calls anyway, so this costs the server nothing measurable. The BPF and
tracepoint collectors (bcc or the CO-RE tools, bpftrace, perf stat) run only when asked
(`bpf=...`, `advise run --bpf`): they add syscalls by name, softirq time per CPU, run-queue
latency percentiles and a few system-wide rates, at a real cost in throughput (BPF_COST below).
When they run, they run at the same time as the /proc window, so every number describes the same
seconds.

Where a value came from is written next to it: `syscalls.source`, `runqlat_usecs.source`,
`tracepoints.source`, and the top-level `sources` map ({dotted field: origin}) for the rest.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

from advisor.collect import bpf as bpf_collect
from advisor.collect import perf_stat, procfs
from advisor.collect.core_tools import Children, ToolFailed
from advisor.collect.probes.processes import pids_by_comm
from advisor.errors import InputError, UsageError

# The NET_RX work must fall on the target's CPUs for this share (histogram overlap) to "match".
MATCH_OVERLAP = 0.8
MIN_NET_RX_EVENTS = 20  # fewer NET_RX softirqs in the window than this: nothing to compare

# Measured with bench/bench_overhead.py (nginx + wrk between two namespaces on a 2-vCPU VM, 40 ABBA
# pairs): `advise run --bpf` left a median 0.75 of the throughput of no collection (nginx + wrk
# spent 1.37x the CPU per request); the default run 1.00, as no collection against itself.
BPF_COST = "~25 % of a loaded nginx's throughput (bench/bench_overhead.py)"
BPF_COLLECTORS = ("bcc", "libbpf-tools", "bpftrace", "perf-stat")


def bpf_selection(value: bool | str | Iterable[str] | None) -> frozenset[str]:
    """What `--bpf` asks for: False/None -> nothing; True or "" -> the default set; "all"; or a
    comma list of bpf_collect.CHOICES. A UsageError names an unknown choice."""
    if value is None or value is False:
        return frozenset()
    if value is True:
        return bpf_collect.DEFAULT_SELECTION
    names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value) if n.strip()]
    if not names:
        return bpf_collect.DEFAULT_SELECTION
    if names == ["all"]:
        return frozenset(bpf_collect.CHOICES)
    unknown = [n for n in names if n not in bpf_collect.CHOICES]
    if unknown:
        raise UsageError(f"--bpf {','.join(unknown)}: choose from {', '.join(bpf_collect.CHOICES)} or all")
    return frozenset(names)


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


def not_requested() -> dict:
    """The BPF collectors' statuses when `--bpf` was not given."""
    detail = f"not requested: use --bpf (the BPF and tracepoint counters cost {BPF_COST})"
    return {name: {"status": "unavailable", "detail": detail} for name in BPF_COLLECTORS}


def collect_counters(duration_s: float, pids: list[int] | None = None, comm: str | None = None,
                     bpf: bool | str | Iterable[str] | None = False,
                     children: Children | None = None) -> tuple[dict, dict]:
    """Count for `duration_s` (rounded to whole seconds, at least 1: the tools count in seconds).

    `bpf`: see bpf_selection(); by default nothing but /proc is read. Returns (counters dict
    in the counters.json layout, {collector: {status, detail, ...}}) with status ok / unavailable /
    failed. Never raises for a tool that is missing or dies. The tools are started through
    `children` (a new Children if None), which the caller may close to stop them.
    """
    selection = bpf_selection(bpf)
    seconds = max(1, round(duration_s))
    ncpu = os.cpu_count() or 1
    target_pids = sorted(set(pids or [])) or (pids_by_comm(comm) if comm else [])
    target_note = ""
    if comm and not pids and not target_pids:
        target_note = f"no process named {comm!r}: counted system-wide"
    window = procfs.ProcfsWindow(target_pids or None, ncpu)
    target_comm = comm if target_pids else None
    started = time.monotonic()
    if selection:
        with ThreadPoolExecutor(max_workers=8) as pool, children or Children() as children:
            jobs, status = bpf_collect.plan(seconds, target_pids, target_comm, children, ncpu, selection)
            if "tracepoints" in selection:
                jobs["perf-stat"] = lambda: perf_stat.run_perf_stat(children, seconds)
            futures = {name: pool.submit(_run, job) for name, job in jobs.items()}
            window.start()
            window.wait_until(time.monotonic() + seconds)
            proc_fields, sources, proc_status = window.finish()
            results = {name: future.result() for name, future in futures.items()}
    else:
        window.start()
        window.wait_until(time.monotonic() + seconds)
        proc_fields, sources, proc_status = window.finish()
        results, status = {}, not_requested()
    elapsed = time.monotonic() - started

    counters: dict = {"duration_s": seconds}
    counters.update(proc_fields)
    status["procfs"] = proc_status
    if selection:
        perf_result = results.pop("perf-stat", None)
        fields, status = bpf_collect.assemble(results, seconds, target_pids, target_comm, status)
        _merge_bpf(counters, fields, sources)
        if perf_result is not None:
            _merge_perf(counters, perf_result, seconds, status)
        else:
            status["perf-stat"] = {"status": "unavailable", "detail": "not requested (--bpf without tracepoints)"}
        for name in BPF_COLLECTORS:
            status.setdefault(name, {"status": "unavailable",
                                     "detail": f"not needed for --bpf {','.join(sorted(selection))}"})

    if target_note:
        status["target"] = {"status": "failed", "detail": target_note}

    net_rx = counters.get("softirqs", {}).get("NET_RX", {})
    if "per_cpu_usecs" in net_rx:
        rx_values, basis = net_rx["per_cpu_usecs"], "NET_RX time per CPU vs target's CPU ticks per CPU"
    else:
        rx_values, basis = net_rx.get("per_cpu_counts"), "NET_RX count per CPU vs target's CPU ticks per CPU"
    events = sum(net_rx["per_cpu_counts"]) if "per_cpu_counts" in net_rx else None
    matches, detail = rx_cpu_match(rx_values, events, window.placement, basis)
    if target_note:
        detail["why"] = target_note
    counters["rx_cpu_matches_worker"] = matches
    counters["rx_cpu_placement"] = detail
    sources["rx_cpu_matches_worker"] = ("NET_RX per CPU (see softirqs) vs the target's CPUs: /proc/PID/task/TID/stat "
                                        "field 39 sampled during the window")
    counters["sources"] = dict(sorted(sources.items()))
    tools = "only /proc was read" if not selection else f"BPF: {', '.join(sorted(selection))}"
    status["window"] = {"status": "ok", "detail": f"{tools}; {elapsed:.1f} s wall for a {seconds} s window"}
    return counters, status


def _merge_bpf(counters: dict, fields: dict, sources: dict) -> None:
    """BPF fields over the /proc ones: syscalls by name replace the read/write families; softirq
    time joins the softirq counts; runqlat is added."""
    if "syscalls" in fields:
        counters["syscalls"] = fields["syscalls"]
        sources["syscalls"] = fields["syscalls"]["source"]
    for vec, entry in fields.get("softirqs", {}).items():
        counters.setdefault("softirqs", {}).setdefault(vec, {}).update(entry)
        sources["softirqs.*.per_cpu_usecs"] = sources["softirqs.*.total_usecs"] = (
            "irq:softirq_entry/exit traced by bcc's program or bpftrace (see collectors)")
    if "runqlat_usecs" in fields:
        counters["runqlat_usecs"] = fields["runqlat_usecs"]


def _merge_perf(counters: dict, result: tuple[str, object, float], seconds: int, status: dict) -> None:
    """perf stat's system-wide rates go next to the /proc values (never over them)."""
    state, value, wall = result
    if state != "ok":
        status["perf-stat"] = {"status": "failed", "detail": value, "seconds": round(wall, 2)}
        return
    for section, values in perf_stat.counters_from_perf(value, seconds).items():
        target = counters.setdefault(section, {})
        for key, rate in values.items():
            target.setdefault(key, rate)
    absent = value["absent"]
    status["perf-stat"] = {"status": "ok", "seconds": round(wall, 2),
                           "detail": f"{len(value['counts'])} tracepoints counted for {seconds} s"
                                     + (f"; absent on this kernel: {', '.join(absent)}" if absent else "")}
