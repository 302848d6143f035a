"""AF_PACKET sockets and who owns them.

A packet socket with protocol ETH_P_ALL (a DHCP client, tcpdump) gets a copy of every packet:
each one costs a clone and a filter run on the receive and transmit paths.
"""

from __future__ import annotations

import os
import socket

from .common import pids, probe, read_text
from .processes import read_comm

ETHERTYPES = {0x0003: "ETH_P_ALL", 0x0800: "ETH_P_IP", 0x0806: "ETH_P_ARP", 0x86DD: "ETH_P_IPV6",
              0x88CC: "ETH_P_LLDP", 0x888E: "ETH_P_PAE", 0x0000: "none (not bound)"}
SOCKET_TYPES = {2: "dgram", 3: "raw"}


def parse_packet_table(text: str) -> list[dict]:
    """/proc/net/packet rows -> [{inode, type, protocol, ifindex}]."""
    rows = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 9:
            continue
        rows.append({
            "inode": int(fields[8]),
            "type": SOCKET_TYPES.get(int(fields[2]), fields[2]),
            "protocol": int(fields[3], 16),
            "ifindex": int(fields[4]),
        })
    return rows


def interface_name(ifindex: int) -> str:
    if ifindex == 0:
        return "any"
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return f"ifindex {ifindex}"


def socket_owners(inodes: set[int]) -> dict[int, list[int]]:
    """{inode: [pids holding a descriptor of socket:[inode]]} by reading /proc/*/fd links."""
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    owners: dict[int, list[int]] = {inode: [] for inode in inodes}
    if not wanted:
        return owners
    for pid in pids():
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or not ours to read
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            inode = wanted.get(target)
            if inode is not None and pid not in owners[inode]:
                owners[inode].append(pid)
    return owners


@probe
def packet_sockets() -> list[dict]:
    rows = parse_packet_table(read_text("/proc/net/packet"))
    owners = socket_owners({row["inode"] for row in rows})
    result = []
    for row in rows:
        holders = owners[row["inode"]]
        result.append({
            "inode": row["inode"],
            "type": row["type"],
            "protocol": f"0x{row['protocol']:04x}",
            "protocol_name": ETHERTYPES.get(row["protocol"]),
            "iface": interface_name(row["ifindex"]),
            "pid": holders[0] if holders else None,
            "comm": read_comm(holders[0]) if holders else None,
            "pids": holders,
        })
    return result
