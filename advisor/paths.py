"""Where the bundled data (rules/, samples/) lives: a source checkout or an installed package;
and what an input path is when it is no regular file."""

from __future__ import annotations

import os
import stat
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


def not_a_regular_file(path: str | os.PathLike) -> str | None:
    """Why `path` (symbolic links followed) cannot be read as a file, or None when it can: a
    directory or a missing target would fail late and vaguely, and a FIFO would block for ever."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if os.path.islink(path):
            return f"not a regular file but a symbolic link that leads nowhere ({exc.strerror})"
        return exc.strerror or str(exc)
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))
    return "not a regular file but " + next((name for test, name in kinds if test(mode)), "something else")
