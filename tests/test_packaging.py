"""An installed package (not a source checkout) finds its rules, samples and schemas."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.test_fast_blocks import CAN_BUILD

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_install_finds_rules_and_samples(tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(wheels.glob("advisor-*.whl"))
    prefix = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True, timeout=60)
    inst = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", "--prefix", str(prefix),
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr[-2000:]
    site = next(prefix.glob("lib/python3*/site-packages"))
    deps = sysconfig.get_paths()["purelib"]  # pandas, rich... from the test environment
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{deps}")
    env.pop("ADVISOR_DATA", None)
    py = prefix / "bin" / "python"
    code = ("import advisor.paths as p, advisor; print(p.rules_dir()); print(p.samples_dir()); "
            "r = advisor.analyze(p.samples_dir() / 'netfilter'); print(r.top()['rule']); "
            "from advisor.parse import perf_script as s; print(s.HOT_LOOP); print(s.count_blocks.__module__)")
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    rules, samples, top, hot_loop, module = out.stdout.split()
    assert rules.startswith(str(prefix)) and samples.startswith(str(prefix)), out.stdout
    assert top == "netfilter"
    if CAN_BUILD:  # the wheel carries the parser's C loop, built for this Python
        assert (hot_loop, module) == ("C", "advisor.parse._fast_blocks") and \
            list(site.glob("advisor/parse/_fast_blocks*.so")), out.stdout
    assert str(REPO) not in out.stdout
