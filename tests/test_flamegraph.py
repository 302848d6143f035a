"""Flame graph: tree built from the real netfilter recording and from a two-CPU table made here;
the rule-coloured frames must add up to the engine's share, on the engine's CPUs."""

from __future__ import annotations

import io
import sys
import xml.etree.ElementTree as ET

import pytest

import advisor
from advisor.analysis import analyze_evidence
from advisor.engine.rules import get_rule, load_rules
from advisor.evidence import Evidence
from advisor.model import Frame, StackKey, StackTable
from advisor.parse.folded import read as read_folded
from advisor.paths import samples_dir
from advisor.profile import Profile
from advisor.report import flamegraph

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def netfilter():
    return advisor.analyze(samples_dir() / "netfilter")


def nodes(node, parent=None):
    yield node, parent
    for child in node.children.values():
        yield from nodes(child, node)


def weight_of(root, rule, role="matched"):
    return sum(n.weight for n, _ in nodes(root) if n.rule == rule and n.role == role)


def test_tree_covers_every_busy_sample_and_children_fit_in_parents(netfilter):
    graph = netfilter.flamegraph()
    root = graph.root
    assert root.samples == netfilter.profile.busy_samples
    assert root.weight == pytest.approx(netfilter.profile.busy_weight)
    for node, _ in nodes(root):
        assert sum(c.weight for c in node.children.values()) <= node.weight * (1 + 1e-9)
        assert sum(c.samples for c in node.children.values()) <= node.samples
    comms = {n.name for n in root.children.values()}
    assert {"nginx", "wrk"} <= comms


def test_rule_frames_add_up_to_the_engines_share(netfilter):
    graph = netfilter.flamegraph()
    busy = graph.root.weight
    for rec in netfilter.data["recommendations"]:
        rule = netfilter.rules[rec["rule"]]
        if rule.model != "share":
            continue
        assert 100 * weight_of(graph.root, rule.id) / busy == pytest.approx(rec["share_pct"], abs=0.01), rule.id
    # netfilter's frames are nf_hook_slow (outermost match); what it calls is tinted, never re-matched
    matched = {n.name for n, _ in nodes(graph.root) if n.rule == "netfilter" and n.role == "matched"}
    assert matched == {"nf_hook_slow"}
    under = {n.name for n, _ in nodes(graph.root) if n.rule == "netfilter" and n.role == "under"}
    assert "nft_do_chain" in under


def test_scope_target_rule_is_highlighted_only_in_the_target_program(netfilter):
    graph = netfilter.flamegraph()
    rule = "app-recv-send"
    assert netfilter.rules[rule].scope == "target"
    for node, _ in nodes(graph.root):
        if node.role == "comm":
            inside = {n.rule for n, _ in nodes(node)}
            assert (rule in inside) == (node.name == "nginx"), node.name


def two_cpu_evidence() -> Evidence:
    """cpu0 saturated (30% under nf_hook_slow), cpu1 mostly idle with some nf_hook_slow too."""
    k = lambda s: Frame(s, "[kernel.kallsyms]", "kernel", False)
    u = lambda s: Frame(s, "/usr/sbin/nginx", "user", False)
    hook = (u("main"), k("ip_output"), k("nf_hook_slow"), k("nft_do_chain"))
    table = StackTable("two-cpu")
    table.add(StackKey("cpu-clock", "nginx", 10, 10, 0, hook), 300, 300_000_000)
    table.add(StackKey("cpu-clock", "nginx", 10, 10, 0, (u("main"), u("work"))), 700, 700_000_000)
    table.add(StackKey("cpu-clock", "nginx", 10, 11, 1, hook), 100, 100_000_000)
    idle = (k("cpu_startup_entry"), k("do_idle"), k("default_idle"))
    table.add(StackKey("cpu-clock", "swapper", 0, 0, 1, idle), 900, 900_000_000)
    return Evidence(Profile(table), None, None, {}, "two-cpu", {})


def test_highlights_follow_the_bottleneck_cpus():
    result = analyze_evidence(two_cpu_evidence(), load_rules())
    assert result.data["profile"]["bottleneck"]["cpus"] == [0]
    rec = result.recommendation("netfilter")
    assert rec.share_pct == pytest.approx(30.0)
    graph = result.flamegraph()
    # all 400 busy hook samples are drawn, only the 300 on the saturated CPU in netfilter's colour
    hook = [n for n, _ in nodes(graph.root) if n.name == "nf_hook_slow"]
    assert sum(n.samples for n in hook) == 400
    assert sum(n.samples for n in hook if n.role == "matched") == 300
    assert graph.root.samples == 1100  # idle samples are not drawn


def test_svg_is_wellformed_escaped_and_has_tooltips_and_legend():
    text = (b"web;main;ip_output;nf_hook_slow;operator<< <std::string&>(\"a\") 40\n"
            b"web;main;<script>alert(1)</script> 60\n")
    profile = Profile(read_folded(io.BytesIO(text), "escape.folded"))
    graph = profile.flamegraph([get_rule("netfilter")])
    assert "<script>alert" not in graph.svg
    root = ET.fromstring(graph.svg)  # raises on a stray < or &
    frames = root.findall(f".//{SVG}g[@class='f']")
    names = {g.get("data-n") for g in frames}
    assert {"<script>alert(1)</script>", 'operator<< <std::string&>("a")', "nf_hook_slow"} <= names
    for g in frames:
        title, rect = g.find(f"{SVG}title"), g.find(f"{SVG}rect")
        assert title.text.startswith(g.get("data-n") + "\n")
        assert "% of busy time" in title.text and "samples" in title.text
        assert float(rect.get("width")) >= flamegraph.MIN_WIDTH
    hook = next(g for g in frames if g.get("data-n") == "nf_hook_slow")
    assert hook.get("data-rule") == "netfilter" and hook.get("data-role") == "matched"
    assert hook.find(f"{SVG}rect").get("fill") == flamegraph.RULE_COLOURS[0]
    assert "40.00% of busy time" in hook.find(f"{SVG}title").text
    legend = [t.text for t in root.findall(f".//{SVG}g[@class='legend-item']/{SVG}text")]
    assert legend[0] == "netfilter" and "kernel" in legend


def test_a_stack_deeper_than_pythons_recursion_limit_is_drawn_in_order():
    """Drawing recursed once per frame: a folded stack 5x the recursion limit deep was an internal
    error in --format html."""
    deep = 5 * sys.getrecursionlimit()
    text = ("web;" + ";".join(f"f{i}" for i in range(deep)) + " 30\nweb;main;leaf 10\n").encode()
    graph = Profile(read_folded(io.BytesIO(text), "deep.folded")).flamegraph()
    assert graph.root.depth == deep + 2  # all, the process, its frames
    frames = ET.fromstring(graph.svg).findall(f".//{SVG}g[@class='f']")
    names = [g.get("data-n") for g in frames]
    # depth first, each frame before its children, siblings left to right by name
    assert names[:4] == ["all", "web", "f0", "f1"] and names[-3:] == [f"f{deep - 1}", "main", "leaf"]
    assert [int(g.get("data-d")) for g in frames[:deep + 2]] == list(range(deep + 2))


def test_unknown_runs_are_drawn_once(netfilter):
    graph = netfilter.flamegraph()
    for node, parent in nodes(graph.root):
        if parent is not None and node.name == flamegraph.UNKNOWN:
            assert parent.name != flamegraph.UNKNOWN
    assert graph.root.depth < max(len(s) for s in netfilter.profile.stacks)


def test_save_writes_svg_and_html(netfilter, tmp_path):
    graph = netfilter.flamegraph()
    svg = graph.save(tmp_path / "f.svg").read_text()
    ET.fromstring(svg.split("\n", 1)[1])
    page = graph.save(tmp_path / "f.html").read_text()
    assert 'class="fg-search"' in page and "data-advisor-ready" in page
    assert "//" not in page.replace("http://www.w3.org/2000/svg", "").replace("// ", "")  # no URL to fetch
    assert graph._repr_html_() == graph.html()
