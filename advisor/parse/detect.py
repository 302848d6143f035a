"""`read_samples(path)`: read a samples file whatever its format.

Formats, told apart by content, not by name: perf.data (magic `PERFILE2`, read through
`perf script`), gzip (magic 1f 8b; its content sniffed in turn), folded stacks (the first
lines that are not comments all look like `frame;frame COUNT`), else `perf script` text.
Directories (recording bundles) are read by advisor.bundle, not here.
"""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError, unreadable
from ..model import StackTable
from . import folded, perf_data, perf_script

PERF_DATA_MAGIC = b"PERFILE2"
GZIP_MAGIC = b"\x1f\x8b"
SNIFF_BYTES = 64 << 10
SNIFF_MAX = 16 << 20  # read at most this much to find a whole first line (the reader skips longer ones)
SNIFF_LINES = 20


def read_samples(path: str | os.PathLike, *, keep_addrs: bool = False) -> StackTable:
    """A `StackTable` from a perf.data, perf script text or folded file (gzip or not)."""
    path = Path(path)
    source = str(path)
    if path.is_dir():
        raise InputError("is a directory: give a samples file (a recording bundle is read "
                         "as a whole elsewhere)", source)
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise unreadable(exc, source) from None
    with f:
        magic = f.read(8)
        if f.seekable():
            f.seek(0)
            stream = f
        else:  # a pipe (`perf script | advise analyze -`): the bytes read go first
            stream = io.BufferedReader(_Prefixed(magic, f))
        if magic == PERF_DATA_MAGIC:
            if stream is not f:
                raise InputError("a perf.data through a pipe: perf script reads only the file "
                                 "itself (give its path)", source)
            f.close()
            return perf_data.read(path, keep_addrs=keep_addrs)
        if magic[:2] == GZIP_MAGIC:
            return _read_gzip(stream, source, keep_addrs)
        return _read_text(stream, source, keep_addrs)


def _read_gzip(f: BinaryIO, source: str, keep_addrs: bool) -> StackTable:
    import gzip  # here: ~1 ms of imports that a perf.data (what `advise analyze` is timed on) never needs

    try:
        with gzip.GzipFile(fileobj=f, mode="rb") as z:
            if z.peek(8)[:8] == PERF_DATA_MAGIC:
                raise InputError("a gzip-compressed perf.data: decompress it first (gunzip)",
                                 source)
            return _read_text(z, source, keep_addrs)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(f"damaged gzip file: {exc or 'truncated'}", source) from None


def _read_text(f: BinaryIO, source: str, keep_addrs: bool) -> StackTable:
    head, whole = _read_head(f)
    stream = _Prefixed(head, f)
    folded_lines, unfolded_line, unfolded_text = _sniff_folded(head, whole)
    if folded_lines and unfolded_line is None:
        return folded.read(io.BufferedReader(stream), source)
    try:
        return perf_script.read(stream, source, keep_addrs=keep_addrs)
    except InputError as exc:
        if unfolded_line is None or not exc.reason.startswith("no perf script sample found"):
            raise
        # Folded stacks with a bad line, most likely: name that line, not line 1.
        reason = folded.bad_count(unfolded_text)
        if reason is not None:
            raise InputError(reason, source, unfolded_line) from None
        if folded_lines:
            raise InputError("not a folded stack ('frame;frame;... COUNT'), and the file is not "
                             "perf script text either", source, unfolded_line) from None
        raise


def _read_head(f: BinaryIO) -> tuple[bytes, bool]:
    """The first SNIFF_BYTES, or more until they hold a whole line that is no comment (a folded
    stack 50,000 frames deep is one line of 300 KB), up to SNIFF_MAX; and whether that is the
    whole input (a read returns less than asked only at its end)."""
    head = f.read(SNIFF_BYTES)
    whole = len(head) < SNIFF_BYTES
    while not whole and len(head) < SNIFF_MAX and not _holds_a_content_line(head):
        more = f.read(SNIFF_BYTES)
        whole = len(more) < SNIFF_BYTES
        head += more
    return head, whole


def _holds_a_content_line(head: bytes) -> bool:
    return any(line.strip() and not line.startswith(b"#") for line in head.split(b"\n")[:-1])


def _sniff_folded(head: bytes, whole: bool) -> tuple[int, int | None, str]:
    """How many of the first non-comment lines (up to 20) have the folded shape before one
    does not, and the number and text of that line (None and "" if they all do). Unless `head`
    is the whole input, its last line may be cut, and is not judged."""
    lines = head.decode("utf-8", "surrogateescape").split("\n")
    if not whole:
        lines = lines[:-1]
    checked = 0
    for lineno, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        if not folded.is_folded_line(line):
            return checked, lineno, line
        checked += 1
        if checked == SNIFF_LINES:
            break
    return checked, None, ""


class _Prefixed(io.RawIOBase):
    """A binary stream: the bytes already read for sniffing, then the rest of the file."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.read_rest(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def read_rest(self, size: int) -> bytes:
        """What is there, up to `size` (read1: from a pipe, without waiting for `size` bytes)."""
        read1 = getattr(self.rest, "read1", None)
        return read1(size) if read1 is not None else self.rest.read(size)
