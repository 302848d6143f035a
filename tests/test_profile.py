"""Profile: idle vs busy, shares with context, per-CPU views, pandas and networkx views."""

import io

import pytest

from advisor.parse import folded
from advisor.profile import Profile

from .stacks import IDLE, RECV, SERVE, table

NF = "_start;main;__libc_recv;entry_SYSCALL_64;do_syscall_64;ip_rcv;nf_hook_slow;nft_do_chain"


def test_idle_samples_count_as_utilisation_not_busy_time():
    p = Profile(table([("nginx", 0, SERVE, 60), ("swapper/0", 0, IDLE, 40)]))
    assert p.samples == 100
    assert p.busy_samples == 60
    assert p.busy_pct == pytest.approx(60.0)


def test_softirq_work_on_the_idle_task_is_busy():
    rx = IDLE.rsplit(";", 1)[0] + ";asm_common_interrupt;irq_exit_rcu;handle_softirqs;net_rx_action;ip_rcv"
    p = Profile(table([("swapper/1", 1, rx, 30), ("swapper/1", 1, IDLE, 70)]))
    assert p.busy_samples == 30
    assert p.share("net_rx_action").pct == pytest.approx(100.0)


def test_shares_are_over_busy_samples_and_inclusive_counts_once():
    recursive = "_start;main;nf_hook_slow;nf_hook_slow;nft_do_chain"
    p = Profile(table([("nginx", 0, SERVE, 50), ("nginx", 0, recursive, 25), ("swapper/0", 0, IDLE, 25)]))
    s = p.share(["nf_hook_slow", "nft_do_chain"])
    assert s.pct == pytest.approx(100 * 25 / 75)
    assert s.samples == 25
    assert p.share("nft_do_chain", mode="self").pct == pytest.approx(100 * 25 / 75)
    assert p.share("nf_hook_slow", mode="self").pct == 0


def test_under_and_exclude_below_give_context():
    lock_in_qdisc = "_start;main;__dev_queue_xmit;__qdisc_run;_raw_spin_lock;native_queued_spin_lock_slowpath"
    lock_elsewhere = "_start;main;tcp_sendmsg;_raw_spin_lock;native_queued_spin_lock_slowpath"
    driver = "_start;main;__dev_queue_xmit;__qdisc_run;sch_direct_xmit;dev_hard_start_xmit;veth_xmit"
    p = Profile(table([("nginx", 0, lock_in_qdisc, 10), ("nginx", 0, lock_elsewhere, 30), ("nginx", 0, driver, 60)]))
    slow = p.share("native_queued_spin_lock_slowpath", under="__dev_queue_xmit")
    assert slow.samples == 10
    qdisc = p.share(["__qdisc_run", "sch_direct_xmit"], exclude_below="dev_hard_start_xmit")
    assert qdisc.samples == 10


def test_per_cpu_saturation_and_restriction_to_cpus():
    p = Profile(table([("nginx", 0, NF, 45), ("nginx", 0, SERVE, 55),
                       ("nginx", 1, SERVE, 10), ("swapper/1", 1, IDLE, 90)]))
    cpus = p.cpus().set_index("cpu")
    assert cpus.loc[0, "busy_pct"] == pytest.approx(100)
    assert bool(cpus.loc[0, "saturated"]) and not bool(cpus.loc[1, "saturated"])
    assert p.share("nf_hook_slow", cpus=[0]).pct == pytest.approx(45)
    assert p.share("nf_hook_slow").pct == pytest.approx(100 * 45 / 110)
    assert p.share("nf_hook_slow").per_cpu == {0: 45 * 1_000_000}


def test_filters_by_comm_and_pid():
    p = Profile(table([("nginx", 0, NF, 20), ("wrk", 1, SERVE, 80)]), comm="nginx")
    assert p.busy_samples == 20
    assert p.share("nf_hook_slow").pct == pytest.approx(100)
    by_pid = Profile(table([("nginx", 0, NF, 20), ("wrk", 1, SERVE, 80)]), pid=101)
    assert by_pid.busy_samples == 80


def test_top_is_a_dataframe_sorted_by_self_share():
    p = Profile(table([("nginx", 0, SERVE, 70), ("nginx", 0, RECV, 30)]))
    top = p.top(5)
    assert list(top.columns) == ["symbol", "dso", "kind", "self_pct", "inclusive_pct", "self_samples"]
    assert top.iloc[0]["symbol"] == "json_encode" and top.iloc[0]["self_pct"] == pytest.approx(70)
    main = p.top(None, by="inclusive").set_index("symbol").loc["main"]
    assert main["inclusive_pct"] == pytest.approx(100) and main["self_pct"] == 0


def test_kernel_share_uses_leaf_kind():
    p = Profile(table([("nginx", 0, SERVE, 70), ("nginx", 0, RECV, 30)]))
    assert p.kind_share("kernel").pct == pytest.approx(30)
    assert p.kind_share("user").pct == pytest.approx(70)


def test_call_graph_edges_carry_weights():
    p = Profile(table([("nginx", 0, NF, 20), ("nginx", 0, RECV, 30)]))
    g = p.call_graph()
    assert g["do_syscall_64"]["ip_rcv"]["weight"] == 20 * 1_000_000
    assert g.nodes["nft_do_chain"]["self"] == 20 * 1_000_000
    assert set(g.successors("do_syscall_64")) == {"ip_rcv", "__x64_sys_recvfrom"}


def test_profile_from_folded_text_without_cpus():
    text = b"nginx;main;recv;nf_hook_slow 30\nnginx;main;recv 70\nswapper;do_idle;default_idle 100\n"
    p = Profile(folded.read(io.BytesIO(text), "demo"))
    assert p.busy_pct == pytest.approx(50)
    assert p.cpus().empty and not p.has_cpu


def test_event_choice_prefers_cpu_clock():
    t = table([("nginx", 0, SERVE, 5)], event="sched:sched_switch")
    for entry in table([("nginx", 0, NF, 7)], event="cpu-clock").rows.items():
        t.add(entry[0], entry[1][0], entry[1][1])
    p = Profile(t)
    assert p.event == "cpu-clock" and p.samples == 7
    assert Profile(t, event="sched:sched_switch").samples == 5


def test_a_comma_list_of_programs_means_the_same_everywhere():
    """--comm nginx,wrk selects both programs, and a rule limited to the target (comms=) counts
    both too: the string is split in one place (comm_family), not read as one glob."""
    from advisor.analysis import load
    from advisor.paths import samples_dir

    both = load(samples_dir() / "netfilter", comm="nginx,wrk").profile
    nginx = both.share("nf_hook_slow", comms="nginx").samples
    wrk = both.share("nf_hook_slow", comms="wrk").samples
    assert nginx > 0 and wrk > 0
    assert both.share("nf_hook_slow", comms="nginx,wrk").samples == nginx + wrk == both.share("nf_hook_slow").samples


def test_a_program_name_longer_than_the_kernel_keeps_still_matches_its_samples():
    """The kernel records 15 bytes of a name: --comm with the full name selects those samples."""
    from advisor.profile import comm_family

    long = comm_family("very-long-server-name")
    assert long.matches("very-long-serve") and not long.matches("very-long-serv")
    assert comm_family("nginx,wrk").matches("wrk") and comm_family(["ngin*"]).matches("nginx")


def test_a_share_mode_that_is_neither_inclusive_nor_self_is_refused():
    """It counted as 'inclusive' without a word: a typo ('Self') gave another number than asked."""
    p = Profile(folded.read(io.BytesIO(b"nginx;main;recv 3\nnginx;main 1\n"), "demo"))
    assert p.share("recv", mode="self").samples == 3
    with pytest.raises(ValueError, match="'inclusive' or 'self'"):
        p.share("recv", mode="Self")


def test_a_flame_graph_takes_rule_ids_as_well_as_rules():
    from advisor.engine.rules import get_rule

    p = Profile(folded.read(io.BytesIO(b"nginx;main;ip_output;nf_hook_slow;nft_do_chain 3\nnginx;main 1\n"),
                            "demo"))
    by_rule = p.flamegraph([get_rule("netfilter")]).svg
    assert p.flamegraph(["netfilter"]).svg == p.flamegraph("netfilter").svg == by_rule
    assert 'data-role="matched"' in by_rule
