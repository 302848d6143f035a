"""Faults during collection, caused for real: each gives one clear line or a partial result that
says what is missing, and leaves no process behind."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SITE = next((REPO / ".venv" / "lib").glob("python3*/site-packages"), None) if (REPO / ".venv").exists() else None
SYSTEM_PYTHON = "/usr/bin/python3"
ADVISE_PROGRAM = str(Path(sys.executable).parent / "advise")  # installed by `make setup`: no runpy to import

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create the faults")


def advise(*args, prefix=(), env=None, timeout=90):
    return subprocess.run([*prefix, sys.executable, "-m", "advisor.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, env=env)


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.skipif(not (shutil.which("setpriv") and os.path.exists(SYSTEM_PYTHON) and SITE),
                    reason="needs setpriv, Debian's python3 and the project venv")
def test_not_root_is_exit_3_with_one_line(tmp_path):
    """As user nobody (the venv's interpreter lives under /root, so Debian's python3 of the same
    version runs the package with the venv's site-packages)."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": f"{REPO}:{SITE}"}
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", SYSTEM_PYTHON, "-m",
                           "advisor.cli", "run", "--duration", "1"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env=env)
    assert proc.returncode == 3
    assert "must run as root" in one_line(proc.stderr)


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv (util-linux)")
def test_root_without_perf_capabilities_and_strict_paranoid_is_exit_3():
    """Root inside a container: CAP_SYS_ADMIN and CAP_PERFMON dropped, perf_event_paranoid > 0."""
    paranoid = int(Path("/proc/sys/kernel/perf_event_paranoid").read_text())
    if paranoid <= 0:
        pytest.skip("perf_event_paranoid allows everything here; not changing a global setting")
    proc = advise("run", "--duration", "1",
                  prefix=["setpriv", "--bounding-set=-sys_admin,-perfmon", "--inh-caps=-sys_admin,-perfmon"])
    assert proc.returncode == 3
    line = one_line(proc.stderr)
    assert f"perf_event_paranoid is {paranoid}" in line and "CAP_PERFMON" in line


def test_target_exiting_mid_run_gives_a_partial_result():
    busy = subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<6: pass"])
    try:
        time.sleep(0.2)
        proc = advise("run", "--pid", busy.pid, "--duration", "12", "--format", "json")
    finally:
        busy.kill()
        busy.wait()
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    perf = data["collectors"]["perf"]
    assert perf["status"] == "ok" and f"process {busy.pid} exited" in perf["detail"]
    assert data["profile"]["samples"] > 0
    # no perf of ours remains (other perf processes on a shared machine are not ours)
    assert subprocess.run(["pgrep", "-f", f"perf record .*-p {busy.pid} "], capture_output=True).returncode == 1


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare (util-linux)")
def test_tracefs_not_mounted_and_failing_bpf_tools_give_a_partial_result():
    """In a private mount namespace without tracefs: perf still samples, the tracepoint-based
    collectors (perf stat, bpftrace, libbpf-tools' syscount) really fail, and the report says so."""
    script = ("umount /sys/kernel/tracing 2>/dev/null; umount /sys/kernel/debug/tracing 2>/dev/null; "
              "umount /sys/kernel/debug 2>/dev/null; exec \"$0\" -m advisor.cli run --bpf all --duration 2 "
              "--format json")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script, sys.executable], capture_output=True, text=True,
                          timeout=90, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    collectors = json.loads(proc.stdout)["collectors"]
    assert collectors["perf"]["status"] == "ok"
    assert collectors["perf-stat"]["status"] == "failed" and "tracefs not mounted" in collectors["perf-stat"]["detail"]
    failed = {name for name, c in collectors.items() if c["status"] == "failed"}
    assert {"bpftrace", "libbpf-tools"} & failed, collectors
    for name in failed:
        assert collectors[name]["detail"] and "\n" not in collectors[name]["detail"]
    leftovers = subprocess.run(["pgrep", "-f", "syscount|runqlat|bpftrace -e"], capture_output=True, text=True)
    assert leftovers.stdout == "", leftovers.stdout


def test_too_few_file_descriptors_is_one_line_exit_3_and_leaves_nothing(tmp_path):
    """`ulimit -n` at 5 to 12 (0-2 are stdin, stdout and stderr; below 5 Python itself cannot
    start): the run fails where a descriptor is first refused (Python's own files, perf's pipe,
    perf record's, a BPF tool's), or completes with the tools that could not start said failed.
    It was an internal error (exit 70), and at 5 it left its working directory behind
    (shutil.rmtree needs two descriptors to remove one)."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    codes = []
    for limit in range(5, 13):
        script = f'ulimit -n {limit}; exec "$0" run --duration 1 --bpf all --format json'
        proc = subprocess.run(["sh", "-c", script, ADVISE_PROGRAM], capture_output=True, text=True, timeout=90,
                              cwd=REPO, env={**os.environ, "TMPDIR": str(temporary)})
        codes.append(proc.returncode)
        if proc.returncode == 0:
            failed = [c["detail"] for c in json.loads(proc.stdout)["collectors"].values() if c["status"] == "failed"]
            assert all("\n" not in detail for detail in failed), failed
        else:
            assert proc.returncode == 3 and "open" in one_line(proc.stderr), (limit, proc.stderr)
        assert list(temporary.iterdir()) == [], limit  # no working directory, no perf.data
        leftovers = subprocess.run(["pgrep", "-x", "perf|syscount|runqlat|bpftrace"], capture_output=True, text=True)
        assert leftovers.stdout == "", leftovers.stdout
    assert codes[0] == 3, codes


def test_a_file_size_limit_that_stops_perf_record_says_so(tmp_path):
    """`ulimit -f` below the size of perf.data: perf record is killed by SIGXFSZ, which now says
    what it means; exit 3, one line, nothing left."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    proc = subprocess.run(["sh", "-c", 'ulimit -f 20; exec "$0" run --duration 2', ADVISE_PROGRAM], capture_output=True,
                          text=True, timeout=90, cwd=REPO, env={**os.environ, "TMPDIR": str(temporary)})
    assert proc.returncode == 3 and "`ulimit -f`" in one_line(proc.stderr), proc.stderr
    assert list(temporary.iterdir()) == []
    assert subprocess.run(["pgrep", "-x", "perf"], capture_output=True).stdout == b""
