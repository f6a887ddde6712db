"""The "Open in Colab" badge and the Colab set-up cell at the top of every lesson, exercise and solution notebook.

One setting decides where they point: ``[project.urls] Repository`` in pyproject.toml, at the tag ``v`` + the
project's version (a release tag, so a notebook opened in Colab gets the course as it was released, not a
later commit). Every notebook gets, idempotently:

- cell 0, markdown, tagged ``colab-badge``: the badge, linking
  ``https://colab.research.google.com/github/<owner>/<repo>/blob/<tag>/<folder>/<notebook>``, the notebook's own file;
- after the title cell, code, tagged ``colab-setup``: in Colab only, clone the course at the tag and run
  ``pgcourse/colab.py``'s ``setup`` from the clone (elsewhere the cell does nothing);

both also tagged ``remove-cell``, which the website (myst-nb) leaves out: the badge's image would be the only file
a page loads from another site, and the set-up cell means nothing there. Lessons that read ``figures/`` through
``Path(pg.__file__).resolve().parents[1]`` (a path only a source checkout has) are changed to ``pg.figures_dir()``.

``python -m pgcourse.course.colab_cells`` writes notebooks/ and solutions/; ``pgcourse exercises`` then regenerates
exercises/ from solutions/ (the exercise generator re-points the copied cells at exercises/: :func:`retarget`).
``--check`` writes nothing and lists what is missing or out of date in all three folders.
"""
from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import nbformat
from nbformat import NotebookNode

from ..rl.course_files import course_root

BADGE_TAG = "colab-badge"
SETUP_TAG = "colab-setup"
HIDDEN_TAG = "remove-cell"  # myst-nb (the website) leaves such cells out
FOLDERS = ("notebooks", "solutions", "exercises")
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
OLD_FIGURES = 'Path(pg.__file__).resolve().parents[1] / "figures"'
NEW_FIGURES = "pg.figures_dir()"
CLONE_VARIABLE = "PGCOURSE_COLAB_DIR"  # where the set-up cell clones the course (tests point it at a local copy)


@dataclass(frozen=True)
class Release:
    """Where the badges point: a GitHub repository (``owner/name``) at a tag."""
    repository: str  # "owner/name"
    tag: str

    @property
    def git_url(self) -> str:
        return f"https://github.com/{self.repository}"

    def colab_url(self, path: str) -> str:
        """Colab's address of the notebook at ``path`` (relative to the repository's root) at the tag."""
        return f"https://colab.research.google.com/github/{self.repository}/blob/{self.tag}/{path}"


def release_from_pyproject(text: str) -> Release:
    """The :class:`Release` pyproject.toml names: ``[project.urls] Repository`` and tag ``v<version>``."""
    project = tomllib.loads(text)["project"]
    url = project.get("urls", {}).get("Repository", "")
    match = re.fullmatch(r"https://github\.com/([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(?:\.git)?/?", url)
    if not match:
        raise ValueError(f"pyproject.toml's [project.urls] Repository is {url!r}: expected "
                         "https://github.com/<owner>/<name> (Colab opens notebooks from GitHub)")
    return Release(match.group(1), f"v{project['version']}")


def badge_source(release: Release, path: str) -> str:
    """The badge cell's markdown for the notebook at ``path`` (``folder/name.ipynb``)."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({release.colab_url(path)})"


def setup_source(release: Release, folder: str) -> str:
    """The set-up cell's code for a notebook in ``folder``: nothing outside Colab (docs/colab.md)."""
    clone = f"/content/pgcourse-{release.tag}"
    return (f"# Colab only (elsewhere this cell does nothing): the course at release {release.tag}, "
            "keeping Colab's torch (docs/colab.md)\n"
            "import os, runpy, subprocess, sys\n"
            f'COLAB_COURSE = os.environ.get("{CLONE_VARIABLE}", "{clone}")\n'
            'if "google.colab" in sys.modules:\n'
            '    os.path.isdir(COLAB_COURSE) or subprocess.run(["git", "clone", "--quiet", "--depth=1", '
            f'"--branch={release.tag}", "{release.git_url}", COLAB_COURSE], check=True)\n'
            f'    runpy.run_path(f"{{COLAB_COURSE}}/pgcourse/colab.py")["setup"]("{folder}")')


def _tags(cell: NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _folder_of(path: str) -> str:
    folder = PurePosixPath(path).parent.as_posix()
    if folder not in FOLDERS:
        raise ValueError(f"{path}: expected a notebook in one of {', '.join(FOLDERS)}")
    return folder


def with_colab_cells(notebook: NotebookNode, path: str, release: Release) -> NotebookNode:
    """``notebook`` (changed in place and returned) with its badge first, its set-up cell after the title cell, and
    no figure lookup through the package's file. ``path`` is the notebook's, relative to the repository."""
    folder = _folder_of(path)
    cells = [c for c in notebook.cells if not {BADGE_TAG, SETUP_TAG} & set(_tags(c))]
    for cell in cells:
        if cell.cell_type == "code" and OLD_FIGURES in cell.source:
            cell.source = cell.source.replace(OLD_FIGURES, NEW_FIGURES)
    badge = nbformat.v4.new_markdown_cell(badge_source(release, path), metadata={"tags": [BADGE_TAG, HIDDEN_TAG]})
    setup = nbformat.v4.new_code_cell(setup_source(release, folder), metadata={"tags": [SETUP_TAG, HIDDEN_TAG]})
    for cell in (badge, setup):
        cell.pop("id", None)  # a fixed id per notebook would repeat; nbformat.validate adds none for 4.4 notebooks
    title = 1 if cells and cells[0].cell_type == "markdown" else 0
    notebook.cells = [badge, *cells[:title], setup, *cells[title:]]
    if notebook.get("nbformat_minor", 0) >= 5:
        for cell, suffix in ((badge, "badge"), (setup, "setup")):
            cell["id"] = f"colab-{suffix}"
    return notebook


def retarget(notebook: NotebookNode, folder: str) -> NotebookNode:
    """Point the colab cells copied from another folder at the same notebook's file in ``folder`` (solutions/ ->
    exercises/: the two share file names); in place. A notebook without them is left as it is."""
    if folder not in FOLDERS:
        raise ValueError(f"folder {folder!r}: expected one of {', '.join(FOLDERS)}")
    for cell in notebook.cells:
        tags = set(_tags(cell))
        if BADGE_TAG in tags:
            cell.source = re.sub(r"(/blob/[^/)]+/)[a-z]+(/[^/)]+\))", rf"\g<1>{folder}\g<2>", cell.source)
        if SETUP_TAG in tags:
            cell.source = re.sub(r'\["setup"\]\("[a-z]+"\)', f'["setup"]("{folder}")', cell.source)
    return notebook


def problems(notebook: NotebookNode, path: str, release: Release) -> list[str]:
    """What keeps ``notebook`` (at ``path``) from being what :func:`with_colab_cells` makes; [] when it is."""
    found = []
    cells = notebook.cells
    if not cells or BADGE_TAG not in _tags(cells[0]):
        found.append(f"{path}: cell 0 is not the Colab badge (a markdown cell tagged {BADGE_TAG!r})")
    elif cells[0].source != badge_source(release, path):
        found.append(f"{path}: the badge is {cells[0].source!r}; expected one linking "
                     f"{release.colab_url(path)} (its own file at {release.tag})")
    setups = [i for i, c in enumerate(cells) if SETUP_TAG in _tags(c)]
    first_code = next((i for i, c in enumerate(cells) if c.cell_type == "code" and i not in setups), len(cells))
    if len(setups) != 1 or setups[0] > first_code:
        found.append(f"{path}: expected one set-up cell tagged {SETUP_TAG!r} before the first code cell; "
                     f"found {len(setups)}")
    elif cells[setups[0]].source != setup_source(release, _folder_of(path)):
        found.append(f"{path}: the set-up cell differs from what `python -m pgcourse.course.colab_cells` writes "
                     f"(release {release.tag}, folder {_folder_of(path)})")
    hidden = [i for i in [0, *setups] if i < len(cells) and HIDDEN_TAG not in _tags(cells[i])]
    if hidden and not found:
        found.append(f"{path}: cells {hidden} are not tagged {HIDDEN_TAG!r} (the website would show them)")
    old = [i for i, c in enumerate(cells) if c.cell_type == "code" and OLD_FIGURES in c.source]
    if old:
        found.append(f"{path}: cells {old} find figures/ through the package's file ({OLD_FIGURES}), which only a "
                     f"source checkout has; use {NEW_FIGURES}")
    return found


def course_notebooks(root: Path, folders: Sequence[str] = FOLDERS) -> list[str]:
    """Every notebook of ``folders`` under ``root``, as repository-relative paths."""
    return [f"{folder}/{p.name}" for folder in folders for p in sorted((root / folder).glob("*.ipynb"))]


def main(root: str | Path | None = None, check: bool = False) -> int:
    """Write (or with ``check`` only compare) the colab cells of every notebook under ``root``; exit status."""
    root = Path(root) if root is not None else course_root()
    release = release_from_pyproject((root / "pyproject.toml").read_text(encoding="utf-8"))
    if check:
        found = [p for path in course_notebooks(root) for p in problems(nbformat.read(root / path, 4), path, release)]
        for problem in found:
            print(problem, file=sys.stderr)
        print(f"{len(found)} problem(s); badges point at {release.git_url} at {release.tag}")
        return 1 if found else 0
    for path in course_notebooks(root, ("notebooks", "solutions")):
        before = (root / path).read_text(encoding="utf-8")
        notebook = with_colab_cells(nbformat.reads(before, 4), path, release)
        text = nbformat.writes(notebook, 4)
        text = text if text.endswith("\n") else text + "\n"
        if text != before:
            (root / path).write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    print("now regenerate the exercises from the solutions: `pgcourse exercises` (its generator re-points the "
          "cells at exercises/)")
    return 0


def cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgcourse.course.colab_cells", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 listing what is out of date")
    parser.add_argument("--root", default=None, help="the course's folder (default: found from this folder)")
    args = parser.parse_args(argv)
    return main(args.root, check=args.check)


if __name__ == "__main__":
    raise SystemExit(cli())
