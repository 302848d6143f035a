"""Record sample bundles: one per scenario, nginx under wrk load with one pathology injected.

    python -m advisor.lab.record OUTDIR [SCENARIO ...] [--duration S] [--frequency HZ]

For each scenario: build the testbed, inject, warm up, run wrk while ``perf record -a -g``
samples the whole machine, write ``perf.script.gz``, ``meta.json`` and ``system.json``.
Then, in the same session, measure throughput with and without the pathology in short
ABBA-ordered wrk rounds (the machine is noisy: interleaving spreads drift over both arms),
store the result in meta.json as ``measured``, remove the pathology and tear down.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from advisor.errors import AdvisorError, EnvironmentProblem
from advisor.lab import pathologies, seccomp_filter
from advisor.lab.testbed import Testbed, netns_argv, parse_wrk, require_root, require_tools, run, stop_process_group

BUNDLE_FORMAT = "advisor-bundle/1"


def perf_version() -> str:
    return run(["perf", "--version"]).stdout.strip()


def stop_perf(perf: subprocess.Popen, timeout_s: float = 20) -> None:
    """SIGINT lets perf write a complete perf.data; SIGKILL only if it does not stop."""
    if perf.poll() is None:
        try:
            os.killpg(perf.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            perf.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
    stop_process_group(perf, grace_s=2, sig=signal.SIGKILL)


def record_under_load(tb: Testbed, perf_data: str, duration_s: int, frequency: int,
                      connections: int, threads: int) -> tuple[list[str], dict]:
    """wrk runs one second longer than perf, which starts once wrk's connections are up.

    Returns perf's record arguments and wrk's parsed result.
    """
    record_args = ["perf", "record", "-e", "cpu-clock", "-a", "-g", "-F", str(frequency), "-o", perf_data,
                   "--", "sleep", str(duration_s)]
    wrk_cmd = tb.wrk_argv(duration_s + 1, connections, threads)
    wrk = subprocess.Popen(netns_argv(tb.client_ns, wrk_cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    perf = None
    try:
        time.sleep(0.5)
        perf = subprocess.Popen(record_args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        _, perf_err = perf.communicate(timeout=duration_s + 30)
        if perf.returncode != 0:
            raise EnvironmentProblem(f"perf record exited {perf.returncode}: {perf_err.strip().splitlines()[-1:]}")
        wrk_out, wrk_err = wrk.communicate(timeout=duration_s + 30)
        if wrk.returncode != 0:
            raise EnvironmentProblem(f"wrk exited {wrk.returncode}: {wrk_err.strip()}")
    finally:
        if perf is not None:
            stop_perf(perf)
        stop_process_group(wrk)
    load = parse_wrk(wrk_out)
    load["command"] = wrk_cmd
    load["output"] = wrk_out
    return record_args, load


def write_perf_script(perf_data: str, out_path: str, timeout_s: float = 300) -> int:
    """perf script streamed into gzip (never the whole text in memory); returns bytes written."""
    proc = subprocess.Popen(["perf", "script", "-i", perf_data], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    try:
        with gzip.open(out_path, "wb", compresslevel=9) as out:
            while chunk := proc.stdout.read(1 << 16):
                out.write(chunk)
                if time.monotonic() > deadline:
                    raise EnvironmentProblem(f"perf script took longer than {timeout_s} s")
        proc.wait(timeout=30)
        if proc.returncode != 0:
            raise EnvironmentProblem(f"perf script exited {proc.returncode} on {perf_data}")
    finally:
        stop_process_group(proc, grace_s=1)
    return os.path.getsize(out_path)


def abba_rounds(tb: Testbed, pathology, rounds: int, seconds: int, connections: int, threads: int) -> dict:
    """Throughput with (A) and without (B) the pathology, order A B B A A B B A ...

    Starts and ends with the pathology injected. gain_pct_median = median(without) / median(with) - 1.
    """
    order = [("A", "B") if r % 2 == 0 else ("B", "A") for r in range(rounds)]
    with_rps, without_rps, injected = [], [], True
    for pair in order:
        for arm in pair:
            want = arm == "A"
            if want != injected:
                (pathology.inject if want else pathology.remove)(tb)
                injected = want
            rps = tb.load(seconds, connections, threads)["requests_per_sec"]
            (with_rps if want else without_rps).append(rps)
    if not injected:
        pathology.inject(tb)
    return {**gain_summary(with_rps, without_rps), "order": "".join("".join(p) for p in order),
            "round_seconds": seconds}


def gain_summary(with_rps: list[float], without_rps: list[float]) -> dict:
    """Gain of removing the pathology, two ways (the i-th with/without runs are adjacent in ABBA order).

    gain_pct_median: median(without) / median(with) - 1. gain_pct_paired_median: median over the
    adjacent pairs of without/with - 1, less sensitive to slow drift of a shared machine.
    """
    pairs = [100.0 * (b / a - 1.0) for a, b in zip(with_rps, without_rps)]
    return {"with_pathology_rps": with_rps, "without_rps": without_rps,
            "gain_pct_median": round(100.0 * (statistics.median(without_rps) / statistics.median(with_rps) - 1.0), 2),
            "gain_pct_paired": [round(x, 2) for x in pairs],
            "gain_pct_paired_median": round(statistics.median(pairs), 2),
            "note": "gain_pct_median = median(without_rps) / median(with_pathology_rps) - 1; "
                    "gain_pct_paired_median = median of without/with - 1 over adjacent ABBA pairs; percent. "
                    "Shared noisy machine: compare with the baseline bundle, where both arms are identical."}


def _json_safe(value):
    """Pathology state holds tuples; JSON wants lists (and nothing exotic)."""
    return json.loads(json.dumps(value, default=str))


def system_state(tb: Testbed, pathology) -> dict:
    """The shared collector when it is there (advisor.collect.system), else our own short probe."""
    pids = tb.server_pids()
    try:
        from advisor.collect.system import collect_system_state
    except ImportError:
        state = fallback_system_state(tb, pids)
    else:
        try:
            state = collect_system_state(pids=pids, netns=tb.server_ns)
        except Exception as exc:  # noqa: BLE001 - the recording matters more than this section
            state = fallback_system_state(tb, pids)
            state["collector_error"] = f"advisor.collect.system failed: {exc}"
    state["lab"] = {"scenario": pathology.name, "pathology": _json_safe(pathology.describe()),
                    "pathology_state": _json_safe(pathology.state(tb)),
                    "server_ns": tb.server_ns, "client_ns": tb.client_ns, "server_dev": tb.server_dev,
                    "nginx_pids": pids,
                    "nginx_seccomp": [{"pid": p, **seccomp_filter.status_of(p)} for p in pids]}
    return _json_safe(state)


def fallback_system_state(tb: Testbed, pids: list[int]) -> dict:
    """Minimal system.json (docs/DESIGN.md sections) read directly, for when no collector exists."""
    def read(path: str) -> str:
        try:
            with open(path) as f:
                return f.read().strip()
        except OSError as exc:
            return f"<{exc.strerror}>"

    vuln_dir = "/sys/devices/system/cpu/vulnerabilities"
    save = tb.server_run(["iptables-save"], check=False).stdout
    nft = tb.server_run(["nft", "list", "ruleset"], check=False).stdout
    conntrack = tb.server_run(["sysctl", "-n", "net.netfilter.nf_conntrack_count"], check=False).stdout.strip()
    gro = pathologies.gro_enabled(tb, tb.server_ns, tb.server_dev)
    cc = tb.server_run(["sysctl", "-n", "net.ipv4.tcp_congestion_control"], check=False).stdout.strip()
    processes = []
    for pid in pids:
        processes.append({"pid": pid, "comm": read(f"/proc/{pid}/comm"),
                          "seccomp_mode": seccomp_filter.status_of(pid)["seccomp_mode"],
                          "seccomp_filters": seccomp_filter.status_of(pid)["seccomp_filters"]})
    return {
        "kernel": {"release": platform.release(), "cmdline": read("/proc/cmdline")},
        "cpu": {"count": os.cpu_count(), "online": read("/sys/devices/system/cpu/online")},
        "mitigations": {name: read(os.path.join(vuln_dir, name)) for name in sorted(os.listdir(vuln_dir))},
        "netfilter": {"iptables_rules": pathologies.count_rules(save),
                      "nft_rules": sum(1 for line in nft.splitlines() if line.startswith("\t\t")),
                      "conntrack_entries": int(conntrack) if conntrack.isdigit() else None},
        "processes": processes,
        "net": {"tcp_congestion_control": cc,
                "devices": {tb.server_dev: {"qdisc": pathologies.root_qdisc(tb, tb.server_ns, tb.server_dev),
                                            "gro": gro}}},
        "packet_sockets": pathologies.packet_sockets(pids[0]) if pids else [],
    }


def record_scenario(outdir: str, name: str, args) -> dict:
    """One bundle; returns a summary line for the report."""
    pathology = pathologies.make(name)
    bundle = os.path.join(outdir, name)
    work = tempfile.mkdtemp(prefix="advlab-rec-")
    try:
        with Testbed(prefix=args.prefix) as tb:
            reason = pathology.unavailable(tb)
            if reason:
                return {"scenario": name, "skipped": reason}
            pathology.inject(tb)
            tb.load(1, args.connections, args.threads)  # warm-up
            perf_data = os.path.join(work, "perf.data")
            record_args, load = record_under_load(tb, perf_data, args.duration, args.frequency,
                                                  args.connections, args.threads)
            system = system_state(tb, pathology)
            target_pid = tb.server_pids()[0]
            measured = abba_rounds(tb, pathology, args.rounds, args.round_seconds, args.connections, args.threads)
            described = _json_safe(pathology.describe())
            pathology.remove(tb)
            os.makedirs(bundle, exist_ok=True)
            size = write_perf_script(perf_data, os.path.join(bundle, "perf.script.gz"))
            meta = {
                "format": BUNDLE_FORMAT,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "host": socket.gethostname(),
                "kernel": platform.release(),
                "cpus": os.cpu_count(),
                "duration_s": args.duration,
                "target": {"comm": "nginx", "pid": target_pid},
                "scenario": name,
                "perf": {"version": perf_version(), "record_args": record_args},
                "load": {"tool": "wrk", "command": load["command"], "requests_per_sec": load["requests_per_sec"],
                         "latency_ms": load["latency_ms"], "errors": load["errors"], "output": load["output"]},
                "pathology": described,
                "measured": measured,
                "testbed": {"url": tb.url, "server_ns": tb.server_ns, "client_ns": tb.client_ns,
                            "server_dev": tb.server_dev, "nginx_workers": tb.workers,
                            "congestion_control": tb.congestion_control,
                            "wrk": {"connections": args.connections, "threads": args.threads}},
            }
            with open(os.path.join(bundle, "meta.json"), "w") as f:
                json.dump(meta, f, indent=2)
                f.write("\n")
            with open(os.path.join(bundle, "system.json"), "w") as f:
                json.dump(system, f, indent=2)
                f.write("\n")
            return {"scenario": name, "bundle": bundle, "perf_script_gz_bytes": size,
                    "requests_per_sec": load["requests_per_sec"], "measured": measured}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m advisor.lab.record", description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    parser.add_argument("scenarios", nargs="*", help=f"default: all of {', '.join(pathologies.PATHOLOGIES)}")
    parser.add_argument("--duration", type=int, default=5, help="seconds of perf sampling (default 5)")
    parser.add_argument("--frequency", type=int, default=499, help="perf sampling frequency in Hz (default 499)")
    parser.add_argument("--rounds", type=int, default=4, help="ABBA rounds with/without (default 4)")
    parser.add_argument("--round-seconds", type=int, default=2, help="wrk seconds per ABBA arm (default 2)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--prefix", default="advlab", help="namespace prefix (default advlab)")
    args = parser.parse_args(argv)
    try:
        require_root()
        require_tools("perf", "ip", "nginx", "wrk", "curl")
        names = args.scenarios or list(pathologies.PATHOLOGIES)
        for name in names:
            pathologies.make(name)  # unknown names fail before any work
        os.makedirs(args.outdir, exist_ok=True)
        for name in names:
            summary = record_scenario(args.outdir, name, args)
            print(json.dumps(summary), flush=True)
    except AdvisorError as exc:
        print(f"record: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("record: interrupted; testbed torn down", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
