"""advisor.parse.perf_data on real perf.data files recorded here with `perf record`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from advisor.errors import EnvironmentProblem, InputError
from advisor.parse import perf_data
from advisor.parse.collapse import fold

BUSY = "import time\nt = time.time()\nwhile time.time() - t < 0.8:\n    sum(range(1000))\n"


def record(directory: Path, name: str, *args: str) -> Path:
    if shutil.which("perf") is None:
        pytest.skip("perf is not installed")
    out = directory / name
    proc = subprocess.run(["perf", "record", "-q", "-F", "999", *args, "-o", str(out), "--",
                           sys.executable, "-c", BUSY], capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0 or not out.exists():
        pytest.skip(f"perf record does not work here: {proc.stderr.strip()[:200]}")
    return out


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    return record(tmp_path_factory.mktemp("perf"), "perf.data", "-g")


def perf_children() -> list[int]:
    """PIDs of `perf` processes whose parent is this test process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if comm == "perf" and ppid == os.getpid():
            found.append(int(entry.name))
    return found


def test_reads_a_real_recording_with_pid_tid_period_and_callchains(recording):
    table = perf_data.read(recording)
    assert table.samples > 100
    assert list(table.events) == ["cpu-clock"] and table.has_period["cpu-clock"]
    python = [k for k in table.rows if k.comm.startswith("python")]
    assert python and all(k.pid > 0 and k.tid > 0 for k in python)
    assert max(len(k.frames) for k in python) > 5  # callchains, root first
    assert any(f.kind == "kernel" for k in table.rows for f in k.frames)
    assert any(f.kind == "user" for k in table.rows for f in k.frames)
    assert 0.5 < table.duration_s < 5
    assert table.warnings == []
    lines = fold(table, pid=True)
    assert lines and all(line.startswith(tuple(f"{k.comm.replace(' ', '_')}-{k.pid}"
                                               for k in table.rows)) for line in lines)


def test_a_recording_of_a_tracepoint_only_says_its_shares_are_not_of_time(tmp_path, recording):
    """sched:sched_switch samples count context switches: a report of them showed a "56.8% busy",
    "cpu1 100% saturated" machine without a word. It now says so, once; a cpu-clock recording
    does not, and neither does a task-clock one or a PMU's cycles."""
    from advisor.analysis import analyze
    from advisor.profile import counts_time

    switches = record(tmp_path, "switches.data", "-e", "sched:sched_switch", "-a")
    result = analyze(switches)
    assert result.profile.event == "sched:sched_switch" and result.profile.samples > 0
    assert [w for w in result.data["warnings"] if "not a CPU-time event" in w] == [
        "sched:sched_switch is not a CPU-time event: its samples count events, so the utilisation, the "
        "saturated CPUs and every share here are of those events, not of time (record cpu-clock, as "
        "`advise run` does)"]
    assert not [w for w in analyze(recording).data["warnings"] if "CPU-time" in w]
    assert [counts_time(e) for e in ("task-clock", "cpu_core/cycles/", "folded", "cache-misses",
                                     "syscalls:sys_enter_read")] == [True, True, True, False, False]


def test_no_inline_gives_the_same_samples(recording):
    assert perf_data.read(recording, inline=False).events == perf_data.read(recording).events


def test_invalid_file_is_an_input_error_with_perfs_message(tmp_path, recording):
    text = tmp_path / "text.data"
    text.write_text("hello\n")
    with pytest.raises(InputError) as err:
        perf_data.read(text)
    assert "incompatible file format" in str(err.value) and err.value.path == str(text)
    truncated = tmp_path / "truncated.data"
    truncated.write_bytes(recording.read_bytes()[:1000])
    with pytest.raises(InputError, match="perf script failed"):
        perf_data.read(truncated)
    with pytest.raises(InputError, match="cannot read perf.data"):
        perf_data.read(tmp_path / "missing.data")


def test_missing_perf_binary_is_an_environment_problem(tmp_path, monkeypatch, recording):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without perf: what such a machine has
    with pytest.raises(EnvironmentProblem, match="perf is not installed"):
        perf_data.read(recording)


def test_perf_is_killed_when_parsing_fails(recording):
    with pytest.raises(RuntimeError):
        with perf_data.perf_script_output(recording) as stdout:
            stdout.read(100)
            assert perf_children(), "perf script should be running"
            raise RuntimeError("parser blew up")
    assert perf_children() == []


def test_perf_is_killed_on_timeout(recording):
    started = time.monotonic()
    with pytest.raises(InputError, match="did not finish within"):
        with perf_data.perf_script_output(recording, timeout=0.2) as stdout:
            time.sleep(0.5)  # a parser too slow for the timeout
            stdout.read()
    assert time.monotonic() - started < 10
    assert perf_children() == []


def test_perf_started_early_is_taken_over_by_the_read_and_gives_the_same_samples(recording):
    """`advise analyze perf.data` starts perf before its imports (started_early); the read
    inside the block uses that process instead of starting another."""
    alone = perf_data.read(recording)
    with perf_data.started_early(recording):
        early = perf_children()
        assert len(early) == 1
        table = perf_data.read(str(recording))  # the same file, named another way
        assert perf_children() == []  # the early process was the one read, and it is reaped
    assert table.rows == alone.rows and table.samples == alone.samples


def test_perf_started_early_and_never_read_is_killed_also_on_an_error(recording, tmp_path):
    with perf_data.started_early(recording):
        assert len(perf_children()) == 1
    assert perf_children() == []
    with pytest.raises(KeyboardInterrupt):
        with perf_data.started_early(recording):
            raise KeyboardInterrupt
    assert perf_children() == []
    text = tmp_path / "perf.script"
    text.write_text("not a perf.data file\n")
    with perf_data.started_early(text):
        assert perf_children() == []  # only perf.data files start perf
    with perf_data.started_early(tmp_path / "absent.data"):  # read() will say what is wrong
        assert perf_children() == []


# ---- perf_spawn: perf started with os.posix_spawn ------------------------------------------

def test_a_spawned_program_gets_its_own_session_default_signals_and_a_captured_stderr():
    """What Popen(start_new_session=True, restore_signals=True) gave: Python ignores SIGPIPE, the
    program must not; stdin is /dev/null; stderr lands in the temporary file; exit status kept."""
    from advisor.parse.perf_spawn import Spawned

    script = ("read -r line </dev/stdin; echo \"stdin:${line:-empty}\"; "
              "grep -E '^SigIgn' /proc/self/status; "
              "echo \"sid:$(cut -d' ' -f6 /proc/$$/stat) pid:$$\"; echo oops >&2; exit 3")
    proc = Spawned(["/bin/sh", "-c", script])
    out = proc.stdout.read().decode()
    assert proc.wait(timeout=10) == 3 and proc.returncode == 3 and proc.poll() == 3
    assert "stdin:empty" in out
    ignored = int(out.split("SigIgn:")[1].split()[0], 16)
    assert not ignored & (1 << (13 - 1))  # SIGPIPE (13) back to its default
    sid, pid = (line for line in out.splitlines() if line.startswith("sid:")).__next__().split()
    assert sid[4:] == pid[4:] == str(proc.pid)  # its own session, led by itself
    proc.stderr.seek(0)
    assert proc.stderr.read() == b"oops\n"
    proc.stdout.close()
    proc.stderr.close()


def test_a_spawned_program_times_out_and_is_killed_with_its_group():
    from advisor.parse.perf_spawn import Spawned
    from advisor.proc import alive, kill_group

    proc = Spawned(["/bin/sh", "-c", "sleep 30 & sleep 30"])
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.2)
    assert proc.poll() is None
    kill_group(proc)
    assert proc.returncode == -9
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and subprocess.run(["pgrep", "-s", str(proc.pid)],
                                                         capture_output=True).returncode == 0:
        time.sleep(0.05)
    assert subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True).returncode == 1
    assert not alive(proc.pid)
    proc.stdout.close()
    proc.stderr.close()


def test_the_polled_pipe_hands_out_what_is_there_and_ends_at_end_of_file():
    """perf's stdout is read without blocking (PolledPipe): a read returns the bytes already
    written rather than waiting for `size` of them, a pause of the writer is waited out, and
    end of file is b"" once the writer has gone."""
    from advisor.parse.perf_spawn import Spawned

    proc = Spawned(["/bin/sh", "-c", "printf first; sleep 1.5; printf second"])
    started = time.monotonic()
    assert proc.stdout.read1(1 << 16) == b"first"
    assert time.monotonic() - started < 1.2  # did not wait for the rest
    assert proc.stdout.read(1 << 16) == b"second"  # waited for it (the pipe was empty)
    assert proc.stdout.read() == b"" and proc.stdout.read1(10) == b"" and proc.stdout.read(None) == b""
    assert proc.wait(timeout=10) == 0
    proc.stdout.close()
    assert proc.stdout.closed
    with pytest.raises(ValueError):  # as a closed file: never a read of a descriptor reused since
        proc.stdout.read1(10)
    proc.stderr.close()


def test_the_installed_advise_command_starts_perf_before_importing_re(recording):
    """The installed `advise` (bin/advise, not an entry-point wrapper, which imports `re` first):
    `re` is first imported after perf_spawn has started perf (import order, -X importtime)."""
    advise = Path(sys.executable).parent / "advise"
    if not advise.exists():
        pytest.skip("advise is not installed next to this Python (make setup installs it)")
    assert "import re" not in advise.read_text()
    done = subprocess.run([sys.executable, "-X", "importtime", str(advise), "analyze", str(recording),
                           "--format", "json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    order = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert order.index("advisor.parse.perf_spawn") < order.index("re")


def test_the_advise_program_starts_perf_before_its_imports_and_analyze_takes_it_over(recording):
    """`advise analyze perf.data`: perf is spawned before argparse, subprocess or the command line
    are imported, exactly once per time slice (analyze reads those processes), and the report is
    complete."""
    child = r"""
import json, os, sys
sys.argv = ["advise", "analyze", sys.argv[1], "--format", "json"]
from advisor.parse import perf_spawn
original = perf_spawn.Spawned.__init__
def spy(self, *args, **kwargs):
    loaded = sorted(m for m in ("argparse", "subprocess", "advisor.cli", "advisor.parse.perf_script")
                    if m in sys.modules)
    os.write(2, ("SPAWN " + json.dumps(loaded) + "\n").encode())
    original(self, *args, **kwargs)
perf_spawn.Spawned.__init__ = spy
from advisor.program import main
sys.exit(main())
"""
    reports = {}
    for slices in ("1", "3"):  # one perf, or three side by side (time slices): each before the imports
        done = subprocess.run([sys.executable, "-c", child, str(recording)], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "ADVISOR_PERF_SLICES": slices})
        assert done.returncode == 0, done.stderr
        spawns = [line for line in done.stderr.splitlines() if line.startswith("SPAWN ")]
        assert spawns == ["SPAWN []"] * int(slices)  # before any of those imports, and only then
        reports[slices] = json.loads(done.stdout)
    assert reports["1"]["profile"]["samples"] > 0
    assert reports["3"] == reports["1"]  # the same report, whichever way perf read the file


def test_the_advise_program_starts_nothing_early_for_text_or_a_missing_file(tmp_path):
    from advisor.parse import perf_spawn

    text = tmp_path / "perf.txt"
    text.write_text("not perf.data\n")
    assert perf_spawn.start_early(text) is None and perf_spawn.start_early(tmp_path / "absent") is None
    assert not perf_spawn._EARLY


def test_an_early_perf_nobody_takes_is_killed_and_its_pipe_closed(recording):
    from advisor.parse import perf_spawn

    key = perf_spawn.start_early(recording)
    (proc,) = perf_spawn._EARLY[key]
    perf_spawn.discard_early()
    assert not perf_spawn._EARLY and proc.stdout.closed and proc.poll() is not None


ADVISE_PROGRAM = [sys.executable, "-c", "import sys; from advisor.program import main; sys.exit(main())"]


def test_a_perf_data_given_as_stdin_is_read_through_this_process(recording):
    """`advise analyze /dev/stdin < perf.data` (and `-`): perf, whose own stdin is /dev/null, is
    given the file through advise's descriptor, and finds what the path itself gives."""
    expected = fold(perf_data.read(recording))
    for name in ("/dev/stdin", "-"):
        with open(recording, "rb") as stdin:
            done = subprocess.run([*ADVISE_PROGRAM, "analyze", name, "--export", "folded", "--output",
                                   str(recording.parent / "stdin.folded")], stdin=stdin, capture_output=True,
                                  text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        folded = (recording.parent / "stdin.folded").read_text().splitlines()
        assert folded == list(expected) and folded


def test_a_perf_data_through_a_pipe_is_refused_and_nothing_early_reads_it(recording):
    """perf script cannot read a perf.data from a pipe; and the early start must not have taken the
    pipe's first bytes (it did: the reader then saw text without a sample)."""
    done = subprocess.run([*ADVISE_PROGRAM, "analyze", "/dev/stdin"], input=recording.read_bytes(),
                          capture_output=True, timeout=120)
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr == (b"advise: /dev/stdin: a perf.data through a pipe: perf script reads only the "
                           b"file itself (give its path)\n")


# ---- time slices: several perf script processes side by side ---------------------------------

def _patched_copy(recording: Path, directory: Path, name: str, patch) -> Path:
    """A copy of `recording` whose bytes `patch(bytearray)` has changed (its header, here)."""
    data = bytearray(recording.read_bytes())
    patch(data)
    out = directory / name
    out.write_bytes(bytes(data))
    return out


def _u64(data, at: int) -> int:
    return int.from_bytes(data[at:at + 8], "little")


def _sample_time_section(data) -> int:
    """Offset of the SAMPLE_TIME feature's (first, last) sample times in a perf.data file."""
    features = int.from_bytes(data[72:104], "little")
    index = bin(features & ((1 << 21) - 1)).count("1")
    return _u64(data, _u64(data, 40) + _u64(data, 48) + 16 * index)


def test_time_slices_split_only_a_large_recording_or_when_asked(recording, monkeypatch):
    from advisor.parse import perf_spawn

    monkeypatch.delenv("ADVISOR_PERF_SLICES", raising=False)
    assert perf_spawn.time_slices(recording) == [None]  # small: one perf
    monkeypatch.setattr(perf_spawn, "SLICE_BYTES", 1)  # as large as there are CPUs
    cpus = min(len(os.sched_getaffinity(0)), perf_spawn.MAX_SLICES)
    assert len(perf_spawn.time_slices(recording)) == (cpus if cpus > 1 else 1)
    monkeypatch.setenv("ADVISOR_PERF_SLICES", "3")
    assert perf_spawn.time_slices(recording) == ["0%-33.33333333%", "33.33333333%-66.66666667%",
                                                 "66.66666667%-100%"]
    for wanted in ("1", "0", "x", ""):
        monkeypatch.setenv("ADVISOR_PERF_SLICES", wanted)
        monkeypatch.setattr(perf_spawn, "SLICE_BYTES", 1 << 40)
        assert perf_spawn.time_slices(recording) == [None]


def test_time_slices_only_where_perf_splits_exactly(recording, tmp_path, monkeypatch):
    """perf refuses percentages without the header's sample times, puts a sample without a time in
    every slice, and a range narrower than its nanosecond gap would overlap the next: one perf."""
    from advisor.parse import perf_spawn

    monkeypatch.setenv("ADVISOR_PERF_SLICES", "2")
    assert perf_spawn.time_slices(recording) == ["0%-50%", "50%-100%"]

    def no_sample_time_feature(data):
        data[72 + 2] &= ~(1 << 5)  # feature bit 21

    def an_event_without_time(data):
        attrs = _u64(data, 24)
        data[attrs + 24] &= ~(1 << 2)  # PERF_SAMPLE_TIME of the first event

    def one_instant(data):
        at = _sample_time_section(data)
        data[at + 8:at + 16] = data[at:at + 8]  # last sample time = first

    def a_short_header(data):
        del data[64:]

    for patch in (no_sample_time_feature, an_event_without_time, one_instant, a_short_header):
        copy = _patched_copy(recording, tmp_path, patch.__name__ + ".data", patch)
        assert perf_spawn.time_slices(copy) == [None], patch.__name__
    assert perf_spawn.time_slices(tmp_path / "absent.data") == [None]
    fifo = tmp_path / "fifo.data"
    os.mkfifo(fifo)
    looked = []
    reader = threading.Thread(target=lambda: looked.append(perf_spawn.time_slices(fifo)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert looked == [[None]]  # at once: a FIFO is not opened (that waits for a writer)
    piped = tmp_path / "piped.data"  # perf record -o -: the pipe form, no sections
    with open(piped, "wb") as out:
        done = subprocess.run(["perf", "record", "-q", "-F", "999", "-o", "-", "--", sys.executable, "-c",
                               "sum(range(10**6))"], stdout=out, stderr=subprocess.PIPE, timeout=60)
    assert done.returncode == 0 and piped.read_bytes()[:8] == b"PERFILE2", done.stderr
    assert perf_spawn.time_slices(piped) == [None]


@pytest.mark.parametrize("slices", ["2", "3"])
def test_a_read_in_time_slices_gives_what_one_perf_gives(recording, monkeypatch, slices):
    """Every sample in exactly one slice, and the rows in the order of one perf's output."""
    monkeypatch.setenv("ADVISOR_PERF_SLICES", "1")
    whole = perf_data.read(recording)
    monkeypatch.setenv("ADVISOR_PERF_SLICES", slices)
    with perf_data.started_early(recording):
        assert len(perf_children()) == int(slices)
        sliced = perf_data.read(recording)
        assert perf_children() == []
    assert list(sliced.rows.items()) == list(whole.rows.items()) and sliced.rows
    assert (sliced.events, sliced.has_period, sliced.warnings) == (whole.events, whole.has_period, whole.warnings)
    assert (sliced.time_first, sliced.time_last, sliced.source) == (whole.time_first, whole.time_last,
                                                                   whole.source)


def test_a_failing_slice_stops_every_perf_and_its_own_error_is_raised(recording, monkeypatch):
    from advisor.parse import perf_script

    monkeypatch.setenv("ADVISOR_PERF_SLICES", "3")
    real_read = perf_script.read

    def read(stream, source, *args, **kwargs):
        if "33.33333333%-66.66666667%" in source:
            raise InputError("the middle slice is broken", source, 7)
        return real_read(stream, source, *args, **kwargs)

    monkeypatch.setattr(perf_script, "read", read)
    with pytest.raises(InputError, match="the middle slice is broken") as err:
        perf_data.read(recording)
    assert err.value.path.endswith("(perf script --time 33.33333333%-66.66666667%)")
    assert perf_children() == []


def test_a_perf_that_refuses_its_time_slice_is_replaced_by_one_perf_over_the_whole_file(recording,
                                                                                       monkeypatch):
    """A perf older than percentages (4.17) says "Invalid time string": the file is then read by
    one perf, with the same result (here a real perf is given a range it refuses)."""
    from advisor.parse import perf_spawn

    monkeypatch.setenv("ADVISOR_PERF_SLICES", "1")
    whole = perf_data.read(recording)
    monkeypatch.setenv("ADVISOR_PERF_SLICES", "2")
    monkeypatch.setattr(perf_spawn, "time_slices", lambda path: ["0%-50%", "no-such-range"])
    table = perf_data.read(recording)
    assert list(table.rows.items()) == list(whole.rows.items()) and table.events == whole.events
    assert perf_children() == []
    monkeypatch.setattr(perf_spawn, "time_slices", lambda path: ["0%-50%", "50%-100%"])
    broken = recording.parent / "broken.data"  # perf fails on it sliced, and whole: its error stands
    broken.write_bytes(recording.read_bytes()[:4096])
    with pytest.raises(InputError, match="perf script"):
        perf_data.read(broken)
    assert perf_children() == []


def test_a_slice_that_warns_is_read_again_by_one_perf_for_the_warning_it_gives(recording, monkeypatch):
    """A warning names a line of perf's output and counts over all of it, which a slice cannot
    know: the file is then read by one perf. perf's own output here gives no warning, so a line
    is added to the second slice's output only (the one fake: a real perf.data whose output warns
    could not be made here); the result is one perf's, without it."""
    from advisor.parse import perf_script, perf_spawn

    monkeypatch.setenv("ADVISOR_PERF_SLICES", "1")
    whole = perf_data.read(recording)
    assert whole.warnings == []
    monkeypatch.setenv("ADVISOR_PERF_SLICES", "2")
    real_read, real_spawn, started = perf_script.read, perf_spawn.perf_script, []

    class Prefixed:
        def __init__(self, stream):
            self.stream, self.first = stream, b"\tdeadbeef a_frame_outside_a_sample ([kernel.kallsyms])\n"

        def read1(self, size=-1):
            first, self.first = self.first, b""
            return first or self.stream.read1(size)

    def read(stream, source, *args, **kwargs):
        if "--time 50%-100%" in source:
            stream = Prefixed(stream)
        return real_read(stream, source, *args, **kwargs)

    def spawn(perf, path, inline=True, time_range=None, into=None):
        started.append(time_range)
        return real_spawn(perf, path, inline, time_range, into)

    monkeypatch.setattr(perf_script, "read", read)
    monkeypatch.setattr(perf_spawn, "perf_script", spawn)
    table = perf_data.read(recording)
    assert started == ["0%-50%", "50%-100%", None]  # the slices, then one perf over the whole file
    assert list(table.rows.items()) == list(whole.rows.items()) and table.warnings == []
    assert perf_children() == []


def test_a_timeout_while_reading_slices_leaves_no_perf(recording, monkeypatch):
    monkeypatch.setenv("ADVISOR_PERF_SLICES", "2")
    with pytest.raises(InputError, match="did not finish within"):
        perf_data.read(recording, timeout=0.001)
    assert perf_children() == []


@pytest.mark.parametrize("slices", ["1", "2"])
def test_ctrl_c_at_any_moment_of_a_read_leaves_no_perf(recording, monkeypatch, slices):
    """Ctrl-C while perf starts (a KeyboardInterrupt between posix_spawn's return and the list that
    keeps the process lost it: found this way), loads symbols, writes, or its readers start."""
    import _thread

    monkeypatch.setenv("ADVISOR_PERF_SLICES", slices)
    for delay in [i / 1000 for i in range(0, 12, 2)] + [0.02, 0.04, 0.07, 0.1, 0.13]:
        timer = threading.Timer(delay, _thread.interrupt_main)
        try:
            with pytest.raises(KeyboardInterrupt):
                timer.start()
                perf_data.read(recording)
                time.sleep(5)  # the read was faster than the timer: be interrupted here
        finally:
            timer.cancel()
            timer.join()
        assert perf_children() == []


def test_absorbing_a_later_slice_adds_its_rows_after_and_leaves_its_warnings():
    from advisor.model import Frame, StackKey, StackTable

    def key(comm):
        return StackKey("cpu-clock", comm, 1, 1, 0, (Frame("main", "/bin/x", "user"),))

    first, later = StackTable("rec"), StackTable("rec (later)")
    first.add(key("a"), 2, 20)
    first.add(key("b"), 1, 10)
    first.see_time(5.0)
    first.warn("orphan frame", "rec:3: orphan")
    later.add(key("c"), 4, 40)
    later.add(key("a"), 1, 10)
    later.see_time(9.0)
    later.see_time(7.0)
    later.warn("orphan frame", "rec (later):8: orphan")
    later.warn("long line", "rec (later):9: long")
    first.absorb(later)
    assert list(first.rows.items()) == [(key("a"), [3, 30]), (key("b"), [1, 10]), (key("c"), [4, 40])]
    assert first.events == {"cpu-clock": [8, 80]} and first.has_period == {"cpu-clock": True}
    assert (first.time_first, first.time_last, first.duration_s) == (5.0, 9.0, 4.0)
    assert first.warnings == ["rec:3: orphan"]  # the later part's lines are its own: not carried
    assert later.rows == {} and first.source == "rec"


DEFERRED_THEN_HELD = r"""
import signal, time, types
from advisor import stop_signals
from advisor.stop_signals import StopSignalsHeld, Terminated, handle_as_interrupt
handle_as_interrupt()
inside_an_import = types.SimpleNamespace(f_back=None,
                                         f_code=types.SimpleNamespace(co_filename="<frozen importlib._bootstrap>"))
stop_signals._interrupt(signal.SIGTERM, inside_an_import)  # a SIGTERM that landed in an import
steps = []
try:
    with StopSignalsHeld():
        time.sleep(0.05)  # the deferred signal is looked at again 5 ms later: here
        steps.append("block ended")
except Terminated:
    print("after the block" if steps else "inside the block")
"""


def test_a_signal_deferred_past_an_import_is_still_held_by_a_block_entered_meanwhile():
    """The retry of a signal deferred past an import goes to the handler in place when it fires:
    a StopSignalsHeld block entered meanwhile holds it to its end, as it holds any other."""
    run = subprocess.run([sys.executable, "-c", DEFERRED_THEN_HELD], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "after the block"


def test_stop_signals_held_act_when_the_block_ends():
    import signal

    from advisor.stop_signals import StopSignalsHeld

    held = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = [signal.getsignal(signum) for signum in held]
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with StopSignalsHeld():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # a KeyboardInterrupt would come here without the block
            reached.append("end of the block")
    assert reached == ["end of the block"]
    assert [signal.getsignal(signum) for signum in held] == before
    with StopSignalsHeld():  # nothing caught: nothing happens
        pass
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(StopSignalsHeld().__enter__().previous))
    worker.start()
    worker.join()
    assert outcome == [{}]  # another thread: handlers are the main thread's, left alone


def test_a_held_default_sigterm_ends_the_process_when_the_block_ends():
    code = ("import os, signal, sys\n"
            "from advisor.stop_signals import StopSignalsHeld\n"
            "signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
            "with StopSignalsHeld():\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    print('inside', flush=True)\n"
            "print('after', flush=True)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == -15 and done.stdout == "inside\n"


@pytest.mark.parametrize("signum, said", [(15, "stopped by signal 15"), (2, "interrupted")])
def test_a_stop_signal_during_an_import_is_acted_on_when_it_ends(tmp_path, signum, said):
    """Python 3.11 turns an exception raised inside a class's __set_name__ into a RuntimeError: a
    SIGTERM that came while such a class was made, during the `advise` program's imports, printed
    a traceback. The handler now leaves the import system alone and acts on the signal just after
    it (SIGTERM or Ctrl-C alike): one line, 128 + the signal. (The signal is sent by the
    descriptor itself, to land there every time; the module is imported with advisor.cli.)"""
    (tmp_path / "named.py").write_text(
        "import os\n"
        "class Named:\n"
        "    def __set_name__(self, owner, name):\n"
        f"        os.kill(os.getpid(), {signum})\n"
        "        sum(range(10000))  # Python code: the handler runs here\n"
        "class Owner:\n"
        "    attribute = Named()\n"
        "print('imported', flush=True)\n")
    child = (f"import sys\nsys.path.insert(0, {str(tmp_path)!r})\n"
             "class WithCli:\n"
             "    def find_spec(self, name, path=None, target=None):\n"
             "        if name == 'advisor.cli':\n"
             "            import named\n"
             "        return None\n"
             "sys.meta_path.insert(0, WithCli())\n"
             "sys.argv = ['advise', 'rules']\n"
             "from advisor.program import main\n"
             "sys.exit(main())\n")
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (128 + signum, f"advise: {said}\n")
    assert done.stdout == "imported\n"  # the module was imported whole, then the signal acted


def _perf_reading(path: Path) -> list[str]:
    """perf processes (of anyone: an orphan's parent is init) reading `path`."""
    done = subprocess.run(["pgrep", "-f", "-x", f".*perf script -i {path}.*"], capture_output=True, text=True)
    return done.stdout.split()


def test_a_stop_signal_at_any_moment_of_advise_analyze_leaves_no_perf_and_one_line(recording):
    """SIGTERM while Python starts, perf starts early (in slices), the command line imports, or
    the samples are read: one line and 128 + 15 (or, before advise could install its handler,
    the signal's default), never a traceback, never a perf left reading the file."""
    import signal

    env = {**os.environ, "ADVISOR_PERF_SLICES": "2"}
    for delay in (0.03, 0.05, 0.07, 0.09, 0.12, 0.2, 0.4):
        proc = subprocess.Popen([*ADVISE_PROGRAM, "analyze", str(recording)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env=env)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        stderr = proc.communicate(timeout=60)[1]
        assert proc.returncode in (143, -15, 0), (delay, stderr)  # 0: it had finished
        assert "Traceback" not in stderr and stderr in ("", "advise: stopped by signal 15\n"), (delay, stderr)
        deadline = time.monotonic() + 5
        while _perf_reading(recording) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _perf_reading(recording) == [], delay


OUT_OF_FILES = r"""
import os, resource, sys
from advisor import cli
from advisor.analysis import analyze  # imported now: the limit is to meet the reading, not imports
from advisor.report import json_report
opened = len(os.listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_NOFILE, (opened + int(sys.argv[3]), resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
sys.exit(cli.main(["analyze", sys.argv[1], "--format", "json", "--output", sys.argv[2]]))
"""


def test_running_out_of_open_files_while_reading_is_one_line_and_exit_3(recording, tmp_path):
    """Too few file descriptors (ulimit -n) was an internal error (exit 70) when perf's pipe could
    not be made: a limit of the machine is exit 3, with the limit in its one line. With a few more
    descriptors each time, from none spare to enough: every run is a report or that line."""
    report = tmp_path / "report.json"
    outcomes = []
    for spare in range(0, 9):
        proc = subprocess.run([sys.executable, "-c", OUT_OF_FILES, str(recording), str(report), str(spare)],
                              capture_output=True, text=True, timeout=120)
        outcomes.append(proc.returncode)
        if proc.returncode == 3:
            assert proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
            assert proc.stderr.startswith("advise: ")  # where it met the limit: the file, or not
            assert "too many open files: this process may have " in proc.stderr
            assert "open at once (`ulimit -n`)" in proc.stderr and not report.exists()
        else:
            assert proc.returncode == 0, proc.stderr
            assert json.loads(report.read_text())["profile"]["samples"] > 0
            report.unlink()
        assert perf_children() == []
    assert outcomes[0] == 3 and outcomes[-1] == 0, outcomes


def test_a_perf_that_crashes_is_named_by_its_signal(recording, tmp_path, monkeypatch):
    """A perf killed by a signal said "exit status -11". (A perf that crashes is made here with a
    script of that name on PATH that kills itself: this machine's perf does not crash on demand.)"""
    from advisor.proc import exit_text

    fake = tmp_path / "bin" / "perf"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nkill -SEGV $$\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    with pytest.raises(InputError, match="perf script failed: killed by SIGSEGV$"):
        perf_data.read(recording)
    assert (exit_text(1), exit_text(-9), exit_text(-200)) == ("exit status 1", "killed by SIGKILL",
                                                            "killed by signal 200")
