"""What makes `advise analyze` fast must not change what it finds.

The CLI path runs without pandas (pure-Python profile accessors; DataFrames only on request),
skips jsonschema for rule files whose exact text already passed the schema, matches rules only
against the stacks holding a matching symbol, and ends the process with os._exit after flushing.
Each shortcut is checked here against the slow way on real samples.
"""

import gzip
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from advisor.analysis import analyze, load
from advisor.engine import rules as rules_module
from advisor.engine.match import family, match_stack
from advisor.engine.rules import load_rules
from advisor.errors import InputError
from advisor.paths import rules_dir, samples_dir

HEAVY = ("pandas", "numpy", "jsonschema", "networkx")

MODULES_AFTER_ANALYZE = r"""
import json, sys
from advisor import cli
code = cli.main(["analyze", sys.argv[1], "--format", sys.argv[3], "--output", "/dev/null"])
print(json.dumps({"code": code, "heavy": [m for m in sys.argv[2].split(",") if m in sys.modules]}))
"""


def modules_after_analyze(path, cache_home, modules=HEAVY, fmt="json"):
    run = subprocess.run([sys.executable, "-c", MODULES_AFTER_ANALYZE, str(path), ",".join(modules), fmt],
                         capture_output=True,
                         text=True, timeout=60, env={"XDG_CACHE_HOME": str(cache_home), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.fixture(scope="module")
def netfilter():
    return load(samples_dir() / "netfilter").profile


def test_analyze_imports_no_pandas_and_jsonschema_only_until_the_rules_are_known(tmp_path):
    first = modules_after_analyze(samples_dir() / "netfilter", tmp_path)
    assert first["code"] == 0 and first["heavy"] == ["jsonschema"]  # validated the rule files once
    again = modules_after_analyze(samples_dir() / "netfilter", tmp_path)
    assert again["heavy"] == []
    assert len((tmp_path / "advisor" / "valid-rules").read_text().splitlines()) == len(list(rules_dir().glob("*.toml")))


RULES_FROM_THE_CACHE = r"""
import json, sys
from advisor.engine.rules import load_rules
rules = load_rules()
print(json.dumps({"rules": [repr(r) for r in rules],
                  "parsed": [m for m in ("tomllib", "jsonschema") if m in sys.modules]}))
"""


def rules_in_a_process(cache_home) -> dict:
    run = subprocess.run([sys.executable, "-c", RULES_FROM_THE_CACHE], capture_output=True, text=True,
                         timeout=60, env={"XDG_CACHE_HOME": str(cache_home), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_analyze_of_plain_text_imports_neither_gzip_nor_shutil(tmp_path):
    """argparse imports shutil (and with it bz2 and lzma, ~3.5 ms) for the help's width, and gzip
    (~1 ms) serves only compressed inputs: `advise analyze` of a perf.data or plain text needs neither."""
    text = tmp_path / "netfilter.perf.txt"
    text.write_bytes(gzip.decompress((samples_dir() / "netfilter" / "perf.script.gz").read_bytes()))
    modules_after_analyze(text, tmp_path)  # fills the rules cache: later runs import no validator
    assert modules_after_analyze(text, tmp_path, ("gzip", "shutil", "bz2", "lzma"))["heavy"] == []


def test_a_report_without_colour_does_not_highlight_the_commands(tmp_path):
    """Highlighting cannot show in a file or a pipe, and it was a third of the terminal report's
    first rendering: the commands are then plain text (test_reports checks the text is the same).
    And every cell is rich Text: a plain str cell goes through rich's markup and emoji parsing
    (importing its emoji table alone took 3 ms)."""
    modules_after_analyze(samples_dir() / "netfilter", tmp_path)  # fills the rules cache
    after = modules_after_analyze(samples_dir() / "netfilter", tmp_path,
                                  ("rich.syntax", "pygments.lexers.shell", "rich._emoji_codes"), fmt="terminal")
    assert after["code"] == 0 and after["heavy"] == []


REPORT_MADE_READY_WHILE_READING = r"""
import json, os, sys
from advisor import analysis, cli, idle
seen = {"steps_by_readers": 0}
step = idle.step
def counted():  # what perf_spawn.PolledPipe calls when perf's pipe is empty
    took = step()
    seen["steps_by_readers"] += took
    return took
idle.step = counted
evaluate = analysis.analyze_evidence
def watched(*args, **kwargs):  # perf's last line has been read; the report comes next
    seen["imported"] = [m for m in ("advisor.report.terminal", "rich.console", "advisor.report.export")
                        if m in sys.modules]
    return evaluate(*args, **kwargs)
analysis.analyze_evidence = watched
sys.stdout = open(os.devnull, "w")
code = cli.main(["analyze", *sys.argv[1:]])
sys.stdout = sys.__stdout__
print(json.dumps({"code": code, **seen}))
"""


@pytest.fixture(scope="module")
def perf_recording(tmp_path_factory):
    from tests.test_parse_perf_data import record

    return record(tmp_path_factory.mktemp("perf"), "perf.data", "-g")


@pytest.mark.parametrize("fmt, unused", [
    ("json", ("subprocess", "selectors", "dataclasses", "inspect")),
    ("terminal", ("subprocess", "selectors")),  # rich's Table imports dataclasses, in the reader's steps
])
def test_analyze_of_a_perf_data_file_imports_no_subprocess(tmp_path, perf_recording, fmt, unused):
    """perf is spawned and waited for with os alone (perf_spawn): subprocess and selectors (~2.5 ms)
    are imported only to stop perf or to raise a timeout. The analysis's records are no
    dataclasses: importing dataclasses and inspect and decorating the classes took ~12 ms."""
    modules_after_analyze(perf_recording, tmp_path)  # fills the rules cache
    after = modules_after_analyze(perf_recording, tmp_path, unused, fmt=fmt)
    assert after["code"] == 0 and after["heavy"] == []


@pytest.mark.parametrize("extra, imported", [
    ([], ["advisor.report.terminal", "rich.console"]),
    (["--export", "folded", "--output", "OUT"], ["advisor.report.export"]),
])
def test_the_report_is_made_ready_while_the_reader_waits_for_perf(tmp_path, perf_recording, extra, imported):
    """rich takes ~25 ms of CPU to import: taken in steps by the reader while perf loads its
    symbols (its pipe empty), it follows neither perf's last line nor keeps perf waiting. Here all
    of them are taken by then; on a loaded machine 18 of 26 were (so only "some" is asserted)."""
    extra = [str(tmp_path / "out") if word == "OUT" else word for word in extra]
    run = subprocess.run([sys.executable, "-c", REPORT_MADE_READY_WHILE_READING, str(perf_recording), *extra],
                         capture_output=True, text=True, timeout=60,
                         env={"XDG_CACHE_HOME": str(tmp_path), "PATH": os.environ["PATH"]})
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert seen["code"] == 0 and seen["steps_by_readers"] >= 1, seen
    assert set(seen["imported"]) <= set(imported), seen  # only what this report needs


@pytest.mark.parametrize("columns", [None, "50", "0", "wide"])
def test_the_help_is_as_wide_as_shutil_would_make_it(monkeypatch, columns):
    from advisor import cli

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert cli._terminal_columns() == shutil.get_terminal_size().columns


def test_cached_rule_files_are_neither_parsed_nor_validated_and_read_the_same(tmp_path):
    first = rules_in_a_process(tmp_path)
    assert first["parsed"] == ["tomllib", "jsonschema"]
    again = rules_in_a_process(tmp_path)
    assert again["parsed"] == [] and again["rules"] == first["rules"]
    cache_file = tmp_path / "advisor" / "valid-rules"
    lines = cache_file.read_text().splitlines()
    digest, _, content = lines[0].partition(" ")
    cache_file.write_text("\n".join([f"{digest} {content[:-1]}", *lines[1:]]) + "\n")  # damaged JSON
    damaged = rules_in_a_process(tmp_path)
    assert damaged["parsed"] == ["tomllib", "jsonschema"] and damaged["rules"] == first["rules"]
    assert cache_file.read_text().splitlines()[-1] == lines[0]  # that file, parsed and kept again
    assert rules_in_a_process(tmp_path)["parsed"] == []


def test_a_cache_that_is_a_fifo_is_left_alone(tmp_path):
    """A FIFO in its place blocked both the read and the write (the run then hung until this
    helper's 60 s timeout): the rules are parsed instead, and the FIFO stays. (A directory or a
    looping link there was already harmless: reading and writing them fail at once.)"""
    cache_file = tmp_path / "advisor" / "valid-rules"
    cache_file.parent.mkdir()
    os.mkfifo(cache_file)
    kind = cache_file.lstat().st_mode
    for _ in range(2):
        assert rules_in_a_process(tmp_path)["parsed"] == ["tomllib", "jsonschema"]
    assert cache_file.lstat().st_mode == kind


def test_a_cache_line_holding_nan_is_damaged_and_the_file_parsed_again(tmp_path):
    """Python's json reads NaN, which this cache never writes: such a line was not written by
    advisor, and taking it would put a nan into the estimates."""
    first = rules_in_a_process(tmp_path)
    cache_file = tmp_path / "advisor" / "valid-rules"
    lines = cache_file.read_text().splitlines()
    number = next(i for i, line in enumerate(lines) if '"reported_gain_pct":' in line)
    nan = re.sub(r'"reported_gain_pct":[0-9.]+', '"reported_gain_pct":NaN', lines[number])
    assert nan != lines[number]
    cache_file.write_text("\n".join(lines[:number] + [nan] + lines[number + 1:]) + "\n")
    again = rules_in_a_process(tmp_path)
    assert again["parsed"] == ["tomllib", "jsonschema"] and again["rules"] == first["rules"]


def test_a_rule_file_edited_after_it_was_cached_is_validated_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rules = tmp_path / "rules"
    shutil.copytree(rules_dir(), rules)
    assert len(load_rules(rules)) == len(list(rules.glob("*.toml")))
    target = rules / "netfilter.toml"
    text = target.read_text()
    bad = text.replace('risk = "', 'risk = "x', 1)  # not one of low, medium, high
    assert bad != text
    target.write_text(bad)
    with pytest.raises(InputError) as exc:
        load_rules(rules)
    assert str(exc.value).startswith(f"{target}: field remedy.risk")
    target.write_text(text)
    assert [r.id for r in load_rules(rules)] == [r.id for r in load_rules()]


def test_an_unreadable_cache_means_validating_again(tmp_path, monkeypatch):
    cache_file = tmp_path / "advisor" / "valid-rules"
    cache_file.parent.mkdir()
    cache_file.write_bytes(b"\xff\xfe not hex\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(rules_module, "_VALIDATOR", None)
    assert load_rules()  # validated with jsonschema (the cache file could not be read)
    assert rules_module._VALIDATOR is not None


def test_pure_accessors_agree_with_pandas_over_the_rows(netfilter):
    """cpu_stats, process_stats and top_symbols against independent pandas sums over `rows`."""
    rows = netfilter.rows
    by_cpu = rows.groupby("cpu")
    busy_by_cpu = rows[~rows["idle"]].groupby("cpu")["weight"].sum()
    for c in netfilter.cpu_stats():
        assert c.samples == by_cpu["count"].sum()[c.cpu]
        assert c.busy_pct == pytest.approx(100 * busy_by_cpu[c.cpu] / by_cpu["weight"].sum()[c.cpu])
    busy = rows[~rows["idle"] & rows["selected"]]
    assert netfilter.busy_samples == busy["count"].sum() and netfilter.busy_weight == busy["weight"].sum()
    per_comm = busy.groupby("comm")[["weight", "count"]].sum()
    for p in netfilter.process_stats():
        assert p.samples == per_comm.loc[p.comm, "count"]
        assert p.busy_pct == pytest.approx(100 * per_comm.loc[p.comm, "weight"] / busy["weight"].sum())
    inclusive: dict[str, float] = {}
    for stack, weight in zip(busy["stack"], busy["weight"]):
        for symbol in set(netfilter.stacks[stack]):
            inclusive[symbol] = inclusive.get(symbol, 0.0) + weight
    for t in netfilter.top_symbols(20, by="inclusive"):
        assert t.inclusive_pct == pytest.approx(100 * inclusive[t.symbol] / busy["weight"].sum())


def slow_share(profile, target, under, exclude_below, self_only, cpus=None):
    """The share as computed before the symbol index: every stack, every busy row."""
    weight = samples = 0
    symbols = {}
    for stack, comm, cpu, count, w in profile.busy_rows():
        if cpus is not None and cpu not in cpus:
            continue
        i = match_stack(profile.stacks[stack], target, under, exclude_below, self_only)
        if i >= 0:
            weight += w
            samples += count
            symbols[profile.stacks[stack][i]] = symbols.get(profile.stacks[stack][i], 0) + w
    return weight, samples, symbols


@pytest.mark.parametrize("cpus", [None, [1]])
def test_indexed_matching_finds_what_matching_every_stack_finds(netfilter, cpus):
    checked = 0
    for rule in load_rules():
        if not rule.symbols:
            continue
        share = netfilter.share(rule.symbols, rule.under, rule.exclude_below, rule.mode, cpus)
        weight, samples, symbols = slow_share(netfilter, rule.symbols, rule.under, rule.exclude_below,
                                              rule.mode == "self", cpus)
        assert (share.weight, share.samples, dict(share.symbols)) == (weight, samples, symbols), rule.id
        checked += weight > 0
    assert checked >= 3  # some rules do match this sample


def test_the_same_patterns_give_the_same_family():
    assert family(["nf_hook_slow", "nft_*"]) is family(("nf_hook_slow", "nft_*"))
    assert family("nft_*") is family(["nft_*"]) and family(None) is family([])
    nft = family("nft_*")
    assert nft.select(["nft_do_chain", "nf_hook_slow", "nft_meta_get_eval"]) == ["nft_do_chain", "nft_meta_get_eval"]


def test_bad_input_is_reported_before_bad_rules(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(rules_dir(), rules)
    (rules / "netfilter.toml").write_text("id = \n")
    with pytest.raises(InputError, match="no such file"):
        analyze(tmp_path / "missing.data", rules_dir=rules)
    with pytest.raises(InputError, match="netfilter.toml:1: invalid TOML"):
        analyze(samples_dir() / "netfilter", rules_dir=rules)


def test_the_cli_flushes_everything_before_it_ends_the_process():
    """`advise analyze` ends with os._exit: output still buffered then would be lost."""
    run = subprocess.run([sys.executable, "-m", "advisor.cli", "analyze", str(samples_dir() / "netfilter"),
                          "--format", "json"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stderr == ""
    assert json.loads(run.stdout) == json.loads(json.dumps(analyze(samples_dir() / "netfilter").data))
    gate = subprocess.run([sys.executable, "-m", "advisor.cli", "analyze", str(samples_dir() / "netfilter"),
                           "--format", "markdown", "--fail-on-gain", "5"], capture_output=True, text=True, timeout=60)
    assert gate.returncode == 1 and "gate tripped" in gate.stderr and gate.stdout.startswith("# ")


def test_a_reader_that_has_gone_is_no_error():
    """Like `advise analyze ... | head -0`: the report meets a closed pipe."""
    proc = subprocess.Popen([sys.executable, "-m", "advisor.cli", "analyze", str(samples_dir() / "netfilter"),
                             "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdout.close()  # long before the report is written
        assert proc.wait(timeout=60) == 0
        assert proc.stderr.read() == b""
    finally:
        proc.kill()
        proc.wait()


def test_runs_that_fill_the_rule_cache_at_once_leave_whole_lines(tmp_path):
    """Each run appends its lines with one write(2): four runs filling an empty cache together
    leave lines that each read as a digest and a parsed rule file."""
    env = {"XDG_CACHE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    code = "from advisor.engine.rules import load_rules; load_rules()"
    runs = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(4)]
    assert [run.wait(timeout=60) for run in runs] == [0] * 4
    lines = (tmp_path / "advisor" / "valid-rules").read_text().splitlines()
    assert len(lines) >= len(list(rules_dir().glob("*.toml")))
    for line in lines:
        digest, _, content = line.partition(" ")
        assert len(digest) == 64 and isinstance(json.loads(content), dict)


def test_a_full_rule_cache_starts_afresh_with_what_this_run_added(tmp_path, monkeypatch):
    """Past CACHE_MAX_ENTRIES the cache file is replaced by this run's lines alone (it never
    grows without end); what it held before is gone, and the next run finds every file in it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(rules_module, "CACHE_MAX_ENTRIES", 5)
    cache_file = tmp_path / "advisor" / "valid-rules"
    cache_file.parent.mkdir()
    stale = [f"{i:064x} {{}}" for i in range(10)]  # lines of files that no longer exist
    cache_file.write_text("\n".join(stale) + "\n")
    load_rules()
    lines = cache_file.read_text().splitlines()
    assert len(lines) == len(list(rules_dir().glob("*.toml"))) and not set(stale) & set(lines)
    monkeypatch.setattr(rules_module, "_VALIDATOR", None)
    load_rules()  # every file found in the cache: nothing validated, nothing written
    assert rules_module._VALIDATOR is None and cache_file.read_text().splitlines() == lines
