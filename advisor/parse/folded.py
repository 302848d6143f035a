"""Folded stacks: `comm;root;...;leaf COUNT`, one stack per line.

Written by FlameGraph's stackcollapse-*.pl, inferno-collapse-*, `bcc profile -f` and bpftrace
scripts. The first element is the process name; PID, TID and CPU are unknown (-1). Frame
annotations `_[k]`, `_[j]`, `_[i]` give the frame kind and are removed from the symbol; a frame
without one has kind `unknown` (folded text does not say), `[unknown]` included. The COUNT is
taken as both the sample count and the weight: folded text does not tell samples from periods.
"""

from __future__ import annotations

import re
from typing import BinaryIO

from ..errors import InputError, excerpt
from ..model import Frame, StackKey, StackTable

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_ANNOTATIONS = {"_[k]": "kernel", "_[j]": "jit", "_[i]": "inlined"}
MAX_COUNT_DIGITS = 20  # 2**64 has 20 digits: no tool counts more samples than that


def read(stream: BinaryIO, source: str, table: StackTable | None = None,
         event: str = "folded") -> StackTable:
    """Parse folded stacks from a binary stream into `table` (a new one if None)."""
    table = table if table is not None else StackTable(source)
    frames_seen: dict[str, Frame] = {}
    for lineno, raw in enumerate(stream, 1):
        line = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw
        line = line.rstrip("\r\n")
        if lineno == 1:
            line = line.removeprefix("\ufeff")  # a byte order mark (Windows editors), not the COMM's
        if not line.strip() or line.startswith("#"):
            continue
        stack, sep, count = line.rstrip().rpartition(" ")
        if not sep or not stack or not (count.isascii() and count.isdigit()):
            reason = bad_count(line) or f"not a folded stack ('frame;frame;... COUNT'): {excerpt(line)}"
            raise InputError(reason, source, lineno)
        if len(count) > MAX_COUNT_DIGITS:  # Python refuses to read an int of over 4300 digits
            raise InputError(f"a folded stack's count of {len(count)} digits is not a number of samples",
                             source, lineno)
        names = stack.split(";")
        frames = []
        for name in names[1:]:
            frame = frames_seen.get(name)
            if frame is None:
                frame = frames_seen[name] = _frame(name)
            frames.append(frame)
        n = int(count)
        if n:
            table.add(StackKey(event, names[0], -1, -1, -1, tuple(frames)), count=n)
    return table


def _frame(name: str) -> Frame:
    kind = _ANNOTATIONS.get(name[-4:])
    if kind is not None:
        return Frame(name[:-4], "", kind)
    return Frame(name, "", "unknown")


def is_folded_line(line: str) -> bool:
    """Whether one line has the folded shape (used to sniff a file's format)."""
    stack, sep, count = line.rstrip().rpartition(" ")
    return bool(sep and stack and stack[0] not in " \t" and count.isascii() and count.isdigit())


def bad_count(line: str) -> str | None:
    """Why a line that is a folded stack but for its count (-3, 2.5, 1e3) cannot be read; None for
    any other line. A count is a number of samples: a whole number, 0 or more."""
    stack, sep, count = line.rstrip().rpartition(" ")
    if sep and ";" in stack and stack[0] not in " \t" and not count.isdigit() \
            and _NUMBER.fullmatch(count):
        return f"a folded stack's count must be a whole number of samples (0 or more), not {count}"
    return None
