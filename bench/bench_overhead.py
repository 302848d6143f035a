"""Throughput cost of collecting: nginx under wrk between two network namespaces, with and without.

    .venv/bin/python bench/bench_overhead.py [--frequencies 49,99,199] [--modes perf,run]
                                             [--pairs 8] [--seconds 3] [--json FILE]

A real nginx (advisor.lab.testbed) serves /json in one namespace; wrk loads it from the other.
Each round is a pair of wrk runs of `--seconds`: A without any collector, B with one, in ABBA
order. Both arms have the same shape (idle lead, wrk, idle tail), so that only the collector
differs. Pairs in ABBA order (AB, BA, AB, ...) so that slow drift of this shared machine hits both arms alike. Identical
runs here differ by 15-25 %, so only the pairing makes a 1 % effect visible at all: the figure is
the median over the pairs of B/A, with the min and max of those pairwise ratios as the spread.

Modes (B arm):
  perf  `perf record -e cpu-clock -a -g -F HZ` alone: the sampling cost the default frequency is
        chosen on. perf starts 0.5 s before wrk and ends after it. Also printed: the CPU time of
        the perf record process itself (reading the ring buffers, writing perf.data), in % of one
        CPU over the window: a figure far less noisy than throughput.
  run   the whole `advise run --frequency HZ` (perf + BPF tools + perf stat + probes). wrk starts
        1.5 s after it, once the BPF tools have loaded (their start-up, mostly bpftrace compiling
        its program, is a one-off cost of about a CPU-second that a real run spreads over a longer
        window), and the next round starts after `advise run` has finished.

Needs root (namespaces, perf -a, BPF). Prints one JSON line per pair, then a summary.

Measured on the 2-vCPU shared VM (8 pairs of 3 s each; median B/A, then min-max of the pairs):

    perf   49 Hz  1.136 (0.63-1.48)     perf  999 Hz  0.951 (0.90-1.25)
    perf   99 Hz  0.956 (0.65-1.56)     perf 4999 Hz  0.745 (0.66-1.08)
    perf  199 Hz  0.994 (0.60-1.20)     advise run 99 Hz  0.513 (0.41-0.85)

49-199 Hz are lost in the noise; the cost is linear in the frequency (999 Hz: 4.9 %, 4999 Hz:
25.6 %, i.e. ~0.5 % per 100 Hz), which puts 99 Hz at ~0.5 % and 199 Hz at ~1 %: the default is
99 Hz. The whole `advise run` costs far more than its perf sampling: the BPF/tracepoint counters
(softirq entry/exit tracing above all) halve this server's throughput while they run.
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
from advisor.lab.testbed import Testbed, netns_argv, parse_wrk, stop_process_group  # noqa: E402

PERF_LEAD_S = 0.5
PERF_TAIL_S = 1.0
RUN_LEAD_S = 1.5
RUN_TAIL_S = 3.0  # about what `advise run` takes after its window (probes, perf script, counters)


def wrk(tb: Testbed, seconds: float, connections: int, threads: int) -> float:
    argv = netns_argv(tb.client_ns, tb.wrk_argv(seconds, connections, threads))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    return parse_wrk(done.stdout)["requests_per_sec"]


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_perf(tb: Testbed, args, frequency: int, workdir: str) -> tuple[float, float | None]:
    """wrk while perf record samples; returns (req/s, perf's CPU in % of one CPU over the wrk run)."""
    perf = perf_mod.perf_binary()
    output = os.path.join(workdir, "perf.data")
    argv = perf_mod.record_argv(perf, output, PERF_LEAD_S + args.seconds + PERF_TAIL_S, frequency)
    with perf_mod.PerfRecord(argv, os.path.join(workdir, "perf.stderr")) as recorder:
        time.sleep(PERF_LEAD_S)
        before, start = cpu_seconds(recorder.proc.pid), time.monotonic()
        rps = wrk(tb, args.seconds, args.connections, args.threads)
        after, elapsed = cpu_seconds(recorder.proc.pid), time.monotonic() - start
        recorder.wait(args.seconds + 30)
        recorder.check()
    os.unlink(output)
    share = None if before is None or after is None else round(100.0 * (after - before) / elapsed, 2)
    return rps, share


def with_run(tb: Testbed, args, frequency: int, workdir: str) -> tuple[float, None]:
    """wrk while `advise run` collects (its report goes to a file, not measured)."""
    report = os.path.join(workdir, "report.json")
    argv = [sys.executable, "-m", "advisor.cli", "run", "--duration", f"{RUN_LEAD_S + args.seconds + 0.5:g}",
            "--frequency", str(frequency), "--netns", tb.server_ns, "--format", "json", "--output", report]
    advise = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        time.sleep(RUN_LEAD_S)
        rps = wrk(tb, args.seconds, args.connections, args.threads)
        _, err = advise.communicate(timeout=120)
        if advise.returncode != 0:
            raise SystemExit(f"advise run failed ({advise.returncode}): {err.strip()}")
    finally:
        stop_process_group(advise, grace_s=5, sig=2)
    return rps, None


def without(tb: Testbed, args, mode: str) -> float:
    """The A arm, shaped like the B arm (idle, wrk, idle): idle gaps change the next wrk run here."""
    lead, tail = (PERF_LEAD_S, PERF_TAIL_S) if mode == "perf" else (RUN_LEAD_S, RUN_TAIL_S)
    time.sleep(lead)
    rps = wrk(tb, args.seconds, args.connections, args.threads)
    time.sleep(tail)
    return rps


def measure(tb: Testbed, args, mode: str, frequency: int, workdir: str) -> dict:
    collect = with_perf if mode == "perf" else with_run
    pairs, cpu = [], []
    for index in range(args.pairs):
        order = "AB" if index % 2 == 0 else "BA"
        arms = {}
        for arm in order:
            if arm == "A":
                arms["A"] = without(tb, args, mode)
            else:
                arms["B"], share = collect(tb, args, frequency, workdir)
                if share is not None:
                    cpu.append(share)
        ratio = arms["B"] / arms["A"]
        pairs.append(ratio)
        print(json.dumps({"mode": mode, "frequency": frequency, "pair": index, "order": order,
                          "without_rps": round(arms["A"]), "with_rps": round(arms["B"]),
                          "ratio": round(ratio, 4)}), flush=True)
    summary = {"mode": mode, "frequency": frequency, "pairs": len(pairs), "seconds": args.seconds,
               "median_ratio": round(statistics.median(pairs), 4), "min_ratio": round(min(pairs), 4),
               "max_ratio": round(max(pairs), 4),
               "overhead_pct": round(100.0 * (1.0 - statistics.median(pairs)), 2)}
    if cpu:
        summary["perf_cpu_pct_of_one_cpu"] = round(statistics.median(cpu), 2)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frequencies", default="49,99,199", help="perf frequencies in Hz (comma list)")
    parser.add_argument("--modes", default="perf,run", help="perf, run, or both (comma list)")
    parser.add_argument("--run-frequency", type=int, default=perf_mod.DEFAULT_FREQUENCY,
                        help="frequency for the `run` mode (default: advise run's default)")
    parser.add_argument("--pairs", type=int, default=8, help="ABBA pairs per setting (default 8)")
    parser.add_argument("--seconds", type=float, default=3.0, help="wrk seconds per arm (default 3)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the summaries here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_overhead: needs root (namespaces, perf -a, BPF)", file=sys.stderr)
        return 3
    modes = [m for m in args.modes.split(",") if m]
    settings = [("perf", int(f)) for f in args.frequencies.split(",") if f and "perf" in modes]
    if "run" in modes:
        settings.append(("run", args.run_frequency))
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
    print(f"{'mode':<5} {'Hz':>4} {'pairs':>5}  {'median B/A':>10}  {'min':>6} {'max':>6}  "
          f"{'overhead':>8}  perf CPU")
    for s in summaries:
        cpu = f"{s['perf_cpu_pct_of_one_cpu']:.2f}% of a CPU" if "perf_cpu_pct_of_one_cpu" in s else ""
        print(f"{s['mode']:<5} {s['frequency']:>4} {s['pairs']:>5}  {s['median_ratio']:>10.4f}  "
              f"{s['min_ratio']:>6.3f} {s['max_ratio']:>6.3f}  {s['overhead_pct']:>7.2f}%  {cpu}")
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
