"""Read-only system probes, checked against this machine's real files, tools and processes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from advisor.collect import procfs
from advisor.collect.probes import audit, build, kernel, netdev, netfilter, packet, processes
from advisor.collect.probes.common import ProbeError, run
from advisor.collect.probes.interrupts import parse_interrupts
from advisor.collect.system import collect_system_state, is_error

NAMESPACE_SECTIONS = ("netfilter", "net", "packet_sockets")


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=10).stdout


def wait_for(condition, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return False


def stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.kill()
    child.wait(timeout=5)


# --- kernel, cpu, mitigations -------------------------------------------------------------

def test_kernel_release_and_cmdline_are_this_kernel():
    info = kernel.kernel_info()
    assert info["release"] == os.uname().release
    assert info["cmdline"] == open("/proc/cmdline").read().strip()
    assert kernel.cpu_info()["count"] == os.cpu_count()


def test_mitigations_are_the_sysfs_texts_and_the_view_classifies_them():
    raw = kernel.mitigations_raw()
    directory = "/sys/devices/system/cpu/vulnerabilities"
    assert set(raw) == set(os.listdir(directory))
    for name, text in raw.items():
        assert text == open(os.path.join(directory, name)).read().strip()
    view = kernel.mitigations_view(raw, "quiet mitigations=off pti=off")
    for name, text in raw.items():
        state = view["by_name"][name]["state"]
        assert (state == "mitigated") == text.startswith("Mitigation:")
        assert (state == "not_affected") == (text == "Not affected")
        assert (name in view["active"]) == (state in ("mitigated", "partial"))
    assert view["already_off"] == ["mitigations=off", "pti=off"]
    if "spectre_v2" in raw:
        assert {"nospectre_v2", "mitigations=off"} <= set(view["by_name"]["spectre_v2"]["off_parameters"])
    if "meltdown" in raw:
        assert "pti=off" in view["by_name"]["meltdown"]["off_parameters"]
    assert kernel.classify("Vulnerable: Safe RET, no microcode") == ("partial", "Safe RET, no microcode")


# --- processes, seccomp, irqbalance -------------------------------------------------------

def test_process_pinned_with_taskset_reports_its_cpu_list():
    child = subprocess.Popen(["taskset", "-c", "0", "sleep", "30"], start_new_session=True)
    try:
        assert wait_for(lambda: processes.read_comm(child.pid) == "sleep")
        info = processes.process_info(child.pid)
        assert info["cpus_allowed_list"] == "0"
        assert info["threads"] == 1 and info["seccomp_mode"] == 0
        assert info["exe"] == os.path.realpath(shutil.which("sleep"))
        found = processes.processes_state(comm="sleep")
        assert child.pid in [p["pid"] for p in found]
    finally:
        stop(child)
    assert processes.process_info(child.pid) == {"error": f"no process {child.pid}"}


SECCOMP_CHILD = """
import ctypes, os, sys
class Filter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]
class Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]
allow = (Filter * 1)(Filter(0x06, 0, 0, 0x7FFF0000))   # BPF_RET|BPF_K, SECCOMP_RET_ALLOW
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0                  # PR_SET_NO_NEW_PRIVS
for _ in range(2):                                       # two filters: Seccomp_filters 2
    assert libc.prctl(22, 2, ctypes.byref(Program(1, allow)), 0, 0) == 0  # PR_SET_SECCOMP, FILTER
os.write(1, b"ready\\n")
sys.stdin.read()
"""


def test_seccomp_filter_mode_and_count_of_a_filtered_process():
    child = subprocess.Popen([sys.executable, "-c", SECCOMP_CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert child.stdout.readline() == b"ready\n"
        info = processes.process_info(child.pid)
        assert info["seccomp_mode"] == 2
        assert info["seccomp_filters"] == 2
    finally:
        child.stdin.close()
        stop(child)


def test_irqbalance_detected_by_its_comm(tmp_path):
    """irqbalance itself is not installed: a copy of sleep named irqbalance stands in for it."""
    fake = tmp_path / "irqbalance"
    shutil.copy(shutil.which("sleep"), fake)
    child = subprocess.Popen([str(fake), "30"], start_new_session=True)
    try:
        assert wait_for(lambda: child.pid in processes.irqbalance_state()["pids"])
        assert processes.irqbalance_state()["running"] is True
    finally:
        stop(child)
    assert child.pid not in processes.irqbalance_state()["pids"]


# --- AF_PACKET sockets ---------------------------------------------------------------------

def test_packet_socket_of_this_process_is_found_with_its_pid():
    ethertype = 0x88B5  # IEEE local experimental: no traffic is copied to the socket
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype)) as sock:
        sock.bind(("lo", ethertype))
        inode = os.fstat(sock.fileno()).st_ino
        rows = [r for r in packet.packet_sockets() if r["inode"] == inode]
        assert len(rows) == 1
        row = rows[0]
        assert row["pid"] == os.getpid() and row["comm"] == processes.read_comm(os.getpid())
        assert (row["iface"], row["protocol"], row["type"]) == ("lo", "0x88b5", "raw")
    assert inode not in [r["inode"] for r in packet.packet_sockets()]


# --- interrupts, devices, sysctls ----------------------------------------------------------

def test_interrupt_counts_go_to_the_cpu_their_column_names(tmp_path):
    """/proc/interrupts shows online CPUs only: with CPU1 offline the second column is CPU2's.
    The state probe and the collector read the file with the same row reader."""
    text = ("           CPU0       CPU2\n"
            " 24:          5          7  IO-APIC   5-edge      acpi\n"
            " 25:          1          2  PCI-MSI 49152-edge      virtio0-input.0, virtio0-output.0\n"
            "LOC:         10         20   Local timer interrupts\n")
    table = parse_interrupts(text)
    assert table[24] == {"name": "acpi", "per_cpu": [5, 0, 7]}
    assert table[25]["name"] == "virtio0-input.0, virtio0-output.0" and set(table) == {24, 25}
    path = tmp_path / "interrupts"
    path.write_text(text)
    assert procfs.read_interrupts(str(path)) == {"24": ("acpi", 12), "25": ("virtio0-output.0", 3),
                                            "LOC": ("LOC", 30)}


def test_interrupt_table_and_device_irqs_match_proc():
    table = parse_interrupts(open("/proc/interrupts").read())
    assert table and set(table) <= {int(n) for n in os.listdir("/proc/irq") if n.isdigit()}
    assert all(len(row["per_cpu"]) == os.cpu_count() for row in table.values())
    devices = netdev.devices_state()
    assert set(devices) == set(os.listdir("/sys/class/net"))
    assert devices["lo"]["irqs"] == [] and devices["lo"]["qdisc"] == "noqueue"
    hardware = [d for d in devices if os.path.exists(f"/sys/class/net/{d}/device/driver")]
    for device in hardware:
        assert devices[device]["irqs"], f"{device} has a bus device but no IRQ found"
        for irq in devices[device]["irqs"]:
            assert irq["cpus"] == open(f"/proc/irq/{irq['irq']}/smp_affinity_list").read().strip()


def test_sysctls_are_the_proc_values():
    values = netdev.net_sysctls()
    assert values["default_qdisc"] == open("/proc/sys/net/core/default_qdisc").read().strip()
    assert values["busy_poll"] == int(open("/proc/sys/net/core/busy_poll").read())
    assert values["tcp_congestion_control"] in values["tcp_available_congestion_control"]


# --- network namespace ---------------------------------------------------------------------

@pytest.fixture
def namespace():
    """A namespace with a veth pair, one iptables rule, one nft rule, reno and GRO on."""
    name = f"advprobe{os.getpid()}"
    sh("ip", "netns", "add", name)
    try:
        inside = ("ip", "netns", "exec", name)
        sh(*inside, "ip", "link", "add", "va", "type", "veth", "peer", "name", "vb")
        sh(*inside, "tc", "qdisc", "add", "dev", "va", "root", "pfifo")
        sh(*inside, "ethtool", "-K", "va", "gro", "on")
        sh(*inside, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "7", "-j", "DROP")
        sh(*inside, "nft", "add", "table", "inet", "advprobe")
        sh(*inside, "nft", "add", "chain", "inet", "advprobe", "input",
           "{ type filter hook input priority 0; }")
        sh(*inside, "nft", "add", "rule", "inet", "advprobe", "input", "tcp", "dport", "9", "drop")
        sh(*inside, "sysctl", "-qw", "net.ipv4.tcp_congestion_control=reno")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], timeout=10)


def test_namespace_probes_read_inside_the_namespace(namespace):
    state = collect_system_state(netns=namespace)
    nft_backend = "nf_tables" in sh("iptables", "-V")
    nf = state["netfilter"]
    assert nf["iptables_rules"] == 1 and nf["ip6tables_rules"] == 0
    assert nf["nft_rules"] == 1 + (1 if nft_backend else 0)  # iptables-nft rules are nft rules
    net = state["net"]
    assert set(net["devices"]) == {"lo", "va", "vb"}
    va = net["devices"]["va"]
    assert va["qdisc"] == "pfifo" and va["gro"] is True
    assert va["coalesce_supported"] is False and va["adaptive_rx"] is None  # veth: not an error
    assert net["tcp_congestion_control"] == "reno"
    assert net["default_qdisc"] == open("/proc/sys/net/core/default_qdisc").read().strip()
    assert net["sysctl_scope"]["default_qdisc"].startswith("global")
    assert state["netns"] == namespace


def test_missing_namespace_gives_error_sections():
    state = collect_system_state(netns="advprobe-does-not-exist")
    for section in NAMESPACE_SECTIONS:
        assert is_error(state[section]) and "not found" in state[section]["error"]
    assert state["kernel"]["release"] == os.uname().release


# --- netfilter, audit, tools that are missing or fail --------------------------------------

def test_missing_or_failing_tools_give_error_entries():
    assert netfilter.iptables_rules("/nonexistent/iptables-save") == {
        "error": "iptables-save missing (Debian package iptables)"}
    assert netfilter.nft_rules("/nonexistent/nft") == {"error": "nft missing (Debian package nftables)"}
    assert netdev.gro("lo", tool="/nonexistent/ethtool") == {"error": "ethtool missing (Debian package ethtool)"}
    assert is_error(netdev.gro("nosuchdev0"))  # the real ethtool fails: reported, not raised
    assert is_error(netdev.root_qdiscs("/nonexistent/tc"))


def test_command_timeout_is_an_error_and_kills_the_command():
    started = time.monotonic()
    with pytest.raises(ProbeError, match="timed out"):
        run(["sleep", "30"], timeout=0.2)
    assert time.monotonic() - started < 2
    children = [p for p in processes.pids_by_comm("sleep")
                if int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1]) == os.getpid()]
    assert children == []


def test_conntrack_and_modules_on_this_host():
    path = "/proc/sys/net/netfilter/nf_conntrack_count"
    value = netfilter.conntrack_entries()
    if os.path.exists(path):
        assert isinstance(value, int) and value >= 0
    else:
        assert is_error(value)
    modules = netfilter.netfilter_modules()
    assert all(netfilter.is_netfilter_module(m) for m in modules["modules"])
    if os.path.isdir("/sys/module/nf_conntrack"):
        assert "nf_conntrack" in modules["modules"]


def test_audit_state_from_the_kernel_when_auditctl_is_missing():
    state = audit.audit_state(auditctl="/nonexistent/auditctl")
    assert state["source"] == "netlink" and "Debian package auditd" in state["note"]
    assert state["enabled"] in (0, 1, 2) and state["rules"] >= 0


def test_auditctl_output_parsers():
    """auditctl is not installed: this is the text auditctl 3.0.9 printed on this machine."""
    status = "enabled 1\nfailure 1\npid 0\nrate_limit 0\nbacklog_limit 64\n"
    assert audit.parse_auditctl_status(status) == 1
    assert audit.parse_auditctl_rules("No rules\n") == 0
    assert audit.parse_auditctl_rules("-a always,exit -F arch=b64 -S openat\n-w /etc/passwd -p wa\n") == 2


# --- build flags ---------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_build_flags_from_dwarf_producer(tmp_path):
    source = tmp_path / "t.c"
    source.write_text("int main(void) { return 0; }\n")
    native, generic, stripped = tmp_path / "native", tmp_path / "generic", tmp_path / "stripped"
    sh("gcc", "-O3", "-march=native", "-g", str(source), "-o", str(native))
    sh("gcc", "-O2", "-g", str(source), "-o", str(generic))
    sh("gcc", "-O2", str(source), "-o", str(stripped))
    flags = build.build_flags(str(native))
    assert flags["optimization"] == "-O3" and flags["march_native"] is True
    flags = build.build_flags(str(generic))
    assert flags["optimization"] == "-O2" and flags["march_native"] is False
    assert flags["producer"].startswith("GNU C")
    assert build.build_flags(str(stripped)) == {"error": f"no DWARF in {stripped}"}
    assert build.build_flags(str(source)) == {"error": f"{source} is not an ELF file"}
    assert build.build_flags("/nonexistent/binary") == {"error": "/nonexistent/binary absent"}


# --- whole collection ----------------------------------------------------------------------

def test_collection_has_every_section_and_is_fast():
    started = time.monotonic()
    state = collect_system_state(pids=[os.getpid()])
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"collection took {elapsed:.2f} s"
    for section in ("kernel", "cpu", "mitigations", "netfilter", "audit", "processes",
                    "irqbalance", "net", "packet_sockets", "build"):
        assert section in state and not is_error(state[section]), section
    assert state["processes"][0]["exe"] == os.path.realpath(sys.executable)
    assert state["workers"]["cpus"] == os.cpu_count()
    assert os.path.realpath(sys.executable) in state["build"]


def test_processes_are_found_by_name_as_comm_is_taken_everywhere(tmp_path):
    """--comm of `advise run` means what it means to the analysis: command-name globs, a comma
    list, each cut to the 15 bytes the kernel keeps."""
    long_name = tmp_path / "advisor-probe-test-sleeper"
    shutil.copy("/bin/sleep", long_name)
    sleeper = subprocess.Popen([str(long_name), "30"])
    other = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 5
        while ((processes.read_comm(sleeper.pid), processes.read_comm(other.pid)) != ("advisor-probe-t", "sleep")
               and time.monotonic() < deadline):
            time.sleep(0.01)  # until exec has set both names (before it, each is its parent's: python)
        assert sleeper.pid in processes.pids_by_comm(long_name.name)  # longer than 15: cut
        assert sleeper.pid not in processes.pids_by_comm("advisor-probe")  # not a prefix match
        both = processes.pids_by_comm("advisor-probe-*,sleep")
        assert sleeper.pid in both and other.pid in both
        assert other.pid not in processes.pids_by_comm("advisor-probe-*")
    finally:
        for proc in (sleeper, other):
            proc.kill()
            proc.wait()
