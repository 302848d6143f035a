"""Collect everything the rules need in one window, and write it as a recording bundle.

One window, three collectors at once: `perf record` (the main thread watches it and draws the
countdown), the kernel counters (`collect_counters`, in a thread: /proc, plus BPF and tracepoints
with `bpf`) and, when asked, a load
command (`--during`). The read-only system probes run right after the window, while the target
still runs, then `perf script` is streamed into the parser (and, with `save`, into the bundle's
perf.script.gz).

Nothing is left behind: every child runs in its own process group and is stopped (SIGINT, then
SIGKILL) on every exit path. On an exception or Ctrl-C, every child this process started during the
collection is stopped too, which also covers the counters' tools, whose thread cannot be
interrupted. The bundle is written into `DIR.tmp-xxx` next to DIR and renamed at the end, so a
failure (disk full...) leaves no half bundle.
"""

from __future__ import annotations

import datetime
import gzip
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..bundle import FORMAT as BUNDLE_LAYOUT
from ..bundle import is_bundle
from ..errors import AdvisorError, EnvironmentProblem, UsageError
from ..model import StackTable
from ..proc import alive, children, reap, signal_group, stop_group
from . import perf as perf_mod
from . import targets
from .core_tools import Children

LOAD_OUTPUT_MAX = 64 * 1024  # bytes of the load command's output (and of its errors) kept in meta.json
LOAD_STOP_GRACE_S = 3.0
COUNTERS_EXTRA_S = 25.0  # the counters' tools may take this long past the window (start-up + grace)
POST_WINDOW_NICE = 10  # nice increment for the work after the window


@dataclass
class Recording:
    """A bundle in memory: what `advise analyze DIR` would read back from the saved bundle."""

    table: StackTable
    meta: dict
    system: dict
    counters: dict | None
    missing: dict = field(default_factory=dict)


# ---------------------------------------------------------------- children

def own_children() -> set[int]:
    """Direct children of this process (any of its threads)."""
    return set(children(os.getpid()))


def stop_groups(pids: set[int], grace_s: float = 1.0) -> None:
    """SIGINT each child's process group (our children lead their own), then SIGKILL what is left,
    and reap them: these are children whose Popen was lost (a Ctrl-C inside Popen() after the
    fork), and a child killed but not waited for stays a zombie, reparented to init when we exit,
    which some inits (a container's) reap late (found with Ctrl-C at random moments of `advise
    run --bpf all`: a dead perf left in 12 of 40 runs)."""
    for pid in pids:
        signal_group(pid, signal.SIGINT)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    for pid in pids:
        signal_group(pid, signal.SIGKILL)
    for pid in pids:
        reap(pid)


def remove_tree(path: str | os.PathLike) -> None:
    """Remove a directory of ours and all it holds, whatever happened before. shutil.rmtree needs
    two descriptors at least: at the open-files limit (`ulimit -n`) it left `advise run`'s working
    directory behind, so what it could not remove is removed path by path, one descriptor at a
    time."""
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        _remove_by_path(os.fspath(path))


def _remove_by_path(path: str) -> None:
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        inside = os.path.join(path, name)
        try:
            if os.path.isdir(inside) and not os.path.islink(inside):
                _remove_by_path(inside)
            else:
                os.unlink(inside)
        except OSError:
            pass
    try:
        os.rmdir(path)
    except OSError:
        pass


@contextmanager
def no_child_left(*registries: Children) -> Iterator[None]:
    """On an exception or Ctrl-C, stop every child started inside the block (the others are not ours).

    The registries of the threads that start tools are closed first, so that a thread about to start
    one cannot do so any more; then whatever else is left among our children is stopped, once.
    """
    before = own_children()
    try:
        yield
    except BaseException:
        for registry in registries:
            registry.close()
        stop_groups(own_children() - before, grace_s=0.5)
        raise


@contextmanager
def lowered_priority(nice: int = POST_WINDOW_NICE) -> Iterator[None]:
    """Run the block at a lower CPU priority: the work after the window (probes, `perf script`,
    parsing) must not take CPU from the server being measured. On Linux the nice value belongs to
    the calling thread, and the children it starts inherit it; the old value is restored after."""
    try:
        before = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, 0, min(19, before + nice))
    except OSError:
        yield
        return
    try:
        yield
    finally:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, before)
        except OSError:  # raising priority back needs CAP_SYS_NICE: stay nicer then
            pass


# ---------------------------------------------------------------- the load command

class LoadCommand:
    """`--during CMD`: an argument list (never a shell), started before the window, stopped after it.

    Its output goes through pipes of which only the last LOAD_OUTPUT_MAX bytes are kept
    (`OutputTail`): written to files, a chatty command filled the disk (`--during yes` wrote ~2 GB
    a second into /tmp), and reading them back held all of it in memory. wrk's summary, the part
    that counts, comes last."""

    def __init__(self, command: str):
        try:
            self.argv = shlex.split(command)
        except ValueError as exc:
            raise UsageError(f"--during {command!r}: {exc}") from None
        if not self.argv:
            raise UsageError("--during: empty command")
        if shutil.which(self.argv[0]) is None:
            raise UsageError(f"--during: {self.argv[0]}: command not found")
        self.tool = next((os.path.basename(a) for a in self.argv if os.path.basename(a) == "wrk"),
                         os.path.basename(self.argv[0]))
        self.proc: subprocess.Popen | None = None
        self.out = self.err = None
        self.stopped_by_us = False

    def start(self) -> None:
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise UsageError(f"--during: {self.argv[0]}: {exc.strerror or exc}") from None
        self.out, self.err = OutputTail(self.proc.stdout), OutputTail(self.proc.stderr)

    def stop(self) -> None:
        """SIGINT (wrk prints its summary on it), then SIGKILL the group; reap it."""
        if self.proc is None:
            return
        if stop_group(self.proc, signal.SIGINT, LOAD_STOP_GRACE_S):
            self.stopped_by_us = True

    def result(self) -> tuple[dict, dict]:
        """(meta.json "load", collector status)."""
        out = self.out.text() if self.out else ""
        err = self.err.text() if self.err else ""
        code = self.proc.returncode if self.proc else None
        load = {"tool": self.tool, "command": self.argv, "requests_per_sec": None, "exit_status": code,
                "stopped_at_window_end": self.stopped_by_us, "output": out}
        if err.strip():
            load["stderr"] = err
        how = "stopped at the end of the window" if self.stopped_by_us else f"exit status {code}"
        if self.tool == "wrk":
            from ..parse.wrk import parse_wrk

            try:
                parsed = parse_wrk(out)
            except AdvisorError:
                return load, {"status": "failed", "detail": f"wrk printed no Requests/sec ({how}): "
                              + _last_line(err or out)}
            load.update(requests_per_sec=parsed["requests_per_sec"], latency_ms=parsed["latency_ms"],
                        errors=parsed["errors"])
            return load, {"status": "ok", "detail": f"wrk: {parsed['requests_per_sec']:,.0f} req/s ({how})"}
        failed = code not in (0, None) and not self.stopped_by_us
        return load, {"status": "failed" if failed else "ok",
                      "detail": f"{' '.join(self.argv)[:80]}: {how}"
                                + (f": {_last_line(err or out)}" if failed else "")}


class OutputTail(threading.Thread):
    """Reads a pipe to its end in a thread of its own, keeping only its last LOAD_OUTPUT_MAX bytes."""

    def __init__(self, pipe):
        super().__init__(name="advisor-load-output", daemon=True)
        self._pipe = pipe
        self._kept = bytearray()
        self.start()

    def run(self) -> None:
        with self._pipe:
            while chunk := self._pipe.read1(1 << 16):
                self._kept += chunk
                if len(self._kept) > 2 * LOAD_OUTPUT_MAX:  # trimmed now and then, not at every read
                    del self._kept[:-LOAD_OUTPUT_MAX]

    def text(self, wait_s: float = 2.0) -> str:
        """The last LOAD_OUTPUT_MAX bytes, as text. Waits for the end of the output, but not for
        ever: a process that left the command's group (a daemon) may hold the pipe open."""
        self.join(wait_s)
        return bytes(self._kept[-LOAD_OUTPUT_MAX:]).decode("utf-8", "replace")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


# ---------------------------------------------------------------- counters in a thread

class CountersThread:
    """collect_counters() for the window, in a daemon thread; never raises into the caller."""

    def __init__(self, duration_s: float, pids: list[int], comm: str | None, bpf=False):
        self.args = (duration_s, pids or None, comm, bpf)
        self.children = Children()  # every tool it starts: closed to stop them from another thread
        self.counters: dict | None = None
        self.statuses: dict = {}
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name="advise-counters", daemon=True)

    def _run(self) -> None:
        try:
            from .counters import collect_counters

            self.counters, self.statuses = collect_counters(*self.args, children=self.children)
        except Exception as exc:  # the samples still make a report
            self.error = f"{type(exc).__name__}: {exc}"

    def start(self) -> None:
        self.started = time.monotonic()
        self.thread.start()

    def join(self) -> None:
        deadline = self.started + self.args[0] + COUNTERS_EXTRA_S
        while self.thread.is_alive() and time.monotonic() < deadline:
            self.thread.join(timeout=0.1)
        if self.thread.is_alive():
            self.error = f"the counters did not finish within {self.args[0] + COUNTERS_EXTRA_S:.0f} s"


# ---------------------------------------------------------------- the bundle on disk

def check_save_target(save: Path, replace: bool = False, option: str = "--save") -> None:
    """Refuse before collecting, not after: an existing non-empty DIR (with `replace`, one that is
    a bundle may be replaced: the lab's --record regenerates its bundles), or a missing parent.
    (Whether the parent can be written, the staging directory made there before the window tells.)"""
    if save.exists() and (not save.is_dir() or any(save.iterdir())) and not (replace and is_bundle(save)):
        what = "a directory of bundle files" if replace else "an empty directory"
        raise UsageError(f"{option} {save}: already exists and is not {what}")
    parent = save.parent
    if not parent.is_dir():
        raise UsageError(f"{option} {save}: parent directory {parent} does not exist")


def _write_json(path: Path, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, allow_nan=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def finish_bundle(stage: Path, save: Path, meta: dict, system: dict, counters: dict | None) -> None:
    """Write the JSON parts into the staging directory, then rename it to `save` in one step."""
    _write_json(stage / "system.json", system)
    if counters is not None:
        _write_json(stage / "counters.json", counters)
    _write_json(stage / "meta.json", meta)
    old = None
    if save.is_dir():  # empty, or a bundle to replace (checked before collecting): rename needs it gone
        old = Path(tempfile.mkdtemp(prefix=f"{save.name}.old-", dir=save.parent))
        os.rename(save, old / save.name)
    os.rename(stage, save)
    if old is not None:
        remove_tree(old)
    fd = os.open(save.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- the window

def _json_copy(value):
    """What the bundle will hold once read back (tuples become lists...): analysis of the live
    recording and of the saved bundle must see the same values."""
    return json.loads(json.dumps(value, default=str, allow_nan=False))


def _progress(enabled: bool, duration_s: float, what: str):
    """A countdown on stderr while collecting (rich); nothing when stderr is not a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    console = Console(stderr=True)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        TextColumn("{task.fields[left]}"), console=console, transient=True,
                        disable=not (enabled and console.is_terminal))
    return progress, progress.add_task(what, total=duration_s, left=f"{duration_s:.0f} s left")


def record(duration_s: float, frequency: int = perf_mod.DEFAULT_FREQUENCY, *, comm: str | None = None,
           pid: int | None = None, cgroup: str | None = None, netns: str | None = None,
           during: str | None = None, save: str | Path | None = None, rules: list | None = None,
           progress: bool = True, bpf: bool | str = False, replace: bool = False) -> Recording:
    """Collect one window and return the bundle in memory (also written to `save` when given).

    Target (targets.resolve): `pid` and its descendants, or a `cgroup`, are the only processes
    perf samples; `comm` names the processes whose state and syscalls are read while perf
    samples every CPU. bpf: also run the BPF/tracepoint counters (see counters.bpf_selection);
    /proc only by default. replace: a bundle already at `save` is replaced (else refused).
    """
    from ..engine import kallsyms
    from ..engine.rules import load_rules
    from .system import collect_system_state

    perf = perf_mod.check_environment()
    if duration_s <= 0:
        raise UsageError(f"--duration {duration_s:g}: must be positive")
    if frequency <= 0:
        raise UsageError(f"--frequency {frequency}: must be positive")
    target = targets.resolve(comm, pid, cgroup, netns)
    from .counters import bpf_selection

    bpf_selection(bpf)  # an unknown choice is a UsageError before anything starts
    save = Path(save) if save is not None else None
    if save is not None:
        check_save_target(save, replace)
    rules = rules if rules is not None else load_rules()
    pids = target.pids
    collectors: dict = {}

    with ExitStack() as cleanup:
        workdir = tempfile.mkdtemp(prefix="advise-run-")
        cleanup.callback(remove_tree, workdir)
        stage = None
        if save is not None:
            try:  # root passes the access check in /proc, /sys and read-only mounts: ask the kernel
                stage = Path(tempfile.mkdtemp(prefix=f"{save.name}.tmp-", dir=save.parent))
            except OSError as exc:
                raise EnvironmentProblem(f"--save {save}: cannot create a directory in {save.parent}: "
                                         f"{exc.strerror or exc}") from None
            cleanup.callback(remove_tree, stage)
        load = LoadCommand(during) if during is not None else None
        perf_data = os.path.join(workdir, "perf.data")
        argv = perf_mod.record_argv(perf, perf_data, duration_s, frequency, target.perf_scope())
        bar, task = _progress(progress, duration_s, f"perf {frequency} Hz + counters")

        counters_job = CountersThread(duration_s, pids, comm, bpf)
        with no_child_left(counters_job.children):
            if load:
                load.start()
                cleanup.callback(load.stop)
            counters_job.start()
            def rescope() -> list[str] | None:  # a process of --pid's tree ended before perf attached
                if not target.refresh():
                    return None
                return perf_mod.record_argv(perf, perf_data, duration_s, frequency, target.perf_scope())

            with perf_mod.PerfRecord(argv, os.path.join(workdir, "perf.stderr"), pid, rescope) as recorder, bar:
                recorder.wait(duration_s + perf_mod.START_TIMEOUT_S,
                              tick=lambda t: bar.update(task, completed=min(t, duration_s),
                                                        left=f"{max(0.0, duration_s - t):.0f} s left"))
                bar.update(task, description="reading system state", completed=duration_s, left="")
                if load:
                    load.stop()
                with own_recording(workdir):
                    recorder.check()
                with lowered_priority():
                    system = collect_system_state(pids=pids or None, comm=comm, netns=netns)
                    system["kernel_symbols"] = kallsyms.presence(rules)
                    bar.update(task, description="symbolising (perf script)")
                    source = str(save) if save is not None else f"advise run on {socket.gethostname()}"
                    with own_recording(workdir):
                        table = _symbolise(perf_data, source, stage, save)
                bar.update(task, description="waiting for the counters")
                counters_job.join()
                if counters_job.thread.is_alive():
                    counters_job.children.close()  # its tools overstayed: they must not outlive us

        collectors["perf"] = _perf_status(recorder, table, frequency, target)
        if counters_job.error:
            collectors["counters"] = {"status": "failed", "detail": counters_job.error}
        for name, status in counters_job.statuses.items():
            collectors[name] = status
        collectors["probes"] = _probes_status(system, netns)
        collectors["kallsyms"] = _kallsyms_status(system["kernel_symbols"])
        meta = {
            "format": BUNDLE_LAYOUT,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "host": socket.gethostname(), "kernel": platform.release(), "cpus": os.cpu_count(),
            "duration_s": duration_s,
            "target": {"comm": comm, "pid": pid, "cgroup": target.cgroup, "pids": target.pids, "netns": netns,
                       "scoped": target.scoped},
            "perf": {"version": perf_mod.perf_version(perf), "record_args": _shown_args(recorder.argv)},
        }
        if load:
            meta["load"], collectors["load"] = load.result()
        meta["collectors"] = collectors
        meta, system = _json_copy(meta), _json_copy(system)
        counters = _json_copy(counters_job.counters) if counters_job.counters is not None else None
        missing = {} if counters is not None else {
            "counters": f"counters not collected: {counters_job.error or 'see collectors'}"}
        if stage is not None:
            try:
                finish_bundle(stage, save, meta, system, counters)
            except OSError as exc:
                raise EnvironmentProblem(f"--save {save}: cannot write the bundle: "
                                         f"{exc.strerror or exc}; nothing was saved") from None
        return Recording(table, meta, system, counters, missing)


@contextmanager
def own_recording(workdir: str) -> Iterator[None]:
    """Errors about the recording advise made itself in `workdir` are the machine's (exit 3), never
    bad input; and when its file system is full, they say so. perf's complaint is lost then: its
    stderr file is in the same full directory (perf record exited 255 with no message, or wrote a
    perf.data that perf script refused, found with TMPDIR on a 16-64 KiB tmpfs)."""
    try:
        yield
    except AdvisorError as exc:
        if nearly_full(workdir):
            raise EnvironmentProblem(f"no space left on {os.path.dirname(workdir)} (TMPDIR) for the recording: "
                                     f"{exc}; free some, or set TMPDIR to a larger file system") from None
        if isinstance(exc, EnvironmentProblem):
            raise
        raise EnvironmentProblem(f"the recording advise made could not be read: {exc}") from None


def nearly_full(directory: str, below_bytes: int = 1 << 20) -> bool:
    """Whether the file system of `directory` has less than `below_bytes` left."""
    try:
        free = os.statvfs(directory)
    except OSError:
        return False
    return free.f_bavail * free.f_frsize < below_bytes


def _symbolise(perf_data: str, source: str, stage: Path | None, save: Path | None) -> StackTable:
    """Parse perf script's output; with a staging directory, also gzip it there as perf.script.gz."""
    if stage is None:
        return perf_mod.symbolise(perf_data, source)
    target = stage / "perf.script.gz"
    try:
        with open(target, "wb") as raw:
            with gzip.GzipFile(filename="perf.script", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as gz:
                table = perf_mod.symbolise(perf_data, source, copy_to=gz)
            raw.flush()
            os.fsync(raw.fileno())
    except OSError as exc:
        raise EnvironmentProblem(f"--save {save}: cannot write the bundle: "
                                 f"{exc.strerror or exc}; nothing was saved") from None
    return table


def _shown_args(argv: list[str]) -> list[str]:
    """perf's arguments as a user would type them: 'perf', and no temporary output path."""
    shown = ["perf", *argv[1:]]
    if "-o" in shown:
        at = shown.index("-o")
        del shown[at:at + 2]
    return shown


def _perf_status(recorder: perf_mod.PerfRecord, table: StackTable, frequency: int,
                 target: targets.Target) -> dict:
    scope, pid = target.describe(), target.pid
    samples = sum(count for count, _ in table.events.values())
    detail = (f"{perf_mod.EVENT} at {frequency} Hz on {scope} with call stacks: {samples:,} samples "
              f"in {recorder.elapsed_s:.1f} s")
    if recorder.stopped_by_us:
        detail += " (stopped: it did not end by itself)"
    if recorder.restarts:
        detail += (f"; started {recorder.restarts} more time(s): a process of the tree ended before "
                   f"perf could attach to it")
    if recorder.target_exited_at is not None:
        detail += f"; partial: process {pid} exited {recorder.target_exited_at:.1f} s into the window"
    if samples == 0:
        return {"status": "failed", "detail": detail + "; no samples"}
    return {"status": "ok", "detail": detail}


def _probes_status(system: dict, netns: str | None) -> dict:
    sections = [name for name in system if name != "kernel_symbols"]
    failed = [name for name, value in system.items() if isinstance(value, dict) and "error" in value]
    where = f"; network sections read in netns {netns}" if netns else ""
    if len(failed) == len(sections):
        return {"status": "failed", "detail": f"every section failed{where}"}
    detail = f"{len(sections) - len(failed)} of {len(sections)} sections read{where}"
    if failed:
        detail += f"; unreadable: {', '.join(failed)}"
    return {"status": "ok", "detail": detail}


def _kallsyms_status(presence: dict) -> dict:
    if "error" in presence:
        return {"status": "failed", "detail": str(presence["error"])}
    absent = sorted(rule for rule, present in presence.items() if not present)
    detail = f"symbol families of {len(presence)} rules looked up in /proc/kallsyms"
    if absent:
        detail += f"; absent from this kernel: {', '.join(absent)}"
    return {"status": "ok", "detail": detail}
