"""Export a profile for other tools: FlameGraph folded stacks, or speedscope's JSON file format.

Both carry every sample of the analysed event that passes the profile's --comm/--pid filters,
idle included (the other tools show it; advisor's own shares leave it out). Folded lines come
from `advisor.parse.collapse.fold`, so they match FlameGraph's stackcollapse-perf.pl output.
Speedscope gets a "sampled" profile (https://www.speedscope.app/file-format-schema.json): one
sample per distinct stack, weighted by its period sum, the process name as the root frame.
"""

from __future__ import annotations

import json

from .. import __version__
from ..errors import UsageError
from ..model import StackTable
from ..parse.collapse import fold

KINDS = ("folded", "speedscope")
SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"
#: Events whose period is a duration in nanoseconds.
TIME_EVENTS = ("cpu-clock", "task-clock")


def render(profile, kind: str) -> str:
    """The profile as text in `kind` ('folded' or 'speedscope')."""
    if kind == "folded":
        return folded(profile)
    if kind == "speedscope":
        return json.dumps(speedscope(profile), separators=(",", ":")) + "\n"
    raise UsageError(f"unknown export {kind!r} (known: {', '.join(KINDS)})")


def selected_table(profile) -> StackTable:
    """The profile's event and selected rows only, as a table of their own."""
    table = StackTable(profile.table.source)
    has_period = profile.table.has_period.get(profile.event, False)
    for key, (count, weight) in profile.table.rows.items():
        if key.event == profile.event and profile.selects(key.comm, key.pid, key.tid):
            table.add(key, count, weight if has_period else 0)
    return table


def folded(profile) -> str:
    """FlameGraph folded stacks (`comm;root;...;leaf weight`), one per line."""
    lines = fold(selected_table(profile), event=profile.event)
    return "".join(line + "\n" for line in lines)


def speedscope(profile) -> dict:
    """A speedscope file (dict): shared frames, one sampled profile of the analysed event."""
    table = selected_table(profile)
    frames: list[dict] = []
    index: dict[tuple[str, str], int] = {}

    def frame_id(name: str, file: str) -> int:
        key = (name, file)
        if key not in index:
            index[key] = len(frames)
            frames.append({"name": name, "file": file} if file else {"name": name})
        return index[key]

    stacks: dict[tuple[int, ...], int] = {}
    for key, (_count, weight) in table.rows.items():
        ids = (frame_id(key.comm, ""),) + tuple(frame_id(f.symbol or "[unknown]", f.dso) for f in key.frames)
        stacks[ids] = stacks.get(ids, 0) + weight
    samples = list(stacks)
    weights = [stacks[s] for s in samples]
    timed = profile.event in TIME_EVENTS and profile.table.has_period.get(profile.event, False)
    return {
        "$schema": SPEEDSCOPE_SCHEMA,
        "shared": {"frames": frames},
        "profiles": [{
            "type": "sampled",
            "name": f"{profile.source} ({profile.event})",
            "unit": "nanoseconds" if timed else "none",
            "startValue": 0,
            "endValue": sum(weights),
            "samples": [list(s) for s in samples],
            "weights": weights,
        }],
        "name": profile.source,
        "activeProfileIndex": 0,
        "exporter": f"advisor {__version__}",
    }
