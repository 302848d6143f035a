"""advisor: profiling-driven tuning advisor for Linux network servers.

    >>> import advisor
    >>> result = advisor.analyze("samples/netfilter")        # doctest: +SKIP
    >>> result.recommendations                                # a pandas DataFrame  # doctest: +SKIP
"""

__version__ = "0.1.0"

from .errors import AdvisorError, EnvironmentProblem, InputError, UsageError  # noqa: E402
from .model import Frame, StackKey, StackTable  # noqa: E402
from .profile import Profile  # noqa: E402
from .analysis import Result, analyze, analyze_evidence, load  # noqa: E402



def run(*args, **kwargs):
    """Collect on this box and analyse (see advisor.run.run)."""
    from .run import run as _run

    return _run(*args, **kwargs)


def diff(before, after, **kwargs):
    """Compare two recordings or results (see advisor.diff.diff)."""
    from .diff import diff as _diff

    return _diff(before, after, **kwargs)


__all__ = ["run", "diff", "AdvisorError", "EnvironmentProblem", "InputError", "UsageError", "Frame", "StackKey",
           "StackTable", "Profile", "Result", "analyze", "analyze_evidence", "load", "__version__"]
