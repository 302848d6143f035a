"""Our child processes: finding them in /proc, and stopping them, always the same way.

Every child runs in its own process group. Stopping it: a first signal to the whole group (SIGINT makes perf write a valid file and the BPF tools print
their summary; SIGTERM for servers), a grace period, then SIGKILL to the group even when its
leader has already gone (a leftover `sleep` or worker may still be in it), and the leader reaped.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where it is used: `advise analyze` reaches this module without it
    import subprocess


def signal_group(pgid: int, sig: int) -> None:
    """Send `sig` to a process group; a group that is gone (or not ours to signal) is no error."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def alive(pid: int) -> bool:
    """Whether a process still runs (a zombie, exited but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def children(pid: int) -> list[int]:
    """Direct children of `pid` (of any of its threads), from /proc/PID/task/*/children."""
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as handle:
                found.extend(int(child) for child in handle.read().split())
        except OSError:
            continue  # the thread or the process ended meanwhile
    return found


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children...), sorted."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return sorted(found)


def exit_text(code: int) -> str:
    """A child's exit status as a message says it: 'exit status 1', 'killed by SIGSEGV'."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def reap(pid: int, wait_s: float = 2.0) -> None:
    """Wait for our child `pid` to be gone, up to `wait_s`, for a child known by its ID only (not
    ours, or already reaped: nothing to do). A child killed but not waited for stays a zombie,
    handed to init when we exit, which some inits (a container's) reap late."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done or time.monotonic() >= deadline:
            return
        time.sleep(0.005)


def kill_group(proc: subprocess.Popen, wait_s: float = 10.0) -> None:
    """SIGKILL the group led by `proc` now (no grace: its output is not wanted) and reap `proc`."""
    import subprocess

    signal_group(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        pass


def stop_group(proc: subprocess.Popen, first: int = signal.SIGINT, grace_s: float = 1.0) -> bool:
    """Stop the group led by `proc` (started with start_new_session=True) and reap `proc`.

    Returns whether it was still running, i.e. whether we stopped it rather than it ending itself.
    """
    import subprocess

    running = proc.poll() is None
    if running:
        signal_group(proc.pid, first)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    signal_group(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait()
    return running
