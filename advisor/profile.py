"""The profile: where busy CPU time went, per symbol, per CPU, per process.

Built from a `StackTable` for one event. Idle samples are recognised and reported as
utilisation; every share is computed over busy samples only, because the remedies remove
busy time. Weights are the sample periods (ns for cpu-clock), counts are kept for error bars.
"""

from __future__ import annotations

from array import array
from collections import Counter, defaultdict
from functools import cached_property
from operator import attrgetter
from typing import NamedTuple

from .engine.match import SymbolFamily, family, match_stack
from .model import StackTable

#: Leaf frames that mean "this CPU had nothing to do". With cpu-clock sampling, time in `hlt`
#: is charged to the instruction after it (`pv_native_safe_halt`, `default_idle`...).
IDLE_LEAF = SymbolFamily([
    "*_safe_halt", "*safe_halt*", "*idle*", "mwait_idle*", "cpu_startup_entry", "native_halt",
    "halt", "acpi_processor_ffh_cstate_enter", "poll_idle", "cpuidle_enter*",
])
#: Frames that mean the idle task was interrupted to do real work (softirq RX runs there).
INTERRUPT_WORK = SymbolFamily([
    "*irq*", "*softirq*", "*sysvec*", "net_rx_action", "*napi*", "__do_softirq", "handle_*",
    "asm_common_interrupt", "*_interrupt",
])

#: Events whose samples stand for CPU time (a sampling clock, or cycles; folded stacks' counts
#: are taken as samples of one), in order of preference when a recording carries several. Any
#: other event (a tracepoint, cache-misses) counts occurrences, not time.
PREFERRED_EVENTS = ("cpu-clock", "cycles", "task-clock", "cpu-cycles", "folded", "ref-cycles")

#: A CPU busier than this is treated as saturated (a bottleneck).
SATURATED_PCT = 80.0
#: ... and one below this as having spare capacity.
SPARE_PCT = 50.0


#: The kernel keeps a process name's first 15 bytes (TASK_COMM_LEN 16), and perf records that.
COMM_LEN = 15


def comm_family(comms):
    """Process-name globs as a family: a comma list as --comm takes it ('nginx,wrk'), or globs;
    each cut to the 15 characters the kernel keeps, so a long name matches its samples."""
    names = comms.split(",") if isinstance(comms, str) else comms
    return family([name[:COMM_LEN] for name in names])


def counts_time(event: str) -> bool:
    """Whether samples of `event` stand for CPU time (see PREFERRED_EVENTS); a PMU's event
    (cpu_core/cycles/) is judged by the event inside it."""
    if event.count("/") >= 2:
        event = event.split("/")[1]
    return event.split(":")[0] in PREFERRED_EVENTS


def pick_event(events: dict[str, list[int]]) -> str:
    """The event to analyse: a time-based one when present, else the one with most samples."""
    for name in PREFERRED_EVENTS:
        for ev in events:
            if ev == name or ev.split(":")[0] == name:
                return ev
    return max(events, key=lambda e: events[e][0])


class Share:
    """How much busy time a symbol family took: overall and per CPU."""

    __slots__ = ("weight", "busy_weight", "samples", "busy_samples", "per_cpu", "symbols", "comms")

    def __init__(self, weight: float, busy_weight: float, samples: int, busy_samples: int,
                 per_cpu: dict[int, float] | None = None, symbols: Counter | None = None,
                 comms: Counter | None = None):
        self.weight = weight  # matched busy weight
        self.busy_weight = busy_weight  # busy weight it is a share of
        self.samples = samples  # matched sample count (for error bars)
        self.busy_samples = busy_samples
        self.per_cpu: dict[int, float] = {} if per_cpu is None else per_cpu  # cpu -> matched weight
        self.symbols: Counter = Counter() if symbols is None else symbols  # matched frame symbol -> weight
        self.comms: Counter = Counter() if comms is None else comms  # process name -> matched weight

    def _fields(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other) -> bool:  # a value, as Profile.share returns it to notebooks: equal by its fields
        return type(other) is Share and self._fields() == other._fields()

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"<Share {self.pct:.2f}% of busy time, {self.samples} of {self.busy_samples} samples>"

    @property
    def fraction(self) -> float:
        return self.weight / self.busy_weight if self.busy_weight else 0.0

    @property
    def pct(self) -> float:
        return 100.0 * self.fraction


#: Columns of `Profile.rows`, one row per (comm, pid, tid, cpu, stack) of the analysed event.
ROW_COLUMNS = ["stack", "comm", "pid", "tid", "cpu", "count", "weight", "idle", "selected"]
#: Positions in a row tuple of the columns the shares read.
_STACK, _COMM, _CPU, _COUNT, _WEIGHT = 0, 1, 4, 5, 6
_SYMBOL = attrgetter("symbol")  # of a Frame
_GROUPABLE = {"stack": _STACK, "comm": _COMM, "cpu": _CPU}  # the columns busy_sums_by groups by


class CpuStat(NamedTuple):
    cpu: int
    samples: int
    busy_pct: float
    saturated: bool


class ProcessStat(NamedTuple):
    comm: str
    busy_pct: float
    samples: int


class SymbolStat(NamedTuple):
    symbol: str
    dso: str
    kind: str
    self_pct: float
    inclusive_pct: float
    self_samples: int


class Profile:
    """Aggregated stacks of one event, with idle time told apart from busy time.

    The engine reads plain Python (`share`, `cpu_stats`, `process_stats`, `top_symbols`), so
    that `advise analyze` never imports pandas; the DataFrame views (`rows`, `cpus()`, `top()`,
    `by_process()`) are built from the same figures when a notebook asks for them.

    >>> from advisor.parse.folded import read
    >>> import io
    >>> text = b"nginx;main;recv;nf_hook_slow 30\\nnginx;main;recv 70\\nswapper;do_idle;default_idle 100\\n"
    >>> p = Profile(read(io.BytesIO(text), "demo"))
    >>> p.busy_pct, round(p.share("nf_hook_slow").pct, 1)
    (50.0, 30.0)
    """

    def __init__(self, table: StackTable, event: str | None = None,
                 comm: str | None = None, pid: int | None = None):
        if not table.events:
            self.event = event or "none"
        else:
            self.event = event or pick_event(table.events)
        self.table = table
        self.source = table.source
        self.events = sorted(table.events)
        self.filters = {"comm": comm, "pid": pid}
        self._comm_match = comm_family(comm) if comm else None
        stack_index: dict[tuple, int] = {}
        self.stacks: list[tuple[str, ...]] = []  # symbol tuples, root first
        self.stack_frames: list[tuple] = []  # Frame tuples, same order
        idle_of: dict[tuple, bool] = {}  # (comm is swapper, stack) -> idle
        rows = []  # ROW_COLUMNS tuples, in the table's order
        filtered = self._comm_match is not None or pid is not None  # else every row is selected
        for (event, comm, key_pid, tid, cpu, frames), (count, weight) in table.rows.items():
            if event != self.event:
                continue
            idx = stack_index.get(frames)
            if idx is None:
                idx = stack_index[frames] = len(self.stacks)
                self.stacks.append(tuple(map(_SYMBOL, frames)))
                self.stack_frames.append(frames)
            swapper = comm.startswith("swapper")
            idle = idle_of.get((swapper, idx))
            if idle is None:
                idle = idle_of[(swapper, idx)] = self._is_idle(comm, self.stacks[idx])
            rows.append((idx, comm, key_pid, tid, cpu, count, weight, idle,
                         self.selects(comm, key_pid, tid) if filtered else True))
        self._rows = rows
        self.samples = sum(r[5] for r in rows)
        #: Busy rows of the selected processes, the population every share is taken over (the
        #: same tuples as the rows: with many distinct threads, copies cost ~25 MB per 300k rows).
        self._busy = [r for r in rows if not r[7] and r[8]]
        self._totals_cache: dict[frozenset | None, tuple[float, int]] = {}

    # ----------------------------------------------------------------- idle and busy
    @staticmethod
    def _is_idle(comm: str, symbols: tuple[str, ...]) -> bool:
        if not symbols:
            return comm.startswith("swapper")
        if IDLE_LEAF.matches(symbols[-1]):
            return True
        if comm.startswith("swapper"):
            return not any(INTERRUPT_WORK.matches(s) for s in symbols)
        return False

    @cached_property
    def rows(self):
        """The analysed event's rows as a pandas DataFrame (columns ROW_COLUMNS), built on demand."""
        import pandas as pd

        return pd.DataFrame(self._rows, columns=ROW_COLUMNS)

    def busy_rows(self) -> list[tuple[int, str, int, int, int]]:
        """Busy rows of the selected processes, in table order: (stack, comm, cpu, count, weight)."""
        return [(r[_STACK], r[_COMM], r[_CPU], r[_COUNT], r[_WEIGHT]) for r in self._busy]

    def selects(self, comm: str, pid: int, tid: int) -> bool:
        """Whether a row of this process passes the --comm/--pid filters (a row without a PID,
        from a recording without it, is matched by its TID)."""
        if self._comm_match is not None and not self._comm_match.matches(comm):
            return False
        wanted = self.filters["pid"]
        return wanted is None or pid == wanted or (pid == -1 and tid == wanted)

    @property
    def busy_samples(self) -> int:
        return self._busy_totals(None)[1]

    @property
    def busy_weight(self) -> float:
        return self._busy_totals(None)[0]

    @cached_property
    def busy_pct(self) -> float:
        """Utilisation of the machine while it was recorded (all processes), in percent."""
        total = sum(r[6] for r in self._rows)
        busy = sum(r[6] for r in self._rows if not r[7])
        return float(100.0 * busy / total) if total else 0.0

    @property
    def has_cpu(self) -> bool:
        return bool(self._rows) and all(r[4] >= 0 for r in self._rows)

    @property
    def duration_s(self) -> float | None:
        return self.table.duration_s

    @cached_property
    def _cpu_stats(self) -> tuple[CpuStat, ...]:
        per_cpu: dict[int, list[int]] = {}  # cpu -> [samples, weight, busy weight]
        for r in self._rows:
            cpu = r[4]
            if cpu < 0:
                continue
            acc = per_cpu.get(cpu)
            if acc is None:
                acc = per_cpu[cpu] = [0, 0, 0]
            acc[0] += r[5]
            acc[1] += r[6]
            if not r[7]:
                acc[2] += r[6]
        stats = []
        for cpu in sorted(per_cpu):
            samples, total, busy = per_cpu[cpu]
            busy_pct = 100.0 * busy / total if total else float("nan")
            stats.append(CpuStat(cpu, samples, busy_pct, busy_pct >= SATURATED_PCT))
        return tuple(stats)

    def cpu_stats(self) -> list[CpuStat]:
        """Per CPU, in CPU order: samples, busy %, saturated (all processes count); [] without CPUs."""
        return list(self._cpu_stats)

    def cpus(self):
        """Per CPU: samples, busy %, and whether it is saturated (all processes count), a DataFrame."""
        import pandas as pd

        columns = ["cpu", "samples", "busy_pct", "saturated"]
        if not self._cpu_stats:
            return pd.DataFrame(columns=columns)
        return pd.DataFrame(self._cpu_stats, columns=columns)

    # ----------------------------------------------------------------- shares
    @cached_property
    def _stack_sets(self) -> list[frozenset[str]]:
        """The distinct symbols of each stack, same order as `stacks`."""
        return [frozenset(symbols) for symbols in self.stacks]

    @cached_property
    def _all_symbols(self) -> frozenset[str]:
        return frozenset().union(*self._stack_sets)

    @cached_property
    def _busy_by_stack(self) -> dict[int, array]:
        """stack index -> positions of its rows in the busy rows, ascending. (Machine integers:
        as Python ints, 36 bytes a row, ~11 MB for 300k distinct threads' rows; 4 here.)"""
        index: dict[int, array] = {}
        for pos, row in enumerate(self._busy):
            found = index.get(row[_STACK])
            if found is None:
                index[row[_STACK]] = array("I", (pos,))
            else:
                found.append(pos)
        return index

    def _busy_totals(self, cpus: list[int] | None) -> tuple[float, int]:
        """(weight, samples) of the busy rows, on `cpus` only when given."""
        key = None if cpus is None else frozenset(cpus)
        totals = self._totals_cache.get(key)
        if totals is None:
            rows = self._busy if key is None else [r for r in self._busy if r[_CPU] in key]
            totals = self._totals_cache[key] = (float(sum(r[_WEIGHT] for r in rows)),
                                                sum(r[_COUNT] for r in rows))
        return totals

    def _match_stacks(self, target: SymbolFamily, under: SymbolFamily, exclude_below: SymbolFamily,
                      self_only: bool) -> dict[int, int]:
        """{stack index: index of the frame that makes it count} for every stack that matches
        (see match_stack). A stack none of whose symbols is in the family cannot match: the
        family judges each distinct symbol once, and only the other stacks are walked."""
        matching = set(target.select(self._all_symbols))
        hit = {}
        if matching:
            stacks = self.stacks
            for i, symbols in enumerate(self._stack_sets):
                if not symbols.isdisjoint(matching):
                    at = match_stack(stacks[i], target, under, exclude_below, self_only)
                    if at >= 0:
                        hit[i] = at
        return hit

    def share(self, symbols, under=None, exclude_below=None, mode: str = "inclusive",
              cpus: list[int] | None = None, comms=None) -> Share:
        """Busy time whose stack passes through `symbols` (globs), optionally only `under`
        one of the given ancestors, and not when one of `exclude_below` sits below it.

        `mode='self'` counts only samples whose leaf matches. `cpus` restricts both the
        matched and the busy time to those CPUs (the bottleneck). `comms` (globs) restricts
        only the matched time, for remedies that change one program but free CPU for all.

        >>> from advisor.analysis import load
        >>> from advisor.paths import samples_dir
        >>> p = load(samples_dir() / "netfilter").profile
        >>> s = p.share("nf_hook_slow")
        >>> round(s.pct), s.samples, sorted(s.comms)
        (39, 1693, ['nginx', 'wrk'])
        >>> round(p.share("nft_do_chain*", under="ip_output").pct) < round(s.pct)
        True
        """
        if mode not in ("inclusive", "self"):
            raise ValueError(f"mode={mode!r}: 'inclusive' or 'self'")
        target, anc, excl = family(symbols), family(under), family(exclude_below)
        only = comm_family(comms) if comms else None
        hit = self._match_stacks(target, anc, excl, mode == "self")
        wanted = None if cpus is None else frozenset(cpus)
        busy_weight, busy_samples = self._busy_totals(cpus)
        result = Share(0.0, busy_weight, 0, busy_samples)
        per_cpu: dict[int, float] = defaultdict(float)
        # The matched rows in busy-row order, so that sums and first-seen orders (most_common
        # ties) are those of a pass over every row.
        by_stack = self._busy_by_stack
        positions = sorted(pos for stack in hit for pos in by_stack.get(stack, ()))
        busy, stacks = self._busy, self.stacks
        for pos in positions:
            stack, comm, _pid, _tid, cpu, count, weight, _idle, _selected = busy[pos]
            if wanted is not None and cpu not in wanted:
                continue
            if only is not None and not only.matches(comm):
                continue
            result.comms[comm] += weight
            result.weight += weight
            result.samples += count
            per_cpu[cpu] += weight
            result.symbols[stacks[stack][hit[stack]]] += weight
        result.per_cpu = dict(per_cpu)
        return result

    def kind_share(self, kind: str, cpus: list[int] | None = None) -> Share:
        """Busy time whose leaf frame is of `kind` ('kernel', 'user', 'jit'...)."""
        busy = self._busy
        if cpus is not None:
            wanted = set(cpus)
            busy = [r for r in busy if r[_CPU] in wanted]
        of_kind = [bool(f) and f[-1].kind == kind for f in self.stack_frames]
        sel = [r for r in busy if of_kind[r[_STACK]]]
        return Share(float(sum(r[_WEIGHT] for r in sel)), float(sum(r[_WEIGHT] for r in busy)),
                     sum(r[_COUNT] for r in sel), sum(r[_COUNT] for r in busy))

    @property
    def has_kernel_frames(self) -> bool:
        return any(f.kind == "kernel" for frames in self.stack_frames for f in frames)

    @property
    def has_kinds(self) -> bool:
        """Whether frames carry their kind (perf script does; plain folded stacks may not)."""
        return any(f.kind != "unknown" for frames in self.stack_frames for f in frames)

    # ----------------------------------------------------------------- symbol and process views
    def busy_sums_by(self, *columns: str) -> dict:
        """[weight, samples] of the busy rows summed by some of their columns ('stack', 'comm',
        'cpu'): keyed by that column's value, or by the tuple of the values of several; in the
        order of first appearance."""
        if not columns:
            raise TypeError("busy_sums_by needs at least one column: 'stack', 'comm' or 'cpu'")
        at = [_GROUPABLE[c] for c in columns]
        acc: dict = {}
        for row in self._busy:
            key = row[at[0]] if len(at) == 1 else tuple(row[c] for c in at)
            a = acc.get(key)
            if a is None:
                acc[key] = [row[_WEIGHT], row[_COUNT]]
            else:
                a[0] += row[_WEIGHT]
                a[1] += row[_COUNT]
        return acc

    @cached_property
    def _weights_by_stack(self) -> dict[int, tuple[float, int]]:
        acc = self.busy_sums_by("stack")
        return {i: (float(acc[i][0]), acc[i][1]) for i in sorted(acc)}

    def top_symbols(self, n: int | None = 20, by: str = "self") -> list[SymbolStat]:
        """Symbols by self or inclusive share of busy time (percent), largest first; ties by name.

        A symbol's dso and kind are those of its first frame in the first busy stack showing it.
        """
        busy_weight = self.busy_weight or 1.0
        weights = self._weights_by_stack  # busy stacks, ascending
        self_w: dict[str, float] = {}
        self_n: dict[str, int] = {}
        for idx, (weight, count) in weights.items():
            symbols = self.stacks[idx]
            if symbols:
                leaf = symbols[-1]
                self_w[leaf] = self_w.get(leaf, 0) + weight
                self_n[leaf] = self_n.get(leaf, 0) + count
        with_self = [sym for sym, weight in self_w.items() if weight > 0]
        if by == "self" and n is not None and len(with_self) >= n:
            candidates = with_self  # the n first have self time: no other symbol can be among them
        else:
            candidates = frozenset().union(*(self._stack_sets[idx] for idx in weights))
            if by != "self":
                candidates = self._inclusive(candidates)
        key = self_w if by == "self" else candidates
        order = sorted(candidates, key=lambda sym: (-(100.0 * key.get(sym, 0) / busy_weight), sym))
        if n is not None:
            order = order[:max(n, 0)]
        incl_w = candidates if by != "self" else self._inclusive(order)
        stats = []
        for sym, (idx, pos) in self._first_frames(order).items():
            frame = self.stack_frames[idx][pos]
            stats.append(SymbolStat(sym, frame.dso, frame.kind, 100.0 * self_w.get(sym, 0) / busy_weight,
                                    100.0 * incl_w[sym] / busy_weight, self_n.get(sym, 0)))
        return stats

    def _inclusive(self, symbols) -> dict[str, float]:
        """Busy weight of the stacks that show each symbol (counted once per stack)."""
        wanted = frozenset(symbols)
        incl: dict[str, float] = {}
        sets = self._stack_sets
        for idx, (weight, _count) in self._weights_by_stack.items():
            for sym in sets[idx] & wanted:
                incl[sym] = incl.get(sym, 0) + weight
        return incl

    def _first_frames(self, symbols: list[str]) -> dict[str, tuple[int, int]]:
        """symbol -> (first busy stack showing it, index of its first frame there), in `symbols` order."""
        found: dict[str, tuple[int, int]] = {}
        wanted = frozenset(symbols)
        sets = self._stack_sets
        for idx in self._weights_by_stack:
            for sym in sets[idx] & wanted:
                if sym not in found:
                    found[sym] = (idx, self.stacks[idx].index(sym))
            if len(found) == len(wanted):
                break
        return {sym: found[sym] for sym in symbols}

    def top(self, n: int | None = 20, by: str = "self"):
        """Symbols by self or inclusive share of busy time (percent), a DataFrame.

        Columns: symbol, dso, kind, self_pct, inclusive_pct, self_samples.

        >>> from advisor.analysis import load
        >>> from advisor.paths import samples_dir
        >>> top = load(samples_dir() / "netfilter").profile.top(5)
        >>> list(top.columns)
        ['symbol', 'dso', 'kind', 'self_pct', 'inclusive_pct', 'self_samples']
        >>> top.loc[0, "symbol"], round(top.loc[0, "self_pct"])
        ('nft_do_chain', 30)
        """
        import pandas as pd

        return pd.DataFrame(self.top_symbols(n, by), columns=list(SymbolStat._fields))

    def process_stats(self) -> list[ProcessStat]:
        """Busy share per comm (percent), largest first (ties by name)."""
        acc = self.busy_sums_by("comm")
        total = sum(a[0] for a in acc.values()) or 1.0
        order = sorted(acc, key=lambda c: (-acc[c][0], c))
        return [ProcessStat(c, 100.0 * acc[c][0] / total, acc[c][1]) for c in order]

    def by_process(self):
        """Busy share per comm (percent), largest first (ties by name), a DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.process_stats(), columns=list(ProcessStat._fields))

    def call_graph(self):
        """networkx DiGraph caller -> callee, edges weighted by busy time (node attrs: self, total).

        >>> from advisor.analysis import load
        >>> from advisor.paths import samples_dir
        >>> graph = load(samples_dir() / "netfilter").profile.call_graph()
        >>> callers = sorted(graph.predecessors("nf_hook_slow"), key=lambda c: -graph[c]["nf_hook_slow"]["weight"])
        >>> callers[:2]
        ['__ip_local_out', 'ip_local_deliver']
        """
        import networkx as nx

        graph = nx.DiGraph()
        for idx, (weight, _count) in self._weights_by_stack.items():
            symbols = self.stacks[idx]
            if not symbols:
                continue
            for sym in set(symbols):
                if sym in graph:
                    graph.nodes[sym]["total"] += weight
                else:
                    graph.add_node(sym)
                    graph.nodes[sym].update({"total": weight, "self": 0.0})
            graph.nodes[symbols[-1]]["self"] += weight
            for caller, callee in set(zip(symbols, symbols[1:])):
                if graph.has_edge(caller, callee):
                    graph[caller][callee]["weight"] += weight
                else:
                    graph.add_edge(caller, callee, weight=weight)
        return graph

    # ----------------------------------------------------------------- views
    def flamegraph(self, rules=(), *, cpus: list[int] | None = None, comms=None):
        """Flame graph of the busy samples (a FlameGraph: SVG inline in Jupyter, `.save()`).

        `rules` (Rule objects or rule ids, e.g. "netfilter") have the frames
        they match drawn in their colour, matched as the engine does, on `cpus` and in
        `comms` only when given.

        >>> from advisor.engine.rules import get_rule
        >>> from advisor.parse.folded import read
        >>> import io
        >>> text = b"nginx;main;ip_output;nf_hook_slow;nft_do_chain 3\\nnginx;main 1\\n"
        >>> p = Profile(read(io.BytesIO(text), "demo"))
        >>> graph = p.flamegraph([get_rule("netfilter")])
        >>> graph.svg.count('data-role="matched"'), graph.svg.count('data-role="under"')
        (1, 1)
        """
        from .report.flamegraph import for_profile

        if isinstance(rules, str):
            rules = [rules]
        if any(isinstance(rule, str) for rule in rules):  # ids, as a notebook user types them
            from .engine.rules import get_rule

            rules = [get_rule(rule) if isinstance(rule, str) else rule for rule in rules]
        return for_profile(self, list(rules), cpus=cpus, comms=comms)

    def _repr_html_(self) -> str:
        from .report import html

        return html.profile_view(self)

    def __rich__(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        per_cpu = ", ".join(f"cpu{c.cpu} {c.busy_pct:.1f}%" for c in self.cpu_stats()) or "not recorded"
        head = Text(f"{self.source}: {self.samples:,} {self.event} samples, {self.busy_pct:.1f}% busy "
                    f"({per_cpu})")
        table = Table(title="hottest functions (share of busy time)", title_justify="left")
        for col, justify in (("self", "right"), ("incl.", "right"), ("symbol", "left"), ("dso", "left")):
            table.add_column(col, justify=justify, overflow="fold")
        for r in self.top_symbols(10):
            table.add_row(f"{r.self_pct:.1f}%", f"{r.inclusive_pct:.1f}%", Text(r.symbol),
                          Text(r.dso, style="dim"))
        return Group(head, table)

    def __repr__(self) -> str:
        return (f"<Profile {self.source!r} event={self.event} samples={self.samples} "
                f"busy={self.busy_pct:.1f}%>")
