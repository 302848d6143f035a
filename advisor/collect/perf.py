"""Live perf sampling for one window: `perf record`, then `perf script` streamed into the parser.

perf runs in its own process group (so the terminal's Ctrl-C reaches only `advise`, which then
stops perf in order). It is always stopped the same way: SIGINT to the group, which makes perf
record finish writing a valid perf.data, then SIGKILL to the group if it is still there. The
recording ends by itself (`-- sleep N`), so the normal path needs no signal at all.

Only `cpu-clock` is sampled: hardware counters do not exist in most VMs (this one included), and a
software clock samples the same way everywhere.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import BinaryIO, Callable

from ..errors import EnvironmentProblem
from ..model import StackTable
from ..parse import perf_data, perf_script
from ..parse.perf_spawn import find_perf
from ..proc import alive as process_alive
from ..proc import exit_text, stop_group

EVENT = "cpu-clock"
#: Sampling frequency per CPU. bench/bench_overhead.py (nginx + wrk, 2 vCPUs, 8 ABBA pairs of 3 s)
#: cannot resolve 49-199 Hz on this shared machine (median B/A 1.14, 0.96, 0.99, pairs spread
#: 0.60-1.56), but the cost is linear in the frequency: 999 Hz cost 4.9 % (0.95; 0.90-1.25) and
#: 4999 Hz 25.6 % (0.74; 0.66-1.08), i.e. about 0.5 % per 100 Hz: 99 Hz ~0.5 %, 199 Hz ~1 %.
DEFAULT_FREQUENCY = 99
STOP_GRACE_S = 5.0  # perf record needs a moment after SIGINT to write its file
START_TIMEOUT_S = 30.0  # past duration + this, perf record is stopped (it should end by itself)
MAX_RESTARTS = 3  # perf started again when a process of -p ended before it attached (see wait)
ATTACH_S = 5.0  # a failure this soon after the start is perf failing to attach

CAP_SYS_ADMIN = 21
CAP_PERFMON = 38


def perf_binary() -> str:
    """The perf executable on PATH, or EnvironmentProblem (exit 3) saying how to install it."""
    path = find_perf()
    if path is None:
        raise EnvironmentProblem("perf is not installed (or not on PATH): advise run samples with "
                                 "`perf record`; install linux-perf (Debian) or linux-tools (Ubuntu)")
    return path


def effective_capabilities(status_path: str = "/proc/self/status") -> int | None:
    """CapEff of this process as a bit mask; None when it cannot be read."""
    try:
        with open(status_path, encoding="ascii") as handle:
            for line in handle:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return None


def read_paranoid(path: str = "/proc/sys/kernel/perf_event_paranoid") -> int | None:
    try:
        with open(path, encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def permission_problem(euid: int, capabilities: int | None, paranoid: int | None) -> str | None:
    """Why this process cannot sample every CPU with kernel stacks and load BPF; None when it can.

    Root is needed anyway (BPF counters, /proc of other users' processes). Root without
    CAP_PERFMON/CAP_SYS_ADMIN (a container) is held to perf_event_paranoid like any user:
    system-wide sampling needs it at 0 or below.
    """
    if paranoid is None:
        return ("/proc/sys/kernel/perf_event_paranoid is missing: this kernel has no perf events "
                "(CONFIG_PERF_EVENTS)")
    if euid != 0:
        return "advise run must run as root: system-wide perf sampling and BPF counters need it (try sudo)"
    privileged = capabilities is None or bool(capabilities & (1 << CAP_SYS_ADMIN | 1 << CAP_PERFMON))
    if not privileged and paranoid > 0:
        return (f"kernel.perf_event_paranoid is {paranoid} and this root has neither CAP_PERFMON nor "
                "CAP_SYS_ADMIN: system-wide sampling needs `sysctl kernel.perf_event_paranoid=-1` "
                "(or run with CAP_PERFMON)")
    return None


def check_environment() -> str:
    """perf's path if this process may record; EnvironmentProblem (exit 3, one line) otherwise."""
    why = permission_problem(os.geteuid(), effective_capabilities(), read_paranoid())
    if why:
        raise EnvironmentProblem(why)
    return perf_binary()


def perf_version(perf: str) -> str:
    """'6.1.187' from `perf version 6.1.187`; '' when perf does not say."""
    try:
        done = subprocess.run([perf, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip().removeprefix("perf version ").strip()


def record_argv(perf: str, output: str, duration_s: float, frequency: int,
                scope: list[str] | None = None) -> list[str]:
    """perf record for `duration_s` with call stacks, on `scope` (targets.Target.perf_scope():
    every CPU `-a` by default, a process tree `-p A,B`, a cgroup `-a -G NAME`)."""
    # --no-bpf-event: perf 6.1 cannot read back the KSYMBOL/BPF_EVENT records (types 17, 18) that
    # newer kernels write while BPF programs load ("failed to process type: 17"); the price is that
    # BPF program frames stay unnamed. The scope follows -e: perf wants -G after the event.
    return [perf, "record", "-e", EVENT, "-F", str(frequency), "-g", "--no-bpf-event", *(scope or ["-a"]),
            "-o", output, "--", "sleep", f"{duration_s:g}"]


class PerfRecord:
    """One `perf record` child: start it, watch it, stop it cleanly whatever happens.

    Use as a context manager: leaving the block (normally, on an exception or on Ctrl-C) stops
    perf if it still runs, so no perf process outlives the block.
    """

    def __init__(self, argv: list[str], stderr_path: str, target_pid: int | None = None,
                 rescope: Callable[[], list[str] | None] | None = None):
        """`rescope`, for `-p A,B,...`: the argv with the processes as they are now (None: give
        up), for when one of them ended before perf could attach to it."""
        self.argv = argv
        self.stderr_path = stderr_path
        self.target_pid = target_pid
        self.rescope = rescope
        self.restarts = 0
        self.target_exited_at: float | None = None  # seconds into the window, when -p PID exited
        self.proc: subprocess.Popen | None = None
        self.started = self.ended = 0.0
        self.stopped_by_us = False

    def __enter__(self) -> "PerfRecord":
        self._start()
        return self

    def _start(self) -> None:
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err, start_new_session=True,
                                         env={**os.environ, "LC_ALL": "C"})
        self.started = time.monotonic()
        self.ended = 0.0

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout_s: float, tick: Callable[[float], None] | None = None,
             interval_s: float = 0.1) -> None:
        """Wait until perf ends by itself; stop it at `timeout_s`. `tick(elapsed)` is called meanwhile.

        A process of `-p` that ends between the listing and perf attaching to it makes perf fail
        at once ("No such process"): a forking server does that. perf is then started again on
        the processes as they are (`rescope`), up to MAX_RESTARTS times.
        """
        self._wait(timeout_s, tick, interval_s)
        while self._lost_a_process() and self.restarts < MAX_RESTARTS:
            argv = self.rescope()
            if argv is None:
                return
            self.argv = argv
            self.restarts += 1
            self._start()
            self._wait(timeout_s, tick, interval_s)

    def _lost_a_process(self) -> bool:
        code = self.proc.returncode if self.proc else None
        return (self.rescope is not None and code not in (0, None) and not self.stopped_by_us
                and time.monotonic() - self.started < ATTACH_S and "No such process" in self.message())

    def _wait(self, timeout_s: float, tick: Callable[[float], None] | None, interval_s: float) -> None:
        deadline = self.started + timeout_s
        while self.running():
            now = time.monotonic()
            if self.target_pid is not None and self.target_exited_at is None \
                    and not process_alive(self.target_pid):
                self.target_exited_at = now - self.started
            if now >= deadline:
                self.stop()
                break
            if tick:
                tick(now - self.started)
            time.sleep(min(interval_s, max(0.0, deadline - now)))
        self.ended = self.ended or time.monotonic()

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGINT the group (perf writes a valid file), then SIGKILL the group; reap perf."""
        proc = self.proc
        if proc is None:
            return
        if stop_group(proc, signal.SIGINT, grace_s):  # SIGKILL also reaches perf's `sleep`
            self.stopped_by_us = True
        self.ended = self.ended or time.monotonic()

    @property
    def elapsed_s(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def check(self) -> None:
        """EnvironmentProblem with perf's own message when it failed (not when we stopped it)."""
        code = self.proc.returncode if self.proc else None
        if code in (0, None) or (self.stopped_by_us and code in (-signal.SIGINT, 130)):
            return
        if self.target_pid is not None and not process_alive(self.target_pid) \
                and code in (-signal.SIGTERM, 143):
            # perf ends its workload with SIGTERM when the -p target exits, then reports that
            # signal as its own: the recording up to the exit is valid (a partial window).
            if self.target_exited_at is None:
                self.target_exited_at = self.elapsed_s
            return
        raise EnvironmentProblem(f"perf record failed ({_exit_text(code)}): {self.message() or 'no message'}")

    def message(self) -> str:
        """perf's first meaningful stderr line (not its '[ perf record: ... ]' progress lines)."""
        try:
            with open(self.stderr_path, "rb") as handle:
                text = handle.read(65536).decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [line.strip() for line in text.splitlines()]
        lines = [line for line in lines
                 if line and not line.startswith(("[ perf record:", "Warning:")) and set(line) != {"#"}]
        if lines and lines[0].rstrip(":") == "Error" and len(lines) > 1:
            return lines[1]  # perf prints 'Error:' alone, then the reason
        return lines[0] if lines else ""


def _exit_text(code: int) -> str:
    if code == -signal.SIGXFSZ:
        return "killed by SIGXFSZ: perf.data outgrew the file size limit, `ulimit -f`"
    return exit_text(code)


class _Tee:
    """A read-only stream that copies every chunk it hands out to `copy` (the bundle's gzip file)."""

    def __init__(self, stream: BinaryIO, copy: BinaryIO):
        self.stream, self.copy = stream, copy

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        if data:
            self.copy.write(data)
        return data


def symbolise(perf_data_path: str, source: str, copy_to: BinaryIO | None = None,
              timeout_s: float = perf_data.DEFAULT_TIMEOUT_S) -> StackTable:
    """`perf script` on the recording, parsed as it streams (and copied to `copy_to` when given).

    perf script is killed if parsing fails, times out or is interrupted (parse.perf_data). A
    large recording is read in time slices, side by side (parse.perf_data.read), unless its text
    is copied: the copy is one perf's output, in one stream.
    """
    table = StackTable(source)
    if copy_to is None:
        return perf_data.read(perf_data_path, table, timeout=timeout_s)
    with perf_data.perf_script_output(perf_data_path, timeout=timeout_s) as stdout:
        perf_script.read(_Tee(stdout, copy_to), source, table)
    return table
