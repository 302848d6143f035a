"""advisor.parse.perf_data on real perf.data files recorded here with `perf record`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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
