"""analyze(): from a recording (bundle directory or samples file) to ranked recommendations.

The same path serves `advise analyze`, `advise run` (after it has collected) and notebooks.
"""

from __future__ import annotations

from pathlib import Path

from . import __version__
from .background import Background
from .bundle import open_bundle, read_samples
from .engine.evaluate import evaluate
from .engine.rules import Rule, load_rules
from .errors import InputError
from .evidence import Evidence
from .profile import Profile, counts_time

SCHEMA_VERSION = "1"


def load(path: str | Path, *, comm: str | None = None, pid: int | None = None,
         event: str | None = None) -> Evidence:
    """Read a bundle directory or a samples file into the evidence rules read."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or directory", str(path))
    if path.is_dir():
        bundle = open_bundle(path)
        table = read_samples(bundle)
        meta, system, counters, missing = bundle.meta, bundle.system, bundle.counters, bundle.missing
    else:
        from .parse.detect import read_samples as read_file

        table = read_file(path)
        meta, system, counters = {}, None, None
        missing = {p: f"{path.name} is a bare samples file: no {p}.json (record a bundle with "
                      f"`advise run --save DIR` to include it)" for p in ("system", "counters")}
    if event is not None and event not in table.events:
        from .parse.perf_script import event_base

        named = event
        event = event_base(event)  # as perf prints it, with its modifiers: cpu-clock:ppp
        if event not in table.events:
            known = ", ".join(sorted(table.events)) or "none"
            raise InputError(f"event {named!r} is not in the recording (events: {known})", str(path))
    profile = Profile(table, event=event, comm=comm, pid=pid)
    return Evidence(profile, system, counters, meta, str(path), missing)


class Result:
    """The outcome of an analysis: a plain dict (the JSON report) plus pandas views.

    The views import pandas when first asked for, so that `advise analyze` never does.
    """

    def __init__(self, data: dict, evidence: Evidence, rules: list[Rule]):
        self.data = data
        self.evidence = evidence
        self.rules = {r.id: r for r in rules}

    @property
    def profile(self) -> Profile:
        return self.evidence.profile

    @property
    def recommendations(self):
        import pandas as pd

        cols = ["rank", "rule", "title", "estimated_gain_pct", "gain_low_pct", "gain_high_pct",
                "confidence", "tier", "share_pct", "risk", "weakens_security", "basis"]
        return pd.DataFrame([{c: r[c] for c in cols} for r in self.data["recommendations"]],
                            columns=cols)

    @property
    def not_evaluated(self):
        import pandas as pd

        return pd.DataFrame(self.data["not_evaluated"], columns=["rule", "reason"])

    @property
    def clean(self):
        import pandas as pd

        return pd.DataFrame(self.data["clean"], columns=["rule", "share_pct", "reason"])

    def top(self) -> dict | None:
        recs = self.data["recommendations"]
        return recs[0] if recs else None

    def to_dict(self) -> dict:
        return self.data

    def recommendation(self, rule_id: str) -> "Recommendation":
        """One recommendation by rule id; KeyError says what became of a rule that has none.

        >>> from advisor.paths import samples_dir
        >>> result = analyze(samples_dir() / "netfilter")
        >>> rec = result.recommendation("netfilter")
        >>> rec.rank, rec.matched["symbol"].iloc[0]
        (1, 'nf_hook_slow')
        """
        for rec in self.data["recommendations"]:
            if rec["rule"] == rule_id:
                return Recommendation(rec, self.rules.get(rule_id))
        for key, what in (("clean", "is clean"), ("not_evaluated", "was not evaluated")):
            for entry in self.data[key]:
                if entry["rule"] == rule_id:
                    raise KeyError(f"{rule_id} {what}: {entry['reason']}")
        known = ", ".join(r["rule"] for r in self.data["recommendations"]) or "none"
        raise KeyError(f"no rule {rule_id!r} in this result (recommended: {known})")

    def flamegraph(self):
        """The profile's flame graph, each recommendation's matched frames in its colour.

        >>> from advisor.paths import samples_dir
        >>> graph = analyze(samples_dir() / "netfilter").flamegraph()
        >>> [h.rule for h in graph.highlights][0], graph.svg.startswith("<svg")
        ('netfilter', True)
        """
        from .report.flamegraph import for_result

        return for_result(self)

    def _repr_html_(self) -> str:
        from .report import html

        return html.result_view(self)

    def __rich__(self):
        from .report import terminal

        return terminal.renderable(self.data)

    def __repr__(self) -> str:
        top = self.top()
        first = f"{top['rule']} +{top['estimated_gain_pct']:.1f}%" if top else "none"
        return (f"<Result {self.data['source']!r}: {len(self.data['recommendations'])} "
                f"recommendations, first {first}>")


class Recommendation:
    """One ranked recommendation: its fields as attributes or keys, and views that show it.

    `data` is the dict of the JSON report; `rule` the Rule it came from (what it matches, why).
    """

    def __init__(self, data: dict, rule: Rule | None = None):
        self.data = data
        self.rule = rule

    def __getitem__(self, key: str):
        return self.data[key]

    def __getattr__(self, name: str):
        try:
            return self.__dict__["data"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def id(self) -> str:
        return self.data["rule"]

    @property
    def matched(self):
        """The frames that made samples count, with their share of busy time (percent), a DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.data["matched"], columns=["symbol", "share_pct"])

    def _repr_html_(self) -> str:
        from .report import html

        return html.notebook_view(html.recommendation_html(self.data))

    def __rich__(self):
        from .report import terminal

        return terminal.recommendation(self.data)

    def __repr__(self) -> str:
        from .report import gain

        return f"<Recommendation {self.data['rank']}. {self.id} {gain(self.data)}>"


def _profile_summary(p: Profile, bottleneck, top_n: int = 15) -> dict:
    """The report's `profile`. When perf sampled only the target, utilisation is /proc/stat's
    (the machine's, not the target's own), or unknown (None, no CPUs) when it was not counted:
    the target's samples have no idle time, so they would say 100%."""
    if bottleneck.from_proc_stat:
        utilisation = bottleneck.utilisation
        busy_pct = sum(c.busy_pct for c in utilisation) / len(utilisation)
    elif bottleneck.target_only:
        utilisation, busy_pct = [], None
    else:
        utilisation, busy_pct = p.cpu_stats(), p.busy_pct
    cpus = [{"cpu": c.cpu, "samples": c.samples, "busy_pct": round(c.busy_pct, 2), "saturated": c.saturated}
            for c in utilisation]
    return {
        "event": p.event, "events": p.events, "samples": p.samples, "busy_samples": p.busy_samples,
        "busy_pct": None if busy_pct is None else round(busy_pct, 2), "duration_s": p.duration_s,
        "cpus": cpus,
        "bottleneck": {"kind": bottleneck.kind, "cpus": bottleneck.cpus, "note": bottleneck.note,
                       "scale": bottleneck.scale},
        "top": [{"symbol": r.symbol, "dso": r.dso, "kind": r.kind, "self_pct": round(r.self_pct, 2),
                 "inclusive_pct": round(r.inclusive_pct, 2), "samples": int(r.self_samples)}
                for r in p.top_symbols(top_n)],
        "filters": dict(p.filters),
    }


def collectors_view(collectors: dict) -> dict:
    """The report's `collectors` ({name: {status, detail}}) from meta.json's fuller entries."""
    view = {}
    for name, entry in collectors.items():
        if isinstance(entry, dict):
            status = entry.get("status")
            view[str(name)] = {"status": status if status in ("ok", "unavailable", "failed") else "failed",
                               "detail": str(entry.get("detail") or "")}
    return view


def analyze_evidence(evidence: Evidence, rules: list[Rule] | None = None) -> Result:
    rules = rules if rules is not None else load_rules()
    bottleneck, recs, clean, skipped = evaluate(rules, evidence)
    warnings = list(evidence.profile.table.warnings)
    if evidence.profile.samples == 0:  # an empty file, or counts of 0: say why nothing is ranked, once
        warnings.append("no samples in the recording (none, or every count 0): nothing to rank")
    elif any(evidence.profile.filters.values()) and evidence.profile.busy_samples == 0:
        warnings.append(f"no busy samples match the filter {evidence.profile.filters}")
    if evidence.profile.samples and not counts_time(evidence.profile.event):
        warnings.append(f"{evidence.profile.event} is not a CPU-time event: its samples count events, so the "
                        "utilisation, the saturated CPUs and every share here are of those events, not of "
                        "time (record cpu-clock, as `advise run` does)")
    data = {
        "schema_version": SCHEMA_VERSION,
        "source": evidence.source,
        "generated_by": f"advisor {__version__}",
        "profile": _profile_summary(evidence.profile, bottleneck),
        "recommendations": recs,
        "clean": clean,
        "not_evaluated": skipped,
        "warnings": warnings,
    }
    if evidence.meta.get("load"):
        data["load"] = {k: evidence.meta["load"].get(k) for k in ("tool", "requests_per_sec")}
    if isinstance(evidence.meta.get("collectors"), dict):  # written by `advise run`
        data["collectors"] = collectors_view(evidence.meta["collectors"])
    return Result(data, evidence, rules)


def analyze(path: str | Path, *, comm: str | None = None, pid: int | None = None,
            event: str | None = None, rules_dir: str | Path | None = None) -> Result:
    """Analyse a recording bundle or samples file and rank the remedies.

    >>> from advisor.paths import samples_dir
    >>> r = analyze(samples_dir() / "netfilter")
    >>> r.top()["rule"], r.profile.samples
    ('netfilter', 4525)
    >>> list(r.recommendations.columns[:4])
    ['rank', 'rule', 'title', 'estimated_gain_pct']
    >>> bool(r.recommendations.loc[0, "estimated_gain_pct"] > 20)
    True
    >>> analyze(samples_dir() / "netfilter", comm="nginx").profile.filters
    {'comm': 'nginx', 'pid': None}
    """
    # The rules load while the samples are read: perf script spends its first ~0.1 s loading
    # symbols before it prints anything, time the main thread only waits.
    rules = Background(load_rules, Path(rules_dir) if rules_dir else None)
    try:
        evidence = load(path, comm=comm, pid=pid, event=event)
    finally:
        rules.join()  # a bad input is reported before a bad rule, as in sequence
    return analyze_evidence(evidence, rules.result())

