"""Test-session set-up: the rule-validation cache goes to a temporary directory, not ~/.cache.

Otherwise the suite would write the user's cache, and a file validated there by one run would
skip jsonschema in the next, so the validation path would depend on what ran before.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

_CACHE = tempfile.mkdtemp(prefix="advisor-test-cache-")


def pytest_configure(config) -> None:
    os.environ["XDG_CACHE_HOME"] = _CACHE  # also for the `advise` subprocesses the tests start


def pytest_unconfigure(config) -> None:
    shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture
def small_tmpfs(tmp_path):
    """An 8 KiB tmpfs of its own, to fill a disk for real (needs root: mount)."""
    with tmpfs(tmp_path / "small", "8k") as mount:
        yield mount


@contextmanager
def tmpfs(mount: Path, size: str):
    """A tmpfs of `size` mounted at `mount` (made here) for the block; skips where mount fails."""
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                             capture_output=True, text=True, timeout=10)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True, timeout=10)
