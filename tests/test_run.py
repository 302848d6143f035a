"""`advise run` for real on this machine (root): perf, the BPF tools, the probes, a netns testbed.

Each run is 2-4 s. What is checked: the hot function of a busy process is found; Ctrl-C stops
every collector and removes the temporary files; missing perf and a full disk are one line;
the saved bundle analyses to the same recommendations; and on nginx behind a long iptables
ruleset, under wrk, `netfilter` comes first.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import advisor

from advisor.lab.pathologies import Netfilter
from advisor.proc import descendants as proc_descendants
from advisor.proc import kill_group
from advisor.lab.testbed import Testbed
from advisor.run import run
from tests.test_collect_perf import burner, burner_exe  # noqa: F401 (fixtures)
from tests.conftest import tmpfs
from tests.test_targets import cgroup, start_in  # noqa: F401 (fixture)

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="perf -a, BPF and namespaces need root")]

REPO = Path(__file__).resolve().parents[1]
ADVISE = [sys.executable, "-m", "advisor.cli"]


def advise(*args: str, env: dict | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([*ADVISE, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=env)


def descendants(pid: int) -> dict[int, str]:
    """{pid: command line} of every process below `pid`."""
    return {kid: cmdline(kid) or "" for kid in proc_descendants(pid)}


def cmdline(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.fixture
def tmp_on_4mib_tmpfs(tmp_path, monkeypatch):
    """The temporary directory of `run` on a 4 MiB tmpfs of its own (needs root: mount)."""
    import tempfile

    with tmpfs(tmp_path / "tmp4m", "4m") as mount:
        monkeypatch.setattr(tempfile, "tempdir", str(mount))
        yield mount


def test_a_report_that_would_replace_a_file_of_the_saved_bundle_is_refused_before_collecting(tmp_path):
    save = tmp_path / "bundle"
    save.mkdir()  # an empty directory is a valid --save
    started = time.monotonic()
    done = advise("run", "--duration", "30", "--save", str(save), "-o", str(save / "meta.json"))
    assert time.monotonic() - started < 20 and (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"advise: --output {save}/meta.json: {save}/meta.json would replace part of the " \
                          f"recording {save}\n"


def test_a_load_that_prints_a_lot_fills_no_disk_and_its_last_words_are_kept(burner, tmp_path, tmp_on_4mib_tmpfs):
    """The load's output went to files in the temporary directory: `--during yes` wrote ~2 GB a
    second there, and reading it back held all of it. 40 MB through a 4 MiB temporary directory:
    only the end is kept, which is where wrk prints its summary."""
    printer = "yes | head -c 40000000; echo END-OF-LOAD; sleep 30"
    result = run(duration=2, frequency=199, pid=burner.pid, during=f"sh -c '{printer}'", save=tmp_path / "b",
                 progress=False)
    load = json.loads((tmp_path / "b" / "meta.json").read_text())["load"]
    assert load["output"].endswith("y\nEND-OF-LOAD\n") and len(load["output"]) == 64 * 1024
    assert load["stopped_at_window_end"] and "stderr" not in load
    assert result.data["collectors"]["load"]["status"] == "ok"
    assert list(tmp_on_4mib_tmpfs.iterdir()) == []


def test_sampling_a_busy_process_finds_its_hot_function(burner, tmp_path):
    """--pid: perf samples only that process; a load that outlives the window is stopped."""
    result = run(duration=2, frequency=199, pid=burner.pid, during="sleep 30", save=tmp_path / "b",
                 progress=False)
    top = result.profile.top(3)
    assert top.iloc[0]["symbol"] == "burn_cycles" and top.iloc[0]["self_pct"] > 80
    data = result.data
    assert data["collectors"]["perf"]["status"] == "ok"
    assert f"on process {burner.pid}" in data["collectors"]["perf"]["detail"]
    meta = json.loads((tmp_path / "b" / "meta.json").read_text())
    assert meta["target"]["pid"] == burner.pid and "-p" in meta["perf"]["record_args"]
    assert meta["load"]["command"] == ["sleep", "30"] and meta["load"]["stopped_at_window_end"]
    assert not any("sleep 30" in cmd for cmd in descendants(os.getpid()).values())
    system = json.loads((tmp_path / "b" / "system.json").read_text())
    assert [p["pid"] for p in system["processes"]] == [burner.pid]
    assert isinstance(system["kernel_symbols"]["netfilter"], bool)


def test_focus_limits_the_analysis_to_those_programs_not_the_recording(burner, tmp_path):
    """focus (the lab's nginx,wrk): the ranking reads only those programs' samples; the saved
    bundle keeps every sample, as recorded system-wide."""
    result = run(duration=2, frequency=199, comm="burner", focus="burner", during="sh -c 'while :; do :; done'",
                 save=tmp_path / "b", progress=False)
    assert {p.comm for p in result.profile.process_stats()} == {"burner"}
    # recorded system-wide: the busy loop of the load is in the bundle. (A test's own programs only:
    # other programs may have no sample in 2 s, and an idle CPU sometimes records none either.)
    everything = {p.comm for p in advisor.analyze(tmp_path / "b").profile.process_stats()}
    assert {"burner", "sh"} <= everything


def test_a_pid_brings_its_children_into_perf_and_the_probes(burner_exe, tmp_path):
    """--pid of a parent (an nginx master, here sh) samples its workers too (two burners)."""
    parent = subprocess.Popen(["sh", "-c", f"{burner_exe} 15 & {burner_exe} 15 & wait"],
                              start_new_session=True)
    try:
        time.sleep(0.3)
        result = run(duration=2, frequency=199, pid=parent.pid, save=tmp_path / "b", progress=False)
    finally:
        kill_group(parent)
    meta = json.loads((tmp_path / "b" / "meta.json").read_text())
    workers = [p for p in meta["target"]["pids"] if p != parent.pid]
    assert len(workers) == 2 and meta["target"]["scoped"] is True
    assert meta["perf"]["record_args"][meta["perf"]["record_args"].index("-p") + 1] == \
        ",".join(map(str, meta["target"]["pids"]))
    busy_pids = {key.pid for key in result.profile.table.rows}
    assert set(workers) <= busy_pids  # both workers were sampled
    assert result.profile.top(1).iloc[0]["symbol"] == "burn_cycles"
    system = json.loads((tmp_path / "b" / "system.json").read_text())
    assert sorted(p["pid"] for p in system["processes"]) == sorted(meta["target"]["pids"])
    assert f"process {parent.pid} and 2 descendants" in result.data["collectors"]["perf"]["detail"]


def test_a_child_that_ends_before_perf_attaches_does_not_fail_the_run(burner, monkeypatch, tmp_path):
    """The race of a forking server: a child listed in --pid's tree ends before perf attaches,
    and perf fails at once ("No such process"). The timing cannot be forced here, so the listing
    is made stale on purpose: it holds a child that has already ended (a real, reaped PID)."""
    from advisor.collect import targets

    ended = subprocess.Popen(["true"])
    ended.wait(timeout=10)
    resolve = targets.resolve

    def stale(*args, **kwargs):
        target = resolve(*args, **kwargs)
        target.pids = target.pids + [ended.pid]
        return target

    monkeypatch.setattr(targets, "resolve", stale)
    result = run(duration=1.5, frequency=199, pid=burner.pid, save=tmp_path / "b", progress=False)
    perf = result.data["collectors"]["perf"]
    assert perf["status"] == "ok" and "started 1 more time(s)" in perf["detail"]
    meta = json.loads((tmp_path / "b" / "meta.json").read_text())
    assert meta["target"]["pids"] == [burner.pid]
    assert meta["perf"]["record_args"][meta["perf"]["record_args"].index("-p") + 1] == str(burner.pid)
    assert result.profile.top(1).iloc[0]["symbol"] == "burn_cycles"


def test_a_cgroup_is_sampled_alone_and_its_estimates_scaled_to_its_part_of_the_cpus(burner_exe, cgroup,
                                                                                     tmp_path):
    """--cgroup: perf samples only the group's burner while another busy loop, outside, uses the other
    CPU; /proc/stat says both CPUs are busy, schedstat says the group used about one: scale ~0.5."""
    name, group, procs = cgroup
    inside = start_in(group, [burner_exe, "15"])
    procs.append(inside)
    procs.append(subprocess.Popen([sys.executable, "-c",
                                   "import time\nt = time.time()\nwhile time.time() - t < 15: pass"]))
    result = run(duration=3, frequency=199, cgroup=name, save=tmp_path / "b", progress=False)
    comms = {key.comm for key in result.profile.table.rows}
    assert comms == {"burner"}, comms  # nothing from outside the group, not even the idle task
    meta = json.loads((tmp_path / "b" / "meta.json").read_text())
    assert meta["target"]["cgroup"] == name and meta["target"]["pids"] == [inside.pid]
    args = meta["perf"]["record_args"]
    assert args[args.index("-G") + 1] == name and "-a" in args
    bottleneck = result.data["profile"]["bottleneck"]
    assert f"cgroup {name}" in bottleneck["note"] and "utilisation from /proc/stat" in bottleneck["note"]
    counters = json.loads((tmp_path / "b" / "counters.json").read_text())
    used = counters["sched"]["target_cpus_used"]  # schedstat: one single-threaded burner
    pct = counters["cpu_time_pct"]
    busy = sum(100 - i - w - s for i, w, s in zip(pct["idle"], pct["iowait"], pct["steal"])) / 100
    assert 0.05 < used <= 1.05 and busy > 1.3, (used, busy)  # the loop outside kept the other CPU busy
    assert bottleneck["scale"] < 0.8 and abs(bottleneck["scale"] - used / busy) < 0.02, bottleneck
    # the summary's utilisation is the machine's (/proc/stat), not 100% of the target's own samples
    summary = result.data["profile"]
    assert [c["busy_pct"] for c in summary["cpus"]] == pytest.approx(
        [100 - i - w - s for i, w, s in zip(pct["idle"], pct["iowait"], pct["steal"])], abs=0.01)


@pytest.mark.parametrize("program, signum, code, says", [
    ("module", signal.SIGINT, 130, "advise: interrupted"),
    ("module", signal.SIGTERM, 143, "advise: stopped by signal 15"),
    ("module", signal.SIGHUP, 129, "advise: stopped by signal 1"),
    ("installed", signal.SIGTERM, 143, "advise: stopped by signal 15")])
def test_ctrl_c_or_a_stop_signal_stops_every_collector_and_exits_with_one_line(tmp_path, program, signum, code,
                                                                              says):
    """SIGTERM (timeout, systemd, a CI runner cancelling) and SIGHUP (a closed terminal) killed
    Python at once: perf record, in its own session, went on recording into a temporary directory
    nobody removed. They now take Ctrl-C's way out, in `python -m advisor.cli` and in the installed
    `advise` program (which handles them before it starts anything)."""
    save = tmp_path / "never"
    command = ADVISE if program == "module" else [str(Path(sys.executable).parent / "advise")]
    proc = subprocess.Popen([*command, "run", "--duration", "10", "--bpf", "all", "--save", str(save)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, children = time.monotonic() + 20, {}
        while time.monotonic() < deadline:  # wait until perf and the BPF tools run
            children = descendants(proc.pid)
            names = {os.path.basename(cmd.split()[0]) for cmd in children.values() if cmd}
            if {"perf", "syscount", "bpftrace"} <= names:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        children = descendants(proc.pid)
        perf_cmd = next(cmd for cmd in children.values() if " record " in cmd)
        workdir = Path(perf_cmd.split(" -o ")[1].split()[0]).parent
        assert workdir.is_dir()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code
    assert err == says + "\n" and out == ""
    left = {pid: cmd for pid, cmd in children.items() if alive(pid)}
    assert left == {}, f"left behind: {left}"
    assert not workdir.exists()
    assert list(tmp_path.iterdir()) == []  # neither the bundle nor its staging directory


def test_perf_missing_is_exit_3_and_one_line(tmp_path):
    done = advise("run", "--duration", "2", env={**os.environ, "PATH": str(tmp_path)})
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and "perf is not installed" in done.stderr
    assert done.stdout == ""


def test_a_full_disk_leaves_no_half_bundle(small_tmpfs):
    """A 8 KiB tmpfs: perf.script.gz cannot fit."""
    mount = small_tmpfs
    done = advise("run", "--duration", "2", "--save", str(mount / "bundle"), "--format", "json")
    leftovers = os.listdir(mount)
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr == (f"advise: --save {mount / 'bundle'}: cannot write the bundle: "
                           "No space left on device; nothing was saved\n")
    assert leftovers == []


@pytest.mark.parametrize("size", ["16k", "48k", "64k"])
def test_a_temporary_directory_too_small_for_the_recording_says_so(tmp_path, size):
    """TMPDIR on a 16-64 KiB tmpfs: perf record died with no message (its stderr file is in the full
    directory too), or wrote a perf.data perf script refused, which was reported as bad input
    (exit 2). Whichever happens, it is now exit 3 naming the full file system; nothing is left."""
    with tmpfs(tmp_path / "tiny", size) as mount:
        done = advise("run", "--duration", "2", "--format", "json", env={**os.environ, "TMPDIR": str(mount)})
        leftovers = os.listdir(mount)
    if done.returncode == 0:  # it fitted, this time: a report
        assert json.loads(done.stdout)["profile"]["samples"] > 0
    else:
        assert done.returncode == 3 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith(f"advise: no space left on {mount} (TMPDIR) for the recording: ")
        assert done.stderr.endswith("; free some, or set TMPDIR to a larger file system\n")
    assert leftovers == []
    assert subprocess.run(["pgrep", "-x", "perf"], capture_output=True).stdout == b""
    if size == "16k":
        assert done.returncode == 3  # perf.data alone is larger than this


def test_save_refuses_a_directory_that_is_not_empty_before_collecting(tmp_path):
    (tmp_path / "file").write_text("x")
    start = time.monotonic()
    done = advise("run", "--duration", "30", "--save", str(tmp_path))
    assert done.returncode == 2 and "already exists and is not an empty directory" in done.stderr
    assert time.monotonic() - start < 10  # refused before the 30 s window


def test_save_in_a_directory_root_may_not_create_in_is_refused_before_collecting():
    """/proc passes root's access check, and mkdir there fails: exit 3, not an internal error."""
    start = time.monotonic()
    done = advise("run", "--duration", "30", "--save", "/proc/advise-bundle")
    assert (done.returncode, done.stdout) == (3, "")
    assert done.stderr == ("advise: --save /proc/advise-bundle: cannot create a directory in /proc: "
                           "No such file or directory\n")
    assert time.monotonic() - start < 10  # refused before the 30 s window


def test_an_output_that_cannot_be_written_is_refused_before_collecting(tmp_path):
    for out, reason in [(tmp_path / "missing" / "report.json", f"no directory {tmp_path / 'missing'}"),
                        (tmp_path, "Is a directory"),
                        # root passes os.access there; making a file fails (it did, after the window)
                        (Path("/proc/advise-report.json"), "No such file or directory")]:
        start = time.monotonic()
        done = advise("run", "--duration", "30", "--output", str(out))
        assert (done.returncode, done.stdout, done.stderr) == (3, "", f"advise: cannot write {out}: {reason}\n")
        assert time.monotonic() - start < 10  # refused before the 30 s window


@pytest.mark.parametrize("command, reason", [
    ("", "--during: empty command"),                    # was taken for no --during at all
    ("'unclosed", "--during \"'unclosed\": No closing quotation"),
    ("no-such-load-tool -c 1", "--during: no-such-load-tool: command not found"),
])
def test_a_load_command_that_cannot_run_is_refused_before_collecting(command, reason):
    start = time.monotonic()
    done = advise("run", "--duration", "30", "--during", command)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"advise: {reason}\n")
    assert time.monotonic() - start < 10  # refused before the 30 s window


def test_netfilter_ranks_first_and_the_saved_bundle_analyses_the_same(tmp_path):
    """nginx in a namespace behind 300+300 iptables rules and conntrack, wrk from the other one."""
    bundle = tmp_path / "bundle"
    with Testbed(prefix="advrun") as tb:
        pathology = Netfilter()
        reason = pathology.unavailable(tb)
        if reason:
            pytest.skip(reason)
        pathology.inject(tb)
        wrk = " ".join(["ip", "netns", "exec", tb.client_ns, *tb.wrk_argv(4, 32, 1)])
        done = advise("run", "--duration", "4", "--netns", tb.server_ns, "--during", wrk,
                      "--save", str(bundle), "--format", "json")
        nginx = tb.server_pids()
    assert done.returncode == 0, done.stderr
    live = json.loads(done.stdout)  # stdout holds the JSON report only
    assert live["recommendations"][0]["rule"] == "netfilter"
    assert live["load"]["tool"] == "wrk" and live["load"]["requests_per_sec"] > 0
    assert live["collectors"]["perf"]["status"] == "ok"
    assert live["collectors"]["probes"]["detail"].endswith(f"read in netns {tb.server_ns}")
    assert live["collectors"]["load"]["status"] == "ok"

    meta = json.loads((bundle / "meta.json").read_text())
    assert meta["target"]["netns"] == tb.server_ns and sorted(meta["target"]["pids"]) == sorted(nginx)
    assert meta["perf"]["record_args"][:2] == ["perf", "record"] and "-a" in meta["perf"]["record_args"]
    assert "Requests/sec" in meta["load"]["output"]
    assert sorted(os.listdir(bundle)) == ["counters.json", "meta.json", "perf.script.gz", "system.json"]
    system = json.loads((bundle / "system.json").read_text())
    assert system["netfilter"]["iptables_rules"] >= 600 and system["netns"] == tb.server_ns

    replay = advise("analyze", str(bundle), "--format", "json")
    assert replay.returncode == 0, replay.stderr
    saved = json.loads(replay.stdout)
    assert [r["rule"] for r in saved["recommendations"]] == [r["rule"] for r in live["recommendations"]]
    for a, b in zip(live["recommendations"], saved["recommendations"]):
        assert abs(a["estimated_gain_pct"] - b["estimated_gain_pct"]) <= 0.01
    assert saved["not_evaluated"] == live["not_evaluated"]
    assert saved["collectors"] == live["collectors"] and saved["load"] == live["load"]
