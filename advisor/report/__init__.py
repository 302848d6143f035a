"""Reports: render the result dict (docs/DESIGN.md, 'Result dict') as JSON, Markdown, rich or a script.

The renderers compute nothing; they only format. The few formatting rules they share live here
so that a gain reads the same in every report. This module imports nothing heavy (no rich).
"""

from __future__ import annotations

import re

BOTTLENECK_TEXT = {
    "all-saturated": "every CPU is saturated",
    "some-saturated": "some CPUs are saturated",
    "not-cpu-bound": "not CPU-bound",
    "unknown": "bottleneck unknown",
}


def number(value: float, scale: float | None = None) -> str:
    """Whole numbers from 10 up, one decimal below (0.3 must not read as 0).

    `scale` picks the precision for several numbers shown together (a range), so both ends match.
    """
    return f"{value:.0f}" if abs(value if scale is None else scale) >= 10 else f"{value:.1f}"


def pct(value: float | None) -> str:
    """A share or utilisation with one decimal; '?' when unknown."""
    return "?" if value is None else f"{value:.1f}%"


def gain(rec: dict) -> str:
    """'+22.1% (17–26)': the estimate, then the low–high range."""
    scale = max(abs(rec["gain_low_pct"]), abs(rec["gain_high_pct"]))
    low, high = number(rec["gain_low_pct"], scale), number(rec["gain_high_pct"], scale)
    return f"+{rec['estimated_gain_pct']:.1f}% ({low}–{high})"


def bottleneck(profile: dict) -> str:
    """One line: what limits throughput, with the CPUs concerned and the engine's note."""
    neck = profile["bottleneck"]
    text = BOTTLENECK_TEXT[neck["kind"]]
    if neck["cpus"] and neck["kind"] == "some-saturated":
        text += " (CPU " + ", ".join(str(cpu) for cpu in neck["cpus"]) + ")"
    return f"{text} — {neck['note']}" if neck["note"] else text


def samples(profile: dict) -> str:
    """'19,874 cpu-clock samples over 10.0 s' (the duration only when known)."""
    text = f"{profile['samples']:,} {profile['event']} samples"
    if profile["duration_s"] is not None:
        text += f" over {profile['duration_s']:.1f} s"
    return text


def load(result: dict) -> str | None:
    """'wrk, 224,310 req/s' when the recording was made under a known load, else None."""
    known = result.get("load") or {}
    parts = [known.get("tool") or ""]
    if known.get("requests_per_sec") is not None:
        parts.append(f"{known['requests_per_sec']:,.0f} req/s")
    text = ", ".join(part for part in parts if part)
    return text or None


def reference(rec: dict) -> str:
    """The case study reference: section, reported gain, what was observed there."""
    ref = rec["reference"]
    parts = [ref["section"]]
    if ref["reported_gain_pct"] is not None:
        parts.append(f"reported gain {ref['reported_gain_pct']:+.1f}%")
    if ref["observed"]:
        parts.append(f"observed: {ref['observed']}")
    return "; ".join(parts)


def one_line(text: str) -> str:
    """Inline contexts (table cells, comments, headings) cannot hold a line break."""
    return " ".join(text.split())


#: Characters a report never prints as they are: C0 and C1 controls but tab and newline (ESC
#: starts terminal escape sequences), line and paragraph separators, and the invisible ones
#: that reorder or hide text (bidi marks, overrides and isolates, zero-width characters, BOM).
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def printable(text: str) -> str:
    """`text` with the characters above written as escapes (`\\x1b`, `\\u202e`).

    Symbol, process and file names come from whoever wrote the program or named the process:
    a name holding ESC [ 2 J would clear the terminal of whoever reads the report, and U+202E
    would show a line in another order than it reads.
    """
    if text.isprintable():  # the common case, in C
        return text
    return _UNPRINTABLE.sub(_escape, text)


def unprintable_in(text: str) -> str | None:
    """The first character of `text` that `printable` would escape, as that escape; None if none."""
    if text.isprintable():
        return None
    found = _UNPRINTABLE.search(text)
    return None if found is None else _escape(found)


def _escape(m: re.Match) -> str:
    code = ord(m[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable_data(value):
    """A copy of a result dict (or list) with every string `printable`."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable_data(k): printable_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable_data(v) for v in value]
    return value
