"""advisor.collect.perf: perf record for a window, stopped cleanly on every path, symbolised as it streams.

Real perf on this machine (root). A small C program with a known hot function is the busy process.
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import time

import pytest

from advisor.collect import perf as perf_mod
from advisor.collect.perf import PerfRecord, permission_problem, record_argv, symbolise
from advisor.errors import EnvironmentProblem
from advisor.parse import perf_script

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="perf -a / -p of any process needs root")

BURNER_C = r"""
#include <stdlib.h>
#include <time.h>
static volatile unsigned long sink;
__attribute__((noinline)) void burn_cycles(unsigned long n) {
    for (unsigned long i = 0; i < n; i++) sink += i * i;
}
int main(int argc, char **argv) {
    double limit = argc > 1 ? atof(argv[1]) : 10;   /* exits by itself: never outlives a test */
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        burn_cycles(1000000);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 < limit);
    return 0;
}
"""


@pytest.fixture(scope="session")
def burner_exe(tmp_path_factory) -> str:
    """A binary named `burner` that spends its time in burn_cycles (frame pointers kept)."""
    directory = tmp_path_factory.mktemp("burner")
    source, exe = directory / "burner.c", directory / "burner"
    source.write_text(BURNER_C)
    subprocess.run(["gcc", "-O1", "-g", "-fno-omit-frame-pointer", "-o", str(exe), str(source)],
                   check=True, timeout=60)
    return str(exe)


@pytest.fixture
def burner(burner_exe):
    """A running burner (for at most 20 s); killed after the test."""
    proc = subprocess.Popen([burner_exe, "20"], stdin=subprocess.DEVNULL)
    yield proc
    proc.kill()
    proc.wait(timeout=10)


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_permission_problem_names_the_cause():
    """This machine runs the tests as privileged root, so the other cases are given as values."""
    full = 1 << perf_mod.CAP_SYS_ADMIN
    assert permission_problem(0, full, 2) is None
    assert permission_problem(0, 1 << perf_mod.CAP_PERFMON, 3) is None
    assert permission_problem(0, 0, -1) is None  # a container root may sample when paranoid allows it
    assert "must run as root" in permission_problem(1000, 0, -1)
    assert "perf_event_paranoid is 2" in permission_problem(0, 0, 2)
    assert "no perf events" in permission_problem(0, full, None)
    if os.geteuid() == 0:
        assert perf_mod.check_environment().endswith("/perf")


def test_record_argv_is_system_wide_unless_a_scope_is_given():
    argv = record_argv("/usr/bin/perf", "/tmp/x/perf.data", 2.5, 99)
    assert argv == ["/usr/bin/perf", "record", "-e", "cpu-clock", "-F", "99", "-g", "--no-bpf-event", "-a",
                    "-o", "/tmp/x/perf.data", "--", "sleep", "2.5"]
    assert record_argv("perf", "o", 3, 49, ["-p", "42,43"])[8:10] == ["-p", "42,43"]
    cgroup = record_argv("perf", "o", 3, 49, ["-a", "-G", "system.slice/nginx.service"])
    assert cgroup.index("-G") > cgroup.index("-e")  # perf wants -G after the event it filters


@root_only
def test_sampling_a_busy_process_finds_its_hot_function(burner, tmp_path):
    argv = record_argv(perf_mod.perf_binary(), str(tmp_path / "perf.data"), 2, 199, ["-p", str(burner.pid)])
    with PerfRecord(argv, str(tmp_path / "perf.stderr")) as recorder:
        recorder.wait(30)
    recorder.check()
    assert not recorder.stopped_by_us and 1.8 < recorder.elapsed_s < 15
    copy = io.BytesIO()
    table = symbolise(str(tmp_path / "perf.data"), "burner", copy_to=copy)
    assert set(table.events) == {"cpu-clock"}
    weights: dict[str, int] = {}
    for key, (count, _) in table.rows.items():
        assert key.pid == burner.pid and key.comm == "burner"
        if key.frames:
            weights[key.frames[-1].symbol] = weights.get(key.frames[-1].symbol, 0) + count
    total = sum(weights.values())
    assert total > 100  # 2 s at 199 Hz of a process that never sleeps
    hottest = max(weights, key=weights.get)
    assert hottest == "burn_cycles" and weights[hottest] > 0.8 * total
    stacks = [[f.symbol for f in key.frames] for key in table.rows]
    # call stacks, root first (frame-pointer unwinding from a leaf skips its caller: main)
    assert any(len(s) >= 2 and s[-1] == "burn_cycles" and s[0] == "__libc_start_call_main" for s in stacks)
    # the copy is perf script's text, byte for byte what the parser read
    again = perf_script.read(io.BytesIO(copy.getvalue()), "copy")
    assert again.rows == table.rows


@root_only
def test_timeout_stops_perf_with_sigint_and_leaves_a_valid_file(tmp_path):
    argv = record_argv(perf_mod.perf_binary(), str(tmp_path / "perf.data"), 60, 99)
    start = time.monotonic()
    with PerfRecord(argv, str(tmp_path / "perf.stderr")) as recorder:
        recorder.wait(1.5)  # far shorter than perf's own 60 s: the timeout path
    assert time.monotonic() - start < 10
    assert recorder.stopped_by_us and group_gone(recorder.proc.pid)
    recorder.check()  # stopped by us with SIGINT: not a failure
    table = symbolise(str(tmp_path / "perf.data"), "t")
    assert sum(n for n, _ in table.events.values()) > 0  # perf wrote a complete, readable file


@root_only
def test_an_exception_inside_the_block_stops_perf(tmp_path):
    argv = record_argv(perf_mod.perf_binary(), str(tmp_path / "perf.data"), 60, 99)
    with pytest.raises(RuntimeError):
        with PerfRecord(argv, str(tmp_path / "perf.stderr")) as recorder:
            time.sleep(0.5)
            raise RuntimeError("boom")
    assert recorder.proc.poll() is not None and group_gone(recorder.proc.pid)


@root_only
def test_a_perf_failure_is_one_line_with_perfs_message(tmp_path):
    missing_pid = 4_000_000  # above pid_max: no such process
    argv = record_argv(perf_mod.perf_binary(), str(tmp_path / "perf.data"), 5, 99, ["-p", str(missing_pid)])
    with PerfRecord(argv, str(tmp_path / "perf.stderr")) as recorder:
        recorder.wait(15)
    with pytest.raises(EnvironmentProblem) as info:
        recorder.check()
    message = str(info.value)
    assert message.startswith("perf record failed (exit status") and "\n" not in message
    assert len(message) < 300


def ended_pid() -> int:
    """The PID of a process that has ended and been reaped: as a child that exits between
    advise listing a process tree and perf attaching to it."""
    proc = subprocess.Popen(["true"])
    proc.wait(timeout=10)
    return proc.pid


@root_only
def test_a_process_that_ended_before_perf_attached_starts_perf_again_on_the_tree_as_it_is(burner, tmp_path):
    """perf record -p A,B fails at once ("No such process") when B has ended meanwhile: a forking
    server does that. It is started again on the processes as they are, and samples A."""
    data = str(tmp_path / "perf.data")
    scopes = [["-p", f"{burner.pid},{ended_pid()}"], ["-p", str(burner.pid)]]
    argv = record_argv(perf_mod.perf_binary(), data, 1.5, 99, scopes[0])
    with PerfRecord(argv, str(tmp_path / "perf.stderr"), burner.pid,
                    rescope=lambda: record_argv(perf_mod.perf_binary(), data, 1.5, 99, scopes[1])) as recorder:
        recorder.wait(20)
    recorder.check()
    assert recorder.restarts == 1 and recorder.argv[recorder.argv.index("-p") + 1] == str(burner.pid)
    table = symbolise(data, "t")
    assert {key.pid for key in table.rows} == {burner.pid}


@root_only
def test_perf_is_started_again_a_few_times_at_most_then_its_failure_is_reported(tmp_path):
    data = str(tmp_path / "perf.data")
    gone = ["-p", f"{os.getpid()},{ended_pid()}"]
    calls = []

    def rescope():
        calls.append(1)
        return record_argv(perf_mod.perf_binary(), data, 1, 99, gone)  # still one that ended

    with PerfRecord(record_argv(perf_mod.perf_binary(), data, 1, 99, gone), str(tmp_path / "perf.stderr"),
                    os.getpid(), rescope=rescope) as recorder:
        recorder.wait(20)
    assert len(calls) == recorder.restarts == perf_mod.MAX_RESTARTS
    with pytest.raises(EnvironmentProblem, match="No such process"):
        recorder.check()


@root_only
def test_symbolise_streams_into_a_gzip_copy(burner, tmp_path):
    argv = record_argv(perf_mod.perf_binary(), str(tmp_path / "perf.data"), 1, 99, ["-p", str(burner.pid)])
    with PerfRecord(argv, str(tmp_path / "perf.stderr")) as recorder:
        recorder.wait(20)
    with gzip.open(tmp_path / "perf.script.gz", "wb") as gz:
        table = symbolise(str(tmp_path / "perf.data"), "x", copy_to=gz)
    from advisor.parse.detect import read_samples

    assert read_samples(tmp_path / "perf.script.gz").rows == table.rows


@root_only
def test_symbolise_reads_time_slices_side_by_side_unless_it_copies_the_text(burner, tmp_path, monkeypatch):
    """Without a copy, a recording is read as `advise analyze perf.data` reads it (in slices when
    large; two forced here), with the same rows as one perf; the copy is one perf's stream."""
    from advisor.parse import perf_spawn

    data = str(tmp_path / "perf.data")
    argv = record_argv(perf_mod.perf_binary(), data, 1, 499, ["-p", str(burner.pid)])
    with PerfRecord(argv, str(tmp_path / "perf.stderr")) as recorder:
        recorder.wait(20)
    real_spawn, started = perf_spawn.perf_script, []

    def spawn(perf, path, inline=True, time_range=None, into=None):
        started.append(time_range)
        return real_spawn(perf, path, inline, time_range, into)

    monkeypatch.setattr(perf_spawn, "perf_script", spawn)
    monkeypatch.setenv("ADVISOR_PERF_SLICES", "2")
    sliced = symbolise(data, "advise run on this host")
    assert started == ["0%-50%", "50%-100%"] and sliced.source == "advise run on this host"
    started.clear()
    copied = symbolise(data, "x", copy_to=io.BytesIO())
    assert started == [None]
    assert list(sliced.rows.items()) == list(copied.rows.items()) and sliced.rows
