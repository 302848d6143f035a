"""`advise lab`: inject each pathology in a network-namespace testbed, estimate, then measure."""

from __future__ import annotations

import json
import sys

from .errors import UsageError

COLUMNS = ("scenario", "expected rule", "rule ranked first", "estimated gain (range)",
           "measured gain (spread)", "verdict")


def register(sub) -> None:
    from .cli import path_arg
    from .lab.pathologies import PATHOLOGIES

    p = sub.add_parser("lab", help="testbed: inject each pathology, compare estimated and measured gain")
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                   help=f"default: every scenario of {', '.join(PATHOLOGIES)} that stays inside the "
                        f"lab's namespaces (with --allow-global: all)")
    p.add_argument("--pairs", type=int, default=15, help="A/B pairs measured per scenario (default 15)")
    p.add_argument("--round-seconds", type=int, default=2, help="wrk seconds per arm (default 2)")
    p.add_argument("--collect-seconds", type=float, default=5.0, help="advise run window (default 5)")
    p.add_argument("--frequency", type=int, help="perf sampling frequency (default: advise run's)")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--record", type=path_arg, metavar="DIR", help="save each scenario's bundle in DIR/<scenario>")
    p.add_argument("--allow-global", action="store_true",
                   help="also run the scenarios that change settings global to the machine (syscall-audit: "
                        "the audit flag and rules, restored afterwards but for one never,task rule, since "
                        "the kernel remembers until reboot that audit was on); they refuse a machine whose "
                        "audit is in use")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per scenario")
    p.add_argument("--prefix", default="advlab", help="network namespace name prefix (default advlab)")
    p.set_defaults(func=cmd_lab)


def _row(res) -> tuple[str, ...]:
    if res.estimated_gain_pct is None:
        est = "-"
    else:
        est = f"{res.estimated_gain_pct:+.1f}% ({res.gain_low_pct:.1f}..{res.gain_high_pct:.1f})"
    meas = "-" if res.measured_gain_pct is None else f"{res.measured_gain_pct:+.1f}% (±{res.measured_spread_pct:.1f})"
    return (res.scenario, res.expected_rule or "(none)", res.top_rule or "(none)", est, meas, res.verdict)


def default_scenarios(allow_global: bool) -> list[str]:
    """Every scenario that stays inside the lab's namespaces; with allow_global, all of them."""
    from .lab.pathologies import PATHOLOGIES

    return [name for name, kind in PATHOLOGIES.items() if allow_global or not kind.global_setting]


def cmd_lab(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from .cli_run import check_window
    from .lab.pathologies import PATHOLOGIES
    from .lab.verify import LabSettings, run_lab

    names = args.scenarios or default_scenarios(args.allow_global)
    unknown = [n for n in names if n not in PATHOLOGIES]
    if unknown:
        raise UsageError(f"unknown scenario {unknown[0]!r}: choose from {', '.join(PATHOLOGIES)}")
    if args.pairs < 1 or args.round_seconds < 1:
        raise UsageError("--pairs and --round-seconds must be at least 1")
    check_window(args.collect_seconds, args.frequency, "--collect-seconds")
    if not 1 <= args.threads <= args.connections:  # else wrk fails in the testbed, after it is built
        raise UsageError(f"--threads {args.threads} --connections {args.connections}: give 1 <= threads "
                         "<= connections (each wrk thread needs a connection of its own)")
    settings = LabSettings(pairs=args.pairs, round_seconds=args.round_seconds, collect_seconds=args.collect_seconds,
                           frequency=args.frequency, connections=args.connections, threads=args.threads,
                           record=args.record, allow_global=args.allow_global, prefix=args.prefix)
    err = Console(stderr=True)

    def progress(res):
        err.print(f"lab: {res.scenario}: {res.verdict} ({res.detail})", markup=False, highlight=False)

    results = run_lab(names, settings, on_result=progress)
    if args.json:
        sys.stdout.write(json.dumps([r.to_dict() for r in results], indent=2) + "\n")
    else:
        table = Table(title=f"advise lab: {settings.pairs} A/B pairs of {settings.round_seconds} s per scenario")
        for col in COLUMNS:
            table.add_column(col, overflow="fold")
        for res in results:
            table.add_row(*_row(res))
        Console().print(table)
    return 0
