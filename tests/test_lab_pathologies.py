"""Each pathology changes the state it claims, inside our namespaces only, and remove() restores it.

Real namespaces, nginx, iptables, tc, ethtool; needs root. One testbed per test, prefix per test.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys

import pytest

from advisor.errors import EnvironmentProblem
from advisor.lab import pathologies as P
from advisor.lab import seccomp_filter
from advisor.lab.packet_tap import ETH_P_ALL
from advisor.lab.testbed import JSON_BODY, Testbed

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def serves(tb: Testbed) -> bool:
    return tb.client_run(["curl", "-sf", "-m", "5", tb.url], check=False).stdout == JSON_BODY


def host_state() -> dict:
    """What the host (initial namespace) looks like: none of it may change."""
    def cat(path):
        with open(path) as f:
            return f.read()
    return {"cc": cat("/proc/sys/net/ipv4/tcp_congestion_control"),
            "packet": len(cat("/proc/net/packet").splitlines()),
            "ipt": subprocess.run(["iptables-save"], capture_output=True, text=True, timeout=10).stdout.count("\n-A"),
            "qdisc": subprocess.run(["tc", "qdisc", "show"], capture_output=True, text=True, timeout=10).stdout}


@pytest.fixture
def tb(request):
    host_before = host_state()
    tag = hashlib.sha1(request.node.name.encode()).hexdigest()[:6]
    with Testbed(prefix=f"advp{tag}") as bed:
        yield bed
    assert host_state() == host_before


def test_baseline_changes_nothing(tb):
    p = P.make("baseline")
    assert p.inject(tb) == {} and p.state(tb) == {}
    p.remove(tb)
    assert p.expected_rule is None and serves(tb)


def test_netfilter_adds_rules_and_conntrack_then_restores(tb):
    p = P.Netfilter(rules_per_chain=300)
    assert p.expected_rule == "netfilter" and p.unavailable(tb) is None
    before = p.state(tb)
    assert before["filter_rules"] == 0 and before["nft_tables"] == []
    p.inject(tb)
    during = p.state(tb)
    assert during["filter_rules"] == 602
    assert "table ip filter" in during["nft_tables"]
    assert during["conntrack_entries"] > 0  # conntrack is tracking inside the namespace
    assert serves(tb)  # ESTABLISHED,RELATED accepts our traffic
    p.remove(tb)
    after = p.state(tb)
    # conntrack entries of finished connections linger until they time out; rules and tables do not
    assert {k: v for k, v in after.items() if k != "conntrack_entries"} == \
        {k: v for k, v in before.items() if k != "conntrack_entries"}
    assert serves(tb)


def test_netfilter_legacy_flavour_restores_an_equivalent_empty_table(tb):
    p = P.Netfilter(rules_per_chain=20, flavour="legacy")
    before = p.state(tb)
    p.inject(tb)
    assert p.state(tb)["filter_rules"] == 42
    p.remove(tb)
    assert p.state(tb)["filter_table_sha1"] == before["filter_table_sha1"]


def test_packet_tap_holds_a_filtered_eth_p_all_socket_on_the_server_veth(tb):
    p = P.PacketTap()
    assert p.state(tb) == {"packet_sockets": []}
    changed = p.inject(tb)
    socks = p.state(tb)["packet_sockets"]
    ifindex = int(tb.server_run(["cat", f"/sys/class/net/{tb.server_dev}/ifindex"]).stdout)
    assert len(socks) == 1 and socks[0]["protocol"] == ETH_P_ALL and socks[0]["ifindex"] == ifindex
    ss = tb.server_run(["ss", "-0", "-b", "-p", "-n"]).stdout
    assert "bpf filter (11)" in ss and "packet_tap" in ss and f"pid={changed['helper_pid']}" in ss
    assert serves(tb)
    pid = changed["helper_pid"]
    p.remove(tb)
    assert p.state(tb) == {"packet_sockets": []}
    assert not os.path.exists(f"/proc/{pid}")


def test_packet_tap_filter_passes_dhcp_replies_only(tb):
    """The dhclient filter: a UDP datagram to port 68 is delivered to the tap, our TCP traffic is not."""
    code = ("import sys, socket\nfrom advisor.lab.packet_tap import open_tap\n"
            "s = open_tap(sys.argv[1]); s.settimeout(4); print('ready', flush=True)\n"
            "data = s.recv(2048); print(len(data), data[23], int.from_bytes(data[36:38], 'big'), flush=True)\n")
    proc = subprocess.Popen(["ip", "netns", "exec", tb.server_ns, sys.executable, "-c", code, tb.server_dev],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": REPO})
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert serves(tb)  # TCP both ways through the tapped device: filtered out
        send = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                f"s.sendto(b'dhcp-offer', ('{tb.server_addr}', 68))")
        tb.client_run([sys.executable, "-c", send])
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    length, proto, dport = (int(x) for x in out.split())
    assert (proto, dport) == (socket.IPPROTO_UDP, 68) and length == 14 + 20 + 8 + len(b"dhcp-offer")


def test_seccomp_restarts_nginx_under_one_filter_and_back(tb):
    p = P.Seccomp()
    assert all(s["seccomp_mode"] == 0 for s in p.state(tb)["processes"])
    p.inject(tb)
    procs = p.state(tb)["processes"]
    assert len(procs) == 1 + tb.workers
    assert all((s["seccomp_mode"], s["seccomp_filters"]) == (2, 1) for s in procs)
    for _ in range(3):
        assert serves(tb)
    assert tb.load(1, 8, 1)["errors"]["non_2xx_3xx"] == 0
    p.remove(tb)
    procs_after = p.state(tb)["processes"]
    assert all((s["seccomp_mode"], s["seccomp_filters"]) == (0, 0) for s in procs_after)
    assert {s["pid"] for s in procs}.isdisjoint(s["pid"] for s in procs_after)
    assert tb.server_preexec is None and serves(tb)


def test_seccomp_filter_denies_what_docker_denies():
    """The filter on a child: allowed syscalls work, unshare/mount/AF_VSOCK get EPERM, clone3 ENOSYS."""
    code = ("import ctypes, os, socket\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "def err(nr, *a):\n    r = libc.syscall(nr, *a); return 0 if r >= 0 else ctypes.get_errno()\n"
            "print(err(272, 0x40000000), err(165, 0, 0, 0, 0, 0), err(41, 40, 1, 0), err(435, 0, 0),"
            " err(135, 4), err(39), len(os.listdir('/')) > 0)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=10,
                          preexec_fn=seccomp_filter.install)
    assert done.stdout.split() == ["1", "1", "1", "38", "1", "0", "True"], done.stderr
    program = seccomp_filter.docker_like_program()
    assert 250 <= seccomp_filter.allowed_count() <= 320 and len(program) <= 4096


def test_qdisc_replaces_noqueue_and_back(tb):
    p = P.Qdisc()
    assert p.state(tb) == {"root_qdisc": "noqueue"}
    p.inject(tb)
    assert p.state(tb) == {"root_qdisc": "htb"}
    assert serves(tb)  # one class at 100gbit: nothing is shaped away
    p.remove(tb)
    assert p.state(tb) == {"root_qdisc": "noqueue"}


def test_gro_switches_on_and_back(tb):
    p = P.Gro()
    before = p.state(tb)
    assert all(o == {"gro": False, "tso": True} for o in before["offloads"].values())
    p.inject(tb)
    assert all(o == {"gro": True, "tso": False} for o in p.state(tb)["offloads"].values())
    assert serves(tb)
    p.remove(tb)
    assert p.state(tb) == before


def test_congestion_control_switches_only_to_an_allowed_algorithm_and_back(tb):
    p = P.CongestionControl()
    reason = p.unavailable(tb)
    if reason:
        pytest.skip(reason)
    before = p.state(tb)
    assert set(before["congestion_control"].values()) == {"reno"}  # the testbed pins reno
    changed = p.inject(tb)
    assert changed["congestion_control"] in P.allowed_congestion_controls()
    assert set(p.state(tb)["congestion_control"].values()) == {changed["congestion_control"]}
    assert serves(tb)
    p.remove(tb)
    assert p.state(tb) == before


def test_congestion_control_reports_why_when_nothing_heavier_is_allowed(tb):
    p = P.CongestionControl(candidates=("no-such-algorithm",))
    reason = p.unavailable(tb)
    assert "tcp_allowed_congestion_control" in reason
    with pytest.raises(EnvironmentProblem):
        p.inject(tb)


def test_unknown_scenario_is_refused():
    with pytest.raises(EnvironmentProblem, match="unknown scenario"):
        P.make("no-such-pathology")
