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
  In the run modes wrk starts 1.5 s after `advise run`, once the BPF tools have loaded (their
  start-up, mostly bpftrace compiling its program, is a one-off cost of about a CPU-second that a
  real run spreads over a longer window), and the next round starts after `advise run` has finished
  (its post-window work, perf script and the analysis, is not measured here).

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

RESULTS_PLACEHOLDER
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from advisor.collect import perf as perf_mod  # noqa: E402
from advisor.lab.testbed import Testbed, children_of, netns_argv, parse_wrk, stop_process_group  # noqa: E402

PERF_LEAD_S = 0.5
PERF_TAIL_S = 1.0
RUN_LEAD_S = 1.5
RUN_TAIL_S = 3.0  # about what `advise run` takes after its window (probes, perf script, counters)


def wrk(tb: Testbed, seconds: float, connections: int, threads: int) -> float:
    argv = netns_argv(tb.client_ns, tb.wrk_argv(seconds, connections, threads))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    return parse_wrk(done.stdout)["requests_per_sec"]


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process (all its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> dict[int, float]:
    """{pid: CPU seconds} of `root` and every live descendant."""
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        used = cpu_seconds(pid)
        if used is None:
            continue
        found[pid] = used
        todo += children_of(pid)
    return found


def tree_share(before: dict[int, float], after: dict[int, float], elapsed: float) -> float:
    """CPU the tree used between two readings, in % of one CPU (a process born in between counts
    from 0; one that ended in between is lost: the collectors all outlive the wrk run)."""
    used = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
    return round(100.0 * used / elapsed, 2)


def with_perf(tb: Testbed, args, frequency: int, workdir: str) -> tuple[float, float | None]:
    """wrk while perf record samples; returns (req/s, perf's CPU in % of one CPU over the wrk run)."""
    perf = perf_mod.perf_binary()
    output = os.path.join(workdir, "perf.data")
    argv = perf_mod.record_argv(perf, output, PERF_LEAD_S + args.seconds + PERF_TAIL_S, frequency)
    with perf_mod.PerfRecord(argv, os.path.join(workdir, "perf.stderr")) as recorder:
        time.sleep(PERF_LEAD_S)
        before, start = tree_cpu_seconds(recorder.proc.pid), time.monotonic()
        rps = wrk(tb, args.seconds, args.connections, args.threads)
        share = tree_share(before, tree_cpu_seconds(recorder.proc.pid), time.monotonic() - start)
        recorder.wait(args.seconds + 30)
        recorder.check()
    os.unlink(output)
    return rps, share


def with_run(tb: Testbed, args, frequency: int, workdir: str, extra: list[str]) -> tuple[float, float]:
    """wrk while `advise run` collects (its report goes to a file, not measured)."""
    report = os.path.join(workdir, "report.json")
    argv = [sys.executable, "-m", "advisor.cli", "run", "--duration", f"{RUN_LEAD_S + args.seconds + 0.5:g}",
            "--frequency", str(frequency), "--netns", tb.server_ns, "--format", "json", "--output", report,
            *extra]
    advise = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        time.sleep(RUN_LEAD_S)
        before, start = tree_cpu_seconds(advise.pid), time.monotonic()
        rps = wrk(tb, args.seconds, args.connections, args.threads)
        share = tree_share(before, tree_cpu_seconds(advise.pid), time.monotonic() - start)
        _, err = advise.communicate(timeout=120)
        if advise.returncode != 0:
            raise SystemExit(f"advise run failed ({advise.returncode}): {err.strip()}")
    finally:
        stop_process_group(advise, grace_s=5, sig=2)
    with open(report, encoding="utf-8") as handle:
        collectors = json.load(handle).get("collectors", {})
    ran = sorted(name for name, entry in collectors.items() if entry["status"] == "ok")
    with_run.last_collectors = ran  # shown once per mode, so the table says what ran
    return rps, share


def without(tb: Testbed, args, mode: str) -> float:
    """The A arm, shaped like the B arm (idle, wrk, idle): idle gaps change the next wrk run here."""
    lead, tail = (PERF_LEAD_S, PERF_TAIL_S) if mode == "perf" else (RUN_LEAD_S, RUN_TAIL_S)
    time.sleep(lead)
    rps = wrk(tb, args.seconds, args.connections, args.threads)
    time.sleep(tail)
    return rps


def collector(mode: str, frequency: int):
    """The B arm of a mode: a function (tb, args, workdir) -> (req/s, collector CPU % or None)."""
    if mode == "none":
        return lambda tb, args, workdir: (without(tb, args, "run"), None)
    if mode == "perf":
        return lambda tb, args, workdir: with_perf(tb, args, frequency, workdir)
    extra = {"run": [], "run-bpf": ["--bpf"]}[mode]
    return lambda tb, args, workdir: with_run(tb, args, frequency, workdir, extra)


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 4:
        return min(values), max(values)
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def measure(tb: Testbed, args, mode: str, frequency: int, workdir: str) -> dict:
    collect = collector(mode, frequency)
    pairs, cpu = [], []
    for index in range(args.pairs):
        order = "AB" if index % 2 == 0 else "BA"
        arms = {}
        for arm in order:
            if arm == "A":
                arms["A"] = without(tb, args, "perf" if mode == "perf" else "run")
            else:
                arms["B"], share = collect(tb, args, workdir)
                if share is not None:
                    cpu.append(share)
        ratio = arms["B"] / arms["A"]
        pairs.append(ratio)
        print(json.dumps({"mode": mode, "frequency": frequency, "pair": index, "order": order,
                          "without_rps": round(arms["A"]), "with_rps": round(arms["B"]),
                          "ratio": round(ratio, 4), "collector_cpu_pct": share}), flush=True)
    q1, q3 = quartiles(pairs)
    summary = {"mode": mode, "frequency": frequency, "pairs": len(pairs), "seconds": args.seconds,
               "median_ratio": round(statistics.median(pairs), 4), "min_ratio": round(min(pairs), 4),
               "q1_ratio": round(q1, 4), "q3_ratio": round(q3, 4), "max_ratio": round(max(pairs), 4),
               "overhead_pct": round(100.0 * (1.0 - statistics.median(pairs)), 2)}
    if cpu:
        summary["collector_cpu_pct_of_one_cpu"] = round(statistics.median(cpu), 2)
    if mode.startswith("run"):
        summary["collectors_ok"] = getattr(with_run, "last_collectors", [])
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
    workdir = tempfile.mkdtemp(prefix="bench-overhead-")
    try:
        with Testbed(prefix="advbench") as tb:
            wrk(tb, 1, args.connections, args.threads)  # warm-up
            for mode, frequency in settings:
                summaries.append(measure(tb, args, mode, frequency, workdir))
    finally:
        subprocess.run(["rm", "-rf", workdir], timeout=30)
    print()
    print(f"{'mode':<8} {'Hz':>4} {'pairs':>5}  {'median B/A':>10}  {'min':>6} {'q1':>6} {'q3':>6} {'max':>6}  "
          f"{'overhead':>8}  collector CPU")
    for s in summaries:
        cpu = (f"{s['collector_cpu_pct_of_one_cpu']:.2f}% of a CPU"
               if "collector_cpu_pct_of_one_cpu" in s else "")
        print(f"{s['mode']:<8} {s['frequency'] or '':>4} {s['pairs']:>5}  {s['median_ratio']:>10.4f}  "
              f"{s['min_ratio']:>6.3f} {s['q1_ratio']:>6.3f} {s['q3_ratio']:>6.3f} {s['max_ratio']:>6.3f}  "
              f"{s['overhead_pct']:>7.2f}%  {cpu}")
    for s in summaries:
        if "collectors_ok" in s:
            print(f"{s['mode']}: collectors ok: {', '.join(s['collectors_ok'])}")
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
