"""Before/after: what moved between two recordings, and whether a remedy did what it promised.

`diff(before, after)` analyses both (bundles, samples files or `Result`s) and compares:
per-symbol shares of busy time (self and inclusive, the top movers), the recommendations
that disappeared, appeared or changed (gain delta), and the measured throughput change
when both bundles carry it (meta.json load.requests_per_sec). `DiffResult.regressions(pct)`
is the CI gate: recommendations that appear or grow in AFTER and reach `pct`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from .analysis import Result, analyze
from .errors import InputError
from .profile import counts_time
from .report import gain, pct, printable

if TYPE_CHECKING:  # pandas is imported where a DataFrame is built: `import advisor` stays light
    import pandas as pd

SCHEMA_VERSION = "1"
#: Gain deltas smaller than this (percentage points) are "unchanged": sampling noise.
MIN_CHANGE = 0.5
TOP_MOVERS = 15
SYMBOL_COLUMNS = ["symbol", "kind", "self_before", "self_after", "self_delta", "inclusive_before",
                  "inclusive_after", "inclusive_delta"]
REC_COLUMNS = ["rule", "status", "gain_before", "gain_after", "gain_delta", "range_before", "range_after",
               "rank_before", "rank_after", "title", "note"]


def _result(source, **kwargs) -> Result:
    return source if isinstance(source, Result) else analyze(source, **kwargs)


def diff(before, after, *, comm: str | None = None, pid: int | None = None, event: str | None = None,
         rules_dir: str | Path | None = None, min_change: float = MIN_CHANGE) -> "DiffResult":
    """Compare two recordings (paths or `Result`s); the filters apply to both.

    >>> from advisor.paths import samples_dir
    >>> d = diff(samples_dir() / "netfilter", samples_dir() / "baseline")
    >>> d.recommendation("netfilter")["status"], d.regressions(5.0)
    ('disappeared', [])
    >>> d.movers(1, by="self")["symbol"].tolist()
    ['nft_do_chain']
    """
    kwargs = {"comm": comm, "pid": pid, "event": event, "rules_dir": rules_dir}
    return DiffResult(_result(before, **kwargs), _result(after, **kwargs), min_change)


def symbol_deltas(before, after) -> pd.DataFrame:
    """Self and inclusive share of busy time per symbol in both profiles, and the change (points)."""
    import pandas as pd

    a = before.top(None).set_index("symbol")
    b = after.top(None).set_index("symbol")
    symbols = a.index.union(b.index)
    a, b = a.reindex(symbols), b.reindex(symbols)
    out = pd.DataFrame({
        "symbol": symbols,
        "kind": a["kind"].fillna(b["kind"]).values,
        "self_before": a["self_pct"].fillna(0.0).values, "self_after": b["self_pct"].fillna(0.0).values,
        "inclusive_before": a["inclusive_pct"].fillna(0.0).values,
        "inclusive_after": b["inclusive_pct"].fillna(0.0).values,
    })
    out["self_delta"] = out["self_after"] - out["self_before"]
    out["inclusive_delta"] = out["inclusive_after"] - out["inclusive_before"]
    out["moved"] = out[["self_delta", "inclusive_delta"]].abs().max(axis=1)
    out = out.sort_values(["moved", "symbol"], ascending=[False, True]).reset_index(drop=True)
    return out[SYMBOL_COLUMNS]


def _fate(data: dict, rule: str, side: str) -> str:
    """What the other side says about a rule it does not recommend."""
    for key, word in (("clean", "clean"), ("not_evaluated", "not evaluated")):
        for entry in data[key]:
            if entry["rule"] == rule:
                return f"{word} {side}: {entry['reason']}"
    return f"not among the rules {side}"


def recommendation_changes(before: dict, after: dict, min_change: float = MIN_CHANGE) -> pd.DataFrame:
    """One row per rule recommended on either side: appeared, disappeared, changed or unchanged
    (a gain delta under `min_change` points is sampling noise), the largest news first."""
    import pandas as pd

    a = {r["rule"]: r for r in before["recommendations"]}
    b = {r["rule"]: r for r in after["recommendations"]}
    rows = []
    for rule in list(b) + [r for r in a if r not in b]:
        ra, rb = a.get(rule), b.get(rule)
        ga = ra["estimated_gain_pct"] if ra else None
        gb = rb["estimated_gain_pct"] if rb else None
        if ra is None:
            status, note = "appeared", _fate(before, rule, "before")
        elif rb is None:
            status, note = "disappeared", _fate(after, rule, "after")
        else:
            status = "changed" if abs(gb - ga) >= min_change else "unchanged"
            note = ""
        rows.append({"rule": rule, "status": status, "gain_before": ga, "gain_after": gb,
                     "gain_delta": round((gb or 0.0) - (ga or 0.0), 2),
                     "range_before": gain(ra) if ra else "", "range_after": gain(rb) if rb else "",
                     "rank_before": ra["rank"] if ra else None, "rank_after": rb["rank"] if rb else None,
                     "title": (rb or ra)["title"], "note": note})
    order = {"appeared": 0, "changed": 1, "disappeared": 2, "unchanged": 3}
    rows.sort(key=lambda r: (order[r["status"]], -max(r["gain_before"] or 0.0, r["gain_after"] or 0.0)))
    out = pd.DataFrame(rows, columns=REC_COLUMNS)
    for column in ("rank_before", "rank_after"):
        out[column] = out[column].astype("Int64")
    for column in ("gain_before", "gain_after"):
        out[column] = out[column].astype("float64")
    return out


def throughput(before: dict, after: dict) -> dict | None:
    """Measured requests/s on both sides and the change (percent), when both recorded it."""
    rps = [((d.get("load") or {}).get("requests_per_sec")) for d in (before, after)]
    if any(not isinstance(x, (int, float)) or x <= 0 for x in rps):
        return None
    change = 100.0 * (rps[1] / rps[0] - 1.0)
    if not math.isfinite(change):  # 1e-300 against 1e300 req/s: no figure, and JSON has no inf
        return None
    return {"before_rps": float(rps[0]), "after_rps": float(rps[1]), "change_pct": round(change, 2),
            "tool": (after.get("load") or {}).get("tool")}


def comparable(before: Result, after: Result) -> None:
    """Shares of two events compare only when both stand for CPU time (cpu-clock against cycles,
    or against folded stacks, is fine): context switches against CPU time is no change at all."""
    events = before.profile.event, after.profile.event
    if events[0] != events[1] and not all(map(counts_time, events)) \
            and before.profile.samples and after.profile.samples:  # an empty side: all of it moved
        raise InputError(f"cannot compare {events[0]} samples ({before.profile.source}) with {events[1]} "
                         f"samples ({after.profile.source}): give --event EV, an event both recorded")


class DiffResult:
    """Two analyses side by side: `symbols`, `recommendations` (DataFrames), `throughput` (dict)."""

    def __init__(self, before: Result, after: Result, min_change: float = MIN_CHANGE):
        comparable(before, after)
        self.before, self.after = before, after
        self.min_change = min_change
        self.symbols = symbol_deltas(before.profile, after.profile)
        self.recommendations = recommendation_changes(before.data, after.data, min_change)
        self.throughput = throughput(before.data, after.data)

    def movers(self, n: int = TOP_MOVERS, by: str | None = None) -> pd.DataFrame:
        """The symbols whose share moved most (by the larger of self and inclusive, or `by`)."""
        if by is None:
            return self.symbols.head(n)
        column = {"self": "self_delta", "inclusive": "inclusive_delta"}[by]
        order = self.symbols[column].abs().sort_values(ascending=False, kind="stable").index
        return self.symbols.loc[order].head(n).reset_index(drop=True)

    def recommendation(self, rule: str) -> dict:
        """The change of one rule's recommendation (a row of `recommendations` as a dict)."""
        rows = self.recommendations[self.recommendations["rule"] == rule]
        if rows.empty:
            raise KeyError(f"{rule} is recommended on neither side")
        return _records(rows)[0]

    def regressions(self, threshold: float) -> list[dict]:
        """Recommendations that appeared or grew in AFTER and reach `threshold` percent."""
        r = self.recommendations
        worse = r[(r["gain_after"].notna()) & (r["gain_after"] >= threshold)
                  & ((r["status"] == "appeared") | ((r["status"] == "changed") & (r["gain_delta"] > 0)))]
        return _records(worse)

    # ------------------------------------------------------------------ views
    def to_dict(self, top: int = TOP_MOVERS) -> dict:
        side = lambda res: {"source": res.data["source"], "samples": res.data["profile"]["samples"],
                            "busy_pct": res.data["profile"]["busy_pct"],
                            "bottleneck": res.data["profile"]["bottleneck"]["kind"]}
        return {"schema_version": SCHEMA_VERSION, "kind": "advisor-diff",
                "before": side(self.before), "after": side(self.after),
                "throughput": self.throughput,
                "recommendations": _records(self.recommendations),
                "movers": {by: _records(self.movers(top, by=by).round(3)) for by in ("self", "inclusive")},
                "min_change_pct": self.min_change}

    def to_json(self, top: int = TOP_MOVERS) -> str:
        return json.dumps(self.to_dict(top), indent=2, allow_nan=False) + "\n"  # never "Infinity"

    def summary(self) -> list[str]:
        """The verdict in a few plain lines."""
        lines = []
        t = self.throughput
        if t:
            lines.append(f"throughput: {t['before_rps']:,.0f} -> {t['after_rps']:,.0f} req/s "
                         f"({t['change_pct']:+.1f}% measured)")
        else:
            lines.append("throughput: not recorded on both sides (meta.json load.requests_per_sec)")
        b, a = self.before.data["profile"], self.after.data["profile"]
        lines.append(f"busy: {pct(b['busy_pct'])} -> {pct(a['busy_pct'])} "
                     f"({b['samples']:,} -> {a['samples']:,} samples)")
        counts = self.recommendations["status"].value_counts()
        lines.append("recommendations: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in
                                                      ("disappeared", "appeared", "changed", "unchanged")))
        return lines

    def to_markdown(self, top: int = TOP_MOVERS) -> str:
        from .report.markdown import _code, _text  # the Markdown report's escaping rules

        out = ["# advisor diff", "",
               f"**Before:** {_code(self.before.data['source'])} · **After:** {_code(self.after.data['source'])}",
               ""]
        out += [f"- {_text(line)}" for line in self.summary()] + ["", "## Recommendations", ""]
        if self.recommendations.empty:
            out += ["No recommendation on either side.", ""]
        else:
            out += ["| rule | status | gain before | gain after | delta | note |", "|---|---|---:|---:|---:|---|"]
            for r in self.recommendations.itertuples():
                cells = [_code(r.rule, in_table=True), r.status, _text(r.range_before), _text(r.range_after),
                         f"{r.gain_delta:+.1f}", _text(r.note)]
                out.append("| " + " | ".join(cells) + " |")
            out.append("")
        for by in ("self", "inclusive"):
            out += [f"## Top movers by {by} share of busy time", "",
                    "| symbol | self before | self after | Δ self | incl. before | incl. after | Δ incl. |",
                    "|---|---:|---:|---:|---:|---:|---:|"]
            for s in self.movers(top, by=by).itertuples():
                out.append(f"| {_code(s.symbol, in_table=True)} | {s.self_before:.1f}% | {s.self_after:.1f}% | "
                           f"{s.self_delta:+.1f} | {s.inclusive_before:.1f}% | {s.inclusive_after:.1f}% | "
                           f"{s.inclusive_delta:+.1f} |")
            out.append("")
        return "\n".join(out)

    def __rich__(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        style = {"appeared": "bold red", "disappeared": "green", "changed": "yellow", "unchanged": "dim"}
        head = Text.assemble(("advisor diff  ", "bold"), printable(self.before.data["source"]), " -> ",
                             printable(self.after.data["source"]))
        facts = Text(printable("\n".join(self.summary())))
        recs = Table(title=Text("Recommendations", style="bold"), title_justify="left", expand=True)
        for col, justify in (("rule", "left"), ("status", "left"), ("before", "right"), ("after", "right"),
                             ("delta", "right")):
            recs.add_column(col, justify=justify, overflow="fold", no_wrap=col != "status")
        notes = Table.grid(padding=(0, 1))
        notes.add_column(no_wrap=True, style="dim bold")
        notes.add_column(style="dim")
        for r in self.recommendations.itertuples():
            recs.add_row(Text(r.rule, style="bold cyan"), Text(r.status, style=style[r.status]),
                         Text(r.range_before), Text(r.range_after), _delta(r.gain_delta))
            if r.note:
                notes.add_row(Text(f"  {r.rule} {r.status}:"), Text(printable(r.note)))
        parts = [head, facts, recs, notes]
        for by in ("self", "inclusive"):
            movers = Table(title=Text(f"Top movers by {by} share of busy time", style="bold"),
                           title_justify="left", expand=True)
            for col in ("symbol", "self", "Δ self", "inclusive", "Δ incl."):
                movers.add_column(col, justify="left" if col == "symbol" else "right", overflow="fold")
            for s in self.movers(10, by=by).itertuples():
                movers.add_row(Text(printable(s.symbol)), f"{s.self_before:.1f}% -> {s.self_after:.1f}%",
                               _delta(s.self_delta), f"{s.inclusive_before:.1f}% -> {s.inclusive_after:.1f}%",
                               _delta(s.inclusive_delta))
            parts.append(movers)
        return Group(*parts)

    def _repr_html_(self) -> str:
        from .report.html import e, notebook_view

        items = "".join(f"<li>{e(line)}</li>" for line in self.summary())
        columns = ["rule", "status", "range_before", "range_after", "gain_delta", "note"]
        recs = self.recommendations[columns].to_html(index=False, escape=True, na_rep="",
                                                     float_format=lambda v: f"{v:+.1f}")
        movers = "".join(f"<h4>Top movers by {by} share</h4>"
                         + self.movers(8, by=by).to_html(index=False, escape=True,
                                                         float_format=lambda v: f"{v:.2f}")
                         for by in ("self", "inclusive"))
        return notebook_view(f"<h3>{e(self.before.data['source'])} → {e(self.after.data['source'])}</h3>"
                             f"<ul>{items}</ul><h4>Recommendations</h4>{recs}{movers}")

    def plot(self, top: int = 10):
        """A matplotlib figure: the top movers' self share before/after, and the gains before/after."""
        import matplotlib.pyplot as plt

        movers = self.movers(top, by="self").iloc[::-1]
        recs = self.recommendations
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, max(3.5, 0.38 * max(len(movers), len(recs)) + 1.5)),
                                       layout="constrained")
        y = range(len(movers))
        ax1.barh([i + 0.2 for i in y], movers["self_before"], height=0.4, label="before", color="#9aa9bd")
        ax1.barh([i - 0.2 for i in y], movers["self_after"], height=0.4, label="after", color="#d62728")
        ax1.set_yticks(list(y), [s if len(s) <= 32 else s[:30] + ".." for s in movers["symbol"]], fontsize=8)
        ax1.set_xlabel("self share of busy time (%)")
        ax1.set_title("Top movers")
        ax1.legend(loc="lower right")
        y = range(len(recs))
        ax2.barh([i + 0.2 for i in y], recs["gain_before"].fillna(0), height=0.4, label="before", color="#9aa9bd")
        ax2.barh([i - 0.2 for i in y], recs["gain_after"].fillna(0), height=0.4, label="after", color="#d62728")
        ax2.set_yticks(list(y), [f"{r} ({s})" for r, s in zip(recs["rule"], recs["status"])], fontsize=8)
        ax2.invert_yaxis()
        ax2.set_xlabel("estimated gain (%)")
        ax2.set_title("Recommendations")
        ax2.legend(loc="lower right")
        t = self.throughput
        fig.suptitle(f"{self.before.data['source']} → {self.after.data['source']}"
                     + (f": throughput {t['change_pct']:+.1f}% measured" if t else ""))
        plt.close(fig)  # the caller shows or saves it; pyplot keeps no reference
        return fig

    def __repr__(self) -> str:
        counts = self.recommendations["status"].value_counts().to_dict()
        return (f"<DiffResult {self.before.data['source']!r} -> {self.after.data['source']!r}: "
                f"{counts}, throughput {self.throughput['change_pct']:+.1f}%>" if self.throughput else
                f"<DiffResult {self.before.data['source']!r} -> {self.after.data['source']!r}: {counts}>")


def _records(df: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts: missing values None, numbers plain Python (JSON-ready)."""
    return json.loads(df.to_json(orient="records", force_ascii=False))


def _delta(value: float):
    from rich.text import Text

    return Text(f"{value:+.1f}", style="red" if value > 0.05 else "green" if value < -0.05 else "dim")
