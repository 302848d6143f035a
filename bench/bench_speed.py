"""Parse throughput against FlameGraph, and `advise analyze perf.data` against `perf script`.

    .venv/bin/python bench/bench_speed.py [--reps 5] [--mb 200] [--seconds 20]
                                          [--perf-data FILE] [--baseline auto|perl|perf-report]
                                          [--skip-parse]

1. Parse throughput of `perf script` text, on (a) the FlameGraph example repeated to ~200 MB
   and (b) the text of a real 20 s system-wide recording made here (`perf record -a -g -F 999
   -- sleep 20` while a Python busy loop and a loopback TCP ping-pong run). The baseline is
   FlameGraph's stackcollapse-perf.pl (found on PATH or in $FLAMEGRAPH_DIR; never fetched).
   Without it, `perf report --stdio` on the same perf.data stands in, and the output says so.
2. End to end: `advise analyze perf.data`, with the default terminal report and with `--format
   json`, against `perf script` on the same file, all writing to /dev/null, and the terminal
   report once more on a pseudo-terminal (what a user at a terminal waits for: colour and
   highlighted commands); then where the time of one `advise analyze --format json` goes, stage
   by stage, measured in one process.

Each measurement runs in its own child process, repeated --reps times with the two sides of a
ratio interleaved (the machine is shared: figures are min / median / max over repetitions,
ratios are per repetition). Nothing is fetched; the temporary files are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
from benchlib import MB, PARSE_CHILD, PYTHON, REPO, spread  # noqa: E402

from advisor.parse.perf_spawn import time_slices  # noqa: E402  (benchlib put the repository on the path)


#: The terminal the pseudo-terminal runs claim to be: 256 colours, as most terminal emulators say.
TTY_ENV = {"TERM": "xterm-256color", "NO_COLOR": ""}  # empty: an inherited NO_COLOR turns colour off

# Stages of one `advise analyze perf.data`, one after the other, both reports rendered. (The CLI
# imports and loads the rules while perf script loads symbols, and ends with os._exit: see
# advisor.cli.)
STAGES_CHILD = r"""
import json, os, sys, time
t = [time.perf_counter()]
sys.path.insert(0, {repo!r})
import advisor                                    # the package: profile, engine, parsers
t.append(time.perf_counter())
from advisor import analysis, cli
from advisor.report import json_report, terminal
from rich.console import Console
from advisor.engine.rules import load_rules
from advisor.evidence import Evidence
t.append(time.perf_counter())
from advisor.parse import perf_data
path = sys.argv[1]
table = perf_data.read(path)                      # perf script, parsed as it streams
t.append(time.perf_counter())
profile = advisor.Profile(table)
t.append(time.perf_counter())
rules = load_rules()
t.append(time.perf_counter())
evidence = Evidence(profile, None, None, {{}}, path, {{"system": "-", "counters": "-"}})
result = advisor.analyze_evidence(evidence, rules)
t.append(time.perf_counter())
text = json_report.render(result.data)
t.append(time.perf_counter())
terminal.render(result.data, Console(file=open(os.devnull, "w")))
t.append(time.perf_counter())
names = ["import advisor", "import cli, reports", "perf script + parse",
         "Profile(table)", "load_rules()", "evaluate (analyze_evidence)", "render json",
         "render terminal (no colour)"]
print(json.dumps(dict(zip(names, (b - a for a, b in zip(t, t[1:]))))))
sys.stdout.flush()
os._exit(0)                                       # as advisor.cli does after `analyze`
"""

#: How long `perf script` takes to print its first byte (it loads symbols first).
FIRST_BYTE_CHILD = r"""
import sys, time
sys.path.insert(0, {repo!r})
from advisor.parse import perf_spawn
from advisor.proc import kill_group
start = time.perf_counter()
proc = perf_spawn.perf_script(perf_spawn.find_perf(), sys.argv[1])  # as advise starts it
proc.stdout.read1(1)
print(time.perf_counter() - start)
kill_group(proc)
"""


#: Which hot loop the parser runs: "C" (advisor/parse/_fast_blocks.c built) or "Python".
HOT_LOOP_CHILD = r"""
import sys
sys.path.insert(0, {repo!r})
from advisor.parse import perf_script
print(perf_script.HOT_LOOP)
"""


#: Which heavy libraries `advise analyze --format json` imports (none, since pandas went lazy).
HEAVY_CHILD = r"""
import json, sys
sys.path.insert(0, {repo!r})
from advisor import cli
cli.main(["analyze", sys.argv[1], "--format", "json", "--output", "/dev/null"])
print(json.dumps([m for m in ("pandas", "numpy", "jsonschema", "networkx", "rich") if m in sys.modules]))
"""


def hot_loop() -> str:
    """Which loop the parser runs here: "C" (advisor/parse/_fast_blocks.c built) or "Python"."""
    run = benchlib.run_child([PYTHON, "-c", HOT_LOOP_CHILD.format(repo=str(REPO))], capture=True)
    return run.stdout.decode().strip()


def parse_child(path: Path, pure: bool = False) -> tuple[float, dict]:
    """(peak RSS, what PARSE_CHILD printed); `pure`: with the pure-Python hot loop."""
    run = benchlib.run_child([PYTHON, "-c", PARSE_CHILD.format(repo=str(REPO)), str(path)],
                             capture=True, env={"ADVISOR_PURE_PYTHON": "1"} if pure else None)
    return run.rss_mib, json.loads(run.stdout)


def advise_command() -> list[str]:
    script = Path(PYTHON).parent / "advise"
    return [str(script)] if script.exists() else [PYTHON, "-m", "advisor.cli"]


# ---------------------------------------------------------------------------------- parts
def bench_parse(label: str, text: Path, perf_data: Path | None, baseline: str, perl: Path | None,
                reps: int) -> None:
    size = text.stat().st_size / MB
    print(f"\n[parse] {label}: {text.name}, {size:.0f} MB")
    ours, theirs, ratios, rss, pure = [], [], [], [], []
    info = {}
    loops = ("ours", "pure") if hot_loop() == "C" else ("ours",)  # the pure-Python loop beside C
    for rep in range(reps):
        for loop in loops if rep % 2 == 0 else reversed(loops):  # ABBA
            child_rss, parsed = parse_child(text, pure=loop == "pure")
            if loop == "pure":
                pure.append(parsed["seconds"])
            else:
                info = parsed
                ours.append(info["seconds"])
                rss.append(child_rss)
        if baseline == "perl":
            base = benchlib.run_child(["perl", str(perl), str(text)])
        elif perf_data is not None:
            base = benchlib.run_child(["perf", "report", "--stdio", "-i", str(perf_data)],
                                      env={"PAGER": "cat", "LC_ALL": "C"})
        else:
            base = None
        if base is not None:
            theirs.append(base.seconds)
            ratios.append(base.seconds / info["seconds"])
    print(f"  advisor perf_script.read : {spread([size / s for s in ours], '{:.1f}')} MB/s "
          f"(min/median/max; {spread(ours, '{:.3f}')} s; {info['samples']} samples, "
          f"{info['rows']} stack rows; peak RSS {spread(rss, '{:.0f}')} MiB; hot loop in "
          f"{info['hot_loop']})")
    if pure:
        print(f"  the same, pure-Python loop : {spread([size / s for s in pure], '{:.1f}')} MB/s; "
              f"time C loop / pure Python: {spread([a / b for a, b in zip(ours, pure)])}")
    if baseline == "perl":
        print(f"  stackcollapse-perf.pl    : {spread([size / s for s in theirs], '{:.1f}')} MB/s "
              f"({spread(theirs, '{:.2f}')} s)")
        print(f"  ratio perl time / advisor time: {spread(ratios)}  (target >= 5)")
    elif theirs:
        print(f"  perf report --stdio on the perf.data: {spread(theirs, '{:.2f}')} s "
              f"(stackcollapse-perf.pl not found: perf report stands in; it reads perf.data, "
              f"symbolises and aggregates, so this ratio is not the perl one)")
        print(f"  ratio perf report time / advisor parse time: {spread(ratios)}")
    else:
        print("  no baseline for this input (stackcollapse-perf.pl not found, and there is no "
              "perf.data for perf report); reference: the brief measured perl at ~16 MB/s")


def bench_end_to_end(perf_data: Path, reps: int, cache: Path) -> None:
    plain = ["perf", "script", "-i", str(perf_data)]  # what a user would run
    ours_cmd = benchlib.perf_script_command(perf_data)  # what advisor runs
    advise = advise_command() + ["analyze", str(perf_data), "--format", "json"]
    # the default report (rich's terminal layout, plain on /dev/null): what a user runs
    advise_terminal = advise_command() + ["analyze", str(perf_data)]
    env = {"LC_ALL": "C", "PAGER": "cat"}
    cache_env = {"XDG_CACHE_HOME": str(cache)}  # advise's cache of validated rule files: our own
    print(f"\n[end to end] {perf_data} ({perf_data.stat().st_size / MB:.1f} MB)")
    cold = benchlib.run_child(advise, env=cache_env).seconds
    print(f"  first advise analyze, rule files not yet validated (imports jsonschema): {cold:.2f} s; "
          f"the repetitions below find them in the cache")
    loop = hot_loop()
    pure_env = {**cache_env, "ADVISOR_PURE_PYTHON": "1"}
    print(f"  the parser's hot loop: {loop}" + ("; `advise analyze --format json` also runs with "
          "ADVISOR_PURE_PYTHON=1 (its pure-Python loop) for comparison" if loop == "C" else
          " (advisor/parse/_fast_blocks.c was not built)"))
    slices = time_slices(perf_data)
    split = slices != [None]
    print("  perf script runs: " + (f"{len(slices)} side by side, one per time slice ("
                                   + ", ".join(f"--time {s}" for s in slices) + "); `--format json` "
                                   "also runs with ADVISOR_PERF_SLICES=1 (one perf) for comparison"
                                   if split else "one for the whole file (see perf_spawn.time_slices)"))
    one_perf_env = {**cache_env, "ADVISOR_PERF_SLICES": "1"}
    perf_t, perf_ours, ours, terminal, on_tty, pure, rss, one_perf = [], [], [], [], [], [], [], []
    perf_cpu, ours_cpu, pure_cpu = [], [], []  # CPU seconds: less noisy than wall time on a shared machine
    for rep in range(reps):
        # ABBA: the order flips every repetition, so that drift of a shared machine cancels
        order = (("plain", "ours", "advise", "terminal", "tty") + (("pure",) if loop == "C" else ())
                 + (("one",) if split else ()))
        for which in order if rep % 2 == 0 else reversed(order):
            if which == "plain":
                run = benchlib.run_child(plain, env=env)
                perf_t.append(run.seconds)
                perf_cpu.append(run.cpu_seconds)
            elif which == "ours":
                perf_ours.append(benchlib.run_child(ours_cmd, env=env).seconds)
            elif which == "terminal":
                terminal.append(benchlib.run_child(advise_terminal, env=cache_env).seconds)
            elif which == "tty":  # what a user at a terminal waits for: colour, highlighted commands
                with benchlib.terminal() as tty:
                    on_tty.append(benchlib.run_child(advise_terminal, env={**cache_env, **TTY_ENV},
                                                     stdout=tty).seconds)
            elif which == "one":
                one_perf.append(benchlib.run_child(advise, env=one_perf_env).seconds)
            elif which == "pure":
                run = benchlib.run_child(advise, env=pure_env)
                pure.append(run.seconds)
                pure_cpu.append(run.cpu_seconds)
            else:
                run = benchlib.run_child(advise, env=cache_env)
                ours.append(run.seconds)
                rss.append(run.rss_mib)
                ours_cpu.append(run.cpu_seconds)
    print(f"  perf script -i perf.data > /dev/null: {spread(perf_t)} s")
    print(f"  perf {' '.join(ours_cmd[1:])} > /dev/null (advisor's command): "
          f"{spread(perf_ours)} s")
    print(f"  advise analyze perf.data --format json > /dev/null: {spread(ours)} s "
          f"(peak RSS {spread(rss, '{:.0f}')} MiB)")
    print(f"  advise analyze perf.data > /dev/null (the terminal report): {spread(terminal)} s")
    print(f"  advise analyze perf.data on a terminal (a 100-column pseudo-terminal, TERM="
          f"{TTY_ENV['TERM']}: colour, highlighted commands): {spread(on_tty)} s")
    if pure:
        print(f"  ADVISOR_PURE_PYTHON=1 advise analyze perf.data --format json > /dev/null: {spread(pure)} s")
    if one_perf:
        print(f"  ADVISOR_PERF_SLICES=1 advise analyze perf.data --format json > /dev/null: {spread(one_perf)} s; "
              f"time in slices / one perf: {spread([a / b for a, b in zip(ours, one_perf)])}")
    for label, times in (("--format json", ours), ("terminal report", terminal), ("on a terminal", on_tty),
                         ("--format json, pure-Python loop", pure), ("--format json, one perf", one_perf)):
        if not times:
            continue
        ratios = [a / b for a, b in zip(times, perf_t)]  # each against the perf run beside it
        print(f"  ratio advise ({label}) / perf script: {spread(ratios)}  (target <= 1.15)")
    cpu_ratios = [a / b for a, b in zip(ours_cpu, perf_cpu)]
    print(f"  CPU time (user + system, perf included for advise): perf script {spread(perf_cpu)} s, "
          f"advise analyze {spread(ours_cpu)} s, ratio {spread(cpu_ratios)} (what the parse and the "
          f"analysis add; on two CPUs shared with other work, this is what wall time pays for)")
    heavy = json.loads(benchlib.run_child([PYTHON, "-c", HEAVY_CHILD.format(repo=str(REPO)), str(perf_data)],
                                          capture=True, env=cache_env).stdout)
    print(f"  heavy libraries imported by advise analyze --format json: {', '.join(heavy) or 'none'}")
    first = [float(benchlib.run_child([PYTHON, "-c", FIRST_BYTE_CHILD.format(repo=str(REPO)), str(perf_data)],
                                      capture=True).stdout) for _ in range(reps)]
    print(f"  perf script's first byte of output after: {spread(first)} s (symbol loading; advise "
          f"loads its rules meanwhile)")
    stages, walls = [], []
    for _ in range(reps):
        run = benchlib.run_child([PYTHON, "-c", STAGES_CHILD.format(repo=str(REPO)),
                                  str(perf_data)], capture=True, env=cache_env)
        stages.append(json.loads(run.stdout))
        walls.append(run.seconds)
    print("  where the time of one analysis goes, stage by stage in one process (median of the "
          "repetitions, seconds):")
    for name in stages[0]:
        print(f"    {name:32s} {statistics.median(s[name] for s in stages):6.3f}")
    rest = [w - sum(s.values()) for w, s in zip(walls, stages)]
    print(f"    {'python start and exit':32s} {statistics.median(rest):6.3f}")
    print(f"    {'= total (wall)':32s} {statistics.median(walls):6.3f}")
    print(f"    {'perf script alone, as advisor':32s} {statistics.median(perf_ours):6.3f}")


# ---------------------------------------------------------------------------------- inputs
def make_recording(directory: Path, seconds: float, frequency: int, attempts: int = 3) -> Path:
    """A system-wide recording that `perf script` reads to the end (see README: BPF churn)."""
    for attempt in range(1, attempts + 1):
        perf_data = benchlib.record_system_wide(directory, seconds, frequency)
        proc = subprocess.run(benchlib.perf_script_command(perf_data), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600,
                              env={**os.environ, "LC_ALL": "C"})
        if proc.returncode == 0:
            return perf_data
        reason = proc.stderr.decode(errors="replace").strip().splitlines()[-1:]
        print(f"  recording {attempt}: perf script failed on it ({reason}); recording again")
    raise SystemExit("perf script cannot read the recordings made here; give one with --perf-data")


def pick_baseline(choice: str) -> tuple[str, Path | None]:
    perl = benchlib.find_stackcollapse()
    if choice == "perl" and perl is None:
        raise SystemExit("stackcollapse-perf.pl not found on PATH or in $FLAMEGRAPH_DIR")
    if choice == "perf-report" or perl is None:
        return "perf-report", None
    return "perl", perl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5, help="repetitions of each measurement")
    ap.add_argument("--mb", type=float, default=200,
                    help="size of the repeated example in MB (0: skip that input)")
    ap.add_argument("--seconds", type=float, default=20, help="length of the recording")
    ap.add_argument("--frequency", type=int, default=999, help="sampling frequency (perf -F)")
    ap.add_argument("--perf-data", type=Path, help="use this recording instead of making one")
    ap.add_argument("--baseline", choices=("auto", "perl", "perf-report"), default="auto")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--skip-parse", action="store_true", help="only the end-to-end part")
    args = ap.parse_args()
    baseline, perl = pick_baseline(args.baseline)
    print(f"baseline: {'stackcollapse-perf.pl at ' + str(perl) if perl else 'perf report --stdio'}"
          f" ({'found' if perl else 'stackcollapse-perf.pl not found on PATH or $FLAMEGRAPH_DIR'})")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    # As an installed package is: byte-compiled (with PYTHONDONTWRITEBYTECODE set, as on this
    # machine, a module edited since its last .pyc would be compiled again on every run)
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(REPO / "advisor")], check=True, timeout=300)
    with benchlib.scratch_dir("bench-speed-", args.keep) as directory:
        if args.perf_data:
            perf_data = args.perf_data.resolve()
        else:
            print(f"recording {args.seconds:g} s system-wide at {args.frequency} Hz under load ...",
                  flush=True)
            perf_data = make_recording(directory, args.seconds, args.frequency)
        if not args.skip_parse:
            text = benchlib.write_perf_script(perf_data, directory / "recording.perf-script")
            if args.mb > 0:
                example = benchlib.write_repeated(directory / "example-repeated.txt",
                                                  benchlib.example_bytes(), args.mb)
                bench_parse("FlameGraph example repeated", example, None, baseline, perl, args.reps)
                example.unlink()
            bench_parse("real recording", text, perf_data, baseline, perl, args.reps)
        bench_end_to_end(perf_data, args.reps, directory / "cache")
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
