"""The one object rules read: the profile, system state and counters, each with why it is missing.

A rule never knows whether this came from a live box or a recording bundle.
"""

from __future__ import annotations

from .profile import Profile


class Evidence:
    __slots__ = ("profile", "system", "counters", "meta", "source", "missing")

    def __init__(self, profile: Profile, system: dict | None = None, counters: dict | None = None,
                 meta: dict | None = None, source: str = "", missing: dict[str, str] | None = None):
        self.profile = profile
        self.system = system
        self.counters = counters
        self.meta = {} if meta is None else meta
        self.source = source
        #: why a part is absent, e.g. {"system": "no system.json in this recording"}
        self.missing = {} if missing is None else missing

    def __repr__(self) -> str:
        return f"<Evidence {self.source!r}: {self.profile.samples} samples>"

    def why_missing(self, part: str) -> str:
        return self.missing.get(part, f"no {part} data in this recording")

    @property
    def cpu_count(self) -> int | None:
        cpu = (self.system or {}).get("cpu")
        for n in ((cpu or {}).get("count") if isinstance(cpu, dict) else None, self.meta.get("cpus")):
            if isinstance(n, int) and not isinstance(n, bool) and n > 0:
                return n
        return len(self.profile.cpu_stats()) or None
