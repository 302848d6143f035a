"""The pathologies of the case study, injected into (and removed from) our namespaces only.

Each pathology records in ``inject`` what it changed and restores that prior state in
``remove``. ``state(testbed)`` reads the observable state it claims to change, so tests (and
system.json) can check both directions. ``unavailable(testbed)`` names why a pathology
cannot run on this machine (then it is skipped, never faked).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

from advisor.errors import EnvironmentProblem
from advisor.lab import audit_control, seccomp_filter
from advisor.lab.testbed import Testbed, require_tools, run

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Pathology:
    """Base: nothing injected (the baseline)."""

    name = "baseline"
    expected_rule: str | None = None
    description = "nothing injected: the clean testbed"
    global_setting: str | None = None  # what it changes outside our namespaces (needs --allow-global)

    def __init__(self) -> None:
        self.changed: dict = {}

    def unavailable(self, tb: Testbed) -> str | None:
        return None

    def inject(self, tb: Testbed) -> dict:
        self.changed = {}
        return self.changed

    def remove(self, tb: Testbed) -> None:
        self.changed = {}

    def state(self, tb: Testbed) -> dict:
        return {}

    def describe(self) -> dict:
        return {"name": self.name, "expected_rule": self.expected_rule, "description": self.description,
                "changed": self.changed}


# ---- netfilter -------------------------------------------------------------------------

NETFILTER_COMMANDS = {
    "nft": ("iptables-nft", "iptables-nft-save", "iptables-nft-restore"),
    "legacy": ("iptables-legacy", "iptables-legacy-save", "iptables-legacy-restore"),
}


def firewall_ruleset(rules_per_chain: int) -> str:
    """iptables-restore input: a long blocklist on INPUT and OUTPUT, then conntrack ACCEPT.

    The blocklist entries never match our traffic (addresses from 198.18.0.0/15, the
    benchmarking range), so every packet walks all of them before the stateful rule.
    """
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    for i in range(rules_per_chain):
        addr = f"198.18.{i // 250}.{i % 250 + 1}"
        lines.append(f"-A INPUT -s {addr}/32 -p tcp -m tcp --dport {10000 + i} -j DROP")
    lines.append("-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT")
    for i in range(rules_per_chain):
        addr = f"198.19.{i // 250}.{i % 250 + 1}"
        lines.append(f"-A OUTPUT -d {addr}/32 -p tcp -m tcp --sport {10000 + i} -j DROP")
    lines.append("-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


EMPTY_FILTER_TABLE = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"


def count_rules(save_text: str) -> int:
    return sum(1 for line in save_text.splitlines() if line.startswith("-A "))


def normalized_filter_table(save_text: str) -> tuple:
    """Chains with policies and rules of the filter table, comments and counters dropped.

    A table that does not exist reads the same as an empty one with ACCEPT policies, since
    both let every packet through untouched (legacy tables cannot be unloaded from a netns).
    """
    chains, rules, in_filter = {}, [], False
    for line in save_text.splitlines():
        if line.startswith("*"):
            in_filter = line == "*filter"
        elif not in_filter or line.startswith("#"):
            continue
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            chains[name] = policy
        elif line.startswith("-A "):
            rules.append(line)
    builtin = {"INPUT": "ACCEPT", "FORWARD": "ACCEPT", "OUTPUT": "ACCEPT"}
    if not chains:
        chains = dict(builtin)
    return tuple(sorted(chains.items())), tuple(rules)


def table_digest(table: tuple) -> str:
    """Short fingerprint of a normalized filter table: equal tables, equal digests."""
    return hashlib.sha1(json.dumps(table).encode()).hexdigest()


class Netfilter(Pathology):
    """Hundreds of iptables rules plus conntrack in the server namespace.

    Default flavour: iptables-nft (Debian 12's default; its rules run in nft_do_chain and can
    be removed completely, hooks included). ``flavour='legacy'`` uses x_tables (ipt_do_table).
    """

    name = "netfilter"
    expected_rule = "netfilter"

    def __init__(self, rules_per_chain: int = 300, flavour: str = "nft"):
        super().__init__()
        if flavour not in NETFILTER_COMMANDS:
            raise ValueError(f"netfilter flavour {flavour!r}: use one of {sorted(NETFILTER_COMMANDS)}")
        self.rules_per_chain, self.flavour = rules_per_chain, flavour
        self.iptables, self.save_cmd, self.restore_cmd = NETFILTER_COMMANDS[flavour]
        self.description = (f"{rules_per_chain} non-matching rules on INPUT and on OUTPUT, then "
                            f"-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT ({self.iptables})")

    def unavailable(self, tb: Testbed) -> str | None:
        try:
            require_tools(self.iptables, self.save_cmd, self.restore_cmd)
        except EnvironmentProblem as exc:
            return str(exc)
        return None

    def _save(self, tb: Testbed) -> str:
        return tb.server_run([self.save_cmd, "-t", "filter"], check=False).stdout

    def _nft_tables(self, tb: Testbed) -> list[str]:
        if self.flavour != "nft":
            return []
        done = tb.server_run(["nft", "list", "tables"], check=False)
        return [line.strip() for line in done.stdout.splitlines() if line.startswith("table")]

    def inject(self, tb: Testbed) -> dict:
        prior_save, prior_tables = self._save(tb), self._nft_tables(tb)
        tb.server_run([self.restore_cmd], input=firewall_ruleset(self.rules_per_chain), timeout=60)
        # one request through the rules: conntrack must now track connections in this namespace
        tb.client_run(["curl", "-s", "-o", "/dev/null", "-m", "5", tb.url], check=False)
        state = self.state(tb)
        if state["conntrack_entries"] in (None, 0):
            raise EnvironmentProblem(f"{self.name}: nf_conntrack does not track connections in {tb.server_ns}")
        self.changed = {"flavour": self.iptables, "prior_save": prior_save, "prior_nft_tables": prior_tables,
                        "rules_added": count_rules(firewall_ruleset(self.rules_per_chain)),
                        "conntrack_entries_after_one_request": state["conntrack_entries"]}
        return self.changed

    def remove(self, tb: Testbed) -> None:
        if not self.changed:
            return
        prior_save = self.changed["prior_save"]
        # restoring the prior rules drops our conntrack rule, and with it conntrack's hooks
        tb.server_run([self.restore_cmd], input=prior_save if count_rules(prior_save) else EMPTY_FILTER_TABLE)
        for table in self._nft_tables(tb):  # nft: tables that did not exist go away, hooks included
            if table not in self.changed["prior_nft_tables"]:
                tb.server_run(["nft", "delete", *table.split()])
        self.changed = {}

    def state(self, tb: Testbed) -> dict:
        save = self._save(tb)
        count = tb.server_run(["sysctl", "-n", "net.netfilter.nf_conntrack_count"], check=False).stdout.strip()
        return {"flavour": self.iptables, "filter_rules": count_rules(save),
                "filter_table_sha1": table_digest(normalized_filter_table(save)), "nft_tables": self._nft_tables(tb),
                "conntrack_entries": int(count) if count.isdigit() else None}


# ---- packet tap ------------------------------------------------------------------------

def packet_sockets(pid: int) -> list[dict]:
    """Rows of /proc/<pid>/net/packet: the packet sockets of that process's network namespace."""
    rows = []
    try:
        with open(f"/proc/{pid}/net/packet") as f:
            header = f.readline().split()
            for line in f:
                values = dict(zip(header, line.split()))
                rows.append({"inode": int(values.get("Inode", 0)), "protocol": int(values.get("Proto", "0"), 16),
                             "ifindex": int(values.get("Iface", 0)), "type": int(values.get("Type", 0))})
    except (FileNotFoundError, ProcessLookupError):
        pass
    return rows


class PacketTap(Pathology):
    """A DHCP-client-like ETH_P_ALL socket with a BPF filter on the server's veth."""

    name = "packet-tap"
    expected_rule = "packet-tap"
    description = ("helper process holding an AF_PACKET SOCK_RAW ETH_P_ALL socket bound to the server veth, "
                   "with dhclient's classic BPF filter (IPv4 UDP to port 68) attached via SO_ATTACH_FILTER")

    def __init__(self) -> None:
        super().__init__()
        self.proc = None

    def inject(self, tb: Testbed) -> dict:
        env_path = os.environ.get("PYTHONPATH", "")
        os.environ["PYTHONPATH"] = PACKAGE_ROOT + (os.pathsep + env_path if env_path else "")
        try:
            self.proc = tb.spawn_in_server([sys.executable, "-m", "advisor.lab.packet_tap", tb.server_dev])
        finally:
            if env_path:
                os.environ["PYTHONPATH"] = env_path
            else:
                del os.environ["PYTHONPATH"]
        self.changed = {"helper_pid": self.proc.pid, "iface": tb.server_dev}
        return self.changed

    def remove(self, tb: Testbed) -> None:
        if self.proc is not None:
            tb.stop_helper(self.proc)
            self.proc = None
        self.changed = {}

    def state(self, tb: Testbed) -> dict:
        pids = tb.server_pids()
        return {"packet_sockets": packet_sockets(pids[0]) if pids else None}


# ---- seccomp ---------------------------------------------------------------------------

class Seccomp(Pathology):
    """nginx restarted under a Docker-default-shaped seccomp allow-list (ERRNO(EPERM) default)."""

    name = "seccomp"
    expected_rule = "seccomp"
    description = (f"nginx started under a classic-BPF seccomp filter: arch check, then "
                   f"{seccomp_filter.allowed_count()} allowed syscalls compared linearly (Docker's default "
                   f"profile order), default ERRNO(EPERM); installed with prctl(NO_NEW_PRIVS) + seccomp()")

    def inject(self, tb: Testbed) -> dict:
        prior_hook = tb.server_preexec
        tb.start_server(preexec=seccomp_filter.install)
        tb.client_run(["curl", "-sf", "-o", "/dev/null", "-m", "5", tb.url])  # it still serves
        state = self.state(tb)
        if any(p["seccomp_mode"] != 2 or p["seccomp_filters"] != 1 for p in state["processes"]):
            raise EnvironmentProblem(f"{self.name}: nginx does not run under exactly one filter: {state}")
        self.changed = {"prior_hook": repr(prior_hook), "program_instructions": len(
            seccomp_filter.docker_like_program()), "allowed_syscalls": seccomp_filter.allowed_count()}
        self._prior_hook = prior_hook
        return self.changed

    def remove(self, tb: Testbed) -> None:
        if self.changed:
            tb.start_server(preexec=self._prior_hook)
        self.changed = {}

    def state(self, tb: Testbed) -> dict:
        return {"processes": [{"pid": pid, **seccomp_filter.status_of(pid)} for pid in tb.server_pids()]}


# ---- qdisc -----------------------------------------------------------------------------

def root_qdisc(tb: Testbed, ns: str, dev: str) -> str:
    done = run(["tc", "-n", ns, "-j", "qdisc", "show", "dev", dev])
    for q in json.loads(done.stdout or "[]"):
        if q.get("root"):
            return q.get("kind", "?")
    return "?"


class Qdisc(Pathology):
    """A root qdisc with a lock on the server veth instead of the default noqueue."""

    name = "qdisc"
    expected_rule = "qdisc-lock"

    def __init__(self, kind: str = "htb"):
        super().__init__()
        if kind not in ("htb", "pfifo_fast"):
            raise ValueError(f"qdisc kind {kind!r}: use htb or pfifo_fast")
        self.kind = kind
        self.description = (f"root {kind} on the server veth (default for veth: noqueue)"
                            + (", one class at 100gbit so nothing is shaped" if kind == "htb" else ""))

    def unavailable(self, tb: Testbed) -> str | None:
        try:
            require_tools("tc")
        except EnvironmentProblem as exc:
            return str(exc)
        return None

    def inject(self, tb: Testbed) -> dict:
        prior = root_qdisc(tb, tb.server_ns, tb.server_dev)
        if prior != "noqueue":
            raise EnvironmentProblem(f"{self.name}: expected noqueue on {tb.server_dev}, found {prior}")
        dev = ["dev", tb.server_dev]
        if self.kind == "htb":
            run(["tc", "-n", tb.server_ns, "qdisc", "replace", *dev, "root", "handle", "1:", "htb", "default", "1"])
            run(["tc", "-n", tb.server_ns, "class", "add", *dev, "parent", "1:", "classid", "1:1", "htb",
                 "rate", "100gbit", "ceil", "100gbit"])
        else:
            run(["tc", "-n", tb.server_ns, "qdisc", "replace", *dev, "root", "pfifo_fast"])
        self.changed = {"device": tb.server_dev, "prior_root_qdisc": prior, "root_qdisc": self.kind}
        return self.changed

    def remove(self, tb: Testbed) -> None:
        if self.changed:
            # deleting the root qdisc brings back the device default (noqueue for veth)
            run(["tc", "-n", tb.server_ns, "qdisc", "del", "dev", tb.server_dev, "root"])
            now = root_qdisc(tb, tb.server_ns, tb.server_dev)
            if now != self.changed["prior_root_qdisc"]:
                run(["tc", "-n", tb.server_ns, "qdisc", "replace", "dev", tb.server_dev, "root",
                     self.changed["prior_root_qdisc"]])
        self.changed = {}

    def state(self, tb: Testbed) -> dict:
        return {"root_qdisc": root_qdisc(tb, tb.server_ns, tb.server_dev)}


# ---- GRO -------------------------------------------------------------------------------

def offloads(tb: Testbed, ns: str, dev: str) -> dict[str, bool]:
    """GRO and TSO of a device as ethtool -k reports them."""
    done = run(["ip", "netns", "exec", ns, "ethtool", "-k", dev])
    names = {"generic-receive-offload": "gro", "tcp-segmentation-offload": "tso"}
    found = {}
    for line in done.stdout.splitlines():
        key, _, value = line.strip().partition(":")
        if key in names:
            found[names[key]] = value.split()[0] == "on"
    if set(found) != set(names.values()):
        raise EnvironmentProblem(f"ethtool -k {dev}: no GRO/TSO lines")
    return found


def gro_enabled(tb: Testbed, ns: str, dev: str) -> bool:
    return offloads(tb, ns, dev)["gro"]


class Gro(Pathology):
    """GRO really running on the receive path of both veths (veth's default: GRO off).

    What veth does: with GRO on, veth hands a packet to a NAPI poll on the peer
    (veth_poll -> napi_gro_receive) instead of netif_rx's per-CPU backlog, but only for
    packets that a physical NIC would also see unsegmented: a TCP skb from a sender with
    TSO on is never given to GRO. So the injection turns TSO off on both veths (like a
    NIC link, where the wire carries MTU-sized frames) and GRO on; for our responses of a
    few hundred bytes TSO changes nothing else. Removal restores both flags.
    """

    name = "gro"
    expected_rule = "gro"
    description = ("ethtool -K <veth> tso off gro on for both veths (veth default: tso on, gro off); on veth, "
                   "GRO runs (in NAPI mode) only for skbs the sender did not build with TSO")

    def unavailable(self, tb: Testbed) -> str | None:
        try:
            require_tools("ethtool")
        except EnvironmentProblem as exc:
            return str(exc)
        return None

    def _devices(self, tb: Testbed) -> list[tuple[str, str]]:
        return [(tb.server_ns, tb.server_dev), (tb.client_ns, tb.client_dev)]

    def inject(self, tb: Testbed) -> dict:
        prior = {dev: offloads(tb, ns, dev) for ns, dev in self._devices(tb)}
        for ns, dev in self._devices(tb):
            run(["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gro", "on"])
        self.changed = {"prior": prior, "now": {dev: {"gro": True, "tso": False} for _, dev in self._devices(tb)}}
        return self.changed

    def remove(self, tb: Testbed) -> None:
        for ns, dev in self._devices(tb):
            prior = self.changed.get("prior", {}).get(dev)
            if prior:
                run(["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "on" if prior["tso"] else "off",
                     "gro", "on" if prior["gro"] else "off"])
        self.changed = {}

    def state(self, tb: Testbed) -> dict:
        return {"offloads": {dev: offloads(tb, ns, dev) for ns, dev in self._devices(tb)}}


# ---- congestion control ----------------------------------------------------------------

def allowed_congestion_controls() -> list[str]:
    with open("/proc/sys/net/ipv4/tcp_allowed_congestion_control") as f:
        return f.read().split()


class CongestionControl(Pathology):
    """A heavier congestion control than reno in both namespaces.

    A namespace may only select an algorithm listed in the global
    net.ipv4.tcp_allowed_congestion_control; we never change that global list. The first of
    ``candidates`` that is allowed is used (cubic as in the case study, else bbr).
    """

    name = "congestion-control"
    expected_rule = "congestion-control"
    KEY = "net.ipv4.tcp_congestion_control"

    def __init__(self, candidates: tuple[str, ...] = ("cubic", "bbr")):
        super().__init__()
        self.candidates = candidates
        self.description = f"{'/'.join(candidates)} instead of reno in both namespaces"

    def algorithm(self) -> str | None:
        allowed = allowed_congestion_controls()
        return next((c for c in self.candidates if c in allowed), None)

    def unavailable(self, tb: Testbed) -> str | None:
        if self.algorithm() is None:
            return (f"none of {', '.join(self.candidates)} is in net.ipv4.tcp_allowed_congestion_control "
                    f"({' '.join(allowed_congestion_controls())}); a namespace can only select allowed ones")
        return None

    def _namespaces(self, tb: Testbed) -> list[str]:
        return [tb.server_ns, tb.client_ns]

    def inject(self, tb: Testbed) -> dict:
        algo = self.algorithm()
        if algo is None:
            raise EnvironmentProblem(f"{self.name}: {self.unavailable(tb)}")
        prior = self.state(tb)["congestion_control"]
        for ns in self._namespaces(tb):
            run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"{self.KEY}={algo}"])
        self.changed = {"prior": prior, "congestion_control": algo,
                        "note": None if algo == self.candidates[0] else
                        f"{self.candidates[0]} is not in net.ipv4.tcp_allowed_congestion_control; used {algo}"}
        self.description = f"{algo} instead of {sorted(set(prior.values()))[0]} in both namespaces"
        return self.changed

    def remove(self, tb: Testbed) -> None:
        for ns, algo in self.changed.get("prior", {}).items():
            run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"{self.KEY}={algo}"])
        self.changed = {}

    def state(self, tb: Testbed) -> dict:
        return {"congestion_control": {
            ns: run(["ip", "netns", "exec", ns, "sysctl", "-n", self.KEY]).stdout.strip()
            for ns in self._namespaces(tb)}}


# ---- syscall auditing (global: only with --allow-global) ------------------------------

class SyscallAudit(Pathology):
    """Audit on with a compliance-style rule set; nginx restarted, so its workers carry an audit
    context (as do the wrk processes of each round). The remedy is the case study's
    `auditctl -a never,task` (tasks started afterwards get no context), nginx restarted again.

    Audit is global to the machine. The rule list and the enabled flag are restored, with one
    exception: the never,task rule stays. Once audit has been enabled the kernel's
    audit_ever_enabled stays set until reboot and every task started later would get an audit
    context without that rule; with it, they get none, as before the lab. We refuse to touch a
    machine whose audit is in use (an audit daemon, rules of its own, or a locked setting).
    """

    name = "syscall-audit"
    expected_rule = "syscall-audit"
    description = (f"audit enabled with {len(audit_control.COMPLIANCE_SYSCALLS)} compliance-style exit rules "
                   f"(key {audit_control.KEY}) and nginx restarted; remedy: never,task and restart")
    global_setting = "the kernel's audit settings (enabled flag, rule list)"

    def __init__(self) -> None:
        super().__init__()
        self._prior_enabled: int | None = None

    def unavailable(self, tb: Testbed) -> str | None:
        try:
            status = audit_control.status()
            foreign = [r for r in audit_control.rules() if r.key != audit_control.KEY]
        except EnvironmentProblem as exc:
            return f"audit netlink unusable ({exc}): kernel without CONFIG_AUDITSYSCALL?"
        if status["pid"]:
            return f"an audit daemon (pid {status['pid']}) manages audit here: the lab will not change its settings"
        if status["enabled"] == 2:
            return "audit settings are locked (enabled=2) until reboot"
        if foreign:
            return f"audit already holds {len(foreign)} rule(s) of this machine: the lab will not change them"
        return None

    def inject(self, tb: Testbed) -> dict:
        if self._prior_enabled is None:
            self._prior_enabled = audit_control.status()["enabled"]
        ours = audit_control.rules()
        never = audit_control.never_task()
        if never in ours:
            audit_control.delete_rule(never)
        audit_control.set_enabled(1)
        for rule in audit_control.compliance_rules():
            if rule not in ours:
                audit_control.add_rule(rule)
        tb.start_server()  # new workers: created while audit is on, so each carries a context
        self.changed = {"prior_enabled": self._prior_enabled, "enabled": 1,
                        "rules_added": [list(r.syscalls) for r in audit_control.compliance_rules()],
                        "key": audit_control.KEY}
        return self.changed

    def remove(self, tb: Testbed) -> None:
        if self._prior_enabled is None:
            return
        ours = audit_control.rules()
        for rule in audit_control.compliance_rules():
            if rule in ours:
                audit_control.delete_rule(rule)
        never = audit_control.never_task()
        if never not in ours:
            audit_control.add_rule(never)
        audit_control.set_enabled(self._prior_enabled)
        tb.start_server()  # new workers, created under never,task: no audit context
        self.changed = {"prior_enabled": self._prior_enabled, "left": "never,task rule (key "
                        f"{audit_control.KEY}): the kernel keeps audit_ever_enabled until reboot"}

    def state(self, tb: Testbed) -> dict:
        status = audit_control.status()
        return {"enabled": status["enabled"],
                "rules": [r._asdict() for r in audit_control.rules()]}


PATHOLOGIES = {
    "baseline": Pathology,
    "netfilter": Netfilter,
    "packet-tap": PacketTap,
    "seccomp": Seccomp,
    "qdisc": Qdisc,
    "gro": Gro,
    "congestion-control": CongestionControl,
    "syscall-audit": SyscallAudit,
}


def make(name: str) -> Pathology:
    try:
        return PATHOLOGIES[name]()
    except KeyError:
        raise EnvironmentProblem(f"unknown scenario {name!r}: choose from {', '.join(PATHOLOGIES)}") from None
