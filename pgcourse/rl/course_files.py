"""Where the course's own files are (``figures/``, the notebooks), with or without an editable install.

A source checkout or an editable install (``pip install -e .``, ``make lab``) keeps the package inside the
course folder, so ``Path(pg.__file__).parents[1]`` is the course. A regular install (``pip install .``, and the
Colab set-up of ``pgcourse.colab``) puts the package in site-packages, away from ``figures/``. These functions
look where a learner's notebook runs instead: the folder named by ``PGCOURSE_ROOT``, else the current folder or
one of its parents (Jupyter and Colab's set-up both run a notebook in its own folder, one below the course),
else the package's own parent. The course folder is the first that holds START_HERE.ipynb and figures/.
"""
from __future__ import annotations

import os
from pathlib import Path

START_HERE = "START_HERE.ipynb"
ROOT_VARIABLE = "PGCOURSE_ROOT"


class CourseNotFoundError(FileNotFoundError):
    """No course folder (START_HERE.ipynb beside figures/) where the course's files were looked for."""


def is_course_root(folder: Path) -> bool:
    """Whether ``folder`` is the course: it holds START_HERE.ipynb and a figures/ folder."""
    return (folder / START_HERE).is_file() and (folder / "figures").is_dir()


def candidate_roots(cwd: Path, package_dir: Path, environ: dict[str, str]) -> list[Path]:
    """Where the course is looked for, in order: ``$PGCOURSE_ROOT``, ``cwd`` and its parents, the package's parent."""
    named = [Path(environ[ROOT_VARIABLE])] if environ.get(ROOT_VARIABLE) else []
    return [*named, cwd, *cwd.parents, package_dir.parent]


def course_root(start: str | Path | None = None) -> Path:
    """The course folder (the one with START_HERE.ipynb and figures/), found from ``start`` or the current folder.

    Raises :class:`CourseNotFoundError` saying where it looked when none of the candidates is the course.
    """
    cwd = Path(start) if start is not None else Path.cwd()
    candidates = candidate_roots(cwd.resolve(), Path(__file__).resolve().parents[1], dict(os.environ))
    for folder in candidates:
        if is_course_root(folder):
            return folder.resolve()
    raise CourseNotFoundError(
        f"the course's files (a folder with {START_HERE} and figures/) are not in {cwd}, its parents or beside "
        f"the installed package ({Path(__file__).resolve().parents[2]}); run the notebook from the course's "
        f"folder (or a folder in it), or set {ROOT_VARIABLE} to the course's folder")


def figures_dir(start: str | Path | None = None) -> Path:
    """The course's ``figures/`` folder: the cached runs and sweeps that the lessons read (see :func:`course_root`)."""
    return course_root(start) / "figures"
