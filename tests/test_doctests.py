"""The examples in the public API's docstrings run as written, on the bundled samples."""

from __future__ import annotations

import doctest
import importlib

import pytest

#: module -> the fewest examples it must hold (a docstring losing its examples fails here)
MODULES = {"advisor": 6, "advisor.analysis": 10, "advisor.profile": 15, "advisor.diff": 3}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0
    assert result.attempted >= MODULES[name]
