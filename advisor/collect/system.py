"""Read-only snapshot of the system settings that decide network-server throughput.

`collect_system_state()` produces the `system.json` of a recording bundle (docs/DESIGN.md).
Each section, and each field inside one, is either a value or {"error": "<why>"}; nothing here
changes the host and nothing raises.
"""

from __future__ import annotations


from .probes.audit import audit_state
from .probes.build import build_flags
from .probes.common import error, is_error, probe
from .probes.kernel import cpu_info, kernel_info, mitigations_raw, mitigations_view
from .probes.netns import namespace_sections, sections_in_namespace
from .probes.processes import irqbalance_state, processes_state, workers_summary

__all__ = ["collect_system_state", "is_error"]


@probe
def _processes(pids, comm):
    return processes_state(pids, comm)


def _build(processes, binaries) -> dict:
    """Build flags of each distinct executable of the target processes (and of ``binaries``)."""
    paths = list(binaries or [])
    if isinstance(processes, list):
        paths += [p["exe"] for p in processes if p.get("exe") and p["exe"] not in paths]
    return {path: build_flags(path) for path in paths}


def collect_system_state(pids=None, comm=None, netns=None, binaries=None) -> dict:
    """Every probe once. ``netns``: read netfilter, net and packet_sockets inside that namespace."""
    kernel = kernel_info()
    cpu = cpu_info()
    raw = mitigations_raw()
    processes = _processes(pids, comm)
    state = {
        "kernel": kernel,
        "cpu": cpu,
        "mitigations": raw,
        "mitigations_view": mitigations_view(raw, kernel.get("cmdline", "")),
        "audit": audit_state(),
        "processes": processes,
        "workers": (workers_summary(processes, cpu.get("count")) if isinstance(processes, list)
                    else error("no processes")),
        "irqbalance": irqbalance_state(),
        "build": _build(processes, binaries),
    }
    state.update(sections_in_namespace(netns) if netns else namespace_sections())
    if netns:
        state["netns"] = netns
    return state


if __name__ == "__main__":  # python -m advisor.collect.system [--comm NAME] [--netns NAME] [PID...]
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pids", nargs="*", type=int)
    parser.add_argument("--comm")
    parser.add_argument("--netns")
    args = parser.parse_args()
    print(json.dumps(collect_system_state(args.pids, args.comm, args.netns), indent=2))
