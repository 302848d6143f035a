"""A `perf.data` file: run `perf script` on it and parse its output as it streams.

perf is started by advisor.parse.perf_spawn (which also says which fields are asked for, and
why). No temporary file holds the text: stdout is parsed as it comes, and perf is killed if
parsing fails, is interrupted, or exceeds the timeout. Inline frames are kept unless
`inline=False`.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from ..errors import EnvironmentProblem, InputError
from ..model import StackTable
from ..proc import kill_group
from . import perf_script, perf_spawn

DEFAULT_TIMEOUT_S = 900.0


def read(path: str | os.PathLike, table: StackTable | None = None, *, keep_addrs: bool = False,
         inline: bool = True, timeout: float = DEFAULT_TIMEOUT_S) -> StackTable:
    """Samples of a perf.data file, aggregated into `table` (a new one if None)."""
    path = Path(path)
    table = table if table is not None else StackTable(str(path))
    with perf_script_output(path, inline=inline, timeout=timeout) as stdout:
        perf_script.read(stdout, str(path), table, keep_addrs=keep_addrs)
    return table


def perf_command(path: Path, inline: bool = True) -> list[str]:
    """The `perf script` command advisor runs on `path`."""
    return perf_spawn.perf_command(_perf(path), path, inline)


def _perf(path: Path) -> str:
    perf = perf_spawn.find_perf()
    if perf is None:
        raise EnvironmentProblem("perf is not installed (or not on PATH): it is needed to read "
                                 f"{path}; install linux-perf, or give `perf script` output")
    return perf


def _start(path: Path, inline: bool) -> perf_spawn.Spawned:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise InputError(f"cannot read perf.data: {exc.strerror or exc}", str(path)) from None
    return perf_spawn.perf_script(_perf(path), path, inline)


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
def perf_script_output(path: Path, *, inline: bool = True,
                       timeout: float = DEFAULT_TIMEOUT_S) -> Iterator[BinaryIO]:
    """Yield the stdout of `perf script` on `path`; check perf's exit when the block ends."""
    proc = perf_spawn.take_early(path, inline) or _start(path, inline)
    with proc.stderr as stderr:
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            kill_group(proc)

        timer = threading.Timer(timeout, on_timeout)
        timer.daemon = True
        timer.start()
        try:
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
                    raise InputError(f"perf script: {message}", str(path)) from exc
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
            message = _first_line(stderr) or f"exit status {proc.returncode}"
            raise InputError(f"perf script failed: {message}", str(path))


def _first_line(stderr: BinaryIO) -> str:
    """The first meaningful line perf wrote to stderr."""
    stderr.seek(0)
    for raw in stderr.read(65536).splitlines():
        line = raw.decode("utf-8", "replace").strip()
        if line and not line.startswith("Warning:") and set(line) != {"#"}:
            return line
    return ""
