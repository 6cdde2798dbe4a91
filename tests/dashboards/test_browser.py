"""The real thing: `roadworthy dashboard` served on localhost, every page loaded in headless Chromium.

Needs Debian's chromium (driven by pip playwright through ``executable_path``).
Screenshots go to ``$ROADWORTHY_SCREENSHOTS`` (default: the test's temporary folder).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Page, and what must be drawn on it.
EXPECT = {
    "Risk map": ".js-plotly-plot .heatmaplayer, .js-plotly-plot .hm",
    "Disengagements": ".js-plotly-plot",
    "Policy comparison": ".js-plotly-plot",
    "Episode replay": ".js-plotly-plot",
    "Data health": "[data-testid='stDataFrame']",
    "Fleet reports": ".js-plotly-plot",
    "Crash reports": ".js-plotly-plot",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(sim_logs, dash_report, dash_model, dmv_dir, sgo_dir, tmp_path):
    port = free_port()
    exe = Path(sys.executable).parent / "roadworthy"
    cmd = [str(exe), "dashboard", str(sim_logs), "--report", str(dash_report), "--model", str(dash_model)]
    cmd += ["--dmv", str(dmv_dir), "--sgo", str(sgo_dir)]
    env = {**os.environ, "ROADWORTHY_CACHE": str(tmp_path / "cache")}
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError((tmp_path / "server.log").read_text()) from None
            time.sleep(0.5)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        raise RuntimeError("the dashboard did not start within 120 s")
    yield url
    proc.terminate()  # the command stops its Streamlit server on SIGTERM
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()
    assert proc.returncode == 0, (tmp_path / "server.log").read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_every_page_renders_in_a_real_browser(server, tmp_path):
    shots = Path(os.environ.get("ROADWORTHY_SCREENSHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server, timeout=120_000)
        page.get_by_text("roadworthy", exact=True).first.wait_for(timeout=120_000)
        for name, selector in EXPECT.items():
            page.locator("[data-testid='stSidebar']").get_by_text(name, exact=True).click()
            page.get_by_role("heading", name=name).first.wait_for(timeout=120_000)
            page.locator(selector).first.wait_for(state="visible", timeout=120_000)
            # Streamlit shows exceptions in an element of its own.
            assert page.locator("[data-testid='stException']").count() == 0, name
            page.wait_for_timeout(500)
            page.screenshot(path=str(shots / f"{name.lower().replace(' ', '-')}.png"), full_page=True)
        browser.close()
    assert not errors, errors
    assert len(list(shots.glob("*.png"))) == len(EXPECT)
