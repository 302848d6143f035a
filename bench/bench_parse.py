"""Parse speed and memory of advisor.parse.perf_script on a ~200 MB `perf script` file.

The input is built by repeating the decompressed FlameGraph example
(tests/corpus/flamegraph/inputs/example-perf-stacks.txt.gz, 3.1 MB) into a temporary file.
Each measurement runs in a fresh subprocess so that the peak RSS is the parser's own.

    .venv/bin/python bench/bench_parse.py [--mb 200] [--input FILE[.gz]] [--keep]

Printed: MB/s and peak RSS for `read`, for a plain chunked read of the same file (the I/O
floor), and for `wc -l`. The repeated copies let the parser's caches hit after the first copy;
`first copy` is the same parser on one copy with cold caches, the honest figure for input whose
stacks do not repeat.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "corpus"
DEFAULT_INPUT = CORPUS / "flamegraph" / "inputs" / "example-perf-stacks.txt.gz"

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
mode, path = sys.argv[1], sys.argv[2]
from advisor.parse.perf_script import HOT_LOOP, read  # imports: not timed
with open("/proc/self/statm") as f:
    rss_before_kib = int(f.read().split()[1]) * resource.getpagesize() / 1024
t0 = time.perf_counter()
if mode == "parse":
    with open(path, "rb") as f:
        table = read(f, path)
    extra = {{"samples": table.samples, "stacks": len(table), "hot_loop": HOT_LOOP}}
else:
    lines = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            lines += chunk.count(b"\n")
    extra = {{"lines": lines}}
seconds = time.perf_counter() - t0
rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(seconds=seconds, rss_mib=rss_kib / 1024,
                      rss_before_mib=rss_before_kib / 1024, **extra)))
"""


def run_child(mode: str, path: Path) -> dict:
    code = CHILD.format(repo=str(REPO))
    out = subprocess.run([sys.executable, "-c", code, mode, str(path)], check=True,
                         capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout)


def build_input(source: Path, megabytes: int, directory: Path) -> tuple[Path, Path]:
    data = gzip.decompress(source.read_bytes()) if source.suffix == ".gz" else source.read_bytes()
    if not data.endswith(b"\n\n"):
        data = data.rstrip(b"\n") + b"\n\n"
    one = Path(directory) / "one-copy.txt"
    one.write_bytes(data)
    big = Path(directory) / "repeated.txt"
    copies = max(1, (megabytes << 20) // len(data))
    with open(big, "wb") as f:
        for _ in range(copies):
            f.write(data)
    return one, big


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=200, help="size of the repeated input in MB")
    ap.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    ap.add_argument("--keep", action="store_true", help="keep the temporary files")
    args = ap.parse_args()
    with benchlib.scratch_dir("bench-parse-", args.keep) as directory:
        one, big = build_input(args.input, args.mb, directory)
        size = big.stat().st_size / 1e6
        print(f"input: {big} ({size:.0f} MB, {size / (one.stat().st_size / 1e6):.0f} copies "
              f"of {args.input.name})")
        floor = run_child("read", big)
        parse = run_child("parse", big)
        cold = run_child("parse", one)
        t0 = time.perf_counter()
        subprocess.run(["wc", "-l", str(big)], check=True, capture_output=True, timeout=600)
        wc = time.perf_counter() - t0
        one_mb = one.stat().st_size / 1e6
        print(f"perf_script.read     : {size / parse['seconds']:7.1f} MB/s  "
              f"({parse['seconds']:.2f} s, peak RSS {parse['rss_mib']:.0f} MiB of which "
              f"{parse['rss_before_mib']:.0f} MiB before parsing, "
              f"{parse['samples']} samples, {parse['stacks']} distinct stacks; hot loop in "
              f"{parse['hot_loop']}: ADVISOR_PURE_PYTHON=1 for the other)")
        print(f"  first copy (cold)  : {one_mb / cold['seconds']:7.1f} MB/s  "
              f"({cold['seconds']:.3f} s, peak RSS {cold['rss_mib']:.0f} MiB)")
        print(f"plain chunked read   : {size / floor['seconds']:7.1f} MB/s  "
              f"(peak RSS {floor['rss_mib']:.0f} MiB, same imports) -> parser is "
              f"{parse['seconds'] / floor['seconds']:.1f}x slower than reading")
        print(f"wc -l                : {size / wc:7.1f} MB/s")
        print("reference points (brief): stackcollapse-perf.pl ~16 MB/s, inferno ~180 MiB/s; "
              f"parser = {size / parse['seconds'] / 16:.1f}x perl")


if __name__ == "__main__":
    main()
