"""A `perf.data` file: run `perf script` on it and parse its output as it streams.

perf is started by advisor.parse.perf_spawn (which also says which fields are asked for, and
why). No temporary file holds the text: stdout is parsed as it comes, and perf is killed if
parsing fails, is interrupted, or exceeds the timeout. Inline frames are kept unless
`inline=False`. A large recording is read in time slices, one perf and one parser each, added
up in time order (read()).
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from ..errors import EnvironmentProblem, InputError, unreadable
from ..model import StackTable
from ..proc import exit_text, kill_group
from . import perf_script, perf_spawn

DEFAULT_TIMEOUT_S = 900.0


class PerfFailed(InputError):
    """perf script itself failed (its exit status, its complaint), not the parse of its output."""


class _SliceWarned(Exception):
    """A time slice's parse warned. A warning names a line of perf's output and counts over all
    of it (samples without frames); a slice knows neither, its lines numbered from its own start
    and its counts its own. perf's own output seldom warns: the file is then read again by one
    perf, for the warning that reading gives."""


def read(path: str | os.PathLike, table: StackTable | None = None, *, keep_addrs: bool = False,
         inline: bool = True, timeout: float = DEFAULT_TIMEOUT_S) -> StackTable:
    """Samples of a perf.data file, aggregated into `table` (a new one named after the file if
    None: warnings name the table's source). A large recording is read by several perf
    processes side by side, one per time slice (see perf_spawn.time_slices), with the same result."""
    path = Path(path)
    table = table if table is not None else StackTable(str(path))
    procs: list[perf_spawn.Spawned] = []  # filled as each perf starts: an interrupt finds them here
    try:
        if not perf_spawn.take_early(path, inline, procs):
            _start(path, inline, procs)
        if len(procs) > 1:
            try:
                return _read_slices(path, procs, table, keep_addrs, timeout)
            except (PerfFailed, _SliceWarned):
                # perf refused its slice (`--time` percentages: perf 4.17 and later), or the file:
                # once more with one perf, whose complaint, if it has one, is then the error; or
                # a slice warned: one perf gives the warning as a reading of the whole file does
                perf_spawn.discard_processes(procs)
                procs.clear()
                _start(path, inline, procs, whole=True)
        with perf_script_output(path, inline=inline, timeout=timeout, proc=procs[0]) as stdout:
            perf_script.read(stdout, table.source, table, keep_addrs=keep_addrs)
        return table
    except BaseException:
        perf_spawn.discard_processes(procs)  # whatever an error or Ctrl-C left running or open
        raise


def _read_slices(path: Path, procs: list[perf_spawn.Spawned], table: StackTable,
                 keep_addrs: bool, timeout: float) -> StackTable:
    """Parse each time slice's output in a thread of its own into a table of its own, then add
    them up in time order: rows then come in the order one perf's output gives them.

    The first slice to fail stops every perf, and its error is the one raised (the others'
    are its consequence); Ctrl-C stops them all too. The parse itself runs one slice at a time
    (Python's lock), which is enough: it keeps up with perf, and each perf has a CPU."""
    stopping = threading.Event()
    first_error: list[BaseException] = []

    def stop_all() -> None:
        stopping.set()
        for proc in procs:
            if proc.poll() is None:
                kill_group(proc)

    def read_slice(proc: perf_spawn.Spawned, part: StackTable) -> None:
        if stopping.is_set():  # a Ctrl-C came while this thread started: the caller stops perf
            return
        try:
            with perf_script_output(path, timeout=timeout, proc=proc) as stdout:
                perf_script.read(stdout, part.source, part, keep_addrs=keep_addrs)
        except BaseException as exc:  # an error after `stopping` is that stop's consequence
            if not stopping.is_set():
                first_error.append(exc)
                stop_all()

    parts = [StackTable(f"{path} (perf script --time {_time_range(proc)})") for proc in procs]
    readers = [threading.Thread(target=read_slice, args=(proc, part), name="advisor-perf-slice", daemon=True)
               for proc, part in zip(procs, parts)]
    try:
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
    except BaseException:  # Ctrl-C (or SIGTERM, raised as one) while the slices are read
        stop_all()
        for reader in readers:
            if reader.ident is not None:  # running (one not yet running sees `stopping` and returns)
                reader.join()
        raise
    if first_error:
        raise first_error[0]
    if any(part.warnings for part in parts):
        raise _SliceWarned()
    for part in parts:
        table.absorb(part)
    return table


def _time_range(proc: perf_spawn.Spawned) -> str:
    return proc.args[proc.args.index("--time") + 1]


def perf_command(path: Path, inline: bool = True) -> list[str]:
    """The `perf script` command advisor runs on `path`."""
    return perf_spawn.perf_command(_perf(path), path, inline)


def _perf(path: Path) -> str:
    perf = perf_spawn.find_perf()
    if perf is None:
        raise EnvironmentProblem("perf is not installed (or not on PATH): it is needed to read "
                                 f"{path}; install linux-perf, or give `perf script` output")
    return perf


def _start(path: Path, inline: bool, into: list, whole: bool = False) -> None:
    """perf script on `path` into `into`: one process per time slice, or one for the `whole` file."""
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise unreadable(exc, str(path), "cannot read perf.data") from None
    if whole:
        perf_spawn.perf_script(_perf(path), path, inline, into=into)
    else:
        perf_spawn.perf_scripts(_perf(path), path, inline, into)


@contextmanager
def started_early(path: str | os.PathLike, inline: bool = True) -> Iterator[None]:
    """Start `perf script` on `path` now, when it is a perf.data file, for a read() of the same
    file inside the block to take over; a process no read() took is killed when the block
    ends, also on an error or Ctrl-C. (The `advise` program does this before its imports: see
    advisor.program; this is for callers of advisor.cli.main.)"""
    key = perf_spawn.start_early(path, inline)
    try:
        yield
    finally:
        if key is not None:
            perf_spawn.discard_early(key)


@contextmanager
def perf_script_output(path: Path, *, inline: bool = True, timeout: float = DEFAULT_TIMEOUT_S,
                       proc: perf_spawn.Spawned | None = None) -> Iterator[BinaryIO]:
    """Yield the stdout of `perf script` on the whole of `path` (or of `proc`, already started on
    it); check perf's exit when the block ends."""
    owned: list[perf_spawn.Spawned] = []  # a perf this block starts or takes over
    try:
        if proc is None:
            if perf_spawn.take_early(path, inline, owned) and len(owned) > 1:
                perf_spawn.discard_processes(owned)  # started in time slices: this wants one stream
                owned.clear()
            if not owned:
                _start(path, inline, owned, whole=True)
            proc = owned[0]
        with _checked(proc, path, timeout) as stdout:
            yield stdout
    except BaseException:
        perf_spawn.discard_processes(owned)  # what an error or Ctrl-C left running or open
        raise


@contextmanager
def _checked(proc: perf_spawn.Spawned, path: Path, timeout: float) -> Iterator[BinaryIO]:
    """proc's stdout; perf killed on an error or past `timeout`, and its exit checked at the end."""
    with proc.stderr as stderr:
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            kill_group(proc)

        timer = threading.Timer(timeout, on_timeout)
        timer.daemon = True
        try:
            timer.start()
            try:
                yield proc.stdout
            except InputError as exc:
                # Parsing failed: a timeout or perf's own complaint, if any, says more.
                kill_group(proc)
                if timed_out.is_set():
                    raise InputError(f"perf script did not finish within {timeout:.0f} s",
                                     str(path)) from exc
                message = _first_line(stderr)
                if message:
                    raise PerfFailed(f"perf script: {message}", str(path)) from exc
                raise
            proc.stdout.read()  # drain whatever the parser left, so perf can exit
            proc.wait(timeout=60)
        finally:
            timer.cancel()
            if proc.poll() is None:
                kill_group(proc)
            proc.stdout.close()
        if timed_out.is_set():
            raise InputError(f"perf script did not finish within {timeout:.0f} s", str(path))
        if proc.returncode != 0:
            message = _first_line(stderr) or exit_text(proc.returncode)
            raise PerfFailed(f"perf script failed: {message}", str(path))


def _first_line(stderr: BinaryIO) -> str:
    """The first meaningful line perf wrote to stderr."""
    stderr.seek(0)
    for raw in stderr.read(65536).splitlines():
        line = raw.decode("utf-8", "replace").strip()
        if line and not line.startswith("Warning:") and set(line) != {"#"}:
            return line
    return ""
