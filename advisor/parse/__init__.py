"""Sample parsers: perf script text, folded stacks, perf.data; format detection; folded output.

    >>> from advisor.parse import read_samples, fold   # doctest: +SKIP
    >>> table = read_samples("perf.script.gz")         # doctest: +SKIP
"""

from .collapse import fold
from .detect import read_samples

__all__ = ["fold", "read_samples"]
