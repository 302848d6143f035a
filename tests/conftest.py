"""Test-session set-up: the rule-validation cache goes to a temporary directory, not ~/.cache.

Otherwise the suite would write the user's cache, and a file validated there by one run would
skip jsonschema in the next, so the validation path would depend on what ran before.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_CACHE = tempfile.mkdtemp(prefix="advisor-test-cache-")


def pytest_configure(config) -> None:
    os.environ["XDG_CACHE_HOME"] = _CACHE  # also for the `advise` subprocesses the tests start


def pytest_unconfigure(config) -> None:
    shutil.rmtree(_CACHE, ignore_errors=True)
