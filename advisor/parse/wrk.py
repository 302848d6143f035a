"""wrk's summary as numbers: the load generator's output, read by `advise run --during` and the lab.

A parser, so it lives with the parsers: the collector must not depend on the lab to read it.
"""

from __future__ import annotations

import math
import re

from ..errors import EnvironmentProblem

_TIME_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_NUM = r"([0-9.]+)"


def _number(text: str) -> float:
    """A finite float (ValueError otherwise: '1.2.3', or 400 digits, which float reads as inf)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text[:40]!r}")
    return value


def _ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return _number(m.group(1)) * _TIME_UNITS[m.group(2)]


def _bytes(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(B|KB|MB|GB|TB)", text)
    if not m:
        raise ValueError(f"not a wrk size: {text!r}")
    return _number(m.group(1)) * _SIZE_UNITS[m.group(2)]


def parse_wrk(text: str) -> dict:
    """wrk's summary as numbers: rps, transfer, latency (ms, with percentiles), errors."""
    out: dict = {"requests_per_sec": None, "transfer_bytes_per_sec": None, "requests": None,
                 "elapsed_s": None, "read_bytes": None, "latency_ms": {},
                 "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0, "non_2xx_3xx": 0}}
    for line in text.splitlines():
        try:
            _read_line(line.strip(), out)
        except ValueError:  # a field wrk never prints so (the --during command may be anything):
            continue        # left out, as an absent line would be
    if out["requests_per_sec"] is None:
        raise EnvironmentProblem(f"wrk printed no Requests/sec line: {text.strip()[-200:]!r}")
    return out


def _read_line(s: str, out: dict) -> None:
    """One line of wrk's summary into `out`; ValueError for a number that cannot be read."""
    if m := re.match(r"Requests/sec:\s+" + _NUM, s):
        out["requests_per_sec"] = _number(m.group(1))
    elif m := re.match(r"Transfer/sec:\s+(\S+)", s):
        out["transfer_bytes_per_sec"] = _bytes(m.group(1))
    elif m := re.match(r"(\d+) requests in (\S+), (\S+) read", s):
        out.update(requests=int(m.group(1)), elapsed_s=_ms(m.group(2)) / 1e3, read_bytes=_bytes(m.group(3)))
    elif m := re.match(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)\s+", s):
        out["latency_ms"].update(avg=_ms(m.group(1)), stdev=_ms(m.group(2)), max=_ms(m.group(3)))
    elif m := re.match(r"(50|75|90|99)%\s+(\S+)$", s):
        out["latency_ms"][f"p{m.group(1)}"] = _ms(m.group(2))
    elif m := re.match(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", s):
        out["errors"].update(dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()))))
    elif m := re.match(r"Non-2xx or 3xx responses: (\d+)", s):
        out["errors"]["non_2xx_3xx"] = int(m.group(1))
