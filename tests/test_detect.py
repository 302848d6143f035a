"""advisor.parse.detect.read_samples: the format is told by content, not by file name."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.errors import InputError
from advisor.parse import read_samples
from advisor.parse.collapse import fold

SCRIPT = ("burn 10807   363.252372:    1001001 cpu-clock:ppp: \n"
          "\t    135d recurse+0x6d (/opt/wl/burn)\n\t    10ef main+0x5f (/opt/wl/burn)\n\n"
          "burn 10807   363.253372:    1001001 cpu-clock:ppp: \n"
          "\t  7f53389994d0 [unknown] ([unknown])\n\n")
FOLDED = "# bcc profile -f\nburn;main;recurse 2002002\nburn;tcp_sendmsg_[k] 5\n"


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_perf_script_text(tmp_path):
    table = read_samples(write(tmp_path / "samples.folded", SCRIPT.encode()))  # name is ignored
    assert table.samples == 2 and list(table.events) == ["cpu-clock"]
    table = read_samples(tmp_path / "samples.folded", keep_addrs=True)
    assert any(f.symbol == "[unknown <7f53389994d0>]" for k in table.rows for f in k.frames)


def test_folded_text(tmp_path):
    table = read_samples(write(tmp_path / "perf.script", FOLDED.encode()))
    assert list(table.events) == ["folded"] and table.samples == 2002007


def test_gzip_of_each(tmp_path):
    a = read_samples(write(tmp_path / "a", gzip.compress(SCRIPT.encode())))
    assert a.samples == 2
    b = read_samples(write(tmp_path / "b", gzip.compress(FOLDED.encode())))
    assert b.events == {"folded": [2002007, 2002007]}
    assert fold(b, kernel=True) == ["burn;main;recurse 2002002", "burn;tcp_sendmsg_[k] 5"]


def test_damaged_gzip_is_an_input_error(tmp_path):
    data = gzip.compress((SCRIPT * 2000).encode())
    with pytest.raises(InputError, match="damaged gzip"):
        read_samples(write(tmp_path / "truncated.gz", data[: len(data) // 2]))
    corrupt = bytearray(data)
    corrupt[-6] ^= 0xFF  # CRC mismatch
    with pytest.raises(InputError, match="damaged gzip"):
        read_samples(write(tmp_path / "crc.gz", bytes(corrupt)))
    with pytest.raises(InputError, match="damaged gzip"):
        read_samples(write(tmp_path / "junk.gz", b"\x1f\x8b" + b"junk" * 10))


def test_gzip_of_perf_data_is_refused(tmp_path):
    with pytest.raises(InputError, match="gzip-compressed perf.data"):
        read_samples(write(tmp_path / "p.gz", gzip.compress(b"PERFILE2" + b"\0" * 100)))


def test_perf_data_by_magic(tmp_path):
    if shutil.which("perf") is None:
        pytest.skip("perf is not installed")
    out = tmp_path / "anything.bin"
    proc = subprocess.run(["perf", "record", "-q", "-F", "499", "-g", "-o", str(out), "--",
                           sys.executable, "-c", "sum(range(3000000))"],
                          capture_output=True, timeout=60)
    if proc.returncode != 0:
        pytest.skip(f"perf record does not work here: {proc.stderr[:200]!r}")
    table = read_samples(out)
    assert table.samples > 0 and list(table.events) == ["cpu-clock"]


def test_not_samples_at_all(tmp_path):
    with pytest.raises(InputError, match="no perf script sample found"):
        read_samples(write(tmp_path / "x", b"\x00\x01garbage\n" * 100))
    with pytest.raises(InputError, match="is a directory"):
        read_samples(tmp_path)
    with pytest.raises(InputError, match="cannot read"):
        read_samples(tmp_path / "missing")
    assert read_samples(write(tmp_path / "empty", b"")).samples == 0


@pytest.mark.parametrize("text, line", [
    ("a;b -10\na;c 3\n", 1),               # the first line: nothing read as folded yet
    ("a;b 10\na;c -3\n", 2),               # within the lines read to tell the format
    ("a;b 1\n" * 40 + "a;c 2.5\n", 41),    # after them: the folded reader finds it
])
def test_a_folded_count_that_is_no_whole_number_is_named_as_such(tmp_path, text, line):
    """Not "no perf script sample found": a negative or fractional count is a folded file's bad line."""
    with pytest.raises(InputError) as err:
        read_samples(write(tmp_path / "stacks.folded", text.encode()))
    assert err.value.line == line and "count must be a whole number of samples" in err.value.reason


@pytest.mark.parametrize("before", ["", "# a comment\n\n"])
def test_a_folded_stack_longer_than_the_first_read_is_still_folded(tmp_path, before):
    """The format was told from the first 64 KiB, whose cut last line was not judged: a file whose
    first stack was longer (20,000 frames) had no line to judge, and was read as perf script."""
    deep = "web;" + ";".join(f"frame{i}" for i in range(20_000)) + " 7\n"
    assert len(deep) > 64 << 10
    table = read_samples(write(tmp_path / "deep.folded", (before + deep + "web;main 3\n").encode()))
    assert list(table.events) == ["folded"] and table.samples == 10
    assert max(len(key.frames) for key in table.rows) == 20_000


def test_folded_sniffing_needs_every_first_line_folded(tmp_path):
    # one folded-looking line followed by perf script text: read as perf script
    text = "a;b 1\n" + SCRIPT
    table = read_samples(write(tmp_path / "mixed", text.encode()))
    assert list(table.events) == ["cpu-clock"]
