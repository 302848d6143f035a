"""`advise run`: collect on this box for one window, then print the same report `advise analyze` gives.

Exit codes as for analyze: 0, 1 (--fail-on-gain tripped), 2 (bad usage), 3 (not root, perf
missing, perf_event_paranoid too strict, or the bundle could not be written), 130 (Ctrl-C: every
collector stopped, temporary files removed).
"""

from __future__ import annotations

import argparse

from .cli import (FORMATS, add_report_options, check_output_target, command_names, gate, path_arg,
                  refuse_overwriting, render_result)
from .collect.perf import DEFAULT_FREQUENCY
from .errors import UsageError
from .run import DEFAULT_DURATION_S, run

MAX_DURATION_S = 3600.0
MAX_FREQUENCY = 10000


def register(subparsers) -> None:
    p = subparsers.add_parser("run", help="collect on this box (perf, kernel counters, system state) and "
                              "rank the remedies")
    p.add_argument("--duration", type=float, default=DEFAULT_DURATION_S, metavar="S",
                   help=f"seconds of collection (default {DEFAULT_DURATION_S:g})")
    p.add_argument("--frequency", type=int, default=DEFAULT_FREQUENCY, metavar="HZ",
                   help=f"perf sampling frequency per CPU (default {DEFAULT_FREQUENCY}: "
                        "about 0.5%% of throughput, measured by bench/bench_overhead.py)")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--comm", type=command_names, help="target processes by command name (globs, "
                        "comma-separated: nginx,wrk; their state and syscalls are read; perf still samples "
                        "every CPU)")
    target.add_argument("--pid", type=int, help="target process and its descendants (an nginx master brings "
                        "its workers): perf samples only them (-p)")
    target.add_argument("--cgroup", metavar="PATH", help="target cgroup, e.g. system.slice/nginx.service or "
                        "/sys/fs/cgroup/...: perf samples only its processes and sub-cgroups (-a -G)")
    p.add_argument("--netns", metavar="NAME", help="read the network probes (firewall, devices, qdiscs, "
                   "packet sockets) inside this network namespace; its processes are the target when "
                   "no --comm/--pid is given")
    p.add_argument("--during", metavar="CMD", help="load command run for the window (split like a shell "
                   "would, never run by one); wrk's Requests/sec goes in the report")
    p.add_argument("--bpf", nargs="?", const=True, default=False, metavar="WHAT",
                   help="also run the BPF and tracepoint counters (syscalls by name, softirq time per CPU, "
                        "perf stat rates; a comma list of syscalls,softirq-time,tracepoints,runqlat, or all). "
                        "They cost real throughput while they run (see bench/bench_overhead.py); without "
                        "--bpf the counters come from /proc only, at no measurable cost")
    p.add_argument("--save", type=path_arg, metavar="DIR", help="also write the recording bundle to DIR "
                   "(atomically), for `advise analyze DIR`")
    add_report_options(p, FORMATS)
    p.set_defaults(func=cmd_run)


def check_window(duration: float, frequency: int | None, duration_option: str = "--duration") -> None:
    """The collection window and perf's frequency (None: the default), for `run` and `lab`."""
    if not 0 < duration <= MAX_DURATION_S:  # nan too
        raise UsageError(f"{duration_option} {duration:g}: give 0 < S <= {MAX_DURATION_S:g}")
    if frequency is not None and not 0 < frequency <= MAX_FREQUENCY:
        raise UsageError(f"--frequency {frequency}: give 0 < HZ <= {MAX_FREQUENCY}")


def cmd_run(args: argparse.Namespace) -> int:
    check_window(args.duration, args.frequency)
    refuse_overwriting(args.output, args.format, [args.save])
    if args.output is not None:
        check_output_target(args.output)
    result = run(duration=args.duration, frequency=args.frequency, comm=args.comm, pid=args.pid,
                 cgroup=args.cgroup, netns=args.netns, during=args.during, save=args.save, progress=True,
                 rules_dir=args.rules, bpf=args.bpf)
    render_result(result, args.format, args.output)
    return gate(result.data, args.fail_on_gain)
