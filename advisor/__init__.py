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

import sys
import types

from .errors import AdvisorError, EnvironmentProblem, InputError, UsageError  # noqa: E402

#: Imported when first used, so that `advise analyze` starts `perf script` sooner (the CLI
#: imports what it needs itself; even `typing`, for the model's named tuples, costs ~5 ms):
#: name -> submodule.
_LAZY = {"Profile": ".profile", "Result": ".analysis", "analyze": ".analysis",
         "analyze_evidence": ".analysis", "load": ".analysis",
         "Frame": ".model", "StackKey": ".model", "StackTable": ".model"}


def _submodule(name: str, package: str):
    import importlib  # here: with `warnings`, ~0.6 ms that `advise` would spend before starting perf

    return importlib.import_module(name, package)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'advisor' has no attribute {name!r}")
    value = getattr(_submodule(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def run(*args, **kwargs):
    """Collect on this box for one window and analyse it (see advisor.run.run); needs root."""
    return _submodule(".run", __name__).run(*args, **kwargs)


def diff(before, after, **kwargs):
    """Compare two recordings or results (see advisor.diff.diff): symbol shares, recommendations,
    throughput.

    >>> from advisor.paths import samples_dir
    >>> change = diff(samples_dir() / "netfilter", samples_dir() / "baseline")
    >>> change.throughput["change_pct"] > 0
    True
    """
    return _submodule(".diff", __name__).diff(before, after, **kwargs)


class _Package(types.ModuleType):
    """Keeps `advisor.run` and `advisor.diff` the functions above: importing the submodules of the
    same names would otherwise replace them (the import system sets the package's attribute)."""

    def __setattr__(self, name, value):
        if name in ("run", "diff") and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = ["run", "diff", "AdvisorError", "EnvironmentProblem", "InputError", "UsageError", "Frame", "StackKey",
           "StackTable", "Profile", "Result", "analyze", "analyze_evidence", "load", "__version__"]
