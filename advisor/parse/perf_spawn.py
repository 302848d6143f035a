"""Start `perf script` on a perf.data file with nothing but what Python has loaded at start-up.

perf loads symbols for ~0.15 s before it writes a byte. `advise analyze perf.data` starts it as
the very first thing (advisor.program), so that this overlaps the interpreter's imports: with
os.posix_spawn that is ~1 ms after `main()`, against ~18 ms to import subprocess and ~40 ms to
reach it through the command line's own imports (measured here). Every `perf script` advisor
runs is started this way, so there is one way to start it.

`perf script -F +pid,-symoff` keeps perf's default fields (which adapt to what was recorded: a
per-process recording has no CPU field, a tracepoint has its payload, and asking for a field
the file lacks is an error), adds the PID, so stacks carry PID/TID, and drops the `+0xOFF`
symbol offsets, which the parser strips anyway: perf writes 6% less text and runs ~15%
faster (measured on a 20 s system-wide recording), with the same StackTable.
"""

from __future__ import annotations

import _signal  # the C part of `signal`: `signal` imports enum (~6 ms), and this runs first
import _thread
import fcntl
import os
import stat
import time  # built into the interpreter: nothing to load

MAGIC = b"PERFILE2"
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


def perf_command(perf: str, path: str | os.PathLike, inline: bool = True) -> list[str]:
    cmd = [perf, "script", "-i", perf_input(path), "-F", "+pid,-symoff"]
    if not inline:
        cmd.append("--no-inline")  # halves perf's time on a DWARF recording, drops (inlined) frames
    return cmd


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


def is_perf_data(path: str | os.PathLike) -> bool:
    """Whether `path` is a perf.data file (a regular one: the first bytes read from a pipe would
    be lost to the reader that follows)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as handle:
            return handle.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def perf_script(perf: str, path: str | os.PathLike, inline: bool = True) -> "Spawned":
    return Spawned(perf_command(perf, path, inline), {**os.environ, "LC_ALL": "C", "PAGER": "cat"})


class Spawned:
    """A program started with os.posix_spawn in its own session, stdin /dev/null, stdout a wide
    pipe read by a `PolledPipe`, stderr a temporary file: the part of subprocess.Popen the
    readers use (pid, stdout, stderr, poll, wait, returncode), so that advisor.proc stops it like
    any other child. Raises OSError if it cannot start."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None):
        self.args = args
        self.returncode: int | None = None
        self._waitpid_lock = _thread.allocate_lock()  # _thread: threading is not imported yet here
        self.stderr = _temporary_file()
        read_end, write_end = os.pipe()
        try:
            self.pid = os.posix_spawn(
                args[0], args, os.environ if env is None else env,
                file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                              (os.POSIX_SPAWN_DUP2, write_end, 1),
                              (os.POSIX_SPAWN_DUP2, self.stderr.fileno(), 2)],
                setsid=True,  # its own process group: advisor.proc kills it with whatever it started
                setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ))  # as Popen's restore_signals
        except BaseException:
            os.close(read_end)
            self.stderr.close()
            raise
        finally:
            os.close(write_end)
        _widen_pipe(read_end)
        self.stdout = PolledPipe(read_end)

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
        import subprocess

        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.0005  # perf usually exits right after its last line: look again soon, then less often
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(pause)
            pause = min(pause * 2, 0.02)
        return self.returncode


class PolledPipe:
    """The read end of a pipe, read without blocking: when it is empty the reader sleeps
    POLL_SECONDS and looks again, instead of waiting in read().

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


#: perf script processes started ahead of their reader, by (real path, inline).
_EARLY: dict[tuple[str, bool], Spawned] = {}


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
        _EARLY[key] = perf_script(perf, path, inline)
        return key
    except OSError:
        return None


def take_early(path: str | os.PathLike, inline: bool) -> Spawned | None:
    return _EARLY.pop(early_key(path, inline), None)


def discard_early(key: tuple[str, bool] | None = None) -> None:
    """Kill the early perf processes nobody took (all of them, or the one of `key`)."""
    keys = list(_EARLY) if key is None else [key]
    for k in keys:
        proc = _EARLY.pop(k, None)
        if proc is not None:
            from ..proc import kill_group  # at the end: importing it (subprocess) costs ~18 ms

            kill_group(proc)
            proc.stdout.close()
            proc.stderr.close()
