"""An installed package (not a source checkout) finds its rules, samples and schemas, and carries
the parser's C loop where it could be built, or installs without it where it could not."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.test_fast_blocks import CAN_BUILD

REPO = Path(__file__).resolve().parent.parent
REPORT = ("import advisor.paths as p, advisor; print(p.rules_dir()); print(p.samples_dir()); "
          "r = advisor.analyze(p.samples_dir() / 'netfilter'); print(r.top()['rule']); "
          "from advisor.parse import perf_script as s; print(s.HOT_LOOP); print(s.count_blocks.__module__)")


def build_wheel(source: Path, out: Path, env: dict | None = None) -> Path:
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
                           capture_output=True, text=True, timeout=300, env=env)
    assert build.returncode == 0, build.stderr[-2000:]
    return next(out.glob("advisor-*.whl"))


def install_and_report(wheel: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """Install `wheel` under a prefix of its own, run REPORT with it (outside the source tree),
    and return (its site-packages, the lines REPORT printed)."""
    prefix = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True, timeout=60)
    inst = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", "--prefix", str(prefix),
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr[-2000:]
    site = next(prefix.glob("lib/python3*/site-packages"))
    deps = sysconfig.get_paths()["purelib"]  # pandas, rich... from the test environment
    env = dict(os.environ, PYTHONPATH=f"{site}{os.pathsep}{deps}")
    env.pop("ADVISOR_DATA", None)
    env.pop("ADVISOR_PURE_PYTHON", None)
    out = subprocess.run([str(prefix / "bin" / "python"), "-c", REPORT], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert str(REPO) not in out.stdout
    return site, out.stdout.split()


@pytest.mark.slow
def test_wheel_install_finds_rules_and_samples(tmp_path):
    wheel = build_wheel(REPO, tmp_path / "wheels")
    site, (rules, samples, top, hot_loop, module) = install_and_report(wheel, tmp_path)
    prefix = str(tmp_path / "venv")
    assert rules.startswith(prefix) and samples.startswith(prefix)
    assert top == "netfilter"
    if CAN_BUILD:  # the wheel carries the parser's C loop, built for this Python
        assert (hot_loop, module) == ("C", "advisor.parse._fast_blocks")
        assert list(site.glob("advisor/parse/_fast_blocks*.so"))


@pytest.mark.slow
def test_without_a_c_compiler_the_package_installs_and_parses_in_python(tmp_path):
    """The C loop is optional (setup.py): a machine without a compiler gets the same package
    with the pure-Python loop. CC=/bin/false stands in for the missing compiler."""
    source = tmp_path / "source"  # the tracked files only: no build/ of an earlier build
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True,
                           timeout=60).stdout.decode().split("\0")
    for name in filter(None, files):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    wheel = build_wheel(source, tmp_path / "wheels", env={**os.environ, "CC": "/bin/false"})
    assert not [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".so")]
    site, (_, _, top, hot_loop, module) = install_and_report(wheel, tmp_path)
    assert (top, hot_loop, module) == ("netfilter", "Python", "advisor.parse.perf_script")
