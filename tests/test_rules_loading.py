"""Rules as data: every remedy of the case study present, validated, bad files rejected clearly."""

import os

import pytest

from advisor.engine.rules import load_rules, parse_rule
from advisor.errors import InputError
from advisor.paths import rules_dir

REQUIRED = {"app-all-cores", "app-build-flags", "app-recv-send", "mitigation-spectre-v2", "mitigation-pti",
            "mitigation-mds", "mitigation-spectre-v1", "syscall-audit", "seccomp", "netfilter", "cpu-locality",
            "irq-affinity", "busy-poll", "interrupt-moderation", "packet-tap", "qdisc-lock", "gro",
            "congestion-control"}

GOOD = (rules_dir() / "netfilter.toml").read_text()


def test_every_case_study_remedy_has_a_rule():
    ids = {r.id for r in load_rules()}
    assert REQUIRED <= ids


def test_rules_carry_the_case_study_reference_and_a_rollback():
    for r in load_rules():
        assert r.section and r.observed and r.reported_gain_pct > 0, r.id
        assert r.commands and r.rollback and r.caveat, r.id


@pytest.mark.parametrize("rule_id,symbols", [
    ("mitigation-spectre-v2", ["__x86_indirect_thunk_rax", "__x86_return_thunk", "srso_alias_return_thunk",
                               "srso_return_thunk", "retbleed_return_thunk"]),
    ("netfilter", ["nf_hook_slow", "ipt_do_table", "nft_do_chain", "nft_do_chain_ipv4", "nf_conntrack_in"]),
    ("packet-tap", ["packet_rcv", "tpacket_rcv"]),
    ("seccomp", ["__seccomp_filter", "seccomp_run_filters"]),
    ("syscall-audit", ["__audit_syscall_entry", "__audit_syscall_exit", "audit_filter_syscall"]),
    ("qdisc-lock", ["native_queued_spin_lock_slowpath", "_raw_spin_lock", "__qdisc_run", "sch_direct_xmit"]),
    ("gro", ["dev_gro_receive", "napi_gro_receive", "inet_gro_receive", "tcp_gro_receive", "gro_receive_skb"]),
    ("congestion-control", ["cubictcp_cong_avoid", "bictcp_cwnd_event", "bbr_main"]),
])
def test_symbol_families_cover_aliases_across_kernel_versions(rule_id, symbols):
    rule = {r.id: r for r in load_rules()}[rule_id]
    for sym in symbols:
        assert rule.symbols.matches(sym), (rule_id, sym)
    assert not rule.symbols.matches("tcp_v4_rcv")


def test_security_weakening_remedies_are_marked():
    weak = {r.id for r in load_rules() if r.weakens_security}
    assert {"netfilter", "seccomp", "syscall-audit", "mitigation-spectre-v2", "mitigation-pti",
            "mitigation-mds", "mitigation-spectre-v1"} <= weak
    assert "gro" not in weak


def test_rule_id_must_match_the_file_name():
    with pytest.raises(InputError, match=r"x/other.toml: field id"):
        parse_rule(GOOD, "x/other.toml")


@pytest.mark.parametrize("edit,field", [
    (("removable = 1.1", "removable = 2.5"), "estimate.removable"),
    (('risk = "high"', 'risk = "extreme"'), "remedy.risk"),
    (('category = "netfilter"', 'category = "misc"'), "category"),
    (("[reference]", "[reference]\nunknown_key = 1"), "reference"),
    (('commands = [', 'commands = "not a list"\nold_commands = ['), "remedy"),
])
def test_schema_violations_name_file_and_field(edit, field):
    bad = GOOD.replace(*edit)
    assert bad != GOOD
    with pytest.raises(InputError) as exc:
        parse_rule(bad, "rules/netfilter.toml")
    msg = str(exc.value)
    assert msg.startswith("rules/netfilter.toml: field ") and field in msg and "\n" not in msg


def test_toml_syntax_error_names_the_line():
    bad = GOOD.replace('title = "', 'title = ', 1)
    with pytest.raises(InputError) as exc:
        parse_rule(bad, "rules/netfilter.toml")
    assert str(exc.value).startswith("rules/netfilter.toml:3: invalid TOML")


@pytest.mark.parametrize("edit, field, escape", [
    (('title = "', 'title = "\\u001b[2J'), "title", "\\x1b"),
    (('commands = [\n', 'commands = [\n  "iptables -S \\u202e",\n'), "remedy.commands.0", "\\u202e")])
def test_a_control_or_invisible_character_in_rule_text_is_refused(edit, field, escape):
    """Rule text goes into every report and onto terminals, and `advise explain` printed ESC [ 2 J
    of a rule's title as it was (TOML's \\u escapes can hold any character)."""
    bad = GOOD.replace(*edit, 1)
    assert bad != GOOD
    with pytest.raises(InputError) as exc:
        parse_rule(bad, "rules/netfilter.toml")
    assert str(exc.value) == (f"rules/netfilter.toml: field {field}: holds the control or invisible character "
                              f"{escape}, which a terminal would act on")


def test_newlines_and_tabs_in_rule_text_are_fine():
    text = GOOD.replace('why = "Every packet', 'why = "Every\\n\\tpacket', 1)
    assert parse_rule(text, "rules/netfilter.toml").why.startswith("Every\n\tpacket")


def test_removable_outside_its_range_is_rejected():
    bad = GOOD.replace("removable_range = [0.95, 1.4]", "removable_range = [1.2, 1.4]")
    assert bad != GOOD
    with pytest.raises(InputError, match="removable_range"):
        parse_rule(bad, "rules/netfilter.toml")


def test_missing_rules_directory_content(tmp_path):
    with pytest.raises(InputError, match="no rule files"):
        load_rules(tmp_path)


@pytest.mark.parametrize("name, why", [("absent", "no such directory"), ("netfilter.toml", "not a directory")])
def test_rules_that_are_no_directory_say_so(tmp_path, name, why):
    (tmp_path / "netfilter.toml").write_text(GOOD)
    with pytest.raises(InputError) as exc:
        load_rules(tmp_path / name)
    assert str(exc.value) == f"{tmp_path / name}: {why}: rules are read from a directory of rule files (*.toml)"


@pytest.mark.parametrize("make, kind", [
    (os.mkfifo, "a FIFO"),  # reading it would wait for a writer, for ever
    (lambda p: p.mkdir(), "a directory"),
    (lambda p: p.symlink_to("gone.toml"), "a symbolic link that leads nowhere (No such file or directory)"),
])
def test_a_rule_file_that_is_no_regular_file_is_named(tmp_path, make, kind):
    (tmp_path / "netfilter.toml").write_text(GOOD)
    make(tmp_path / "zz.toml")
    with pytest.raises(InputError) as exc:
        load_rules(tmp_path)
    assert str(exc.value) == f"{tmp_path / 'zz.toml'}: cannot read rule file: not a regular file but {kind}"
