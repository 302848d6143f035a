"""bcc's CO-RE tools (Debian libbpf-tools) and bpftrace: run them for a window, parse what they print.

These run where bcc's Python `BPF(text=...)` cannot compile (no kernel headers): they need only BTF.
Each runner starts one tool as a child in its own process group, waits for it to print its summary
and exit by itself (every invocation here has a duration), and kills the group if anything goes wrong,
so no tool survives a timeout, an exception or Ctrl-C. The parsers are pure functions of the text,
tested on real captures in tests/data/core_tools/.

Only what /proc cannot give is traced, and only with `advise run --bpf`: syscalls by name
(syscount), softirq time per CPU (bpftrace), run-queue latency percentiles (runqlat). softirqs(8)
and hardirqs(8) are not run: /proc/softirqs and /proc/interrupts count the same events for free.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading

from advisor.errors import InputError
from advisor.proc import kill_group, signal_group, stop_group

TOOL_DIR = "/usr/sbin"
# Time a tool may take to load and attach its BPF programs before its own timer starts, plus the
# time to print; a busy 2-CPU box needs a few seconds. Past duration + this, the tool is stopped.
STARTUP_GRACE_S = 15.0
MAX_TARGET_PIDS = 4  # one syscount per target process: each adds a program run on every syscall

SOFTIRQ_NAMES = ["HI", "TIMER", "NET_TX", "NET_RX", "BLOCK", "IRQ_POLL", "TASKLET", "SCHED", "HRTIMER", "RCU"]


class ToolFailed(Exception):
    """A tool did not produce a usable summary; the message says why in one line."""


# ---------------------------------------------------------------- child processes

class Children:
    """Every tool process started for one collection, so that all of them can be stopped at once.

    Used as a context manager: on exit (normal, exception or KeyboardInterrupt) each live process
    group gets SIGINT (the tools print and exit on it), then SIGKILL if still there after a moment.
    `close()` does the same from another thread and refuses every later start, so a thread that was
    about to start a tool when the collection was interrupted cannot leave one behind.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = threading.Condition(self._lock)  # notified when no start is under way
        self._live: list[subprocess.Popen] = []
        self._starting: set[int] = set()  # threads with a start under way (past the `closed` check)
        self._closed = False

    def __enter__(self) -> "Children":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def spawn(self, argv: list[str]) -> subprocess.Popen:
        with self._lock:
            if self._closed:
                raise ToolFailed(f"{os.path.basename(argv[0])} not started: the collection was stopped")
            self._starting.add(threading.get_ident())
        try:
            try:
                child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True,
                                         env={**os.environ, "LC_ALL": "C"})
            except FileNotFoundError:
                raise ToolFailed(f"{argv[0]} missing") from None
            except PermissionError:
                raise ToolFailed(f"{argv[0]} not executable") from None
            with self._lock:
                closed = self._closed  # close() ran while it started: it did not see this one
                if not closed:
                    self._live.append(child)
            if closed:
                kill_group(child)
                raise ToolFailed(f"{os.path.basename(argv[0])} stopped: the collection was stopped")
            return child
        finally:
            with self._lock:
                self._starting.discard(threading.get_ident())
                self._started.notify_all()

    def pids(self) -> list[int]:
        with self._lock:
            return [c.pid for c in self._live if c.poll() is None]

    def stop(self, child: subprocess.Popen, grace_s: float = 1.0) -> None:
        """SIGINT the child's group, then SIGKILL it; reap the child."""
        stop_group(child, signal.SIGINT, grace_s)  # SIGKILL also reaches grandchildren (perf's `sleep`)
        with self._lock:
            if child in self._live:
                self._live.remove(child)

    def stop_all(self) -> None:
        with self._lock:
            live = list(self._live)
        for child in live:
            self.stop(child, grace_s=0.5)

    def close(self, wait_s: float = 5.0) -> None:
        """Stop every tool and start none from now on (any thread may call it). A start under way
        in another thread is waited for (up to `wait_s`): it stops and reaps what it started, so
        that nothing it started outlives a caller that exits next."""
        me = threading.get_ident()
        with self._lock:
            self._closed = True
            # not for a start of this very thread (close() called from inside it): that one is here
            self._started.wait_for(lambda: not self._starting - {me}, timeout=wait_s)
        self.stop_all()


def run_tool(children: Children, argv: list[str], timeout_s: float) -> str:
    """Run one tool to completion and return its stdout; ToolFailed with the reason otherwise.

    A tool still running at `timeout_s` gets SIGINT, which makes it print its summary and exit;
    that output is used. A tool that dies (killed, error exit, nothing printed) is a failure.
    """
    name = os.path.basename(argv[0])
    child = children.spawn(argv)
    stopped_late = False
    try:
        try:
            out, err = child.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stopped_late = True
            signal_group(child.pid, signal.SIGINT)
            try:
                out, err = child.communicate(timeout=2.0)
            except subprocess.TimeoutExpired:
                raise ToolFailed(f"{name} did not stop within {timeout_s + 2:g} s") from None
    finally:
        children.stop(child)
    code = child.returncode
    if code is not None and code < 0:
        raise ToolFailed(f"{name} killed by {signal.Signals(-code).name}")
    if code != 0:
        lines = [line for line in err.decode(errors="replace").splitlines()
                 if line.strip() and "RLIMIT_MEMLOCK" not in line]
        raise ToolFailed(f"{name} exit status {code}: {lines[0] if lines else 'no message'}")
    text = out.decode(errors="replace")
    if stopped_late and not text.strip():
        raise ToolFailed(f"{name} printed nothing in {timeout_s:g} s")
    return text


def tool_path(name: str) -> str:
    return os.path.join(TOOL_DIR, name)


# ---------------------------------------------------------------- parsers (pure)

_BANNERS = ("Tracing ",)


def _lines(text: str):
    """(line number, stripped line) for every line that is not blank or a tool banner."""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith(_BANNERS):
            yield number, line.rstrip()


_TIMESTAMP = re.compile(r"^\[\d\d:\d\d:\d\d\]$")
_SYSCALL_ROW = re.compile(r"^(\S+|\[unknown: \d+\])\s+(\d+)$")


def parse_syscount(text: str, source: str = "syscount") -> dict[str, int]:
    """`syscount -d N -T TOP [-p PID]` -> {syscall name: count}. Empty when nothing was traced.

    Unknown syscall numbers print as "[unknown: 436]" and are kept under that name.
    """
    counts: dict[str, int] = {}
    for number, line in _lines(text):
        stripped = line.strip()
        if _TIMESTAMP.match(stripped) or stripped.split() == ["SYSCALL", "COUNT"]:
            continue
        row = _SYSCALL_ROW.match(stripped)
        if not row:
            raise InputError(f"not a syscount row: {stripped[:60]!r}", source, number)
        counts[row.group(1)] = counts.get(row.group(1), 0) + int(row.group(2))
    return counts


_HIST_ROW = re.compile(r"^\s*(\d+)\s*->\s*(\d+)\s*:\s*(\d+)\s*\|[* ]*\|$")


def parse_log2_hist(text: str, source: str = "runqlat") -> tuple[str, list[tuple[int, int, int]]]:
    """A bcc log2 histogram -> (unit, [(low, high, count)]), as runqlat/cpudist print it."""
    unit, buckets = "", []
    for number, line in _lines(text):
        stripped = line.strip()
        if ":" in stripped and stripped.split(":")[0].strip() in ("usecs", "msecs", "nsecs"):
            unit = stripped.split(":")[0].strip()
            continue
        row = _HIST_ROW.match(line)
        if not row:
            raise InputError(f"not a histogram row: {stripped[:60]!r}", source, number)
        buckets.append((int(row.group(1)), int(row.group(2)), int(row.group(3))))
    if buckets and not unit:
        raise InputError("histogram rows without a unit header", source, None)
    return unit, buckets


def hist_percentile(buckets: list[tuple[int, int, int]], fraction: float) -> float | None:
    """Value below which `fraction` of the samples fall, interpolated linearly inside its bucket.

    A log2 histogram only knows the bucket, so the answer is good to within a factor of 2.
    """
    total = sum(count for _, _, count in buckets)
    if total == 0:
        return None
    wanted = fraction * total
    seen = 0
    for low, high, count in buckets:
        if count and seen + count >= wanted:
            inside = (wanted - seen) / count
            return round(low + inside * (high + 1 - low), 1)
        seen += count
    return float(buckets[-1][1])


def parse_bpftrace_softirqs(text: str, ncpu: int, source: str = "bpftrace") -> dict[str, list[int]]:
    """The `-f json` output of SOFTIRQ_PER_CPU_SCRIPT -> {vector: [usecs on cpu0, cpu1, ...]}."""
    per_cpu: dict[str, list[int]] = {}
    found = False
    for number, line in _lines(text):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"not bpftrace JSON: {line.strip()[:60]!r}", source, number) from None
        if record.get("type") != "map" or "@ns" not in record.get("data", {}):
            continue
        found = True
        for key, nsecs in record["data"]["@ns"].items():
            cpu_text, _, vec_text = key.partition(",")
            cpu, vec = int(cpu_text), int(vec_text)
            if not 0 <= vec < len(SOFTIRQ_NAMES) or not 0 <= cpu < ncpu:
                raise InputError(f"softirq key out of range: {key!r}", source, number)
            row = per_cpu.setdefault(SOFTIRQ_NAMES[vec], [0] * ncpu)
            row[cpu] += int(nsecs) // 1000
    if not found:
        raise InputError("no @ns map in the bpftrace output", source, None)
    return per_cpu


# ---------------------------------------------------------------- runners

def run_syscount(children: Children, seconds: int, pid: int | None = None) -> dict[str, int]:
    """Syscall counts by name, system-wide or for one process (all its threads)."""
    argv = [tool_path("syscount"), "-d", str(seconds), "-T", "1000"]
    if pid is not None:
        argv += ["-p", str(pid)]
    text = run_tool(children, argv, seconds + STARTUP_GRACE_S)
    return parse_syscount(text, " ".join(argv))


def run_runqlat(children: Children, seconds: int) -> dict:
    """System-wide run-queue latency: p50/p99 in microseconds from runqlat's log2 histogram."""
    argv = [tool_path("runqlat"), str(seconds), "1"]
    unit, buckets = parse_log2_hist(run_tool(children, argv, seconds + STARTUP_GRACE_S), " ".join(argv))
    if unit not in ("", "usecs"):
        raise ToolFailed(f"runqlat printed {unit}, expected usecs")
    samples = sum(count for _, _, count in buckets)
    return {"p50": hist_percentile(buckets, 0.50), "p99": hist_percentile(buckets, 0.99),
            "samples": samples, "source": "runqlat (system-wide, log2 buckets: within a factor of 2)"}


# Time in each softirq vector per CPU: softirqs(8) has no per-CPU split, and bpftrace needs only
# BTF and tracefs. Softirqs do not nest on a CPU, so one start time per CPU is enough.
SOFTIRQ_PER_CPU_SCRIPT = """
tracepoint:irq:softirq_entry { @start[cpu] = nsecs; }
tracepoint:irq:softirq_exit /@start[cpu]/ {
  @ns[cpu, args->vec] = sum(nsecs - @start[cpu]); delete(@start[cpu]);
}
interval:s:SECONDS { exit(); }
END { clear(@start); }
"""


def run_bpftrace_softirqs(children: Children, seconds: int, ncpu: int) -> dict[str, list[int]]:
    script = SOFTIRQ_PER_CPU_SCRIPT.replace("SECONDS", str(int(seconds)))
    argv = ["bpftrace", "-f", "json", "-e", script]
    return parse_bpftrace_softirqs(run_tool(children, argv, seconds + STARTUP_GRACE_S), ncpu)

