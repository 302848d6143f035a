"""Helpers shared by the benchmarks: inputs, a real recording under load, timed child processes.

Every measurement runs in a child process so that its time and peak RSS are its own
(`os.wait4` returns the child's rusage). The machine is shared and noisy: benchmarks repeat
each measurement and print min / median / max; ratios are taken between measurements made in
the same run, interleaved, so that both sides see the same load.
"""

from __future__ import annotations

import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from advisor.proc import kill_group  # noqa: E402  (one way to stop a child's process group)
CORPUS = REPO / "tests" / "corpus"
EXAMPLE = CORPUS / "flamegraph" / "inputs" / "example-perf-stacks.txt.gz"
PYTHON = sys.executable
ADVISE = [PYTHON, "-m", "advisor.cli"]
MB = 1e6


# ---------------------------------------------------------------------------------- children
@dataclass
class Run:
    seconds: float  # wall clock
    rss_mib: float  # peak resident set of the child (ru_maxrss)
    stdout: bytes = b""
    cpu_seconds: float = 0.0  # user + system time of the child and the children it waited for


def run_child(cmd: list[str], *, stdout=subprocess.DEVNULL, timeout: float = 1800,
              env: dict | None = None, capture: bool = False) -> Run:
    """Run `cmd`, time it, and read its own peak RSS; a failure raises with its stderr."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out if capture else stdout,
                                stderr=err, start_new_session=True,
                                env={**os.environ, **(env or {})})
        try:
            status, rusage = _wait4(proc, timeout)
        finally:
            kill_group(proc)
        seconds = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            message = err.read()[-2000:].decode(errors="replace")
            raise RuntimeError(f"{cmd[:4]}... exited {code}: {message}")
        out.seek(0)
        return Run(seconds, rusage.ru_maxrss / 1024, out.read() if capture else b"",
                   rusage.ru_utime + rusage.ru_stime)


def _wait4(proc: subprocess.Popen, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return status, rusage
        if time.monotonic() > deadline:
            raise TimeoutError(f"{proc.args[:3]} did not finish within {timeout:.0f} s")
        time.sleep(0.005)


@contextmanager
def terminal(columns: int = 100, rows: int = 50) -> Iterator[int]:
    """A pseudo-terminal for a child's stdout, as a user's terminal would be: yields its child end
    (pass it as run_child's stdout). A thread reads everything written to it at once, as a
    terminal does: a pseudo-terminal holds only a few KiB, and a writer it blocked would be timed."""
    import fcntl
    import struct
    import termios
    import threading

    master, child_end = os.openpty()
    fcntl.ioctl(child_end, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def drain() -> None:
        try:
            while os.read(master, 1 << 16):
                pass
        except OSError:  # EIO: every writer has closed its end
            pass

    reader = threading.Thread(target=drain, name="bench-terminal", daemon=True)
    reader.start()
    try:
        yield child_end
    finally:
        os.close(child_end)
        reader.join(timeout=10)
        os.close(master)


@contextmanager
def scratch_dir(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temporary directory for one bench run, removed at the end (also on an error) unless `keep`."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield directory
    finally:
        if keep:
            print(f"kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """`min / median / max` of repeated measurements."""
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values), max(values)))


# ---------------------------------------------------------------------------------- inputs
def example_bytes(source: Path = EXAMPLE) -> bytes:
    """The FlameGraph example (3.1 MB), ending with a blank line so that copies concatenate."""
    data = gzip.decompress(source.read_bytes()) if source.suffix == ".gz" else source.read_bytes()
    return data.rstrip(b"\n") + b"\n\n"


def write_repeated(path: Path, data: bytes, megabytes: float) -> Path:
    """`data` repeated to about `megabytes` MB (at least once)."""
    copies = max(1, round(megabytes * MB / len(data)))
    with open(path, "wb") as f:
        for _ in range(copies):
            f.write(data)
    return path


def write_growing(path: Path, data: bytes, megabytes: float) -> Path:
    """Like `write_repeated`, but each copy has its own PIDs/TIDs: unique stacks keep growing.

    The stacks (frames) repeat, the StackKeys do not: every copy shifts each TID (and PID when
    printed) by 100000 * copy number, as a long recording of a server that forks would.
    """
    import re

    head = re.compile(rb"^(\S.*?[ \t]+)(?:(\d+)/)?(\d+)([ \t]+(?:\[\d+\][ \t]+)?\d+\.\d+:)", re.M)
    copies = max(1, round(megabytes * MB / len(data)))
    with open(path, "wb") as f:
        for i in range(copies):
            shift = 100000 * i

            def renumber(m: re.Match) -> bytes:
                pid = b"%d/" % (int(m[2]) + shift) if m[2] else b""
                return m[1] + pid + b"%d" % (int(m[3]) + shift) + m[4]

            f.write(head.sub(renumber, data) if i else data)
    return path


# ---------------------------------------------------------------------------------- recording
LOAD_SCRIPT = r"""
import socket, sys, threading, time
deadline = time.monotonic() + float(sys.argv[2])
if sys.argv[1] == "busy":
    def work(n):
        return sum(i * i for i in range(n))
    while time.monotonic() < deadline:
        work(2000)
else:  # loopback TCP ping-pong: small request, small reply, as a chatty server sees
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    def serve():
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = conn.recv(64)
            if not data:
                return
            conn.sendall(data)
    threading.Thread(target=serve, daemon=True).start()
    cli = socket.create_connection(srv.getsockname())
    cli.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while time.monotonic() < deadline:
        cli.sendall(b"ping" * 8)
        cli.recv(64)
    cli.close()
"""


@contextmanager
def load(seconds: float) -> Iterator[None]:
    """A Python busy loop and a loopback ping-pong, stopping by themselves after `seconds`."""
    procs = [subprocess.Popen([PYTHON, "-c", LOAD_SCRIPT, kind, str(seconds)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              start_new_session=True) for kind in ("busy", "pingpong")]
    try:
        yield
    finally:
        for proc in procs:
            kill_group(proc)


def record_system_wide(directory: Path, seconds: float = 20, frequency: int = 999) -> Path:
    """`perf record -a -g -F 999 -- sleep 20` with the load above running; returns perf.data."""
    out = directory / "perf.data"
    # --no-bpf-event: fewer records of BPF programs coming and going, which perf 6.1 on
    # kernel 6.18 sometimes cannot read back (see README); the caller checks anyway.
    cmd = ["perf", "record", "-q", "-a", "-g", "-F", str(frequency), "--no-bpf-event",
           "-o", str(out), "--", "sleep", str(seconds)]
    with load(seconds + 2):
        time.sleep(0.5)  # let both loads start
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=seconds + 120)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"perf record failed: {proc.stderr.strip()[-500:]}")
    return out


def perf_script_command(perf_data: Path) -> list[str]:
    """The exact command advisor runs on a perf.data file (advisor.parse.perf_data)."""
    sys.path.insert(0, str(REPO))
    from advisor.parse.perf_data import perf_command

    return perf_command(perf_data)


def write_perf_script(perf_data: Path, out: Path) -> Path:
    with open(out, "wb") as f:
        subprocess.run(perf_script_command(perf_data), stdin=subprocess.DEVNULL, stdout=f,
                       stderr=subprocess.DEVNULL, check=True, timeout=1800,
                       env={**os.environ, "LC_ALL": "C", "PAGER": "cat"})
    return out


# ---------------------------------------------------------------------------------- baseline
def find_stackcollapse() -> Path | None:
    """FlameGraph's stackcollapse-perf.pl on PATH or in $FLAMEGRAPH_DIR (never downloaded)."""
    import shutil

    candidates = []
    if os.environ.get("FLAMEGRAPH_DIR"):
        candidates.append(Path(os.environ["FLAMEGRAPH_DIR"]) / "stackcollapse-perf.pl")
    found = shutil.which("stackcollapse-perf.pl")
    if found:
        candidates.append(Path(found))
    return next((c for c in candidates if c.is_file()), None)

#: A child process that parses one file and prints its time, samples and rows (JSON).
PARSE_CHILD = r"""
import json, sys, time
sys.path.insert(0, {repo!r})
from advisor.parse.perf_script import HOT_LOOP, read  # imports (pandas via advisor/__init__) not timed
path = sys.argv[1]
t0 = time.perf_counter()
with open(path, "rb") as f:
    table = read(f, path)
print(json.dumps({{"seconds": time.perf_counter() - t0, "samples": table.samples,
                  "rows": len(table), "hot_loop": HOT_LOOP}}))
"""
