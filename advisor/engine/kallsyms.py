"""Which rule symbol families exist in the running kernel (/proc/kallsyms).

Recorded into system.json by `advise run`, so that a rule whose symbols cannot exist on this
kernel (audit compiled out, no nftables...) says "not evaluated" instead of "clean".
"""

from __future__ import annotations

from pathlib import Path

from .rules import Rule


def read_symbols(path: str | Path = "/proc/kallsyms") -> set[str]:
    """Function names of the kernel (text symbols), without module suffixes."""
    names = set()
    with open(path, "rb") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 3 and parts[1] in (b"t", b"T", b"W", b"w"):
                names.add(parts[2].decode("ascii", "replace"))
    return names


def presence(rules: list[Rule], path: str | Path = "/proc/kallsyms") -> dict:
    """{rule id: True/False} for rules with kernel symbol families; an error entry when unreadable.

    All-zero addresses (kptr_restrict) still list the names, which is all this needs.
    """
    try:
        names = read_symbols(path)
    except OSError as exc:
        return {"error": f"cannot read {path}: {exc.strerror}"}
    if not names:
        return {"error": f"{path} lists no kernel text symbols"}
    out = {}
    for rule in rules:
        if rule.symbols and rule.kernel_symbols:
            out[rule.id] = any(rule.symbols.matches(n) for n in names)
    return out
