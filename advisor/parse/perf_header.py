"""What the header of a perf.data file tells before perf runs: the span of its samples (to read it
in time slices) and the build-id of the kernel it was recorded on (to name perf's copy of that
kernel's symbols). Read with `os` alone: `advise analyze` starts perf before its imports.

The layout is perf's (tools/perf/util/header.h): a 104-byte struct perf_file_header (magic,
size, attr_size, the attrs, data and event_types sections, 256 feature bits), and after the data
section one {offset, size} pair per feature present, in bit order.
"""

from __future__ import annotations

import os
import stat

MAGIC = b"PERFILE2"
HEADER_BYTES = 104  # struct perf_file_header: magic, size, attr_size, 3 sections, feature bits
FEATURE_BUILD_ID = 2  # HEADER_BUILD_ID: one perf_record_header_build_id per DSO that was hit
FEATURE_SAMPLE_TIME = 21  # HEADER_SAMPLE_TIME: the times of the first and the last sample
SAMPLE_TYPE_TIME = 1 << 2  # PERF_SAMPLE_TIME in perf_event_attr.sample_type (at byte 24)
MISC_CPUMODE_MASK = 7
MISC_KERNEL = 1  # PERF_RECORD_MISC_KERNEL: the host's kernel (a guest's is another mode)
MISC_BUILD_ID_SIZE = 1 << 15  # the record says how many of its 20 bytes the build-id has
KERNEL_DSO = b"[kernel.kallsyms]"
MAX_SECTION_BYTES = 1 << 20


def is_perf_data(path: str | os.PathLike) -> bool:
    """Whether `path` is a perf.data file (a regular one: the first bytes read from a pipe would
    be lost to the reader that follows)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as handle:
            return handle.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def sample_facts(path: str | os.PathLike) -> tuple[int, int] | None:
    """(bytes of sample data, nanoseconds from the first sample to the last) from the header of
    the perf.data file `path`, when every event's samples carry their time; else None."""
    try:
        with _open_regular(path) as handle:
            header = _header(handle)
            if header is None:
                return None
            attr_size, attrs_offset, attrs_size = _u64(header, 16), _u64(header, 24), _u64(header, 32)
            if attr_size < 32 or not attrs_size or attrs_size % attr_size or attrs_size > MAX_SECTION_BYTES:
                return None
            handle.seek(attrs_offset)
            attrs = handle.read(attrs_size)
            if len(attrs) < attrs_size or any(not _u64(attrs, at + 24) & SAMPLE_TYPE_TIME
                                              for at in range(0, attrs_size, attr_size)):
                return None  # an event whose samples have no time
            times = _feature(handle, header, FEATURE_SAMPLE_TIME)
    except (OSError, ValueError, OverflowError):
        return None
    if times is None or len(times) < 16:
        return None
    first, last = _u64(times, 0), _u64(times, 8)
    if not 0 < first <= last:
        return None
    return _u64(header, 48), last - first


def kernel_build_id(path: str | os.PathLike) -> str | None:
    """The build-id (hex) of the host kernel the perf.data file `path` was recorded on, as `perf
    buildid-list` prints it for [kernel.kallsyms]; None when the header does not say."""
    try:
        with _open_regular(path) as handle:
            header = _header(handle)
            table = None if header is None else _feature(handle, header, FEATURE_BUILD_ID)
    except (OSError, ValueError, OverflowError):
        return None
    at = 0
    while table is not None and at + 40 <= len(table):  # perf_event_header, pid, build_id[24]
        misc, size = int.from_bytes(table[at + 4:at + 6], "little"), int.from_bytes(table[at + 6:at + 8], "little")
        if size < 40:
            return None  # a record shorter than its fixed part: not a table perf wrote
        name = table[at + 36:at + size].split(b"\0", 1)[0]
        if misc & MISC_CPUMODE_MASK == MISC_KERNEL and name == KERNEL_DSO:
            length = table[at + 32] if misc & MISC_BUILD_ID_SIZE else 20
            return table[at + 12:at + 12 + min(length, 20)].hex() or None
        at += size
    return None


def _open_regular(path: str | os.PathLike):
    """`path` opened for reading, if it is a regular file (opening a FIFO would wait for a
    writer, and reading it take perf's bytes)."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ValueError("not a regular file")
    return open(path, "rb")


def _header(handle) -> bytes | None:
    """The file header, or None: not perf.data, or its pipe form (no sections, no features)."""
    header = handle.read(HEADER_BYTES)
    if len(header) < HEADER_BYTES or header[:len(MAGIC)] != MAGIC or _u64(header, 8) < HEADER_BYTES:
        return None
    return header


def _feature(handle, header: bytes, feature: int) -> bytes | None:
    """The bytes of one feature section, or None when the file lacks it."""
    features = int.from_bytes(header[72:104], "little")
    if not features >> feature & 1:
        return None
    index = bin(features & ((1 << feature) - 1)).count("1")  # sections of the features before it
    handle.seek(_u64(header, 40) + _u64(header, 48) + 16 * index)
    section = handle.read(16)
    if len(section) < 16 or not 0 < _u64(section, 8) <= MAX_SECTION_BYTES:
        return None
    handle.seek(_u64(section, 0))
    return handle.read(_u64(section, 8))


def _u64(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 8], "little")
