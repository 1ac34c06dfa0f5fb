"""The notebook environment in a real browser: JupyterLab on 127.0.0.1 (random port and token),
Debian's Chromium driven by Playwright, the quickstart and the debugging notebook run cell by
cell, and the rendered page checked: DataFrame tables, the injector form (Inject really goes to
the kernel), a process tree that expands on click, the timeline zooming, the debugger showing
its source line. Screenshots go to reports/screens/. Skips only where Chromium or Playwright is
missing."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
SCREENS = ROOT / "reports" / "screens"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (Debian: apt-get "
                       "install chromium; .ci/run installs it)"),
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed "
                       "(pip install -e '.[test]')"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a copy of the notebooks; stopped (with its kernels) at the end."""
    base = tmp_path_factory.mktemp("lab")
    work = base / "notebooks"
    work.mkdir()
    for name in ("01-quickstart.ipynb", "04-debugging.ipynb"):
        shutil.copy(ROOT / "notebooks" / name, work / name)
    settings = base / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # every cell stays in the page (JupyterLab 4 otherwise only renders cells in view)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    news = base / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)      # no "get notified about Jupyter news?" toast (no network here)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(base / "config"),
               JUPYTER_RUNTIME_DIR=str(base / "runtime"), NTOSLAB_CACHE=str(base / "cache"))
    log = open(base / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", "--port-retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={work}", f"--LabApp.user_settings_dir={base / 'settings'}",
         f"--LabApp.workspaces_dir={base / 'workspaces'}", "--LabApp.expose_app_in_browser=True",
         "--ServerApp.log_level=WARN", "--allow-root",
         "--LabApp.extension_manager=readonly"],          # no extension listing from PyPI
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n" +
                                       (base / "lab.log").read_text()[-3000:])
                time.sleep(0.5)
        yield url, token
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(5)
        log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=ARGS, headless=True,
            viewport={"width": 1500, "height": 1900})
        try:
            yield ctx
        finally:
            ctx.close()


def run_notebook(ctx, lab, name: str):
    """Open a notebook, run all cells, wait until every cell has run; return the page."""
    url, token = lab
    page = ctx.new_page()
    # a workspace of its own, reset: only this notebook is open in the page
    page.goto(f"{url}/lab/workspaces/{Path(name).stem}/tree/{name}?token={token}&reset",
              wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=60_000)
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget && "
                           "window.jupyterapp.shell.currentWidget.sessionContext && "
                           "window.jupyterapp.shell.currentWidget.sessionContext.session && "
                           "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                           timeout=60_000)
    page.wait_for_function("window.jupyterapp.shell.currentWidget.sessionContext.session"
                           ".kernel.status === 'idle'", timeout=60_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    # done when every cell has its execution count, or as soon as one shows an error
    page.wait_for_function(
        """() => { const nb = window.jupyterapp.shell.currentWidget.node;
                   if (nb.querySelector('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')) return true;
                   const p = [...nb.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                            .map(e => e.textContent.trim());
                   return p.length > 0 && p.every(t => /^\\[\\d+\\]:$/.test(t)); }""",
        timeout=240_000)
    failed = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    if failed.count():
        SCREENS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENS / f"failed-{name}.png"))
        pytest.fail(f"{name}: a cell failed in JupyterLab: {failed.all_inner_texts()}")
    return page


def shot(locator, name: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(SCREENS / name))


def test_quickstart_in_jupyterlab(lab, browser):
    page = run_notebook(browser, lab, "01-quickstart.ipynb")
    tables = page.locator(".jp-OutputArea-output table.dataframe")
    assert tables.count() >= 4                           # scenario, verdicts, records, maps...
    expect(tables.nth(1)).to_contain_text("DenyPolicy")
    shot(tables.nth(1), "quickstart-verdicts-table.png")

    # the process tree: collapsed below depth 2; a click on ▸ shows the children
    tree = page.locator(".ntl-tree").first
    expect(tree).to_be_visible()
    labels = tree.locator(".ntl-label")
    before = labels.count()
    closed = tree.locator(".ntl-toggle", has_text="▸").first
    closed.click()
    page.wait_for_function("n => document.querySelector('.ntl-tree').querySelectorAll('.ntl-label')"
                           ".length > n", arg=before)
    assert labels.count() > before
    mimikatz = tree.locator(".ntl-label", has_text="mimikatz.exe")
    for _ in range(5):                         # open subtrees until the shell's children show
        if mimikatz.count():
            break
        tree.locator(".ntl-toggle", has_text="▸").first.click()
    expect(mimikatz).to_have_class("ntl-label ntl-denied")
    mimikatz.hover()
    expect(tree.locator(".ntl-tip")).to_contain_text("denied 0xC0000022 by DenyPolicy")
    mimikatz.click()
    expect(tree.locator(".ntl-row")).to_contain_text("sekurlsa::logonpasswords")
    shot(tree, "quickstart-tree-expanded.png")

    # the timeline zooms with the wheel
    timeline = page.locator(".ntl-timeline").first
    view0 = timeline.get_attribute("data-view")
    timeline.locator("svg").hover()
    page.mouse.wheel(0, -400)
    page.wait_for_function("v => document.querySelector('.ntl-timeline').dataset.view !== v", arg=view0)
    shot(timeline, "quickstart-timeline-zoomed.png")

    # the injector: a form, and Inject goes through the kernel to the emulated hook
    injector = page.locator(".ntoslab-injector")
    expect(injector.locator("textarea")).to_have_value("mimikatz.exe privilege::debug")
    injector.get_by_role("button", name="Inject").click()
    expect(injector.locator(".ntoslab-verdict")).to_contain_text("DENIED", timeout=30_000)
    expect(injector.locator(".ntoslab-verdict")).to_contain_text("0xC0000022")
    shot(injector, "quickstart-injector.png")

    # "Debug this event": the step debugger opens at the first instruction; stepping moves on
    injector.get_by_role("button", name="Debug this event").click()
    dbg = injector.locator(".ntoslab-debugger")
    expect(dbg).to_contain_text("entry at ProcessMonitor pc 0", timeout=30_000)
    first = dbg.locator(".ntl-src tr.cur").inner_text()
    dbg.get_by_role("button", name="step line").click()
    expect(dbg).to_contain_text("line at ProcessMonitor")
    assert dbg.locator(".ntl-src tr.cur").inner_text() != first
    dbg.get_by_role("button", name="continue").click()
    expect(dbg).to_contain_text("exit at ProcessMonitor")
    shot(dbg, "quickstart-debugger-stepped.png")

    inspector = page.locator(".ntoslab-map-inspector")
    # command_map: one entry per process created (8 in the scenario); the reader consumes the
    # ring buffer as it goes, so its tab shows 0 records
    inspector.get_by_role("tab", name="command_map").click()
    cmd = inspector.locator(".ntoslab-map", has_text="command_map (")
    expect(cmd).to_contain_text(": 8 entries")
    inspector.get_by_role("button", name="Refresh").click()
    expect(cmd).to_contain_text(": 9 entries")             # ... and the event injected above
    expect(cmd.locator("td", has_text="6000")).to_have_count(1)      # keyed by the new pid
    shot(inspector, "quickstart-map-inspector.png")
    page.close()


def test_debugging_notebook_in_jupyterlab(lab, browser):
    page = run_notebook(browser, lab, "04-debugging.ipynb")
    dbg = page.locator(".ntoslab-debugger").first
    expect(dbg).to_contain_text("EncodedDeny: pc ")                  # the fault, where it is
    expect(dbg).to_contain_text("just past the end of 'command line'")
    current = dbg.locator(".ntl-src tr.cur")
    expect(current).to_contain_text("if (cmd[i] == '-' && cmd[i + 1] == 'e'")
    expect(dbg).to_contain_text("end of command line")          # a register's region
    assert dbg.get_by_role("button", name="step insn").is_disabled()    # the run has ended
    shot(dbg, "debugging-debugger-at-fault.png")
    tables = page.locator(".jp-OutputArea-output table.dataframe")
    assert tables.count() >= 2                                   # registers, loop walk
    page.close()
