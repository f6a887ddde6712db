"""Sphinx configuration of the course's website (``make site``; docs/site.md).

The source folder is the repository itself (``sphinx-build -c site . site/_build/html``), so the notebooks are
read where they are, with the outputs stored in them: nothing is executed and nothing is copied into the
repository. The sidebar is made from START_HERE's table (course_toc.py). Everything a page loads comes
from the site itself: MathJax from the sphinx-mathjax-offline package, the widget renderer from
_static/widgets/ (see its README.md), the theme's own files; the build fetches nothing.

PGCOURSE_SITE_SOLUTIONS=0 (``make site SOLUTIONS=0``) leaves the solutions out: no pages, no sidebar entries,
and START_HERE's links to them become a note.
"""
from __future__ import annotations

import json
import os
import sys
import tomllib
from pathlib import Path

SITE = Path(__file__).resolve().parent
ROOT = SITE.parent
sys.path.insert(0, str(SITE))

import course_toc  # noqa: E402  (beside this file)

SOLUTIONS = os.environ.get("PGCOURSE_SITE_SOLUTIONS", "1") != "0"

project = "Policy gradients, from REINFORCE to PPO"
author = "the pgcourse authors"
copyright = "the pgcourse authors, MIT License"

extensions = ["myst_nb", "sphinx_external_toc", "sphinx-mathjax-offline"]

# --- what is read: the course's notebooks and guides, nothing else of the repository
include_patterns = ["START_HERE.ipynb", "README.md", "notebooks/*.ipynb", "exercises/*.ipynb", "docs/*.md"]
if SOLUTIONS:
    include_patterns.append("solutions/*.ipynb")
exclude_patterns = [".venv", ".git", "site", "tests", "pgcourse", "tools", "runs", "**/runs", "test-artifacts",
                    "build", "**/.ipynb_checkpoints", "*.egg-info"]

_guides = [(doc, course_toc.markdown_title((ROOT / f"{doc}.md").read_text())) for doc in course_toc.GUIDES]
_toc = course_toc.toc(course_toc.read_course_table(ROOT), _guides, solutions=SOLUTIONS)
# one file per variant, replaced whole: a build with and one without the solutions can run at the same time
_toc_file = SITE / "_build" / ("_toc.yml" if SOLUTIONS else "_toc-no-solutions.yml")
_toc_file.parent.mkdir(parents=True, exist_ok=True)
_partial = _toc_file.with_name(f"{_toc_file.name}.{os.getpid()}")
_partial.write_text(json.dumps(_toc, indent=1, ensure_ascii=False))  # JSON is YAML
os.replace(_partial, _toc_file)
external_toc_path = str(_toc_file)
external_toc_exclude_missing = False

# --- notebooks: the stored outputs, never executed
nb_execution_mode = "off"
nb_merge_streams = True
# the widgets' saved state renders with ipywidgets' own HTML manager, served from this site (no CDN, no RequireJS)
nb_ipywidgets_js = {"widgets/embed.js": {}}
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
suppress_warnings = []

# --- the pages
# "Open in Colab" on every notebook page: the theme's launch button, at the release the notebooks' own badges name
# (pyproject's [project.urls] Repository at the tag v<version>, pgcourse/course/colab_cells.py; the badge cells themselves
# are tagged remove-cell, so the pages load no image from Colab's site)
_project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
html_theme = "sphinx_book_theme"
html_title = "Policy gradients: the course"
html_static_path = ["_static"]
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "repository_url": _project["urls"]["Repository"],
    "repository_branch": f"v{_project['version']}",
    "launch_buttons": {"colab_url": "https://colab.research.google.com"},
}
html_show_sourcelink = False
html_copy_source = False


def _site_edits(app, docname, source):
    """The start page says what a static page can and cannot do; a solution page is titled "Solutions NN · ..."
    (the notebook shares its exercises' title); without the solutions, links to them go."""
    if docname == course_toc.START_PAGE:
        source[0] = course_toc.with_site_note(source[0])
    if docname.startswith("solutions/"):
        source[0] = course_toc.as_solutions(source[0])
    if not SOLUTIONS:
        source[0] = course_toc.without_solution_links(source[0])


def setup(app):
    app.connect("source-read", _site_edits)
