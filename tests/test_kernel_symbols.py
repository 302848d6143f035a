"""advisor.parse.perf_header and advisor.parse.kernel_symbols: the kernel's build-id from a real
perf.data header, and the choice of perf's cached copy of /proc/kallsyms in place of the file.

The conditions are checked against a made-up root (its /proc, /sys, /boot) and build-id cache:
this kernel has no modules and no /proc/kcore, so the cases where perf would read something
else than /proc/kallsyms cannot be made here for real. The last test runs perf on a real
recording both ways and compares what it prints."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from advisor.parse import kernel_symbols, perf_header
from advisor.parse.perf_spawn import find_perf, perf_command
from tests.test_parse_perf_data import record

KALLSYMS = (b"0000000000000000 A fixed_percpu_data\n"
            b"ffffffff81000000 T _stext\n"
            b"ffffffff81000000 T _text\n"
            b"ffffffff81000010 T entry_SYSCALL_64\n"
            b"ffffffff81ab0000 T nf_hook_slow\n")
FTRACE = b"ffffffffc0201000 t ftrace_trampoline\t[__builtin__ftrace]\n"
BPF = b"ffffffffc0203000 t bpf_prog_6deef7357e7b4530_sd_fw_egress\t[bpf]\n"
MODULE = b"ffffffffc0400000 t ipt_do_table\t[ip_tables]\n"


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    return record(tmp_path_factory.mktemp("kallsyms"), "perf.data", "-g")


def notes(build_id: str) -> bytes:
    """/sys/kernel/notes as the kernel has it: a Xen note first, then GNU's build-id."""
    desc = bytes.fromhex(build_id)
    xen = (4).to_bytes(4, "little") + (4).to_bytes(4, "little") + (6).to_bytes(4, "little") + b"Xen\0" + b"\1\1\0\0"
    gnu = (4).to_bytes(4, "little") + len(desc).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"GNU\0" + desc
    return xen + gnu


@pytest.fixture
def host(tmp_path, recording, monkeypatch):
    """A root whose kernel is the recording's, without modules or kcore, and a build-id cache
    holding the same kallsyms: the case where the copy is given. Tests then spoil one thing."""
    build_id = perf_header.kernel_build_id(recording)
    assert build_id
    root, home = tmp_path / "root", tmp_path / "home"
    (root / "sys/kernel").mkdir(parents=True)
    (root / "sys/kernel/notes").write_bytes(notes(build_id))
    (root / "proc").mkdir()
    (root / "proc/kallsyms").write_bytes(KALLSYMS + FTRACE)
    copy = home / ".debug" / "[kernel.kallsyms]" / build_id / "kallsyms"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(KALLSYMS + FTRACE + BPF)  # pseudo-modules differ: perf drops them anyway
    monkeypatch.setenv("HOME", str(home))
    for name in ("PERF_CONFIG", "PERF_BUILDID_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # perf looks for ./vmlinux
    return {"root": root, "home": home, "copy": copy, "build_id": build_id}


def chosen(recording, host) -> str | None:
    return kernel_symbols.kallsyms_file(recording, root=str(host["root"]))


def test_the_kernel_build_id_is_the_one_perf_lists(recording):
    listed = subprocess.run([find_perf() or "perf", "buildid-list", "-i", str(recording)], capture_output=True,
                            text=True, timeout=60).stdout.splitlines()
    kernel = [line.split()[0] for line in listed if line.endswith(" [kernel.kallsyms]")]
    assert kernel and perf_header.kernel_build_id(recording) == kernel[0]
    running = subprocess.run([find_perf() or "perf", "buildid-list", "-k"], capture_output=True, text=True,
                             timeout=60).stdout.strip()
    assert kernel_symbols.running_build_id() == running


def test_a_header_that_does_not_say_gives_no_build_id(recording, tmp_path):
    data = recording.read_bytes()
    cases = {"empty": b"", "text": b"hello\n" * 50, "header only": data[:104], "cut": data[:len(data) // 2],
             "no feature bits": data[:72] + bytes(32) + data[104:]}
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        assert perf_header.kernel_build_id(path) is None, name
    assert perf_header.kernel_build_id(tmp_path / "absent") is None
    assert perf_header.kernel_build_id(tmp_path) is None  # a directory
    os.mkfifo(tmp_path / "fifo")
    assert perf_header.kernel_build_id(tmp_path / "fifo") is None  # not opened: that would wait


def test_the_copy_is_given_when_perf_would_read_the_same_kallsyms(recording, host):
    assert chosen(recording, host) == str(host["copy"])
    (host["root"] / "proc/modules").write_text("")  # modules supported, none loaded
    assert chosen(recording, host) == str(host["copy"])


@pytest.mark.parametrize("spoil", [
    "another kernel", "kcore readable", "kcore cached", "vmlinux on the path", "vmlinux in ./",
    "vmlinux in the cache", "a perfconfig", "PERF_CONFIG", "PERF_BUILDID_DIR", "no HOME",
    "a module loaded", "modules unreadable", "module lines in the copy", "another KASLR offset",
    "hidden addresses", "no _text line", "no copy", "a copy cut short"])
def test_perf_reads_proc_kallsyms_itself_whenever_the_copy_might_differ(recording, host, monkeypatch, spoil):
    root, copy, build_id = host["root"], host["copy"], host["build_id"]
    cache = host["home"] / ".debug"
    release = os.uname().release
    if spoil == "another kernel":
        (root / "sys/kernel/notes").write_bytes(notes("00" * 20))
    elif spoil == "kcore readable":
        (root / "proc/kcore").write_bytes(b"")
    elif spoil == "kcore cached":
        (cache / "[kernel.kcore]" / build_id).mkdir(parents=True)
    elif spoil == "vmlinux on the path":
        (root / "usr/lib/debug/boot").mkdir(parents=True)
        (root / f"usr/lib/debug/boot/vmlinux-{release}").write_bytes(b"\x7fELF")
    elif spoil == "vmlinux in ./":
        Path("vmlinux").write_bytes(b"\x7fELF")
    elif spoil == "vmlinux in the cache":
        elf = cache / ".build-id" / build_id[:2] / build_id[2:] / "elf"
        elf.parent.mkdir(parents=True)
        elf.write_bytes(b"\x7fELF")
    elif spoil == "a perfconfig":
        (host["home"] / ".perfconfig").write_text("[symbol]\n")
    elif spoil in ("PERF_CONFIG", "PERF_BUILDID_DIR"):
        monkeypatch.setenv(spoil, "/elsewhere")
    elif spoil == "no HOME":
        monkeypatch.delenv("HOME")
    elif spoil == "a module loaded":
        (root / "proc/modules").write_text("ip_tables 36864 0 - Live 0xffffffffc0400000\n")
    elif spoil == "modules unreadable":
        (root / "proc/modules").mkdir()
    elif spoil == "module lines in the copy":
        copy.write_bytes(KALLSYMS + MODULE + FTRACE)
    elif spoil == "another KASLR offset":
        copy.write_bytes(KALLSYMS.replace(b"ffffffff81", b"ffffffff9a") + FTRACE)
    elif spoil == "hidden addresses":
        hidden = b"".join(b"0" * 16 + line[16:] for line in KALLSYMS.splitlines(keepends=True))
        (root / "proc/kallsyms").write_bytes(hidden)
        copy.write_bytes(hidden)
    elif spoil == "no _text line":
        plain = KALLSYMS.replace(b" T _stext\n", b" T x\n").replace(b" T _text\n", b" T y\n")
        (root / "proc/kallsyms").write_bytes(plain)
        copy.write_bytes(plain)
    elif spoil == "no copy":
        copy.unlink()
    elif spoil == "a copy cut short":
        copy.write_bytes((KALLSYMS + FTRACE)[:-5])
    assert chosen(recording, host) is None, spoil


def test_perf_prints_the_same_with_the_copy_as_with_proc_kallsyms(recording):
    """On this machine, for a recording made here: when advisor gives perf the copy, perf's
    output is byte for byte what it prints reading /proc/kallsyms itself."""
    command = perf_command(find_perf() or "perf", recording)
    copy = kernel_symbols.kallsyms_file(recording)
    if copy is None:  # perf reads /proc/kallsyms: nothing to compare, but nothing was given either
        assert "--kallsyms" not in command
        return
    assert command[-2:] == ["--kallsyms", copy]
    env = {**os.environ, "LC_ALL": "C", "PAGER": "cat"}
    given = subprocess.run(command, capture_output=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    itself = subprocess.run(command[:-2], capture_output=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert given.returncode == itself.returncode == 0
    assert b"([kernel.kallsyms])" in given.stdout  # kernel frames, named by those symbols
    assert given.stdout == itself.stdout
