"""The profile: where busy CPU time went, per symbol, per CPU, per process.

Built from a `StackTable` for one event. Idle samples are recognised and reported as
utilisation; every share is computed over busy samples only, because the remedies remove
busy time. Weights are the sample periods (ns for cpu-clock), counts are kept for error bars.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd

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

#: Preferred events when a recording carries several.
PREFERRED_EVENTS = ("cpu-clock", "cycles", "task-clock", "cpu-cycles", "folded")

#: A CPU busier than this is treated as saturated (a bottleneck).
SATURATED_PCT = 80.0
#: ... and one below this as having spare capacity.
SPARE_PCT = 50.0


def pick_event(events: dict[str, list[int]]) -> str:
    """The event to analyse: a time-based one when present, else the one with most samples."""
    for name in PREFERRED_EVENTS:
        for ev in events:
            if ev == name or ev.split(":")[0] == name:
                return ev
    return max(events, key=lambda e: events[e][0])


@dataclass
class Share:
    """How much busy time a symbol family took: overall and per CPU."""

    weight: float  # matched busy weight
    busy_weight: float  # busy weight it is a share of
    samples: int  # matched sample count (for error bars)
    busy_samples: int
    per_cpu: dict[int, float] = field(default_factory=dict)  # cpu -> matched weight
    symbols: Counter = field(default_factory=Counter)  # matched frame symbol -> weight
    comms: Counter = field(default_factory=Counter)  # process name -> matched weight

    @property
    def fraction(self) -> float:
        return self.weight / self.busy_weight if self.busy_weight else 0.0

    @property
    def pct(self) -> float:
        return 100.0 * self.fraction


class Profile:
    """Aggregated stacks of one event, with idle time told apart from busy time.

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
        comm_match = family(comm.split(",")) if comm else None  # 'nginx,wrk': several globs
        stack_index: dict[tuple, int] = {}
        self.stacks: list[tuple[str, ...]] = []  # symbol tuples, root first
        self.stack_frames: list[tuple] = []  # Frame tuples, same order
        rows = []
        for key, (count, weight) in table.rows.items():
            if key.event != self.event:
                continue
            symbols = tuple(f.symbol for f in key.frames)
            idx = stack_index.get(key.frames)
            if idx is None:
                idx = stack_index[key.frames] = len(self.stacks)
                self.stacks.append(symbols)
                self.stack_frames.append(key.frames)
            idle = self._is_idle(key.comm, symbols)
            selected = True
            if comm_match is not None and not comm_match.matches(key.comm):
                selected = False
            if pid is not None and not (key.pid == pid or (key.pid == -1 and key.tid == pid)):
                selected = False
            rows.append((idx, key.comm, key.pid, key.tid, key.cpu, count, weight, idle, selected))
        self.rows = pd.DataFrame(rows, columns=["stack", "comm", "pid", "tid", "cpu", "count",
                                                "weight", "idle", "selected"])

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
    def _busy(self) -> pd.DataFrame:
        """Busy rows of the selected processes: the population every share is taken over."""
        r = self.rows
        return r[(~r["idle"]) & r["selected"]]

    @property
    def samples(self) -> int:
        return int(self.rows["count"].sum())

    @property
    def busy_samples(self) -> int:
        return int(self._busy["count"].sum())

    @property
    def busy_weight(self) -> float:
        return float(self._busy["weight"].sum())

    @property
    def busy_pct(self) -> float:
        """Utilisation of the machine while it was recorded (all processes), in percent."""
        total = self.rows["weight"].sum()
        busy = self.rows.loc[~self.rows["idle"], "weight"].sum()
        return float(100.0 * busy / total) if total else 0.0

    @property
    def has_cpu(self) -> bool:
        return bool(len(self.rows)) and bool((self.rows["cpu"] >= 0).all())

    @property
    def duration_s(self) -> float | None:
        return self.table.duration_s

    def cpus(self) -> pd.DataFrame:
        """Per CPU: samples, busy %, and whether it is saturated (all processes count)."""
        r = self.rows[self.rows["cpu"] >= 0]
        if r.empty:
            return pd.DataFrame(columns=["cpu", "samples", "busy_pct", "saturated"])
        total = r.groupby("cpu")["weight"].sum()
        busy = r[~r["idle"]].groupby("cpu")["weight"].sum().reindex(total.index, fill_value=0)
        counts = r.groupby("cpu")["count"].sum()
        out = pd.DataFrame({"cpu": total.index, "samples": counts.values,
                            "busy_pct": (100.0 * busy / total).values})
        out["saturated"] = out["busy_pct"] >= SATURATED_PCT
        return out.reset_index(drop=True)

    # ----------------------------------------------------------------- shares
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
        (41, 1943, ['nginx', 'wrk'])
        >>> round(p.share("nft_do_chain*", under="ip_output").pct) < round(s.pct)
        True
        """
        target, anc, excl = family(symbols), family(under), family(exclude_below)
        only = family(comms) if comms else None
        self_only = mode == "self"
        hit = [match_stack(s, target, anc, excl, self_only) for s in self.stacks]
        busy = self._busy
        if cpus is not None:
            busy = busy[busy["cpu"].isin(cpus)]
        result = Share(0.0, float(busy["weight"].sum()), 0, int(busy["count"].sum()))
        per_cpu: dict[int, float] = defaultdict(float)
        for stack, cpu, comm, count, weight in zip(busy["stack"], busy["cpu"], busy["comm"], busy["count"],
                                                   busy["weight"]):
            i = hit[stack]
            if i < 0 or (only is not None and not only.matches(comm)):
                continue
            result.comms[comm] += weight
            result.weight += weight
            result.samples += count
            per_cpu[int(cpu)] += weight
            result.symbols[self.stacks[stack][i]] += weight
        result.per_cpu = dict(per_cpu)
        return result

    def kind_share(self, kind: str, cpus: list[int] | None = None) -> Share:
        """Busy time whose leaf frame is of `kind` ('kernel', 'user', 'jit'...)."""
        busy = self._busy
        if cpus is not None:
            busy = busy[busy["cpu"].isin(cpus)]
        leaf_kind = [f[-1].kind if f else "" for f in self.stack_frames]
        mask = busy["stack"].map(lambda i: leaf_kind[i] == kind)
        sel = busy[mask]
        return Share(float(sel["weight"].sum()), float(busy["weight"].sum()),
                     int(sel["count"].sum()), int(busy["count"].sum()))

    @property
    def has_kernel_frames(self) -> bool:
        return any(f.kind == "kernel" for frames in self.stack_frames for f in frames)

    @property
    def has_kinds(self) -> bool:
        """Whether frames carry their kind (perf script does; plain folded stacks may not)."""
        return any(f.kind != "unknown" for frames in self.stack_frames for f in frames)

    # ----------------------------------------------------------------- pandas views
    def _stack_weights(self) -> dict[int, tuple[float, int]]:
        w = self._busy.groupby("stack")[["weight", "count"]].sum()
        return {int(i): (float(a), int(b)) for i, a, b in zip(w.index, w["weight"], w["count"])}

    def top(self, n: int | None = 20, by: str = "self") -> pd.DataFrame:
        """Symbols by self or inclusive share of busy time (percent).

        Columns: symbol, dso, kind, self_pct, inclusive_pct, self_samples.

        >>> from advisor.analysis import load
        >>> from advisor.paths import samples_dir
        >>> top = load(samples_dir() / "netfilter").profile.top(5)
        >>> list(top.columns)
        ['symbol', 'dso', 'kind', 'self_pct', 'inclusive_pct', 'self_samples']
        >>> top.loc[0, "symbol"], round(top.loc[0, "self_pct"])
        ('nft_do_chain', 30)
        """
        busy_weight = self.busy_weight or 1.0
        self_w: Counter = Counter()
        incl_w: Counter = Counter()
        self_n: Counter = Counter()
        where: dict[str, tuple[str, str]] = {}
        for idx, (weight, count) in self._stack_weights().items():
            frames = self.stack_frames[idx]
            if not frames:
                continue
            leaf = frames[-1]
            self_w[leaf.symbol] += weight
            self_n[leaf.symbol] += count
            for sym in {f.symbol for f in frames}:
                incl_w[sym] += weight
            for f in frames:
                where.setdefault(f.symbol, (f.dso, f.kind))
        rows = [(sym, where[sym][0], where[sym][1], 100.0 * self_w[sym] / busy_weight,
                 100.0 * incl_w[sym] / busy_weight, self_n[sym]) for sym in incl_w]
        df = pd.DataFrame(rows, columns=["symbol", "dso", "kind", "self_pct", "inclusive_pct",
                                         "self_samples"])
        key = "self_pct" if by == "self" else "inclusive_pct"
        df = df.sort_values([key, "symbol"], ascending=[False, True]).reset_index(drop=True)
        return df if n is None else df.head(n)

    def by_process(self) -> pd.DataFrame:
        """Busy share per comm (percent), largest first."""
        b = self._busy
        total = b["weight"].sum() or 1.0
        g = b.groupby("comm")[["weight", "count"]].sum().sort_values("weight", ascending=False)
        return pd.DataFrame({"comm": g.index, "busy_pct": (100.0 * g["weight"] / total).values,
                             "samples": g["count"].values})

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
        for idx, (weight, _count) in self._stack_weights().items():
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

        `rules` (Rule objects, e.g. from `advisor.engine.rules.load_rules()`) have the frames
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

        return for_profile(self, list(rules), cpus=cpus, comms=comms)

    def _repr_html_(self) -> str:
        from .report import html

        return html.profile_view(self)

    def __rich__(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        cpus = self.cpus()
        per_cpu = ", ".join(f"cpu{c} {b:.1f}%" for c, b in zip(cpus["cpu"], cpus["busy_pct"])) or "not recorded"
        head = Text(f"{self.source}: {self.samples:,} {self.event} samples, {self.busy_pct:.1f}% busy "
                    f"({per_cpu})")
        table = Table(title="hottest functions (share of busy time)", title_justify="left")
        for col, justify in (("self", "right"), ("incl.", "right"), ("symbol", "left"), ("dso", "left")):
            table.add_column(col, justify=justify, overflow="fold")
        for r in self.top(10).itertuples():
            table.add_row(f"{r.self_pct:.1f}%", f"{r.inclusive_pct:.1f}%", Text(r.symbol),
                          Text(r.dso, style="dim"))
        return Group(head, table)

    def __repr__(self) -> str:
        return (f"<Profile {self.source!r} event={self.event} samples={self.samples} "
                f"busy={self.busy_pct:.1f}%>")
