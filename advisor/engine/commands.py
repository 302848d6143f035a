"""Fill a rule's command templates with values read from the system, shell-quoted.

Rule authors write `tc qdisc replace dev {device} root noqueue` and its rollback
`tc qdisc replace dev {device} root {qdisc}`. Device names, process ids and previous values come
from the recorded system state, so each is quoted with shlex.quote before it reaches a shell.
A command whose value is unknown keeps a visible `<name>` placeholder and the recommendation
says it needs editing.
"""

from __future__ import annotations

import re
import shlex

from .conditions import _test_one, lookup
from .rules import Rule

PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
#: Placeholders a rule author left for the user to fill by hand: `<cpu mask>`.
HAND_EDIT = re.compile(r"<([a-z][a-z0-9 ,._-]*)>")
#: Per-device values: a command that uses one of them is repeated for each matching device.
DEVICE_KEYS = ("device", "qdisc", "gro", "rx_usecs", "adaptive_rx")


def _scalar_values(system: dict, meta: dict) -> dict[str, str | list[str]]:
    """Values that are one per box: current sysctls, the target, a packet socket's owner."""
    values: dict[str, str] = {}
    net = system.get("net") if isinstance(system.get("net"), dict) else {}
    listed = lambda key: [x for x in system.get(key) or [] if isinstance(x, dict)] \
        if isinstance(system.get(key), list) else []
    for key in ("tcp_congestion_control", "busy_poll", "busy_read", "default_qdisc"):
        value = net.get(key)
        if value is not None and not isinstance(value, dict):
            values[key] = str(value)
    processes = [p for p in listed("processes") if p.get("pid")]
    if processes:
        values["pids"] = [str(p["pid"]) for p in processes]
    target = (meta.get("target") or {}).get("comm") if isinstance(meta.get("target"), dict) else None
    if target:
        values["comm"] = str(target)
    sockets = listed("packet_sockets")
    if sockets:
        first = sockets[0]
        for key, field in (("packet_iface", "iface"), ("packet_pid", "pid"), ("packet_comm", "comm")):
            if first.get(field) is not None:
                values[key] = str(first[field])
    return values


def _device_conditions(rule: Rule) -> list[tuple[str, str]]:
    """(field, test) of the rule's conditions about devices, e.g. ('qdisc', '!= noqueue')."""
    out = []
    for conds in (rule.requires, rule.state):
        for cond in (*conds.all, *conds.any):
            if cond.path.startswith("net.devices.*.") and cond.path.count(".") == 3:
                out.append((cond.path.rsplit(".", 1)[1], cond.test))
    return out


def _device_rows(rule: Rule, system: dict) -> list[dict[str, str]]:
    """The devices a remedy applies to: those that meet the rule's device conditions."""
    devices, _ = lookup(system, "net.devices")
    if not devices or not isinstance(devices[0], dict):
        return []
    conditions = _device_conditions(rule)
    rows = []
    for name, dev in sorted(devices[0].items()):
        if name == "lo" or not isinstance(dev, dict):
            continue
        ok = True
        for field, test in conditions:
            op, _, arg = test.partition(" ")
            if dev.get(field) is None or not _test_one(dev[field], op, arg.strip()):
                ok = False
        if ok:
            row = {"device": name}
            for key in DEVICE_KEYS[1:]:
                if dev.get(key) is not None and not isinstance(dev[key], dict):
                    value = dev[key]
                    row[key] = ("on" if value else "off") if isinstance(value, bool) else str(value)
            rows.append(row)
    return rows


def shell_word(value: str) -> str:
    """`value` as one shell word: shlex.quote, or, when it holds a character that is not printable
    (an interface named with ESC in it), bash's $'...' with that character escaped. The command
    runs the same, and whoever reads it before running it sees what it does."""
    if value.isprintable():
        return shlex.quote(value)
    out = []
    for char in value:
        if char in "\\'":
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        else:  # its UTF-8 bytes: bash's \u would depend on the locale the script runs in
            out.extend(f"\\x{byte:02x}" for byte in char.encode("utf-8", "surrogateescape"))
    return "$'" + "".join(out) + "'"


def _substitute(template: str, values: dict[str, str], missing: set[str]) -> str:
    def repl(m: re.Match) -> str:
        key = m.group(1)
        if key in values:
            value = values[key]
            if isinstance(value, list):  # several words, each quoted: `for pid in {pids}`
                return " ".join(shell_word(v) for v in value)
            return shell_word(value)
        missing.add(key)
        return f"<{key}>"
    return PLACEHOLDER.sub(repl, template)


def fill(templates: tuple[str, ...], rule: Rule, system: dict | None, meta: dict | None) -> tuple[list[str], set[str]]:
    """Commands with system values substituted (quoted), and the names that stayed unknown."""
    system = system if isinstance(system, dict) else {}
    scalars = _scalar_values(system, meta if isinstance(meta, dict) else {})
    rows = _device_rows(rule, system)
    missing: set[str] = set()
    out = []
    for template in templates:
        keys = set(PLACEHOLDER.findall(template))
        if keys & set(DEVICE_KEYS) and rows:
            for row in rows:
                out.append(_substitute(template, {**scalars, **row}, missing))
        else:
            out.append(_substitute(template, scalars, missing))
    for line in out:
        missing.update(HAND_EDIT.findall(line.split("#", 1)[0]))
    return out, missing
