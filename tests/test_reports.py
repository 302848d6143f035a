"""Reports: schema validation, JSON, Markdown, rich terminal output and the apply/rollback scripts.

All renderers run on tests/fixtures/result_example.json (the result of a 2-CPU JSON server profile)
or on variants of it. Markdown is checked by parsing it with markdown-it (the parser rich uses),
scripts by bash itself.
"""

from __future__ import annotations

import copy
import io
import json
import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from markdown_it import MarkdownIt
from rich.console import Console

from advisor.report import json_report, markdown, script, terminal

FIXTURE = Path(__file__).parent / "fixtures" / "result_example.json"
RANKED = ["netfilter", "packet-tap", "mitigation-spectre-v2", "gro"]
GAINS = ["+22.0% (17–26)", "+9.8% (7–12)", "+3.4% (1.2–9.8)", "+1.8% (0.6–3.1)"]


#: What `advise run` adds (and `advise analyze` of its bundle): one entry per collector.
COLLECTORS = {
    "perf": {"status": "ok", "detail": "cpu-clock at 99 Hz on all CPUs with call stacks: 1,188 samples in 6.1 s"},
    "bcc": {"status": "unavailable", "detail": "no kernel headers for 6.18.44 (/lib/modules/6.18.44/build, "
            "/usr/src/linux-headers-6.18.44*, /sys/kernel/kheaders.tar.xz all absent): BPF(text=) cannot "
            "compile"},
    "libbpf-tools": {"status": "ok", "detail": "syscount, softirqs, hardirqs, runqlat ran for 6 s"},
    "perf-stat": {"status": "failed", "detail": "perf stat exit status 129: unknown event"},
}


@pytest.fixture
def result() -> dict:
    return json.loads(FIXTURE.read_text())


# --------------------------------------------------------------------------- schema and JSON


def test_schema_is_package_data_and_a_valid_2020_12_schema():
    resource = resources.files("advisor.report").joinpath("schema.json")
    assert resource.is_file()
    schema = json_report.load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_fixture_is_valid_and_matches_the_test_expectations(result):
    json_report.validate(result)
    assert [rec["rule"] for rec in result["recommendations"]] == RANKED
    assert result["recommendations"][2]["confidence"] == "low"


def _delete(path):
    def mutate(result):
        node = result
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]
    return mutate


def _set(path, value):
    def mutate(result):
        node = result
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    return mutate


def _swap_first_two(result):
    recs = result["recommendations"]
    recs[0], recs[1] = recs[1], recs[0]


INVALID = [
    ("missing top-level key", _delete(["warnings"]), "$.warnings"),
    ("missing profile key", _delete(["profile", "samples"]), "$.profile.samples"),
    ("missing reason", _delete(["not_evaluated", 1, "reason"]), "$.not_evaluated[1].reason"),
    ("missing recommendation field", _delete(["recommendations", 3, "rollback"]), "$.recommendations[3].rollback"),
    ("wrong confidence enum", _set(["recommendations", 2, "confidence"], "certain"),
     "$.recommendations[2].confidence"),
    ("wrong risk enum", _set(["recommendations", 1, "risk"], "severe"), "$.recommendations[1].risk"),
    ("wrong basis enum", _set(["recommendations", 0, "basis"], "latency"), "$.recommendations[0].basis"),
    ("wrong bottleneck kind", _set(["profile", "bottleneck", "kind"], "saturated"), "$.profile.bottleneck.kind"),
    ("share as text", _set(["recommendations", 0, "share_pct"], "18.4%"), "$.recommendations[0].share_pct"),
    ("duration as text", _set(["profile", "duration_s"], "10s"), "$.profile.duration_s"),
    ("flag as text", _set(["recommendations", 0, "weakens_security"], "yes"),
     "$.recommendations[0].weakens_security"),
    ("command not a string", _set(["recommendations", 1, "commands", 1], ["systemctl", "stop"]),
     "$.recommendations[1].commands[1]"),
    ("unknown cpu -1", _set(["profile", "cpus", 1, "cpu"], -1), "$.profile.cpus[1].cpu"),
    ("share above 100", _set(["clean", 2, "share_pct"], 130.0), "$.clean[2].share_pct"),
    ("schema version", _set(["schema_version"], "2"), "$.schema_version"),
    ("extra key", _set(["recommendations", 0, "gain"], 22), "$.recommendations[0].gain"),
    ("evidence empty", _set(["recommendations", 3, "evidence"], []), "$.recommendations[3].evidence"),
    ("NaN busy", _set(["profile", "busy_pct"], math.nan), "$.profile.busy_pct"),
    ("ranks out of order", _swap_first_two, "$.recommendations[0].rank"),
    ("estimate outside range", _set(["recommendations", 3, "gain_low_pct"], 2.5),
     "$.recommendations[3].estimated_gain_pct"),
    ("tier contradicts estimate", _set(["recommendations", 0, "tier"], "medium"), "$.recommendations[0].tier"),
    ("rule reported twice", _set(["clean", 0, "rule"], "netfilter"), "$.clean[0].rule"),
    ("more busy than samples", _set(["profile", "busy_samples"], 20000), "$.profile.busy_samples"),
]


@pytest.mark.parametrize("name,mutate,path", INVALID, ids=[case[0] for case in INVALID])
def test_invalid_result_names_the_path(result, name, mutate, path):
    mutate(result)
    with pytest.raises(ValueError) as caught:
        json_report.validate(result)
    assert str(caught.value).startswith(path + ":"), str(caught.value)


def test_first_violation_is_the_first_in_document_order(result):
    result["recommendations"][2]["risk"] = "severe"
    result["profile"]["cpus"][0]["busy_pct"] = "high"
    with pytest.raises(ValueError, match=r"^\$\.profile\.cpus\[0\]\.busy_pct:"):
        json_report.validate(result)


def test_unknown_values_may_be_null(result):
    result["profile"]["duration_s"] = None
    result["profile"]["cpus"] = []
    result["profile"]["bottleneck"] = {"kind": "unknown", "cpus": None, "note": ""}
    result["load"] = {"tool": None, "requests_per_sec": None}
    result["clean"][0]["share_pct"] = None
    result["recommendations"][0]["reference"]["reported_gain_pct"] = None
    json_report.validate(result)


def test_tier_tolerates_the_rounding_of_the_published_estimate(result):
    """The engine picks the tier on the exact gain (9.996: medium) and publishes 10.0."""
    rec = result["recommendations"][1]
    rec["estimated_gain_pct"], rec["tier"] = 10.0, "medium"
    json_report.validate(result)
    rec["estimated_gain_pct"] = 10.5
    with pytest.raises(ValueError, match=r"^\$\.recommendations\[1\]\.tier: is 'medium', .* 'high'"):
        json_report.validate(result)


def _reverse_keys(value):
    if isinstance(value, dict):
        return {key: _reverse_keys(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reverse_keys(item) for item in value]
    return value


def test_json_render_round_trips_in_schema_order(result):
    result["collectors"] = copy.deepcopy(COLLECTORS)
    text = json_report.render(result)
    assert text.endswith("}\n")
    assert json.loads(text) == result
    assert list(json.loads(text)) == list(json_report.load_schema()["properties"])
    rec = json.loads(text)["recommendations"][0]
    assert list(rec)[:3] == ["rank", "rule", "title"]
    assert json_report.render(_reverse_keys(result)) == text  # stable whatever order the engine used


def test_json_render_refuses_nan(result):
    result["recommendations"][0]["share_pct"] = math.inf
    with pytest.raises(ValueError):
        json_report.render(result)


def test_renderers_do_not_modify_the_result(result):
    before = copy.deepcopy(result)
    json_report.render(result)
    markdown.render(result)
    script.render(result)
    terminal.render(result, Console(file=io.StringIO(), width=100))
    assert result == before


# --------------------------------------------------------------------------- Markdown


def _parse(text: str):
    return MarkdownIt("commonmark").enable("table").parse(text)


def _inline_text(token) -> str:
    return "".join(child.content for child in token.children if child.type in ("text", "code_inline"))


def _table_rows(tokens, first_header: str) -> list[list[str]]:
    """Cells of the body rows of the table whose first header cell is `first_header`."""
    rows, in_table, row, header = [], False, None, None
    for token in tokens:
        if token.type == "table_open":
            in_table, header = True, None
        elif token.type == "table_close":
            if header and header[0] == first_header:
                return rows[1:]
            in_table, rows = False, []
        elif in_table and token.type == "tr_open":
            row = []
        elif in_table and token.type == "inline":
            row.append(_inline_text(token))
        elif in_table and token.type == "tr_close":
            rows.append(row)
            header = header or row
    raise AssertionError(f"no table starting with {first_header!r}")


def test_markdown_table_lists_recommendations_in_rank_order(result):
    rows = _table_rows(_parse(markdown.render(result)), "#")
    assert [row[:2] for row in rows] == [[str(rank), rule] for rank, rule in enumerate(RANKED, 1)]
    assert [row[3] for row in rows] == GAINS
    assert [row[4] for row in rows] == ["high", "medium", "low", "medium"]
    assert rows[0][5] == "medium ⚠ security" and rows[1][5] == "low"
    assert rows[0][6] == "18.4%"


def test_markdown_escapes_pipes_in_table_cells(result):
    title = result["recommendations"][1]["title"]
    assert "|" in title
    rows = _table_rows(_parse(markdown.render(result)), "#")
    assert all(len(row) == 7 for row in rows)
    assert rows[1][2] == title


def test_markdown_commands_and_rollback_in_sh_blocks(result):
    fences = [t for t in _parse(markdown.render(result)) if t.type == "fence"]
    expected = []
    for rec in result["recommendations"]:
        expected += ["\n".join(rec["commands"]) + "\n", "\n".join(rec["rollback"]) + "\n"]
    assert [fence.content for fence in fences] == expected
    assert {fence.info for fence in fences} == {"sh"}


def test_markdown_fence_survives_backticks_in_a_command(result):
    result["recommendations"][0]["commands"] = ["cat <<'EOF'\n```\nEOF"]
    fences = [t for t in _parse(markdown.render(result)) if t.type == "fence"]
    assert fences[0].content == "cat <<'EOF'\n```\nEOF\n"
    assert len(fences) == 8


def test_markdown_sections_warning_reference_and_lists(result):
    text = markdown.render(result)
    sections = text.split("\n### ")[1:]
    assert [s.split("\n")[0] for s in sections] == [
        f"{rec['rank']}. {markdown._text(rec['title'])} (`{rec['rule']}`)" for rec in result["recommendations"]]
    flagged = ["**⚠ Weakens security" in s for s in sections]
    assert flagged == [rec["weakens_security"] for rec in result["recommendations"]] == [True, False, True, False]
    assert "Case study: Case study, step 1: netfilter; reported gain +24.0%; observed: nf\\_hook\\_slow" \
        not in text  # '_' between letters stays unescaped
    assert "Case study: Case study, step 1: netfilter; reported gain +24.0%; observed: nf_hook_slow at 19%" in text
    items = [_inline_text(t) for t in _parse(text) if t.type == "inline" and t.level == 3]
    for entry in result["not_evaluated"]:
        assert f"{entry['rule']}: {entry['reason']}" in items
    assert "seccomp (share 0.0%): __seccomp_filter at 0.02% of busy samples, below the 0.5% threshold" in items
    assert result["warnings"][0] in items
    assert text.index("## Not evaluated") < text.index("## Clean") < text.index("## Warnings")


def test_markdown_free_text_is_not_read_as_markup(result):
    tricky = "__x86_indirect_thunk_rax *2.7%* [kernel.kallsyms] <b>x</b> `thunk` a_ b ~~no~~"
    result["recommendations"][0]["evidence"] = [tricky]
    tokens = _parse(markdown.render(result))
    items = [t for t in tokens if t.type == "inline" and _inline_text(t) == tricky]
    assert len(items) == 1
    assert {child.type for child in items[0].children} == {"text"}


def test_markdown_summary_names_source_load_and_bottleneck(result):
    first = markdown.render(result).split("\n## ")[0]
    assert "**Source:** `samples/jsonsrv-baseline`" in first
    assert "19,874 cpu-clock samples over 10.0 s" in first and "**busy 98.6%**" in first
    assert "every CPU is saturated — all CPUs saturated (cpu0 99%, cpu1 98%)" in first
    assert "Load during the recording: wrk, 224,310 req/s" in first
    assert "Per-CPU busy: CPU 0 99.1% (saturated), CPU 1 98.1% (saturated)" in first


def test_markdown_without_recommendations(result):
    result["recommendations"] = []
    text = markdown.render(result)
    assert "No recommendation" in text
    assert "| # | rule |" not in text and "```sh" not in text


# --------------------------------------------------------------------------- terminal


def _plain(result: dict, width: int = 100) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    terminal.render(result, console)
    return console.export_text()


def test_terminal_shows_every_rule_and_gain_in_rank_order(result):
    text = _plain(result)
    table = text[text.index("Recommendations"):]
    positions = [table.index(rule) for rule in RANKED]
    assert positions == sorted(positions)
    for gain_text in GAINS:
        assert gain_text in text
    for entry in result["not_evaluated"] + result["clean"]:
        assert entry["rule"] in text
    assert "ethtool -K <device> gro on" in text and "ethtool -K <device> gro off" in text
    assert "load          wrk, 224,310 req/s" in text
    assert text.count("! weakens security") == 2
    assert "cpu0 99.1% saturated, cpu1 98.1% saturated" in text


def test_terminal_fits_100_columns_without_colour(result):
    console = Console(record=True, width=100, file=io.StringIO())
    terminal.render(result, console)
    raw = console.file.getvalue()
    assert "\x1b[" not in raw
    assert max(len(line) for line in raw.splitlines()) <= 100


@pytest.mark.parametrize("width", [40, 80, 100, 160])
def test_terminal_commands_read_the_same_plain_or_highlighted(result, width):
    """The commands are the same Text with colour or without (only styles differ): the same layout."""
    texts = []
    for highlight in (True, False):
        console = Console(record=True, width=width, file=io.StringIO())
        console.print(terminal.renderable(result, highlight=highlight))
        texts.append(console.export_text())
    assert texts[0] == texts[1]
    assert "ethtool -K <device> gro on" in texts[1]


def test_terminal_colours_risk_on_a_colour_terminal(result):
    console = Console(file=io.StringIO(), width=100, force_terminal=True, color_system="standard")
    segments = list(console.render(terminal.renderable(result)))
    colour = {seg.text: seg.style.color.name for seg in segments
              if seg.text in ("medium", "low", "high") and seg.style and seg.style.color}
    assert colour == {"medium": "yellow", "low": "green", "high": "red"}
    terminal.render(result, console)
    assert "\x1b[" in console.file.getvalue()


_FIRST_USE = """
import io, json, sys
from rich.console import Console
from advisor.report import terminal
result = json.load(open(sys.argv[1]))
console = Console(file=io.StringIO(), width=100, force_terminal=%s, color_system=%s)
terminal.prepare(console)
before = set(sys.modules)
terminal.render(result, console)
print(json.dumps({"new": sorted(set(sys.modules) - before), "coloured": "\\x1b[" in console.file.getvalue(),
                  "lexer": sorted(m for m in sys.modules if m.startswith(("pygments", "rich.syntax")))}))
"""


def _first_use(colour: bool) -> dict:
    """What a fresh interpreter imports when it renders after prepare()."""
    code = _FIRST_USE % (("True", '"truecolor"') if colour else ("False", "None"))
    proc = subprocess.run([sys.executable, "-c", code, str(FIXTURE)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("colour", [True, False])
def test_terminal_prepare_pays_the_first_renderings_imports_and_no_lexer_is_loaded(colour):
    """`advise analyze` calls prepare() while perf writes: the rendering after it imports nothing.
    The commands are highlighted without pygments (its bash lexer cost ~30 ms of CPU to import
    and build, on the parse's critical path): it is never imported, with colour or without."""
    seen = _first_use(colour)
    assert seen["coloured"] == colour
    assert seen["new"] == [] and seen["lexer"] == []


def test_terminal_highlights_the_parts_of_a_command(result):
    """On a colour terminal: the command word, options, joiners, placeholders, variables, quoted
    words and comments each have their style, a comment's words stay a comment; without colour,
    none; the text is the same either way (test above)."""
    rec = result["recommendations"][0]
    rec["commands"] = ["ethtool -K <device> gro off && taskset -pc $((i % 2)) \"$pid\"   # one 'quoted' -x"]
    rec["rollback"] = []
    styles = {}
    for highlight in (True, False):
        console = Console(file=io.StringIO(), width=160, force_terminal=True, color_system="truecolor")
        for segment in console.render(terminal.recommendation(rec, highlight=highlight)):
            if segment.text.strip() and segment.style is not None:
                styles.setdefault(highlight, {})[segment.text.strip()] = str(segment.style)
    shown = styles[True]
    assert shown["ethtool"] == "bold" and shown["-K"] == shown["-pc"] == "cyan"
    assert shown["<device>"] == "bold magenta" and shown["&&"] == "bold yellow" and shown["$(("] == "magenta"
    assert shown["$pid"] == "green"
    comment = {text: style for text, style in shown.items() if text in ("# one", "'quoted'", "-x")}
    assert set(comment.values()) == {"not bold italic bright_black"} and len(comment) == 3
    assert not any(text in styles.get(False, {}) for text in ("ethtool", "-K", "<device>", "# one", "'quoted'"))


def test_terminal_prints_markup_like_text_literally(result):
    result["recommendations"][0]["evidence"] = ["[bold]ipt_do_table[/] in [kernel.kallsyms] :warning:"]
    text = _plain(result)
    assert "[bold]ipt_do_table[/] in [kernel.kallsyms] :warning:" in text


def test_terminal_unknown_cpu_and_duration(result):
    result["profile"]["cpus"] = []
    result["profile"]["duration_s"] = None
    result["recommendations"] = []
    text = _plain(result)
    assert "not recorded" in text
    assert "19,874 cpu-clock samples" in text and " over " not in text.split("19,874")[1].split("\n")[0]
    assert "No recommendation" in text


# --------------------------------------------------------------------------- scripts


def _bash_syntax_ok(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=10)


def _announced(text: str, verb: str) -> list[str]:
    """Rule ids of the blocks, in the order the script runs them ("echo '== apply 1. netfilter' >&2")."""
    prefix = f"echo '== {verb} "
    return [line.split(". ", 1)[1].split("'")[0] for line in text.splitlines() if line.startswith(prefix)]


def test_scripts_are_valid_bash_in_rank_and_reverse_order(result, tmp_path):
    apply, rollback = script.render(result)
    for name, text in (("apply.sh", apply), ("rollback.sh", rollback)):
        path = tmp_path / name
        path.write_text(text)
        check = _bash_syntax_ok(path)
        assert check.returncode == 0, check.stderr
        assert text.startswith("#!/usr/bin/env bash\n") and "\nset -eu\n" in text
        assert "Nothing runs until you run this file yourself" in text
    assert _announced(apply, "apply") == RANKED
    assert _announced(rollback, "undo") == RANKED[::-1]
    for rec in result["recommendations"]:
        assert "\n".join(rec["commands"]) in apply
        assert "\n".join(rec["rollback"]) in rollback


def test_script_blocks_carry_risk_and_security_warning(result):
    apply, rollback = script.render(result)
    blocks = apply.split("# " + "-" * 78 + "\n# ")[1:]
    assert [b.split(":")[0] for b in blocks] == [f"{rank}. {rule}" for rank, rule in enumerate(RANKED, 1)]
    assert ["WARNING: this weakens the security" in b for b in blocks] == [True, False, True, False]
    assert ["risk MEDIUM" in blocks[0], "risk LOW" in blocks[1], "risk HIGH" in blocks[2]] == [True] * 3
    assert "WARNING: this weakens" not in rollback and rollback.count("restores a security setting") == 2


def _runnable(result: dict, log: Path, marker: Path) -> dict:
    """Harmless commands that record their order in `log`; a title that tries to escape its comment."""
    for rec in result["recommendations"]:
        rec["commands"] = [f"echo apply-{rec['rule']} >> \"$LOG\""]
        rec["rollback"] = [f"echo undo-{rec['rule']} >> \"$LOG\""]
    result["recommendations"][1]["title"] = f"packet tap\ntouch {marker}\r\nalso"
    result["recommendations"][2]["caveat"] = f"reboot\ntouch {marker}"
    return result


def _run(path: Path, log: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(path)], env={"LOG": str(log), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=10)


def test_scripts_run_in_order_and_text_cannot_escape_comments(result, tmp_path):
    log, marker = tmp_path / "log", tmp_path / "injected"
    apply, rollback = script.render(_runnable(result, log, marker))
    (tmp_path / "apply.sh").write_text(apply)
    (tmp_path / "rollback.sh").write_text(rollback)
    assert _run(tmp_path / "apply.sh", log).returncode == 0
    assert _run(tmp_path / "rollback.sh", log).returncode == 0
    assert log.read_text().split() == [f"apply-{r}" for r in RANKED] + [f"undo-{r}" for r in RANKED[::-1]]
    assert not marker.exists()
    assert all(line.startswith("# ") for line in apply.splitlines() if "touch" in line)


def test_apply_script_stops_at_the_first_failing_command(result, tmp_path):
    log = tmp_path / "log"
    _runnable(result, log, tmp_path / "unused")
    result["recommendations"][1]["commands"].insert(0, "false")
    apply, _ = script.render(result)
    (tmp_path / "apply.sh").write_text(apply)
    run = _run(tmp_path / "apply.sh", log)
    assert run.returncode != 0
    assert log.read_text().split() == ["apply-netfilter"]
    assert "== apply 2. packet-tap" in run.stderr and "== apply 3." not in run.stderr


def test_commands_with_placeholders_are_commented_out(result, tmp_path):
    apply, rollback = script.render(result)
    assert "# EDIT, then uncomment: replace <device>\n#   ethtool -K <device> gro on\n" in apply
    assert "# EDIT, then uncomment: replace <device>\n#   ethtool -K <device> gro off\n" in rollback
    assert "\nsystemctl stop lldpd.service\n" in apply  # filled-in commands stay active
    assert "\niptables-restore < /var/tmp/advisor/iptables.rules\n" in rollback  # a redirection is no hole


def test_every_bundled_rule_assembles_into_valid_bash(result, tmp_path):
    """The real rules/*.toml commands, as the engine would pass them on (unfilled when no system state)."""
    from advisor.engine.rules import load_rules

    template = result["recommendations"][0]
    rules = load_rules()
    result["recommendations"] = [dict(template, rank=rank, rule=rule.id, commands=list(rule.commands),
                                      rollback=list(rule.rollback)) for rank, rule in enumerate(rules, 1)]
    result["clean"] = result["not_evaluated"] = []
    apply, rollback = script.render(result)
    for name, text in (("apply.sh", apply), ("rollback.sh", rollback)):
        (tmp_path / name).write_text(text)
        check = _bash_syntax_ok(tmp_path / name)
        assert check.returncode == 0, check.stderr
    lines = apply.splitlines() + rollback.splitlines()
    active = {line for line in lines if line and not line.startswith("#")}
    assert not any(script.PLACEHOLDER.search(line) for line in active)
    complete = [c for rule in rules for c in rule.commands + rule.rollback 
                if "<" not in c and "\n" not in c and not c.startswith("#")]
    assert complete and all(command in active for command in complete)


@pytest.mark.parametrize("command,holes", [
    ("ethtool -K <device> gro off", ["<device>"]),
    ("sysctl -w net.ipv4.tcp_congestion_control=<previous value, e.g. cubic>", ["<previous value, e.g. cubic>"]),
    ("echo 0 > /sys/class/net/<device>/queues/tx-<n>/xps_cpus", ["<device>", "<n>"]),
    ("taskset -pc 0-<ncpu-1> <worker pid>", ["<ncpu-1>", "<worker pid>"]),
    ("iptables-restore < /root/iptables.before-advisor", []),
    ("sort <in.txt >out.txt", []),
    ("diff <(sysctl -a) <(cat /tmp/x) >/dev/null 2>&1", []),
    ("cat <<EOF > /etc/x.conf\nkey = 1\nEOF", []),
])
def test_placeholder_detection(command, holes):
    assert script.PLACEHOLDER.findall(command) == holes


def test_scripts_without_recommendations(result, tmp_path):
    result["recommendations"] = []
    for text in script.render(result):
        path = tmp_path / "s.sh"
        path.write_text(text)
        assert _bash_syntax_ok(path).returncode == 0
        assert "echo '==" not in text and "No recommendation" in text


# --------------------------------------------------------------------------- collectors (advise run)


def test_collectors_are_optional_and_validated(result):
    json_report.validate(result)  # a result from samples alone has none
    result["collectors"] = copy.deepcopy(COLLECTORS)
    json_report.validate(result)
    result["collectors"]["perf"]["status"] = "maybe"
    with pytest.raises(ValueError, match=r"^\$\.collectors\.perf\.status: "):
        json_report.validate(result)
    del result["collectors"]["perf"]
    result["collectors"]["bcc"]["extra"] = 1
    with pytest.raises(ValueError, match=r"^\$\.collectors\.bcc\.extra: key not allowed"):
        json_report.validate(result)


def test_terminal_shows_one_line_per_collector(result):
    result["collectors"] = copy.deepcopy(COLLECTORS)
    text = _plain(result)
    lines = text[text.index("Collectors"):].splitlines()[1:len(COLLECTORS) + 1]
    assert [line.split(":")[0].strip() for line in lines] == list(COLLECTORS)
    assert "perf:" in lines[0] and " ok " in lines[0] and "1,188 samples" in lines[0]
    assert "unavailable" in lines[1] and lines[1].endswith("…")  # too long: cut, never wrapped
    assert "failed" in lines[3] and "unknown event" in lines[3]
    assert "Collectors" not in _plain(json.loads(FIXTURE.read_text()))


def test_markdown_lists_collectors(result):
    result["collectors"] = copy.deepcopy(COLLECTORS)
    text = markdown.render(result)
    section = text[text.index("## Collectors"):].split("\n## ")[0]
    items = [line for line in section.splitlines() if line.startswith("- ")]
    assert items[0] == "- `perf` **ok**: cpu-clock at 99 Hz on all CPUs with call stacks: 1,188 samples in 6.1 s"
    assert len(items) == len(COLLECTORS)
    assert "linux-headers-6.18.44\\*" in section  # free text escaped
    assert "## Collectors" not in markdown.render(json.loads(FIXTURE.read_text()))


# --------------------------------------------------------------------------- names from the system

HOSTILE = ("\x1b[2J", "\x1b]0;pwned\x07", "\u202e", "\u200b", "\x9b")


@pytest.mark.parametrize("fmt", ["terminal", "markdown", "html", "script"])
def test_names_from_the_system_reach_no_report_with_their_control_characters(tmp_path, fmt):
    """A process may name itself, and a binary its symbols, with ESC sequences (clear the screen,
    retitle the terminal) or U+202E (show a line reversed): every report prints them escaped."""
    text = ("app\x1b]0;pwned\x07;main;evil\x1b[2J\u202e\u200b\x9b 50\n"
            "app;main;ip_output;nf_hook_slow 50\n")
    folded = tmp_path / "hostile\x1b[2J.folded"  # a file name may hold them too
    folded.write_text(text)
    out = tmp_path / f"report.{fmt}"
    done = subprocess.run([sys.executable, "-m", "advisor.cli", "analyze", str(folded), "--format", fmt,
                           "--output", str(out)], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    written = out.read_text()
    for raw in HOSTILE:
        assert raw not in written
    unescaped = written.replace("\\\\", "\\")  # Markdown doubles a backslash
    assert "hostile\\x1b[2J.folded" in unescaped  # the source, in every report
    if fmt != "script":  # the script holds no symbol
        assert "evil\\x1b[2J\\u202e\\u200b\\x9b" in unescaped
    if fmt == "html":
        svg = written[written.index("<svg"):written.index("</svg>") + 6]
        ET.fromstring(svg)  # XML holds no control character: it parses
    if fmt == "script":
        assert "\x1b" not in (tmp_path / "report.rollback.script").read_text()
