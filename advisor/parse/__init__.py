"""Sample parsers: perf script text, folded stacks, perf.data; format detection; folded output.

    >>> from advisor.parse import read_samples, fold   # doctest: +SKIP
    >>> table = read_samples("perf.script.gz")         # doctest: +SKIP
"""

__all__ = ["fold", "read_samples"]


def __getattr__(name: str):
    """Import on first use: `advise analyze perf.data` starts perf before it needs a parser."""
    if name == "fold":
        from .collapse import fold

        return fold
    if name == "read_samples":
        from .detect import read_samples

        return read_samples
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
