"""From matched share to estimated throughput gain, with a range and a confidence.

Removing a fraction x = s·r of the bottleneck's busy time lets the same CPUs serve
1/(1 − x) times the work: the case study's `nf_hook_slow` at 18% (r ≈ 1) predicts +22%,
which is what it reported. The share that matters is the share on the saturated CPUs.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..profile import SATURATED_PCT, SPARE_PCT, CpuStat, Profile

#: The estimate never claims more than removing this fraction of the bottleneck.
MAX_REMOVED = 0.95
TIERS = ((10.0, "high"), (3.0, "medium"), (0.0, "low"))
CONFIDENCE_ORDER = {"high": 0, "medium": 1, "low": 2}
RISK_ORDER = {"low": 0, "medium": 1, "high": 2}


class Bottleneck(NamedTuple):
    kind: str  # all-saturated | some-saturated | not-cpu-bound | unknown
    cpus: list[int] | None  # CPUs whose busy time is the denominator; None = all samples
    note: str
    basis: str  # 'throughput' when some CPU is saturated, else 'cpu_time'
    scale: float = 1.0  # the sampled part of the busy time (< 1 when perf sampled only the target)
    utilisation: tuple[CpuStat, ...] = ()  # per CPU, what the kind was decided on
    from_proc_stat: bool = False  # utilisation read from /proc/stat, not from the samples
    target_only: bool = False  # perf sampled only the target: the samples say nothing of utilisation

    def busy_cpus(self) -> float:
        """CPUs' worth of busy time, every CPU counted (not only the bottleneck's)."""
        return sum(c.busy_pct for c in self.utilisation) / 100.0


def classify(utilisation: list[CpuStat], note: str = "", scale: float = 1.0,
             from_proc_stat: bool = False, target_only: bool = False) -> Bottleneck:
    """Which CPUs limit throughput: the saturated ones, if any. `note` says where the figures
    come from; the kind and the CPUs are decided here, for every source alike."""
    listing = _listing(utilisation)
    extra = dict(scale=scale, utilisation=tuple(utilisation), from_proc_stat=from_proc_stat,
                 target_only=target_only)
    lead = f"{note}; " if note else ""
    sat = [c.cpu for c in utilisation if c.saturated]
    if len(sat) == len(utilisation):
        return Bottleneck("all-saturated", None, f"{lead}all CPUs saturated ({listing})", "throughput", **extra)
    if sat:
        text = (f"{lead}CPUs {_cpulist(sat)} saturated while others have spare time ({listing}): "
                f"estimates use the saturated CPUs only")
        if not any(c.busy_pct < SPARE_PCT for c in utilisation):
            text += "; the rest are busy too, so the gain may be shared"
        return Bottleneck("some-saturated", sat, text, "throughput", **extra)
    return Bottleneck("not-cpu-bound", None,
                      f"{lead}no CPU is saturated (busiest {max(c.busy_pct for c in utilisation):.0f}%, "
                      f"threshold {SATURATED_PCT:.0f}%): figures are CPU time saved (capacity), not current "
                      f"throughput ({listing})", "cpu_time", **extra)


def find_bottleneck(profile: Profile) -> Bottleneck:
    """The bottleneck as the samples show it (every CPU was sampled, idle time included)."""
    cpus = profile.cpu_stats()
    if not cpus:
        return Bottleneck("unknown", None,
                          "samples carry no CPU number: shares are over all busy samples and the box "
                          "is assumed CPU-bound", "throughput")
    return classify(cpus)


def _cpulist(ids: list[int]) -> str:
    return ",".join(str(i) for i in sorted(ids))


def _listing(utilisation: list[CpuStat]) -> str:
    return ", ".join(f"cpu{c.cpu} {c.busy_pct:.0f}%" for c in utilisation)


def gain_pct(removed: float) -> float:
    """Throughput gain (%) when a fraction `removed` of bottleneck busy time disappears."""
    removed = min(max(removed, 0.0), MAX_REMOVED)
    return 100.0 * (1.0 / (1.0 - removed) - 1.0)


def share_interval(s: float, n: int) -> tuple[float, float]:
    """About 95% sampling interval of a share measured on n samples (Wilson score)."""
    if n <= 0:
        return (0.0, 1.0)
    z = 1.96
    denom = 1 + z * z / n
    centre = (s + z * z / (2 * n)) / denom
    half = z * math.sqrt(s * (1 - s) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


class Estimate(NamedTuple):
    share: float  # matched fraction of bottleneck busy time (0..1)
    removed: float  # s·r
    gain_pct: float
    low_pct: float
    high_pct: float
    confidence: str
    model: str


def from_share(s: float, n: int, removable: float, removable_range: tuple[float, float],
               confidence: str, model: str = "share", scale: float = 1.0) -> Estimate:
    """`s`: the matched share of the sampled busy time, over `n` samples; `scale`: the sampled
    part of the bottleneck's busy time (below 1 when perf sampled only the target)."""
    lo_s, hi_s = share_interval(s, n)
    return Estimate(
        share=s * scale, removed=s * removable * scale, gain_pct=gain_pct(s * removable * scale),
        low_pct=gain_pct(lo_s * removable_range[0] * scale),
        high_pct=gain_pct(hi_s * removable_range[1] * scale), confidence=confidence, model=model)


def from_removed(removed: tuple[float, float, float], share: float, confidence: str,
                 model: str, scale: float = 1.0) -> Estimate:
    """For models that estimate the removed fraction directly (low, mid, high); `scale` as in
    from_share."""
    lo, mid, hi = (r * scale for r in removed)
    return Estimate(share=share * scale, removed=mid, gain_pct=gain_pct(mid), low_pct=gain_pct(lo),
                    high_pct=gain_pct(hi), confidence=confidence, model=model)


def sample_confidence(matched_samples: int, state_known: bool) -> str:
    """More matched samples and confirming system state give more confidence."""
    level = 0 if matched_samples >= 100 else 1 if matched_samples >= 20 else 2
    if not state_known:
        level = min(level + 1, 2)
    return ("high", "medium", "low")[level]


def tier(gain: float) -> str:
    for threshold, name in TIERS:
        if gain >= threshold:
            return name
    return "low"


def rank_key(rec: dict) -> tuple:
    """Higher gain first, then more confidence, then lower risk, then id for stability."""
    return (-round(rec["estimated_gain_pct"], 3), CONFIDENCE_ORDER[rec["confidence"]],
            RISK_ORDER[rec["risk"]], rec["rule"])


# ---------------------------------------------------------------- recordings of the target only

def scoped_bottleneck(meta: dict, counters: dict | None, profile: Profile) -> Bottleneck | None:
    """The bottleneck of a recording that sampled only the target (`--pid`, `--cgroup`); None for
    a recording of every CPU.

    Such a profile has no idle samples and none of the other processes, so per-CPU utilisation
    comes from /proc/stat (counters `cpu_time_pct`: not idle, iowait or steal), and `scale` is the
    target's part of the busy time (schedstat `target_cpus_used` over the busy CPUs): removing a
    fraction x of the target's time removes x·scale of the CPUs'. When only some CPUs are
    saturated, both are taken on those: the target's time there in proportion to its samples
    there. Time spent for the target outside its own threads (softirqs charged to other tasks,
    ksoftirqd) is in neither figure.
    """
    target = meta.get("target") if isinstance(meta.get("target"), dict) else {}
    if not target.get("scoped"):
        return None
    who = f"cgroup {target['cgroup']}" if target.get("cgroup") else f"process tree of {target.get('pid')}"
    counters = counters if isinstance(counters, dict) else {}
    sampled = {c.cpu: c.samples for c in profile.cpu_stats()}
    utilisation = proc_stat_utilisation(counters, sampled)
    if utilisation is None:
        return Bottleneck("unknown", None, f"perf sampled only the {who} and per-CPU utilisation was not "
                          "counted: shares are of the target's time, assumed to be the CPUs' busy time",
                          "throughput", target_only=True)
    busy = {c.cpu: c.busy_pct for c in utilisation}
    sched = counters.get("sched") if isinstance(counters.get("sched"), dict) else {}
    used = sched.get("target_cpus_used")
    # The scale is over the CPUs the shares are taken on: the saturated ones when only some are
    # (as classify decides), with the target's time on them in proportion to its samples there.
    saturated = [c.cpu for c in utilisation if c.saturated]
    cpus = saturated if saturated and len(saturated) < len(utilisation) else list(busy)
    busy_cpus = sum(busy[c] for c in cpus) / 100.0
    samples = sum(sampled.values())
    scale, why = 1.0, "its CPU time was not counted: assumed to be all of the busy time"
    if isinstance(used, (int, float)) and not isinstance(used, bool) and busy_cpus > 0:
        there = float(used)  # every CPU, or samples without CPU numbers: all of its time
        if len(cpus) < len(busy) and samples:
            there *= sum(sampled.get(c, 0) for c in cpus) / samples
        scale = min(1.0, max(0.001, there / busy_cpus))
        where = "" if len(cpus) == len(busy) else f" on CPUs {_cpulist(cpus)}"
        why = f"it ran {there:.2f} CPUs' worth of the {busy_cpus:.2f} busy{where}: estimates x{scale:.2f}"
    return classify(utilisation, f"perf sampled only the {who}, utilisation from /proc/stat; {why}",
                    scale, from_proc_stat=True, target_only=True)


def system_bottleneck(meta: dict, counters: dict | None, profile: Profile) -> Bottleneck | None:
    """The bottleneck of a bundle that sampled every CPU and read /proc/stat over the same
    window (`advise run`): each CPU's utilisation from /proc/stat, the shares from the samples.

    Why not from the samples: with cpu-clock, a CPU's sample count is not always its time. An
    idle CPU may record no sample for seconds, and then is missing or judged by a few kworker
    samples (saturated); a CPU busy with interrupts off loses the periods its timer overran.
    /proc/stat counts every tick of every CPU. None, and the samples decide, when /proc/stat
    was not read, when the samples carry no CPU numbers (the shares could not be taken per
    CPU), when they show a CPU /proc/stat does not (not the same machine), or when no busy
    sample ran on the CPUs /proc/stat finds saturated (there would be nothing to take a share
    of).
    """
    target = meta.get("target") if isinstance(meta.get("target"), dict) else {}
    if target.get("scoped") or not profile.has_cpu:
        return None
    sampled = profile.cpu_stats()
    utilisation = proc_stat_utilisation(counters, {c.cpu: c.samples for c in sampled})
    if utilisation is None or {c.cpu for c in sampled} - {c.cpu for c in utilisation}:
        return None
    bn = classify(utilisation, "utilisation from /proc/stat over the recording", from_proc_stat=True)
    if bn.cpus and not any(c.cpu in bn.cpus and c.busy_pct > 0 for c in sampled):
        return None
    by_samples = classify(sampled)
    if (by_samples.kind, by_samples.cpus) != (bn.kind, bn.cpus):
        bn = bn._replace(note=f"{bn.note}; the samples alone read {_listing(sampled)}, {by_samples.kind}: "
                                  "a CPU's cpu-clock samples can fall short of its time")
    return bn


def proc_stat_utilisation(counters: dict | None, sampled: dict[int, int]) -> list[CpuStat] | None:
    """Per CPU over the recording: busy % from counters.json's /proc/stat shares (not idle,
    iowait or steal, within 0-100), samples from `sampled` ({cpu: samples}); None when /proc/stat
    was not counted. An offline CPU has no figures and no entry."""
    counters = counters if isinstance(counters, dict) else {}
    pct = counters.get("cpu_time_pct") if isinstance(counters.get("cpu_time_pct"), dict) else {}
    idle = _numbers(pct.get("idle"))
    if all(i is None for i in idle):
        return None
    away = [_numbers(pct.get(name), len(idle)) for name in ("iowait", "steal")]
    busy = {c: min(100.0, max(0.0, 100.0 - i - sum(a[c] or 0.0 for a in away)))
            for c, i in enumerate(idle) if i is not None}
    return [CpuStat(c, sampled.get(c, 0), b, b >= SATURATED_PCT) for c, b in busy.items()]


def _numbers(values, length: int | None = None) -> list[float | None]:
    """Per-CPU numbers from counters.json: None for a CPU without any (offline: /proc/stat has no
    ticks for it), [] when it is not a list; padded with None to `length`."""
    if not isinstance(values, list):
        values = []
    numbers = [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None for v in values]
    return numbers if length is None else (numbers + [None] * length)[:length]
