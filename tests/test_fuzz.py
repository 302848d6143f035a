"""Property tests (hypothesis): no input makes advisor crash; bad input is one clear line.

Covered: the perf script, folded and format-sniffing readers (gzip included), the rule loader
on mutated rule files, recording bundles with broken JSON, and `advise analyze` run as a
subprocess. The only exception a reader may raise is advisor.errors.InputError, and its message
is one line that names the file. Generated inputs start from realistic text (perf script
samples, real rule files, a real bundle's system.json) and are then damaged, so that they get
past the first checks. The file runs in well under a minute: each property has its own
max_examples, deadlines are off (the machine is shared).
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import unittest.mock
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rich.console import Console

from advisor.analysis import analyze_evidence, load
from advisor.bundle import open_bundle
from advisor.engine.rules import load_rules, parse_rule
from advisor.errors import InputError
from advisor.parse import detect, folded, perf_script
from advisor.paths import rules_dir, samples_dir
from advisor.report import json_report, markdown, terminal

#: ADVISOR_FUZZ_SCALE=20 multiplies every max_examples (a deep run, minutes instead of seconds)
#: and draws new random examples; by default the examples are the same on every run.
SCALE = float(os.environ.get("ADVISOR_FUZZ_SCALE", "1"))
FUZZ = settings(deadline=None, max_examples=int(150 * SCALE), derandomize=SCALE == 1,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(FUZZ, max_examples=int(40 * SCALE))


def assert_one_line_naming(exc: InputError, path) -> None:
    """The message is a single line and names the file (the CLI prints it as is)."""
    message = str(exc)
    assert len(message.splitlines()) == 1, repr(message)
    assert str(path) in message, (message, str(path))


@contextmanager
def only_input_errors(path):
    """The block may succeed or raise InputError (one line, naming `path`); nothing else."""
    try:
        yield
    except InputError as exc:
        assert_one_line_naming(exc, path)


# ------------------------------------------------------------------------ perf script text
COMMS = ["nginx", "swapper", "java", "V8 WorkerThread", "Thread 2", "kworker/0:1H-kblockd",
         "perf-exec", ":-1", "ñandú", "a  b", "1234", "x" * 15]
EVENTS = ["cpu-clock:", "cpu-clock:ppp:", "cycles:u:", "instructions:", "sched:sched_switch:",
          "probe_nginx:accept:", "task-clock:"]
SYMBOLS = ["main", "tcp_sendmsg+0x1d", "nf_hook_slow", "[unknown]", "foo(int)+0x4",
           "Lcom/x/Y;.run()V", "Interpreter", "A->B->C", "(anonymous namespace)::f", "",
           "mix+0x1e", "bpf_prog_6deef7357e7b4530", "__x86_indirect_thunk_rax", "sym with space"]
DSOS = ["[kernel.kallsyms]", "/usr/sbin/nginx", "/tmp/perf-123.map", "inlined", "[unknown]",
        "/opt/burn (deleted)", "lib (x86) (deleted)", "/tmp/jitted-7-1.so", "", "[vdso]",
        "/lib/modules/6.1/kernel/net/netfilter/nf_tables.ko", None]

hexaddr = st.integers(0, 2**64 - 1).map(lambda n: f"{n:x}")


@st.composite
def event_lines(draw) -> str:
    comm = draw(st.sampled_from(COMMS))
    tid = draw(st.integers(-1, 99999))
    pid = draw(st.one_of(st.none(), st.integers(-1, 99999)))
    ids = f"{pid}/{tid}" if pid is not None else str(tid)
    cpu = draw(st.one_of(st.none(), st.integers(0, 300).map(lambda c: f"[{c:03d}]")))
    time = draw(st.one_of(st.none(), st.floats(0, 1e7, allow_nan=False).map(lambda t: f"{t:.6f}:")))
    period = draw(st.one_of(st.none(), st.integers(0, 10**12).map(str)))
    event = draw(st.sampled_from(EVENTS))
    payload = draw(st.sampled_from(["", " ", " prev_comm=a prev_pid=1 ==> next_comm=b",
                                    "\tffffffff81000001 main+0x1 ([kernel.kallsyms])"]))
    fields = [comm.rjust(draw(st.integers(0, 16))), ids, cpu, time,
              period if time else None, event]
    sep = draw(st.sampled_from([" ", "  ", "\t", "    "]))
    return sep.join(f for f in fields if f is not None) + payload


@st.composite
def frame_lines(draw) -> str:
    indent = draw(st.sampled_from(["\t", "\t    ", "        ", "", " "]))
    dso = draw(st.sampled_from(DSOS))
    line = f"{indent}{draw(hexaddr)} {draw(st.sampled_from(SYMBOLS))}"
    if dso is not None:
        line += f" ({dso})"
    return line


@st.composite
def samples(draw) -> str:
    lines = [draw(event_lines())]
    for _ in range(draw(st.integers(0, 6))):
        lines.append(draw(frame_lines()))
        if draw(st.integers(0, 9)) == 0:
            lines.append("  " + draw(st.sampled_from(["burn.c:13", "libc.so.6[27b25]", "x"])))
    return "\n".join(lines) + draw(st.sampled_from(["\n\n", "\n", "\n\n\n", "\n \n"]))


# Bytes that break parsers: line ends, separators, parentheses, NUL, invalid UTF-8, digits.
NASTY = st.sampled_from([b"\n", b"\n\n", b" ", b"\t", b":", b"(", b")", b"[", b"]", b"/", b"\x00",
                         b"\xff\xfe", b"\xc3", b"\r\n", b"#", b"0x", b"+0x1f", b"->", b"1.5:",
                         b"\x0c", b"\xe2\x80\xa8", "١٢".encode()])


@st.composite
def damaged(draw, text: bytes) -> bytes:
    """`text` with a few slices deleted, duplicated or replaced by nasty bytes."""
    data = bytearray(text)
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data)))
        span = draw(st.integers(0, 40))
        op = draw(st.sampled_from(["delete", "insert", "duplicate", "truncate"]))
        if op == "delete":
            del data[at:at + span]
        elif op == "insert":
            data[at:at] = draw(NASTY) * draw(st.integers(1, 3))
        elif op == "duplicate":
            data[at:at] = data[at:at + span]
        else:
            del data[at:]
    return bytes(data)


perf_script_texts = st.lists(samples(), min_size=0, max_size=12).map(
    lambda items: "".join(items).encode("utf-8", "surrogateescape")).flatmap(damaged)


class Pieces(io.RawIOBase):
    """A stream that returns at most the next of `sizes` bytes per read, like a pipe."""

    def __init__(self, data: bytes, sizes: list[int]):
        self.data, self.sizes, self.at, self.turn = data, sizes, 0, 0

    def readable(self) -> bool:
        return True

    def read1(self, n: int = -1) -> bytes:
        size = self.sizes[self.turn % len(self.sizes)]
        self.turn += 1
        if n is not None and n >= 0:
            size = min(size, n)
        piece = self.data[self.at:self.at + size]
        self.at += len(piece)
        return piece

    read = read1


def outcome(read) -> tuple:
    """What a parse produced, comparable between two runs."""
    try:
        table = read()
    except InputError as exc:
        return ("error", str(exc))
    return ("ok", table.rows, table.events, table.has_period, table.time_first, table.time_last,
            table.warnings)


@FUZZ
@given(perf_script_texts)
def test_perf_script_reader_never_crashes(data):
    with only_input_errors("fuzz.txt"):
        table = perf_script.read(io.BytesIO(data), "fuzz.txt")
        for event, (count, weight) in table.events.items():
            rows = [v for k, v in table.rows.items() if k.event == event]
            assert count == sum(c for c, _ in rows) and weight == sum(w for _, w in rows)
            assert count > 0 and weight >= count
        assert all(len(w.splitlines()) == 1 and w.startswith("fuzz.txt:") for w in table.warnings)


@FUZZ
@given(perf_script_texts, st.lists(st.integers(1, 300), min_size=1, max_size=8))
def test_perf_script_result_does_not_depend_on_how_the_stream_is_cut(data, sizes):
    """A pipe returns pieces of any size: the parse must not depend on where they end."""
    whole = outcome(lambda: perf_script.read(io.BytesIO(data), "cut.txt"))
    cut = outcome(lambda: perf_script.read(Pieces(data, sizes), "cut.txt"))
    assert cut == whole


def python_loop():
    """The parser's pure-Python hot loop in use within the block, whichever `count_blocks` is built."""
    return unittest.mock.patch.object(perf_script, "count_blocks", perf_script.py_count_blocks)


def without_caches(read):
    """`read()` with every cache of the parser missing every time: the line machine and the
    regexes decide everything. (The C hot loop reads the caches' dicts directly: the
    pure-Python one, which goes through `get`, stands in for it.)"""
    with unittest.mock.patch.object(perf_script._Cache, "get", lambda self, key, default=None: default), \
            python_loop():
        return outcome(read)


def with_python_loop(read):
    """`read()` with the pure-Python hot loop."""
    with python_loop():
        return outcome(read)


def with_small_caches(read):
    """`read()` with every cache emptied whenever it holds more than ~2 KB."""
    with unittest.mock.patch.object(perf_script, "CACHE_BYTES", 2000):
        return outcome(read)


@FUZZ
@given(perf_script_texts)
def test_perf_script_result_does_not_depend_on_the_caches(data):
    read = lambda: perf_script.read(io.BytesIO(data), "cache.txt")
    cached = outcome(read)
    assert without_caches(read) == cached and with_small_caches(read) == cached
    assert with_python_loop(read) == cached


#: Time fields, valid and not (float() takes some of the invalid ones, the event regex none).
TIME_TOKENS = st.sampled_from(["1.5", "27848.653733", "27848.653734", "+1.5", "1e5", "١٢.٥", "12.",
                               ".5", "1_0.5", "1234567890123.5", "00.000001", "nan", "1.5.5", "-1.5"])


@st.composite
def retimed_samples(draw) -> bytes:
    """One sample again and again with other time fields: the repeats are found by their text
    without the time (the head cache), and a time that is not one must not be."""
    head = f"{draw(st.sampled_from(COMMS))} {draw(st.integers(1, 3))}/{draw(st.integers(1, 3))} [000] "
    rest = f": {draw(st.sampled_from(['', '1001001 ', '7 ']))}{draw(st.sampled_from(EVENTS))}"
    body = "\n".join(draw(st.lists(frame_lines(), min_size=1, max_size=4)))
    times = draw(st.lists(TIME_TOKENS, min_size=1, max_size=10))
    return "".join(f"{head}{t}{rest}\n{body}\n\n" for t in times).encode("utf-8", "surrogateescape")


@FUZZ
@given(retimed_samples())
def test_repeated_samples_with_other_times_read_as_without_caches(data):
    read = lambda: perf_script.read(io.BytesIO(data), "retimed.txt")
    cached = outcome(read)
    assert without_caches(read) == cached and with_small_caches(read) == cached
    assert with_python_loop(read) == cached


@pytest.mark.parametrize("time", ["+1.5", "1e5", "١٢.٥", "12.", ".5", "1_0.5", "1234567890123.5", "nan",
                                  "1.5.5", "-1.5", "00.000001"])
def test_a_sample_seen_before_with_a_time_that_is_none_reads_as_without_caches(time):
    sample = "java 1/2 [001] {}: 7 cpu-clock: \n\tffff main (/x)\n\tfff1 start (/x)\n\n"
    data = "".join(sample.format(t) for t in ("1.5", "1.6", time, "1.7")).encode()
    read = lambda: perf_script.read(io.BytesIO(data), "time.txt")
    assert outcome(read) == without_caches(read) == with_python_loop(read)


@pytest.mark.parametrize("other", ["\tzzzz main (/x)", "ffff main (/x)", "\tffff  main (/x)",
                                   "\tfff2 main (/x)", "\t0x12 main (/x)", "\t12:34 main (/x)",
                                   "\t\u0661\u0662 main (/x)"])
@pytest.mark.parametrize("keep_addrs", [False, True])
def test_frame_lines_that_differ_from_one_seen_before_read_as_without_caches(other, keep_addrs):
    """A frame line that differs from one read before only in its address, its indentation or
    its spacing (or is no frame line at all) reads as the caches were empty: `[unknown]` frames
    keep their addresses apart with keep_addrs."""
    lines = ["\tffff main (/x)", other, "\tffff [unknown] ([unknown])", "\tfff3 [unknown] ([unknown])"]
    data = "".join(f"nginx 1/1 [000] {i}.5: 1 cpu-clock: \n{line}\n\n"
                   for i, line in enumerate(lines * 2)).encode()
    read = lambda: perf_script.read(io.BytesIO(data), "rest.txt", keep_addrs=keep_addrs)
    cached = outcome(read)
    assert cached == without_caches(read) == with_python_loop(read)
    unknown = {f.symbol for key in cached[1] for f in key.frames if f.symbol.startswith("[unknown")}
    assert unknown == ({"[unknown <ffff>]", "[unknown <fff3>]"} if keep_addrs else {"[unknown]"})


@pytest.mark.parametrize("second", [
    ["\taaaa other (/x)", "\tfff1 start (/x)", "\tfff2 init (/x)"],  # a new leaf on a known tail
    ["\taaaa other (/x)", "\tccc1 more (/x)", "\tccc2 again (/x)"],  # frame lines all new
    ["\tffff main (/x)", "\tfff1 start (/x)", "\tfff2 init (/x)"],  # the first sample again
])
def test_warnings_after_samples_read_on_the_fast_path_name_their_own_line(second):
    """The fast path counts lines from what its caches know of each block: a warning after
    samples read there names the line it is about (line 18 here, whatever the route)."""
    first = ["\tffff main (/x)", "\tfff1 start (/x)", "\tfff2 init (/x)"]
    third = ["\tbbbb third (/x)", "\tnot a frame line ((", "\tfff2 init (/x)"]
    data = "".join(f"java 1/2 [001] 1.{i}: 7 cpu-clock: \n" + "\n".join(frames) + "\n\n"
                   for i, frames in enumerate([first, second, first, third])).encode()
    read = lambda: perf_script.read(io.BytesIO(data), "lines.txt")
    cached = outcome(read)
    assert cached == without_caches(read) == with_small_caches(read) == with_python_loop(read)
    assert [w.split(": ")[0] for w in cached[-1]] == ["lines.txt:18"]


@FEW
@given(perf_script_texts)
def test_per_sample_iteration_agrees_with_the_aggregate(data):
    whole = outcome(lambda: perf_script.read(io.BytesIO(data), "it.txt"))
    try:
        items = list(perf_script.iter_samples(io.BytesIO(data), "it.txt"))
    except InputError as exc:
        assert whole == ("error", str(exc))
        return
    assert whole[0] == "ok" and len(items) == sum(c for c, _ in whole[2].values())


def test_megabyte_lines_are_skipped_or_parsed_without_crash():
    """A 3 MB line inside a sample and a 17 MB one (above MAX_LINE) between samples."""
    sample = (b"nginx 1/1 [000] 1.000001: 1 cpu-clock:\n"
              b"\tffffffff81000001 main+0x1 ([kernel.kallsyms])\n\n")
    for junk in (b"x" * (3 << 20), b"\tffff " + b"y" * (17 << 20)):
        data = sample + junk + b"\n" + sample + sample
        with only_input_errors("long.txt"):
            table = perf_script.read(io.BytesIO(data), "long.txt")
            assert table.samples >= 2


# ------------------------------------------------------------------------ folded stacks
folded_lines = st.tuples(
    st.sampled_from(COMMS), st.lists(st.sampled_from(SYMBOLS + ["f_[k]", "g_[j]", "h_[i]"]),
                                     max_size=5),
    st.integers(0, 10**15)).map(lambda t: ";".join([t[0], *t[1]]) + f" {t[2]}")
folded_texts = st.lists(folded_lines, max_size=10).map(
    lambda lines: ("\n".join(lines) + "\n").encode()).flatmap(damaged)


@FUZZ
@given(folded_texts)
def test_folded_reader_never_crashes(data):
    with only_input_errors("fuzz.folded"):
        table = folded.read(io.BytesIO(data), "fuzz.folded")
        assert all(k.pid == k.tid == k.cpu == -1 for k in table.rows)


# ------------------------------------------------------------------------ files, sniffing, gzip
def wrap_file(data: bytes, how: str) -> bytes:
    if how == "plain":
        return data
    packed = gzip.compress(data)
    if how == "gzip":
        return packed
    if how == "truncated gzip":
        return packed[:max(2, len(packed) // 2)]
    if how == "gzip magic only":
        return b"\x1f\x8b" + data
    if how == "perf.data magic":  # perf script is run on it and refuses it
        return b"PERFILE2" + data
    raise AssertionError(how)


@FEW
@given(st.one_of(perf_script_texts, folded_texts, st.binary(max_size=300)),
       st.sampled_from(["plain", "gzip", "truncated gzip", "gzip magic only"]),
       st.sampled_from(["samples.txt", "samples.gz", "perf.folded"]))
def test_read_samples_never_crashes_whatever_the_wrapping(data, how, name):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(wrap_file(data, how))
        with only_input_errors(path):
            detect.read_samples(path)


@pytest.mark.parametrize("content", [b"", b"\x00" * 1000, b"PERFILE2" + b"\x00" * 64,
                                     gzip.compress(b"PERFILE2" + b"\x00" * 64), b"\n\n\n",
                                     b"# only a comment\n", gzip.compress(b"")])
def test_read_samples_on_degenerate_files(tmp_path, content):
    path = tmp_path / "degenerate.data"
    path.write_bytes(content)
    with only_input_errors(path):
        detect.read_samples(path)


# ------------------------------------------------------------------------ rule files
RULE_FILES = sorted(rules_dir().glob("*.toml"))
VALUES = st.recursive(
    st.one_of(st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
              st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["path", "test", "says", "x"]), inner,
                                            max_size=3)),
    max_leaves=6)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(repr(v), repr(v))
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def toml_dumps(doc: dict) -> str:
    """Enough TOML for rule files: top-level keys, then one table per dict."""
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in doc.items()
             if not isinstance(v, dict)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines.append(f"[{json.dumps(k)}]")
            lines += [f"{json.dumps(k2)} = {toml_value(v2)}" for k2, v2 in v.items()]
    return "\n".join(lines) + "\n"


@st.composite
def mutated_rules(draw) -> tuple[str, str]:
    path = draw(st.sampled_from(RULE_FILES))
    doc = tomllib.loads(path.read_text())
    for _ in range(draw(st.integers(1, 3))):
        tables = [doc] + [v for v in doc.values() if isinstance(v, dict)]
        table = draw(st.sampled_from(tables))
        op = draw(st.sampled_from(["delete", "retype", "insert"]))
        if op != "insert" and table:
            key = draw(st.sampled_from(sorted(table)))
            if op == "delete":
                del table[key]
            else:
                table[key] = draw(VALUES)
        else:
            table[draw(st.sampled_from(["extra", "symbols", "model", "removable", "id", "x"]))] = \
                draw(VALUES)
    return str(path), toml_dumps(doc)


def rule_numbers(rule) -> list:
    """Every number a Rule carries into estimates and reports."""
    numbers = [rule.removable, rule.min_share_pct, rule.reported_gain_pct, *rule.removable_range]
    for pair in (rule.fraction, rule.cost_ns_per_entry, rule.reported_range_pct):
        numbers += list(pair or ())
    return numbers


@FUZZ
@given(mutated_rules())
def test_rule_loader_on_mutated_fields(rule):
    path, text = rule
    with only_input_errors(path):
        loaded = parse_rule(text, path)
        # what loads can be estimated and reported: a nan or inf could not be written as JSON
        assert all(math.isfinite(x) for x in rule_numbers(loaded)), rule_numbers(loaded)


@pytest.mark.parametrize("lines, field", [
    ("reported_gain_pct = nan", "reference.reported_gain_pct: nan"),
    ("reported_gain_pct = +inf", "reference.reported_gain_pct: inf"),
    ("reported_gain_pct = 22\nreported_range_pct = [20, -inf]", "reference.reported_range_pct.1: -inf")])
def test_a_rule_with_nan_or_inf_is_refused_naming_the_field(lines, field):
    """TOML has nan and inf, and both pass the schema's bounds (nan compares false to them)."""
    path = rules_dir() / "netfilter.toml"
    text = path.read_text()
    assert "reported_gain_pct = 22\n" in text
    with pytest.raises(InputError) as err:
        parse_rule(text.replace("reported_gain_pct = 22\n", lines + "\n", 1), str(path))
    assert f"field {field} is not a finite number" in str(err.value) and str(path) in str(err.value)


@FUZZ
@given(st.sampled_from(RULE_FILES).flatmap(
    lambda p: st.tuples(st.just(str(p)), damaged(p.read_bytes()))))
def test_rule_loader_on_damaged_text(rule):
    path, data = rule
    text = data.decode("utf-8", "replace")
    with only_input_errors(path):
        parse_rule(text, path)


def test_unmutated_rules_still_load():
    """The serializer used above is faithful: every real rule survives a round trip."""
    for path in RULE_FILES:
        parse_rule(toml_dumps(tomllib.loads(path.read_text())), str(path))


# ------------------------------------------------------------------------ recording bundles
SAMPLE = b"".join(
    f"nginx 7/7 [00{cpu}] {100 + i / 1000:.6f}: 1000000 cpu-clock:\n"
    f"\tffffffff81000001 {'nf_hook_slow' if i % 3 else 'tcp_recvmsg'}+0x1 ([kernel.kallsyms])\n"
    f"\t7f0000000001 main+0x1 (/usr/sbin/nginx)\n\n".encode()
    for cpu in (0, 1) for i in range(60))
SYSTEM = json.loads((samples_dir() / "netfilter" / "system.json").read_text())
SYSTEM["mitigations"].update(meltdown="Mitigation: PTI", mds="Mitigation: Clear CPU buffers")
META = json.loads((samples_dir() / "netfilter" / "meta.json").read_text())
COUNTERS = {"duration_s": 5, "cpu_time_pct": {"idle": [5.0, 60.0], "iowait": [0.0, 0.0], "steal": [0.0, 1.0]},
            "syscalls": {"per_sec": 1000.0, "by_name": {"read": 10, "sendto": 5}, "source": "bpf"},
            "sched": {"migrations_per_sec": 1.0, "context_switches_per_sec": 2.0},
            "softirqs": {"NET_RX": {"per_cpu_usecs": [1, 2], "per_sec": 3.0}},
            "hardirqs": {"per_sec": 1.0, "by_name": {"virtio0": 1}},
            "runqlat_usecs": {"p50": 1, "p99": 2}, "locks": {"contention_per_sec": 1.0},
            "rx_cpu_matches_worker": True}
RULES = load_rules()


def json_paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from json_paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node[:2]):
            yield from json_paths(v, prefix + (i,))


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64), st.floats(allow_nan=False),
              st.text(max_size=8), st.sampled_from(["nan", "inf", "-1", "1e400", "Mitigation: PTI",
                                                    "noqueue", "x"]),
              st.just({"error": "probe failed"})),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=5)


@st.composite
def json_documents(draw, base: dict) -> bytes:
    """`base` with values of the wrong type at random places, or broken JSON text."""
    kind = draw(st.sampled_from(["retyped"] * 6 + ["truncated", "not utf-8", "nul", "empty",
                                                   "not an object", "huge string", "not finite",
                                                   "too long"]))
    doc = json.loads(json.dumps(base))
    if kind == "retyped":
        paths = [p for p in json_paths(doc) if p]
        depth = draw(st.integers(1, 4))  # shallow places first: that is where code looks
        paths = [p for p in paths if len(p) == depth] or paths
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.sampled_from(paths))
            if not path:
                continue
            node = doc
            try:
                for p in path[:-1]:
                    node = node[p]
                node[path[-1]] = draw(JSON_VALUES)
            except (KeyError, IndexError, TypeError):
                pass  # an earlier change removed that place
        return json.dumps(doc).encode()
    text = json.dumps(doc, indent=1).encode()
    if kind == "truncated":
        return text[:draw(st.integers(0, len(text) - 1))]
    if kind == "not utf-8":
        at = draw(st.integers(0, len(text)))
        return text[:at] + b"\xff\xc3(" + text[at:]
    if kind == "nul":
        at = draw(st.integers(0, len(text)))
        return text[:at] + b"\x00" + text[at:]
    if kind == "empty":
        return b""
    if kind == "not an object":
        return json.dumps(draw(JSON_VALUES)).encode()
    if kind in ("not finite", "too long"):  # NaN or Infinity, which JSON has not; an integer of
        # more digits than Python reads (4300): both raised something other than a syntax error
        numbers = [m.span(2) for m in re.finditer(rb"(: |\n +)(-?[0-9][0-9.eE+-]*)", text)]
        start, end = draw(st.sampled_from(numbers)) if numbers else (len(text), len(text))
        number = b"9" * 5000 if kind == "too long" else draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity"]))
        return text[:start] + number + text[end:]
    return json.dumps({**doc, "host": "h" * (3 << 20)}).encode()


@st.composite
def bundles(draw) -> dict[str, bytes | None]:
    """A bundle with one damaged part (JSON file or samples); the others valid or absent."""
    parts = {"meta.json": json.dumps(META).encode(), "system.json": json.dumps(SYSTEM).encode(),
             "counters.json": json.dumps(COUNTERS).encode(), "perf.script": SAMPLE}
    for name in ("meta.json", "system.json", "counters.json"):
        if draw(st.integers(0, 3)) == 0:
            parts[name] = None
    damaged_part = draw(st.sampled_from(["system.json", "system.json", "counters.json",
                                         "counters.json", "meta.json", "samples"]))
    if damaged_part == "samples":
        del parts["perf.script"]
        kind = draw(st.sampled_from(["gz", "folded", "gz not gzip", "gz truncated"]))
        if kind == "gz":
            parts["perf.script.gz"] = gzip.compress(SAMPLE)
        elif kind == "folded":
            parts["perf.folded"] = b"nginx;main;nf_hook_slow 30\nswapper;do_idle;default_idle 10\n"
        elif kind == "gz not gzip":
            parts["perf.script.gz"] = SAMPLE
        else:
            parts["perf.script.gz"] = gzip.compress(SAMPLE)[:200]
    else:
        base = {"meta.json": META, "system.json": SYSTEM, "counters.json": COUNTERS}[damaged_part]
        parts[damaged_part] = draw(json_documents(base))
    return parts


def analyze_and_render(directory: Path) -> None:
    """What `advise analyze DIR` does with each --format, in process."""
    result = analyze_evidence(load(directory), RULES)
    json_report.render(result.data)
    markdown.render(result.data)
    terminal.render(result.data, Console(file=io.StringIO(), width=100))


@settings(FUZZ, max_examples=int(100 * SCALE), phases=[Phase.explicit, Phase.generate])
@given(bundles())
def test_bundle_with_broken_parts_never_crashes(parts):
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "bundle"
        directory.mkdir()
        for name, data in parts.items():
            if data is not None:
                (directory / name).write_bytes(data)
        try:
            analyze_and_render(directory)
        except InputError as exc:
            assert len(str(exc).splitlines()) == 1, str(exc)
            assert str(directory) in str(exc), str(exc)


IDLE = b"".join(
    f"swapper 0/0 [00{cpu}] {200 + i / 1000:.6f}: 1000000 cpu-clock:\n"
    f"\tffffffff81000009 default_idle+0x1 ([kernel.kallsyms])\n\n".encode()
    for cpu in (0, 1) for i in range(200))
PTI = {"mitigations": {"meltdown": "Mitigation: PTI"}}
#: Minimal bundles found by the fuzzer above that crash (exit 70 from the CLI) instead of
#: being analysed or refused with an InputError: (where it crashes, samples, JSON files).
#: (Each was fixed: the tests below keep them fixed.)
KNOWN_CRASHES = {
    "processes-not-a-list": ("engine/commands.py:33 TypeError", SAMPLE,
                             {"system.json": {"processes": 5}}),
    "packet-sockets-not-a-list": ("engine/commands.py:39 TypeError", SAMPLE,
                                  {"system.json": {"packet_sockets": 7}}),
    "syscalls-per-sec-not-a-number": ("engine/evaluate.py:198 ValueError", SAMPLE,
                                      {"system.json": PTI,
                                       "counters.json": {"syscalls": {"per_sec": "x"}}}),
    "hardirqs-per-sec-a-list": ("engine/evaluate.py:198 TypeError", SAMPLE,
                                {"system.json": PTI,
                                 "counters.json": {"syscalls": {"per_sec": 1},
                                                   "hardirqs": {"per_sec": [1]}}}),
    "cpu-not-an-object": ("evidence.py:29 AttributeError", SAMPLE + IDLE,
                          {"system.json": {**PTI, "cpu": [1]},
                           "counters.json": {"syscalls": {"per_sec": 1000}}}),
    "load-rate-not-a-number": ("report/__init__.py:59 ValueError (markdown, terminal)", SAMPLE,
                               {"meta.json": {"load": {"requests_per_sec": "x"}}}),
    "load-tool-not-a-string": ("report/__init__.py:60 TypeError (markdown, terminal)", SAMPLE,
                               {"meta.json": {"load": {"tool": ["wrk"]}}}),
}


@pytest.mark.parametrize("name", sorted(KNOWN_CRASHES))
def test_known_crashes_are_input_errors_or_results(tmp_path, name):
    _, samples, files = KNOWN_CRASHES[name]
    (tmp_path / "perf.script").write_bytes(samples)
    for file, doc in files.items():
        (tmp_path / file).write_text(json.dumps(doc))
    with only_input_errors(tmp_path):
        analyze_and_render(tmp_path)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_or_infinity_in_a_bundle_file_is_refused_naming_its_line(tmp_path, constant):
    """Python's json reads them; no figure can be computed from them, and a report holding one
    could not be written as JSON (it was an internal error, exit 70)."""
    (tmp_path / "perf.script").write_bytes(SAMPLE + IDLE)
    counters = json.dumps({"cpu_time_pct": {"idle": [5.0, 60.0]}}, indent=1)
    (tmp_path / "counters.json").write_text(counters.replace("60.0", constant))
    line = 1 + counters[:counters.index("60.0")].count("\n")
    with pytest.raises(InputError) as err:
        analyze_and_render(tmp_path)
    assert str(err.value) == f"{tmp_path / 'counters.json'}:{line}: invalid JSON: {constant} is not a number JSON allows"
    assert line > 1  # the constant's own line, not the file's first


def test_empty_bundle_directory_names_it(tmp_path):
    with pytest.raises(InputError) as err:
        open_bundle(tmp_path)
    assert_one_line_naming(err.value, tmp_path)


@pytest.mark.parametrize("layout, refused", [("advisor-bundle/2", True), (["x"], True), (None, False),
                                             ("advisor-bundle/1", False)])
def test_a_bundle_of_another_layout_is_refused_and_one_that_does_not_say_is_read(tmp_path, layout, refused):
    """meta.json's `format` was never read: a later advisor's layout, or anything else, was read
    as this one's, its fields possibly misread without a word. No `format` (a bundle made by hand)
    is read as this advisor's own."""
    (tmp_path / "perf.script").write_bytes(SAMPLE)
    (tmp_path / "meta.json").write_text(json.dumps({} if layout is None else {"format": layout}))
    if not refused:
        assert open_bundle(tmp_path).meta == ({} if layout is None else {"format": layout})
        return
    with pytest.raises(InputError) as err:
        open_bundle(tmp_path)
    assert str(err.value) == (f"{tmp_path / 'meta.json'}: field format: {str(layout)!r} is not a layout this "
                              f"advisor reads (advisor-bundle/1)")


def test_only_a_directory_of_bundle_files_is_taken_for_a_bundle_to_replace(tmp_path):
    """What `advise lab --record` may replace: bundle files and nothing else, meta.json among them."""
    from advisor.bundle import is_bundle

    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "perf.script").write_bytes(SAMPLE)
    assert not is_bundle(bundle)  # no meta.json
    (bundle / "meta.json").write_text("{}")
    assert is_bundle(bundle) and not is_bundle(tmp_path / "missing")
    for intruder in ("notes.txt", "subdir"):
        path = bundle / intruder
        path.mkdir() if intruder == "subdir" else path.write_text("mine")
        assert not is_bundle(bundle)
        path.rmdir() if intruder == "subdir" else path.unlink()
    (bundle / "system.json").symlink_to(tmp_path / "elsewhere.json")
    assert not is_bundle(bundle)


# ------------------------------------------------------------------------ the command line
def advise(*args, cwd):
    return subprocess.run([sys.executable, "-m", "advisor.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**os.environ, "ADVISOR_DEBUG": ""})


def make_bad(tmp: Path, kind: str) -> tuple[Path, str | None]:
    """A bad input and the `file:line` its error must name (None: the file alone)."""
    if kind == "junk text":
        path = tmp / "junk.txt"
        path.write_bytes(b"# header\nhello world\nthis is not perf output\n")
        return path, f"{path}:2"
    if kind == "truncated gzip":
        path = tmp / "rec.script.gz"
        path.write_bytes(gzip.compress(SAMPLE * 20)[:300])
        return path, None
    if kind == "bad folded line":
        path = tmp / "stacks.folded"
        path.write_bytes(b"nginx;main 3\nnginx;main 4\nnginx;main x\n")
        return path, f"{path}:3"
    if kind == "nul bytes":
        path = tmp / "zeros.txt"
        path.write_bytes(b"\x00" * 4096)
        return path, None
    bundle = tmp / "bundle"
    bundle.mkdir()
    (bundle / "perf.script").write_bytes(SAMPLE)
    if kind == "meta not json":
        (bundle / "meta.json").write_bytes(b'{"cpus": 2,\n "host": "x",\n oops}\n')
        return bundle / "meta.json", f"{bundle / 'meta.json'}:3"
    if kind == "system not utf-8":
        (bundle / "system.json").write_bytes(b'{"kernel": "\xff\xfe"}')
        return bundle / "system.json", None
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["junk text", "truncated gzip", "bad folded line", "nul bytes",
                                  "meta not json", "system not utf-8"])
def test_cli_bad_input_is_exit_2_one_line_and_no_output_file(tmp_path, kind):
    bad, where = make_bad(tmp_path, kind)
    target = bad.parent if bad.name.endswith(".json") else bad
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = advise("analyze", target, "--format", "json", "--output", out_dir / "report.json",
                  cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("advise: ") and str(bad) in lines[0], lines[0]
    if where:
        assert where + ":" in lines[0], lines[0]
    assert proc.stdout == ""
    assert list(out_dir.iterdir()) == []  # neither the report nor a temporary file


def leaf_samples(leaves: list[str], tail: list[str]) -> bytes:
    return "".join(f"java 1/2 [001] 1.{i}: 7 cpu-clock: \n" + "\n".join([leaf, *tail]) + "\n\n"
                   for i, leaf in enumerate(leaves)).encode()


@pytest.mark.parametrize("keep_addrs", [False, True])
def test_a_leaf_seen_before_at_another_address_reads_as_without_caches(keep_addrs):
    """A sample seen before but for its leaf's address is found by the rest of its text: the
    same stack, except for `[unknown]` frames with keep_addrs, whose address is their name."""
    tail = ["\tfff1 start (/x)", "\tfff2 init (/x)"]
    leaves = ["\tffff main (/x)", "\teeee main (/x)", "\tffff [unknown] ([unknown])",
              "\teeee [unknown] ([unknown])", "\tdddd [unknown] ([unknown])"]
    read = lambda: perf_script.read(io.BytesIO(leaf_samples(leaves, tail)), "leaf.txt", keep_addrs=keep_addrs)
    cached = outcome(read)
    assert cached == without_caches(read) and cached == with_small_caches(read)
    leaf_names = sorted(key.frames[-1].symbol for key in cached[1])
    assert leaf_names == (["[unknown <dddd>]", "[unknown <eeee>]", "[unknown <ffff>]", "main"]
                          if keep_addrs else ["[unknown]", "main"])


def test_a_leaf_that_reads_as_an_event_line_at_one_address_only_reads_as_without_caches():
    """Inside a sample a line that reads like an event line starts a new sample. Whether it does
    can depend on the address's length (COMM is at most 64 characters): found with a short
    address, the same text after a long one must not be taken for that frame."""
    rest = "s" * 60 + " 7 1.5: ev: (x)"
    long_leaf, short_leaf = f"\tffffffffffffffff {rest}", f"\tf {rest}"
    read = lambda: perf_script.read(io.BytesIO(leaf_samples([long_leaf, short_leaf], ["\tfff1 start (/x)"] * 3)),
                                    "event.txt")
    cached = outcome(read)
    assert cached == without_caches(read) and cached == with_small_caches(read)
    assert "ev" in cached[2] and "cpu-clock" in cached[2]  # the short one began a sample of `ev`


# ------------------------------------------------------------------------ nested too deeply
def test_a_bundle_file_nested_too_deeply_is_refused_naming_the_deepest_line(tmp_path):
    """json.loads parses arrays by recursion: 100,000 levels raised RecursionError (exit 70)."""
    (tmp_path / "perf.script").write_bytes(SAMPLE)
    deep = '{\n "note": "[[[ {{ not counted",\n "x":\n' + "[" * 100_000 + "]" * 100_000 + "\n}"
    (tmp_path / "system.json").write_text(deep)
    with pytest.raises(InputError) as err:
        analyze_and_render(tmp_path)
    assert str(err.value) == f"{tmp_path / 'system.json'}:4: invalid JSON: nested too deeply to read (deepest here)"


def test_a_rule_file_nested_too_deeply_is_refused_naming_the_deepest_line():
    path = rules_dir() / "netfilter.toml"
    text = path.read_text()
    deep = 'x = """[[[\n]]]"""  # [[[[ neither counts\ny = ' + "[" * 100_000 + "]" * 100_000 + "\n"
    line = text[:text.index("reported_gain_pct = 22\n")].count("\n") + 4  # y, after x's two lines
    with pytest.raises(InputError) as err:
        parse_rule(text.replace("reported_gain_pct = 22\n", "reported_gain_pct = 22\n" + deep, 1), str(path))
    assert str(err.value) == f"{path}:{line}: invalid TOML: nested too deeply to read (deepest here)"


# ------------------------------------------------------------------------ numbers too long to read
def test_a_number_of_more_digits_than_python_reads_is_refused_naming_its_line(tmp_path):
    """json, tomllib and int() raise a plain ValueError for an integer of over 4300 digits: it was
    an internal error (exit 70) in a bundle's JSON, a rule file and a folded stack's count."""
    (tmp_path / "perf.script").write_bytes(SAMPLE)
    (tmp_path / "counters.json").write_text('{\n "note": "' + "7" * 5000 + '",\n "x": ' + "9" * 5000 + "\n}")
    with pytest.raises(InputError) as err:
        analyze_and_render(tmp_path)
    assert str(err.value) == f"{tmp_path / 'counters.json'}:3: invalid JSON: a number too long to read"
    path = rules_dir() / "netfilter.toml"
    text = path.read_text().replace("reported_gain_pct = 22\n", "reported_gain_pct = 22\n# " + "7" * 5000
                                    + "\nz = " + "9" * 5000 + "\n", 1)
    with pytest.raises(InputError) as err:
        parse_rule(text, str(path))
    line = text[:text.index("z = ")].count("\n") + 1
    assert str(err.value) == f"{path}:{line}: invalid TOML: a number too long to read"
    folded = tmp_path / "long.folded"
    folded.write_text("a;b 3\na;b;c " + "9" * 5000 + "\n")
    with pytest.raises(InputError) as err:
        analyze_and_render(folded)
    assert str(err.value) == f"{folded}:2: a folded stack's count of 5000 digits is not a number of samples"


def test_lines_are_found_outside_strings_and_comments():
    from advisor import input_lines

    assert input_lines.json_constant('{"a": "NaN",\n "b": [1,\n -Infinity]}') == 3
    assert input_lines.json_constant('{"a": "Infinity"}') is None
    assert input_lines.json_deepest('{"a": "[[[[",\n "b": [[1]],\n "c": [[[2]]]}') == 3
    assert input_lines.toml_deepest("a = '[[[['\n# [[[[[\nb = [[1]]\n[t]\n") == 3
