"""Where the bundled data (rules/, samples/) lives: a source checkout or an installed package."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

from .errors import EnvironmentProblem


def _candidates(name: str) -> Iterator[Path]:
    """In the order they are tried; sysconfig is imported only when the first two miss."""
    env = os.environ.get("ADVISOR_DATA")
    if env:
        yield Path(env) / name
    yield Path(__file__).resolve().parent.parent / name  # source checkout / editable install
    import sysconfig

    yield Path(sysconfig.get_path("data")) / "share" / "advisor" / name  # pip install
    yield Path(sys.prefix) / "share" / "advisor" / name


def data_dir(name: str) -> Path:
    """Return the directory `name` ('rules' or 'samples'), wherever the package was installed from."""
    for path in _candidates(name):
        if path.is_dir():
            return path
    raise EnvironmentProblem(f"cannot find the bundled {name}/ directory (looked in "
                             + ", ".join(str(p) for p in _candidates(name)) + ")")


def rules_dir() -> Path:
    return data_dir("rules")


def samples_dir() -> Path:
    return data_dir("samples")
