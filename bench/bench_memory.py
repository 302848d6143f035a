"""Peak memory of `advise analyze` on `perf script` text of 100 MB and 1 GB.

    .venv/bin/python bench/bench_memory.py [--sizes 100,1000] [--reps 3] [--no-growing]

Two kinds of input, each built in a temporary directory at every size:

* repeated: the FlameGraph example (3.1 MB) repeated. The number of samples grows with the
  size, the number of distinct stacks does not: peak RSS should not grow either (target: under
  200 MB at 1 GB).
* growing: the same, but each copy has its own TIDs (shifted by 100000 per copy), as a long
  recording of a server that forks would. Distinct StackTable rows (event, comm, pid, tid, cpu,
  stack) then grow with the size, and so does memory: the output says by how much per row.

For each input and size, in child processes (peak RSS from wait4, repeated --reps times):
`advise analyze FILE --format json > /dev/null`, and the parser alone (perf_script.read),
which also reports the samples and rows. --text FILE adds a file of your own (a real
recording's text has many more distinct frame lines than the repeated example: it shows the
parser's caches at their bound, CACHE_BYTES each).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
from benchlib import MB, PARSE_CHILD, PYTHON, REPO, spread  # noqa: E402
from bench_speed import advise_command  # noqa: E402


IMPORT_ONLY = [PYTHON, "-c", f"import sys; sys.path.insert(0, {str(REPO)!r}); "
               "import advisor.cli, advisor.analysis"]


def measure(path: Path, reps: int) -> dict:
    analyze, parse = [], []
    info: dict = {}
    for _ in range(reps):
        run = benchlib.run_child(advise_command() + ["analyze", str(path), "--format", "json"],
                                 timeout=3600)
        analyze.append((run.rss_mib, run.seconds))
        run = benchlib.run_child([PYTHON, "-c", PARSE_CHILD.format(repo=str(REPO)), str(path)],
                                 capture=True, timeout=3600)
        info = json.loads(run.stdout)
        parse.append((run.rss_mib, info["seconds"]))
    return {"analyze": analyze, "parse": parse, **info}


def report(kind: str, size_mb: float, m: dict) -> None:
    a_rss, a_sec = zip(*m["analyze"])
    p_rss, p_sec = zip(*m["parse"])
    print(f"  {kind:9s} {size_mb:6.0f} MB  {m['samples']:9d} samples {m['rows']:8d} rows | "
          f"advise analyze: peak RSS {spread(a_rss, '{:.0f}')} MiB, {spread(a_sec, '{:.1f}')} s | "
          f"parser alone: peak RSS {spread(p_rss, '{:.0f}')} MiB, {spread(p_sec, '{:.1f}')} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000", help="input sizes in MB, comma separated")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-growing", action="store_true", help="skip the growing-TID inputs")
    ap.add_argument("--text", type=Path, action="append", default=[],
                    help="also measure this perf script file (e.g. a real recording's text)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    kinds = ["repeated"] + ([] if args.no_growing else ["growing"])
    data = benchlib.example_bytes()
    results: dict = {}
    with benchlib.scratch_dir("bench-memory-", args.keep) as directory:
        base = benchlib.run_child(IMPORT_ONLY)
        print(f"baseline: python + import advisor.cli, advisor.analysis = {base.rss_mib:.0f} MiB "
              f"peak RSS")
        print("min / median / max over repetitions:")
        for kind in kinds:
            for size in sizes:
                path = directory / f"{kind}-{size:g}MB.txt"
                write = benchlib.write_repeated if kind == "repeated" else benchlib.write_growing
                write(path, data, size)
                actual = path.stat().st_size / MB
                results[kind, size] = measure(path, args.reps)
                report(kind, actual, results[kind, size])
                path.unlink()
        for path in args.text:
            report("given", path.stat().st_size / MB, measure(path, args.reps))
            print(f"    (given: {path})")
        print()
        for kind in kinds:
            small, large = results[kind, sizes[0]], results[kind, sizes[-1]]
            grow = (min(r for r, _ in large["analyze"]) - min(r for r, _ in small["analyze"]))
            rows = large["rows"] - small["rows"]
            line = (f"{kind}: {sizes[0]:g} MB -> {sizes[-1]:g} MB: samples x"
                    f"{large['samples'] / small['samples']:.1f}, rows {small['rows']} -> "
                    f"{large['rows']}, peak RSS of advise analyze {grow:+.0f} MiB")
            if rows > 0:
                line += f" ({grow * 1024 * 1024 / rows:.0f} bytes per added row)"
            print(line)


if __name__ == "__main__":
    main()
