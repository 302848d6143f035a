"""Give `perf script` a regular file of kernel symbols in place of /proc/kallsyms, when that file
is what /proc/kallsyms would say.

perf symbolises a recording of the running kernel with /proc/kallsyms, which it reads three
times (the symbols, then `_text` and the kernel's end). The kernel writes that file afresh on
every read: ~55 ms of system time here for 122,000 symbols, a sixth of `perf script` on a
5.9 MB recording (0.40 -> 0.34 s with `--kallsyms`, 16 ABBA rounds). `perf record` keeps a copy
in its build-id cache (~/.debug/[kernel.kallsyms]/<build-id>/kallsyms), which perf reads itself
for a recording of another kernel; reading it costs a file read.

perf's own choice (dso__load_kernel_sym and dso__find_kallsyms in tools/perf/util/symbol.c) is,
in order: a vmlinux (the build-id cache's, or one on its search path), then a cached kcore, then
/proc/kallsyms for the running kernel. So the copy is given only when perf would read
/proc/kallsyms and the copy says the same:
- the recording's kernel is the running one (same build-id), and perf has no vmlinux, no kcore
  (cached, or /proc/kcore it could read) and no configuration file of its own to go by;
- the copy has the running kernel's addresses (it begins as /proc/kallsyms does, up to the
  `_text` line: the same kernel at the same KASLR offset has the same core symbols);
- no module is loaded, and the copy has no module's symbols: the symbols of modules cannot be
  compared without reading /proc/kallsyms, the very cost. (Its last lines may name pseudo-
  modules, [bpf] programs or [__builtin__ftrace] trampolines: perf finds no map for them in
  /proc/modules and drops them, from either file.)
Anything else, and perf reads /proc/kallsyms as it always does. Read with `os` alone: `advise
analyze` starts perf before its imports.
"""

from __future__ import annotations

import os

from .perf_header import kernel_build_id

NT_GNU_BUILD_ID = 3
PSEUDO_MODULES = (b"[bpf]", b"[__builtin__ftrace]", b"[__builtin__kprobes]")
HEAD_BYTES = 1 << 16  # of each at most, read from the start up to the kernel's `_text` line
TAIL_BYTES = 1 << 16  # of the copy, read from its end for module lines (pseudo-modules are few)
#: perf's search path for a vmlinux (vmlinux_path__init), `{}` the kernel release; "vmlinux" is
#: relative to perf's working directory, which is ours.
VMLINUX_PATHS = ("vmlinux", "/boot/vmlinux", "/boot/vmlinux-{}", "/usr/lib/debug/boot/vmlinux-{}",
                 "/lib/modules/{}/build/vmlinux", "/usr/lib/debug/lib/modules/{}/vmlinux",
                 "/usr/lib/debug/boot/vmlinux-{}.debug")


def kallsyms_file(perf_data: str | os.PathLike, root: str = "/") -> str | None:
    """The build-id cache's copy of /proc/kallsyms to give `perf script --kallsyms` for
    `perf_data`, or None to let perf read /proc/kallsyms. `root` stands for / (tests)."""
    build_id = kernel_build_id(perf_data)
    if build_id is None or build_id != running_build_id(_at(root, "/sys/kernel/notes")):
        return None
    cache = _build_id_dir()
    if cache is None or _perf_configured(root) or _readable(_at(root, "/proc/kcore")):
        return None
    release = os.uname().release
    vmlinux = [_at(root, p.format(release)) if p.startswith("/") else p for p in VMLINUX_PATHS]
    vmlinux += [os.path.join(cache, ".build-id", build_id[:2], build_id[2:], name) for name in ("elf", "debug")]
    if os.path.lexists(os.path.join(cache, "[kernel.kcore]", build_id)) \
            or any(os.path.lexists(path) for path in vmlinux):
        return None
    copy = os.path.join(cache, "[kernel.kallsyms]", build_id, "kallsyms")
    if _modules_loaded(_at(root, "/proc/modules")) or not _same_start(copy, _at(root, "/proc/kallsyms")) \
            or _has_module_lines(copy):
        return None
    return copy


def running_build_id(notes: str = "/sys/kernel/notes") -> str | None:
    """The running kernel's build-id (hex), from its ELF notes."""
    try:
        with open(notes, "rb") as handle:
            data = handle.read(1 << 16)
    except OSError:
        return None
    at = 0
    while at + 12 <= len(data):
        name_size, desc_size, kind = (int.from_bytes(data[at + i:at + i + 4], "little") for i in (0, 4, 8))
        name_at = at + 12
        desc_at = name_at + (name_size + 3) // 4 * 4
        if kind == NT_GNU_BUILD_ID and data[name_at:name_at + name_size] == b"GNU\0":
            return data[desc_at:desc_at + desc_size].hex() or None
        at = desc_at + (desc_size + 3) // 4 * 4
    return None


def _build_id_dir() -> str | None:
    """perf's build-id cache: ~/.debug. None where perf may look elsewhere (its environment)."""
    home = os.environ.get("HOME")
    if not home or "PERF_BUILDID_DIR" in os.environ:
        return None
    return os.path.join(home, ".debug")


def _perf_configured(root: str) -> bool:
    """A perf configuration file may name a vmlinux, a kallsyms or a cache elsewhere."""
    if os.environ.get("PERF_CONFIG") is not None:
        return True
    home = os.environ.get("HOME", "")
    return any(os.path.lexists(p) for p in (_at(root, "/etc/perfconfig"), os.path.join(home, ".perfconfig")))


def _readable(path: str) -> bool:
    try:
        os.close(os.open(path, os.O_RDONLY))
    except OSError:
        return False
    return True


def _modules_loaded(path: str) -> bool:
    """Whether /proc/modules lists a module (it is absent from a kernel without modules); a
    file that cannot be read counts as yes."""
    try:
        with open(path, "rb") as handle:
            return bool(handle.read(1))
    except FileNotFoundError:
        return False
    except OSError:
        return True


def _same_start(copy: str, live: str) -> bool:
    """Whether the copy begins as /proc/kallsyms does, up to a `_text` line with a real address
    (zeros mean that addresses are hidden from us: kptr_restrict). Some kernels list per-CPU
    variables at address 0 first: the kernel's text shows where KASLR put the kernel."""
    try:
        with open(copy, "rb") as mine, open(live, "rb") as theirs:
            read = 0
            for line in theirs:  # in the buffer's 8 KiB reads: the kernel writes what is read
                read += len(line)
                if line != mine.readline() or not line.endswith(b"\n") or read > HEAD_BYTES:
                    return False
                if line.endswith((b" _text\n", b" _stext\n")):
                    return line.split(b" ", 1)[0].strip(b"0") != b""
    except OSError:
        pass
    return False


def _has_module_lines(copy: str) -> bool:
    """Whether the copy names a module's symbols (or cannot tell). /proc/kallsyms prints the
    kernel's symbols, then the modules', then the pseudo-modules': reading back from the end, the
    first line without a module ends the search."""
    try:
        with open(copy, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - TAIL_BYTES))
            tail = handle.read(TAIL_BYTES)
    except OSError:
        return True
    lines = tail.split(b"\n")
    if lines[-1] != b"" or len(lines) < 3:
        return True  # not ended by a newline, or too short to hold a kernel
    for line in reversed(lines[1:-1]):  # the first may be cut by the seek
        module = line.rpartition(b"\t")[2] if b"\t" in line else None
        if module is None:
            return False
        if module not in PSEUDO_MODULES:
            return True
    return True  # the whole tail is modules' lines


def _at(root: str, path: str) -> str:
    return path if root == "/" else os.path.join(root, path.lstrip("/"))
