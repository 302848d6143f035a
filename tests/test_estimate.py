"""The estimator: calibration, ranges, confidence, bottleneck choice, ranking."""

import pytest

from advisor.engine import estimate as est
from advisor.profile import Profile

from .stacks import IDLE, SERVE, table


def test_case_study_calibration_point():
    # nf_hook_slow at 18% of CPU, removed entirely -> the case study measured +22%.
    assert est.gain_pct(0.18) == pytest.approx(21.95, abs=0.01)


def test_gain_is_monotonic_and_capped():
    gains = [est.gain_pct(x / 100) for x in range(0, 100, 5)]
    assert gains == sorted(gains)
    assert est.gain_pct(2.0) == est.gain_pct(est.MAX_REMOVED)
    assert est.gain_pct(-1) == 0


def test_share_interval_narrows_with_samples_and_contains_the_share():
    lo1, hi1 = est.share_interval(0.2, 100)
    lo2, hi2 = est.share_interval(0.2, 10_000)
    assert lo1 < lo2 < 0.2 < hi2 < hi1
    assert est.share_interval(0.0, 50)[0] == 0.0


def test_from_share_range_brackets_the_estimate():
    e = est.from_share(0.18, 5000, 0.95, (0.8, 1.0), "high")
    assert e.low_pct < e.gain_pct < e.high_pct
    assert e.gain_pct == pytest.approx(est.gain_pct(0.18 * 0.95))


def test_confidence_depends_on_matched_samples_and_state():
    assert est.sample_confidence(500, True) == "high"
    assert est.sample_confidence(500, False) == "medium"
    assert est.sample_confidence(50, True) == "medium"
    assert est.sample_confidence(5, True) == "low"


def test_bottleneck_all_saturated():
    p = Profile(table([("nginx", 0, SERVE, 100), ("nginx", 1, SERVE, 95), ("swapper/1", 1, IDLE, 5)]))
    b = est.find_bottleneck(p)
    assert b.kind == "all-saturated" and b.cpus is None and b.basis == "throughput"


def test_bottleneck_some_saturated_uses_those_cpus():
    p = Profile(table([("nginx", 0, SERVE, 100), ("nginx", 1, SERVE, 10), ("swapper/1", 1, IDLE, 90)]))
    b = est.find_bottleneck(p)
    assert b.kind == "some-saturated" and b.cpus == [0]


def test_bottleneck_not_cpu_bound_reports_cpu_time():
    p = Profile(table([("nginx", 0, SERVE, 30), ("swapper/0", 0, IDLE, 70)]))
    b = est.find_bottleneck(p)
    assert b.kind == "not-cpu-bound" and b.basis == "cpu_time"


def test_bottleneck_unknown_without_cpu_numbers():
    p = Profile(table([("nginx", -1, SERVE, 30)]))
    assert est.find_bottleneck(p).kind == "unknown"


def test_rank_gain_then_confidence_then_risk():
    recs = [
        {"rule": "a", "estimated_gain_pct": 5.0, "confidence": "low", "risk": "low"},
        {"rule": "b", "estimated_gain_pct": 5.0, "confidence": "high", "risk": "high"},
        {"rule": "c", "estimated_gain_pct": 5.0, "confidence": "high", "risk": "low"},
        {"rule": "d", "estimated_gain_pct": 9.0, "confidence": "low", "risk": "high"},
    ]
    assert [r["rule"] for r in sorted(recs, key=est.rank_key)] == ["d", "c", "b", "a"]


def test_tiers():
    assert est.tier(22) == "high" and est.tier(5) == "medium" and est.tier(1) == "low"


def _scoped_meta(**target):
    return {"target": {"scoped": True, **target}}


#: What perf recorded of the target alone: no idle samples, all on CPU 0.
TARGET_ONLY = Profile(table([("nginx", 0, SERVE, 50)]))


def test_a_recording_of_every_cpu_has_no_scoped_bottleneck():
    assert est.scoped_bottleneck({"target": {"comm": "nginx", "scoped": False}}, None, TARGET_ONLY) is None
    assert est.scoped_bottleneck({}, {"cpu_time_pct": {"idle": [0.0]}}, TARGET_ONLY) is None


def test_scoped_bottleneck_takes_utilisation_from_proc_stat_and_scales_by_the_targets_cpu_time():
    counters = {"cpu_time_pct": {"idle": [2.0, 1.0], "iowait": [0.0, 0.0], "steal": [1.0, 0.0]},
                "sched": {"target_cpus_used": 0.97}}
    bn = est.scoped_bottleneck(_scoped_meta(cgroup="system.slice/nginx.service"), counters, TARGET_ONLY)
    assert bn.kind == "all-saturated" and bn.basis == "throughput"
    assert bn.scale == pytest.approx(0.97 / 1.96, abs=1e-3)
    assert "cgroup system.slice/nginx.service" in bn.note and "cpu0 97%" in bn.note
    half_idle = {"cpu_time_pct": {"idle": [5.0, 90.0]}, "sched": {"target_cpus_used": 0.5}}
    bn = est.scoped_bottleneck(_scoped_meta(pid=42), half_idle, TARGET_ONLY)
    # the shares are over the saturated cpu0, where the target ran all its samples: 0.5 of 0.95
    assert bn.kind == "some-saturated" and bn.cpus == [0] and bn.scale == pytest.approx(0.5 / 0.95, abs=1e-3)
    assert bn.from_proc_stat and [(c.cpu, c.samples, c.saturated) for c in bn.utilisation] == \
        [(0, 50, True), (1, 0, False)]  # samples per CPU from the profile, busy from /proc/stat
    quiet = {"cpu_time_pct": {"idle": [70.0, 80.0]}, "sched": {"target_cpus_used": 0.5}}
    assert est.scoped_bottleneck(_scoped_meta(pid=42), quiet, TARGET_ONLY).basis == "cpu_time"


def test_an_offline_cpu_in_the_middle_is_left_out_not_the_whole_utilisation():
    """/proc/stat has no ticks for an offline CPU: its cpu_time_pct is None (procfs); the online
    CPUs keep their numbers and the bottleneck is still decided from them."""
    counters = {"cpu_time_pct": {"idle": [1.0, None, 60.0], "iowait": [0.0, None, 0.0]},
                "sched": {"target_cpus_used": 0.9}}
    bn = est.scoped_bottleneck(_scoped_meta(pid=42), counters, TARGET_ONLY)
    assert bn.kind == "some-saturated" and bn.cpus == [0]
    assert [(c.cpu, round(c.busy_pct)) for c in bn.utilisation] == [(0, 99), (2, 40)]
    assert bn.scale == pytest.approx(0.9 / 0.99, abs=1e-3)  # over cpu0, where the target's samples are


def test_scoped_bottleneck_without_counters_says_it_assumes_the_target_is_all_the_busy_time():
    bn = est.scoped_bottleneck(_scoped_meta(pid=7), None, TARGET_ONLY)
    assert bn.kind == "unknown" and bn.scale == 1.0 and "not counted" in bn.note
    bn = est.scoped_bottleneck(_scoped_meta(pid=7), {"cpu_time_pct": {"idle": [0.0, 0.0]}}, TARGET_ONLY)
    assert bn.scale == 1.0 and "not counted" in bn.note


def test_scaling_an_estimate_scales_the_removed_fraction_not_the_gain():
    full = est.from_share(0.4, 5000, 1.0, (0.8, 1.0), "high")
    half = est.from_share(0.4, 5000, 1.0, (0.8, 1.0), "high", scale=0.5)
    assert half.removed == pytest.approx(0.2) and half.gain_pct == pytest.approx(est.gain_pct(0.2))
    assert half.share == pytest.approx(0.2) and half.low_pct < half.gain_pct < half.high_pct < full.high_pct
    # the cap on the removed fraction applies to the CPUs' time, after the scale, not before it
    whole = est.from_share(0.99, 5000, 1.0, (1.0, 1.0), "high", scale=0.5)
    assert whole.removed == pytest.approx(0.495) and whole.gain_pct == pytest.approx(est.gain_pct(0.495))
    removed = est.from_removed((0.1, 0.2, 0.3), 0.2, "low", "kernel-share", scale=0.5)
    assert (removed.removed, removed.share) == (pytest.approx(0.1), pytest.approx(0.1))
    assert removed.high_pct == pytest.approx(est.gain_pct(0.15))


def test_the_summary_of_a_target_only_recording_never_shows_the_targets_samples_as_utilisation():
    """perf sampled only the target: its samples have no idle time. The summary's utilisation is
    /proc/stat's when counted, else unknown (null, no CPUs), never the 100% the samples show."""
    from advisor.analysis import analyze_evidence
    from advisor.evidence import Evidence
    from advisor.report import json_report

    def summary(counters):
        result = analyze_evidence(Evidence(TARGET_ONLY, None, counters, _scoped_meta(pid=7), "scoped", {}))
        json_report.validate(result.data)
        return result.data["profile"]

    assert TARGET_ONLY.busy_pct == 100.0  # what the samples alone would say
    unknown = summary(None)
    assert unknown["busy_pct"] is None and unknown["cpus"] == [] and unknown["bottleneck"]["kind"] == "unknown"
    counted = summary({"cpu_time_pct": {"idle": [5.0, 90.0]}, "sched": {"target_cpus_used": 0.5}})
    assert counted["busy_pct"] == pytest.approx(52.5) and [c["busy_pct"] for c in counted["cpus"]] == [95.0, 10.0]
    whole = analyze_evidence(Evidence(TARGET_ONLY, None, None, {}, "every-cpu", {})).data["profile"]
    assert whole["busy_pct"] == 100.0  # a recording of every CPU: the samples are the utilisation


def test_the_scale_is_taken_on_the_saturated_cpus_with_the_targets_time_there():
    """cpu0 saturated by the target, cpu1 60% busy with other work and a little of the target's:
    the shares are over cpu0, so is the scale: the target's time there (its 0.9 CPUs x 80% of its
    samples) over cpu0's busy time, not its whole time over both CPUs' (0.9 / 1.6)."""
    profile = Profile(table([("nginx", 0, SERVE, 80), ("nginx", 1, SERVE, 20)]))
    counters = {"cpu_time_pct": {"idle": [0.0, 40.0]}, "sched": {"target_cpus_used": 0.9}}
    bn = est.scoped_bottleneck(_scoped_meta(pid=42), counters, profile)
    assert bn.kind == "some-saturated" and bn.cpus == [0]
    assert bn.scale == pytest.approx(0.9 * 0.8 / 1.0, abs=1e-3)
    assert "on CPUs 0" in bn.note and "x0.72" in bn.note


def test_the_scale_of_samples_without_cpu_numbers_is_the_targets_whole_time():
    """perf -p without the CPU field: the samples say nothing of where the target ran, so its
    whole time is taken (0.8 CPUs of 2 busy: x0.4), not assumed to be all of the busy time."""
    no_cpu = Profile(table([("nginx", -1, SERVE, 30)]))
    counters = {"cpu_time_pct": {"idle": [0.0, 0.0]}, "sched": {"target_cpus_used": 0.8}}
    bn = est.scoped_bottleneck(_scoped_meta(pid=42), counters, no_cpu)
    assert bn.scale == pytest.approx(0.4) and "not counted" not in bn.note


# A system-wide `advise run` bundle: every CPU sampled, /proc/stat read over the same window.
EVERY_CPU = {"target": {"comm": "nginx", "scoped": False}}
KWORKER = "ret_from_fork;kthread;worker_thread;process_one_work"


def test_a_cpu_with_few_samples_is_judged_by_proc_stat_not_by_its_samples():
    """cpu1 idled, and cpu-clock recorded only 3 kworker samples there: the samples alone read it
    100% busy, so both CPUs saturated. /proc/stat counted it 97% idle: cpu0 alone is the bottleneck,
    and the note says what the samples alone would have said."""
    profile = Profile(table([("nginx", 0, SERVE, 95), ("swapper/0", 0, IDLE, 5), ("kworker/1:1", 1, KWORKER, 3)]))
    assert est.find_bottleneck(profile).kind == "all-saturated"  # the samples alone
    counters = {"cpu_time_pct": {"idle": [4.0, 97.0], "iowait": [0.0, 0.0], "steal": [1.0, 0.0]}}
    bn = est.system_bottleneck(EVERY_CPU, counters, profile)
    assert bn.kind == "some-saturated" and bn.cpus == [0] and bn.from_proc_stat and not bn.target_only
    assert [(c.cpu, c.samples, round(c.busy_pct), c.saturated) for c in bn.utilisation] == \
        [(0, 100, 95, True), (1, 3, 3, False)]
    assert "from /proc/stat" in bn.note and "samples alone read cpu0 95%, cpu1 100%, all-saturated" in bn.note
    # a CPU that recorded no sample at all is there too: the samples alone do not show it
    silent = Profile(table([("nginx", 0, SERVE, 95), ("swapper/0", 0, IDLE, 5)]))
    assert [c.cpu for c in silent.cpu_stats()] == [0]
    bn = est.system_bottleneck(EVERY_CPU, counters, silent)
    assert bn.kind == "some-saturated" and bn.cpus == [0] and [c.cpu for c in bn.utilisation] == [0, 1]


def test_when_proc_stat_agrees_with_the_samples_the_note_says_nothing_more():
    profile = Profile(table([("nginx", 0, SERVE, 95), ("nginx", 1, SERVE, 60), ("swapper/1", 1, IDLE, 2)]))
    bn = est.system_bottleneck(EVERY_CPU, {"cpu_time_pct": {"idle": [3.0, 6.0]}}, profile)
    assert bn.kind == "all-saturated" and bn.cpus is None and "samples alone" not in bn.note
    assert [round(c.busy_pct) for c in bn.utilisation] == [97, 94]


def test_the_samples_decide_when_proc_stat_cannot():
    profile = Profile(table([("nginx", 0, SERVE, 95), ("kworker/1:1", 1, KWORKER, 3)]))
    counters = {"cpu_time_pct": {"idle": [4.0, 97.0]}}
    assert est.system_bottleneck(EVERY_CPU, None, profile) is None  # not read
    assert est.system_bottleneck(EVERY_CPU, {"cpu_time_pct": {"idle": []}}, profile) is None
    assert est.system_bottleneck(_scoped_meta(pid=42), counters, profile) is None  # scoped_bottleneck's
    no_cpu = Profile(table([("nginx", -1, SERVE, 30)]))
    assert est.system_bottleneck(EVERY_CPU, counters, no_cpu) is None  # shares cannot be taken per CPU
    # samples of a CPU /proc/stat did not count: not the same machine or window
    assert est.system_bottleneck(EVERY_CPU, {"cpu_time_pct": {"idle": [4.0]}}, profile) is None
    # /proc/stat finds cpu1 saturated, where perf recorded no busy sample: no share to take there
    idle_there = Profile(table([("nginx", 0, SERVE, 40), ("swapper/0", 0, IDLE, 60), ("swapper/1", 1, IDLE, 9)]))
    assert est.system_bottleneck(EVERY_CPU, {"cpu_time_pct": {"idle": [60.0, 2.0]}}, idle_there) is None


def test_the_summary_of_a_system_wide_bundle_shows_proc_stat_utilisation_and_the_shares_follow_it():
    from advisor.analysis import analyze_evidence
    from advisor.evidence import Evidence
    from advisor.report import json_report

    profile = Profile(table([("nginx", 0, SERVE, 95), ("swapper/0", 0, IDLE, 5), ("kworker/1:1", 1, KWORKER, 3)]))
    counters = {"cpu_time_pct": {"idle": [4.0, 97.0]}}
    data = analyze_evidence(Evidence(profile, None, counters, EVERY_CPU, "bundle", {})).data
    json_report.validate(data)
    summary = data["profile"]
    assert summary["bottleneck"]["kind"] == "some-saturated" and summary["bottleneck"]["cpus"] == [0]
    assert [c["busy_pct"] for c in summary["cpus"]] == [96.0, 3.0] and summary["busy_pct"] == 49.5
    without = analyze_evidence(Evidence(profile, None, None, EVERY_CPU, "bundle", {})).data["profile"]
    assert without["bottleneck"]["kind"] == "all-saturated"  # the samples alone
