"""Before/after on the real bundles: netfilter (600 iptables rules) against baseline (none), both ways,
a recording against itself, a bare samples file without throughput, and `advise diff` end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from markdown_it import MarkdownIt
from rich.console import Console

import advisor
from advisor.diff import DiffResult, diff
from advisor.paths import samples_dir

NETFILTER, BASELINE = samples_dir() / "netfilter", samples_dir() / "baseline"


def recorded_rps(bundle) -> float:
    """wrk's Requests/sec during the bundle's collection window, as meta.json stores it."""
    return json.loads((bundle / "meta.json").read_text())["load"]["requests_per_sec"]


#: Throughput change from the netfilter recording to the baseline one, in percent.
CHANGE_PCT = 100 * (recorded_rps(BASELINE) / recorded_rps(NETFILTER) - 1)


@pytest.fixture(scope="module")
def results():
    return advisor.analyze(NETFILTER), advisor.analyze(BASELINE)


@pytest.fixture(scope="module")
def removed(results):
    """Rules removed: netfilter before, baseline after."""
    return diff(*results)


def test_removing_the_rules(removed, results):
    rec = removed.recommendation("netfilter")
    before = results[0].recommendation("netfilter")
    assert rec["status"] == "disappeared" and rec["gain_after"] is None
    assert rec["gain_before"] == before.estimated_gain_pct and rec["gain_delta"] == -before.estimated_gain_pct
    assert rec["note"].startswith("clean after:")
    # what grows once netfilter is gone is other costs' share of a smaller busy time: small ones
    assert all(r["rule"] != "netfilter" and r["gain_after"] < 3 for r in removed.regressions(1.0))
    t = removed.throughput
    assert (t["before_rps"], t["after_rps"]) == (recorded_rps(NETFILTER), recorded_rps(BASELINE))
    assert t["change_pct"] == pytest.approx(CHANGE_PCT, abs=0.01)


def test_symbol_deltas(removed, results):
    s = removed.symbols.set_index("symbol")
    top_before = results[0].profile.top(None).set_index("symbol")
    assert s.loc["nft_do_chain", "self_before"] == pytest.approx(top_before.loc["nft_do_chain", "self_pct"])
    assert s.loc["nft_do_chain", "self_after"] == 0.0
    assert s.loc["nf_hook_slow", "inclusive_delta"] == pytest.approx(
        -results[0].profile.share("nf_hook_slow").pct, abs=0.01)
    # self shares partition busy time on each side, so their changes cancel out
    assert removed.symbols["self_delta"].sum() == pytest.approx(0.0, abs=0.5)
    assert removed.movers(1, by="self")["symbol"].tolist() == ["nft_do_chain"]
    assert removed.movers(1, by="inclusive")["symbol"].tolist() == ["nf_hook_slow"]
    moved = removed.movers(20)
    biggest = moved[["self_delta", "inclusive_delta"]].abs().max(axis=1)
    assert list(biggest) == sorted(biggest, reverse=True)


def test_adding_the_rules_trips_the_gate(results):
    added = diff(results[1], results[0])
    rec = added.recommendation("netfilter")
    assert rec["status"] == "appeared" and rec["note"].startswith("clean before:")
    assert [r["rule"] for r in added.regressions(10.0)] == ["netfilter"]
    assert added.regressions(rec["gain_after"] + 0.01) == []
    assert added.throughput["change_pct"] < 0


def test_a_recording_against_itself_changes_nothing(results):
    same = diff(results[0], results[0])
    assert set(same.recommendations["status"]) == {"unchanged"}
    assert (same.symbols[["self_delta", "inclusive_delta"]] == 0).all().all()
    assert same.regressions(0.0) == [] and same.throughput["change_pct"] == 0


def test_a_grown_recommendation_is_changed_and_gated(results):
    """min_change decides between 'changed' and 'unchanged'; a gain that grows past PCT trips the gate."""
    before, after = results[1], results[0]
    changed = diff(before, after, min_change=0.0)
    grew = changed.recommendations.query("status == 'changed' and gain_delta > 0")
    assert not grew.empty
    rule, gain_after = grew.iloc[0]["rule"], grew.iloc[0]["gain_after"]
    assert rule in [r["rule"] for r in changed.regressions(gain_after)]
    assert changed.recommendation(rule)["status"] == "changed"
    assert diff(before, after).recommendation(rule)["status"] == "unchanged"  # below 0.5 points


def test_bare_file_has_no_throughput(tmp_path, results):
    folded = tmp_path / "after.folded"
    folded.write_text("nginx;main;ip_output;nf_hook_slow 30\nnginx;main;work 70\n")
    d = diff(NETFILTER, folded)
    assert d.throughput is None
    assert "not recorded on both sides" in d.summary()[0]
    assert isinstance(d, DiffResult) and d.recommendation("netfilter")["status"] in ("changed", "unchanged")


def test_views(removed):
    doc = removed.to_dict()
    json.dumps(doc, allow_nan=False)
    assert doc["kind"] == "advisor-diff"
    assert {r["rule"]: r["status"] for r in doc["recommendations"]}["netfilter"] == "disappeared"
    assert doc["movers"]["self"][0]["symbol"] == "nft_do_chain"
    tokens = MarkdownIt("commonmark").enable("table").parse(removed.to_markdown())
    assert sum(t.type == "table_open" for t in tokens) == 3
    console = Console(record=True, width=100, file=open("/dev/null", "w"))
    console.print(removed)
    out = console.export_text()
    measured = f"{CHANGE_PCT:+.1f}% measured"
    assert "disappeared" in out and measured in out
    assert "disappeared" in removed._repr_html_()
    fig = removed.plot()
    assert len(fig.axes) == 2 and measured in fig._suptitle.get_text()
    assert "nft_do_chain" in [t.get_text() for t in fig.axes[0].get_yticklabels()]


def test_api_function_survives_submodule_import():
    import advisor.diff  # noqa: F401  (the submodule; must not replace the function)

    assert callable(advisor.diff) and advisor.diff.__module__ == "advisor"


def advise(*args):
    return subprocess.run([sys.executable, "-m", "advisor.cli", "diff", *map(str, args)], capture_output=True,
                          text=True, timeout=60)


def test_cli(tmp_path):
    run = advise(NETFILTER, BASELINE, "--format", "json", "--fail-on-gain", "5")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["throughput"]["change_pct"] == pytest.approx(CHANGE_PCT, abs=0.01)
    run = advise(BASELINE, NETFILTER, "--fail-on-gain", "10", "--format", "markdown", "-o", tmp_path / "d.md")
    assert run.returncode == 1 and "gate tripped: netfilter appeared" in run.stderr
    assert (tmp_path / "d.md").read_text().startswith("# advisor diff")
    run = advise(NETFILTER, BASELINE)
    assert run.returncode == 0 and "disappeared" in run.stdout
    run = advise(NETFILTER, tmp_path / "missing")
    assert run.returncode == 2 and "missing" in run.stderr and len(run.stderr.strip().splitlines()) == 1


SWITCH = ("nginx 1234/1234 [000] 100.000001: sched:sched_switch: prev_comm=nginx prev_pid=1234 ==> next_comm=swapper/0\n"
          "\tffffffff81000001 __schedule+0x1 ([kernel.kallsyms])\n\tffffffff81000002 schedule+0x2 ([kernel.kallsyms])\n\n")
CLOCK = "nginx 1234/1234 [000] 100.000001:    1000000 cpu-clock:\n\tffffffff81000003 nf_hook_slow+0x3 ([kernel.kallsyms])\n\n"


def test_recordings_of_events_that_do_not_compare_are_refused(tmp_path):
    """Context switches against CPU time was reported as a diff like any other (every share
    "moved"); CPU-time events compare with each other, folded stacks included."""
    switches, clock, folded = tmp_path / "switches.txt", tmp_path / "clock.txt", tmp_path / "clock.folded"
    switches.write_text(SWITCH * 20)
    clock.write_text(CLOCK * 20)
    folded.write_text("nginx;nf_hook_slow 20\n")
    with pytest.raises(advisor.InputError) as refused:
        diff(switches, clock)
    assert str(refused.value) == (f"cannot compare sched:sched_switch samples ({switches}) with cpu-clock samples "
                                  f"({clock}): give --event EV, an event both recorded")
    assert diff(clock, folded).recommendation("netfilter")["status"] == "unchanged"
    empty = tmp_path / "empty.folded"
    empty.write_text("")  # no event at all: everything appeared, as before
    assert diff(empty, clock).recommendation("netfilter")["status"] == "appeared"
    done = subprocess.run([sys.executable, "-m", "advisor.cli", "diff", str(switches), str(clock)],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"advise: {refused.value}\n")


def test_a_throughput_change_too_large_to_hold_is_left_out_and_the_json_stays_json(tmp_path):
    """1e-300 against 1e300 req/s made the change +inf%, and `--format json` wrote `Infinity`,
    which is not JSON: a CI job reading it failed."""
    import shutil

    sides = []
    for name, rps in (("netfilter", 1e-300), ("baseline", 1e300)):
        bundle = tmp_path / name
        shutil.copytree(samples_dir() / name, bundle)
        meta = json.loads((bundle / "meta.json").read_text())
        meta["load"]["requests_per_sec"] = rps
        (bundle / "meta.json").write_text(json.dumps(meta))
        sides.append(bundle)
    text = diff(*sides).to_json()
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))["throughput"] is None
