"""FlameGraph-compatible folded output (`comm;root;...;leaf weight`) from a `StackTable`.

Reproduces stackcollapse-perf.pl's output (options --pid --tid --kernel --jit --all --addrs),
following inferno where the two disagree (CHECKLIST section F): argument lists are trimmed by
bracket depth (C11), legacy Rust mangling is repaired (C12), jitdump `jitted-*.so` DSOs count
as JIT. The table keeps raw symbols; every display rule lives here.

`_[i]` marks the inlined parts of perf-map-agent chains (`A->B->C`) as both tools do; DWARF
inline frames (DSO `(inlined)`) are printed as plain functions, also as both do, though the
table knows them as kind `inlined`. Deliberate difference from both: a frame from a `(deleted)`
DSO is named like any other frame of that DSO (perl prints `[unknown] ` with a space).
"""

from __future__ import annotations

from ..model import Frame, StackTable
from .perf_script import is_jit_dso, is_vmlinux

_RUST_HASH_LEN = 17  # '::h' is not counted: 'h' + 16 hex digits
_RUST_ESCAPES = (
    ("$SP$", "@"), ("$BP$", "*"), ("$RF$", "&"), ("$LT$", "<"), ("$GT$", ">"), ("$LP$", "("),
    ("$RP$", ")"), ("$C$", ","), ("$u7e$", "~"), ("$u20$", " "), ("$u27$", "'"), ("$u3d$", "="),
    ("$u5b$", "["), ("$u5d$", "]"), ("$u7b$", "{"), ("$u7d$", "}"), ("$u3b$", ";"), ("$u2b$", "+"),
    ("$u21$", "!"), ("$u22$", '"'),
)
_HEX = frozenset("0123456789abcdefABCDEF")
_ANON_NAMESPACE = "(anonymous namespace)"
_MISSING = object()


def fold(table: StackTable, *, pid: bool = False, tid: bool = False, kernel: bool = False,
         jit: bool = False, addrs: bool = False, event: str | None = None) -> list[str]:
    """Sorted folded lines for one event (the first one seen when `event` is None).

    The weight is the period sum (1 per sample when the event has no period), as perl and
    inferno print it. `--all` is `kernel=True, jit=True`.
    """
    if event is None:
        event = next(iter(table.events), None)
        if event is None:
            return []
    names: dict[tuple[Frame, bool], str | None] = {}
    weights: dict[str, int] = {}
    for key, (_count, weight) in table.rows.items():
        if key.event != event:
            continue
        root = key.comm
        if tid:
            root = f"{root}-{_num(key.pid)}/{_num(key.tid)}"
        elif pid:
            root = f"{root}-{_num(key.pid)}"
        root = root.replace(" ", "_").replace(";", ":")
        java = root.startswith("java")
        parts = [root]
        for frame in key.frames:
            name = names.get((frame, java), _MISSING)
            if name is _MISSING:
                name = names[(frame, java)] = display_name(
                    frame, java=java, kernel=kernel, jit=jit, addrs=addrs)
            if name is not None:
                parts.append(name)
        line = ";".join(parts)
        weights[line] = weights.get(line, 0) + weight
    ordered = sorted(weights, key=lambda s: s.encode("utf-8", "surrogateescape"))
    return [f"{stack} {weights[stack]}" for stack in ordered]


def display_name(frame: Frame, *, java: bool = False, kernel: bool = False, jit: bool = False,
                 addrs: bool = False) -> str | None:
    """The folded name of one frame, or None for frames perl skips (symbol starts with '(')."""
    symbol = frame.symbol
    if symbol.startswith("("):
        return None
    addr = None
    if symbol.startswith("[unknown <") and symbol.endswith(">]"):
        addr = symbol[10:-2]
        symbol = "[unknown]"
    if symbol == "[unknown]":
        known = frame.dso and frame.dso != "[unknown]"
        base = frame.dso.rpartition("/")[2] if known else "unknown"
        if addrs and addr is not None:
            name = f"[{base} <{addr}>]"
        else:
            name = f"[{base}]"
    elif not symbol:
        name = " "  # perl keeps the single space between address and '(dso)'
    else:
        name = fix_rust_symbol(symbol)
    name = tidy_generic(name)
    if java and name.startswith("L") and "/" in name:
        name = name[1:]
    if frame.kind == "inlined" and is_jit_dso(frame.dso):  # perf-map-agent `A->B` chain
        if "_[i]" not in name:
            name += "_[i]"
    elif kernel and _is_kernel(frame):
        name += "_[k]"
    elif jit and frame.kind == "jit" and "_[j]" not in name:
        name += "_[j]"
    return name


def tidy_generic(name: str) -> str:
    """`;` -> `:`, drop the argument list (bracket-depth aware, as inferno), drop quotes (perl)."""
    name = name.replace(";", ":")
    if "(" in name:
        depth = 0
        after_dot = -1
        for i, c in enumerate(name):
            if c in "<{[":
                depth += 1
            elif c in ">}])":
                depth -= 1
            elif c == "(":
                go_method = after_dot == i  # net/http.(*Client).Do
                if depth == 0 and not go_method and not name.startswith(_ANON_NAMESPACE, i):
                    name = name[:i]
                    break
                depth += 1
            elif c == ".":
                after_dot = i + 1
    if "'" in name or '"' in name:
        name = name.replace("'", "").replace('"', "")
    return name


def fix_rust_symbol(symbol: str) -> str:
    """Repair legacy Rust symbols perf left half-demangled (C12), else return them unchanged.

    `foo..bar$LT$T$GT$::baz::h0123456789abcdef` -> `foo::bar<T>::baz`.
    """
    if len(symbol) < _RUST_HASH_LEN:
        return symbol
    tail = symbol[-_RUST_HASH_LEN:]
    if tail[0] != "h" or not _HEX.issuperset(tail[1:]):
        return symbol
    rest = symbol[:-_RUST_HASH_LEN]
    if rest.endswith("::"):
        rest = rest[:-2]
    if rest.startswith("_$"):
        rest = rest[1:]
    out = []
    while rest:
        if rest[0] == ".":
            if rest[1:2] == ".":
                out.append("::")
                rest = rest[2:]
            else:
                out.append(".")
                rest = rest[1:]
        elif rest[0] == "$":
            for code, char in _RUST_ESCAPES:
                if rest.startswith(code):
                    out.append(char)
                    rest = rest[len(code):]
                    break
            else:
                out.append(rest)
                break
        else:
            cut = len(rest)
            for stop in ("$", "."):
                at = rest.find(stop)
                if 0 <= at < cut:
                    cut = at
            out.append(rest[:cut])
            rest = rest[cut:]
    return "".join(out)


def _is_kernel(frame: Frame) -> bool:
    """perl/inferno `--kernel`: kernel DSOs, and any other `[...]` DSO such as `[vdso]`."""
    if frame.kind == "kernel":
        return True
    dso = frame.dso
    if frame.kind in ("jit", "bpf") or not dso or dso == "[unknown]":
        return False
    return dso.startswith("[") or dso.endswith(".ko") or is_vmlinux(dso)


def _num(value: int) -> str:
    return "?" if value < 0 else str(value)
