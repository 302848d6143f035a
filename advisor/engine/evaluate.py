"""Run every rule over the evidence: a recommendation, a clean bill, or "not evaluated: why".

The models are written once here; rules only choose one and give its numbers:
- share: the matched busy share on the bottleneck CPUs times the removable fraction;
- kernel-share: diffuse costs (retpolines, return thunks, barriers) that hide in every kernel
  function: a fraction of the kernel's share of busy time, low confidence;
- entry-rate: costs paid on every kernel entry (PTI, MDS buffer clearing): entries per second
  times a cost per entry, falling back to kernel-share when entries were not counted;
- imbalance: some CPUs saturated while others idle: the spare capacity is the gain.
"""

from __future__ import annotations

from ..evidence import Evidence
from ..profile import SPARE_PCT
from .commands import fill
from .conditions import Verdict, check_all, lookup
from .estimate import (Bottleneck, Estimate, find_bottleneck, from_removed, from_share,
                       rank_key, sample_confidence, scoped_bottleneck, system_bottleneck, tier)
from .rules import Rule


class Outcome:
    """What became of one rule; a model builds it, the checks after the model add to it."""

    __slots__ = ("rule", "status", "reason", "share_pct", "estimate", "evidence", "matched")

    def __init__(self, rule: Rule, status: str, reason: str = "", share_pct: float | None = None,
                 estimate: Estimate | None = None, evidence: list[str] | None = None,
                 matched: list[dict] | None = None):
        self.rule = rule
        self.status = status  # 'recommend' | 'clean' | 'not_evaluated'
        self.reason = reason
        self.share_pct = share_pct
        self.estimate = estimate
        self.evidence = [] if evidence is None else evidence
        self.matched = [] if matched is None else matched

    def __repr__(self) -> str:
        return f"<Outcome {self.rule.id}: {self.status}>"


class _Skip(Exception):
    """Raised inside a model: ends evaluation with status and reason."""

    def __init__(self, status: str, reason: str, share_pct: float | None = None):
        super().__init__(reason)
        self.status, self.reason, self.share_pct = status, reason, share_pct


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _verdicts(rule: Rule, ev: Evidence) -> tuple[Verdict, Verdict, Verdict]:
    """(requires, state, counters), each saying why when its data is absent."""
    def judge(conds, data, part):
        v = check_all(conds, data)
        return Verdict(None, ev.why_missing(part)) if v.holds is None and data is None else v
    return (judge(rule.requires, ev.system, "system"), judge(rule.state, ev.system, "system"),
            judge(rule.counters, ev.counters, "counters"))


def _gate(rule: Rule, requires: Verdict, state: Verdict, counters: Verdict) -> None:
    """Stop when the remedy does not apply, or when required data is absent.

    Preconditions (`requires`) always decide. Corroborating state does not stop a rule that
    matches samples: the samples see every network namespace and process while state is read
    in one, so the samples decide and the disagreement is reported (see _model_share).
    """
    if requires.holds is False:
        raise _Skip("clean", f"does not apply: {requires.detail}")
    if rule.requires.required and requires.holds is None:
        raise _Skip("not_evaluated", f"needs system state: {requires.detail}")
    samples_decide = rule.uses_profile and rule.model == "share"
    if state.holds is False and not samples_decide:
        raise _Skip("clean", f"system state: {state.detail}")
    if counters.holds is False and not samples_decide:
        raise _Skip("clean", f"counters: {counters.detail}")
    if rule.state.required and state.holds is None:
        raise _Skip("not_evaluated", f"needs system state: {state.detail}")
    if rule.counters.required and counters.holds is None:
        raise _Skip("not_evaluated", f"needs counters: {counters.detail}")


def target_program(ev: Evidence) -> str | None:
    """The program a code change would touch: the target the recording was made for (`advise run
    --comm nginx`), else the --comm filter. The filter chooses which samples count (the lab keeps
    nginx and wrk, the two programs that share the CPUs); it does not make wrk the server."""
    recorded = ev.meta.get("target") if isinstance(ev.meta.get("target"), dict) else {}
    for target in (recorded.get("comm"), ev.profile.filters.get("comm")):
        if isinstance(target, str) and target:
            return target
    return None


def _need_profile(rule: Rule, ev: Evidence, kernel: bool | None = None) -> None:
    p = ev.profile
    kernel = rule.kernel_symbols if kernel is None else kernel
    if p.busy_samples == 0:
        raise _Skip("not_evaluated", "no busy samples in the profile"
                    + (f" for filter {p.filters}" if any(p.filters.values()) else ""))
    if kernel and p.has_kinds and not p.has_kernel_frames:
        raise _Skip("not_evaluated", "the recording has no kernel frames (record with "
                    "`perf record -a -g` and readable kernel symbols, kernel.kptr_restrict=0)")


def _matched_list(share, limit: int = 6, scale: float = 1.0) -> list[dict]:
    """The top matched frames, each a share of the bottleneck's busy time (`scale`: the sampled
    part of it, below 1 when perf sampled only the target)."""
    total = share.busy_weight or 1.0
    return [{"symbol": sym, "share_pct": round(100.0 * w * scale / total, 2)}
            for sym, w in share.symbols.most_common(limit)]


def _patterns_found(rule: Rule, share) -> str:
    """The rule's patterns that matched a frame here: a machine running bbr shows `bbr_*`, not the
    list's first pattern (`cubictcp_*`); the first one when no frame matched."""
    found = {rule.symbols.pattern_of(symbol) for symbol in share.symbols}
    return ", ".join([p for p in rule.symbols.patterns if p in found] or rule.symbols.patterns[:1])


def _share_evidence(rule: Rule, share, bottleneck: Bottleneck) -> list[str]:
    where = "on saturated CPUs " + ",".join(map(str, bottleneck.cpus)) if bottleneck.cpus else ""
    of_target = f" ({share.pct:.1f}% of the target's)" if bottleneck.scale < 1.0 else ""
    lines = [f"{_patterns_found(rule, share)} family: {share.pct * bottleneck.scale:.1f}% of busy time {where}"
             f"({share.samples} of {share.busy_samples} busy samples){of_target}".replace("  ", " ")]
    if share.symbols:
        tops = ", ".join(f"{m['symbol']} {m['share_pct']:.1f}%"
                         for m in _matched_list(share, 4, bottleneck.scale))
        lines.append(f"matched frames: {tops}")
    if rule.under:
        lines.append(f"counted only under {', '.join(rule.under.patterns)}")
    if share.comms and share.weight:
        per = ", ".join(f"{c} {100 * w / share.weight:.0f}%" for c, w in share.comms.most_common(4))
        lines.append(f"by process: {per}")
    if len(share.per_cpu) > 1:
        per = ", ".join(f"cpu{c} {100 * w / share.weight:.0f}%" for c, w in sorted(share.per_cpu.items()))
        lines.append(f"where the matched time ran: {per}")
    return lines


def _model_share(rule: Rule, ev: Evidence, bn: Bottleneck, state: Verdict, counters: Verdict) -> Outcome:
    _need_profile(rule, ev)
    target = target_program(ev) if rule.scope == "target" else None
    share = ev.profile.share(rule.symbols, rule.under, rule.exclude_below, rule.mode, bn.cpus,
                             comms=target)
    out = Outcome(rule, "recommend", evidence=_share_evidence(rule, share, bn),
                  matched=_matched_list(share, scale=bn.scale))
    if rule.scope == "target":
        out.evidence.append(f"counted only in the target program {target!r} (the remedy changes its code)"
                            if target else "no target program named (--comm or the bundle's target): "
                            "counted in every process")
    present = (ev.system or {}).get("kernel_symbols")
    if share.samples == 0 and isinstance(present, dict) and present.get(rule.id) is False:
        raise _Skip("not_evaluated", "none of its symbols exist in this kernel (/proc/kallsyms): "
                    "the feature is compiled out, or renamed (then add the new names to the rule)")
    contradicted = [f"{name}: {v.detail}" for name, v in (("system state", state), ("counters", counters))
                    if v.holds is False]
    pct = share.pct * bn.scale  # of the CPUs' busy time, also when perf sampled only the target
    if pct < rule.min_share_pct:
        reason = f"{pct:.2f}% of busy time ({share.samples} samples)"
        if bn.scale < 1.0:
            reason += f": {share.pct:.2f}% of the target's, which ran {100 * bn.scale:.0f}% of it"
        raise _Skip("clean", "; ".join([f"{reason}, below the {rule.min_share_pct}% threshold",
                                        *contradicted]), pct)
    conf = sample_confidence(share.samples, state.holds is True or not rule.state)
    if contradicted:
        conf = "low" if conf != "high" else "medium"
        out.evidence.append("the samples show this cost although " + "; ".join(contradicted)
                            + " (state is read in one network namespace or process set; samples cover all)")
    out.estimate = from_share(share.fraction, share.busy_samples, rule.removable, rule.removable_range,
                              conf, scale=bn.scale)
    _say_scaled(bn, out.evidence)
    return out


def _say_scaled(bn: Bottleneck, evidence: list[str]) -> None:
    """When perf sampled only the target, part of the CPUs' busy time, the shares above are of
    the target's time and the estimate is of the whole CPUs: say so."""
    if bn.scale < 1.0:
        evidence.append(f"perf sampled only the target, {100 * bn.scale:.0f}% of the busy time: "
                        "the estimate is scaled to the whole CPUs")


def _direct_frames(rule: Rule, ev: Evidence, bn: Bottleneck):
    if not rule.symbols:
        return None
    return ev.profile.share(rule.symbols, rule.under, rule.exclude_below, rule.mode, bn.cpus)


def _model_kind_share(rule: Rule, ev: Evidence, bn: Bottleneck, state: Verdict,
                      counters: Verdict | None = None, prefix: list[str] | None = None) -> Outcome:
    """A fraction of all kernel (or user) time: for costs spread thin over every function."""
    kind = "user" if rule.model == "user-share" else "kernel"
    _need_profile(rule, ev, kernel=kind == "kernel")
    p = ev.profile
    if not p.has_kinds:
        raise _Skip("not_evaluated", f"frames carry no kernel/user kind, so the {kind} share is unknown")
    direct = _direct_frames(rule, ev, bn)
    evidence = list(prefix or [])
    if state.holds is None:
        if direct is None:
            raise _Skip("not_evaluated", f"state unknown ({state.detail}); this cost leaves no "
                        "frames of its own in samples, so it cannot be told from the profile")
        if direct.samples == 0:
            raise _Skip("not_evaluated", f"state unknown ({state.detail}) and none of its frames "
                        f"among {p.busy_samples} busy samples")
        evidence.append(f"active: its frames appear in the samples ({direct.pct:.2f}% of busy "
                        f"time); state not recorded ({state.detail})")
    else:
        evidence.append(f"active: {state.detail}")
    lo_f, hi_f = rule.fraction
    k = p.kind_share(kind, bn.cpus).fraction
    floor = direct.fraction if direct is not None else 0.0
    of = "the target's busy time" if bn.scale < 1.0 else "busy time"
    evidence.append(f"{kind} share of {of}: {_pct(k)}; modelled as {_pct(lo_f)}-{_pct(hi_f)} "
                    f"of {kind} time (a diffuse cost, barely visible as samples)")
    if direct is not None and direct.samples:
        evidence.append(f"directly visible in its own frames: {direct.pct:.2f}% of busy time")
    # The central figure is the conservative end: a diffuse cost is a model, not a measurement,
    # and must not outrank measured findings on a guess. The range shows how large it may be.
    removed = (floor, max(floor, k * lo_f), max(floor, k * hi_f))
    est = from_removed(removed, removed[1], "low", rule.model, scale=bn.scale)
    _say_scaled(bn, evidence)
    return Outcome(rule, "recommend", estimate=est, evidence=evidence,
                   matched=_matched_list(direct, scale=bn.scale) if direct is not None else [])


def _rate(counters: dict, path: str) -> float | None:
    """A non-negative number at `path`, or None when absent or not a number (bad input is ignored)."""
    values, _ = lookup(counters, path)
    value = values[0] if values else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        return None
    return float(value)


def _model_entry_rate(rule: Rule, ev: Evidence, bn: Bottleneck, state: Verdict, counters: Verdict) -> Outcome:
    entries = None
    lower_bound = bool(lookup(ev.counters, "syscalls.per_sec_is_lower_bound")[0]) if ev.counters else False
    if ev.counters and not lower_bound:  # a lower bound (read/write families only) would understate
        syscalls = _rate(ev.counters, "syscalls.per_sec")
        if syscalls is not None:
            entries = syscalls + (_rate(ev.counters, "hardirqs.per_sec") or 0.0)
    if entries is None:
        return _model_kind_share(rule, ev, bn, state, counters, prefix=[
            "kernel entries per second not counted (counters.json has no full syscall rate: "
            "`advise run --bpf syscalls` counts it): estimated from the kernel share instead"])
    _need_profile(rule, ev)
    if state.holds is None:
        raise _Skip("not_evaluated", f"mitigation state unknown: {state.detail}")
    # The entries are counted machine-wide (or for the target alone: then fewer than there were),
    # so their cost is a fraction of every CPU's busy time, taken to be spread as that busy time
    # is, and so the same fraction of the bottleneck CPUs'. Per-CPU busy time from /proc/stat when
    # the bundle read it, else from the samples; without CPU numbers, the machine's.
    assumed = []
    if bn.utilisation:
        busy_ns = bn.busy_cpus() * 1e9
    else:
        busy_ns = ev.profile.busy_pct / 100.0 * (ev.cpu_count or 1) * 1e9
        if bn.target_only:  # its samples have no idle time: every CPU counts as busy
            assumed = ["per-CPU utilisation was not counted: every CPU is taken as busy, so the "
                       "estimate is at its lowest"]
    if busy_ns <= 0:
        raise _Skip("not_evaluated", "no busy time recorded")
    lo_c, hi_c = rule.cost_ns_per_entry
    removed = tuple(min(0.95, entries * c / busy_ns) for c in (lo_c, (lo_c + hi_c) / 2, hi_c))
    est = from_removed(removed, removed[1], "low", rule.model)
    evidence = [f"mitigation active: {state.detail}",
                f"{entries:,.0f} kernel entries/s (syscalls + hard interrupts) at "
                f"{lo_c:.0f}-{hi_c:.0f} ns each over {busy_ns / 1e9:.2f} busy CPU-s per second", *assumed]
    return Outcome(rule, "recommend", estimate=est, evidence=evidence)


def _model_imbalance(rule: Rule, ev: Evidence, bn: Bottleneck, state: Verdict, counters: Verdict) -> Outcome:
    cpus = bn.utilisation  # from /proc/stat when the bundle read it, else from the samples
    if not cpus:
        raise _Skip("not_evaluated", "samples carry no CPU number, so per-CPU balance is unknown")
    if bn.kind != "some-saturated":
        raise _Skip("clean", f"no saturated CPU next to an idle one: {bn.note}")
    sat = [c for c in cpus if c.saturated]
    spare = [c for c in cpus if c.busy_pct < SPARE_PCT]  # a CPU at 70% is no idle capacity to speak of
    if not spare:
        raise _Skip("clean", f"the CPUs that are not saturated are busy too: {bn.note}")
    spare_capacity = float(sum((100.0 - c.busy_pct) / 100.0 for c in spare))
    k = len(sat)
    lo_r, hi_r = rule.removable_range
    gains = tuple(100.0 * r * spare_capacity / k for r in (lo_r, rule.removable, hi_r))
    est = Estimate(share=spare_capacity / len(cpus), removed=0.0, gain_pct=gains[1],
                   low_pct=gains[0], high_pct=gains[2],
                   confidence="medium" if state.holds else "low", model="imbalance")
    evidence = [bn.note, f"spare capacity on the other CPUs: {spare_capacity:.2f} CPU"]
    procs = ev.profile.process_stats()[:3]
    evidence.append("busiest processes: " + ", ".join(f"{p.comm} {p.busy_pct:.0f}%" for p in procs))
    if state.detail:
        evidence.append(f"system state: {state.detail}")
    return Outcome(rule, "recommend", estimate=est, evidence=evidence)


_MODELS = {"share": _model_share, "kernel-share": _model_kind_share, "user-share": _model_kind_share,
           "entry-rate": _model_entry_rate, "imbalance": _model_imbalance}


def evaluate_rule(rule: Rule, ev: Evidence, bottleneck: Bottleneck) -> Outcome:
    requires, state, counters = _verdicts(rule, ev)
    try:
        _gate(rule, requires, state, counters)
        out = _MODELS[rule.model](rule, ev, bottleneck, state, counters)
    except _Skip as skip:
        return Outcome(rule, skip.status, skip.reason, skip.share_pct)
    if rule.requires and requires.holds is None:
        out.evidence.append(f"preconditions not confirmed: {requires.detail}")
        if out.estimate.confidence != "low":
            lowered = "medium" if out.estimate.confidence == "high" else "low"
            out.estimate = out.estimate._replace(confidence=lowered)
    elif rule.requires and requires.detail:
        out.evidence.append(f"applies: {requires.detail}")
    if rule.state and state.holds is None:
        out.evidence.append(f"system state not confirmed: {state.detail}")
    elif rule.state and state.detail and state.detail not in " ".join(out.evidence):
        out.evidence.append(f"system state: {state.detail}")
    if rule.counters and counters.detail:
        out.evidence.append(f"counters: {counters.detail}")
    return out


def recommendation(out: Outcome, bottleneck: Bottleneck, ev: Evidence) -> dict:
    rule, est = out.rule, out.estimate
    commands, missing = fill(rule.commands, rule, ev.system, ev.meta)
    rollback, missing_back = fill(rule.rollback, rule, ev.system, ev.meta)
    evidence = list(out.evidence)
    if missing | missing_back:
        evidence.append("commands to complete by hand: " + ", ".join(sorted(missing | missing_back))
                        + " (not in the recorded system state)")
    return {
        "rule": rule.id, "title": rule.title, "category": rule.category,
        "estimated_gain_pct": round(est.gain_pct, 2), "gain_low_pct": round(est.low_pct, 2),
        "gain_high_pct": round(est.high_pct, 2), "basis": bottleneck.basis,
        "confidence": est.confidence, "tier": tier(est.gain_pct),
        "share_pct": round(100.0 * est.share, 2), "removable": rule.removable, "model": est.model,
        "evidence": evidence, "matched": out.matched,
        "commands": commands, "rollback": rollback, "risk": rule.risk,
        "weakens_security": rule.weakens_security, "caveat": rule.caveat,
        "reference": {"section": rule.section, "reported_gain_pct": rule.reported_gain_pct,
                      "observed": rule.observed},
    }


def evaluate(rules: list[Rule], ev: Evidence) -> tuple[Bottleneck, list[dict], list[dict], list[dict]]:
    """(bottleneck, ranked recommendations, clean, not evaluated)."""
    bottleneck = (scoped_bottleneck(ev.meta, ev.counters, ev.profile)
                  or system_bottleneck(ev.meta, ev.counters, ev.profile) or find_bottleneck(ev.profile))
    recs, clean, skipped = [], [], []
    for rule in rules:
        out = evaluate_rule(rule, ev, bottleneck)
        if out.status == "recommend":
            recs.append(recommendation(out, bottleneck, ev))
        elif out.status == "clean":
            share = None if out.share_pct is None else round(out.share_pct, 2)
            clean.append({"rule": rule.id, "share_pct": share, "reason": out.reason})
        else:
            skipped.append({"rule": rule.id, "reason": out.reason})
    recs.sort(key=rank_key)
    for i, rec in enumerate(recs, 1):
        rec["rank"] = i
    return bottleneck, recs, clean, skipped
