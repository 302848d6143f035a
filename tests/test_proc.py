"""advisor.proc: the one way children are stopped. Real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from advisor.proc import alive, children, descendants, signal_group, stop_group

STUBBORN = "import signal, subprocess, time\n" \
           "signal.signal(signal.SIGINT, signal.SIG_IGN)\n" \
           "subprocess.Popen(['sleep', '30'])\n" \
           "print('ready', flush=True)\n" \
           "time.sleep(30)\n"


def _group_members(pgid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.getpgid(int(name)) == pgid and alive(int(name)):
                    found.append(int(name))
            except OSError:
                continue
    return found


def test_a_group_that_ignores_sigint_is_killed_with_its_children_and_reaped():
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout.readline().strip() == b"ready"
    deadline = time.monotonic() + 5
    while len(_group_members(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)  # the sleep may still be starting
    assert len(_group_members(proc.pid)) == 2  # the leader and its sleep
    started = time.monotonic()
    assert stop_group(proc, signal.SIGINT, grace_s=0.3) is True
    assert time.monotonic() - started < 5
    assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 5
    while _group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.02)  # SIGKILL is sent; dying takes the kernel a moment
    assert _group_members(proc.pid) == []


def test_a_leader_that_ended_by_itself_is_reported_so_and_its_leftovers_killed():
    proc = subprocess.Popen(["sh", "-c", "sleep 30 & exit 0"], start_new_session=True)
    proc.wait(timeout=10)
    leftover = _group_members(proc.pid)
    assert len(leftover) == 1  # the orphaned sleep still sits in the group
    assert stop_group(proc) is False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and alive(leftover[0]):
        time.sleep(0.02)  # reaped by init, not by us
    assert not alive(leftover[0])


def test_signalling_a_group_that_is_gone_is_no_error():
    proc = subprocess.Popen(["true"], start_new_session=True)
    proc.wait(timeout=10)
    signal_group(proc.pid, signal.SIGKILL)
    assert not alive(proc.pid) and not alive(2 ** 22 + 7)


def test_descendants_follow_grandchildren():
    """sh -> sh -> sleep, and a sleep directly under the first: all three found, nothing else."""
    proc = subprocess.Popen(["sh", "-c", "sh -c 'sleep 30' & sleep 30 & wait"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while len(descendants(proc.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        found = descendants(proc.pid)
        assert len(found) == 3 and found == sorted(found)
        assert set(children(proc.pid)) < set(found)  # the grandchild is not a direct child
    finally:
        stop_group(proc, signal.SIGKILL, grace_s=0.1)
    assert descendants(2 ** 22 + 7) == []
