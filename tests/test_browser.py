"""The HTML report in a real headless Chromium (Debian's `chromium` package): it loads without script
errors, its script initialises the flame graph (the page marks <html data-advisor-ready>), search and
zoom work from a link (#search=...&zoom=...), and a screenshot shows the report, netfilter's colour
included. Console messages are read from Chromium's log (--enable-logging=stderr)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

import advisor
from advisor.paths import samples_dir
from advisor.report import flamegraph, html

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]


def chromium(url: str, *extra: str, timeout: float = 60) -> tuple[str, str]:
    """Run Chromium on `url` with a fresh profile; (stdout, stderr). Its whole process group dies after."""
    with tempfile.TemporaryDirectory(prefix="advisor-chromium-") as profile:
        proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, url],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # renderer and GPU helpers too
            except ProcessLookupError:
                pass
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    return out, err


@pytest.fixture(scope="module")
def result():
    return advisor.analyze(samples_dir() / "netfilter")


@pytest.fixture(scope="module")
def report(result, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("browser") / "report.html"
    path.write_text(html.render(result), encoding="utf-8")
    return path


def console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if ":CONSOLE" in line and ("Uncaught" in line or "Error" in line)]


def test_report_loads_and_its_script_initialises(report, result):
    dom, log = chromium(report.as_uri(), "--dump-dom")
    assert console_errors(log) == []
    root = re.search(r"<html[^>]*>", dom).group(0)
    assert 'data-advisor-ready="1"' in root and "data-advisor-error" not in root, root
    assert re.search(r'<svg[^>]*class="advisor-flamegraph"[^>]*data-ready="1"', dom)
    table = re.search(r'<table id="ranking">.*?</table>', dom, re.S).group(0)
    assert table.count("<tr>") == 1 + len(result.data["recommendations"])


def test_a_script_error_would_be_seen(report, tmp_path):
    """The check above can fail: the same page with a broken script is caught both ways."""
    broken = tmp_path / "broken.html"
    broken.write_text(report.read_text().replace("</main>", "<script>notDefined();</script></main>"))
    dom, log = chromium(broken.as_uri(), "--dump-dom")
    assert "notDefined" in " ".join(console_errors(log))
    assert 'data-advisor-error="Uncaught ReferenceError: notDefined is not defined"' in dom


def test_search_and_zoom_from_a_link(report, result):
    dom, log = chromium(report.as_uri() + "#search=nf_hook_slow&zoom=nf_hook_slow", "--dump-dom")
    assert console_errors(log) == []
    svg = re.search(r"<svg[^>]*advisor-flamegraph[^>]*>", dom).group(0)
    searched = float(re.search(r'data-search-pct="([\d.]+)"', svg).group(1))
    assert searched == pytest.approx(result.profile.share("nf_hook_slow").pct, abs=0.3)
    assert 'data-zoomed="nf_hook_slow"' in svg
    # the zoomed frame fills the width; frames outside its subtree and ancestors are hidden
    inner = flamegraph.WIDTH - 2 * flamegraph.PAD
    hooks = re.findall(r'<g class="f[^"]*" data-d="\d+" data-n="nf_hook_slow"[^>]*><title>[^<]*</title>'
                       r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', dom)
    assert (f"{flamegraph.PAD:.2f}", f"{inner:.2f}") in hooks
    assert dom.count("fg-hide") > 100 and "fg-match" in dom
    status = re.search(r"matched (\d+\.\d)", dom)  # the status line
    assert status and float(status.group(1)) == pytest.approx(searched, abs=0.1)


def test_screenshot_shows_the_report(report, tmp_path):
    import numpy as np
    from PIL import Image, ImageStat

    shot = tmp_path / "report.png"
    chromium(report.as_uri() + "#zoom=nf_hook_slow", f"--screenshot={shot}", "--window-size=1280,2600")
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2600)
    assert min(ImageStat.Stat(image.convert("L")).stddev) > 20  # not blank
    red = bytes(int(flamegraph.RULE_COLOURS[0][i:i + 2], 16) for i in (1, 3, 5))
    near = int((np.abs(np.asarray(image, dtype=int) - np.array(list(red))) <= 6).all(axis=2).sum())
    assert near > 1180 * 10  # the zoomed nf_hook_slow frame alone spans the graph's width
