"""Symbol families: the names a cost goes by across kernel versions, matched as globs.

A family remembers every symbol it has judged, so matching a profile costs one judgement per
distinct symbol: a set lookup, a prefix test, or one regex run for globs of another shape.
`family()` hands out one family per set of patterns, so that memory is shared by every caller
that asks again.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable


class SymbolFamily:
    """A set of glob patterns (`nf_hook_slow`, `nft_do_chain*`, `srso_*return_thunk`).

    Most patterns are a name or a name's start: those are matched as a set and a tuple of
    prefixes, and only the others compile into a regular expression. Compiling every pattern
    took ~9 ms of the rules' ~12 ms of loading, on the CPU the parse shares while perf writes.
    """

    __slots__ = ("patterns", "_names", "_prefixes", "_regex", "_cache")

    def __init__(self, patterns: Iterable[str]):
        self.patterns = tuple(patterns)
        kinds = [_kind(p) for p in self.patterns]
        self._names = frozenset(p for p, kind in zip(self.patterns, kinds) if kind == "name")
        self._prefixes = tuple(p[:-1] for p, kind in zip(self.patterns, kinds) if kind == "prefix")
        globs = [p for p, kind in zip(self.patterns, kinds) if kind == "glob"]
        self._regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in globs)) if globs else None
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __repr__(self) -> str:
        return f"SymbolFamily({list(self.patterns)!r})"

    def _hits(self, symbols: list[str]) -> set[str]:
        """Those of `symbols` that match: a pass of the names, the prefixes and the regex each
        over all of them (judged one call at a time, the first analysis of a profile, every symbol
        new to every rule, took ~3 ms after perf's last line)."""
        hits = set(self._names.intersection(symbols))
        if self._prefixes:
            prefixes = self._prefixes
            hits.update([symbol for symbol in symbols if symbol.startswith(prefixes)])
        if self._regex is not None:
            match = self._regex.match
            hits.update([symbol for symbol in symbols if match(symbol) is not None])
        return hits

    def matches(self, symbol: str) -> bool:
        hit = self._cache.get(symbol)
        if hit is None:
            if len(self._cache) >= _MAX_JUDGED:  # checked on a miss only: the hit path stays one lookup
                self._cache.clear()
            hit = self._cache[symbol] = bool(self._hits([symbol]))
        return hit

    def pattern_of(self, symbol: str) -> str | None:
        """The first pattern `symbol` matches, or None (each pattern a family of its own)."""
        return next((pattern for pattern in self.patterns if family(pattern).matches(symbol)), None)

    def select(self, symbols: Iterable[str]) -> list[str]:
        """The symbols that match, in their order: `matches` for many symbols at once, those not
        judged yet judged together."""
        if not self.patterns:
            return []
        if len(self._cache) >= _MAX_JUDGED:
            self._cache.clear()
        symbols = symbols if isinstance(symbols, (list, tuple)) else list(symbols)
        cache = self._cache
        new = [symbol for symbol in symbols if symbol not in cache]
        if new:
            cache.update(dict.fromkeys(new, False))
            cache.update(dict.fromkeys(self._hits(new), True))
        return [symbol for symbol in symbols if cache[symbol]]


def _kind(pattern: str) -> str:
    """'name' (no wildcard), 'prefix' (one '*', at the end) or 'glob' (anything else fnmatch allows)."""
    wild = [i for i, char in enumerate(pattern) if char in "*?["]
    if not wild:
        return "name"
    return "prefix" if wild == [len(pattern) - 1] and pattern[-1] == "*" else "glob"


#: Families handed out by family(), by their patterns (bounded: rules and filters are few).
_FAMILIES: dict[tuple[str, ...], SymbolFamily] = {}
_MAX_FAMILIES = 512
#: A family forgets the symbols it has judged beyond this many (a long notebook session).
_MAX_JUDGED = 200_000


def family(patterns: Iterable[str] | str | None) -> SymbolFamily:
    """Accept one pattern, a list, or None (the empty family); the same patterns give the
    same family, whose cache of judged symbols is then shared."""
    if isinstance(patterns, SymbolFamily):
        return patterns
    key = () if patterns is None else (patterns,) if isinstance(patterns, str) else tuple(patterns)
    found = _FAMILIES.get(key)
    if found is None:
        if len(_FAMILIES) >= _MAX_FAMILIES:
            _FAMILIES.clear()
        found = _FAMILIES[key] = SymbolFamily(key)
    return found


def match_stack(
    symbols: tuple,
    target: SymbolFamily,
    under: SymbolFamily,
    exclude_below: SymbolFamily,
    self_only: bool,
) -> int:
    """Index of the frame that makes this stack count for the family, or -1.

    `symbols` is root first. Inclusive mode takes the outermost matching frame (so time is
    counted once however deep the recursion); self mode looks only at the leaf. `under`
    requires a matching ancestor; `exclude_below` drops the stack when a matching frame
    sits below the matched one (e.g. qdisc time that is really the driver's transmit).
    """
    n = len(symbols)
    if n == 0:
        return -1
    if self_only:
        start = n - 1
        if not target.matches(symbols[start]):
            return -1
        candidates = (start,)
    else:
        candidates = range(n)
    for i in candidates:
        if not target.matches(symbols[i]):
            continue
        if under and not any(under.matches(s) for s in symbols[:i]):
            continue
        if exclude_below and any(exclude_below.matches(s) for s in symbols[i + 1:]):
            return -1
        return i
    return -1
