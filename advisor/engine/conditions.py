"""Conditions on recorded system state and counters: `net.devices.*.qdisc != noqueue`.

A condition is unknown (not false) when the data is absent or its probe failed, so the
engine can say "not evaluated: <why>" instead of pretending the box is clean.
"""

from __future__ import annotations

from typing import NamedTuple

from .rules import Condition, Conditions

#: Reason returned when a recorded section simply has no such item (e.g. no 'mds' file).
ABSENT = "absent"


class Verdict(NamedTuple):
    holds: bool | None  # None: unknown
    detail: str  # 'netfilter.iptables_rules = 312' or why it is unknown


def lookup(data: dict | None, path: str) -> tuple[list, str | None]:
    """Values at a dotted path ('*' = every key or list item) and, when none, the reason."""
    if data is None:
        return [], "no data"
    current = [data]
    walked = []
    for part in path.split("."):
        nxt = []
        for node in current:
            if isinstance(node, dict) and "error" in node and len(node) == 1:
                return [], f"{'.'.join(walked) or part}: {node['error']}"
            if part == "*":
                if isinstance(node, dict):
                    nxt.extend(node.values())
                elif isinstance(node, list):
                    nxt.extend(node)
            elif isinstance(node, dict) and part in node:
                nxt.append(node[part])
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                nxt.append(node[int(part)])
        walked.append(part)
        current = [v for v in nxt if v is not None]
        if not current and part == "*" and walked.count("*") == 1:
            # an empty list or map (e.g. no target processes) tells nothing about its items
            return [], f"{'.'.join(walked[:-1])} is empty: nothing recorded to check"
        if not current:
            if len(walked) > 1:
                # The section was recorded but holds no such item: that is an answer (absent).
                return [], ABSENT
            return [], f"{'.'.join(walked)} not recorded"
    return current, None


def _as_number(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _test_one(value, op: str, arg: str) -> bool:
    if op == "exists":
        return value not in ([], {}, "")
    if op in ("contains", "not-contains"):
        found = arg.lower() in str(value).lower()
        return found if op == "contains" else not found
    num, ref = _as_number(value), _as_number(arg)
    if op in (">", ">=", "<", "<=") or (num is not None and ref is not None and op in ("==", "!=")):
        if num is None or ref is None:
            return False
        return {">": num > ref, ">=": num >= ref, "<": num < ref, "<=": num <= ref,
                "==": num == ref, "!=": num != ref}[op]
    text = str(value).lower() if not isinstance(value, bool) else str(value).lower()
    return (text == arg.lower()) if op == "==" else (text != arg.lower())


def check(cond: Condition, data: dict | None) -> Verdict:
    """Whether the condition holds for any value at its path (unknown when there is none)."""
    op, _, arg = cond.test.partition(" ")
    values, why = lookup(data, cond.path)
    if op == "missing":
        return Verdict(not values, f"{cond.path} {'absent' if not values else 'present'}")
    if not values and why == ABSENT:
        return Verdict(False, f"{cond.path} absent from the recorded state")
    if not values:
        return Verdict(None, why or f"{cond.path} not recorded")
    shown = values[0] if len(values) == 1 else values
    holds = any(_test_one(v, op, arg.strip()) for v in values)
    return Verdict(holds, f"{cond.path} = {shown!r}")


def check_all(conds: Conditions, data: dict | None) -> Verdict:
    """`all` must all hold and at least one of `any`; unknown wins over false only when nothing is false."""
    if not conds:
        return Verdict(True, "")
    details, unknown = [], []
    for cond in conds.all:
        v = check(cond, data)
        if v.holds is False:
            return Verdict(False, cond.says or v.detail)
        (unknown if v.holds is None else details).append(v.detail)
    if conds.any:
        results = [check(c, data) for c in conds.any]
        true = [v for v in results if v.holds]
        if true:
            details.extend(v.detail for v in true)
        elif all(v.holds is False for v in results):
            return Verdict(False, conds.any[0].says or "; ".join(v.detail for v in results))
        else:
            unknown.extend(v.detail for v in results if v.holds is None)
    if unknown:
        return Verdict(None, "; ".join(dict.fromkeys(unknown)))
    return Verdict(True, "; ".join(dict.fromkeys(details)))
