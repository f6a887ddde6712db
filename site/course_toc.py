"""The website's table of contents, read off the course itself.

The course's order lives in one place, the table "The path" on START_HERE.ipynb (one row per chapter:
the lesson, its exercises, their solutions). The site's sidebar is made from that table, so a row added
there appears on the site with no second list to keep in step. Pure functions: ``conf.py`` writes the
result as sphinx-external-toc's ``_toc.yml`` and the tests read the same rows.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

START_PAGE = "START_HERE"
# the guides in docs/, in the order a reader of the site wants them (a learner first, then a teacher,
# then the maintainer's pages)
GUIDES = ("README", "docs/site", "docs/colab", "docs/figures", "docs/teachers", "docs/architecture", "docs/scaling",
          "docs/benchmark")

_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+\.ipynb)\)")
_SOLUTION_LINK = re.compile(r"\[([^\]]*)\]\((?:\.\./)?solutions/[^)\s]*\)")
LEFT_OUT = "(not on this site)"


@dataclass(frozen=True)
class Chapter:
    """One row of START_HERE's table: ``number`` ("00", "04b"); each page is a document name
    (the notebook's path without ``.ipynb``) with its link text, or None where the row has none."""

    number: str
    lesson: tuple[str, str] | None
    exercises: tuple[str, str] | None
    solutions: tuple[str, str] | None


def course_table(start_page: dict) -> list[Chapter]:
    """The chapters of START_HERE's table, in its order. ``start_page``: the notebook as JSON.

    A table row is ``| number | lesson link | exercises link | solutions link |``; a cell without a
    link (row 04b has no lesson, the optional lesson 04c no exercises) gives None for that page."""
    chapters = []
    for cell in start_page["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for line in "".join(cell["source"]).splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) != 4 or not re.fullmatch(r"\d\d[a-z]?", cells[0]):
                continue
            pages = []
            for text, folder in zip(cells[1:], ("notebooks/", "exercises/", "solutions/")):
                match = _LINK.search(text)
                if match and not match.group(2).startswith(folder):
                    raise ValueError(f"row {cells[0]} of START_HERE's table links {match.group(2)!r} "
                                     f"in the column of {folder}")
                pages.append((match.group(2).removesuffix(".ipynb"), match.group(1)) if match else None)
            chapters.append(Chapter(cells[0], *pages))
    if not chapters:
        raise ValueError("START_HERE.ipynb has no course table (rows like '| 00 | [lesson](notebooks/...) | ...')")
    return chapters


def toc(chapters: list[Chapter], guides: list[tuple[str, str]], solutions: bool = True) -> dict:
    """sphinx-external-toc's table (format jb-book): the start page, then one part per chapter in the
    course's order (lesson, exercises, then solutions unless ``solutions`` is False), then the guides.

    Sidebar titles are uniform: a part "01 · <the lesson's title>" holds "Lesson 01",
    "Exercises 01 · <their title>" and "Solutions 01"; ``guides``: (document, title) pairs."""
    parts = []
    for chapter in chapters:
        entries = []
        if chapter.lesson:
            entries.append({"file": chapter.lesson[0], "title": f"Lesson {chapter.number}"})
        if chapter.exercises:
            entries.append({"file": chapter.exercises[0],
                            "title": f"Exercises {chapter.number} · {chapter.exercises[1]}"})
        if chapter.solutions and solutions:
            entries.append({"file": chapter.solutions[0], "title": f"Solutions {chapter.number}"})
        title = (chapter.lesson or chapter.exercises)[1]
        parts.append({"caption": f"{chapter.number} · {title}", "chapters": entries})
    parts.append({"caption": "Guides", "chapters": [{"file": doc, "title": title} for doc, title in guides]})
    return {"format": "jb-book", "root": START_PAGE, "parts": parts}


def documents(table: dict) -> list[str]:
    """Every document the table lists, the root first."""
    return [table["root"]] + [entry["file"] for part in table["parts"] for entry in part["chapters"]]


def markdown_title(text: str) -> str:
    """The first level-1 heading of a Markdown page ('# Title' -> 'Title')."""
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    raise ValueError("the page has no level-1 heading ('# Title')")


def without_solution_links(source: str) -> str:
    """``source`` with every Markdown link into solutions/ replaced by a note that the page is not on
    the site (a teacher's site without the solutions: a link to a missing page would be broken)."""
    return _SOLUTION_LINK.sub(LEFT_OUT, source)


SITE_NOTE = ("```{note}\nThis is the course as a website: the pages show the notebooks as they were saved, each "
             "lesson with its outputs. Nothing runs here (a slider shows the figure it was saved with), and the links "
             "open pages, not notebooks. To run the lessons and do the exercises, open the course in Jupyter: "
             "`make lab` in the repository's folder (the [README](README.md) says how to set it up). The Colab button "
             "does not work yet (the course is not published at the address it opens).\n```")


# START_HERE's sentences as Jupyter reads them, and as the site reads them (a static page runs nothing: the site said
# both "Run All Cells" and "Nothing runs here"; its links open pages in the same tab)
SITE_READINGS = [
    ("1. **Read and run the lesson.** Click its link (it opens in a new tab), then *Run ▸ Run All Cells*\n"
     "   and read the text beside each output.",
     "1. **Read the lesson.** Click its link and read the text beside each output (here, the outputs it was saved "
     "with; in Jupyter you run them yourself)."),
    ("2. **Do its exercises.** Replace each `raise NotImplementedError()` with your code and run the check\n"
     "   cell below it.",
     "2. **Do its exercises** in Jupyter (`make lab`): replace each `raise NotImplementedError()` with your code "
     "and run the check cell below it; here you can only read them."),
    ("Then come back to this tab for the next row.", "Then come back to this page for the next row."),
    ("- The links on this page and in the lessons open only when the server runs from the repository's\n  folder,",
     "- In Jupyter (on this website every link works), the links on this page and in the lessons open only when "
     "the server runs from the repository's\n  folder,"),
]


def with_site_note(start_page_source: str) -> str:
    """START_HERE.ipynb's text (JSON) read for the site: SITE_NOTE right under its title, and the sentences of
    :data:`SITE_READINGS` in their site reading: the start page tells a learner to run the notebooks in Jupyter,
    which a static page cannot do."""
    notebook = json.loads(start_page_source)
    for jupyter, site in SITE_READINGS:
        cells = [cell for cell in notebook["cells"] if jupyter in "".join(cell["source"])]
        if not cells:
            raise ValueError(f"START_HERE.ipynb no longer says {jupyter[:60]!r}: update site/course_toc.py's "
                             "SITE_READINGS")
        for cell in cells:
            cell["source"] = "".join(cell["source"]).replace(jupyter, site)
    first = notebook["cells"][0]
    title, _, rest = "".join(first["source"]).partition("\n")
    first["source"] = f"{title}\n\n{SITE_NOTE}\n{rest}"
    return json.dumps(notebook)


def as_solutions(notebook_source: str) -> str:
    """A solution notebook's text (JSON) with its title "# Exercises NN · ..." read "# Solutions NN · ...": the
    generator gives an exercise notebook and its solutions one title, and on the site both are pages."""
    notebook = json.loads(notebook_source)
    first = next(cell for cell in notebook["cells"]  # the first shown: the Colab badge's cell is remove-cell
                 if cell["cell_type"] == "markdown" and "remove-cell" not in cell.get("metadata", {}).get("tags", []))
    text = "".join(first["source"])
    if not text.startswith("# Exercises "):
        raise ValueError(f"a solution notebook's first heading is not '# Exercises NN · ...': {text[:60]!r}")
    first["source"] = "# Solutions " + text.removeprefix("# Exercises ")
    return json.dumps(notebook)


def read_course_table(root: Path) -> list[Chapter]:
    return course_table(json.loads((root / f"{START_PAGE}.ipynb").read_text()))
