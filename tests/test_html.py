"""HTML report and the notebook views: content, escaping, self-containment (no URL to fetch),
on the real netfilter recording and on folded stacks made here with hostile symbol names."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from rich.console import Console

import advisor
from advisor.paths import samples_dir
from advisor.report import html

NETFILTER = samples_dir() / "netfilter"
EVIL = "<script>alert(1)</script>&<b>'\""  # folded stacks cannot hold ';'


@pytest.fixture(scope="module")
def result():
    return advisor.analyze(NETFILTER)


@pytest.fixture(scope="module")
def page(result):
    return html.render(result)


class Collector(HTMLParser):
    """Tags with their attributes, the text, and whether every opened element was closed."""

    VOID = {"meta", "br", "input", "rect", "line", "link", "img", "hr", "path"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text, self.stack, self.mismatched = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.mismatched.append(tag)
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(text: str) -> Collector:
    c = Collector()
    c.feed(text)
    c.close()
    return c


def test_report_has_every_section_and_balanced_markup(result, page):
    doc = parse(page)
    assert not doc.mismatched and doc.stack == [], (doc.mismatched, doc.stack[-5:])
    ids = {a.get("id") for _, a in doc.tags}
    assert {"summary", "gains", "recommendations", "ranking", "flamegraph", "top", "not-evaluated"} <= ids
    for rec in result.data["recommendations"]:
        assert f"rec-{rec['rule']}" in ids
    text = " ".join(doc.text)
    p = result.profile
    # the figures the page must show, summed here from the rows and counters.json (not read from
    # the Profile); the bundle read /proc/stat, which gives the utilisation
    rows = p.rows
    busy = rows[~rows["idle"]]
    ticks = json.loads((NETFILTER / "counters.json").read_text())["cpu_time_pct"]
    per_cpu = [100 - sum(ticks[f][c] for f in ("idle", "iowait", "steal")) for c in range(2)]
    busy_pct, cpu0 = sum(per_cpu) / 2, per_cpu[0]
    nginx = 100 * busy[busy["comm"] == "nginx"]["weight"].sum() / busy["weight"].sum()
    rps = json.loads((NETFILTER / "meta.json").read_text())["load"]["requests_per_sec"]
    for needle in (f"{rows['count'].sum():,} cpu-clock samples over {p.duration_s:.1f} s", f"{busy_pct:.1f}%",
                   f"cpu0 {cpu0:.1f}%", "saturated", "where it ran",
                   f"{rps:,.0f} req/s", "Weakens security", "iptables-save", "iptables-restore",
                   "Disabling iptables/netfilter", "reported gain +22.0%", f"nginx {nginx:.1f}%"):
        assert needle in text, needle
    rows = [a for t, a in doc.tags if t == "g" and a.get("class") == "gain-row"]
    assert [r["data-rule"] for r in rows] == [r["rule"] for r in result.data["recommendations"]]
    assert sum(1 for t, a in doc.tags if t == "svg" and a.get("class") == "advisor-flamegraph") == 1


def test_report_is_self_contained(page):
    doc = parse(page)
    for tag, attrs in doc.tags:
        assert "src" not in attrs, tag
        assert not attrs.get("href", "#").split("#")[0], (tag, attrs)  # only in-page anchors
    stripped = page.replace("http://www.w3.org/2000/svg", "")
    assert not re.search(r"https?://|@import|url\(", stripped)


def test_gain_bars_and_whiskers_are_to_scale(result, page):
    chart = html.gains_chart(result.data["recommendations"])
    first = re.search(r'<g class="gain-row" data-rule="netfilter">.*?</g>', chart).group(0)
    bar = float(re.search(r'<rect x="190" y="\d+" width="([\d.]+)"', first).group(1))
    whisker = [float(v) for v in re.search(r'<line x1="([\d.]+)" x2="([\d.]+)"', first).groups()]
    ticks = html._ticks(max(r["gain_high_pct"] for r in result.data["recommendations"]))
    scale = (900 - 190 - 130) / ticks[-1]
    rec = result.data["recommendations"][0]
    assert bar == pytest.approx(rec["estimated_gain_pct"] * scale, abs=0.1)
    assert whisker == pytest.approx([190 + rec["gain_low_pct"] * scale, 190 + rec["gain_high_pct"] * scale],
                                    abs=0.1)
    assert html._ticks(62.7) == [0, 20, 40, 60, 80] and html._ticks(2.7)[-1] >= 2.7


def test_everything_is_escaped(tmp_path):
    folded = tmp_path / "evil.folded"
    folded.write_text(f"web;main;ip_output;nf_hook_slow;{EVIL} 50\nweb;main;{EVIL}x 50\n")
    result = advisor.analyze(folded)
    assert result.top()["rule"] == "netfilter"
    page = html.render(result)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;&lt;b&gt;" in page
    assert "<b>'" not in page
    doc = parse(page)
    assert not doc.mismatched
    assert sum(1 for t, _ in doc.tags if t == "script") == 1  # ours only
    assert EVIL in " ".join(doc.text)  # shown as text, exactly as recorded


def test_cli_writes_the_report(tmp_path):
    out = tmp_path / "report.html"
    run = subprocess.run([sys.executable, "-m", "advisor.cli", "analyze", str(NETFILTER), "--format", "html",
                          "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert out.read_text().startswith("<!doctype html>")


# ----------------------------------------------------------------------------- notebook views

def test_result_views(result):
    view = result._repr_html_()
    doc = parse(view)
    assert not doc.mismatched
    assert "netfilter" in view and 'id="ranking"' in view and "<svg" in view
    style = re.search(r"<style>(.*?)</style>", view, re.S).group(1)
    selectors = [rule.split("{")[0] for rule in style.split("}") if "{" in rule]
    assert all(part.strip().startswith(".advisor-nb") for s in selectors for part in s.split(","))
    console = Console(record=True, width=100, file=open("/dev/null", "w"))
    console.print(result)
    assert "netfilter" in console.export_text()


def test_recommendation_accessor_and_views(result):
    rec = result.recommendation("netfilter")
    assert rec.rank == 1 and rec["rule"] == rec.id == "netfilter" and rec.rule.id == "netfilter"
    assert rec.matched.columns.tolist() == ["symbol", "share_pct"]
    assert "nf_hook_slow" in rec._repr_html_() and "Weakens security" in rec._repr_html_()
    console = Console(record=True, width=100, file=open("/dev/null", "w"))
    console.print(rec)
    assert "iptables-save" in console.export_text()
    assert repr(rec).startswith("<Recommendation 1. netfilter +")
    with pytest.raises(AttributeError):
        rec.no_such_field
    with pytest.raises(KeyError, match="is clean"):
        result.recommendation(result.data["clean"][0]["rule"])
    with pytest.raises(KeyError, match="no rule 'nope'"):
        result.recommendation("nope")


def test_profile_views(result):
    view = result.profile._repr_html_()
    busy = f"{result.profile.busy_pct:.1f}% busy"
    assert "nft_do_chain" in view and busy in view and not parse(view).mismatched
    console = Console(record=True, width=100, file=open("/dev/null", "w"))
    console.print(result.profile)
    out = console.export_text()
    assert "nft_do_chain" in out and busy in out


def test_report_without_busy_samples():
    result = advisor.analyze(NETFILTER, comm="no-such-process")
    page = html.render(result)
    doc = parse(page)
    assert not doc.mismatched
    assert "No recommendation" in page and "no busy samples" in page
    assert 'class="f"' not in page  # an empty flame graph, still drawn
    assert result.flamegraph().root.samples == 0
