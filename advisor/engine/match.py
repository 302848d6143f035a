"""Symbol families: the names a cost goes by across kernel versions, matched as globs.

A family compiles its globs into one regular expression and remembers every symbol it has
judged, so matching a profile costs one regex run per distinct symbol.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable


class SymbolFamily:
    """A set of glob patterns (`nf_hook_slow`, `nft_do_chain*`, `srso_*return_thunk`)."""

    __slots__ = ("patterns", "_regex", "_cache")

    def __init__(self, patterns: Iterable[str]):
        self.patterns = tuple(patterns)
        if self.patterns:
            joined = "|".join(f"(?:{fnmatch.translate(p)})" for p in self.patterns)
            self._regex = re.compile(joined)
        else:
            self._regex = None
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __repr__(self) -> str:
        return f"SymbolFamily({list(self.patterns)!r})"

    def matches(self, symbol: str) -> bool:
        hit = self._cache.get(symbol)
        if hit is None:
            hit = bool(self._regex is not None and self._regex.match(symbol))
            self._cache[symbol] = hit
        return hit


def family(patterns: Iterable[str] | str | None) -> SymbolFamily:
    """Accept one pattern, a list, or None (the empty family)."""
    if patterns is None:
        return SymbolFamily(())
    if isinstance(patterns, str):
        return SymbolFamily((patterns,))
    return patterns if isinstance(patterns, SymbolFamily) else SymbolFamily(patterns)


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
