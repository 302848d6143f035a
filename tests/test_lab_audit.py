"""The syscall-audit scenario: audit rules sent to the kernel over NETLINK_AUDIT, and restored.

Audit is global to the machine, so the tests that change it run only when
ADVISOR_TEST_ALLOW_GLOBAL=1 (set by .ci/run, on a fresh machine; on a shared box they set the
kernel's audit_ever_enabled until reboot, as `advise lab --allow-global` does). The packing of
a rule, and the refusal to run without --allow-global, are tested everywhere.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from advisor.cli_lab import default_scenarios
from advisor.errors import EnvironmentProblem
from advisor.lab import audit_control as A
from advisor.lab import pathologies as P
from advisor.lab.testbed import Testbed
from advisor.lab import verify
from advisor.lab.verify import LabSettings, run_lab

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLOBAL_OK = os.environ.get("ADVISOR_TEST_ALLOW_GLOBAL") == "1" and os.geteuid() == 0
needs_global = pytest.mark.skipif(not GLOBAL_OK, reason="changes the machine's audit settings: set "
                                                        "ADVISOR_TEST_ALLOW_GLOBAL=1 (root) to run")


def test_a_rule_packs_as_the_kernel_struct_and_reads_back():
    rule = A.Rule(A.AUDIT_FILTER_EXIT, A.AUDIT_ALWAYS, (0, 31, 32, 159, 313), A.AUDIT_ARCH_X86_64, "k-1")
    packed = rule.pack()
    assert len(packed) == 1040 + 3  # 3 + 64*4 u32 + buflen, then the key's bytes
    assert A.unpack_rule(packed) == rule
    mask = A.RULE.unpack_from(packed)[3:3 + 64]
    assert mask[0] == (1 << 0) | (1 << 31) and mask[1] == 1 and mask[159 // 32] == 1 << (159 % 32)
    never = A.never_task("k-2")
    assert A.unpack_rule(never.pack()) == never and never.syscalls == ()
    with pytest.raises(EnvironmentProblem, match="bytes"):
        A.unpack_rule(packed[:100])


def test_the_compliance_rules_never_match_what_the_lab_runs():
    """The rules must cost an audit context on every syscall but log nothing: none of them names
    a syscall nginx, wrk or `ip netns exec` makes (mount/umount2 were dropped for that reason)."""
    numbers = {nr for nrs in A.COMPLIANCE_SYSCALLS.values() for nr in nrs}
    hot = {0, 1, 3, 20, 41, 42, 43, 44, 45, 46, 47, 232, 233, 288, 165, 166, 272, 308}  # I/O, sockets, epoll, (u)mount, unshare, setns
    assert numbers and not numbers & hot


def test_global_scenarios_need_allow_global(monkeypatch):
    assert P.make("syscall-audit").global_setting
    assert "syscall-audit" not in default_scenarios(False) and "netfilter" in default_scenarios(False)
    assert default_scenarios(True) == list(P.PATHOLOGIES)
    assert all(P.make(n).global_setting is None for n in P.PATHOLOGIES if n != "syscall-audit")
    built = []
    monkeypatch.setattr(verify, "Testbed", lambda *a, **k: built.append(a) or pytest.fail("testbed built"))
    with pytest.raises(EnvironmentProblem, match="--allow-global"):
        run_lab(["baseline", "syscall-audit"], LabSettings(pairs=1, prefix="advnoglob"))
    assert built == []  # refused before building anything
    done = subprocess.run([sys.executable, "-m", "advisor.cli", "lab", "syscall-audit"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "--allow-global" in done.stderr and len(done.stderr.splitlines()) == 1


@needs_global
def test_rules_go_to_the_kernel_and_back():
    key = f"advisor-test-{os.getpid()}"
    rules = A.compliance_rules(key)
    before = A.rules()
    try:
        for rule in rules:
            A.add_rule(rule)
        listed = [r for r in A.rules() if r.key == key]
        assert listed == rules  # fields, arch, syscalls and key as the kernel stored them
        with pytest.raises(EnvironmentProblem, match="exists"):
            A.add_rule(rules[0])
    finally:
        for rule in rules:
            if rule in A.rules():
                A.delete_rule(rule)
    assert A.rules() == before


@needs_global
def test_syscall_audit_injects_and_restores(request):
    tag = hashlib.sha1(request.node.name.encode()).hexdigest()[:6]
    enabled_before = A.status()["enabled"]
    scenario = P.make("syscall-audit")
    with Testbed(prefix=f"adva{tag}") as tb:
        reason = scenario.unavailable(tb)
        if reason:
            pytest.skip(reason)
        first_pids = tb.server_pids()
        try:
            scenario.inject(tb)
            state = scenario.state(tb)
            assert state["enabled"] == 1
            ours = [r for r in A.rules() if r.key == A.KEY]
            assert ours == A.compliance_rules()  # and no never,task: new tasks get a context
            injected_pids = tb.server_pids()
            assert not set(injected_pids) & set(first_pids)  # restarted under audit
        finally:
            scenario.remove(tb)
        assert A.status()["enabled"] == enabled_before
        assert [r for r in A.rules() if r.key == A.KEY] == [A.never_task()]
        assert not set(tb.server_pids()) & set(injected_pids)  # restarted again, under never,task
        # a second injection takes the never,task rule away again, and the last removal puts it back
        scenario.inject(tb)
        assert A.never_task() not in A.rules()
        scenario.remove(tb)
        assert A.rules().count(A.never_task()) == 1
