"""Run the namespace-dependent probes inside another network namespace.

/sys/class/net, /proc/sys/net, /proc/net/packet, iptables, nft and tc all answer for the
namespace of the process that asks, so the probes of netfilter.py, netdev.py and packet.py run
in a child started with `ip netns exec NAME python ...`, which prints them as JSON. (`ip netns
exec` also remounts /sys for that namespace.) The child imports this package on its own, as
top-level `probes`, so that it does not pay for importing `advisor` (pandas: ~0.8 s).
"""

from __future__ import annotations

import json
import os
import re
import sys

from .common import ProbeError, run
from .netdev import GLOBAL_SYSCTLS, net_state, sysctl
from .netfilter import netfilter_state
from .packet import packet_sockets

SECTIONS = ("netfilter", "net", "packet_sockets")
PROBES_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD_CODE = "import sys; sys.path.insert(0, sys.argv[1]); import probes.netns; probes.netns.main()"
VALID_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def namespace_sections() -> dict:
    """The sections that depend on the network namespace, for the namespace we run in."""
    return {"netfilter": netfilter_state(), "net": net_state(), "packet_sockets": packet_sockets()}


def fill_global_sysctls(net: dict) -> None:
    """busy_read, busy_poll, default_qdisc exist only in the initial namespace: take the host's."""
    scope = {}
    for name in GLOBAL_SYSCTLS:
        value = net.get(name)
        if isinstance(value, dict) and "not in this namespace" in value.get("error", ""):
            net[name] = sysctl(name)
            scope[name] = "global (read in the initial namespace)"
    if scope:
        net["sysctl_scope"] = scope


def sections_in_namespace(name: str, timeout: float = 5.0) -> dict:
    """namespace_sections() as seen inside network namespace ``name``; each section an error on failure."""
    try:
        if not VALID_NAME.match(name):
            raise ProbeError(f"bad network namespace name {name!r}")
        if not os.path.exists(f"/run/netns/{name}"):
            raise ProbeError(f"network namespace {name} not found (see `ip netns list`)")
        text = run(["ip", "netns", "exec", name, sys.executable, "-I", "-c", CHILD_CODE, PROBES_PARENT],
                   timeout=timeout, env={"ADVISOR_PROBE_CHILD": "1"})
        try:
            sections = json.loads(text)
        except ValueError:
            raise ProbeError(f"probe child in namespace {name} printed no JSON: {text[:80]!r}") from None
    except ProbeError as exc:
        return {section: {"error": str(exc)} for section in SECTIONS}
    if isinstance(sections.get("net"), dict) and "error" not in sections["net"]:
        fill_global_sysctls(sections["net"])
    for section in SECTIONS:
        sections.setdefault(section, {"error": "missing from the namespace child's output"})
    return sections


def main() -> None:
    """Entry point of the child inside the namespace."""
    json.dump(namespace_sections(), sys.stdout)
