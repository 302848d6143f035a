"""The `advise` command: exit codes, formats, the CI gate, one-line errors, atomic output."""

import errno
import gzip
import json
import os
import pty
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from advisor.paths import samples_dir
from advisor.report import json_report

SAMPLE_TEXT = b"""nginx 1234/1234 [000] 100.000001:    1000000 cpu-clock:
\tffffffff81000001 nft_do_chain+0x11 ([kernel.kallsyms])
\tffffffff81000002 nf_hook_slow+0x22 ([kernel.kallsyms])
\tffffffff81000003 ip_rcv+0x33 ([kernel.kallsyms])
\t7f0000000001 main+0x1 (/usr/sbin/nginx)

nginx 1234/1234 [000] 100.001001:    1000000 cpu-clock:
\tffffffff81000004 tcp_recvmsg+0x11 ([kernel.kallsyms])
\t7f0000000001 main+0x1 (/usr/sbin/nginx)

"""


def advise(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "advisor.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=60, cwd=cwd)


@pytest.fixture
def recording(tmp_path):
    path = tmp_path / "rec.perf.txt"
    # 2 CPUs saturated, nf_hook_slow in 40% of samples
    blocks = SAMPLE_TEXT.split(b"\n\n")
    text = b""
    for cpu in (0, 1):
        for i in range(40):
            text += blocks[0].replace(b"[000]", b"[00%d]" % cpu) + b"\n\n"
        for i in range(60):
            text += blocks[1].replace(b"[000]", b"[00%d]" % cpu) + b"\n\n"
    path.write_bytes(text)
    return path


def test_json_output_validates_against_the_schema(recording):
    proc = advise("analyze", recording, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    json_report.validate(data)
    assert data["recommendations"][0]["rule"] == "netfilter"
    assert data["profile"]["samples"] == 200
    assert {n["rule"] for n in data["not_evaluated"]} >= {"mitigation-pti", "irq-affinity"}


def test_gate_trips_with_exit_1(recording):
    proc = advise("analyze", recording, "--format", "json", "--fail-on-gain", "10")
    assert proc.returncode == 1
    assert "gate tripped: netfilter" in proc.stderr
    assert advise("analyze", recording, "--format", "json", "--fail-on-gain", "90").returncode == 0


def test_markdown_and_terminal_formats(recording, tmp_path):
    out = tmp_path / "report.md"
    assert advise("analyze", recording, "--format", "markdown", "-o", out).returncode == 0
    text = out.read_text()
    assert "netfilter" in text and "iptables-save" in text
    proc = advise("analyze", recording)
    assert proc.returncode == 0 and "netfilter" in proc.stdout


def test_analyze_prepares_the_terminal_it_prints_on(recording, monkeypatch, capsys):
    """The console handed to prepare() while the samples are read is the one the report is
    printed on (preparing another would prepare nothing)."""
    from advisor import cli
    from advisor.report import terminal

    prepared, printed = [], []
    monkeypatch.setattr(terminal, "prepare", prepared.append)
    real_render = terminal.render
    monkeypatch.setattr(terminal, "render", lambda result, console: (printed.append(console),
                                                                     real_render(result, console)))
    assert cli.main(["analyze", str(recording)]) == 0
    assert len(prepared) == 1 and printed == prepared
    assert "netfilter" in capsys.readouterr().out
    assert cli.main(["analyze", str(recording), "--format", "json"]) == 0
    assert len(prepared) == 1  # nothing to prepare for JSON


def test_analyze_on_a_terminal_highlights_and_reads_as_on_a_pipe(recording):
    """On a pseudo-terminal the report has colour and highlighted commands; without the escape
    sequences it is the text a pipe gets."""
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    pid, fd = pty.fork()
    if pid == 0:  # the child: advise on the terminal
        try:
            os.execve(sys.executable, [sys.executable, "-m", "advisor.cli", "analyze", str(recording)], env)
        finally:
            os._exit(127)
    chunks, deadline = [], time.monotonic() + 60
    while True:
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            os.kill(pid, signal.SIGKILL)  # a hang: fail below, leave no process behind
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child has closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    shown = b"".join(chunks).decode()
    assert "\x1b[" in shown
    plain = re.sub(r"\x1b\[[0-9;]*m", "", shown).replace("\r\n", "\n")
    piped = subprocess.run([sys.executable, "-m", "advisor.cli", "analyze", str(recording)],
                           capture_output=True, text=True, timeout=60, env=env)
    assert piped.returncode == 0 and "\x1b[" not in piped.stdout
    assert plain == piped.stdout


def test_comm_filter_with_no_match_is_not_an_error(recording):
    proc = advise("analyze", recording, "--comm", "nosuch", "--format", "json")
    assert proc.returncode == 0
    data = json.loads(proc.stdout)
    assert data["recommendations"] == []
    assert any("no busy samples" in n["reason"] for n in data["not_evaluated"])


@pytest.mark.parametrize("args,code,needle", [
    (["analyze", "/nonexistent/file"], 2, "/nonexistent/file: no such file"),
    (["analyze"], 2, "the following arguments are required"),
    (["analyze", "x", "--format", "pdf"], 2, "invalid choice"),
    (["explain", "no-such-rule"], 2, "unknown rule 'no-such-rule'"),
    (["frobnicate"], 2, "invalid choice"),
    # an endless input without a sample ends with an error, not never (/dev/zero: the real device)
    (["analyze", "/dev/zero"], 2, "/dev/zero:1: no perf script sample in the first 32 MiB"),
])
def test_usage_and_input_errors_are_one_line_exit_2(args, code, needle):
    proc = advise(*args)
    assert proc.returncode == code
    assert needle in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_bad_bundle_json_names_file_and_line(tmp_path, recording):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "perf.script").write_bytes(recording.read_bytes())
    (bundle / "meta.json").write_text('{\n  "cpus": 2,\n  "host": oops\n}\n')
    proc = advise("analyze", bundle)
    assert proc.returncode == 2
    assert f"{bundle}/meta.json:3: invalid JSON" in proc.stderr
    (bundle / "meta.json").write_text('{"cpus": "two"}')
    proc = advise("analyze", bundle)
    assert proc.returncode == 2 and "meta.json: field cpus: expected int" in proc.stderr


@pytest.mark.parametrize("make, kind", [
    (lambda p: p.mkdir(), "a directory"),
    (os.mkfifo, "a FIFO"),  # reading it would wait for a writer, for ever
    (lambda p: p.symlink_to(p.name), "a symbolic link that leads nowhere (Too many levels of symbolic links)"),
    (lambda p: p.symlink_to("gone.json"), "a symbolic link that leads nowhere (No such file or directory)"),
])
def test_a_bundle_file_that_is_there_but_no_file_is_refused_not_taken_for_absent(tmp_path, recording, make,
                                                                                    kind):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "perf.script").write_bytes(recording.read_bytes())
    make(bundle / "counters.json")
    proc = advise("analyze", bundle)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"advise: {bundle}/counters.json: not a regular file but {kind}\n"


@pytest.mark.parametrize("compress", [False, True])
def test_perf_script_text_through_a_pipe_reads_as_the_file_does(tmp_path, recording, compress):
    """`perf script | advise analyze -` (or /dev/stdin): a pipe cannot seek back to the bytes read
    to tell the format (it raised an internal error)."""
    data = recording.read_bytes()
    piped = gzip.compress(data) if compress else data
    expected = advise("analyze", recording, "--format", "json")
    for name in ("-", "/dev/stdin"):
        proc = subprocess.run([sys.executable, "-m", "advisor.cli", "analyze", name, "--format", "json"],
                              input=piped, capture_output=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        got, want = json.loads(proc.stdout), json.loads(expected.stdout)
        assert got["source"] == "/dev/stdin" and got["profile"] == want["profile"]
        assert [(r["rule"], r["estimated_gain_pct"], r["matched"]) for r in got["recommendations"]] == \
            [(r["rule"], r["estimated_gain_pct"], r["matched"]) for r in want["recommendations"]] != []


def test_diff_reads_a_side_from_a_pipe_too(recording):
    """`-` is standard input wherever a recording is named: the same samples on both sides of a
    diff, one through a pipe, change nothing."""
    proc = subprocess.run([sys.executable, "-m", "advisor.cli", "diff", "-", str(recording), "--format", "json"],
                          input=recording.read_bytes(), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["before"]["source"] == "/dev/stdin"
    assert {r["status"] for r in data["recommendations"]} == {"unchanged"} and data["recommendations"]


@pytest.mark.parametrize("sides", [("-", "-"), ("-", "/dev/stdin")])
def test_diff_refuses_standard_input_on_both_sides(recording, sides):
    """The second side read nothing, so every recommendation of the first was reported gone."""
    proc = subprocess.run([sys.executable, "-m", "advisor.cli", "diff", *sides, "--format", "json"],
                          input=recording.read_text(), capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == "advise: advise diff: only one side can be standard input (-)\n"


def test_output_is_atomic_when_rendering_fails(tmp_path, recording):
    out = tmp_path / "report.json"
    out.write_text("previous report\n")
    proc = advise("analyze", tmp_path / "missing.txt", "--format", "json", "-o", out)
    assert proc.returncode == 2
    assert out.read_text() == "previous report\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []


def test_an_output_that_cannot_be_written_is_one_line_naming_it_and_leaves_nothing(tmp_path, recording,
                                                                                 small_tmpfs):
    """No such directory, a directory, a full disk (an HTML report does not fit in 8 KiB), a
    full device: exit 3, one line, no temporary file left (it was an internal error, exit 70)."""
    cases = [(tmp_path / "no" / "such" / "dir.json", "No such file or directory"),
             (tmp_path, "Is a directory"),
             (small_tmpfs / "report.html", "No space left on device"),
             (Path("/dev/full"), "No space left on device")]
    for out, reason in cases:
        proc = advise("analyze", recording, "--format", "html", "-o", out)
        assert (proc.returncode, proc.stdout, proc.stderr) == (3, "", f"advise: cannot write {out}: {reason}\n")
    assert os.listdir(small_tmpfs) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.perf.txt", "small"]


@pytest.mark.parametrize("option, value, says", [("--fail-on-gain", "nan", "nan: give a finite percentage"),
                                                  ("--fail-on-gain", "inf", "inf: give a finite percentage"),
                                                  ("--pid", "-1", "-1: a process id is 0 or more")])
def test_a_gate_that_could_never_trip_or_a_pid_no_process_has_is_a_usage_error(recording, option, value, says):
    """nan never compares true, so `--fail-on-gain nan` passed every CI run; -1 marks samples
    without a PID, so `--pid -1` selected every such sample."""
    proc = advise("analyze", recording, "--format", "json", f"{option}={value}")
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1
    assert f"argument {option}: {says}" in proc.stderr


@pytest.mark.parametrize("command", [("analyze", "{rec}"), ("diff", "{rec}", "{rec}"), ("run", "--duration", "30")])
@pytest.mark.parametrize("names", ["", "nginx,", ","])
def test_an_empty_command_name_is_a_usage_error_before_anything_runs(recording, command, names):
    """`--comm ''` was no filter at all (`advise run --comm "$NAME"` with NAME unset collected the
    whole machine for the whole window, without a word) and `--comm nginx,` a name matching
    nothing. `run` is refused at once, not after its 30 s window."""
    args = [word.format(rec=recording) for word in command]
    proc = advise(*args, "--format", "json", f"--comm={names}")
    assert (proc.returncode, proc.stdout, proc.stderr.count("\n")) == (2, "", 1)
    assert f"argument --comm: {names!r}: give one or more command names" in proc.stderr


@pytest.mark.parametrize("options, says", [
    (["--collect-seconds", "nan"], "--collect-seconds nan: give 0 < S <= 3600"),
    (["--collect-seconds", "0"], "--collect-seconds 0: give 0 < S <= 3600"),
    (["--frequency", "0"], "--frequency 0: give 0 < HZ <= 10000"),
    (["--threads", "0"], "--threads 0 --connections 32: give 1 <= threads <= connections"),
    (["--threads", "4", "--connections", "2"], "--threads 4 --connections 2: give 1 <= threads <= connections"),
    (["--pairs", "0"], "--pairs and --round-seconds must be at least 1")])
def test_lab_options_are_checked_before_the_testbed_is_built(options, says):
    """`--collect-seconds nan` was an internal error (exit 70); a wrk thread count wrk refuses
    failed only once the testbed was up, with wrk's usage text; `--frequency 0` went on."""
    proc = advise("lab", "baseline", *options, "--prefix", "advclichk")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.startswith(f"advise: {says}") and proc.stderr.count("\n") == 1
    assert "advclichk-srv" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


@pytest.mark.parametrize("args, option", [(("analyze", ""), "path"), (("analyze", "{rec}", "--rules", ""), "--rules"),
                                          (("analyze", "{rec}", "-o", ""), "--output/-o"),
                                          (("diff", "{rec}", ""), "after"), (("rules", "--rules", ""), "--rules"),
                                          (("run", "--duration", "30", "--save", ""), "--save"),
                                          (("lab", "baseline", "--record", ""), "--record")])
def test_an_empty_path_is_a_usage_error(recording, tmp_path, args, option):
    """Path('') is '.': `--rules ''` loaded the current directory's *.toml (pyproject.toml) as
    rules, `advise analyze ''` read the current directory as a bundle."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    proc = advise(*[word.format(rec=recording) for word in args], cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr.count("\n")) == (2, "", 1)
    assert f"argument {option}: '': give a path" in proc.stderr


def test_an_event_is_found_with_the_modifiers_perf_prints(recording):
    """perf prints `cpu-clock:ppp:`; the report names it `cpu-clock`: either is accepted."""
    named = [json.loads(advise("analyze", recording, "--format", "json", "--event", event).stdout)
             for event in ("cpu-clock", "cpu-clock:ppp")]
    assert named[0]["profile"]["event"] == "cpu-clock" and named[0] == named[1]
    proc = advise("analyze", recording, "--event", "cycles:u")
    assert proc.returncode == 2 and "event 'cycles:u' is not in the recording (events: cpu-clock)" in proc.stderr


OUT_OF_MEMORY = r"""
import resource, sys
from advisor import cli
with open("/proc/self/statm") as statm:
    used = int(statm.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (used + (24 << 20), resource.RLIM_INFINITY))  # 24 MiB more
sys.exit(cli.main(["analyze", sys.argv[1], "--format", "json", "--output", sys.argv[2]]))
"""


def test_running_out_of_memory_is_one_line_and_exit_3(tmp_path):
    """A memory limit (ulimit -v) was an internal error asking to be reported (exit 70), for a
    MemoryError or for the thread that loads the rules not starting. The input: 150k distinct
    stacks, which take far more than the 24 MiB left."""
    path = tmp_path / "many.folded"
    with open(path, "w") as out:
        for i in range(150_000):
            out.write(f"app;main;handler_{i};leaf_{i % 977} 1\n")
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-c", OUT_OF_MEMORY, str(path), str(report)], capture_output=True,
                          text=True, timeout=120)
    assert (proc.returncode, proc.stdout, proc.stderr.count("\n")) == (3, "", 1), proc.stderr
    assert proc.stderr.startswith("advise: out of memory") and "ulimit -v" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["many.folded"]  # no report, no temporary file


def test_a_machine_limit_met_while_reading_a_file_is_exit_3_not_bad_input(tmp_path):
    from advisor.errors import EnvironmentProblem, InputError, limit_reached, unreadable

    missing = OSError(errno.ENOENT, "No such file or directory", "x.json")
    assert limit_reached(missing) is None
    assert isinstance(unreadable(missing, "x.json"), InputError)
    assert str(unreadable(missing, "x.json")) == "x.json: cannot read: No such file or directory"
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    for number, says in ((errno.EMFILE, f"this process may have {soft} open at once (`ulimit -n`)"),
                         (errno.ENFILE, "fs.file-max"), (errno.ENOMEM, "ulimit -v"),
                         (errno.ENOSPC, "No space left on device: x.json")):
        error = unreadable(OSError(number, os.strerror(number), "x.json"), "x.json")
        assert isinstance(error, EnvironmentProblem) and says in str(error), str(error)
    assert "ulimit -v" in limit_reached(MemoryError())
    assert "ulimit -u" in limit_reached(RuntimeError("can't start new thread"))
    assert limit_reached(RuntimeError("something else")) is None and limit_reached(ValueError()) is None
    # an extension module dlopen() could not load (found in CI: zlib, imported late, at the limit)
    refused = ImportError("/x/zlib.cpython-311-x86_64-linux-gnu.so: cannot open shared object file: "
                          + os.strerror(errno.EMFILE))
    assert f"this process may have {soft} open at once" in limit_reached(refused)
    assert limit_reached(ImportError("No module named 'nothing'")) is None


def test_an_error_naming_a_hostile_path_is_still_one_escaped_line(tmp_path):
    """Error messages name the file: one whose name holds a newline broke the one line, and one
    holding ESC sequences cleared or retitled the terminal that read the message."""
    garbage = tmp_path / "evil\x1b]0;pwned\x07name.txt"
    garbage.write_text("garbage\n")
    cases = [(("analyze", tmp_path / "no\nsuch\x1b[2J"), f"advise: {tmp_path}/no\\nsuch\\x1b[2J: no such file"),
             (("analyze", garbage), f"advise: {tmp_path}/evil\\x1b]0;pwned\\x07name.txt:1: no perf script sample"),
             (("analyze", garbage, "\x1b[2J"), "advise: advise: unrecognized arguments: \\x1b[2J")]
    for args, says in cases:
        proc = advise(*args)
        assert (proc.returncode, proc.stdout) == (2, "")
        assert proc.stderr.startswith(says) and proc.stderr.count("\n") == 1 and "\x1b" not in proc.stderr


def test_an_output_that_would_replace_the_recording_is_refused(recording, tmp_path):
    """`advise analyze rec.txt -o rec.txt` replaced the recording with its report, and `-o
    BUNDLE/perf.script.gz` a bundle's samples; a new file next to a bundle's is fine."""
    bundle = tmp_path / "bundle"
    shutil.copytree(samples_dir() / "netfilter", bundle)
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    named_like_a_rollback = tmp_path / "remedy.rollback.sh"  # where `-o remedy.sh` puts the rollback
    named_like_a_rollback.write_bytes(recording.read_bytes())
    cases = [(("analyze", recording, "-o", recording), f"{recording} would replace the recording {recording}"),
             (("analyze", bundle, "--format", "json", "-o", bundle / "perf.script.gz"),
              f"{bundle}/perf.script.gz would replace part of the recording {bundle}"),
             (("analyze", named_like_a_rollback, "--format", "script", "-o", tmp_path / "remedy.sh"),
              f"{named_like_a_rollback} would replace the recording {named_like_a_rollback}"),
             (("diff", recording, bundle, "--format", "json", "-o", bundle / ".." / "bundle" / "meta.json"),
              f"would replace part of the recording {bundle}")]
    for args, says in cases:
        proc = advise(*args)
        assert (proc.returncode, proc.stdout) == (2, ""), proc.stderr
        assert says in proc.stderr and proc.stderr.count("\n") == 1
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before
    assert advise("analyze", bundle, "--format", "json", "-o", bundle / "report.json").returncode == 0


def test_rules_and_explain():
    proc = advise("rules")
    assert proc.returncode == 0 and "qdisc-lock" in proc.stdout
    proc = advise("explain", "netfilter", "--plain")
    assert proc.returncode == 0
    for needle in ("nf_hook_slow", "## Rollback", "iptables-restore", "+22%", "weakens security"):
        assert needle in proc.stdout


def test_script_format_writes_rollback_next_to_it(recording, tmp_path):
    out = tmp_path / "remedy.sh"
    assert advise("analyze", recording, "--format", "script", "-o", out).returncode == 0
    rollback = tmp_path / "remedy.rollback.sh"
    assert out.is_file() and rollback.is_file()
    assert "iptables-restore" in rollback.read_text()
    assert subprocess.run(["bash", "-n", str(out)]).returncode == 0


def test_output_to_a_device_or_fifo_is_written_in_place_never_replaced(recording, tmp_path):
    """`--output /dev/null` once renamed a regular file over /dev/null (as root): a device or
    FIFO is written in place; a script and its rollback go down it together."""
    import os
    import stat
    import threading

    done = advise("analyze", str(recording), "--format", "json", "--output", "/dev/null")
    assert done.returncode == 0, done.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    done = advise("analyze", str(recording), "--format", "script", "--output", str(fifo))
    reader.join(timeout=60)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert "# ---- rollback ----" in received[0] and received[0].startswith("#!")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.perf.txt", "report.fifo"]  # no rollback beside it


@pytest.mark.parametrize("content", [b"", b"nginx;main;recv 0\nswapper;do_idle 0\n"])
def test_a_recording_without_samples_says_so(tmp_path, content):
    """The rules say one by one that they found no busy samples; the report says why, once."""
    path = tmp_path / "empty.folded"
    path.write_bytes(content)
    proc = advise("analyze", path, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["profile"]["samples"] == 0 and data["recommendations"] == []
    assert "no samples in the recording (none, or every count 0): nothing to rank" in data["warnings"]
