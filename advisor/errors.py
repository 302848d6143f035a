"""Errors the user can act on: one line each, with the exit code the CLI returns."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class AdvisorError(Exception):
    """Base class: a problem reported as one line, never as a traceback."""

    exit_code = 2


class InputError(AdvisorError):
    """A file or value given by the user is malformed (exit 2). Names the file and line."""

    exit_code = 2

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path, self.line, self.reason = path, line, message
        where = path or ""
        if path and line:
            where = f"{path}:{line}"
        super().__init__(f"{where}: {message}" if where else message)


class UsageError(AdvisorError):
    """The command line is wrong (exit 2)."""

    exit_code = 2


class EnvironmentProblem(AdvisorError):
    """Something the machine lacks: a tool, a permission, a kernel feature (exit 3)."""

    exit_code = 3


def excerpt(text: str, limit: int = 80) -> str:
    """A piece of a bad input line for a one-line message: ASCII, control characters (form feed,
    ESC, ...) escaped, cut to `limit` characters. Only the first `limit` characters are escaped
    (escaping only lengthens, so the cut is the same): a megabyte-long line costs no more."""
    cut = len(text) > limit
    text = text[:limit].encode("ascii", "backslashreplace").decode("ascii")
    text = _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)
    return text[:limit] + "..." if cut or len(text) > limit else text
