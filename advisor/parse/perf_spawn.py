"""Start `perf script` on a perf.data file with nothing but what Python has loaded at start-up.

perf loads symbols for ~0.15 s before it writes a byte. `advise analyze perf.data` starts it as
the very first thing (advisor.program), so that this overlaps the interpreter's imports: with
os.posix_spawn that is ~1 ms after `main()`, against ~18 ms to import subprocess and ~40 ms to
reach it through the command line's own imports (measured here). Every `perf script` advisor
runs is started this way, so there is one way to start it.

A large recording is read by several perf processes side by side, one per time slice
(time_slices): perf symbolises on one CPU, and on a 28 MB recording two halves took 0.71 s
where the whole took 1.24 s here.

`perf script -F +pid,-symoff` keeps perf's default fields (which adapt to what was recorded: a
per-process recording has no CPU field, a tracepoint has its payload, and asking for a field
the file lacks is an error), adds the PID, so stacks carry PID/TID, and drops the `+0xOFF`
symbol offsets, which the parser strips anyway: perf writes 6% less text and runs ~15%
faster (measured on a 20 s system-wide recording), with the same StackTable. And where it says
the same as /proc/kallsyms, perf reads its own copy of the kernel's symbols (`--kallsyms`, see
kernel_symbols): the kernel writes /proc/kallsyms afresh on each of perf's three reads.
"""

from __future__ import annotations

import _signal  # the C part of `signal`: `signal` imports enum (~6 ms), and this runs first
import _thread
import fcntl
import os
import time  # built into the interpreter: nothing to load

from .. import idle  # nothing to load
from ..stop_signals import StopSignalsHeld  # _signal only: nothing to load
from .kernel_symbols import kallsyms_file  # os only
from .perf_header import is_perf_data, sample_facts  # os only

SLICE_BYTES = 12 << 20  # of sample data per `perf script` run side by side (see time_slices)
MAX_SLICES = 8
STATUS_LOST = -255  # the process was reaped by someone else: its exit status is unknown
PIPE_BYTES = 1 << 20
POLL_SECONDS = 0.001  # how long the reader sleeps when the pipe is empty (see PolledPipe)


def find_perf() -> str | None:
    """perf on PATH (shutil.which, without importing shutil)."""
    for directory in os.get_exec_path():
        candidate = os.path.join(directory, "perf")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def perf_command(perf: str, path: str | os.PathLike, inline: bool = True,
                 time_range: str | None = None) -> list[str]:
    cmd = [perf, "script", "-i", perf_input(path), "-F", "+pid,-symoff"]
    if not inline:
        cmd.append("--no-inline")  # halves perf's time on a DWARF recording, drops (inlined) frames
    if time_range is not None:
        cmd += ["--time", time_range]
    kallsyms = kallsyms_file(path)
    if kallsyms is not None:  # perf's own copy of /proc/kallsyms, where it says the same
        cmd += ["--kallsyms", kallsyms]
    return cmd


def time_slices(path: str | os.PathLike) -> list[str | None]:
    """The `--time` ranges to read `path` in, one `perf script` each, side by side; [None] for
    one perf over the whole file.

    perf symbolises one sample after another on one CPU: on a large recording that, not the
    parse, is what `advise analyze` waits for. perf drops a sample outside its --time range
    before symbolising it, and percentages split a recording exactly: perf ends every range
    but the last one nanosecond before the next one starts (set_percent_time in perf's
    util/time-utils.c), when the range is wider than that. Every perf loads the symbols again
    (~0.1 s of CPU here), so there is one slice per SLICE_BYTES of sample data, at most one per
    CPU this process may use and MAX_SLICES. `ADVISOR_PERF_SLICES=N` asks for N (1: one perf).

    Only where perf can honour percentages exactly: a perf.data file whose header has the first
    and last sample times (perf refuses percentages without), at least a microsecond per slice
    apart, and a time in every event's samples (perf puts a sample without one in every slice).
    """
    facts = sample_facts(path)
    if facts is None:
        return [None]
    data_bytes, span_ns = facts
    wanted = os.environ.get("ADVISOR_PERF_SLICES", "")
    if wanted.isdecimal() and int(wanted) > 0:
        slices = min(int(wanted), MAX_SLICES)
    else:
        slices = min(data_bytes // SLICE_BYTES, len(os.sched_getaffinity(0)), MAX_SLICES)
    slices = min(slices, span_ns // 1000)
    if slices < 2:
        return [None]
    edges = [f"{100 * i / slices:.10g}%" for i in range(slices + 1)]  # "0%" ... "100%" exactly
    return [f"{start}-{end}" for start, end in zip(edges, edges[1:])]


def perf_input(path: str | os.PathLike) -> str:
    """The path to give perf for `path`. perf runs with /dev/null as its stdin, so `/dev/stdin`
    (`advise analyze /dev/stdin < perf.data`) or another of our descriptors must be named
    through this process."""
    text = os.fspath(path)
    if text == "/dev/stdin":
        return f"/proc/{os.getpid()}/fd/0"
    for own in ("/dev/fd/", "/proc/self/fd/"):
        if text.startswith(own) and text[len(own):].isdigit():
            return f"/proc/{os.getpid()}/fd/{text[len(own):]}"
    return text


def perf_script(perf: str, path: str | os.PathLike, inline: bool = True,
                time_range: str | None = None, into: list | None = None) -> "Spawned":
    return Spawned(perf_command(perf, path, inline, time_range),
                   {**os.environ, "LC_ALL": "C", "PAGER": "cat"}, into)


def perf_scripts(perf: str, path: str | os.PathLike, inline: bool, into: list) -> None:
    """`perf script` on `path`, one process per time slice (time_slices), in time order, each
    put into `into` as it starts: on an error or Ctrl-C, the caller stops what is there."""
    for time_range in time_slices(path):
        perf_script(perf, path, inline, time_range, into)


class Spawned:
    """A program started with os.posix_spawn in its own session, stdin /dev/null, stdout a wide
    pipe read by a `PolledPipe`, stderr a temporary file: the part of subprocess.Popen the
    readers use (pid, stdout, stderr, poll, wait, returncode), so that advisor.proc stops it like
    any other child. Raises OSError if it cannot start."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, into: list | None = None):
        """`into`: a list this process is appended to the moment it runs, before Ctrl-C can
        interrupt anything: whoever holds the list can stop it, whenever Ctrl-C comes."""
        self.args = args
        self.returncode: int | None = None
        self.pid = 0
        self._waitpid_lock = _thread.allocate_lock()  # _thread: threading is not imported yet here
        self.stderr = _temporary_file()
        read_end, write_end = os.pipe()
        self.stdout = PolledPipe(read_end)
        try:
            with StopSignalsHeld():
                self.pid = os.posix_spawn(
                    args[0], args, os.environ if env is None else env,
                    file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                                  (os.POSIX_SPAWN_DUP2, write_end, 1),
                                  (os.POSIX_SPAWN_DUP2, self.stderr.fileno(), 2)],
                    setsid=True,  # its own process group: advisor.proc kills it with whatever it started
                    setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ))  # as Popen's restore_signals
                if into is not None:
                    into.append(self)
        except BaseException:
            if not self.pid:  # nothing started: nothing of it stays open
                self.stdout.close()
                self.stderr.close()
            raise
        finally:
            os.close(write_end)
        _widen_pipe(read_end)

    def poll(self) -> int | None:
        with self._waitpid_lock:  # a timeout's kill and the reader may both wait: one at a time
            if self.returncode is None:
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:  # not our child any more: nothing to tell
                    self.returncode = STATUS_LOST
                else:
                    if pid:
                        self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.0005  # perf usually exits right after its last line: look again soon, then less often
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                import subprocess  # for its error only: importing it costs ~2.5 ms of every analysis

                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(pause)
            pause = min(pause * 2, 0.02)
        return self.returncode


class PolledPipe:
    """The read end of a pipe, read without blocking: when it is empty the reader takes a step of
    pending work (advisor.idle), or else sleeps POLL_SECONDS, and looks again, instead of
    waiting in read().

    Why: a reader waiting in read() is woken by each of the writer's writes (perf writes 4 KiB at
    a time, ~5000 writes for a 20 MB output), a wake-up across CPUs each time, which a VM pays
    dearly: perf piped into `cat` took 1.19x as long as perf into /dev/null here (12 ABBA rounds).
    A reader that looks every millisecond is never waited for; perf's writes then cost a copy into
    the 1 MiB pipe: 1.04x (1 ms), 1.05x (3 ms), 1.14x (8 ms: perf fills the pipe and waits).
    read() with a size returns what is there (at least a byte; b"" at end of file), as read1()."""

    def __init__(self, fd: int):
        os.set_blocking(fd, False)  # this end only: perf's write end is another open file
        self._fd = fd
        self.closed = False

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        self._check_open()
        return self._fd

    def read1(self, size: int | None = 1 << 16) -> bytes:
        self._check_open()
        if size is None or size < 0:
            size = PIPE_BYTES
        while True:
            try:
                return os.read(self._fd, size)
            except BlockingIOError:
                if not idle.step():  # nothing else to do meanwhile (see advisor.idle)
                    time.sleep(POLL_SECONDS)

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes, what is there (as read1); all of it to end of file when `size` is
        None or negative."""
        if size is not None and size >= 0:
            return self.read1(size)
        chunks = []
        while chunk := self.read1(PIPE_BYTES):
            chunks.append(chunk)
        return b"".join(chunks)

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("read of a closed pipe")  # as a file object says: never a reused fd

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._fd)

    def __enter__(self) -> "PolledPipe":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _temporary_file():
    """An unnamed file for perf's stderr (O_TMPFILE; tempfile where the file system lacks it)."""
    directory = os.environ.get("TMPDIR") or "/tmp"
    try:
        return open(os.open(directory, os.O_TMPFILE | os.O_RDWR, 0o600), "w+b")
    except (OSError, AttributeError):
        import tempfile

        return tempfile.TemporaryFile()


def _widen_pipe(fd: int) -> None:
    """Let perf write up to 1 MiB ahead of the parser (64 KiB by default), so that both run
    at once instead of in turns. Best effort: the size is capped by fs.pipe-max-size."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (AttributeError, OSError):
        pass


#: perf script processes started ahead of their reader (one per time slice), by (real path, inline).
_EARLY: dict[tuple[str, bool], list[Spawned]] = {}


def early_key(path: str | os.PathLike, inline: bool) -> tuple[str, bool]:
    return os.path.realpath(path), inline


def start_early(path: str | os.PathLike, inline: bool = True) -> tuple[str, bool] | None:
    """Start perf on `path` now for a later read of the same file to take over (take_early).
    Best effort: anything unusual (not a perf.data file, no perf, cannot start) returns None, and
    the read starts perf itself and reports the problem. Returns the key it started."""
    try:
        key = early_key(path, inline)
        if key in _EARLY or not is_perf_data(path):
            return None
        perf = find_perf()
        if perf is None:
            return None
        perf_scripts(perf, path, inline, _EARLY.setdefault(key, []))
        return key
    except OSError:
        discard_early(early_key(path, inline))
        return None


def take_early(path: str | os.PathLike, inline: bool, into: list) -> bool:
    """Move the processes started early on `path` into `into` (whose holder then stops them on
    an error or Ctrl-C); whether there were any."""
    with StopSignalsHeld():
        into.extend(_EARLY.pop(early_key(path, inline), ()))
    return bool(into)


def discard_early(key: tuple[str, bool] | None = None) -> None:
    """Kill the early perf processes nobody took (all of them, or the one of `key`)."""
    keys = list(_EARLY) if key is None else [key]
    for k in keys:
        discard_processes(_EARLY.pop(k, ()))


def discard_processes(procs: list[Spawned]) -> None:
    """Kill perf processes whose output nobody will read (those still running: a process already
    reaped has given its ID back), and close their pipes and files. Harmless twice."""
    if procs:
        from ..proc import kill_group  # at the end: importing it (subprocess) costs ~18 ms

        for proc in procs:
            if proc.poll() is None:
                kill_group(proc)
            proc.stdout.close()
            proc.stderr.close()
