"""Streaming parser of `perf script` text into a `StackTable`.

The text is read in binary chunks and decoded with ``surrogateescape`` (symbol names are
arbitrary bytes). Samples are aggregated as they stream by: memory grows with the number of
distinct stacks, never with the number of samples.

Framing is a state machine, not indentation: expect an event line, then frame lines until a
blank line (perf's normal output), or take the single frame printed on the event line itself
(recordings without ``-g``: no blank lines at all). Memoisation keeps it fast; every cache is
bounded (CACHE_BYTES) and never changes a result, only how soon it is found:

* `head_cache`: an event line without its time field -> its fields (the time is the only
  part that changes between samples of one thread; see `remember_head` for why it is sound);
* `block_cache`: the frame lines of a sample, as one string -> (stack id, its newlines);
* `tail_cache`: frame lines but the first (the leaf, which varies most) -> their frames;
* `leaf_cache`: the frame lines without the leaf's address -> as block_cache:
  a sample taken at another instruction of a function seen before on the same path;
* `frame_cache` / `symbol_cache`: one frame line / one (symbol, DSO) -> frames.

A sample that hits the first two costs a few string operations and no regex (the fast path,
`count_blocks`: in C, advisor/parse/_fast_blocks.c, where setup.py could build it, else
`py_count_blocks`, which it does step for step; `HOT_LOOP` says which runs, and
ADVISOR_PURE_PYTHON=1 picks the Python one); anything unusual goes to the line state machine,
which decides. The fast path reads every line as the state machine does, so results do not
depend on the caches, on the loop, or on where the input was cut into pieces
(tests/test_fuzz.py and tests/test_fast_blocks.py check all three). Measured figures and how
they were obtained: bench/README.md.

Decisions the checklist (tests/corpus/CHECKLIST.md) leaves open:

* The event is named without its modifiers (``cpu-clock:ppp:`` -> ``cpu-clock``,
  ``cycles:u:`` -> ``cycles``; tracepoints stay whole: ``sched:sched_switch``), as DESIGN.md
  names events and as inferno filters them: the modifiers say what was counted, not what.
* A sample whose event line is followed straight by a blank line is counted with an empty
  stack and one warning; frame lines after that blank line are orphans, dropped with a warning.
* A COMM containing an all-digit word (``Thread 2 77 [000] 1.0: ...``) is split at the *last*
  number before the CPU/time fields. Without a time field, no period is recognised and the last
  number before the event name is the TID.
* DWARF inline frames (``mix+0x1e (inlined)``) get kind ``inlined`` and the DSO of the function
  they were inlined into. perf-map-agent chains ``A->B->C`` (only in JIT maps) become three
  frames, the last two of kind ``inlined``.
* A frame line is ``ADDR SYMBOL (DSO)``; without its ``(DSO)`` (``perf script -F ip,sym``) it
  counts as a frame only when indented, so that an unindented event line can never be taken
  for one. A frame with an empty symbol (``7f1e2215d058  (/lib/libc.so)``) keeps ``''``.
* Input that is not empty but holds not one recognisable sample raises `InputError` naming the
  first line that could not be read; otherwise bad lines only produce warnings (once per kind).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from itertools import chain
from typing import BinaryIO, Callable, Iterator, NamedTuple

from ..errors import InputError, excerpt
from ..model import Frame, StackKey, StackTable

READ_BYTES = 64 << 10  # bytes asked for per read (see chunks)
CHUNK = 4 << 20  # without a blank line for this many bytes, whole lines are fed
MAX_LINE = 16 << 20  # a line longer than this is skipped with a warning
NO_SAMPLE_BYTES = 2 * MAX_LINE  # read this much without a sample, and the input is not perf script
CACHE_BYTES = 16 << 20  # each cache is emptied when it holds about this many bytes
BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark, which Windows editors put first

_HEXDIGITS = frozenset("0123456789abcdefABCDEF")
_SKIP = ()  # a line of a sample that adds no frame (srcline, malformed)

# COMM  PID/TID  [CPU]  TIME:  [PERIOD]  EVENT:  [rest]. Every quantifier is bounded so that a
# megabyte-long line cannot make the match quadratic. COMM is lazy: the regex anchors on the
# time field, so the last number before it is the TID (B1).
_EVENT_WITH_TIME = re.compile(
    r"[ \t]*(\S(?:.{0,62}?\S)?)[ \t]{1,64}"
    r"(?:(-?\d{1,10})/)?(-?\d{1,10})[ \t]{1,64}"
    r"(?:\[(\d{1,6})\][ \t]{1,64})?"
    r"(\d{1,12}\.\d{1,12}):[ \t]{1,64}"
    r"(?:(\d{1,20})[ \t]{1,64})?"
    r"([^\s:]\S{0,255}?):(?=\s|$)"
)
_EVENT_LINE = re.compile(_EVENT_WITH_TIME.pattern + r"[ \t]*")  # nothing after the event
# Without a time field (old perf, `-F` without time): COMM greedy, no period.
_EVENT_NO_TIME = re.compile(
    r"[ \t]*(\S(?:.{0,62}\S)?)[ \t]{1,64}"
    r"(?:(-?\d{1,10})/)?(-?\d{1,10})[ \t]{1,64}"
    r"(?:\[(\d{1,6})\][ \t]{1,64})?"
    r"()()([A-Za-z_][^\s:]{0,255}(?::[A-Za-z_]\w{0,63})*):(?=\s|$)"
)
# The fast path's time check: ASCII digits only (`\d` looks up every character's Unicode
# category). Stricter than the event regexes' `\d`, so a time in other digits goes the general
# way, which reads it as before.
_TIME = re.compile(r"[0-9]{1,12}\.[0-9]{1,12}")
# The usual frame line: indented, ADDR, one space, SYMBOL[+0xOFF], " (DSO)"; no parenthesis
# and no white space at either end of SYMBOL. Other lines take the general `_parse_frame`.
_PLAIN_FRAME = re.compile(r"[ \t]+([0-9a-fA-F]+) ([^\s()](?:[^()]*[^\s()])?) \(([^()]*)\)")
# An indented frame line's address and the space after it (see new_body).
_ADDRESS = re.compile(r"[ \t]+[0-9a-fA-F]+ ")
_MODIFIERS = re.compile(r"[ukhIGHpPSDWebRx]+")
_VMLINUX_TAIL = re.compile(r"vmlinux[A-Za-z0-9_.\-]*")
_USER_PSEUDO_DSOS = ("[vdso]", "[vsyscall]", "[vvar]", "[heap]", "[stack]", "[uprobes]",
                     "[vectors]", "[sigpage]", "[anon")


class _Cache(dict):
    """A dict emptied when what it holds passes CACHE_BYTES (sizes estimated by `put`), so
    that memory stays bounded whatever the input. Emptying costs only speed: 16 MiB instead
    of 32 MiB per cache was measured 2% slower on a 200 MB recording, and 14 MiB smaller."""

    def __init__(self) -> None:
        super().__init__()
        self.used = 0

    def put(self, key, value, size: int) -> None:
        self.used += size
        if self.used > CACHE_BYTES:
            self.clear()
            self.used = size
        self[key] = value


class Sample(NamedTuple):
    """One sample, for callers that need per-sample data (tracepoint payloads, times)."""

    event: str
    comm: str
    pid: int  # -1 when unknown
    tid: int  # -1 when unknown
    cpu: int  # -1 when unknown
    time: float | None
    period: int  # 0 when the line carried no period
    frames: tuple  # tuple[Frame, ...], root first
    payload: str  # tracepoint fields or other text after the event name; '' when none


def event_base(event: str) -> str:
    """`cpu-clock:ppp` -> `cpu-clock`; tracepoints (`sched:sched_switch`) are kept whole."""
    head, sep, tail = event.rpartition(":")
    if sep and _MODIFIERS.fullmatch(tail):
        return head
    return event


def is_tracepoint(event: str) -> bool:
    """A `subsystem:name` event, as opposed to `name[:modifiers]`."""
    return ":" in event_base(event)


def classify(symbol: str, dso: str) -> str:
    """Frame kind from its DSO (and the symbol for BPF programs): see CHECKLIST C5."""
    if symbol.startswith("bpf_prog_"):
        return "bpf"
    return _dso_kind(dso)


@lru_cache(maxsize=4096)
def _dso_kind(dso: str) -> str:
    if dso.startswith(("bpf_prog_", "[bpf_prog")):
        return "bpf"
    if not dso or dso == "[unknown]":
        return "unknown"
    if dso.startswith("[JIT]"):
        return "jit"
    if dso.startswith("["):
        return "user" if dso.startswith(_USER_PSEUDO_DSOS) else "kernel"
    base = dso.rpartition("/")[2]
    if base.endswith(".ko") or ".ko." in base or is_vmlinux(dso):
        return "kernel"
    if is_jit_dso(dso):
        return "jit"
    return "user"


def is_vmlinux(dso: str) -> bool:
    """`/boot/vmlinux`, `vmlinux-5.4.14-cloudflare-2020.1.11` (inferno's rule)."""
    at = dso.rfind("vmlinux")
    return at >= 0 and _VMLINUX_TAIL.fullmatch(dso, at) is not None


def is_jit_dso(dso: str) -> bool:
    """perf-map-agent / Node / JDK perf maps and jitdump `jitted-PID-N.so` files."""
    base = dso.rpartition("/")[2]
    if base.startswith("perf-") and base.endswith(".map"):
        return True
    return base.startswith("jitted-") and base.endswith(".so")


def read(stream: BinaryIO, source: str, table: StackTable | None = None,
         keep_addrs: bool = False, srclines: bool = False) -> StackTable:
    """Parse `perf script` output from a binary stream and aggregate it into `table`.

    keep_addrs: keep the address of `[unknown]` frames as the symbol `[unknown <ADDR>]`
    (needed for `--addrs` output; stacks then aggregate less). srclines: append the source
    line printed by `perf script -F +srcline` to the frame symbol (`main:burn.c:13`), as
    stackcollapse-perf.pl --srcline does; by default those lines are recognised and dropped.
    """
    table = table if table is not None else StackTable(source)
    parser = _Parser(source, table, keep_addrs=keep_addrs, srclines=srclines)
    parser.run(stream)
    parser.flush_into_table()
    return table


def iter_samples(stream: BinaryIO, source: str, keep_addrs: bool = False,
                 warnings: StackTable | None = None) -> Iterator[Sample]:
    """Yield one `Sample` per sample, in input order. Warnings go to `warnings` if given."""
    table = warnings if warnings is not None else StackTable(source)
    parser = _Parser(source, table, keep_addrs=keep_addrs, collect=True)
    for _ in parser.chunks(stream):
        batch, parser.collected = parser.collected, []
        yield from batch
    parser.finish()
    yield from parser.collected


def py_count_blocks(text: str, line_no: int, head_cache: dict, block_cache: _Cache,
                    leaf_cache: dict, counts: dict, one_block: Callable[[str, int], int]
                    ) -> tuple[int, int, float | None, float | None]:
    """Count the samples of `text` (whole samples, each followed by a blank line: the blocks of
    text.split("\n\n"), the first numbered `line_no`) that the caches of the fast path know:
    the event line without its time in `head_cache`, the frame lines in `block_cache`, or in
    `leaf_cache` without the leaf's address (as `_Parser.new_body` looks them up, and puts what
    it found there in `block_cache`). Any other block goes to `one_block(block, its line
    number)`, which returns the next block's line number. Returns (the line number after the
    text, samples counted here, the least and the greatest of their times).

    The reference for advisor.parse._fast_blocks.count_blocks, its C twin, and what runs where
    that was not built. Few calls per sample, on small strings: each call costs."""
    head_cache_get = head_cache.get
    block_cache_get = block_cache.get
    leaf_cache_get = leaf_cache.get
    counts_get = counts.get
    time_ok = _TIME.fullmatch
    address = _ADDRESS.match
    hits = 0
    time_min = time_max = None
    for block in text.split("\n\n"):
        line, _, body = block.partition("\n")
        left, _, right = line.partition(": ")
        prefix, _, time = left.rpartition(" ")
        head = head_cache_get((prefix, right))
        hit = None
        if head is not None and time_ok(time):
            hit = block_cache_get(body)
            if hit is None:
                m = address(body)
                if m is not None and body.find("\n", m.end()) >= 0:
                    hit = leaf_cache_get(body[m.end():])
                    if hit is not None:  # as new_body: the next one is found at once
                        block_cache.put(body, hit, len(body) + 100)
        if hit is None:
            line_no = one_block(block, line_no)
            continue
        t = float(time)
        if time_min is None:
            time_min = time_max = t
        elif t > time_max:
            time_max = t
        elif t < time_min:
            time_min = t
        sid, newlines = hit
        key = (head[0], sid)
        counts[key] = counts_get(key, 0) + 1
        line_no += newlines + 3  # the event line, the body's lines, the blank line
        hits += 1
    return line_no, hits, time_min, time_max


def _pick_count_blocks() -> tuple[Callable, str]:
    """The C loop if it was built (and ADVISOR_PURE_PYTHON is not set), else the reference."""
    if not os.environ.get("ADVISOR_PURE_PYTHON"):
        try:
            from ._fast_blocks import count_blocks as c_count_blocks
            return c_count_blocks, "C"
        except ImportError:
            pass
    return py_count_blocks, "Python"


#: The hot loop in use, and which one it is ("C" or "Python"; bench and tests report it).
count_blocks, HOT_LOOP = _pick_count_blocks()


class _Parser:
    """The state machine plus its caches. One instance per input."""

    def __init__(self, source: str, table: StackTable, *, keep_addrs: bool = False,
                 srclines: bool = False, collect: bool = False):
        self.source = source
        self.table = table
        self.keep_addrs = keep_addrs
        self.srclines = srclines
        self.collected: list[Sample] | None = [] if collect else None
        # caches
        self.frame_cache = _Cache()  # frame line -> frames
        self.block_cache = _Cache()  # frame lines of a sample -> (stack id, newlines in them)
        self.tail_cache = _Cache()  # frame lines but the first -> their frames
        self.leaf_cache = _Cache()  # frame lines but the leaf's address -> block_cache entry
        self.symbol_cache = _Cache()  # (symbol, dso) -> frames
        self.frame_intern: dict[Frame, Frame] = {}
        self.stack_ids: dict[tuple, int] = {}
        self.stacks: list[tuple] = []
        self.head_cache = _Cache()  # event line without its time -> meaning
        self.head_ids: dict[tuple, int] = {}  # (event, comm, pid, tid, cpu, weight) -> head id
        self.heads: list[tuple] = []
        # aggregation: (head id, stack id) -> samples; a head's weight per sample is in `heads`
        self.counts: dict[tuple[int, int], int] = {}
        self.has_period: dict[str, bool] = {}
        self.event_names: dict[str, str] = {}  # as printed -> without modifiers
        self.dwarf_inline = False  # seen a `(inlined)` frame: stacks need their DSOs filled
        # state machine
        self.in_sample = False
        self.head: tuple | None = None  # the regex groups of the current event line
        self.payload = ""
        self.parts: list[tuple] = []  # frames of the current sample, leaf first, per line
        self.head_line = 0
        # bookkeeping for errors
        self.samples = 0
        self.content_lines = 0
        self.first_bad_line: int | None = None
        self.frameless = 0
        self.first_frameless_line = 0
        self.lineno = 1  # number of the next line to be fed
        self.skipping_long_line = False

    # ------------------------------------------------------------------ input loop
    def run(self, stream: BinaryIO) -> None:
        for _ in self.chunks(stream):
            pass
        self.finish()

    def chunks(self, stream: BinaryIO) -> Iterator[None]:
        """Read the stream, feeding complete pieces to the parser; yield after each piece.

        Reads are small (READ_BYTES, with `read1` where the stream has it): from a pipe that
        returns what is there instead of waiting, so that parsing overlaps with the writer
        (perf script); and small buffers are reused by the allocator where 4 MiB ones cost
        page faults (reading and decoding 20 MB: 33 ms with 4 MiB reads, 5 ms with 64 KiB).
        Whole samples (up to the last blank line) go to `feed_blocks`; without a blank line
        for CHUNK bytes, whole lines go to `feed_lines`. Only the new bytes are searched, so
        a long line costs linear time.
        """
        read = getattr(stream, "read1", None) or stream.read
        size = min(READ_BYTES, CHUNK)
        pending = bytearray()  # never holds a blank line ("\n\n")
        last_nl = -1  # index of the last "\n" in pending
        consumed = 0
        start: bytes | None = b""  # the first bytes, until they tell whether a BOM is there
        while True:
            data = read(size)
            if not data:
                if start:  # one or two bytes of a BOM, and the end
                    data, start = start, None
                else:
                    break
            consumed += len(data)
            if consumed > NO_SAMPLE_BYTES and self.samples == 0:  # /dev/zero would never end
                raise InputError(f"no perf script sample in the first {NO_SAMPLE_BYTES >> 20} MiB "
                                 f"(is this `perf script` output?)", self.source,
                                 self.first_bad_line or self.lineno or 1)
            if isinstance(data, str):  # a text stream: tolerate it
                data = data.encode("utf-8", "surrogateescape")
            if start is not None:  # a byte order mark (a text editor's) is not the first COMM's
                start += data
                if len(start) < len(BOM) and BOM.startswith(start):
                    continue  # it may come in pieces: the result must not depend on the reads
                data, start = start.removeprefix(BOM), None
            if self.skipping_long_line:
                nl = data.find(b"\n")
                if nl < 0:
                    continue
                data = data[nl + 1:]
                self.lineno += 1
                self.skipping_long_line = False
            old = len(pending)
            pending += data
            nl = data.rfind(b"\n")
            if nl >= 0:
                last_nl = old + nl
            cut = pending.rfind(b"\n\n", max(0, old - 1))
            if cut >= 0:
                self.feed_blocks(pending[:cut].decode("utf-8", "surrogateescape"))
                del pending[:cut + 2]
                last_nl -= cut + 2
            elif len(pending) >= CHUNK:
                if last_nl >= 0:
                    self.feed_lines(pending[:last_nl].decode("utf-8", "surrogateescape")
                                    .split("\n"))
                    del pending[:last_nl + 1]
                    last_nl = -1
                if len(pending) > MAX_LINE:
                    self.warn("long line", self.lineno,
                              f"line longer than {MAX_LINE >> 20} MiB skipped")
                    self.note_bad_line(self.lineno)
                    pending.clear()
                    self.skipping_long_line = True
            yield
        if pending and not self.skipping_long_line:
            text = pending.decode("utf-8", "surrogateescape")
            if text.endswith("\n"):
                text = text[:-1]
            self.feed_lines(text.split("\n"))

    def finish(self) -> None:
        """End of input: flush a sample that had no trailing blank line (A2), check sanity."""
        if self.in_sample:
            self.end_sample()
        if self.frameless:
            self.warn("frameless", self.first_frameless_line,
                      f"{self.frameless} sample(s) without frames (event line followed by a "
                      f"blank line); counted with an empty stack")
        if self.samples == 0 and self.content_lines > 0:
            line = self.first_bad_line or 1
            raise InputError("no perf script sample found (is this `perf script` output?)",
                             self.source, line)

    # ------------------------------------------------------------------ fast path
    def feed_blocks(self, text: str) -> None:
        """Feed text made of whole samples, each followed by a blank line.

        The hot loop is `count_blocks` (in C where advisor.parse._fast_blocks was built, else
        `py_count_blocks`): per sample, two cache lookups and no regex. The event line is
        looked up without its time field (`head_cache`: the text before the space that
        precedes the time, and the text after the ": " that follows it), the frame lines as
        one string (`block_cache`). A sample that misses a cache goes to `one_block`, which
        reads it (filling the caches). Line numbers are counted from what the caches know of
        the blocks they hold: counting the text's newlines took 5% of the parse.
        """
        line_no = self.lineno  # of the block's first line
        if self.in_sample:  # the line reader began a sample: the first block goes on with it
            first, blank, text = text.partition("\n\n")
            self.slow_block(first, line_no)
            line_no += first.count("\n") + 2
            if not blank:
                self.lineno = line_no
                return
        if self.collected is not None:  # each sample is wanted whole: none is counted in bulk
            for block in text.split("\n\n"):
                line_no = self.one_block(block, line_no)
            self.lineno = line_no
            return
        self.lineno, hits, time_min, time_max = count_blocks(
            text, line_no, self.head_cache, self.block_cache, self.leaf_cache, self.counts, self.one_block)
        self.samples += hits
        self.content_lines += hits
        if hits:
            self.table.see_time(time_min)
            self.table.see_time(time_max)

    def one_block(self, block: str, line_no: int) -> int:
        """One block of `feed_blocks` (its first line numbered `line_no`) that `count_blocks` did
        not count: it is read the same way, and what missed a cache takes the way that fills it.
        Returns the next block's line number. What a hit in both caches implies (an event
        line that is no comment, frame lines, no blank line among them) is not checked again."""
        line, _, body = block.partition("\n")
        left, _, right = line.partition(": ")
        prefix, _, time = left.rpartition(" ")
        head = self.head_cache.get((prefix, right))
        hit = None
        if head is not None and _TIME.fullmatch(time):
            hit = self.block_cache.get(body)
            if hit is None and body and block[-1] != "\n":
                hit = self.new_body(body, line_no)
                if hit is None:  # not only frame lines: the line machine decides
                    self.slow_block(block, line_no)
                    return line_no + block.count("\n") + 2
        if hit is None:
            if block:
                self.general_block(block, line, line_no)
            return line_no + block.count("\n") + 2
        sid, newlines = hit
        self.samples += 1
        self.content_lines += 1
        self.table.see_time(float(time))
        if self.collected is not None:
            g = head[2]
            self.collect_sample(head[1], g[:4] + (time,) + g[5:], self.stacks[sid], "")
        else:
            key = (head[0], sid)
            self.counts[key] = self.counts.get(key, 0) + 1
        return line_no + newlines + 3  # the event line, the body, the blank line

    def general_block(self, block: str, line: str, line_no: int) -> None:
        """One block that missed a cache of the fast path (its first line `line`, numbered
        `line_no`): the regex, then the line machine."""
        m = None
        if line and len(line) < len(block):
            m = _EVENT_LINE.fullmatch(line)
        hit = None
        if m is not None and not self.in_sample and block[0] != "#" and block[-1] != "\n":
            body = block[len(line) + 1:]
            hit = self.block_cache.get(body) or self.new_body(body, line_no)
        if hit is None:
            self.slow_block(block, line_no)
            return
        g = m.groups()
        event = self.event_name(g[6])
        self.remember_head(line, m, event, g)
        self.content_lines += 1
        self.add(event, g, hit[0], "")

    def remember_head(self, line: str, m: re.Match, event: str, g: tuple) -> None:
        """Cache an event line's meaning under its text without the time field.

        Sound because the time field of a line that matches `_EVENT_LINE` is the same token
        for every line of that text around it (the one before the last one or two), so any
        line equal to this one outside that token, with a valid time in it, has the same
        groups apart from the time. The cache is only filled from real regex matches.
        """
        at, colon = m.span(5)
        if at > 1 and line[colon:colon + 2] == ": " and line[at - 1] == " " \
                and line.find(": ", 0, colon) < 0:
            key = (line[:at - 1], line[colon + 2:])  # as feed_blocks looks it up
            head = (self.head_id(event, g), event, g[:4] + (None,) + g[5:])
            self.head_cache.put(key, head, len(line) + 400)

    def head_id(self, event: str, g: tuple) -> int:
        """Small int standing for (event, comm, pid, tid, cpu, weight of a sample) in the
        aggregation keys: a sample is counted with one increment, its weight at the end."""
        key = (event, g[0], g[1], g[2], g[3], int(g[5] or 1) or 1)
        hid = self.head_ids.get(key)
        if hid is None:
            hid = self.head_ids[key] = len(self.heads)
            self.heads.append(key)
        return hid

    def new_body(self, body: str, line_no: int) -> tuple[int, int] | None:
        """(stack id, newlines) of frame lines not seen together before, as `block_cache` holds
        them; None: they need the slow path.

        Samples taken in the same code path differ mostly in the leaf, and most in the leaf's
        address: a body seen before but for that address is found in `leaf_cache`; one whose
        other lines were seen before as a clean tail (frame lines only) is put together from
        the frame and tail caches. (Trying deeper tails as well was measured: it saves little
        on real recordings.)
        """
        nl = body.find("\n")
        if nl <= 0:
            return self.parse_block_body(body, line_no)
        leaf_line, rest = body[:nl], body[nl + 1:]
        m = _ADDRESS.match(leaf_line)
        key = None if m is None else body[m.end():]  # the body but its leaf's address
        if key is not None:
            entry = self.leaf_cache.get(key)
            if entry is not None:
                self.block_cache.put(body, entry, len(body) + 100)  # same newlines: one leaf line
                return entry
        entry = None
        tail = self.tail_cache.get(rest)
        if tail is not None:
            leaf = self.frame_cache.get(leaf_line)
            if leaf is None and not self.looks_like_event(leaf_line):
                leaf = self.parse_frame_line(leaf_line)
            if leaf is not None:
                entry = self.remember_block(body, self.stack_id_of(tail + leaf))
        if entry is None:
            entry = self.parse_block_body(body, line_no)
        if entry is not None and key is not None and self.block_cache.get(body) is entry \
                and self.address_is_inert(leaf_line[m.end():]):
            self.leaf_cache.put(key, entry, len(body) + 150)  # only what block_cache holds: clean
        return entry

    def address_is_inert(self, rest: str) -> bool:
        """Whether a leaf line `WHITE SPACE, ADDR, space, rest` reads the same at any ADDR. It does
        (the frame comes from `rest`, `_parse_frame` as `_PLAIN_FRAME`) unless `keep_addrs` keeps
        the address of `[unknown]` frames, or the line holds a `:`: whether a line reads like an
        event line depends on its length (COMM is at most 64 characters), so on the address's."""
        return not self.keep_addrs and ":" not in rest

    def parse_block_body(self, body: str, line_no: int) -> tuple[int, int] | None:
        """Frame lines of one sample (the event line's number: `line_no`) -> (stack id,
        newlines), or None if the body needs the slow path.

        Each line is read as the line machine (`line`) reads it inside a sample, in the same
        order: blank, comment or event line (-> None: the line machine handles the block),
        frame, source line, malformed. Lines in `frame_cache` are frames (it holds no line
        that reads as an event line), so the result does not depend on what was seen before.
        """
        lines = body.split("\n")
        parts = list(map(self.frame_cache.get, lines))
        clean = True
        skipped = False
        if None in parts:  # lines not seen before
            for i, line in enumerate(lines):
                if parts[i] is not None:
                    continue
                if not line.strip() or line[0] == "#" or self.looks_like_event(line):
                    return None
                frames = self.parse_frame_line(line)
                if frames is None:
                    if not _is_srcline(line):
                        self.malformed(line, line_no + 1 + i)
                        clean = False
                    elif self.srclines:
                        last = next((j for j in range(i - 1, -1, -1) if parts[j] is not _SKIP),
                                    None)
                        if last is not None:
                            parts[last] = self.with_srcline(parts[last], line)
                    frames = _SKIP
                    skipped = True
                parts[i] = frames
        if skipped:
            parts = [p for p in parts if p is not _SKIP]
            if not parts:  # no frame at all: the line machine counts it as frameless
                return None
        else:
            self.remember_tail(body, parts)
        sid = self.stack_id(parts)
        if clean:
            return self.remember_block(body, sid)
        return sid, body.count("\n")

    def remember_tail(self, body: str, parts: list[tuple]) -> None:
        """Cache the frames of a clean `body` without its first line (see new_body)."""
        if len(parts) > 2:
            tail = body[body.index("\n") + 1:]
            frames = tuple(chain.from_iterable(reversed(parts[1:])))
            self.tail_cache.put(tail, frames, len(tail) + 8 * len(frames) + 150)

    def remember_block(self, body: str, sid: int) -> tuple[int, int]:
        entry = (sid, body.count("\n"))
        self.block_cache.put(body, entry, len(body) + 100)
        return entry

    # ------------------------------------------------------------------ slow path
    def slow_block(self, block: str, lineno: int) -> None:
        self.lineno = lineno
        self.feed_lines(block.split("\n"))
        self.blank(self.lineno)
        self.lineno += 1

    def feed_lines(self, lines: list[str]) -> None:
        """The line state machine. Updates self.lineno.

        Fast path for recordings without callchain: an event line whose single frame was
        seen before is counted straight away.
        """
        lineno = self.lineno
        match_event = _EVENT_WITH_TIME.match
        block_cache_get = self.block_cache.get
        event_names = self.event_names
        for line in lines:
            if not self.in_sample:
                m = match_event(line)
                if m is not None:
                    hit = block_cache_get(line[m.end():])
                    if hit is not None:
                        g = m.groups()
                        event = event_names.get(g[6])
                        # a tracepoint's text after its name is its payload, never a frame (A5)
                        if event is not None and ":" not in event:
                            self.content_lines += 1
                            self.add(event, g, hit[0], "")
                            lineno += 1
                            continue
            self.line(line, lineno)
            lineno += 1
        self.lineno = lineno

    def line(self, line: str, lineno: int) -> None:
        if self.in_sample:
            frames = self.frame_cache.get(line)
            if frames is not None:
                self.parts.append(frames)
                return
        stripped = line.strip()
        if not stripped:
            self.blank(lineno)
            return
        if line[0] == "#":
            return
        self.content_lines += 1
        if self.in_sample:
            head = self.match_event(line, True)
            if head is not None:
                self.end_sample()
                self.start_sample(head, lineno)
                return
            frames = self.parse_frame_line(line)
            if frames is not None:
                self.parts.append(frames)
            elif _is_srcline(line):
                if self.srclines and self.parts:
                    self.parts[-1] = self.with_srcline(self.parts[-1], line)
            else:
                self.malformed(line, lineno)
            return
        head = self.match_event(line, False)
        if head is not None:
            self.start_sample(head, lineno)
        elif self.parse_frame_line(line) is not None:
            self.warn("orphan", lineno, "frame line outside a sample (after a blank line) "
                      "dropped")
            self.note_bad_line(lineno)
        else:
            self.warn("unrecognised", lineno, lambda: f"unrecognised line skipped: {excerpt(stripped)}")
            self.note_bad_line(lineno)

    def blank(self, lineno: int) -> None:
        if self.in_sample:
            if not self.parts and not self.payload:
                self.frameless += 1
                if self.frameless == 1:
                    self.first_frameless_line = self.head_line
            self.end_sample()

    def match_event(self, line: str, in_sample: bool) -> tuple | None:
        """Regex groups of an event line plus the text after the event name, or None."""
        if ":" not in line:  # both regexes need one: lines of garbage skip them (/dev/urandom)
            return None
        m = _EVENT_WITH_TIME.match(line)
        if m is None:
            if in_sample and line[:1] in (" ", "\t"):
                return None  # inside a sample only an unindented line may be a time-less event
            m = _EVENT_NO_TIME.match(line)
            if m is None:
                return None
            if in_sample and line[m.end():].strip():
                return None
        return m.groups() + (line[m.end():],)

    def start_sample(self, head: tuple, lineno: int) -> None:
        rest = head[7]  # starts with white space, like an indented frame line
        self.head = head
        self.head_line = lineno
        self.parts = []
        self.payload = ""
        self.in_sample = True
        if not rest or rest.isspace():
            return
        if not is_tracepoint(head[6]):
            frames = self.frame_cache.get(rest)
            if frames is None:
                frames = self.parse_frame_line(rest)
            if frames is not None:  # a sample without callchain: its only frame (A5)
                self.in_sample = False
                sid = self.stack_id([frames])
                if not self.looks_like_event(rest):  # block_cache: only what reads as frames
                    self.remember_block(rest, sid)
                self.add(self.event_name(head[6]), head, sid, "")
                return
        self.payload = rest.strip()

    def end_sample(self) -> None:
        self.in_sample = False
        sid = self.stack_id(self.parts)
        self.parts = []
        self.add(self.event_name(self.head[6]), self.head, sid, self.payload)

    def event_name(self, printed: str) -> str:
        event = self.event_names.get(printed)
        if event is None:
            event = self.event_names[printed] = event_base(printed)
        return event

    def add(self, event: str, g: tuple, sid: int, payload: str) -> None:
        """Count one sample (g: the event line's regex groups)."""
        self.samples += 1
        if event not in self.has_period:
            self.has_period[event] = bool(g[5])
        if g[4]:
            self.table.see_time(float(g[4]))
        if self.collected is not None:
            self.collect_sample(event, g, self.stacks[sid], payload)
            return
        key = (self.head_id(event, g), sid)
        self.counts[key] = self.counts.get(key, 0) + 1

    def collect_sample(self, event: str, g: tuple, frames: tuple, payload: str) -> None:
        self.collected.append(Sample(
            event=event, comm=g[0], pid=int(g[1]) if g[1] else -1, tid=int(g[2]),
            cpu=int(g[3]) if g[3] else -1, time=float(g[4]) if g[4] else None,
            period=int(g[5]) if g[5] else 0, frames=frames, payload=payload))

    # ------------------------------------------------------------------ frames
    def parse_frame_line(self, line: str) -> tuple | None:
        """`ADDR SYMBOL[+0xOFF] (DSO)` -> tuple of Frames (several for `A->B` chains).

        Most lines are indented `ADDR SYMBOL+0xOFF (DSO)` with no parenthesis in SYMBOL or
        DSO: for those `_parse_frame` comes down to the regex `_PLAIN_FRAME`, and the
        frames depend only on the symbol without its offset and the DSO, which are cached.
        """
        m = _PLAIN_FRAME.fullmatch(line)
        if m is not None and not (self.keep_addrs and m[2].startswith("[unknown]")):
            symbol, dso = m.group(2, 3)
            head, plus, offset = symbol.rpartition("+0x")  # as _parse_frame strips it
            if plus and offset and _HEXDIGITS.issuperset(offset):
                symbol = head
            frames = self.symbol_cache.get((symbol, dso))
            if frames is None:
                frames = self.intern(_frames_of(symbol, dso, False))
                self.symbol_cache.put((symbol, dso), frames, len(symbol) + len(dso) + 300)
        else:
            frames = _parse_frame(line, self.keep_addrs)
            if frames is None:
                return None
            frames = self.intern(frames)
        if ":" in line and self.looks_like_event(line):
            return frames  # never cached: inside a sample it reads as an event line
        self.frame_cache.put(line, frames, len(line) + 100)
        return frames

    def looks_like_event(self, line: str) -> bool:
        """Whether the line machine, inside a sample, would read `line` as an event line."""
        return ":" in line and self.match_event(line, True) is not None

    def intern(self, frames: tuple) -> tuple:
        """One Frame object per distinct frame (memory); notes DWARF inline frames."""
        if frames[0].kind == "inlined":
            self.dwarf_inline = True
        intern = self.frame_intern
        return tuple(intern.setdefault(f, f) for f in frames)

    def with_srcline(self, frames: tuple, line: str) -> tuple:
        text = re.sub(r"\[.*?\]", "", line).strip()
        if not text:
            return frames
        last = frames[-1]
        last = last._replace(symbol=f"{last.symbol}:{text}")
        return frames[:-1] + (self.frame_intern.setdefault(last, last),)

    def stack_id(self, parts: list[tuple]) -> int:
        """Frames of one sample (per line, leaf first) -> id of the root-first stack."""
        if len(parts) == 1:
            frames = parts[0]
        else:
            frames = tuple(chain.from_iterable(reversed(parts)))
        return self.stack_id_of(frames)

    def stack_id_of(self, frames: tuple) -> int:
        """Root-first frames -> stack id."""
        if self.dwarf_inline and any(f.kind == "inlined" and not f.dso for f in frames):
            frames = self.fill_inlined_dsos(frames)
        sid = self.stack_ids.get(frames)
        if sid is None:
            sid = self.stack_ids[frames] = len(self.stacks)
            self.stacks.append(frames)
        return sid

    def fill_inlined_dsos(self, frames: tuple) -> tuple:
        """A DWARF inline frame takes the DSO of the function it was inlined into."""
        out = list(frames)
        dso = ""
        for i, f in enumerate(out):
            if f.kind != "inlined":
                dso = f.dso
            elif not f.dso and dso:
                g = f._replace(dso=dso)
                out[i] = self.frame_intern.setdefault(g, g)
        return tuple(out)

    # ------------------------------------------------------------------ warnings and output
    def malformed(self, line: str, lineno: int) -> None:
        self.warn("malformed frame", lineno, lambda: f"malformed frame line skipped: {excerpt(line.strip())}")

    def note_bad_line(self, lineno: int) -> None:
        if self.first_bad_line is None:
            self.first_bad_line = lineno

    def warn(self, kind: str, lineno: int, message: str | Callable[[], str]) -> None:
        """Warn once per kind. `message` may be a function, called only for the warning kept: an
        excerpt of every bad line, built and thrown away, made random input 3x slower to refuse."""
        if self.table.wants_warning(kind):
            self.table.warn(kind, f"{self.source}:{lineno}: {message() if callable(message) else message}")

    def flush_into_table(self) -> None:
        """The aggregates into the table, at the end of the input. The caches go first and each
        aggregate as it is moved, so that they are not held next to the table they become (with
        many distinct threads, the peak of a parse was here)."""
        for cache in (self.frame_cache, self.block_cache, self.tail_cache, self.leaf_cache,
                      self.symbol_cache, self.head_cache, self.head_ids, self.stack_ids):
            cache.clear()
        table = self.table
        stacks = self.stacks
        for event, has in self.has_period.items():
            table.has_period.setdefault(event, has)
        heads = self.heads
        items = list(self.counts.items())  # in their order: the table keeps first-seen order
        self.counts = {}
        for i, ((hid, sid), count) in enumerate(items):
            items[i] = None  # freed as it is moved
            event, comm, pid, tid, cpu, weight = heads[hid]
            key = StackKey(event, comm, int(pid) if pid else -1, int(tid),
                           int(cpu) if cpu else -1, stacks[sid])
            table.add(key, count, count * weight)  # rows of one key but other weights add up


def _parse_frame(line: str, keep_addrs: bool) -> tuple | None:
    """Parse one frame line; None when the line is not a frame line."""
    s = line.strip()
    parts = s.split(None, 1)
    if len(parts) != 2:
        return None
    addr, rest = parts
    if not _HEXDIGITS.issuperset(addr):
        return None
    dso = ""
    has_dso = False
    if rest.endswith(")"):
        opening = rest.rfind("(")
        if opening < 0 or rest.count(")", opening) != 1:  # parentheses inside the DSO
            opening = _balanced_open(rest)
        if opening is not None and (opening == 0 or rest[opening - 1] in " \t"):
            dso = rest[opening + 1:-1]
            rest = rest[:opening].rstrip()
            has_dso = True
    if not has_dso and line[:1] not in (" ", "\t"):
        return None  # an unindented line needs its (DSO) to count as a frame
    deleted = False
    if dso.endswith(" (deleted)"):
        dso = dso[:-10]
        deleted = True
    symbol = rest
    off = symbol.rfind("+0x")
    if off >= 0 and len(symbol) > off + 3 and _HEXDIGITS.issuperset(symbol[off + 3:]):
        symbol = symbol[:off]
    return _frames_of(symbol, dso, deleted, addr if keep_addrs else None)


def _frames_of(symbol: str, dso: str, deleted: bool, addr: str | None = None) -> tuple:
    """Frames of one frame line, its offset stripped (addr: keep it in `[unknown]`)."""
    if dso == "inlined":
        return (Frame(symbol, "", "inlined", deleted),)
    if addr is not None and symbol == "[unknown]":
        symbol = f"[unknown <{addr}>]"
    kind = classify(symbol, dso)
    if kind == "jit" and "->" in symbol:  # perf-map-agent unfolded inline chain (C8)
        names = symbol.split("->")
        return (Frame(names[0], dso, kind, deleted),) + tuple(
            Frame(name, dso, "inlined", deleted) for name in names[1:])
    return (Frame(symbol, dso, kind, deleted),)


def _balanced_open(text: str) -> int | None:
    """Index of the '(' that balances the ')' ending `text`, or None."""
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        c = text[i]
        if c == ")":
            depth += 1
        elif c == "(":
            depth -= 1
            if depth == 0:
                return i
    return None


def _is_srcline(line: str) -> bool:
    """`perf script -F +srcline` prints `  file.c:NN` (two spaces) after each frame (A8)."""
    return line[:2] == "  " and line[2:3] not in ("", " ", "\t")
