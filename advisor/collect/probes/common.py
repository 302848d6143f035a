"""Helpers shared by the probes: bounded subprocesses, file reads, and the error convention."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
from typing import Any, Callable

# Where a missing command comes from, so the error tells the user what to install.
DEBIAN_PACKAGE = {
    "iptables-save": "iptables",
    "ip6tables-save": "iptables",
    "iptables-legacy-save": "iptables",
    "ip6tables-legacy-save": "iptables",
    "nft": "nftables",
    "tc": "iproute2",
    "ip": "iproute2",
    "ethtool": "ethtool",
    "auditctl": "auditd",
}


# The namespace child (netns.py) runs its tools in its own process group, so that the parent's
# kill of that group on timeout also ends them; everywhere else each tool gets its own group.
IN_PROBE_CHILD = os.environ.get("ADVISOR_PROBE_CHILD") == "1"


class ProbeError(Exception):
    """A probe could not read what it wanted; the message becomes the ``error`` entry."""


def error(why: str) -> dict:
    return {"error": why}


def is_error(value: Any) -> bool:
    """True when a section or a field is an ``{"error": ...}`` entry instead of a value."""
    return isinstance(value, dict) and set(value) == {"error"}


def probe(function: Callable[..., Any]) -> Callable[..., Any]:
    """Make a probe total: ProbeError and any unexpected exception become an error entry."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ProbeError as exc:
            return error(str(exc))
        except Exception as exc:  # a probe must never take the whole collection down
            return error(f"{function.__name__}: {type(exc).__name__}: {exc}")

    return wrapper


def missing_tool(tool: str) -> str:
    name = os.path.basename(tool)
    package = DEBIAN_PACKAGE.get(name)
    return f"{name} missing (Debian package {package})" if package else f"{tool} missing"


def run(argv: list[str], timeout: float = 2.0, ok_codes: tuple[int, ...] = (0,),
        env: dict[str, str] | None = None) -> str:
    """Run a command (argument list, own process group) and return its stdout.

    Raises ProbeError with a readable reason: tool missing, not root, timeout, or its stderr.
    The whole process group is killed on timeout or interruption so nothing is left behind.
    """
    try:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=not IN_PROBE_CHILD,
            env={**os.environ, **(env or {}), "LC_ALL": "C"},
        )
    except FileNotFoundError:
        raise ProbeError(missing_tool(argv[0])) from None
    except PermissionError:
        raise ProbeError(f"{argv[0]} not executable") from None
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ProbeError(f"{' '.join(argv)} timed out after {timeout:g} s") from None
    finally:
        # Not advisor.proc.kill_group: the namespace child imports this package alone, as
        # top-level `probes` (see netns.py), where advisor is not importable.
        if child.poll() is None:
            try:
                if IN_PROBE_CHILD:
                    child.kill()
                else:
                    os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait()
    if child.returncode not in ok_codes:
        message = err.decode(errors="replace").strip().splitlines()
        first = message[0] if message else f"exit status {child.returncode}"
        if any(word in first for word in ("Permission denied", "Operation not permitted")):
            first = f"not root? {first}"
        raise ProbeError(f"{os.path.basename(argv[0])}: {first}")
    return out.decode(errors="replace")


def read_text(path: str) -> str:
    """Read a small text file; reasons for failure become ProbeError messages."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        raise ProbeError(f"{path} absent") from None
    except PermissionError:
        raise ProbeError(f"{path}: permission denied (not root?)") from None
    except OSError as exc:
        raise ProbeError(f"{path}: {exc.strerror or exc}") from None


def read_int(path: str) -> int:
    text = read_text(path).strip()
    try:
        return int(text)
    except ValueError:
        raise ProbeError(f"{path}: not an integer: {text[:40]!r}") from None


def pids() -> list[int]:
    """All process ids visible in /proc (threads excluded)."""
    return sorted(int(name) for name in os.listdir("/proc") if name.isdigit())
