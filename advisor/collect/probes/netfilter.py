"""Netfilter cost drivers: loaded modules, iptables/nftables rule counts, conntrack entries.

Every count is for the network namespace the process runs in (see netns.py for another one).
Note that iptables-nft rules are nftables rules too, so they appear in both counts.
"""

from __future__ import annotations

import json
import os

from .common import ProbeError, probe, read_int, read_text, run

NETFILTER_PREFIXES = ("nf_", "nft_", "xt_", "x_tables", "ip_tables", "ip6_tables", "iptable_",
                      "ip6table_", "arptable", "arp_tables", "ebtable", "ebt_", "ipt_", "ip6t_",
                      "nfnetlink", "br_netfilter")


def is_netfilter_module(name: str) -> bool:
    return name.startswith(NETFILTER_PREFIXES)


@probe
def netfilter_modules() -> dict:
    """Netfilter modules present, and where the list came from.

    /proc/modules lists only loadable modules; built-in ones appear in /sys/module (only when
    they have parameters) and in modules.builtin, so the three are merged.
    """
    names: set[str] = set()
    sources = []
    try:
        names |= {line.split()[0] for line in read_text("/proc/modules").splitlines() if line}
        sources.append("/proc/modules")
    except ProbeError:
        sources.append("/proc/modules absent (kernel without module support: all built in)")
    try:
        names |= set(os.listdir("/sys/module"))
        sources.append("/sys/module")
    except OSError:
        pass
    builtin = f"/lib/modules/{os.uname().release}/modules.builtin"
    try:
        names |= {os.path.basename(line).removesuffix(".ko").replace("-", "_")
                  for line in read_text(builtin).splitlines() if line}
        sources.append(builtin)
    except ProbeError:
        pass
    return {"modules": sorted(n for n in names if is_netfilter_module(n)), "sources": sources}


def count_appended_rules(save_output: str) -> int:
    """Number of rules in iptables-save output: one '-A chain ...' line per rule."""
    return sum(1 for line in save_output.splitlines() if line.startswith("-A "))


@probe
def iptables_rules(tool: str = "iptables-save") -> int | dict:
    return count_appended_rules(run([tool], timeout=3.0))


@probe
def legacy_rules(tool: str = "iptables-legacy-save", names_file: str = "/proc/net/ip_tables_names") -> int | dict:
    """Rules in the legacy (x_tables) backend; 0 without asking when no legacy table exists.

    Checking the names file first keeps the probe from making the kernel load ip_tables.
    """
    try:
        tables = read_text(names_file).split()
    except ProbeError:
        return 0
    if not tables:
        return 0
    return count_appended_rules(run([tool], timeout=3.0))


@probe
def nft_rules(tool: str = "nft") -> int | dict:
    """Rules in the nftables ruleset (JSON output, so chains and sets are not miscounted)."""
    text = run([tool, "-j", "list", "ruleset"], timeout=3.0)
    try:
        objects = json.loads(text).get("nftables", [])
    except ValueError:
        raise ProbeError("nft -j list ruleset: output is not JSON") from None
    return sum(1 for item in objects if "rule" in item)


@probe
def conntrack_entries(path: str = "/proc/sys/net/netfilter/nf_conntrack_count") -> int | dict:
    if not os.path.exists(path):
        raise ProbeError("nf_conntrack not loaded in this namespace (no nf_conntrack_count)")
    return read_int(path)


def netfilter_state() -> dict:
    modules = netfilter_modules()
    return {
        "iptables_rules": iptables_rules(),
        "ip6tables_rules": iptables_rules("ip6tables-save"),
        "iptables_legacy_rules": legacy_rules(),
        "ip6tables_legacy_rules": legacy_rules("ip6tables-legacy-save", "/proc/net/ip6_tables_names"),
        "nft_rules": nft_rules(),
        "conntrack_entries": conntrack_entries(),
        "modules": modules.get("modules", modules),
        "modules_sources": modules.get("sources", []),
    }
