"""advise lab: the verdict logic, and a short real lab (baseline + netfilter) end to end."""

import json
import os
import subprocess
import sys

import pytest

from advisor.lab.verify import ScenarioResult, pairwise_gain, verdict

FIELDS = {"scenario", "expected_rule", "top_rule", "estimated_gain_pct", "gain_low_pct", "gain_high_pct",
          "measured_gain_pct", "measured_spread_pct", "verdict"}


def test_pairwise_gain_is_the_median_of_adjacent_ratios():
    gains, median, spread = pairwise_gain([100, 100, 50, 100], [110, 120, 60, 130])
    assert gains == pytest.approx([10, 20, 20, 30])
    assert median == pytest.approx(20)
    assert spread > 0
    # a slow drift that hits both arms of each pair cancels out
    drift = [100 * (1 + i / 10) for i in range(8)]
    assert pairwise_gain(drift, [x * 1.2 for x in drift])[1] == pytest.approx(20)


def _res(**kw):
    base = dict(scenario="netfilter", expected_rule="netfilter", top_rule="netfilter", estimated_gain_pct=20,
                gain_low_pct=15, gain_high_pct=25, measured_gain_pct=22, measured_spread_pct=3)
    base.update(kw)
    return ScenarioResult(**base)


def test_verdicts():
    assert verdict(_res(), [])[0] == "ok"
    assert verdict(_res(measured_gain_pct=28, measured_spread_pct=4), [])[0] == "ok-within-noise"
    assert verdict(_res(measured_gain_pct=60), [])[0] == "measured-above-range"
    assert verdict(_res(measured_gain_pct=2), [])[0] == "measured-below-range"
    assert verdict(_res(top_rule="gro", expected_rank=3), [])[0] == "wrong-rule"
    inert = _res(top_rule="mitigation-spectre-v2", expected_rank=3, estimated_gain_pct=0.3, measured_gain_pct=-4,
                 measured_spread_pct=11)
    assert verdict(inert, [{"rule": "mitigation-spectre-v2", "tier": "low"}])[0] == "no-measurable-cost"
    assert verdict(inert, [{"rule": "mitigation-spectre-v2", "tier": "medium"}])[0] == "wrong-rule"
    assert verdict(_res(**{**inert.to_dict(), "measured_gain_pct": 15}),
                   [{"rule": "x", "tier": "low"}])[0] == "wrong-rule"  # it did cost something: a real miss
    base = _res(scenario="baseline", expected_rule=None)
    assert verdict(base, [{"rule": "x", "tier": "medium"}])[0] == "ok"
    assert verdict(base, [{"rule": "x", "tier": "high"}])[0] == "high-tier-on-baseline"


@pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces)")
@pytest.mark.slow
def test_short_lab_baseline_and_netfilter(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "advisor.cli", "lab", "baseline", "netfilter", "--pairs", "3",
                           "--round-seconds", "1", "--collect-seconds", "2", "--json", "--record", str(tmp_path)],
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["scenario"]: r for r in json.loads(proc.stdout)}
    assert set(rows) == {"baseline", "netfilter"}
    for row in rows.values():
        assert FIELDS <= set(row)
    assert rows["baseline"]["verdict"] == "ok"
    nf = rows["netfilter"]
    assert nf["top_rule"] == "netfilter" and nf["estimated_gain_pct"] > 5
    assert nf["measured_gain_pct"] > 0  # hundreds of rules + conntrack cost far more than the noise
    meta = json.loads((tmp_path / "netfilter" / "meta.json").read_text())
    assert meta["scenario"] == "netfilter" and len(meta["measured"]["gain_pct_paired"]) == 3
    # nothing of the testbed is left behind
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "advlab-" not in netns


def test_ctrl_c_while_a_pathology_is_removed_waits_for_the_removal():
    """The removal restores state (global state, for syscall-audit): a Ctrl-C in the middle is
    delivered after it, not in it."""
    import signal

    from advisor.stop_signals import StopSignalsHeld

    steps = []
    with pytest.raises(KeyboardInterrupt):
        with StopSignalsHeld():
            signal.raise_signal(signal.SIGINT)
            steps.append("restored")
    assert steps == ["restored"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_stop_signal_while_a_pathology_is_removed_waits_for_the_removal():
    """SIGTERM, which the `advise` program turns into an interrupt, is deferred as Ctrl-C is."""
    import signal

    from advisor.stop_signals import STOP_SIGNALS, StopSignalsHeld, Terminated, handle_as_interrupt

    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGALRM, *STOP_SIGNALS)}
    steps = []
    try:
        handle_as_interrupt()
        installed = signal.getsignal(signal.SIGTERM)
        with pytest.raises(Terminated) as stopped:
            with StopSignalsHeld():
                signal.raise_signal(signal.SIGTERM)
                steps.append("restored")
        assert signal.getsignal(signal.SIGTERM) is installed
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    assert steps == ["restored"] and stopped.value.signum == signal.SIGTERM
