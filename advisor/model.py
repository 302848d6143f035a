"""Value types shared by parsers, the profile and the collectors.

Samples are aggregated as they stream in: memory grows with the number of distinct
stacks, never with the number of samples.
"""

from __future__ import annotations

from typing import NamedTuple

KINDS = ("kernel", "user", "jit", "bpf", "inlined", "unknown")


class Frame(NamedTuple):
    symbol: str  # as perf printed it, '+0xOFF' stripped; '[unknown]' when perf did not know
    dso: str  # without parentheses and ' (deleted)'; '' when absent
    kind: str  # one of KINDS
    deleted: bool = False  # the DSO carried ' (deleted)': binary replaced since the process started


class StackKey(NamedTuple):
    event: str  # 'cpu-clock', 'sched:sched_switch', ...; 'folded' for folded input
    comm: str
    pid: int  # -1 when unknown
    tid: int  # -1 when unknown
    cpu: int  # -1 when unknown
    frames: tuple  # tuple[Frame, ...], root first, leaf last


class StackTable:
    """Aggregated samples: key -> [sample count, period sum], plus per-event totals."""

    MAX_WARNINGS = 50

    def __init__(self, source: str = "<stream>"):
        self.source = source
        self.rows: dict[StackKey, list[int]] = {}
        self.events: dict[str, list[int]] = {}
        self.has_period: dict[str, bool] = {}
        self.time_first: float | None = None
        self.time_last: float | None = None
        self.warnings: list[str] = []
        self._warned: set[str] = set()

    def add(self, key: StackKey, count: int = 1, period: int = 0) -> None:
        """Add `count` samples of `key`; a missing period weighs 1 per sample."""
        weight = period if period else count
        row = self.rows.get(key)
        if row is None:
            self.rows[key] = [count, weight]
        else:
            row[0] += count
            row[1] += weight
        totals = self.events.get(key.event)
        if totals is None:
            self.events[key.event] = [count, weight]
            self.has_period.setdefault(key.event, bool(period))
        else:
            totals[0] += count
            totals[1] += weight

    def see_time(self, t: float) -> None:
        if self.time_first is None or t < self.time_first:
            self.time_first = t
        if self.time_last is None or t > self.time_last:
            self.time_last = t

    def warn(self, kind: str, message: str) -> None:
        """Record a warning once per kind (e.g. 'orphan frame'), keeping the first location."""
        if not self.wants_warning(kind):
            return
        self._warned.add(kind)
        self.warnings.append(message)

    def wants_warning(self, kind: str) -> bool:
        """Whether a warning of `kind` would be recorded: a message that costs something to
        build (an excerpt of a bad line) is built only then, not once per bad line."""
        return kind not in self._warned and len(self.warnings) < self.MAX_WARNINGS

    def absorb(self, part: "StackTable") -> None:
        """Add the samples of `part`, a later stretch of the same recording (a time slice): rows
        new to this table come after its own, as one reading of the whole would have put them.
        `part` is emptied (its row lists move here). Its warnings are not carried over: they name
        its own lines and count its own samples (a caller whose part warned reads the whole)."""
        rows, events = self.rows, self.events
        for key, row in part.rows.items():
            mine = rows.get(key)
            if mine is None:
                rows[key] = row
            else:
                mine[0] += row[0]
                mine[1] += row[1]
        part.rows = {}
        for event, (count, weight) in part.events.items():
            totals = events.get(event)
            if totals is None:
                events[event] = [count, weight]
            else:
                totals[0] += count
                totals[1] += weight
        for event, has in part.has_period.items():
            self.has_period.setdefault(event, has)
        for t in (part.time_first, part.time_last):
            if t is not None:
                self.see_time(t)

    @property
    def samples(self) -> int:
        return sum(v[0] for v in self.events.values())

    @property
    def duration_s(self) -> float | None:
        if self.time_first is None or self.time_last is None:
            return None
        return self.time_last - self.time_first

    def __len__(self) -> int:
        return len(self.rows)
