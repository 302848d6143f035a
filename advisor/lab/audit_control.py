"""Change the kernel's audit settings over NETLINK_AUDIT: the enabled flag and our own rules.

Used only by the lab's `syscall-audit` scenario, which runs only with --allow-global: audit is
global to the machine. Without auditctl (Debian's `auditd` package would also install and
start the daemon) the three operations the scenario needs are sent to the kernel directly:
AUDIT_SET (enabled), AUDIT_ADD_RULE / AUDIT_DEL_RULE with a `struct audit_rule_data`
(include/uapi/linux/audit.h). Every rule we add carries the key KEY, so that we list, and
delete, only ours.
"""

from __future__ import annotations

import struct
from contextlib import contextmanager
from typing import Iterator, NamedTuple

from ..collect.probes.audit import AUDIT_LIST_RULES, STATUS, netlink_messages, netlink_status
from ..collect.probes.common import ProbeError
from ..errors import EnvironmentProblem

AUDIT_SET, AUDIT_ADD_RULE, AUDIT_DEL_RULE = 1001, 1011, 1012
AUDIT_STATUS_ENABLED = 0x1
AUDIT_FILTER_TASK, AUDIT_FILTER_EXIT = 0x01, 0x04
AUDIT_NEVER, AUDIT_ALWAYS = 0, 2
AUDIT_ARCH, AUDIT_FILTERKEY = 11, 210
AUDIT_EQUAL = 0x40000000
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_BITMASK_SIZE = AUDIT_MAX_FIELDS = 64
#: fields whose value is the length of a string in the rule's buffer (LSM labels, watch, dir,
#: exe, key), in the order of the fields
STRING_FIELDS = frozenset({13, 14, 15, 16, 17, 19, 20, 21, 22, 23, 105, 107, 112, AUDIT_FILTERKEY})

#: flags, action, field_count, mask[64], fields[64], values[64], fieldflags[64], buflen
RULE = struct.Struct(f"=III{AUDIT_BITMASK_SIZE}I{AUDIT_MAX_FIELDS}I{AUDIT_MAX_FIELDS}I{AUDIT_MAX_FIELDS}II")

KEY = "advisor-lab"

#: A compliance-style rule set (time changes, host name, kexec, kernel modules: CIS benchmark
#: shaped): syscalls neither the server nor the lab makes, so nothing is logged, yet every
#: syscall of every task started while they are loaded carries an audit context. (CIS's mount
#: rule is left out: `ip netns exec` mounts /sys and would log each round.) x86_64 numbers.
COMPLIANCE_SYSCALLS = {
    "time-change": (159, 164, 227),  # adjtimex, settimeofday, clock_settime
    "system-locale": (170, 171),  # sethostname, setdomainname
    "kexec": (246, 320),  # kexec_load, kexec_file_load
    "modules": (175, 176, 313),  # init_module, delete_module, finit_module
}


class Rule(NamedTuple):
    listnr: int  # AUDIT_FILTER_TASK or AUDIT_FILTER_EXIT
    action: int  # AUDIT_NEVER or AUDIT_ALWAYS
    syscalls: tuple[int, ...]  # () = all (the mask of a task rule)
    arch: int | None
    key: str

    def pack(self) -> bytes:
        mask = [0] * AUDIT_BITMASK_SIZE
        if self.syscalls:
            for nr in self.syscalls:
                mask[nr // 32] |= 1 << (nr % 32)
        else:
            mask = [0xFFFFFFFF] * AUDIT_BITMASK_SIZE
        fields, values, flags = [], [], []
        if self.arch is not None:
            fields.append(AUDIT_ARCH), values.append(self.arch), flags.append(AUDIT_EQUAL)
        key = self.key.encode()
        fields.append(AUDIT_FILTERKEY), values.append(len(key)), flags.append(AUDIT_EQUAL)
        pad = [0] * (AUDIT_MAX_FIELDS - len(fields))
        return RULE.pack(self.listnr, self.action, len(fields), *mask, *(fields + pad), *(values + pad),
                         *(flags + pad), len(key)) + key


def unpack_rule(payload: bytes) -> Rule:
    """A rule as the kernel lists it (AUDIT_LIST_RULES); the fields we do not use are dropped."""
    if len(payload) < RULE.size:
        raise EnvironmentProblem(f"audit netlink: a listed rule of {len(payload)} bytes (expected {RULE.size}+)")
    v = RULE.unpack_from(payload)
    listnr, action, count = v[0], v[1], v[2]
    mask = v[3:3 + AUDIT_BITMASK_SIZE]
    base = 3 + AUDIT_BITMASK_SIZE
    fields, values = v[base:base + count], v[base + AUDIT_MAX_FIELDS:base + AUDIT_MAX_FIELDS + count]
    buf = payload[RULE.size:]
    arch, key, at = None, "", 0
    for field, value in zip(fields, values):
        if field == AUDIT_ARCH:
            arch = value
        elif field == AUDIT_FILTERKEY:
            key = buf[at:at + value].decode("utf-8", "replace")
        if field in STRING_FIELDS:
            at += value
    listnr &= 0x0F  # without AUDIT_FILTER_PREPEND
    # a task rule applies to the task, not to syscalls (the kernel lists its mask altered)
    syscalls = () if listnr == AUDIT_FILTER_TASK else tuple(
        nr for nr in range(32 * AUDIT_BITMASK_SIZE) if mask[nr // 32] >> (nr % 32) & 1)
    return Rule(listnr, action, syscalls, arch, key)


@contextmanager
def _netlink() -> Iterator[None]:
    """The lab reports the probe's netlink errors as problems of its environment."""
    try:
        yield
    except ProbeError as exc:
        raise EnvironmentProblem(str(exc)) from None


def status() -> dict:
    """enabled (0 off, 1 on, 2 locked) and pid of the audit daemon (0: none)."""
    with _netlink():
        return netlink_status()


def rules() -> list[Rule]:
    with _netlink():
        return [unpack_rule(p) for kind, p in netlink_messages(AUDIT_LIST_RULES) if kind == AUDIT_LIST_RULES]


def _request(kind: int, payload: bytes) -> None:
    """One change; the kernel's acknowledgement (or its error) is awaited."""
    with _netlink():
        for _ in netlink_messages(kind, payload):
            pass


def set_enabled(value: int) -> None:
    _request(AUDIT_SET, STATUS.pack(AUDIT_STATUS_ENABLED, value, 0, 0, 0, 0, 0, 0))


def add_rule(rule: Rule) -> None:
    _request(AUDIT_ADD_RULE, rule.pack())


def delete_rule(rule: Rule) -> None:
    _request(AUDIT_DEL_RULE, rule.pack())


def compliance_rules(key: str = KEY) -> list[Rule]:
    return [Rule(AUDIT_FILTER_EXIT, AUDIT_ALWAYS, nrs, AUDIT_ARCH_X86_64, key)
            for nrs in COMPLIANCE_SYSCALLS.values()]


def never_task(key: str = KEY) -> Rule:
    """`auditctl -a never,task`: tasks started from now on get no audit context (the remedy)."""
    return Rule(AUDIT_FILTER_TASK, AUDIT_NEVER, (), None, key)
