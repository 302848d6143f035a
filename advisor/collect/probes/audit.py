"""Syscall auditing: is the audit subsystem enabled, and how many rules does it hold.

With audit enabled and rules loaded every syscall takes the slow audit path. auditctl (Debian
package auditd) is used when installed; otherwise the same two questions go straight to the
kernel over NETLINK_AUDIT (AUDIT_GET, AUDIT_LIST_RULES), which only reads.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import time

from .common import ProbeError, missing_tool, probe, run

NETLINK_AUDIT = 9
NLMSG_ERROR, NLMSG_DONE = 2, 3
AUDIT_GET, AUDIT_LIST_RULES = 1000, 1013
NLM_F_REQUEST, NLM_F_ACK = 1, 4
HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid


def parse_auditctl_status(text: str) -> int:
    """The 'enabled' value of `auditctl -s` (0 off, 1 on, 2 on and locked)."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "enabled":
            return int(value.split()[0])
    raise ProbeError("auditctl -s: no 'enabled' line")


def parse_auditctl_rules(text: str) -> int:
    """Rules listed by `auditctl -l` ('No rules' or one '-a ...'/'-w ...' line per rule)."""
    return sum(1 for line in text.splitlines() if line.startswith("-"))


def netlink_messages(request_type: int, payload: bytes = b"", deadline_s: float = 1.0, limit: int = 100_000):
    """Send one audit request; yield (type, payload) of the replies until DONE or the answer.

    An error answer raises ProbeError; the acknowledgement of a change ends the replies."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
    except OSError as exc:
        raise ProbeError(f"audit netlink socket: {exc.strerror} (kernel without CONFIG_AUDIT?)") from None
    with sock:
        sock.settimeout(deadline_s)
        sock.bind((0, 0))
        sock.send(HEADER.pack(HEADER.size + len(payload), request_type, NLM_F_REQUEST | NLM_F_ACK, 1, 0) + payload)
        end = time.monotonic() + deadline_s
        count = 0
        while time.monotonic() < end and count < limit:
            try:
                data = sock.recv(1 << 16)
            except socket.timeout:
                break
            offset = 0
            while offset + HEADER.size <= len(data):
                length, kind, _, _, _ = HEADER.unpack_from(data, offset)
                body = data[offset + HEADER.size: offset + length]
                offset += max((length + 3) & ~3, HEADER.size)
                count += 1
                if kind == NLMSG_ERROR:
                    errno = -struct.unpack_from("=i", body)[0]
                    if errno:
                        reason = ("not root (CAP_AUDIT_CONTROL needed)" if errno == 1
                                  else f"{os.strerror(errno)} (errno {errno})")
                        raise ProbeError(f"audit netlink: {reason}")
                    if request_type not in (AUDIT_GET, AUDIT_LIST_RULES):
                        return  # the acknowledgement of a change: nothing else follows
                    continue  # the acknowledgement of a query: the answer follows or came first
                if kind == NLMSG_DONE:
                    return
                yield kind, body
        if request_type not in (AUDIT_GET, AUDIT_LIST_RULES):
            raise ProbeError(f"audit netlink: no acknowledgement of request {request_type} "
                             f"within {deadline_s:g} s")


#: struct audit_status, its first fields: mask, enabled, failure, pid, rate_limit,
#: backlog_limit, lost, backlog
STATUS = struct.Struct("=IIIIIIII")


def netlink_status() -> dict:
    """enabled (0 off, 1 on, 2 locked) and the pid of the audit daemon (0: none)."""
    for kind, payload in netlink_messages(AUDIT_GET):
        if kind == AUDIT_GET and len(payload) >= STATUS.size:
            _, enabled, _, pid, *_ = STATUS.unpack_from(payload)
            return {"enabled": enabled, "pid": pid}
    raise ProbeError("audit netlink: no answer to AUDIT_GET")


def netlink_rule_count() -> int:
    return sum(1 for kind, _ in netlink_messages(AUDIT_LIST_RULES) if kind == AUDIT_LIST_RULES)


@probe
def audit_state(auditctl: str = "auditctl") -> dict:
    if shutil.which(auditctl):
        return {
            "enabled": parse_auditctl_status(run([auditctl, "-s"])),
            "rules": parse_auditctl_rules(run([auditctl, "-l"])),
            "source": "auditctl",
        }
    return {
        "enabled": netlink_status()["enabled"],
        "rules": netlink_rule_count(),
        "source": "netlink",
        "note": f"{missing_tool(auditctl)}: read from the kernel over NETLINK_AUDIT",
    }
