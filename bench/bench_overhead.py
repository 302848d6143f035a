"""Throughput cost of collecting: nginx under wrk between two network namespaces, with and without.

    .venv/bin/python bench/bench_overhead.py [--modes none,run,run-bpf] [--frequencies 49,99,199]
                                             [--pairs 10] [--seconds 3] [--json FILE]

A real nginx (advisor.lab.testbed) serves /json in one namespace; wrk loads it from the other.
Each round is a pair of wrk runs of `--seconds`: A without any collector, B with one, in ABBA
order. Both arms have the same shape (idle lead, wrk, idle tail), so that only the collector
differs. Pairs in ABBA order (AB, BA, AB, ...) so that slow drift of this shared machine hits both
arms alike. Identical runs here differ by 15-25 %, so only the pairing makes a small effect visible
at all: the figure is the median over the pairs of B/A, with the min, quartiles and max of those
pairwise ratios as the spread.

Modes (B arm):
  none     nothing: B is a second A. The spread of its ratios is the noise floor of the others.
  perf     `perf record -e cpu-clock -a -g -F HZ` alone: the sampling cost the default frequency is
           chosen on. perf starts 0.5 s before wrk and ends after it.
  run      the whole default `advise run --frequency HZ` (perf + /proc counters + probes).
  run-bpf  `advise run --bpf` (adds syscount, bpftrace softirq time, perf stat tracepoints).
  For perf and the run modes, also printed: the CPU time of the collector's own processes (perf
  record, advise's python, the BPF tools) in % of one CPU over the wrk run, a figure far less noisy
  than throughput, but blind to what the BPF programs cost: that is charged to the traced tasks.
  In the run modes wrk starts 1.5 s after `advise run`'s perf record has started (Python's start-up
  is over by then, and with --bpf the BPF tools have loaded: mostly bpftrace compiling its program),
  and the next round starts after `advise run` has finished. Those one-off costs outside the window
  (start-up, perf script, the analysis) are not in the throughput figures; the summary prints them
  apart as the CPU-seconds the whole `advise run` used.

Needs root (namespaces, perf -a, BPF). Prints one JSON line per pair, then a summary.

Measured on the 2-vCPU shared VM (median B/A, then min-max of the pairs):

    perf   49 Hz  1.136 (0.63-1.48)     perf  999 Hz  0.951 (0.90-1.25)      (8 pairs of 3 s)
    perf   99 Hz  0.956 (0.65-1.56)     perf 4999 Hz  0.745 (0.66-1.08)
    perf  199 Hz  0.994 (0.60-1.20)

49-199 Hz are lost in the noise; the cost is linear in the frequency (999 Hz: 4.9 %, 4999 Hz:
25.6 %, i.e. ~0.5 % per 100 Hz), which puts 99 Hz at ~0.5 % and 199 Hz at ~1 %: the default is
99 Hz. Before the counters moved to /proc, the whole `advise run` at 99 Hz measured 0.513
(0.41-0.85): softirqs(8), perf stat on softirq_entry/sched_switch/raw_syscalls, the bpftrace
softirq script and runqlat halved this server's throughput while they ran. Now:

    2 runs x 20 ABBA pairs of 3 s per mode (pooled: 40 pairs; in brackets the 90 % bootstrap
    interval of the median, then min-max of the pairs)
                   req/s B/A                        nginx+wrk CPU/request B/A   collector CPU
    none (A vs A)  1.000 (0.945-1.083) 0.52-1.56   0.962 (0.923-0.996)
    run            1.002 (0.966-1.088) 0.68-1.58   1.015 (0.955-1.050)         0.3 % of a CPU
    run --bpf      0.754 (0.704-0.814) 0.46-1.17   1.366 (1.308-1.450)         0.4 % of a CPU
    perf 99 Hz     1.005 (0.941-1.040) 0.53-1.28   1.011 (0.943-1.098)         (30 pairs)

The default run cannot be told from no collection: this shared box resolves about +-5 %, not 1 %.
What can be counted says it is below 1 %: its own processes (Python reading /proc, perf record)
use 0.3 % of one CPU during the window (0.15 % of the box), and perf's sampling at 99 Hz costs
~0.5 % (the linear fit above). --bpf costs ~25 % (syscount on every syscall of the target, bpftrace
on every softirq, perf stat tracepoints), hence opt-in. Outside the window, the whole `advise run`
(Python start-up, perf script, the analysis) uses ~2.1 CPU-seconds per run (2.5 with --bpf).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from advisor.collect import perf as perf_mod  # noqa: E402
from advisor.lab.testbed import Testbed, netns_argv  # noqa: E402
from advisor.parse.wrk import parse_wrk  # noqa: E402
from advisor.proc import children, stop_group  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

PERF_LEAD_S = 0.5
PERF_TAIL_S = 1.0
RUN_LEAD_S = 1.5
RUN_TAIL_S = 3.0  # about what `advise run` takes after its window (probes, perf script, counters)


def wrk(tb: Testbed, seconds: float, connections: int, threads: int) -> tuple[float, float, float]:
    """(requests/s, CPU microseconds per request of nginx and wrk together, wrk's CPU seconds).

    CPU per request is the steadier figure on a shared box: other workers' load takes CPU away
    from nginx (fewer requests/s) but barely changes what each request costs, while whatever a
    collector runs in nginx's or wrk's context (BPF programs on their syscalls and softirqs, perf's
    sampling interrupts) adds to it. wrk's CPU comes from its rusage (it is our child, reaped inside
    the getrusage pair), nginx's from its threads' schedstat.
    """
    argv = netns_argv(tb.client_ns, tb.wrk_argv(seconds, connections, threads))
    nginx = tb.server_pids()
    server_before = sum(cpu_seconds(pid) or 0.0 for pid in nginx)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server = sum(cpu_seconds(pid) or 0.0 for pid in nginx) - server_before
    client = (children_after.ru_utime + children_after.ru_stime
              - children_before.ru_utime - children_before.ru_stime)
    parsed = parse_wrk(done.stdout)
    return parsed["requests_per_sec"], 1e6 * (server + client) / max(1, parsed["requests"] or 0), client


def cpu_seconds(pid: int) -> float | None:
    """CPU time of a live process, all its threads, in seconds (schedstat: nanoseconds, not ticks)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    used = 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as handle:
                used += int(handle.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return used / 1e9


def tree_cpu_seconds(root: int) -> dict[int, float]:
    """{pid: CPU seconds} of `root` and every live descendant."""
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        used = cpu_seconds(pid)
        if used is None:
            continue
        found[pid] = used
        todo += children(pid)
    return found


def tree_share(before: dict[int, float], after: dict[int, float], elapsed: float) -> float:
    """CPU the tree used between two readings, in % of one CPU (a process born in between counts
    from 0; one that ended in between is lost: the collectors all outlive the wrk run)."""
    used = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
    return round(100.0 * used / elapsed, 2)


def with_perf(tb: Testbed, args, frequency: int, workdir: str) -> tuple[tuple[float, float, float], float, None]:
    """wrk while perf record samples; returns (wrk(), perf's CPU in % of one CPU over the wrk run, None)."""
    perf = perf_mod.perf_binary()
    output = os.path.join(workdir, "perf.data")
    argv = perf_mod.record_argv(perf, output, PERF_LEAD_S + args.seconds + PERF_TAIL_S, frequency)
    with perf_mod.PerfRecord(argv, os.path.join(workdir, "perf.stderr")) as recorder:
        time.sleep(PERF_LEAD_S)
        before, start = tree_cpu_seconds(recorder.proc.pid), time.monotonic()
        result = wrk(tb, args.seconds, args.connections, args.threads)
        share = tree_share(before, tree_cpu_seconds(recorder.proc.pid), time.monotonic() - start)
        recorder.wait(args.seconds + 30)
        recorder.check()
    os.unlink(output)
    return result, share, None


def perf_started(root: int, timeout_s: float = 30.0) -> bool:
    """Wait until `perf record` runs below `root`: the window has begun (Python's start-up is over)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        todo = [root]
        while todo:
            pid = todo.pop()
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    if b"\0record\0" in handle.read():
                        return True
            except OSError:
                pass
            todo += children(pid)
        time.sleep(0.05)
    return False


def with_run(tb: Testbed, args, frequency: int, workdir: str,
             extra: list[str]) -> tuple[tuple[float, float, float], float, dict]:
    """wrk while `advise run` collects; returns (wrk(), collector CPU %, {collectors that ran ok,
    CPU seconds the whole `advise run` used from start to exit})."""
    report = os.path.join(workdir, "report.json")
    argv = [sys.executable, "-m", "advisor.cli", "run", "--duration", f"{RUN_LEAD_S + args.seconds + 1.0:g}",
            "--frequency", str(frequency), "--netns", tb.server_ns, "--format", "json", "--output", report,
            *extra]
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    advise = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        if not perf_started(advise.pid):
            raise SystemExit("advise run: perf record did not start within 30 s")
        time.sleep(RUN_LEAD_S)  # the BPF tools (with --bpf) load meanwhile
        before, start = tree_cpu_seconds(advise.pid), time.monotonic()
        result = wrk(tb, args.seconds, args.connections, args.threads)
        share = tree_share(before, tree_cpu_seconds(advise.pid), time.monotonic() - start)
        _, err = advise.communicate(timeout=120)
        if advise.returncode != 0:
            raise SystemExit(f"advise run failed ({advise.returncode}): {err.strip()}")
    finally:
        stop_group(advise, signal.SIGINT, 5)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    advise_cpu = (usage.ru_utime + usage.ru_stime - usage_before.ru_utime - usage_before.ru_stime) - result[2]
    with open(report, encoding="utf-8") as handle:
        collectors = json.load(handle).get("collectors", {})
    return result, share, {"collectors": sorted(n for n, e in collectors.items() if e["status"] == "ok"),
                           "advise_cpu_s": round(advise_cpu, 2)}


def without(tb: Testbed, args, mode: str) -> tuple[float, float, float]:
    """The A arm, shaped like the B arm (idle, wrk, idle): idle gaps change the next wrk run here."""
    lead, tail = (PERF_LEAD_S, PERF_TAIL_S) if mode == "perf" else (RUN_LEAD_S, RUN_TAIL_S)
    time.sleep(lead)
    result = wrk(tb, args.seconds, args.connections, args.threads)
    time.sleep(tail)
    return result


def collector(mode: str, frequency: int):
    """The B arm of a mode: (tb, args, workdir) -> (wrk(), collector CPU % or None, advise run's extras or None)."""
    if mode == "none":
        return lambda tb, args, workdir: (without(tb, args, "run"), None, None)
    if mode == "perf":
        return lambda tb, args, workdir: with_perf(tb, args, frequency, workdir)
    extra = {"run": [], "run-bpf": ["--bpf"]}[mode]
    return lambda tb, args, workdir: with_run(tb, args, frequency, workdir, extra)


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 4:
        return min(values), max(values)
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def median_interval(values: list[float], rounds: int = 4000) -> tuple[float, float]:
    """90 % bootstrap interval of the median: how far the median itself could be off."""
    draw = random.Random(0)
    medians = sorted(statistics.median(draw.choices(values, k=len(values))) for _ in range(rounds))
    return medians[int(0.05 * rounds)], medians[int(0.95 * rounds) - 1]


def spread(values: list[float], prefix: str) -> dict:
    q1, q3 = quartiles(values)
    low, high = median_interval(values)
    return {f"{prefix}median": round(statistics.median(values), 4), f"{prefix}min": round(min(values), 4),
            f"{prefix}q1": round(q1, 4), f"{prefix}q3": round(q3, 4), f"{prefix}max": round(max(values), 4),
            f"{prefix}median_90pct": [round(low, 4), round(high, 4)]}


def measure(tb: Testbed, args, mode: str, frequency: int, workdir: str) -> dict:
    collect = collector(mode, frequency)
    ratios, cpu_ratios, cpu, advise_cpu, ran = [], [], [], [], None
    for index in range(args.pairs):
        order = "AB" if index % 2 == 0 else "BA"
        arms = {}
        for arm in order:
            if arm == "A":
                arms["A"] = without(tb, args, "perf" if mode == "perf" else "run")
            else:
                arms["B"], share, extras = collect(tb, args, workdir)
                if share is not None:
                    cpu.append(share)
                if extras:
                    ran = extras["collectors"]
                    advise_cpu.append(extras["advise_cpu_s"])
        ratios.append(arms["B"][0] / arms["A"][0])
        cpu_ratios.append(arms["B"][1] / arms["A"][1])
        print(json.dumps({"mode": mode, "frequency": frequency, "pair": index, "order": order,
                          "without_rps": round(arms["A"][0]), "with_rps": round(arms["B"][0]),
                          "ratio": round(ratios[-1], 4), "without_cpu_us_per_req": round(arms["A"][1], 2),
                          "with_cpu_us_per_req": round(arms["B"][1], 2), "cpu_per_req_ratio": round(cpu_ratios[-1], 4),
                          "collector_cpu_pct": share, "advise_cpu_s": advise_cpu[-1] if advise_cpu else None}),
              flush=True)
    summary = {"mode": mode, "frequency": frequency, "pairs": len(ratios), "seconds": args.seconds,
               **spread(ratios, "ratio_"), **spread(cpu_ratios, "cpu_per_req_ratio_"),
               "overhead_pct": round(100.0 * (1.0 - statistics.median(ratios)), 2)}
    if cpu:
        summary["collector_cpu_pct_of_one_cpu"] = round(statistics.median(cpu), 2)
    if ran is not None:
        summary["collectors_ok"] = ran
        summary["advise_cpu_s"] = round(statistics.median(advise_cpu), 2)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="none,run,run-bpf",
                        help="comma list of none, perf, run, run-bpf (default none,run,run-bpf)")
    parser.add_argument("--frequencies", default="49,99,199", help="perf frequencies in Hz for the perf mode")
    parser.add_argument("--run-frequency", type=int, default=perf_mod.DEFAULT_FREQUENCY,
                        help="frequency for the run modes (default: advise run's default)")
    parser.add_argument("--pairs", type=int, default=10, help="ABBA pairs per setting (default 10)")
    parser.add_argument("--seconds", type=float, default=3.0, help="wrk seconds per arm (default 3)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the summaries here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_overhead: needs root (namespaces, perf -a, BPF)", file=sys.stderr)
        return 3
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in ("none", "perf", "run", "run-bpf")]
    if unknown:
        parser.error(f"unknown mode(s): {', '.join(unknown)}")
    settings = []
    for mode in modes:
        if mode == "perf":
            settings += [("perf", int(f)) for f in args.frequencies.split(",") if f]
        else:
            settings.append((mode, 0 if mode == "none" else args.run_frequency))
    summaries = []
    with benchlib.scratch_dir("bench-overhead-") as scratch:
        workdir = str(scratch)
        with Testbed(prefix="advbench") as tb:
            wrk(tb, 1, args.connections, args.threads)  # warm-up
            for mode, frequency in settings:
                summaries.append(measure(tb, args, mode, frequency, workdir))
    print()
    print("throughput B/A over the pairs (1.0: no cost), then nginx+wrk CPU per request B/A (1.0: no cost),")
    print("then the CPU of the collector's own processes in % of one CPU; [90 % bootstrap interval of the median]")
    print(f"{'mode':<8} {'Hz':>4} {'pairs':>5}  {'req/s B/A: median':>17} {'[interval]':<15} {'(min q1 q3 max)':<27}  "
          f"{'CPU/req B/A: median':>19} {'[interval]':<15} {'(min q1 q3 max)':<27}  collector CPU")
    for s in summaries:
        cpu = f"{s['collector_cpu_pct_of_one_cpu']:.2f}%" if "collector_cpu_pct_of_one_cpu" in s else ""
        columns = []
        for prefix in ("ratio_", "cpu_per_req_ratio_"):
            low, high = s[prefix + "median_90pct"]
            quarters = " ".join(f"{s[prefix + k]:.3f}" for k in ("min", "q1", "q3", "max"))
            columns.append(f"{s[prefix + 'median']:.4f} [{low:.3f}-{high:.3f}] ({quarters})")
        print(f"{s['mode']:<8} {s['frequency'] or '':>4} {s['pairs']:>5}  {columns[0]:>60}  {columns[1]:>62}  {cpu}")
    for s in summaries:
        if "collectors_ok" in s:
            print(f"{s['mode']}: collectors ok: {', '.join(s['collectors_ok'])}; the whole `advise run` "
                  f"(start-up, window, perf script, analysis) used {s['advise_cpu_s']:.2f} CPU-s (median)")
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
