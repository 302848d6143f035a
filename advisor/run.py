"""run(): collect on this box for one window, then analyse exactly as `advise analyze` would.

The live recording is turned into the same Evidence a saved bundle gives (same profile, the same
JSON values for system state, counters and meta), so `advise run --save DIR` and
`advise analyze DIR` print the same recommendations.
"""

from __future__ import annotations

from pathlib import Path

from .analysis import Result, analyze_evidence
from .collect.perf import DEFAULT_FREQUENCY
from .collect.recorder import record
from .engine.rules import load_rules
from .evidence import Evidence
from .profile import Profile

DEFAULT_DURATION_S = 10.0


def run(duration: float = DEFAULT_DURATION_S, frequency: int = DEFAULT_FREQUENCY, comm: str | None = None,
        pid: int | None = None, netns: str | None = None, during: str | None = None,
        cgroup: str | None = None,
        save: str | Path | None = None, progress: bool = True,
        rules_dir: str | Path | None = None, bpf: bool | str = False, focus: str | None = None,
        replace: bool = False) -> Result:
    """Sample every CPU (or `pid`) for `duration` seconds with perf, read the kernel's counters,
    probe the system, and rank the remedies.

    comm / pid / cgroup: the target process(es) whose state and syscalls are read (pid with its
    descendants and cgroup also limit perf to them, and the estimates are scaled by their part of
    the busy time); netns: read the
    network-namespace probes (firewall, qdiscs, devices) inside that namespace; during: a load
    command run for the window (its throughput goes in the report); save: also write the
    recording bundle to that directory; bpf: also run the BPF/tracepoint counters (True, or a
    comma list of syscalls, softirq-time, tracepoints, runqlat, or "all"), which cost real
    throughput; by default the counters come from /proc only. focus: a comma list of programs
    whose samples the analysis reads (the lab's "nginx,wrk": shares of their busy time, not of
    unrelated processes on a shared machine); by default every sample.
    """
    rules = load_rules(Path(rules_dir) if rules_dir else None)
    recording = record(duration, frequency, comm=comm, pid=pid, cgroup=cgroup, netns=netns, during=during, save=save,
                       rules=rules, progress=progress, bpf=bpf, replace=replace)
    profile = Profile(recording.table, comm=focus)
    evidence = Evidence(profile, recording.system, recording.counters, recording.meta,
                        recording.table.source, recording.missing)
    return analyze_evidence(evidence, rules)  # which copies meta["collectors"] into the report

