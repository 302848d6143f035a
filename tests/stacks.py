"""Build small, exact stack tables for tests: the real model types, filled by hand.

Each entry: (comm, cpu, "root;...;leaf", samples). Frames whose name looks like a kernel
function (lower case with underscores, or listed) are kernel frames; names in USER are user frames.
"""

from __future__ import annotations

from advisor.model import Frame, StackKey, StackTable

USER = {"main", "ngx_worker_process_cycle", "ngx_process_events_and_timers", "ngx_http_handler",
        "__libc_recv", "__libc_write", "__libc_read", "epoll_wait", "worker", "handle_request", "json_encode",
        "__libc_start_main", "_start", "wrk_loop", "__writev"}

PERIOD = 1_000_000  # ns per sample, as perf script would show at 1 kHz cpu-clock


def frame(name: str) -> Frame:
    kind = "user" if name in USER else "kernel"
    dso = "/usr/sbin/nginx" if kind == "user" else "[kernel.kallsyms]"
    return Frame(name, dso, kind, False)


def table(entries, event: str = "cpu-clock", source: str = "synthetic") -> StackTable:
    t = StackTable(source)
    for comm, cpu, stack, count in entries:
        frames = tuple(frame(s) for s in stack.split(";")) if stack else ()
        t.add(StackKey(event, comm, 100 + (cpu if cpu >= 0 else 0), 100, cpu, frames), count, count * PERIOD)
    return t


IDLE = "secondary_startup_64;cpu_startup_entry;do_idle;default_idle_call;pv_native_safe_halt"
SERVE = "_start;main;ngx_worker_process_cycle;handle_request;json_encode"
RECV = "_start;main;ngx_worker_process_cycle;__libc_recv;entry_SYSCALL_64;do_syscall_64;__x64_sys_recvfrom;tcp_recvmsg"
