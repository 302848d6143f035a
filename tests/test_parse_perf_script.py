"""advisor.parse.perf_script: one test per item of tests/corpus/CHECKLIST.md (A1..D3), on
small inline inputs, plus property tests on hostile input (random bytes, NUL bytes, truncated
corpus files, megabyte-long lines): the parser returns a table or raises InputError, never
anything else."""

from __future__ import annotations

import gzip
import io
import resource
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.errors import InputError
from advisor.model import Frame, StackTable
from advisor.parse import perf_script
from advisor.parse.collapse import fold
from advisor.parse.perf_script import Sample, classify, event_base, iter_samples, read

CORPUS = Path(__file__).resolve().parent / "corpus"  # a copy of ../shared/corpus: see its README.md


def parse(text: str | bytes, **kwargs) -> StackTable:
    data = text.encode() if isinstance(text, str) else text
    return read(io.BytesIO(data), "t.txt", **kwargs)


def samples(text: str) -> list[Sample]:
    return list(iter_samples(io.BytesIO(text.encode()), "t.txt"))


def only_key(table: StackTable):
    assert len(table.rows) == 1, table.rows
    return next(iter(table.rows))


def symbols(key) -> list[str]:
    return [f.symbol for f in key.frames]


SAMPLE = """\
burn 10807   363.252372:    1001001 cpu-clock:ppp: 
\t          152d24 __memmove_avx_unaligned_erms+0x2a4 (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t            135d recurse+0x6d (/opt/wl/burn)
\t            10ef main+0x5f (/opt/wl/burn)

"""


# --------------------------------------------------------------------- A. framing
def test_a1_header_comments_anywhere_are_skipped():
    text = ("# ========\n# cmdline : /usr/bin/perf record -g ./burn\n"
            "# event : name = cpu-clock:ppp, sample_type = IP|TID|TIME|CALLCHAIN|PERIOD\n#\n"
            + SAMPLE + "# a comment between samples\n" + SAMPLE)
    table = parse(text)
    assert table.samples == 2 and len(table.rows) == 1
    assert symbols(only_key(table)) == ["main", "recurse", "__memmove_avx_unaligned_erms"]
    assert table.warnings == []


def test_a2_last_sample_without_blank_line_is_flushed():
    table = parse(SAMPLE + SAMPLE.rstrip("\n"))
    assert table.samples == 2
    table = parse(SAMPLE.rstrip("\n") + "\n")
    assert table.samples == 1


def test_a3_empty_input_gives_empty_output():
    for text in ("", "\n\n", "# only a header\n#\n"):
        table = parse(text)
        assert table.samples == 0 and fold(table) == [] and table.warnings == []


def test_a4_blank_line_after_event_line_counts_a_frameless_sample_and_drops_orphans():
    text = ("inline-counter 26037  8801.193547:     250000 cpu-clock:uhH:\n"
            "\t          401b97 main+0x1f (./inline-counter)\n\n"
            "inline-counter 26037  8801.194312:     250000 cpu-clock:uhH:\n\n"
            "\t          401b94 orphan+0x1c (./inline-counter)\n\n"
            "inline-counter 26037  8801.195312:     250000 cpu-clock:uhH:\n"
            "\t          401b97 main+0x1f (./inline-counter)\n\n")
    table = parse(text)
    assert table.samples == 3
    stacks = {tuple(symbols(k)): v for k, v in table.rows.items()}
    assert stacks == {("main",): [2, 500000], (): [1, 250000]}  # orphan attached nowhere
    assert fold(table) == ["inline-counter 250000", "inline-counter;main 500000"]
    kinds = " ".join(table.warnings)
    assert "without frames" in kinds and "outside a sample" in kinds
    assert len(table.warnings) == 2


def test_a5_samples_without_callchain_are_single_lines():
    text = ("              tr 10695 [000]   361.278757:    2004008 cpu-clock:ppp:      "
            "7f7c273184d4 strcmp+0x1034 (/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2)\n"
            "     lsb_release 10697 [001]   361.279901:    2004008 cpu-clock:ppp:  "
            "ffffffff822601e7 exc_page_fault+0xd7 ([kernel.kallsyms])\n"
            "             :-1    -1 [000]   361.449098:    2004008 cpu-clock:ppp:  "
            "ffffffff817a42c5 proc_flush_pid+0x5 ([kernel.kallsyms])\n")
    table = parse(text)
    assert table.samples == 3 and table.warnings == []
    got = {(k.comm, k.tid, k.cpu): symbols(k) for k in table.rows}
    assert got == {("tr", 10695, 0): ["strcmp"], ("lsb_release", 10697, 1): ["exc_page_fault"],
                   (":-1", -1, 0): ["proc_flush_pid"]}
    assert fold(table) == [":-1;proc_flush_pid 2004008", "lsb_release;exc_page_fault 2004008",
                           "tr;strcmp 2004008"]


def test_a6_state_machine_not_indentation():
    # unindented frames (old perf) and an indented event line
    text = ("java 19983 cycles:\nffffffff8103d0ca native_write_msr_safe ([kernel.kallsyms])\n"
            "7f1e2162ad6f StealTask::do_it(GCTaskManager*, unsigned int) (/x/libjvm.so)\n\n"
            "     dd  4444 [001]   1.5:   10 cpu-clock:\n\t 414b3b fsnotify (/x/vmlinux)\n\n")
    table = parse(text)
    assert table.samples == 2 and table.warnings == []
    by_comm = {k.comm: symbols(k) for k in table.rows}
    assert by_comm == {"java": ["StealTask::do_it(GCTaskManager*, unsigned int)",
                                "native_write_msr_safe"],
                       "dd": ["fsnotify"]}


def test_a7_malformed_frame_line_is_warned_once_and_the_sample_kept():
    bad = "inline-counter 26037  8801.194312:     250000 cpu-clock:uhH:\n\t THIS_IS_WEIRD\n" \
          "\t 401b97 main+0x1f (./inline-counter)\n\n"
    table = parse(bad * 3)
    assert table.samples == 3
    assert symbols(only_key(table)) == ["main"]
    assert len(table.warnings) == 1 and "t.txt:2: malformed frame line" in table.warnings[0]


def test_a8_srcline_lines_are_recognised():
    text = ("burn 10807   363.252372:    1001001 cpu-clock:ppp: \n"
            "\t   152d24 __memmove_avx_unaligned_erms+0x2a4 (/usr/lib/libc.so.6)\n"
            "  memmove-vec-unaligned-erms.S:598\n"
            "\t     10ef main+0x5f (/opt/wl/burn)\n  burn.c:13\n"
            "\t    2724a __libc_start_call_main+0x7a (/usr/lib/libc.so.6)\n  libc.so.6[2724a]\n\n")
    table = parse(text)
    assert table.warnings == []
    assert symbols(only_key(table)) == ["__libc_start_call_main", "main",
                                        "__memmove_avx_unaligned_erms"]
    table = parse(text, srclines=True)
    assert symbols(only_key(table)) == ["__libc_start_call_main:libc.so.6", "main:burn.c:13",
                                        "__memmove_avx_unaligned_erms:memmove-vec-unaligned-erms.S:598"]


def test_a9_bytes_not_text():
    raw = (b"b\xffd 12 [000] 1.000001: 7 cpu-clock:\n"
           b"\t 401000 caf\xe9\x00_sym (/opt/b\xffn)\n\n")
    table = parse(raw)
    key = only_key(table)
    assert key.comm.encode("utf-8", "surrogateescape") == b"b\xffd"
    assert key.frames[0].symbol.encode("utf-8", "surrogateescape") == b"caf\xe9\x00_sym"
    assert fold(table)[0].encode("utf-8", "surrogateescape") == b"b\xffd;caf\xe9\x00_sym 7"


# --------------------------------------------------------------------- B. event line
def frame_line(sym="main", dso="/bin/x"):
    return f"\t  401000 {sym} ({dso})\n"


@pytest.mark.parametrize("line,comm,pid,tid,cpu", [
    ("V8 WorkerThread 25607 4794564.109216: cycles:", "V8 WorkerThread", -1, 25607, -1),
    ("C2 CompilerThre  9700 [001]   314.9:    1001001 cpu-clock:ppp:", "C2 CompilerThre", -1,
     9700, 1),
    ("GC Thread#0 24636/25607 [000] 94564.109216: cycles:", "GC Thread#0", 24636, 25607, 0),
    ("kworker/u4:2 77 [001] 1.5: 10 cpu-clock:", "kworker/u4:2", -1, 77, 1),
    ("     migration/0    18/18    [000]   357.605409: cpu-clock:", "migration/0", 18, 18, 0),
    ("Thread 2 77 [000] 1.000001: 100 cpu-clock:", "Thread 2", -1, 77, 0),  # last number = TID
    ("Thread 2 77 1.000001: cpu-clock:", "Thread 2", -1, 77, -1),
    ("swapper     0 [000] 158665.570607: cpu-clock:", "swapper", -1, 0, 0),
    ("java  3244 cpu-clock:", "java", -1, 3244, -1),
    ("Thread 2 77 cpu-clock:", "Thread 2", -1, 77, -1),
])
def test_b1_b2_b3_b4_comm_pid_tid_cpu(line, comm, pid, tid, cpu):
    key = only_key(parse(line + "\n" + frame_line() + "\n"))
    assert (key.comm, key.pid, key.tid, key.cpu) == (comm, pid, tid, cpu)


def test_b1_spaces_become_underscores_in_folded_output():
    table = parse("V8 WorkerThread 24636/25607 [000] 94564.109216: cycles:\n" + frame_line()
                  + "\n")
    assert fold(table) == ["V8_WorkerThread;main 1"]
    assert fold(table, tid=True) == ["V8_WorkerThread-24636/25607;main 1"]
    table = parse("java 25607 4794564.109216: cycles:\n" + frame_line() + "\n")
    assert fold(table, pid=True) == ["java-?;main 1"]
    assert fold(table, tid=True) == ["java-?/25607;main 1"]


def test_b4_b5_time_and_period_are_optional_and_period_is_the_weight():
    text = ("a 1 10.5:   1001001 cpu-clock:ppp: \n" + frame_line() + "\n"
            "a 1 11.5:   1001001 cpu-clock:ppp: \n" + frame_line() + "\n")
    table = parse(text)
    assert table.events == {"cpu-clock": [2, 2002002]} and table.has_period["cpu-clock"]
    assert (table.time_first, table.time_last, table.duration_s) == (10.5, 11.5, 1.0)
    table = parse("a 1 cycles:\n" + frame_line() + "\na 1 cycles:\n" + frame_line() + "\n")
    assert table.events == {"cycles": [2, 2]} and not table.has_period["cycles"]
    assert table.time_first is None
    table = parse("a 1 [000]  9.0:     250000          cpu-clock: \n" + frame_line() + "\n")
    assert table.events == {"cpu-clock": [1, 250000]}


@pytest.mark.parametrize("printed,name", [
    ("cycles", "cycles"), ("cycles:u", "cycles"), ("cycles:uppp", "cycles"),
    ("cpu-clock:uhH", "cpu-clock"), ("cpu-clock:ppp", "cpu-clock"), ("page-faults", "page-faults"),
    ("sched:sched_switch", "sched:sched_switch"), ("syscalls:sys_enter_read", "syscalls:sys_enter_read"),
])
def test_b6_event_names_and_modifiers(printed, name):
    assert event_base(printed) == name
    table = parse(f"a 1 [000] 1.0: 5 {printed}: \n" + frame_line() + "\n")
    assert list(table.events) == [name]


def test_b7_tracepoint_payload_is_not_a_frame_and_has_no_period():
    text = ("perf 10491/10491 [000]   357.605409: sched:sched_switch: prev_comm=perf "
            "prev_pid=10491 prev_prio=120 prev_state=D ==> next_comm=migration/0 next_pid=18\n"
            "\tffffffff82265ec8 __schedule+0x628 ([kernel.kallsyms])\n"
            "\tffffffff82266833 schedule+0x23 ([kernel.kallsyms])\n\n"
            "perf 10491/10491 [000]   357.605500:     250000 cpu-clock: \n"
            "\tffffffff82266833 schedule+0x23 ([kernel.kallsyms])\n\n"
            # a tracepoint without callchain: perf prints no blank line after it
            "            perf  7038/7038  [000]   512.121849: sched:sched_switch: prev_comm=perf\n"
            "     migration/0    18/18    [000]   512.122339: sched:sched_switch: prev_comm=m\n")
    table = parse(text)
    assert table.events == {"sched:sched_switch": [3, 3], "cpu-clock": [1, 250000]}
    assert table.has_period == {"sched:sched_switch": False, "cpu-clock": True}
    tp = [k for k in table.rows if k.event == "sched:sched_switch" and k.frames]
    assert symbols(tp[0]) == ["schedule", "__schedule"]
    assert table.warnings == []
    got = samples(text)
    assert [s.payload[:14] for s in got] == ["prev_comm=perf", "", "prev_comm=perf",
                                             "prev_comm=m"]
    assert got[0].period == 0 and got[1].period == 250000 and got[0].pid == 10491


def test_b8_several_events_are_kept_apart():
    text = ("noploop 21796 [001] 1410597.984841: instructions: \n" + frame_line("a") + "\n"
            "noploop 21796 [001] 1410597.984851: cycles: \n" + frame_line("b") + "\n"
            "noploop 21796 [001] 1410597.984861: instructions: \n" + frame_line("a") + "\n")
    table = parse(text)
    assert list(table.events) == ["instructions", "cycles"]
    assert table.events == {"instructions": [2, 2], "cycles": [1, 1]}
    assert fold(table) == ["noploop;a 2"]  # first event only, as perl and inferno
    assert fold(table, event="cycles") == ["noploop;b 1"]


# --------------------------------------------------------------------- C. frame lines
def one_frame(line: str, **kwargs) -> Frame:
    key = only_key(parse("a 1 1.0: 1 cycles:\n" + line + "\n\n", **kwargs))
    assert len(key.frames) == 1, key.frames
    return key.frames[0]


@pytest.mark.parametrize("addr", ["0", "1000100000001", "5966605dd52f8e00", "ffffffffffffffff",
                                  "7f1e2215d058"])
def test_c1_any_hex_address(addr):
    assert one_frame(f"\t{addr:>16} foo (/bin/x)").symbol == "foo"


@pytest.mark.parametrize("printed,symbol", [
    ("cpu_startup_entry+0x800047c022ec", "cpu_startup_entry"),
    ("_start+0xffff018fd5dce000", "_start"),
    ("JS:*fib /opt/wl/hot.js:1:13+0xdc", "JS:*fib /opt/wl/hot.js:1:13"),
    ("weird+0xnothex", "weird+0xnothex"),
    ("trailing+0x", "trailing+0x"),
])
def test_c2_offsets_stripped_only_when_hex(printed, symbol):
    assert one_frame(f"\t 401000 {printed} (/bin/x)").symbol == symbol


def test_c2_empty_symbol():
    frame = one_frame("\t    7f1e2215d058  (/lib/x86_64-linux-gnu/libc-2.15.so)")
    assert frame == Frame("", "/lib/x86_64-linux-gnu/libc-2.15.so", "user", False)
    table = parse("a 1 1.0: 1 cycles:\n\t    7f1e2215d058  (/lib/libc.so)\n\n")
    assert fold(table) == ["a;  1"]  # perl prints the frame as a single space


@pytest.mark.parametrize("symbol", [
    "StealTask::do_it(GCTaskManager*, unsigned int)", "std::function<int (int, int)>::operator()",
    "main::{lambda(int, int)#1}::operator()", "(anonymous namespace)::myBar()",
    "<alloc::boxed::Box<T> as gc::trace::Trace>::trace", "long Hot.work(int)",
    "void Hot.main(java.lang.String[])", "JS:*fib /opt/wl/hot.js:1:13",
    "LazyCompile:~body_0 evalmachine.<anonymous>:1", "Builtin:A builtin from the snapshot",
    "regexp/syntax.(*parser).push",
])
def test_c3_dso_is_the_balanced_group_at_the_end(symbol):
    frame = one_frame(f"\t    7f1e2162ad6f {symbol}+0x3fd (/mnt/jdk/lib/amd64/server/libjvm.so)")
    assert (frame.symbol, frame.dso) == (symbol, "/mnt/jdk/lib/amd64/server/libjvm.so")


def test_c4_deleted_dso_is_stripped_and_flagged():
    frame = one_frame("\t            1273 [unknown] (/opt/wl/burn_del (deleted))")
    assert frame == Frame("[unknown]", "/opt/wl/burn_del", "user", True)
    frame = one_frame("\t 1273 recurse+0x57 (/opt/my app (v2)/bin (deleted))")
    assert frame == Frame("recurse", "/opt/my app (v2)/bin", "user", True)
    table = parse("burn_del 1 1.0: 1 cycles:\n\t 1273 [unknown] (/opt/wl/burn_del (deleted))\n\n")
    assert fold(table) == ["burn_del;[burn_del] 1"]


@pytest.mark.parametrize("symbol,dso,kind", [
    ("native_safe_halt", "[kernel.kallsyms]", "kernel"),
    ("start_kernel", "[kernel.kallsyms].init.text", "kernel"),
    ("tcp_sendmsg", "/lib/modules/4.3.0-rc1-virtual/build/vmlinux", "kernel"),
    ("net_rx_action", "/usr/lib/debug/boot/vmlinux-5.4.14-cloudflare-2020.1.11", "kernel"),
    ("mlx5e_napi_poll", "/lib/modules/5.4.14/kernel/mlx5_core.ko", "kernel"),
    ("nf_conntrack_in", "/lib/modules/6.1/kernel/nf_conntrack.ko.xz", "kernel"),
    ("ipv4_conntrack_local", "[nf_conntrack_ipv4]", "kernel"),
    ("bpf_prog_2b956549c660136a_uni_l4lb", "bpf_prog_2b956549c660136a_uni_l4lb", "bpf"),
    ("Ljava/io/PrintStream;::print", "/tmp/perf-19982.map", "jit"),
    ("fib.smx::fib", "/tmp/jitted-31714-4145673320.so", "jit"),
    ("[unknown]", "[unknown]", "unknown"),
    ("__vdso_gettimeofday", "[vdso]", "user"),
    ("read", "/lib/x86_64-linux-gnu/libc-2.15.so", "user"),
    ("[unknown]", "/opt/wl/burn", "user"),
])
def test_c5_kinds(symbol, dso, kind):
    assert classify(symbol, dso) == kind
    assert one_frame(f"\t ffff000000401000 {symbol}+0x10 ({dso})").kind == kind


def test_c5_inlined_kind():
    frame = one_frame("\t 127e mix+0x1e (inlined)")
    assert (frame.symbol, frame.kind) == ("mix", "inlined")


def test_c6_unknown_frames_and_addresses():
    text = ("a 1 1.0: 1 cycles:\n\t 7f53389994d0 [unknown] ([unknown])\n"
            "\t 7f2ddf1b0000 [unknown] (/usr/lib/jvm/lib/server/libjvm.so)\n\n")
    table = parse(text)
    assert fold(table) == ["a;[libjvm.so];[unknown] 1"]
    table = parse(text, keep_addrs=True)
    assert symbols(only_key(table)) == ["[unknown <7f2ddf1b0000>]", "[unknown <7f53389994d0>]"]
    assert fold(table, addrs=True) == ["a;[libjvm.so <7f2ddf1b0000>];[unknown <7f53389994d0>] 1"]
    assert fold(table) == ["a;[libjvm.so];[unknown] 1"]


def test_c7_java_tidy_applies_to_comms_starting_with_java():
    line = "\t 7f722d142778 Lorg/mozilla/javascript/ContextFactory;.call(Lorg/x;)Ljava/lang/Object; (/tmp/perf-1.map)\n"
    java = parse("java 1 1.0: 1 cycles:\n" + line + "\n")
    assert fold(java) == ["java;org/mozilla/javascript/ContextFactory:.call 1"]
    assert fold(java, pid=True) == ["java-?;org/mozilla/javascript/ContextFactory:.call 1"]
    other = parse("node 1 1.0: 1 cycles:\n" + line + "\n")
    assert fold(other) == ["node;Lorg/mozilla/javascript/ContextFactory:.call 1"]


def test_c8_inline_chains_and_dwarf_inline_frames():
    key = only_key(parse("java 1 1.0: 1 cpu-clock:\n\t 7f89 Ljava/io/PrintStream;::println->"
                         "Ljava/io/PrintStream;::print+0x0 (/tmp/perf-10487.map)\n\n"))
    assert [(f.symbol, f.kind) for f in key.frames] == [
        ("Ljava/io/PrintStream;::println", "jit"), ("Ljava/io/PrintStream;::print", "inlined")]
    assert fold(parse("java 1 1.0: 1 cpu-clock:\n\t 7f89 La/B;::f->La/B;::g (/tmp/perf-1.map)\n\n"),
                jit=True) == ["java;a/B:::f_[j];a/B:::g_[i] 1"]
    # DWARF: the inline frame comes first and takes the DSO of the function it is inlined in
    key = only_key(parse("burn 1 1.0: 1 cpu-clock:\n\t 127e mix+0x1e (inlined)\n"
                         "\t 127e leaf_hash+0x1e (/opt/wl/burn)\n\t 10ee main+0x5e (/opt/wl/burn)\n\n"))
    assert [(f.symbol, f.dso, f.kind) for f in key.frames] == [
        ("main", "/opt/wl/burn", "user"), ("leaf_hash", "/opt/wl/burn", "user"),
        ("mix", "/opt/wl/burn", "inlined")]
    # C++ `operator->` outside JIT maps is not a chain
    assert one_frame("\t 4010 std::unique_ptr<T>::operator->() const (/bin/x)").symbol == \
        "std::unique_ptr<T>::operator->() const"


def test_c9_frames_starting_with_parenthesis_are_skipped_in_folded_output_only():
    table = parse("a 1 1.0: 1 cycles:\n\t 4010 (anonymous namespace)::f() (/bin/x)\n"
                  "\t 4020 main (/bin/x)\n\n")
    assert symbols(only_key(table)) == ["main", "(anonymous namespace)::f()"]
    assert fold(table) == ["a;main 1"]


def test_c10_separator_and_quotes():
    table = parse("node 1 1.0: 1 cycles:\n\t 13a80b608e0a RegExp:[&<>\\\"\\'] (/tmp/perf-7539.map)\n"
                  "\t 4010 a;b (/bin/x)\n\n")
    assert fold(table) == ["node;a:b;RegExp:[&<>\\\\] 1"]


@pytest.mark.parametrize("symbol,shown", [
    ("std::function<int (int, int)>::operator()", "std::function<int (int, int)>::operator"),
    ("net/http.(*Client).Do", "net/http.(*Client).Do"),
    ("(anonymous namespace)::myBar()", None),
    ("ns::(anonymous namespace)::myBar()", "ns::(anonymous namespace)::myBar"),
    ("main::{lambda(int, int)#1}::operator()", "main::{lambda(int, int)#1}::operator"),
    ("base(BasicType) const", "base"),
    ("foo<Vec::<usize>>(Vec<usize>)", "foo<Vec::<usize>>"),
])
def test_c11_argument_lists_trimmed_by_bracket_depth(symbol, shown):
    table = parse(f"a 1 1.0: 1 cycles:\n\t 4010 {symbol} (/bin/x)\n\n")
    assert fold(table) == [f"a;{shown} 1" if shown else "a 1"]


def test_c12_rust_legacy_mangling_repaired():
    sym = "log::set_logger::_$u7b$$u7b$closure$u7d$$u7d$::hcb7821323b596727"
    table = parse(f"a 1 1.0: 1 cycles:\n\t 4010 {sym} (/bin/x)\n"
                  "\t 4020 _$LT$std..fs..ReadDir$u20$as$u20$core..iter..Iterator$GT$::next::hc14f1750ca79129b (/bin/x)\n\n")
    assert symbols(only_key(table))[1] == sym  # the table keeps the raw symbol
    assert fold(table) == ["a;<std::fs::ReadDir as core::iter::Iterator>::next;"
                           "log::set_logger::_{{closure}} 1"]


# --------------------------------------------------------------------- D. weights, order, memory
def test_d1_weights_are_period_sums_and_counts_are_kept():
    text = ("a 1 1.0: 100 cycles:\n" + frame_line() + "\n"
            "a 1 2.0: 300 cycles:\n" + frame_line() + "\n"
            "a 1 3.0: cpu-clock:\n" + frame_line() + "\n")
    table = parse(text)
    by_event = {k.event: v for k, v in table.rows.items()}
    assert by_event == {"cycles": [2, 400], "cpu-clock": [1, 1]}
    assert fold(table) == ["a;main 400"]


def test_d2_root_first_and_bytewise_sorted():
    text = ("b 1 1.0: 1 c:\n\t 1 leaf (/x)\n\t 2 root (/x)\n\n"
            "a 1 1.0: 1 c:\n\t 1 z (/x)\n\n"
            "a 1 1.0: 1 c:\n\t 1 Z (/x)\n\n"
            "a_b 1 1.0: 1 c:\n\t 1 z (/x)\n\n")
    assert fold(parse(text)) == ["a;Z 1", "a;z 1", "a_b;z 1", "b;root;leaf 1"]


def test_d3_memory_grows_with_distinct_stacks_not_samples():
    block = SAMPLE.replace("363.252372", "{t}")
    text = "".join(block.format(t=f"{i}.5") for i in range(20000))
    table = parse(text)
    assert table.samples == 20000 and len(table.rows) == 1


def test_iter_samples_streams():
    """iter_samples yields the first samples before the stream is read to the end."""
    one = SAMPLE.encode()
    chunk = one * ((perf_script.CHUNK // len(one)) + 1)

    class Endless(io.RawIOBase):
        reads = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            self.reads += 1
            if self.reads > 3:
                raise AssertionError("read past what was needed")
            n = min(len(buffer), len(chunk))
            buffer[:n] = chunk[:n]
            return n

    gen = iter_samples(Endless(), "endless")
    first = next(gen)
    assert first.comm == "burn" and first.time == 363.252372 and first.period == 1001001
    assert [f.symbol for f in first.frames][-1] == "__memmove_avx_unaligned_erms"


def test_table_argument_accumulates():
    table = StackTable("both")
    read(io.BytesIO(SAMPLE.encode()), "one", table)
    read(io.BytesIO(SAMPLE.encode()), "two", table)
    assert table.samples == 2 and table.source == "both"


# --------------------------------------------------------------------- bad input
def test_garbage_is_an_input_error_naming_the_file_and_first_line():
    with pytest.raises(InputError) as err:
        parse("# header\n\nhello world\nthis is not perf\n")
    assert err.value.path == "t.txt" and err.value.line == 3
    assert str(err.value).startswith("t.txt:3: no perf script sample found")


def test_garbage_between_samples_is_a_warning():
    table = parse(SAMPLE + "hello world\n\n" + SAMPLE)
    assert table.samples == 2
    assert table.warnings == ["t.txt:6: unrecognised line skipped: hello world"]


def test_a_bad_line_is_excerpted_for_the_warning_kept_only(monkeypatch):
    """Only the first bad line of a kind is kept as a warning; the excerpt of every other one was
    built and thrown away (random bytes: 8.2 s to refuse 32 MiB of /dev/urandom, now 1.8 s)."""
    made = []
    real = perf_script.excerpt
    monkeypatch.setattr(perf_script, "excerpt", lambda text: made.append(text) or real(text))
    malformed = "a 1 1.0: 1 cycles:\n" + "\tnot a frame\n" * 300 + "\t 4010 f (/bin/x)\n\n"
    table = parse(SAMPLE + "hello world\n" * 300 + "\n" + malformed)
    assert table.samples == 2
    assert made == ["hello world", "not a frame"]
    assert table.warnings == ["t.txt:6: unrecognised line skipped: hello world",
                              "t.txt:308: malformed frame line skipped: not a frame"]


def _escaped_then_cut(text: str, limit: int = 80) -> str:
    """What an excerpt was before it escaped only what it keeps: all of it escaped, then cut."""
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(f"\\x{ord(c):02x}" if ord(c) < 32 and c != "\t" or c == "\x7f" else c for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab \t\x00\x1b\x0c\x7f\u202e\udcff\u00e9"), max_size=120))
def test_property_an_excerpt_is_the_cut_of_the_whole_line_escaped(text):
    from advisor.errors import excerpt

    assert excerpt(text) == _escaped_then_cut(text)
    assert excerpt(text + "z" * 100_000) == _escaped_then_cut(text + "z" * 100_000)


def test_a_byte_order_mark_at_the_start_is_not_part_of_the_first_comm():
    """A file saved by a Windows editor starts with EF BB BF: the first sample's process was
    "\\ufeffburn", apart from every other "burn" (`--comm burn` missed it)."""
    table = parse(b"\xef\xbb\xbf" + SAMPLE.encode() + SAMPLE.encode())
    assert {key.comm for key in table.rows} == {"burn"} and table.samples == 2
    bytewise = read(io.BufferedReader(OneByteAtATime(b"\xef\xbb\xbf" + SAMPLE.encode() * 2), 1), "t.txt")
    assert bytewise.rows == table.rows  # a pipe may hand the mark out in pieces


class OneByteAtATime(io.RawIOBase):
    def __init__(self, data: bytes):
        self.data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self.data:
            return 0
        buffer[0], self.data = self.data[0], self.data[1:]
        return 1


def test_megabyte_long_lines():
    long_symbol = "x" * (2 << 20)
    table = parse(f"a 1 1.0: 1 cycles:\n\t 4010 {long_symbol} (/bin/x)\n\n" + SAMPLE)
    assert table.samples == 2
    long_garbage = "y " * (1 << 20)
    table = parse(SAMPLE + long_garbage + "\n" + SAMPLE)
    assert table.samples == 2 and len(table.warnings) == 1


def test_line_longer_than_the_limit_is_skipped(monkeypatch):
    monkeypatch.setattr(perf_script, "CHUNK", 1 << 16)
    monkeypatch.setattr(perf_script, "MAX_LINE", 1 << 18)
    table = parse(SAMPLE + "z" * (1 << 20) + "\n" + SAMPLE)
    assert table.samples == 2
    assert any("longer than" in w for w in table.warnings)


class Endless(io.RawIOBase):
    """A stream that never ends, as /dev/zero or /dev/urandom would be: `head` then `line` again
    and again. A reader still reading after `cap` bytes fails the test instead of hanging it."""

    def __init__(self, head: bytes, line: bytes, cap: int):
        self.pending, self.line, self.left = head, line, cap

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self.left -= len(buffer)
        assert self.left > 0, "still reading an endless input"
        while len(self.pending) < len(buffer):
            self.pending += self.line * 64
        size = len(buffer)
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        return size


@pytest.mark.parametrize("line, lineno", [(b"\0" * 4096, 1), (b"\x8f garbage \xff\n", 1)])
def test_an_endless_input_without_a_sample_is_refused(monkeypatch, line, lineno):
    monkeypatch.setattr(perf_script, "NO_SAMPLE_BYTES", 1 << 20)
    with pytest.raises(InputError) as err:
        perf_script.read(io.BufferedReader(Endless(b"", line, cap=16 << 20)), "endless")
    assert err.value.line == lineno
    assert err.value.reason == "no perf script sample in the first 1 MiB (is this `perf script` output?)"


def test_after_a_sample_garbage_is_read_past_that_limit(monkeypatch):
    monkeypatch.setattr(perf_script, "NO_SAMPLE_BYTES", 1 << 16)
    table = parse(SAMPLE + "hello world\n" * 20_000 + "\n" + SAMPLE)
    assert table.samples == 2 and len(table.warnings) == 1


def test_many_samples_without_blank_lines_are_read_in_bounded_pieces(monkeypatch):
    monkeypatch.setattr(perf_script, "CHUNK", 1 << 12)
    line = ("  tr 10695 [000]   361.278757:    2004008 cpu-clock:ppp:      "
            "7f7c273184d4 strcmp+0x1034 (/usr/lib/ld-linux-x86-64.so.2)\n")
    table = parse(line * 2000)
    assert table.samples == 2000 and table.warnings == []


def _must_not_raise_other_than_input_error(data: bytes) -> None:
    try:
        read(io.BytesIO(data), "fuzz")
    except InputError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_property_random_bytes(data):
    _must_not_raise_other_than_input_error(data)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from([
    "a 1 1.0: 1 cycles:", "a 1 [000] 1.0: 10 cpu-clock:ppp: ", "\t 4010 main (/bin/x)",
    "\t 4010 main+0x1 (/bin/x (deleted))", "  burn.c:9", "", "#", "\x00\x00", "\t 0 (",
    "x (", ")", "  tr 1 [000] 1.0: 1 cpu-clock:  ffff f ([kernel.kallsyms])",
    "p 1/2 [001] 2.0: sched:sched_switch: prev_comm=a", "\t ffff [unknown] ([unknown])",
    "java 1 cycles:", "\t 7f89 La/B;::f->La/B;::g (/tmp/perf-1.map)", "\t 127e mix (inlined)",
]), max_size=60))
def test_property_line_soup(lines):
    _must_not_raise_other_than_input_error("\n".join(lines).encode())
    table = StackTable("soup")
    try:
        read(io.BytesIO("\n".join(lines).encode()), "soup", table)
    except InputError:
        return
    assert all(v[0] >= 1 and v[1] >= v[0] for v in table.rows.values())


_CORPUS_FILES = sorted((CORPUS / "local" / "inputs").glob("*.txt")) + sorted(
    (CORPUS / "inferno" / "inputs").glob("*.txt"))


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_property_truncated_and_nul_damaged_corpus_files(data):
    path = data.draw(st.sampled_from(_CORPUS_FILES))
    raw = path.read_bytes()
    cut = data.draw(st.integers(0, len(raw)))
    damaged = bytearray(raw[:cut])
    for _ in range(data.draw(st.integers(0, 5))):
        if damaged:
            damaged[data.draw(st.integers(0, len(damaged) - 1))] = 0
    _must_not_raise_other_than_input_error(bytes(damaged))


def test_example_in_bounded_memory():
    data = gzip.decompress((CORPUS / "flamegraph/inputs/example-perf-stacks.txt.gz").read_bytes())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    table = read(io.BytesIO(data * 8), "x8")
    assert table.samples == 1315 * 8 and len(table.rows) == 979
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200


def test_crlf_line_endings():
    table = parse((SAMPLE * 3).replace("\n", "\r\n"))
    assert table.samples == 3 and table.warnings == []
    assert symbols(only_key(table)) == ["main", "recurse", "__memmove_avx_unaligned_erms"]


def test_newer_perf_jit_dso_names():
    assert classify("JS:*fib", "[JIT] tid 9685") == "jit"


class _Lines(io.RawIOBase):
    """Hands out the given pieces one read at a time, as a pipe might."""

    def __init__(self, pieces: list[bytes]):
        self.pieces = list(pieces)

    def readable(self) -> bool:
        return True

    def read1(self, n: int = -1) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""

    read = read1


def test_a_sample_seen_before_does_not_skip_the_end_of_one_begun_by_the_line_reader(monkeypatch):
    """A sample without a blank line for CHUNK bytes is fed line by line and is still open when
    the next whole samples come; the first of them, though its text was seen before, must end
    it (else a frame line left over after the next blank line would join the open sample
    instead of being dropped as an orphan)."""
    monkeypatch.setattr(perf_script, "CHUNK", 64)
    seen = b"nginx 1/1 [000] 1.5: 1 cpu-clock: \n\tffff main (/x)\n\n"
    frame = b"\tfff1 " + b"f" * 70 + b" (/x)\n"  # each read longer than CHUNK: fed as lines
    opened = [b"nginx 1/1 [000] 2.5: 1 cpu-clock: " + b" " * 40 + b"\n", frame, frame]
    again = seen.replace(b"1.5:", b"3.5:") + b"\tfff9 orphan (/x)\n\n"
    twice = seen + seen.replace(b"1.5:", b"1.6:")  # the second is read from the caches
    table = read(_Lines([twice, *opened, again]), "open.txt")
    stacks = {tuple(f.symbol for f in k.frames): count for k, count in
              ((k, v[0]) for k, v in table.rows.items())}
    assert stacks == {("main",): 3, ("f" * 70, "f" * 70): 1}
    assert any("frame line outside a sample" in w for w in table.warnings)


def test_blank_lines_right_after_a_sample_the_line_reader_began_end_it(monkeypatch):
    """Same, when the next piece starts with the blank lines themselves: they end the open sample,
    and the frame line after them is an orphan (it used to join the open sample: the empty text
    before the first blank line was skipped as if no sample were open)."""
    monkeypatch.setattr(perf_script, "CHUNK", 64)
    frame = b"\tfff1 " + b"f" * 70 + b" (/x)\n"
    opened = [b"nginx 1/1 [000] 2.5: 1 cpu-clock: " + b" " * 40 + b"\n", frame, frame]
    after = b"\n\n\tfff9 orphan (/x)\n\nnginx 1/1 [000] 3.5: 1 cpu-clock: \n\tffff main (/x)\n\n"
    table = read(_Lines([*opened, after]), "open.txt")
    stacks = {tuple(f.symbol for f in k.frames): v[0] for k, v in table.rows.items()}
    assert stacks == {("f" * 70, "f" * 70): 1, ("main",): 1}
    assert [w.split(": ")[0] for w in table.warnings if "frame line outside a sample" in w] == ["open.txt:6"]


def test_a_tracepoint_payload_that_looks_like_a_frame_seen_before_stays_a_payload():
    """A5 for tracepoints: the text after a tracepoint's name is its payload, even when the same
    text was a frame on a cpu-clock line before (found by the fuzzer: the line reader's fast
    path took it for that frame)."""
    frame = "\tffffffff81000001 main+0x1 ([kernel.kallsyms])"
    text = (f"nginx 0 1.0: cpu-clock:{frame}\n\nnginx 0 1.5: sched:sched_switch: prev_comm=a\n\n"
            f"nginx 0 2.0: sched:sched_switch:{frame}\n\n")
    table = read(io.BytesIO(text.encode()), "tp.txt")
    by_event = {(k.event, tuple(f.symbol for f in k.frames)): v[0] for k, v in table.rows.items()}
    assert by_event == {("cpu-clock", ("main",)): 1, ("sched:sched_switch", ()): 2}
    [sample] = [s for s in iter_samples(io.BytesIO(text.encode()), "tp.txt") if s.time == 2.0]
    assert sample.payload == frame.strip() and sample.frames == ()
