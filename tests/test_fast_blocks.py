"""The parser's hot loop in C (advisor/parse/_fast_blocks.c) against its pure-Python reference.

`count_blocks` must return what `py_count_blocks` returns, count what it counts, fill the block
cache as it does and hand the same blocks, numbered alike, to `one_block`: on the caches a real
parse fills, and on hand-made ones with the edge cases of each step (the time field, the leaf's
address, blank lines, strings of each width CPython stores: 1, 2 and 4 bytes a character).
The fuzz tests (test_fuzz.py) also compare whole parses with either loop.
"""

from __future__ import annotations

import copy
import importlib
import io
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from hypothesis import given

from advisor.model import StackTable
from advisor.parse import perf_script
from tests.test_fuzz import FUZZ, perf_script_texts, python_loop, retimed_samples

try:
    from advisor.parse._fast_blocks import count_blocks as c_count_blocks
except ImportError:  # not built: the C side of each comparison cannot run
    c_count_blocks = None

needs_c = pytest.mark.skipif(c_count_blocks is None, reason="advisor/parse/_fast_blocks.c was not built")
CAN_BUILD = (shutil.which("cc") or shutil.which("gcc")) and \
    (Path(sysconfig.get_paths()["include"]) / "Python.h").exists()


@pytest.mark.skipif(not CAN_BUILD, reason="no C compiler or no Python.h here: the package installs without it")
def test_the_c_loop_is_built_where_a_compiler_is():
    """`make setup` builds it where it can (setup.py, optional): a silent fallback would go unseen."""
    importlib.import_module("advisor.parse._fast_blocks")
    assert perf_script.HOT_LOOP == ("Python" if os.environ.get("ADVISOR_PURE_PYTHON") else "C")


class Misses:
    """A `one_block` that notes what it is handed and numbers lines as the parser does."""

    def __init__(self):
        self.seen: list[tuple[str, int]] = []

    def __call__(self, block: str, line_no: int) -> int:
        self.seen.append((block, line_no))
        return line_no + block.count("\n") + 2


def both(text, line_no, head_cache, block_cache, leaf_cache, counts=None):
    """What C returned, counted and handed to one_block; Python the same. Each side gets its
    own copy of `counts` and of `block_cache` (both fill it from the leaf cache: compared too)."""
    results, filled = [], []
    for count in (c_count_blocks, perf_script.py_count_blocks):
        mine, blocks_known, misses = dict(counts or {}), copy.copy(block_cache), Misses()
        returned = count(text, line_no, head_cache, blocks_known, leaf_cache, mine, misses)
        results.append((returned, mine, misses.seen))
        filled.append(dict(blocks_known))
    assert filled[0] == filled[1]
    return results


def filled_parser(data: bytes) -> perf_script._Parser:
    """A parser that has read `data` with the pure-Python loop: its caches as a parse fills them."""
    parser = perf_script._Parser("c.txt", StackTable("c.txt"))
    try:
        with python_loop():
            parser.run(io.BytesIO(data))
    except perf_script.InputError:
        pass  # the caches hold what was read before the error
    return parser


def read_again(data: bytes) -> None:
    """Both loops over the whole text of `data`, with the caches its parse filled."""
    parser = filled_parser(data)
    c, py = both(data.decode("utf-8", "surrogateescape"), 1, parser.head_cache, parser.block_cache,
                 parser.leaf_cache)
    assert c == py


@needs_c
@FUZZ
@given(perf_script_texts)
def test_c_and_python_loops_agree_on_the_caches_a_parse_fills(data):
    read_again(data)


@needs_c
@FUZZ
@given(retimed_samples())
def test_c_and_python_loops_agree_on_repeated_samples_with_any_time(data):
    read_again(data)


HEAD = ("java 1/2 [001]", "7 cpu-clock: ")
LEAF = "main (/x)\n\tfff1 start (/x)"


def cache(entries: dict) -> perf_script._Cache:
    """A cache of the parser's kind (count_blocks puts what the leaf cache finds in block_cache)."""
    made = perf_script._Cache()
    made.update(entries)
    return made


def caches() -> tuple[dict, perf_script._Cache, dict]:
    head_cache = {HEAD: (0, "cpu-clock", ())}
    block_cache = cache({"\tffff main (/x)\n\tfff1 start (/x)": (5, 1), "\tfff1 start (/x)": (6, 0)})
    leaf_cache = {LEAF: (5, 1)}
    return head_cache, block_cache, leaf_cache


def block(time: str = "1.5", body: str = "\tffff main (/x)\n\tfff1 start (/x)", head=HEAD) -> str:
    return f"{head[0]} {time}: {head[1]}\n{body}"


@needs_c
@pytest.mark.parametrize("time", ["1.5", "0.000001", "123456789012.123456789012", "1234567890123.5",
                                  "1.1234567890123", "+1.5", "-1.5", "1e5", "\u0661\u0662.\u0665", "12.",
                                  ".5", "1_0.5", "nan", "1.5.5", "", ".", "1.5 ", "\uff11.5"])
def test_time_fields(time):
    """A time must be [0-9]{1,12}.[0-9]{1,12} (as the parser's _TIME), read as float() reads it."""
    text = "\n\n".join([block("2.0"), block(time), block("3.0")])
    c, py = both(text, 1, *caches())
    assert c == py
    (line_no, hits, tmin, tmax), _, misses = c
    valid = perf_script._TIME.fullmatch(time) is not None
    times = [2.0, 3.0] + ([float(time)] if valid else [])
    assert line_no == 13 and (tmin, tmax) == (min(times), max(times))
    assert hits == len(times) and misses == ([] if valid else [(block(time), 5)])


@needs_c
@pytest.mark.parametrize("times", [["1.5", "1.499999999999", "1.50000000001", "0.9", "10.1", "9.99"],
                                   ["10.1", "9.99", "1.50", "1.5", "000000000002.0", "1.000000000001"],
                                   ["3.000000000000", "3.0", "2.999999999999", "3.1"],
                                   ["999999999999.999999999999", "999999999999.99999999999", "0.000000000001"]])
def test_the_least_and_greatest_times_are_those_of_their_values(times):
    """The C loop orders times by their digits and converts only the two it keeps: the same as
    min() and max() of every time's float(), whatever the number of digits."""
    for ordered in (times, times[::-1]):
        text = "\n\n".join(block(t) for t in ordered)
        c, py = both(text, 1, *caches())
        assert c == py
        (_, hits, tmin, tmax), _, _ = c
        values = [float(t) for t in ordered]
        assert hits == len(ordered) and (tmin, tmax) == (min(values), max(values))


@needs_c
@pytest.mark.parametrize("leaf", ["\tabcd main (/x)", "\t\tABCDEF0123 main (/x)", " 0 main (/x)",
                                  "abcd main (/x)", "\tabcg main (/x)", "\tabcd  main (/x)",
                                  "\t\u0661\u0662 main (/x)", "\t\uff21 main (/x)", "\t\u0130 main (/x)",
                                  "\t main (/x)", "\tabcd\tmain (/x)"])
def test_leaf_addresses(leaf):
    """Frame lines that differ from known ones in the leaf's address only are found in the leaf
    cache (white space, hex digits, one space: the parser's _ADDRESS); anything else is a miss.
    A one-line body never is found there."""
    text = "\n\n".join([block(body=f"{leaf}\n\tfff1 start (/x)"), block(body=leaf)])
    c, py = both(text, 1, *caches())
    assert c == py
    m = perf_script._ADDRESS.match(leaf)
    found = m is not None and leaf[m.end():] == "main (/x)"
    assert c[0][1] == (1 if found else 0) and len(c[2]) == (1 if found else 2)


@needs_c
@pytest.mark.parametrize("text", ["ñandú", "\u0661\u0662\u0663", "\U0001f600", "a\x00b"])
def test_strings_of_every_width(text):
    """CPython stores a string 1, 2 or 4 bytes a character, by its widest one: the C loop reads
    each, in the event line, the frame lines and the leaf cache's key."""
    head = (f"{text} 1/2 [001]", "7 cpu-clock: ")
    body = f"\tffff {text} (/x)\n\tfff1 start (/x)"
    head_cache = {head: (3, "cpu-clock", ())}
    block_cache = cache({body: (8, 1)})
    leaf_cache = {f"{text} (/x)\n\tfff1 start (/x)": (8, 1)}
    missed = block("3.5", body + "\n\tfff2 other (/x)", head)
    whole = "\n\n".join([block("1.5", body, head), block("0.5", body.replace("ffff", "abc0"), head),
                         block("2.5", body, head), missed, "", block("4.5", body, head)])
    c, py = both(whole, 10, head_cache, block_cache, leaf_cache)
    assert c == py
    assert c == ((10 + 3 * 4 + 5 + 2 + 4, 4, 0.5, 4.5), {(3, 8): 4}, [(missed, 22), ("", 27)])


@needs_c
def test_counts_add_to_what_is_there():
    counts = {(0, 5): 2 ** 70}  # past a C long: Python's ints
    c, py = both("\n\n".join([block("5.0"), block("0.25")]), 7, *caches(), counts)
    assert c == py == ((7 + 2 * 4, 2, 0.25, 5.0), {(0, 5): 2 ** 70 + 2}, [])


@needs_c
@pytest.mark.parametrize("text", ["", "\n", "\n\n", "\n\n\n", "x\n\n\n\ny", block() + "\n\n", "\n\n" + block(),
                                  block() + "\n\n\n" + block(), "# comment\n\n" + block()])
def test_blank_lines_cut_blocks_as_split_does(text):
    c, py = both(text, 1, *caches())
    assert c == py
    assert [b for b, _ in c[2]] == [b for b in text.split("\n\n") if b != block()]


@needs_c
def test_what_one_block_raises_goes_through():
    def refuse(block, line_no):
        raise KeyboardInterrupt

    for count in (c_count_blocks, perf_script.py_count_blocks):
        with pytest.raises(KeyboardInterrupt):
            count(block() + "\n\nmiss", 1, *caches(), {}, refuse)


@needs_c
def test_wrong_shapes_are_type_errors_not_crashes():
    head_cache, block_cache, leaf_cache = caches()
    with pytest.raises(TypeError, match="head_cache"):
        c_count_blocks(block(), 0, {HEAD: "x"}, block_cache, leaf_cache, {}, Misses())
    with pytest.raises(TypeError, match="block_cache"):
        c_count_blocks(block(), 0, head_cache, {k: 5 for k in block_cache}, leaf_cache, {}, Misses())
    with pytest.raises(AttributeError, match="put"):  # a plain dict: the leaf cache's find is put there
        c_count_blocks(block(body="\tabcd main (/x)\n\tfff1 start (/x)"), 0, head_cache,
                       dict(block_cache), leaf_cache, {}, Misses())
    with pytest.raises(TypeError):
        c_count_blocks([block()], 0, head_cache, block_cache, leaf_cache, {}, Misses())
    with pytest.raises(ValueError, match="one dict"):  # put() into the block cache could free a leaf entry
        c_count_blocks(block(), 0, head_cache, block_cache, block_cache, {}, Misses())
    with pytest.raises(TypeError):  # one_block must return the next line number
        c_count_blocks("miss", 0, head_cache, block_cache, leaf_cache, {}, lambda block, line_no: "x")


@pytest.mark.parametrize("pure", [False, True])
def test_version_says_which_loop_reads_perf_script_text(pure):
    """ADVISOR_PURE_PYTHON=1 picks the pure-Python loop, and `advise --version` says which runs."""
    env = {**os.environ, "ADVISOR_PURE_PYTHON": "1"} if pure else \
        {k: v for k, v in os.environ.items() if k != "ADVISOR_PURE_PYTHON"}
    run = subprocess.run([sys.executable, "-m", "advisor.cli", "--version"], capture_output=True, text=True,
                         timeout=60, env=env)
    assert run.returncode == 0, run.stderr
    built = c_count_blocks is not None
    assert run.stdout.endswith(f"(perf script parser: {'C' if built and not pure else 'Python'} loop)\n")
