"""Remedy commands filled from system state are shell-quoted; unknown values stay visible."""

import shlex
import subprocess

from advisor.engine.commands import fill
from advisor.engine.rules import load_rules

RULES = {r.id: r for r in load_rules()}


def test_device_names_from_the_system_are_quoted():
    evil = "eth0;touch /tmp/pwned"
    system = {"net": {"devices": {evil: {"qdisc": "htb"}, "veth1": {"qdisc": "noqueue"}, "lo": {"qdisc": "noqueue"}}}}
    rule = RULES["qdisc-lock"]
    commands, missing = fill(rule.commands, rule, system, {})
    rollback, _ = fill(rule.rollback, rule, system, {})
    assert missing == set()
    assert f"tc qdisc replace dev {shlex.quote(evil)} root noqueue" in commands
    assert not any("veth1" in c for c in commands)  # already noqueue: not touched
    assert rollback[0].startswith(f"tc qdisc replace dev {shlex.quote(evil)} root htb")
    # the quoted command is one argument to tc, not two shell commands
    argv = shlex.split(commands[-1])
    assert argv[:5] == ["tc", "qdisc", "replace", "dev", evil]


def test_previous_values_feed_the_rollback():
    system = {"net": {"tcp_congestion_control": "cubic", "busy_poll": 0, "busy_read": 0}}
    rule = RULES["congestion-control"]
    rollback, missing = fill(rule.rollback, rule, system, {})
    assert rollback == ["sysctl -w net.ipv4.tcp_congestion_control=cubic"] and not missing
    rollback, _ = fill(RULES["busy-poll"].rollback, RULES["busy-poll"], system, {})
    assert rollback == ["sysctl -w net.core.busy_poll=0 net.core.busy_read=0"]


def test_unknown_values_stay_as_visible_placeholders():
    rule = RULES["gro"]
    commands, missing = fill(rule.commands, rule, None, {})
    assert commands == ["ethtool -K <device> gro off"] and missing == {"device"}


def test_process_lists_become_separate_quoted_words():
    system = {"processes": [{"pid": 11}, {"pid": 12}]}
    rule = RULES["cpu-locality"]
    commands, missing = fill(rule.commands, rule, system, {})
    loop = next(c for c in commands if "taskset" in c)
    assert "for pid in 11 12; do" in loop
    assert "cpu mask" in missing  # the XPS line is left for the user to fill
    assert subprocess.run(["bash", "-n", "-c", loop]).returncode == 0


def test_a_device_name_with_control_characters_runs_the_same_and_reads_without_them():
    """An interface named with ESC [ 2 J (or U+202E) in it: the command must pass those bytes to
    tc unchanged, and whoever reads the script first must not have the terminal cleared (or the
    line reversed). bash runs each word, in the C locale and in UTF-8."""
    for evil in ("eth\x1b[2J0", "veth\u202e1", "a'b\\c\x07", "tab\tname"):
        system = {"net": {"devices": {evil: {"qdisc": "htb"}}}}
        rule = RULES["qdisc-lock"]
        commands, _ = fill(rule.commands, rule, system, {})
        command = next(c for c in commands if c.startswith("tc qdisc replace"))
        assert command.isprintable() and command.startswith("tc qdisc replace dev $'")
        word = command.split(" ")[4]
        for locale in ("C", "C.UTF-8"):
            done = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, timeout=10,
                                  env={"LC_ALL": locale, "PATH": "/usr/bin:/bin"})
            assert done.stdout.decode() == evil
