"""Small Python programs the collector tests measure, and how to start and finish them.

Each prints "ready" once it is about to do its work, runs for argv[1] seconds and then prints
what it did, so a test can compare the collector's count with the program's own.
"""

from __future__ import annotations

import subprocess
import sys

# Moves itself between CPU 0 and CPU 1 (and yields) as fast as it can: each move is a migration.
# Prints the number of moves and the seconds it ran.
CPU_FLIPPER = r"""
import os, sys, time
end = time.monotonic() + float(sys.argv[1])
print("ready", flush=True)
start, flips = time.monotonic(), 0
while time.monotonic() < end:
    os.sched_setaffinity(0, {flips % 2}); os.sched_yield(); flips += 1
print(flips, time.monotonic() - start, flush=True)
"""


def start(script: str, *args: str) -> subprocess.Popen:
    """Run `script` with `args` and return once it says it is ready."""
    child = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    return child


def finish(child: subprocess.Popen) -> list[str]:
    """What the program printed at its end, split into words."""
    out, _ = child.communicate(timeout=15)
    return out.split()
