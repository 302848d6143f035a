"""Recording bundles: a directory with the samples, system.json, counters.json and meta.json.

It is what `advise run --save` writes, what CI replays and what samples/ holds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import input_lines
from .errors import InputError, unreadable
from .model import StackTable
from .paths import not_a_regular_file

SAMPLE_FILES = ("perf.script.gz", "perf.script", "perf.folded.gz", "perf.folded", "perf.data")
#: Every file a bundle may hold (what `advise run --save` writes, and what is read back).
BUNDLE_FILES = SAMPLE_FILES + ("meta.json", "system.json", "counters.json")
FORMAT = "advisor-bundle/1"


def is_bundle(path: Path) -> bool:
    """A directory of bundle files only, meta.json among them: what `advise run --save` (or the
    lab's --record) wrote, and may write again. Anything else is not ours to replace."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        return False
    return (any(entry.name == "meta.json" for entry in entries)
            and all(entry.name in BUNDLE_FILES and entry.is_file(follow_symlinks=False) for entry in entries))

#: meta.json fields whose type is checked when present (a wrong type is an input error).
META_TYPES = {"cpus": int, "duration_s": (int, float), "host": str, "kernel": str, "scenario": str,
              "target": dict, "load": dict, "perf": dict, "created": str, "format": str,
              "measured": dict}


class Bundle:
    """A bundle's files as read: meta, system and counters (None when absent, and why in
    `missing`), and the samples file, read later (read_samples)."""

    __slots__ = ("path", "samples_path", "meta", "system", "counters", "missing")

    def __init__(self, path: Path, samples_path: Path, meta: dict | None = None, system: dict | None = None,
                 counters: dict | None = None, missing: dict[str, str] | None = None):
        self.path = path
        self.samples_path = samples_path
        self.meta: dict = {} if meta is None else meta
        self.system = system
        self.counters = counters
        self.missing: dict[str, str] = {} if missing is None else missing

    def __repr__(self) -> str:
        return f"<Bundle {str(self.path)!r}>"


def read_json(path: Path) -> dict:
    """A JSON object from a file; a syntax error names the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", str(path)) from None
    except OSError as exc:
        raise unreadable(exc, str(path)) from None
    try:
        data = json.loads(text, parse_constant=input_lines.refuse_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} (column {exc.colno})", str(path), exc.lineno) from None
    except input_lines.NotFinite as exc:
        raise InputError(f"invalid JSON: {exc} is not a number JSON allows", str(path),
                         input_lines.json_constant(text)) from None
    except RecursionError:
        raise InputError("invalid JSON: nested too deeply to read (deepest here)", str(path),
                         input_lines.json_deepest(text)) from None
    except ValueError:  # an integer of over 4300 digits, which Python refuses to read
        raise InputError("invalid JSON: a number too long to read", str(path),
                         input_lines.json_long_number(text)) from None
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object, found {type(data).__name__}", str(path), 1)
    return data


#: Nested meta.json fields the reports show: (section, field) -> expected type.
META_NESTED = {("load", "tool"): str, ("load", "requests_per_sec"): (int, float), ("target", "comm"): str,
               ("target", "pid"): int, ("target", "cgroup"): str, ("target", "scoped"): bool}


def _check_meta(meta: dict, path: Path) -> None:
    layout = meta.get("format", FORMAT)  # a bundle made by hand may not say: it is read as ours
    if layout != FORMAT:  # another layout (a later advisor's): its fields could be misread silently
        raise InputError(f"field format: {str(layout)[:80]!r} is not a layout this advisor reads ({FORMAT})",
                         str(path))
    for key, kind in META_TYPES.items():
        if key in meta and meta[key] is not None and not isinstance(meta[key], kind):
            wanted = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise InputError(f"field {key}: expected {wanted}, found {type(meta[key]).__name__}", str(path))
        if key == "cpus" and isinstance(meta.get(key), bool):
            raise InputError("field cpus: expected int, found bool", str(path))
    for (section, key), kind in META_NESTED.items():
        value = (meta.get(section) or {}).get(key) if isinstance(meta.get(section), dict) else None
        if value is not None and (isinstance(value, bool) != (kind is bool) or not isinstance(value, kind)):
            wanted = kind.__name__ if isinstance(kind, type) else "number"
            raise InputError(f"field {section}.{key}: expected {wanted}, found {type(value).__name__}", str(path))


def open_bundle(directory: Path) -> Bundle:
    """Find the parts of a bundle; samples are required, the rest say why they are absent."""
    directory = Path(directory)
    samples = next((directory / n for n in SAMPLE_FILES if (directory / n).is_file()), None)
    if samples is None:
        raise InputError("not a recording bundle: no samples file (" + ", ".join(SAMPLE_FILES) + ")",
                         str(directory))
    bundle = Bundle(directory, samples)
    for part in ("meta", "system", "counters"):
        path = directory / f"{part}.json"
        if path.is_file():
            data = read_json(path)
            if part == "meta":
                _check_meta(data, path)
            setattr(bundle, part, data)
        elif os.path.lexists(path):  # there, but no file to read: not "absent", and a FIFO would block
            raise InputError(not_a_regular_file(path), str(path))
        else:
            bundle.missing[part] = f"{part}.json is not in the recording {directory}"
    if bundle.meta is None:
        bundle.meta = {}
    return bundle


def read_samples(bundle: Bundle, **kwargs) -> StackTable:
    from .parse.detect import read_samples as read_file

    return read_file(bundle.samples_path, **kwargs)
