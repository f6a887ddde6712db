"""A lesson in a real browser: JupyterLab on a free local port, headless Chromium driven by Playwright.

Runs every cell of lesson 00 (a copy with its outputs cleared, so everything checked is fresh) and
checks: no error output, an explorer's slider renders and moving it changes the figure, and a GIF is
displayed. Screenshots go to ``test-artifacts/browser/``.

Needs Debian's ``chromium`` (``/usr/bin/chromium``; ``make test`` installs it when run as root) and
``playwright`` from PyPI (the dev extra), which drives that browser through its executable path: no
browser download. Skipped, with the reason, only where either is missing.
"""
from __future__ import annotations

import base64
import hashlib
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

ROOT = Path(__file__).resolve().parents[1]
LESSON = "00_setup_and_tour.ipynb"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_ALL_TIMEOUT_S = 300

pytestmark = pytest.mark.slow


def _require_browser():
    if CHROMIUM is None:
        pytest.skip("no chromium executable (Debian: apt-get install -y chromium; `make test` does this as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _lesson_copy(target_dir: Path) -> Path:
    """The lesson without outputs or saved widget state, so every output the test sees is fresh."""
    notebook = json.loads((ROOT / "notebooks" / LESSON).read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    notebook["metadata"].pop("widgets", None)
    target_dir.mkdir(parents=True)
    path = target_dir / LESSON
    path.write_text(json.dumps(notebook, indent=1))
    return path


def _lab_settings(settings_dir: Path) -> None:
    """Every cell in the DOM (no windowing), and no news/update notifications over the page."""
    notebook = settings_dir / "@jupyterlab" / "notebook-extension"
    notebook.mkdir(parents=True)
    (notebook / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    notification = settings_dir / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))


def _start_lab(root_dir: Path, state_dir: Path, port: int, token: str) -> subprocess.Popen:
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", JUPYTERLAB_SETTINGS_DIR=str(state_dir / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(state_dir / "workspaces"), JUPYTER_RUNTIME_DIR=str(state_dir / "runtime"),
               PYTHONUNBUFFERED="1")
    _lab_settings(state_dir / "settings")
    log = open(state_dir / "jupyterlab.log", "w")
    return subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
        *(["--allow-root"] if os.geteuid() == 0 else [])],  # CI containers run as root
        cwd=root_dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_until_answers(process: subprocess.Popen, base: str, token: str, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"JupyterLab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"JupyterLab did not answer within {timeout_s} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


ALL_CELLS_DONE = """() => {
    const errors = [...document.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
        .filter(e => /Traceback|Error displaying widget/.test(e.textContent));
    if (errors.length) return 'error';
    const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')];
    const busy = document.querySelector('.jp-Notebook-ExecutionIndicator[data-status="busy"]');
    return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent)) && !busy ? 'done' : '';
}"""


STARTED = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')]
    .some(p => /\\[(\\d+|\\*)\\]/.test(p.textContent))"""


def _run_all_cells(page, attempts: int = 3) -> None:
    """Run > Run All Cells; clicked again if no cell has started 30 s later (a click while the
    kernel is still connecting can be lost)."""
    for attempt in range(attempts):
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            page.wait_for_function(STARTED, timeout=30_000, polling=500)
            return
        except Exception:
            page.keyboard.press("Escape")
            page.screenshot(path=str(ARTIFACTS / f"run_all_not_started_{attempt}.png"))
    raise AssertionError("Run All Cells did not start any cell (see test-artifacts/browser/)")


def _image_digest(page, image) -> str:
    src = image.get_attribute("src")
    data = page.evaluate("async (src) => { const r = await fetch(src); const b = new Uint8Array(await r.arrayBuffer());"
                         " let s = ''; for (const x of b) s += String.fromCharCode(x); return btoa(s); }", src)
    return hashlib.sha256(base64.b64decode(data)).hexdigest()


def test_lesson_runs_in_jupyterlab_with_widgets_and_gifs(tmp_path):
    sync_playwright = _require_browser()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    root_dir, state_dir = tmp_path / "course", tmp_path / "lab-state"
    state_dir.mkdir()
    notebook_path = _lesson_copy(root_dir / "notebooks")
    port, token = _free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    lab = _start_lab(root_dir, state_dir, port, token)
    try:
        _wait_until_answers(lab, base, token, state_dir / "jupyterlab.log")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(60_000)
                page.goto(f"{base}/lab/tree/notebooks/{LESSON}?token={token}")
                page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
                page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
                page.wait_for_timeout(2_000)  # let the notebook panel settle on its session

                _run_all_cells(page)
                try:
                    page.wait_for_function(ALL_CELLS_DONE, timeout=RUN_ALL_TIMEOUT_S * 1000, polling=1000)
                except Exception:
                    page.screenshot(path=str(ARTIFACTS / "lesson_timeout.png"))
                    raise
                state = page.evaluate(ALL_CELLS_DONE)
                page.screenshot(path=str(ARTIFACTS / "lesson_after_run_all.png"))
                assert state == "done", "a cell raised an error: see test-artifacts/browser/lesson_after_run_all.png"

                # no error outputs, checked again on the saved notebook
                page.keyboard.press("Control+s")
                page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')", timeout=30_000)
                saved = json.loads(notebook_path.read_text())
                errors = [output for cell in saved["cells"] if cell["cell_type"] == "code"
                          for output in cell["outputs"] if output["output_type"] == "error"]
                assert not errors, f"error outputs: {[e['ename'] + ': ' + e['evalue'] for e in errors]}"
                assert all(cell["execution_count"] for cell in saved["cells"] if cell["cell_type"] == "code")

                # a GIF is displayed inline
                gifs = page.locator("img[src^='data:image/gif']")
                assert gifs.count() >= 1, "no GIF image displayed"
                gifs.first.scroll_into_view_if_needed()

                # the first explorer: its slider renders, and moving it redraws the figure
                explorer = page.locator(".widget-vbox", has=page.locator("img.widget-image")).first
                slider = explorer.locator(".widget-hslider").first
                image = explorer.locator("img.widget-image").first
                slider.scroll_into_view_if_needed()
                assert slider.is_visible() and image.is_visible()
                page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle())
                explorer.screenshot(path=str(ARTIFACTS / "widget_before.png"))
                src_before, digest_before = image.get_attribute("src"), _image_digest(page, image)
                readout_before = explorer.locator(".widget-readout").first.inner_text()

                handle = slider.locator(".noUi-handle").first
                handle.focus()
                for _ in range(10):
                    page.keyboard.press("ArrowLeft")
                page.wait_for_function("([img, src]) => img.getAttribute('src') !== src",
                                       arg=[image.element_handle(), src_before], timeout=60_000)
                page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle())
                readout_after = explorer.locator(".widget-readout").first.inner_text()
                assert readout_after != readout_before, "the slider did not move"
                assert _image_digest(page, image) != digest_before, "the figure did not change"
                page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
                page.wait_for_timeout(1_000)  # the last redraw reaches the page
                explorer.screenshot(path=str(ARTIFACTS / "widget_after.png"))
                page.screenshot(path=str(ARTIFACTS / "lesson_widget.png"))
            finally:
                browser.close()
    finally:
        _stop(lab)
        log = state_dir / "jupyterlab.log"
        if log.exists():
            shutil.copy(log, ARTIFACTS / "jupyterlab.log")
