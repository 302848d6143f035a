"""From matched share to estimated throughput gain, with a range and a confidence.

Removing a fraction x = s·r of the bottleneck's busy time lets the same CPUs serve
1/(1 − x) times the work: the case study's `nf_hook_slow` at 18% (r ≈ 1) predicts +22%,
which is what it reported. The share that matters is the share on the saturated CPUs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..profile import SATURATED_PCT, SPARE_PCT, Profile

#: The estimate never claims more than removing this fraction of the bottleneck.
MAX_REMOVED = 0.95
TIERS = ((10.0, "high"), (3.0, "medium"), (0.0, "low"))
CONFIDENCE_ORDER = {"high": 0, "medium": 1, "low": 2}
RISK_ORDER = {"low": 0, "medium": 1, "high": 2}


@dataclass
class Bottleneck:
    kind: str  # all-saturated | some-saturated | not-cpu-bound | unknown
    cpus: list[int] | None  # CPUs whose busy time is the denominator; None = all samples
    note: str
    basis: str  # 'throughput' when some CPU is saturated, else 'cpu_time'


def find_bottleneck(profile: Profile) -> Bottleneck:
    """Which CPUs limit throughput: the saturated ones, if any."""
    cpus = profile.cpus()
    if cpus.empty:
        return Bottleneck("unknown", None,
                          "samples carry no CPU number: shares are over all busy samples and the box "
                          "is assumed CPU-bound", "throughput")
    sat = cpus[cpus["saturated"]]
    spare = cpus[cpus["busy_pct"] < SPARE_PCT]
    listing = ", ".join(f"cpu{int(c)} {b:.0f}%" for c, b in zip(cpus["cpu"], cpus["busy_pct"]))
    if len(sat) == len(cpus):
        return Bottleneck("all-saturated", None, f"all CPUs saturated ({listing})", "throughput")
    if len(sat):
        ids = [int(c) for c in sat["cpu"]]
        note = (f"CPUs {_cpulist(ids)} saturated while others have spare time ({listing}): "
                f"estimates use the saturated CPUs only")
        if spare.empty:
            note += "; the rest are busy too, so the gain may be shared"
        return Bottleneck("some-saturated", ids, note, "throughput")
    return Bottleneck("not-cpu-bound", None,
                      f"no CPU is saturated (busiest {cpus['busy_pct'].max():.0f}%, threshold "
                      f"{SATURATED_PCT:.0f}%): figures are CPU time saved (capacity), not current "
                      f"throughput ({listing})", "cpu_time")


def _cpulist(ids: list[int]) -> str:
    return ",".join(str(i) for i in sorted(ids))


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


@dataclass
class Estimate:
    share: float  # matched fraction of bottleneck busy time (0..1)
    removed: float  # s·r
    gain_pct: float
    low_pct: float
    high_pct: float
    confidence: str
    model: str


def from_share(s: float, n: int, removable: float, removable_range: tuple[float, float],
               confidence: str, model: str = "share") -> Estimate:
    lo_s, hi_s = share_interval(s, n)
    return Estimate(
        share=s, removed=s * removable, gain_pct=gain_pct(s * removable),
        low_pct=gain_pct(lo_s * removable_range[0]), high_pct=gain_pct(hi_s * removable_range[1]),
        confidence=confidence, model=model)


def from_removed(removed: tuple[float, float, float], share: float, confidence: str,
                 model: str) -> Estimate:
    """For models that estimate the removed fraction directly (low, mid, high)."""
    lo, mid, hi = removed
    return Estimate(share=share, removed=mid, gain_pct=gain_pct(mid), low_pct=gain_pct(lo),
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
