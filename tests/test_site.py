"""The course's website (``make site``, docs/site.md): built once per test session, as ``make site`` builds it.

- the build is clean with warnings as errors, with and without the solutions (``SOLUTIONS=0``);
- every notebook of START_HERE's table has a page, and the sidebar lists them in the table's order;
- no local link, image or anchor of the built pages is broken, and no page loads anything from another host
  (CI and a learner offline have no network; MathJax and the widget manager are served from the site);
- every lesson page shows the outputs stored in its notebook (nothing is executed at build time);
- in a real browser (Debian's chromium through Playwright, as tests/test_browser.py; skipped without it), a
  lesson page's images load, its maths is typeset and its saved widgets render, and the start page's table
  links open their pages.
"""
from __future__ import annotations

import contextlib
import functools
import html
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "site"))
import course_toc  # noqa: E402  (site/course_toc.py)

pytest.importorskip("sphinx", reason="the docs extra is not installed (pip install -e '.[docs]'; `make setup` does)")
pytest.importorskip("myst_nb", reason="the docs extra is not installed (pip install -e '.[docs]')")

CHAPTERS = course_toc.read_course_table(ROOT)
LESSON = "notebooks/00_setup_and_tour"
ARTIFACTS = ROOT / "test-artifacts" / "site"


def _build_command(out: Path) -> list[str]:
    """``make site``'s command, into ``out``/html."""
    return [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-c", str(ROOT / "site"),
            "-d", str(out / "doctrees"), str(ROOT), str(out / "html")]


@pytest.fixture(scope="session")
def builds(tmp_path_factory) -> dict[bool, Path]:
    """The site with the solutions (True) and without (False), built side by side once per session; fails
    with Sphinx's own output on any warning."""
    running = {}
    for solutions in (True, False):
        out = tmp_path_factory.mktemp("site" if solutions else "site-no-solutions")
        env = dict(os.environ, PGCOURSE_SITE_SOLUTIONS="1" if solutions else "0")
        running[solutions] = (out, subprocess.Popen(_build_command(out), cwd=ROOT, env=env, text=True,
                                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    failures = []
    for solutions, (out, process) in running.items():
        output, _ = process.communicate(timeout=600)
        if process.returncode != 0:
            failures.append(f"the site build failed (solutions={solutions}):\n{output[-6000:]}")
    assert not failures, "\n".join(failures)
    return {solutions: out / "html" for solutions, (out, _) in running.items()}


@pytest.fixture(scope="session")
def site(builds) -> Path:
    """The site with the solutions, as `make site` builds it."""
    return builds[True]


@pytest.fixture(scope="session")
def site_without_solutions(builds) -> Path:
    return builds[False]


class _Page(HTMLParser):
    """The links (a href), the resources (img/script src, link href) and the ids of one HTML page."""

    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.resources: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if attrs.get(key):
                self.ids.add(attrs[key])
        if tag == "a" and attrs.get("href") is not None:
            self.links.append(attrs["href"])
        elif tag in ("img", "script", "source", "iframe") and attrs.get("src"):
            self.resources.append(attrs["src"])
        elif tag == "link" and attrs.get("href"):
            self.resources.append(attrs["href"])


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _is_local(url: str) -> bool:
    return urllib.parse.urlsplit(url).scheme == "" and not url.startswith("//")


def _pages(html_root: Path) -> list[Path]:
    """The site's pages (the theme's templates copied into _static/ are not pages)."""
    return [path for path in sorted(html_root.rglob("*.html")) if "_static" not in path.relative_to(html_root).parts]


def broken_links(html_root: Path) -> list[str]:
    """Every local ``<a href>``, ``<img src>``, ``<script src>`` and ``<link href>`` of every page under
    ``html_root`` whose file is missing, or whose ``#anchor`` is no id (or ``<a name>``) of its target page."""
    broken = []
    for page_path in _pages(html_root):
        page = _parse(page_path)
        for url in page.links + page.resources:
            if not _is_local(url):
                continue
            parts = urllib.parse.urlsplit(url)
            target = page_path if parts.path == "" else (page_path.parent / urllib.parse.unquote(parts.path)).resolve()
            where = f"{page_path.relative_to(html_root)}: {url}"
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{where} (no file {target})")
            elif parts.fragment and target.suffix == ".html" and urllib.parse.unquote(parts.fragment) not in _parse(target).ids:
                broken.append(f"{where} (no #{parts.fragment} in {target.name})")
    return broken


def test_every_page_of_the_course_table_is_on_the_site(site):
    pages = [page for chapter in CHAPTERS for page in (chapter.lesson, chapter.exercises, chapter.solutions) if page]
    assert len(pages) == 31, "START_HERE's table: 11 lessons (04c and 06c optional), 10 exercise and 10 solution notebooks"
    missing = [name for name, _ in pages if not (site / f"{name}.html").is_file()]
    assert not missing, f"no page for {missing}"
    assert (site / "START_HERE.html").is_file() and (site / "index.html").is_file()
    for guide in course_toc.GUIDES:
        assert (site / f"{guide}.html").is_file(), guide


def _title(page: Path) -> str:
    """The page's own title (its first heading), without the site's name after the dash, its apostrophes as typed
    (Sphinx's smart quotes make "PPO's" "PPO\u2019s")."""
    text = page.read_text(encoding="utf-8")
    title = html.unescape(text[text.index("<title>") + 7:text.index("</title>")]).split(" \u2014 ")[0]
    return title.replace("\u2019", "'")


def test_the_start_page_says_what_a_static_page_cannot_do(site):
    """START_HERE tells a learner to run each lesson; on the site a note says that nothing runs there."""
    text = re.sub(r"<[^>]+>", "", (site / "START_HERE.html").read_text(encoding="utf-8"))  # the words only
    assert "This is the course as a website" in text and "Jupyter: make lab" in text
    notebook = json.loads(course_toc.with_site_note((ROOT / "START_HERE.ipynb").read_text()))
    assert course_toc.SITE_NOTE in notebook["cells"][0]["source"].split("\n\n", 2)[1]  # right under the title
    assert len(notebook["cells"]) == len(json.loads((ROOT / "START_HERE.ipynb").read_text())["cells"])
    # issue 48: the same page said "Run All Cells" and "Nothing runs here"; the site's version reads the lessons
    assert "Run All Cells" not in text and "Read the lesson." in text and "come back to this tab" not in text
    assert "<img" in (site / "START_HERE.html").read_text(encoding="utf-8")  # the home page has a picture


def test_page_titles_are_uniform(site):
    """A lesson's title is "NN · <its title in START_HERE's table>" (lesson 08 was "Lesson 08 · ...", unlike
    the eight before it); exercises are "Exercises NN · <title>" and their solutions "Solutions NN · <the
    same title>" (the solution notebooks share their exercises' title, and a reader could not tell the pages
    apart)."""
    wrong = []
    for chapter in CHAPTERS:
        if chapter.lesson and _title(site / f"{chapter.lesson[0]}.html") != f"{chapter.number} · {chapter.lesson[1]}":
            wrong.append(_title(site / f"{chapter.lesson[0]}.html"))
        if not chapter.exercises:  # 04c: an optional lesson, no exercises
            continue
        exercises = _title(site / f"{chapter.exercises[0]}.html")
        if not exercises.startswith(f"Exercises {chapter.number} · "):
            wrong.append(exercises)
        if _title(site / f"{chapter.solutions[0]}.html") != exercises.replace("Exercises", "Solutions", 1):
            wrong.append(_title(site / f"{chapter.solutions[0]}.html"))
    assert not wrong, wrong


def test_the_sidebar_follows_the_course_table(site):
    """The start page's sidebar lists the pages in the table's order: each chapter's lesson, exercises,
    solutions, then the guides."""
    page = _parse(site / "START_HERE.html")
    sidebar = [link.removesuffix(".html") for link in page.links
               if link.endswith(".html") and not link.startswith(("#", "http")) and "genindex" not in link
               and "search" not in link]
    table = course_toc.toc(CHAPTERS, [(guide, "") for guide in course_toc.GUIDES])
    expected = course_toc.documents(table)[1:]
    first = [doc for doc in dict.fromkeys(sidebar) if doc in expected]
    assert first == expected, f"sidebar order {first}"


def test_no_broken_local_link_image_or_anchor(site):
    broken = broken_links(site)
    assert not broken, f"{len(broken)} broken links, e.g.:\n" + "\n".join(broken[:30])


def test_the_link_check_finds_a_broken_file_and_a_broken_anchor(tmp_path):
    """The check itself: a missing page, a missing image and a missing anchor are each reported; an anchor
    that exists, an external link and a link to the page itself are not."""
    (tmp_path / "b.html").write_text('<h1 id="here">B</h1>')
    (tmp_path / "a.html").write_text('<a href="b.html#here">ok</a> <a href="b.html#gone">x</a> <a href="c.html">x</a>'
                                     '<img src="_images/no.png"> <a href="https://example.org/">ext</a>'
                                     '<a href="#top" id="top">self</a>')
    folder = tmp_path.resolve()
    assert broken_links(tmp_path) == [
        "a.html: b.html#gone (no #gone in b.html)",
        f"a.html: c.html (no file {folder / 'c.html'})",
        f"a.html: _images/no.png (no file {folder / '_images' / 'no.png'})",
    ]


def test_no_page_loads_anything_from_another_host(site):
    """Scripts, styles, fonts' stylesheets and images all come from the site (links to papers may leave it)."""
    outside = [f"{path.relative_to(site)}: {url}" for path in _pages(site)
               for url in _parse(path).resources if not _is_local(url) and not url.startswith("data:")]
    assert not outside, "\n".join(outside[:20])
    lesson = _parse(site / f"{LESSON}.html")
    assert any("_static/mathjax/tex-chtml.js" in url for url in lesson.resources), "MathJax from the site"
    assert any("_static/widgets/embed.js" in url for url in lesson.resources), "the widget manager from the site"
    assert (site / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir(), "MathJax's fonts"


def test_every_notebook_page_opens_its_own_notebook_in_colab_at_the_release(site):
    """The theme's Colab button names the page's own notebook at the tag the notebooks' badges name (one setting:
    pyproject's [project.urls] Repository and version; the badge cells are left off the pages, remove-cell)."""
    from pgcourse.course.colab_cells import BADGE_IMAGE, release_from_pyproject

    release = release_from_pyproject((ROOT / "pyproject.toml").read_text())
    pages = [page[0] for chapter in CHAPTERS for page in (chapter.lesson, chapter.exercises, chapter.solutions)
             if page]
    missing = [page for page in pages if release.colab_url(f"{page}.ipynb") not in _parse(site / f"{page}.html").links]
    assert not missing, f"no Colab button opening {release.colab_url('<page>.ipynb')} on {missing}"
    assert not [path for path in _pages(site) if BADGE_IMAGE in path.read_text(encoding="utf-8")]


class _Cells(HTMLParser):
    """For each code cell of a myst-nb page (div.cell), its number of output blocks and of images in them."""

    def __init__(self):
        super().__init__()
        self.cells: list[dict] = []
        self._stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        role = "cell" if "cell" in classes else "output" if "cell_output" in classes else ""
        if tag == "div":
            self._stack.append(role)
            if role == "cell":
                self.cells.append({"outputs": 0, "images": 0})
            elif role == "output":
                self.cells[-1]["outputs"] += 1
        elif tag == "img" and "output" in self._stack:
            self.cells[-1]["images"] += 1

    def handle_endtag(self, tag):
        if tag == "div" and self._stack:
            self._stack.pop()


@pytest.mark.parametrize("lesson", [chapter.lesson[0] for chapter in CHAPTERS if chapter.lesson])
def test_every_lesson_page_shows_the_outputs_stored_in_its_notebook(site, lesson):
    """Cell by cell: a code cell with stored outputs has them on its page (images as images), a cell without
    none; and the lesson was saved run (every code cell numbered: the site executes nothing)."""
    notebook = json.loads((ROOT / f"{lesson}.ipynb").read_text())
    # a cell tagged remove-cell (the Colab set-up cell) is not on the page: the site leaves it out
    code = [cell for cell in notebook["cells"]
            if cell["cell_type"] == "code" and "remove-cell" not in cell.get("metadata", {}).get("tags", [])]
    assert all(cell["execution_count"] for cell in code), f"{lesson} was saved with cells not run"
    assert sum(bool(cell["outputs"]) for cell in code) >= len(code) // 2, f"{lesson} lost its outputs"
    parser = _Cells()
    parser.feed((site / f"{lesson}.html").read_text(encoding="utf-8"))
    assert len(parser.cells) == len(code), f"{len(parser.cells)} code cells on the page, {len(code)} in {lesson}"
    for index, (cell, shown) in enumerate(zip(code, parser.cells)):
        images = sum(1 for output in cell["outputs"] for mime in output.get("data", {})
                     if mime in ("image/png", "image/gif"))
        where = f"{lesson}, code cell {index + 1}: {''.join(cell['source'])[:60]!r}"
        assert shown["outputs"] == (1 if cell["outputs"] else 0), where
        assert shown["images"] >= images, f"{where}: {images} stored images, {shown['images']} shown"


def test_without_solutions_there_is_no_solution_page_and_no_link_to_one(site_without_solutions):
    site = site_without_solutions
    assert not (site / "solutions").exists()
    assert all((site / f"{chapter.exercises[0]}.html").is_file() for chapter in CHAPTERS if chapter.exercises)
    assert not [url for path in _pages(site) for url in _parse(path).links if "solutions/" in url]
    assert course_toc.LEFT_OUT in (site / "START_HERE.html").read_text(encoding="utf-8")
    broken = broken_links(site)
    assert not broken, "\n".join(broken[:30])


def test_solution_links_become_a_note_only_for_solutions():
    text = ("| 00 | [Setup](notebooks/00_setup_and_tour.ipynb) | [Episodes](exercises/00_setup_and_tour.ipynb) | "
            "[solved](solutions/00_setup_and_tour.ipynb) |\nsee [the solution](../solutions/04_ppo.ipynb#part-2)")
    assert course_toc.without_solution_links(text) == (
        "| 00 | [Setup](notebooks/00_setup_and_tour.ipynb) | [Episodes](exercises/00_setup_and_tour.ipynb) | "
        f"{course_toc.LEFT_OUT} |\nsee {course_toc.LEFT_OUT}")


def test_a_solution_notebook_is_retitled_and_nothing_else_changes():
    source = json.dumps({"cells": [{"cell_type": "code", "source": "x = 1", "outputs": []},
                                   {"cell_type": "markdown", "source": ["# Exercises 04b · PPO\n", "# Exercises 9"]}]})
    retitled = json.loads(course_toc.as_solutions(source))
    assert retitled["cells"][1]["source"] == "# Solutions 04b · PPO\n# Exercises 9"
    assert retitled["cells"][0] == json.loads(source)["cells"][0]
    with pytest.raises(ValueError, match="first heading"):
        course_toc.as_solutions(json.dumps({"cells": [{"cell_type": "markdown", "source": "# Lesson 1"}]}))


def test_the_colab_badge_cell_before_a_solutions_title_is_passed_over():
    """The badge's cell (tagged remove-cell, left off the page) comes before the title; the title is retitled."""
    badge = {"cell_type": "markdown", "metadata": {"tags": ["colab-badge", "remove-cell"]}, "source": "[![Open]"}
    source = json.dumps({"cells": [badge, {"cell_type": "markdown", "metadata": {}, "source": "# Exercises 01 · R"}]})
    retitled = json.loads(course_toc.as_solutions(source))
    assert [cell["source"] for cell in retitled["cells"]] == ["[![Open]", "# Solutions 01 · R"]


def test_the_course_table_is_read_row_by_row():
    rows = course_toc.course_table({"cells": [{"cell_type": "markdown", "source": [
        "| # | lesson | exercises | solved |\n", "|---|---|---|---|\n",
        "| 00 | [Setup](notebooks/00_a.ipynb) | [Episodes](exercises/00_a.ipynb) | [solved](solutions/00_a.ipynb) |\n",
        "| 04b | no new lesson | [Loops](exercises/04b_b.ipynb) | [solved](solutions/04b_b.ipynb) |\n",
        "| 04c | [Settings (optional)](notebooks/04c_c.ipynb) | no exercises | no exercises |\n"]}]})
    assert rows == [course_toc.Chapter("00", ("notebooks/00_a", "Setup"), ("exercises/00_a", "Episodes"),
                                       ("solutions/00_a", "solved")),
                    course_toc.Chapter("04b", None, ("exercises/04b_b", "Loops"), ("solutions/04b_b", "solved")),
                    course_toc.Chapter("04c", ("notebooks/04c_c", "Settings (optional)"), None, None)]
    part = course_toc.toc(rows, [])["parts"][2]  # a lesson without exercises is a part of one page
    assert part == {"caption": "04c · Settings (optional)",
                    "chapters": [{"file": "notebooks/04c_c", "title": "Lesson 04c"}]}
    with pytest.raises(ValueError, match="in the column of exercises/"):
        course_toc.course_table({"cells": [{"cell_type": "markdown", "source": [
            "| 01 | [L](notebooks/01.ipynb) | [E](solutions/01.ipynb) | [S](solutions/01.ipynb) |"]}]})


# --- in a real browser ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _served(folder: Path):
    """``python -m http.server`` on a free local port, serving ``folder``; yields its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(folder)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/index.html", timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError("the local http server did not answer")
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=15)


ALL_IMAGES_LOADED = "() => [...document.images].every(img => img.complete && img.naturalWidth > 0)"
BROKEN_IMAGES = "() => [...document.images].filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src)"


TYPESET = "() => document.querySelectorAll('mjx-container').length > 0"
UNTYPESET = ("() => [...document.querySelectorAll('span.math, div.math')]"
             ".filter(e => !e.querySelector('mjx-container')).map(e => e.textContent)")


def _wait_for(page, condition: str, timeout_s: float = 30) -> None:
    """Wait until ``condition`` holds or ``timeout_s`` passes; the assertion after it says what is missing."""
    with contextlib.suppress(Exception):
        page.wait_for_function(condition, timeout=timeout_s * 1000, polling=250)


@pytest.mark.slow
def test_a_lesson_page_in_a_real_browser(site):
    from test_browser import CHROMIUM, CHROMIUM_ARGS, _require_browser  # Debian's chromium, no browser download

    sync_playwright = _require_browser()

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with _served(site) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            elsewhere, failed = [], []
            page.on("request", lambda request: elsewhere.append(request.url)
                    if not request.url.startswith((base, "data:", "blob:")) else None)
            page.on("response", lambda response: failed.append(f"{response.status} {response.url}")
                    if response.status >= 400 and not response.url.endswith("/favicon.ico") else None)

            # the start page: each link of the course table opens its page
            page.goto(f"{base}/START_HERE.html")
            table_links = page.locator("table a[href$='.html']")
            hrefs = [table_links.nth(i).get_attribute("href") for i in range(table_links.count())]
            assert len(hrefs) == 31, hrefs  # the course table: 29 pages and the optional lessons 04c and 06c
            for href in hrefs:
                with urllib.request.urlopen(f"{base}/{href}", timeout=10) as response:
                    assert response.status == 200, href
            page.screenshot(path=str(ARTIFACTS / "home.png"))
            page.locator("table a", has_text="Setup and a tour of the tools").first.click()
            page.wait_for_url(f"**/{LESSON}.html")
            assert page.locator("article h1", has_text="00 · Setup and a tour of the tools").count() == 1

            # the lesson: images loaded, maths typeset, saved widgets rendered
            shown = page.locator("img:visible")  # not the Colab button's logo, inside a closed menu
            for index in range(shown.count()):
                shown.nth(index).scroll_into_view_if_needed()
            _wait_for(page, ALL_IMAGES_LOADED)
            assert page.evaluate(BROKEN_IMAGES) == [], f"images that did not load; failed requests: {failed}"
            assert page.evaluate("() => document.images.length") >= 5
            _wait_for(page, TYPESET)
            untypeset = page.evaluate(UNTYPESET)
            assert page.locator("mjx-container").count() >= 10 and not untypeset, (
                f"MathJax did not typeset the lesson's maths (left as TeX: {untypeset[:3]}); failed requests: {failed}")
            _wait_for(page, "() => document.querySelector('.widget-hslider') !== null")
            slider = page.locator(".widget-hslider")
            assert slider.count() >= 1, f"the saved widgets did not render; failed requests: {failed}"
            slider.first.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "lesson.png"))
            assert not failed, failed
            assert not elsewhere, f"the pages asked another host for {elsewhere}"
        finally:
            browser.close()
