"""Every lesson, exercise and solution notebook carries its "Open in Colab" badge and the Colab set-up cell.

The badge (cell 0) links the notebook's own file at the release tag (pyproject's [project.urls] Repository,
tag v<version>); the set-up cell comes before the first code cell; both are tagged remove-cell (the website
leaves them out); no code cell finds figures/ through ``Path(pg.__file__)`` (a regular install, as Colab's, has
no figures/ beside the package). The cells are written by a command, not by hand:

    python -m pgcourse.colab_cells && pgcourse exercises

This test fails on every notebook until that has been run (it was written while the notebooks were being
edited by others, so the command was left for the end: issue 29, item 3). Run it again after a version bump.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from pgcourse.course.colab_cells import course_notebooks, problems, release_from_pyproject

ROOT = Path(__file__).resolve().parents[1]
RELEASE = release_from_pyproject((ROOT / "pyproject.toml").read_text())


@pytest.mark.parametrize("path", course_notebooks(ROOT))
def test_the_notebook_opens_in_colab_at_the_release(path):
    found = problems(nbformat.read(ROOT / path, as_version=4), path, RELEASE)
    assert not found, "\n".join(found) + "\n(run `python -m pgcourse.colab_cells && pgcourse exercises`)"


def test_every_course_notebook_is_checked():
    assert len(course_notebooks(ROOT)) == sum(len(list((ROOT / f).glob("*.ipynb")))
                                              for f in ("notebooks", "exercises", "solutions")) >= 28
