"""advisor: profiling-driven tuning advisor for Linux network servers.

    >>> import advisor
    >>> from advisor.paths import samples_dir
    >>> result = advisor.analyze(samples_dir() / "netfilter")
    >>> result.recommendations.loc[0, "rule"]                 # a pandas DataFrame, ranked
    'netfilter'
    >>> result.recommendation("netfilter").matched["symbol"].tolist()[:1]
    ['nf_hook_slow']
    >>> result.profile.top(3)["symbol"].tolist()
    ['nft_do_chain', 'nft_meta_get_eval', '_raw_spin_unlock_irqrestore']
    >>> change = advisor.diff(samples_dir() / "netfilter", samples_dir() / "baseline")
    >>> change.recommendation("netfilter")["status"]
    'disappeared'
"""

__version__ = "0.1.0"

from .errors import AdvisorError, EnvironmentProblem, InputError, UsageError  # noqa: E402
from .model import Frame, StackKey, StackTable  # noqa: E402
from .profile import Profile  # noqa: E402
from .analysis import Result, analyze, analyze_evidence, load  # noqa: E402



# Imported before the functions below shadow their names: importing a submodule sets the package
# attribute of its name, so a lazy import would replace `advisor.run` (the function) with the module.
from . import run as _run_module  # noqa: E402


def run(*args, **kwargs):
    """Collect on this box for one window and analyse it (see advisor.run.run); needs root."""
    return _run_module.run(*args, **kwargs)


from . import diff as _diff_module  # noqa: E402


def diff(before, after, **kwargs):
    """Compare two recordings or results (see advisor.diff.diff): symbol shares, recommendations,
    throughput.

    >>> from advisor.paths import samples_dir
    >>> change = diff(samples_dir() / "netfilter", samples_dir() / "baseline")
    >>> change.throughput["change_pct"] > 0
    True
    """
    return _diff_module.diff(before, after, **kwargs)


__all__ = ["run", "diff", "AdvisorError", "EnvironmentProblem", "InputError", "UsageError", "Frame", "StackKey",
           "StackTable", "Profile", "Result", "analyze", "analyze_evidence", "load", "__version__"]
