"""The namespace testbed: comes up, serves JSON over the veth, takes wrk load, leaves nothing behind.

Real namespaces, real nginx and wrk; needs root. Prefixes differ per test (and from the
recorder's 'advlab') so parallel runs never share a namespace.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from advisor.errors import EnvironmentProblem
from advisor.lab import testbed as testbed_module
from advisor.lab.testbed import JSON_BODY, Testbed, require_tools

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")]

def namespaces() -> set[str]:
    return set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_serves_json_over_the_veth_and_takes_load_then_leaves_nothing():
    with Testbed(prefix="advt1") as tb:
        pids, tmpdir = tb.server_pids(), tb.tmpdir
        assert len(pids) == 1 + tb.workers and all(alive(p) for p in pids)
        assert {"advt1-srv", "advt1-cli"} <= namespaces()
        # the server address exists only inside our namespaces: reach it from the client side
        done = tb.client_run(["curl", "-s", "-D", "-", "-m", "5", tb.url])
        headers, _, body = done.stdout.partition("\n\n")  # text mode turned \r\n into \n
        assert headers.startswith("HTTP/1.1 200")
        assert "Content-Type: application/json" in headers
        assert json.loads(body) == json.loads(JSON_BODY)
        # the traffic stays on our veth: the client's route to the server is the veth itself
        route = tb.client_run(["ip", "route", "get", tb.server_addr]).stdout
        assert f"dev {tb.client_dev}" in route and "via" not in route

        result = tb.load(duration_s=1, connections=8, threads=1)
        assert result["requests_per_sec"] > 1000
        assert result["requests"] > 1000
        assert result["errors"] == {"connect": 0, "read": 0, "write": 0, "timeout": 0, "non_2xx_3xx": 0}
        assert result["latency_ms"]["p50"] > 0
        assert "Requests/sec" in result["output"] and result["command"][0] == "wrk"
    assert not {"advt1-srv", "advt1-cli"} & namespaces()
    assert not any(alive(p) for p in pids)
    assert not os.path.exists(tmpdir)


def test_teardown_after_an_exception_inside_the_block():
    with pytest.raises(RuntimeError, match="boom"):
        with Testbed(prefix="advt2") as tb:
            pids = tb.server_pids()
            helper = tb.spawn_in_server(["sleep", "30"], ready_line=False)
            raise RuntimeError("boom")
    assert not {"advt2-srv", "advt2-cli"} & namespaces()
    assert not any(alive(p) for p in [*pids, helper.pid])


def test_teardown_after_ctrl_c():
    """SIGINT (what Ctrl-C sends) to a process sitting inside the with-block."""
    code = ("import time\nfrom advisor.lab.testbed import Testbed\n"
            "with Testbed(prefix='advt6') as tb:\n"
            "    print(*tb.server_pids(), flush=True)\n"
            "    time.sleep(30)\n")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": repo})
    try:
        pids = [int(x) for x in proc.stdout.readline().split()]
        assert pids and "advt6-srv" in namespaces()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert "KeyboardInterrupt" in err
    assert not {"advt6-srv", "advt6-cli"} & namespaces()
    assert not any(alive(p) for p in pids)


def test_second_run_works_and_leftovers_of_a_crashed_run_are_removed():
    # a crashed run: our server namespace still exists, with a process inside
    subprocess.run(["ip", "netns", "add", "advt3-srv"], check=True, timeout=10)
    stray = subprocess.Popen(["ip", "netns", "exec", "advt3-srv", "sleep", "30"], start_new_session=True)
    try:
        for _ in range(50):  # until it has really entered the namespace
            pids = subprocess.run(["ip", "netns", "pids", "advt3-srv"], capture_output=True, text=True, timeout=5)
            if str(stray.pid) in pids.stdout.split():
                break
            time.sleep(0.1)
        for _ in range(2):
            with Testbed(prefix="advt3") as tb:
                assert tb.server_pids()
                assert stray.wait(timeout=5) is not None  # the leftover's process was ended
        assert not {"advt3-srv", "advt3-cli"} & namespaces()
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait(timeout=5)
        subprocess.run(["ip", "netns", "del", "advt3-srv"], capture_output=True, timeout=10)


def test_restart_with_a_preexec_hook_runs_the_hook_in_the_server():
    with Testbed(prefix="advt4") as tb:
        first = tb.server_pids()
        tb.start_server(preexec=lambda: os.environ.__setitem__("X", "1") or os.nice(5))
        second = tb.server_pids()
        assert set(first).isdisjoint(second) and not any(alive(p) for p in first)
        with open(f"/proc/{second[0]}/stat") as f:
            assert int(f.read().rsplit(")", 1)[1].split()[16]) == 5  # field 19: nice
        assert tb.client_run(["curl", "-sf", "-m", "5", tb.url]).stdout == JSON_BODY


def test_a_second_lab_with_the_same_prefix_is_refused_and_touches_nothing():
    """A second `advise lab` removed the first's namespaces (nginx inside) as leftovers of a crash,
    and its close() would again. It is now refused, naming the first, which goes on unharmed."""
    with Testbed(prefix="advt9") as first:
        second = Testbed(prefix="advt9")
        with pytest.raises(EnvironmentProblem) as refused:
            with second:
                pass
        assert str(refused.value) == (f"another advise lab (pid {os.getpid()}) is using the testbed 'advt9': "
                                      "wait for it to end, or give another --prefix")
        assert {"advt9-srv", "advt9-cli"} <= namespaces()
        assert first.client_run(["curl", "-sf", "-m", "5", first.url]).stdout == JSON_BODY
    assert not {"advt9-srv", "advt9-cli"} & namespaces()
    with Testbed(prefix="advt9") as again:  # the claim ends with the testbed
        assert again.client_run(["curl", "-sf", "-m", "5", again.url]).stdout == JSON_BODY


def test_refuses_without_root():
    """Runs in a forked child whose effective uid is nobody (the interpreter lives under /root,
    so a real non-root exec could not even start Python)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            os.close(read_end)
            os.seteuid(65534)
            try:
                Testbed(prefix="advt5").open()
                message = "opened"
            except EnvironmentProblem as exc:
                message = f"EnvironmentProblem: {exc}"
            os.write(write_end, message.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        message = f.read()
    os.waitpid(pid, 0)
    assert message.startswith("EnvironmentProblem") and "needs root" in message
    assert not {"advt5-srv", "advt5-cli"} & namespaces()


def test_a_missing_tool_names_its_debian_package(monkeypatch):
    """Fake: this machine has every tool, so `which` is made to miss them."""
    monkeypatch.setattr(testbed_module.shutil, "which", lambda *a, **k: None)
    with pytest.raises(EnvironmentProblem, match=r"wrk: not found; install it with 'apt-get install wrk'"):
        require_tools("wrk")
    with pytest.raises(EnvironmentProblem, match="apt-get install nginx-light"):
        require_tools("nginx")


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, comm) of the direct children of `pid`."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except FileNotFoundError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append((int(entry), comm))
    return out


@pytest.mark.slow
def test_lab_record_writes_a_bundle(tmp_path):
    """`advise lab --record`: a bundle per docs/DESIGN.md with samples of nginx, system state and the measurement."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-m", "advisor.cli", "lab", "baseline", "--record", str(tmp_path),
                           "--collect-seconds", "1", "--frequency", "99", "--pairs", "1", "--round-seconds", "1",
                           "--prefix", "advt7", "--json"],
                          capture_output=True, text=True, timeout=120, cwd=repo, env={**os.environ, "PYTHONPATH": repo})
    assert done.returncode == 0, done.stderr
    bundle = tmp_path / "baseline"
    meta = json.loads((bundle / "meta.json").read_text())
    for key in ("format", "created", "host", "kernel", "cpus", "duration_s", "target", "scenario", "perf", "load"):
        assert key in meta
    assert meta["format"] == "advisor-bundle/1" and meta["target"]["comm"] == "nginx"
    assert meta["perf"]["record_args"][:2] == ["perf", "record"] and meta["load"]["requests_per_sec"] > 0
    assert len(meta["measured"]["with_pathology_rps"]) == len(meta["measured"]["without_rps"]) == 1

    text = gzip.open(bundle / "perf.script.gz", "rt", errors="replace").read()
    assert "cpu-clock" in text and "\nnginx " in text
    system = json.loads((bundle / "system.json").read_text())
    assert "kernel" in system and system.get("netns") == "advt7-srv"
    assert not {"advt7-srv", "advt7-cli"} & namespaces()

    # Again into the same DIR: the bundle is regenerated (it stopped with "--save DIR/baseline:
    # already exists", once the scenario's rounds were over); a directory that is not a bundle is
    # refused before anything is built.
    again = subprocess.run(done.args, capture_output=True, text=True, timeout=120, cwd=repo,
                           env={**os.environ, "PYTHONPATH": repo})
    assert again.returncode == 0, again.stderr
    assert json.loads((bundle / "meta.json").read_text())["created"] != meta["created"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline"]  # no staging or old copy left
    (bundle / "notes.txt").write_text("mine")
    refused = subprocess.run(done.args, capture_output=True, text=True, timeout=120, cwd=repo,
                             env={**os.environ, "PYTHONPATH": repo})
    assert (refused.returncode, refused.stderr) == (
        2, f"advise: --record {bundle}: already exists and is not a directory of bundle files\n")
    assert (bundle / "notes.txt").read_text() == "mine"


@pytest.mark.slow
@pytest.mark.parametrize("signum, code, says", [(signal.SIGINT, 130, "advise: interrupted\n"),
                                                (signal.SIGTERM, 143, "advise: stopped by signal 15\n")])
def test_lab_interrupted_leaves_no_perf_and_no_namespace(tmp_path, signum, code, says):
    """Ctrl-C (or SIGTERM: `timeout` left the testbed up, nginx inside) while perf is sampling:
    perf is stopped, the testbed torn down, no bundle written."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-m", "advisor.cli", "lab", "baseline", "--record", str(tmp_path),
                             "--collect-seconds", "10", "--frequency", "99", "--prefix", "advt8"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=repo,
                            env={**os.environ, "PYTHONPATH": repo})
    try:
        perf = []
        for _ in range(150):  # up to 15 s for the testbed, the warm-up and perf to start
            perf = [pid for pid, comm in _descendants(proc.pid) if comm == "perf"]
            if perf:
                break
            time.sleep(0.1)
        assert perf, "perf never started"
        time.sleep(0.5)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == code and err.endswith(says)
    assert not alive(perf[0])
    assert not {"advt8-srv", "advt8-cli"} & namespaces()
    assert not (tmp_path / "baseline" / "meta.json").exists()


def _descendants(pid: int) -> list[tuple[int, str]]:
    found, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        found.extend(kids)
        todo.extend(k for k, _ in kids)
    return found
