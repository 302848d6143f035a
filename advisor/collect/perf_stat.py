"""Exact tracepoint counts over the window with `perf stat -a -x,` (`advise run --bpf` only).

perf stat refuses the whole command if one event is unknown, so events are checked against tracefs
first; the absent ones are reported, the rest are counted. Needs only tracefs (no BPF, no headers).

Counting a tracepoint is not free: every hit runs perf's handler, and enabling raw_syscalls sends
every syscall of every task through the slow path. So EVENTS holds only what /proc does not count:
no sched_switch (/proc/stat ctxt), no irq:softirq_entry (/proc/softirqs), no irq_handler_entry
(/proc/interrupts), no raw_syscalls (syscount counts them by name when asked).
"""

from __future__ import annotations

import os

from advisor.collect.core_tools import STARTUP_GRACE_S, Children, ToolFailed, run_tool
from advisor.errors import InputError

EVENTS = [
    "sched:sched_migrate_task",  # system-wide; /proc gives the target's (or every live task's)
    "napi:napi_poll",
    "net:netif_receive_skb",
    "lock:contention_begin",  # kernel >= 5.19, without lockdep
]

# Which counters.json field each event's rate goes to (also for events passed in by a caller).
FIELD_OF_EVENT = {
    "sched:sched_migrate_task": ("sched", "system_migrations_per_sec"),
    "sched:sched_switch": ("sched", "system_context_switches_per_sec"),
    "raw_syscalls:sys_enter": ("syscalls", "system_per_sec"),
    "irq:irq_handler_entry": ("hardirqs", "device_per_sec"),
    "napi:napi_poll": ("net", "napi_polls_per_sec"),
    "net:netif_receive_skb": ("net", "netif_receive_skb_per_sec"),
    "lock:contention_begin": ("locks", "contention_per_sec"),
}

TRACEFS_EVENT_DIRS = ("/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events")


def tracefs_events_dir() -> str | None:
    for path in TRACEFS_EVENT_DIRS:
        if os.path.isdir(path):
            return path
    return None


def split_available(events: list[str], events_dir: str) -> tuple[list[str], list[str]]:
    """(events this kernel has, events it lacks), by their tracefs directories."""
    present, absent = [], []
    for event in events:
        group, _, name = event.partition(":")
        (present if os.path.isdir(os.path.join(events_dir, group, name)) else absent).append(event)
    return present, absent


def parse_perf_stat_csv(text: str, source: str = "perf stat -x,") -> dict[str, int | None]:
    """`perf stat -x,` output -> {event: count}; None for "<not counted>"/"<not supported>".

    Each line is count,unit,event,run time,percentage[,metric,metric unit]; other lines (comments,
    blank) are skipped.
    """
    counts: dict[str, int | None] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split(",")
        if len(fields) < 3 or ":" not in fields[2]:
            raise InputError(f"not a perf stat CSV row: {line[:60]!r}", source, number)
        value, event = fields[0].strip(), fields[2].strip()
        if value.startswith("<"):
            counts[event] = None
        elif value.isdigit():
            counts[event] = int(value)
        else:
            raise InputError(f"count is not an integer: {value[:30]!r}", source, number)
    return counts


def run_perf_stat(children: Children, seconds: int, events: list[str] = EVENTS) -> dict:
    """Count `events` system-wide for `seconds`; returns {counts, absent, not_counted}."""
    events_dir = tracefs_events_dir()
    if events_dir is None:
        raise ToolFailed("tracefs not mounted (mount -t tracefs nodev /sys/kernel/tracing)")
    present, absent = split_available(events, events_dir)
    if not present:
        raise ToolFailed(f"none of the tracepoints exist: {', '.join(events)}")
    argv = ["perf", "stat", "-e", ",".join(present), "-a", "-x,", "--log-fd", "1", "--", "sleep", str(seconds)]
    text = run_tool(children, argv, seconds + STARTUP_GRACE_S)
    counts = parse_perf_stat_csv(text, "perf stat")
    missing_rows = [e for e in present if e not in counts]
    if missing_rows:
        raise ToolFailed(f"perf stat printed no count for {', '.join(missing_rows)}")
    not_counted = sorted(e for e, n in counts.items() if n is None)
    return {"counts": {e: n for e, n in counts.items() if n is not None},
            "absent": absent, "not_counted": not_counted}


def counters_from_perf(result: dict, seconds: float) -> dict:
    """Counts -> the counters.json fields they feed (rates per second, system-wide).

    Events not counted give no field; the raw counts are all kept under `tracepoints`.
    """
    counts = result["counts"]
    fields: dict = {}
    for event, (section, key) in FIELD_OF_EVENT.items():
        if event in counts:
            fields.setdefault(section, {})[key] = round(counts[event] / seconds, 1)
    fields["tracepoints"] = {"counts": dict(counts), "absent": result["absent"],
                             "not_counted": result["not_counted"], "source": "perf stat -a (system-wide)"}
    return fields
