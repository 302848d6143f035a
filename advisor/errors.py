"""Errors the user can act on: one line each, with the exit code the CLI returns."""

from __future__ import annotations

#: Control characters but tab, as `\xNN` (a table, not a regex: this module is imported before
#: `advise analyze` starts perf, and `re` takes ~10 ms to import).
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0a, 0x20), 0x7f)}


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


def limit_reached(exc: BaseException) -> str | None:
    """The one line for an error that is a limit of the machine, reached (memory, open files, disk
    space: an environment problem, exit 3), or None for any other error (a bug)."""
    import errno  # built into the interpreter

    memory = "out of memory: see `ulimit -v` and the cgroup's memory.max"
    if isinstance(exc, MemoryError):
        return memory
    if isinstance(exc, RuntimeError) and str(exc) == "can't start new thread":
        return f"out of memory ({exc}): see `ulimit -v`, `ulimit -u` and the cgroup's memory.max"
    if isinstance(exc, ImportError):
        # an extension module that dlopen() could not load says why in the C library's words
        # only ("zlib...so: cannot open shared object file: Too many open files"): no errno
        import os

        for number in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
            if str(exc).endswith(os.strerror(number)):
                return limit_reached(OSError(number, os.strerror(number)))
        return None
    if not isinstance(exc, OSError):
        return None
    if exc.errno == errno.ENOMEM:
        return memory
    if exc.errno == errno.EMFILE:
        import resource

        allowed = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return f"too many open files: this process may have {allowed} open at once (`ulimit -n`)"
    if exc.errno == errno.ENFILE:
        return "too many open files on this machine (the kernel's fs.file-max)"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or 'no space left on device'}{where}"
    return None


def unreadable(exc: OSError, path: str, what: str = "cannot read") -> AdvisorError:
    """The error for a file that could not be opened or read: a limit of the machine reached
    (open files, memory: exit 3), or the file's own problem (missing, permission: exit 2)."""
    problem = limit_reached(exc)
    if problem is not None:
        return EnvironmentProblem(f"{path}: {what}: {problem}")
    return InputError(f"{what}: {exc.strerror or exc}", path)


def excerpt(text: str, limit: int = 80) -> str:
    """A piece of a bad input line for a one-line message: ASCII, control characters (form feed,
    ESC, ...) escaped, cut to `limit` characters. Only the first `limit` characters are escaped
    (escaping only lengthens, so the cut is the same): a megabyte-long line costs no more."""
    cut = len(text) > limit
    text = text[:limit].encode("ascii", "backslashreplace").decode("ascii")
    text = text.translate(_ESCAPES)
    return text[:limit] + "..." if cut or len(text) > limit else text
