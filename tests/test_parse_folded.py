"""advisor.parse.folded: folded stacks as written by FlameGraph, inferno, bcc and bpftrace."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advisor.errors import InputError
from advisor.model import Frame, StackTable
from advisor.parse import folded, perf_script
from advisor.parse.collapse import fold

CORPUS = Path(__file__).resolve().parent / "corpus"  # a copy of ../shared/corpus: see its README.md


def parse(text: str, **kwargs) -> StackTable:
    return folded.read(io.BytesIO(text.encode()), "f.folded", **kwargs)


def test_comm_frames_and_counts():
    table = parse("nginx;main;recv;tcp_recvmsg_[k] 30\nnginx;main;recv 70\nswapper 5\n")
    rows = {(k.comm, tuple(f.symbol for f in k.frames)): v for k, v in table.rows.items()}
    assert rows == {("nginx", ("main", "recv", "tcp_recvmsg")): [30, 30],
                    ("nginx", ("main", "recv")): [70, 70], ("swapper", ()): [5, 5]}
    key = next(iter(table.rows))
    assert (key.event, key.pid, key.tid, key.cpu) == ("folded", -1, -1, -1)
    assert table.events == {"folded": [105, 105]}


def test_annotations_give_the_kind_and_leave_the_symbol():
    table = parse("java;Interpreter_[j];a/B:::f_[i];sys_read_[k];[unknown];plain 1\n")
    frames = next(iter(table.rows)).frames
    assert frames == (Frame("Interpreter", "", "jit"), Frame("a/B:::f", "", "inlined"),
                      Frame("sys_read", "", "kernel"), Frame("[unknown]", "", "unknown"),
                      Frame("plain", "", "unknown"))


def test_large_counts_comments_blank_lines_and_crlf():
    table = parse("# from bpftrace\n\na;b 123456789012345678\r\na;b 2\n")
    assert table.samples == 123456789012345680


def test_same_stack_twice_is_summed_and_event_can_be_named():
    table = parse("a;b 1\na;b 2\n", event="cpu-clock")
    assert list(table.rows.values()) == [[3, 3]] and list(table.events) == ["cpu-clock"]


@pytest.mark.parametrize("bad,line", [
    ("a;b 1\na;b\n", 2), ("a;b 1\na;b x\n", 2), ("a;b -3\n", 1), ("a;b 1.5\n", 1), (" 12\n", 1),
    ("a;b 1\n\n\x00\x01\x02\n", 3),
])
def test_bad_line_is_an_input_error_naming_file_and_line(bad, line):
    with pytest.raises(InputError) as err:
        parse(bad)
    assert (err.value.path, err.value.line) == ("f.folded", line)


@pytest.mark.parametrize("count", ["-3", "1.5", "1e3", "+7"])
def test_a_count_that_is_no_whole_number_is_named_as_such(count):
    with pytest.raises(InputError) as err:
        parse(f"a;b 1\na;c {count}\n")
    assert err.value.line == 2
    assert err.value.reason == f"a folded stack's count must be a whole number of samples (0 or more), not {count}"


def test_round_trip_of_reference_folded_output():
    """Folded output read back folds to the same lines (perl's result for a real input)."""
    path = CORPUS / "inferno" / "results" / "example-perf-stacks-collapsed.txt"
    table = folded.read(path.open("rb"), str(path))
    assert fold(table) == path.read_text().splitlines()


def test_round_trip_of_our_own_folded_output():
    text = ("a 1 1.0: 10 cycles:\n\t 1 leaf (/x)\n\t 2 root (/x)\n\n"
            "b 1 1.0: 20 cycles:\n\t 1 k ([kernel.kallsyms])\n\n")
    lines = fold(perf_script.read(io.BytesIO(text.encode()), "t"), kernel=True)
    again = parse("\n".join(lines) + "\n")
    assert fold(again, kernel=True) == lines == ["a;root;leaf 10", "b;k_[k] 20"]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2048))
def test_property_random_bytes_only_raise_input_error(data):
    try:
        folded.read(io.BytesIO(data), "fuzz")
    except InputError:
        pass


def test_a_byte_order_mark_at_the_start_is_not_part_of_the_first_comm():
    table = folded.read(io.BytesIO("\ufeffnginx;main;work 3\nnginx;main;work 2\n".encode()), "bom.folded")
    assert [(key.comm, count) for key, (count, _weight) in table.rows.items()] == [("nginx", 5)]
