"""Exports: folded stacks (FlameGraph's format, via parse.collapse.fold) and speedscope JSON, checked
against the speedscope file format (the fields of its file-format-schema.json), on the real
netfilter recording and through `advise analyze --export`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import jsonschema
import pytest

from advisor.analysis import load
from advisor.parse.collapse import fold
from advisor.paths import samples_dir
from advisor.report import export

NETFILTER = samples_dir() / "netfilter"

#: The parts of https://www.speedscope.app/file-format-schema.json that a sampled profile uses
#: (speedscope's src/lib/file-format-spec.ts: File, Frame, SampledProfile, ValueUnit).
SPEEDSCOPE_SCHEMA = {
    "type": "object",
    "required": ["$schema", "shared", "profiles"],
    "properties": {
        "$schema": {"const": "https://www.speedscope.app/file-format-schema.json"},
        "shared": {"type": "object", "required": ["frames"], "properties": {"frames": {
            "type": "array", "items": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "file": {"type": "string"}, "line": {"type": "number"},
                "col": {"type": "number"}}}}}},
        "profiles": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["type", "name", "unit", "startValue", "endValue", "samples", "weights"],
            "properties": {
                "type": {"const": "sampled"}, "name": {"type": "string"},
                "unit": {"enum": ["none", "nanoseconds", "microseconds", "milliseconds", "seconds", "bytes"]},
                "startValue": {"type": "number"}, "endValue": {"type": "number"},
                "samples": {"type": "array", "items": {"type": "array", "items": {"type": "integer",
                                                                                   "minimum": 0}}},
                "weights": {"type": "array", "items": {"type": "number"}}}}},
        "name": {"type": "string"}, "activeProfileIndex": {"type": "number"}, "exporter": {"type": "string"},
    },
}


@pytest.fixture(scope="module")
def profile():
    return load(NETFILTER).profile


def test_folded_is_what_flamegraph_folding_prints(profile):
    text = export.render(profile, "folded")
    assert text.splitlines() == fold(profile.table, event=profile.event)
    total = sum(int(line.rsplit(" ", 1)[1]) for line in text.splitlines())
    assert total == profile.table.events[profile.event][1]  # every sample, idle included


def test_folded_keeps_the_profile_filters():
    nginx = load(NETFILTER, comm="nginx").profile
    lines = export.render(nginx, "folded").splitlines()
    assert lines and all(line.startswith("nginx;") or line.startswith("nginx ") for line in lines)
    selected = nginx.rows[nginx.rows["selected"]]
    assert sum(int(line.rsplit(" ", 1)[1]) for line in lines) == selected["weight"].sum()
    # and --pid: only that process's rows (each export row is one of the table's keys)
    pid = int(nginx.rows.loc[nginx.rows["comm"] == "nginx", "pid"].iloc[0])
    one = load(NETFILTER, pid=pid).profile
    table = export.selected_table(one)
    assert table.rows and {k.pid for k in table.rows} == {pid}
    rows = one.rows
    assert sum(w for _, w in table.rows.values()) == rows[rows["pid"] == pid]["weight"].sum()


def test_speedscope_matches_the_file_format(profile):
    doc = json.loads(export.render(profile, "speedscope"))
    jsonschema.validate(doc, SPEEDSCOPE_SCHEMA)
    (prof,) = doc["profiles"]
    frames = doc["shared"]["frames"]
    assert prof["unit"] == "nanoseconds"  # cpu-clock periods are nanoseconds
    assert len(prof["samples"]) == len(prof["weights"]) > 100
    assert all(0 <= i < len(frames) for stack in prof["samples"] for i in stack)
    assert prof["endValue"] - prof["startValue"] == sum(prof["weights"]) == profile.table.events["cpu-clock"][1]
    # same weight per process as the folded export (the process name is the root frame in both)
    by_comm = Counter()
    for stack, weight in zip(prof["samples"], prof["weights"]):
        by_comm[frames[stack[0]]["name"]] += weight
    folded = Counter()
    for line in export.render(profile, "folded").splitlines():
        stack, weight = line.rsplit(" ", 1)
        folded[stack.split(";")[0]] += int(weight)
    assert by_comm == folded
    names = {f["name"] for f in frames}
    assert {"nf_hook_slow", "nft_do_chain", "nginx"} <= names
    assert any(f.get("file") == "[kernel.kallsyms]" for f in frames)


def test_unknown_kind_is_a_usage_error(profile):
    from advisor.errors import UsageError

    with pytest.raises(UsageError):
        export.render(profile, "pprof")


def advise(*args):
    return subprocess.run([sys.executable, "-m", "advisor.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=60)


def test_cli_export_writes_both_formats(tmp_path):
    out = tmp_path / "p.speedscope.json"
    run = advise("analyze", NETFILTER, "--export", "speedscope", "-o", out)
    assert run.returncode == 0, run.stderr
    jsonschema.validate(json.loads(out.read_text()), SPEEDSCOPE_SCHEMA)
    out = tmp_path / "p.folded"
    assert advise("analyze", NETFILTER, "--export", "folded", "-o", out).returncode == 0
    assert out.read_text().count("\n") == len(fold(load(NETFILTER).profile.table))
    run = advise("analyze", NETFILTER, "--export", "folded")
    assert run.returncode == 2 and "--output" in run.stderr
