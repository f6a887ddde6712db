"""The course in a real browser: JupyterLab and Notebook 7 on a free local port, headless Chromium driven by Playwright.

Each server is rooted at a copy of the course laid out as the repository is (START_HERE.ipynb beside
notebooks/ and exercises/), as ``make lab`` and ``make notebook`` start it. The tests check:

- JupyterLab: the start page's link opens lesson 00, and the lesson's link opens its exercise notebook
  (a server rooted at notebooks/ refused it: "outside root contents directory");
- JupyterLab: every cell of lesson 00 runs (a copy with its outputs cleared, so everything checked is
  fresh) with no error output, an explorer's slider renders and moving it changes the figure, and a GIF
  is displayed;
- Notebook 7 (``jupyter notebook``): the start page's link opens lesson 00 there, and after running it an
  explorer widget works and a GIF is displayed.

Screenshots go to ``test-artifacts/browser/``. Needs Debian's ``chromium`` (``/usr/bin/chromium``;
``make test`` installs it when run as root) and ``playwright`` from PyPI (the dev extra), which drives that
browser through its executable path: no browser download. Skipped, with the reason, only where either is
missing.
"""
from __future__ import annotations

import base64
import contextlib
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
START_PAGE = "START_HERE.ipynb"
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


def _cleared(notebook_path: Path) -> str:
    """The notebook without outputs or saved widget state, so every output the test sees is fresh."""
    notebook = json.loads(notebook_path.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    notebook["metadata"].pop("widgets", None)
    return json.dumps(notebook, indent=1)


def _course_copy(root_dir: Path) -> Path:
    """The course as the repository lays it out (START_HERE.ipynb, lesson 00 cleared, the exercises);
    returns the lesson's path."""
    (root_dir / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / START_PAGE, root_dir / START_PAGE)
    shutil.copytree(ROOT / "exercises", root_dir / "exercises")
    lesson = root_dir / "notebooks" / LESSON
    lesson.write_text(_cleared(ROOT / "notebooks" / LESSON))
    return lesson


def _lab_settings(settings_dir: Path) -> None:
    """Every cell in the DOM (no windowing), and no news/update notifications over the page."""
    notebook = settings_dir / "@jupyterlab" / "notebook-extension"
    notebook.mkdir(parents=True)
    (notebook / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    notification = settings_dir / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))


def _start_server(front_end: str, root_dir: Path, state_dir: Path, port: int, token: str) -> subprocess.Popen:
    """``front_end``: "jupyterlab" or "notebook" (Notebook 7), the Python module that serves it."""
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", JUPYTERLAB_SETTINGS_DIR=str(state_dir / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(state_dir / "workspaces"), JUPYTER_RUNTIME_DIR=str(state_dir / "runtime"),
               PYTHONUNBUFFERED="1")
    _lab_settings(state_dir / "settings")  # Notebook 7 reads JupyterLab's settings
    log = open(state_dir / f"{front_end}.log", "w")
    return subprocess.Popen(
        [sys.executable, "-m", front_end, "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
        *(["--allow-root"] if os.geteuid() == 0 else [])],  # CI containers run as root
        cwd=root_dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


@contextlib.contextmanager
def _browser_on(front_end: str, tmp_path: Path):
    """A server of ``front_end`` on a course copy and a Chromium page: yields ``(page, base_url, token, lesson)``."""
    sync_playwright = _require_browser()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    root_dir, state_dir = tmp_path / "course", tmp_path / "server-state"
    state_dir.mkdir()
    lesson = _course_copy(root_dir)
    port, token = _free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    server = _start_server(front_end, root_dir, state_dir, port, token)
    log = state_dir / f"{front_end}.log"
    try:
        _wait_until_answers(server, base, token, log)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(60_000)
                yield page, base, token, lesson
            finally:
                browser.close()
    finally:
        _stop(server)
        if log.exists():
            shutil.copy(log, ARTIFACTS / log.name)


def _wait_until_answers(process: subprocess.Popen, base: str, token: str, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the Jupyter server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the Jupyter server did not answer within {timeout_s} s:\n{log.read_text()[-3000:]}")


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


def _drag_left(page, handle, slider) -> None:
    """Drag the slider's handle a quarter of the track to the left with the mouse (arrow keys are no use:
    Notebook 7 reads ArrowLeft as "collapse this heading's section")."""
    track = slider.bounding_box()
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - track["width"] / 4, y, steps=8)
    page.mouse.up()


def _check_explorer_redraws(page, prefix: str) -> None:
    """The first explorer: its slider renders, and moving it redraws the figure."""
    explorer = page.locator(".widget-vbox", has=page.locator("img.widget-image")).first
    slider = explorer.locator(".widget-hslider").first
    image = explorer.locator("img.widget-image").first
    slider.scroll_into_view_if_needed()
    assert slider.is_visible() and image.is_visible()
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    explorer.screenshot(path=str(ARTIFACTS / f"{prefix}widget_before.png"))
    src_before, digest_before = image.get_attribute("src"), _image_digest(page, image)
    readout_before = explorer.locator(".widget-readout").first.inner_text()

    _drag_left(page, slider.locator(".noUi-handle").first, slider)
    page.wait_for_function("([img, src]) => img.getAttribute('src') !== src",
                           arg=[image.element_handle(), src_before], timeout=60_000)
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    readout_after = explorer.locator(".widget-readout").first.inner_text()
    assert readout_after != readout_before, "the slider did not move"
    assert _image_digest(page, image) != digest_before, "the figure did not change"
    page.wait_for_timeout(1_000)  # the last redraw reaches the page
    explorer.screenshot(path=str(ARTIFACTS / f"{prefix}widget_after.png"))


def _check_gif_displayed(page) -> None:
    gifs = page.locator("img[src^='data:image/gif']")
    assert gifs.count() >= 1, "no GIF image displayed"
    gifs.first.scroll_into_view_if_needed()
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=gifs.first.element_handle())


def _run_lesson_to_the_end(page, prefix: str) -> None:
    _run_all_cells(page)
    try:
        page.wait_for_function(ALL_CELLS_DONE, timeout=RUN_ALL_TIMEOUT_S * 1000, polling=1000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / f"{prefix}lesson_timeout.png"))
        raise
    state = page.evaluate(ALL_CELLS_DONE)
    page.screenshot(path=str(ARTIFACTS / f"{prefix}lesson_after_run_all.png"))
    assert state == "done", f"a cell raised an error: see test-artifacts/browser/{prefix}lesson_after_run_all.png"


def _visible_heading(page, text: str):
    return page.locator(".jp-RenderedMarkdown h1", has_text=text).locator("visible=true").first


def test_start_page_links_open_the_lesson_and_then_its_exercises_in_jupyterlab(tmp_path):
    with _browser_on("jupyterlab", tmp_path) as (page, base, token, _):
        page.goto(f"{base}/lab/tree/{START_PAGE}?token={token}")
        page.locator(".jp-RenderedMarkdown a", has_text="Setup and a tour of the tools").first.click()
        lesson_heading = _visible_heading(page, "00 · Setup and a tour of the tools")
        lesson_heading.wait_for(timeout=120_000)

        # the lesson's own link to its exercises: outside a server rooted at notebooks/, inside this one
        link = page.locator(".jp-RenderedMarkdown a[href*='exercises/00_setup_and_tour.ipynb']").locator("visible=true")
        link.first.click()
        exercise_heading = _visible_heading(page, "Exercises 00")
        try:
            exercise_heading.wait_for(timeout=120_000)
        finally:
            page.screenshot(path=str(ARTIFACTS / "start_page_to_exercise.png"))
        assert page.locator(".jp-Dialog", has_text="outside root").count() == 0
        assert page.locator(".jp-CodeCell", has_text="NotImplementedError").count() >= 1, "the exercise's stubs"


def test_lesson_runs_in_jupyterlab_with_widgets_and_gifs(tmp_path):
    with _browser_on("jupyterlab", tmp_path) as (page, base, token, notebook_path):
        page.goto(f"{base}/lab/tree/notebooks/{LESSON}?token={token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
        page.wait_for_timeout(2_000)  # let the notebook panel settle on its session
        _run_lesson_to_the_end(page, "")

        # no error outputs, checked again on the saved notebook
        page.keyboard.press("Control+s")
        page.wait_for_function("() => !document.querySelector('.jp-mod-dirty')", timeout=30_000)
        saved = json.loads(notebook_path.read_text())
        errors = [output for cell in saved["cells"] if cell["cell_type"] == "code"
                  for output in cell["outputs"] if output["output_type"] == "error"]
        assert not errors, f"error outputs: {[e['ename'] + ': ' + e['evalue'] for e in errors]}"
        assert all(cell["execution_count"] for cell in saved["cells"] if cell["cell_type"] == "code")

        _check_gif_displayed(page)
        _check_explorer_redraws(page, "")
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "lesson_widget.png"))


def test_course_opens_in_notebook_7_with_widgets_and_gifs(tmp_path):
    with _browser_on("notebook", tmp_path) as (page, base, token, _):
        page.goto(f"{base}/tree?token={token}")  # Notebook 7's file browser, at the repository's root
        for entry in (START_PAGE, "notebooks", "exercises"):
            page.locator(".jp-DirListing-item", has_text=entry).first.wait_for(timeout=120_000)

        page.goto(f"{base}/notebooks/{START_PAGE}?token={token}")
        link = page.locator(".jp-RenderedMarkdown a", has_text="Setup and a tour of the tools").first
        link.wait_for(timeout=120_000)
        with page.context.expect_page(timeout=60_000) as opened:  # Notebook 7 opens a document per browser tab
            link.click()
        lesson = opened.value
        lesson.set_default_timeout(60_000)
        _visible_heading(lesson, "00 · Setup and a tour of the tools").wait_for(timeout=120_000)
        assert "/notebooks/notebooks/" + LESSON in lesson.url, lesson.url
        lesson.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=120_000)
        lesson.wait_for_timeout(3_000)  # let the notebook settle on its kernel
        _run_lesson_to_the_end(lesson, "notebook7_")

        _check_gif_displayed(lesson)
        _check_explorer_redraws(lesson, "notebook7_")
        lesson.screenshot(path=str(ARTIFACTS / "notebook7_lesson_widget.png"))
