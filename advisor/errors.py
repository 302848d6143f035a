"""Errors the user can act on: one line each, with the exit code the CLI returns."""

from __future__ import annotations


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
