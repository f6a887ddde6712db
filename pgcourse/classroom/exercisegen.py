"""Make the learner's exercise notebooks from the solution notebooks (the single source of truth).

Each exercise in ``solutions/NAME.ipynb`` is an nbgrader-style pair of cells:

- an *answer cell* (metadata ``{"nbgrader": {"solution": true, "grade": false, "grade_id": ...}}``)
  whose solution code sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` lines;
- a *check cell* after it (``{"nbgrader": {"grade": true, "solution": false, "locked": true,
  "grade_id": ..., "points": N}}``) that calls ``pg.checks.check_<name>(<name>)``.

``exercises/NAME.ipynb`` is the same notebook with every marked region (markers included) replaced
by ``raise NotImplementedError()`` at the marker's indentation (so a function's signature and
docstring above the markers stay), all outputs and execution counts removed, cells tagged
``solution_only`` dropped, and all other cell and notebook metadata kept (nbgrader reads it). The "Open in
Colab" badge and the Colab set-up cell (``pgcourse.course.colab_cells``) are re-pointed at ``exercises/NAME``.
The output is written with ``nbformat.write``, so the same input always gives the same bytes.

Usage::

    python -m pgcourse.classroom.exercisegen            # (re)write exercises/ from solutions/
    python -m pgcourse.classroom.exercisegen --check    # exit 1 and list the files that are out of date
"""
from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from ..course import colab_cells
from . import notebook_format
from .notebook_format import (BEGIN_SOLUTION, CODE_STUB, END_SOLUTION, MARKDOWN_STUB, SOLUTION_ONLY_TAG,
                              SolutionMarkerError, cell_tags, clear_outputs, nbgrader_metadata)

# Per-cell metadata written by the tools that execute notebooks (timestamps): never part of an exercise.
EXECUTION_METADATA_KEYS = ("execution", "ExecuteTime")
# Notebook metadata that only describes outputs (saved widget state): dropped with the outputs.
OUTPUT_NOTEBOOK_METADATA_KEYS = ("widgets",)


class ExerciseGenError(ValueError):
    """A solution notebook breaks the exercise conventions (markers, nbgrader metadata, grade ids)."""


def _cell_label(notebook_name: str, index: int, cell: NotebookNode) -> str:
    grade_id = _nbgrader(cell).get("grade_id")
    return f"{notebook_name}, cell {index}" + (f" (grade_id {grade_id!r})" if grade_id else "")


def _nbgrader(cell: NotebookNode) -> dict:
    return nbgrader_metadata(cell.get("metadata", {}))


def _tags(cell: NotebookNode) -> list[str]:
    return cell_tags(cell.get("metadata", {}))


def replace_solution_regions(source: str, stub: str, where: str) -> str:
    """Replace every ``### BEGIN SOLUTION`` … ``### END SOLUTION`` region (markers included) by ``stub``
    indented like the BEGIN marker. Raises :class:`ExerciseGenError` on a missing, stray or nested marker."""
    try:
        return notebook_format.replace_solution_regions(source, stub, where, strict=True)
    except SolutionMarkerError as error:
        raise ExerciseGenError(str(error)) from None


def validate_solution_notebook(notebook: NotebookNode, name: str = "notebook") -> None:
    """Check the exercise conventions; raise :class:`ExerciseGenError` naming the cell on the first problem."""
    seen: dict[str, int] = {}
    for index, cell in enumerate(notebook.cells):
        where = _cell_label(name, index, cell)
        meta = _nbgrader(cell)
        source = cell.get("source", "")
        has_markers = BEGIN_SOLUTION in source or END_SOLUTION in source
        if meta:
            grade_id = meta.get("grade_id")
            if not isinstance(grade_id, str) or not grade_id:
                raise ExerciseGenError(f"{where}: nbgrader metadata without a 'grade_id'")
            if grade_id in seen:
                raise ExerciseGenError(f"{name}: grade_id {grade_id!r} is used by cells {seen[grade_id]} and "
                                       f"{index}; every nbgrader cell needs its own grade_id")
            seen[grade_id] = index
            if meta.get("grade") and not isinstance(meta.get("points"), (int, float)):
                raise ExerciseGenError(f"{where}: a graded cell (grade: true) needs 'points'")
        if meta.get("solution"):
            if cell.cell_type not in ("code", "markdown"):
                raise ExerciseGenError(f"{where}: a solution cell must be a code or markdown cell")
            replace_solution_regions(source, CODE_STUB, where)  # raises on bad markers
        elif has_markers:
            raise ExerciseGenError(f"{where}: has solution markers but its nbgrader metadata does not say "
                                   "solution: true, so the solution would leak into the exercise")
        if SOLUTION_ONLY_TAG in _tags(cell) and meta:
            raise ExerciseGenError(f"{where}: a cell tagged {SOLUTION_ONLY_TAG!r} is dropped from the exercise, "
                                   "so it cannot carry nbgrader metadata")


def make_exercise_notebook(solution: NotebookNode, name: str = "notebook") -> NotebookNode:
    """The exercise notebook for ``solution`` (not modified): stubs instead of solutions, no outputs."""
    validate_solution_notebook(solution, name)
    exercise = copy.deepcopy(solution)
    for key in OUTPUT_NOTEBOOK_METADATA_KEYS:
        exercise.metadata.pop(key, None)
    cells = []
    for index, cell in enumerate(exercise.cells):
        if SOLUTION_ONLY_TAG in _tags(cell):
            continue
        for key in EXECUTION_METADATA_KEYS:
            cell.metadata.pop(key, None)
        if _nbgrader(cell).get("solution"):
            stub = CODE_STUB if cell.cell_type == "code" else MARKDOWN_STUB
            cell.source = replace_solution_regions(cell.source, stub, _cell_label(name, index, cell))
        if cell.cell_type == "code":
            clear_outputs(cell)
        cells.append(cell)
    exercise.cells = cells
    colab_cells.retarget(exercise, "exercises")  # the badge and set-up cell name the exercise's own file
    nbformat.validate(exercise)
    return exercise


def exercise_text(solution_path: str | Path) -> str:
    """The exact file contents ``exercises/<name>`` should have for the solution notebook at ``solution_path``."""
    path = Path(solution_path)
    solution = nbformat.read(path, as_version=4)
    exercise = make_exercise_notebook(solution, path.name)
    text = nbformat.writes(exercise, version=4)
    return text if text.endswith("\n") else text + "\n"  # nbformat.write adds the final newline too


def solution_notebooks(solutions_dir: str | Path) -> list[Path]:
    return sorted(p for p in Path(solutions_dir).glob("*.ipynb") if p.is_file())


def main(check: bool = False, solutions_dir: str | Path = "solutions", exercises_dir: str | Path = "exercises") -> int:
    """Write (or with ``check=True`` only compare) ``exercises_dir/*.ipynb`` from ``solutions_dir/*.ipynb``.

    Returns 0 when everything is (now) up to date; 1 with ``check=True`` when a file differs, is
    missing, or has no solution notebook; 2 when a solution notebook breaks the conventions.
    """
    solutions_dir, exercises_dir = Path(solutions_dir), Path(exercises_dir)
    if not solutions_dir.is_dir():
        print(f"error: no solutions folder at {solutions_dir}", file=sys.stderr)
        return 2
    sources = solution_notebooks(solutions_dir)
    try:
        wanted = {exercises_dir / source.name: exercise_text(source) for source in sources}
    except (ExerciseGenError, nbformat.ValidationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    extra = sorted(set(exercises_dir.glob("*.ipynb")) - set(wanted)) if exercises_dir.is_dir() else []
    differing = [path for path, text in wanted.items()
                 if not path.is_file() or path.read_text(encoding="utf-8") != text]
    if check:
        problems = [f"{path} is missing" if not path.is_file() else
                    f"{path} differs from what the generator makes from {solutions_dir / path.name}"
                    for path in differing]
        problems += [f"{path} has no solution notebook {solutions_dir / path.name}" for path in extra]
        if problems:
            print("exercise notebooks are out of date (run `pgcourse exercises`, or `python -m pgcourse.classroom.exercisegen`):",
                  file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
            return 1
        print(f"{len(wanted)} exercise notebook(s) up to date")
        return 0
    exercises_dir.mkdir(parents=True, exist_ok=True)
    for path in differing:
        if path.is_file() and holds_learner_work(path.read_text(encoding="utf-8"), wanted[path]):
            kept = keep_learner_copy(path)
            print(f"kept your version of {path.name} as {kept} (it holds your answers or outputs)")
        path.write_text(wanted[path], encoding="utf-8")
        print(f"wrote {path}")
    for path in extra:
        print(f"warning: {path} has no solution notebook in {solutions_dir} (left as is)", file=sys.stderr)
    print(f"{len(wanted)} exercise notebook(s), {len(differing)} rewritten")
    return 0


KEPT_FOLDER = "your-work"  # beside the exercises: a learner's notebook that the generator is about to replace


def holds_learner_work(current: str, generated: str) -> bool:
    """Whether an exercise notebook as it is (``current``) holds work the generator's version (``generated``) would
    erase: any output or execution count, or an answer cell whose text is not the generated one. When in doubt
    (a notebook that cannot be read), yes: a copy too many costs nothing, a learner's answers lost cost hours."""
    try:
        ours, theirs = nbformat.reads(current, as_version=4), nbformat.reads(generated, as_version=4)
    except Exception:  # noqa: BLE001 - unreadable: keep it
        return True
    if any(cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
           for cell in ours.cells):
        return True
    def answer_cells(notebook: NotebookNode) -> dict[Any, str]:
        return {nbgrader_metadata(cell.metadata).get("grade_id"): cell.source for cell in notebook.cells
                if nbgrader_metadata(cell.metadata).get("solution")}

    stubs = answer_cells(theirs)
    return any(source != stubs.get(grade_id) for grade_id, source in answer_cells(ours).items())


def keep_learner_copy(path: Path) -> Path:
    """Copy ``path`` to ``<its folder>/your-work/<name>-<date-time>.ipynb`` (never over an earlier copy)."""
    import datetime
    import shutil

    folder = path.parent / KEPT_FOLDER
    folder.mkdir(exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    target, number = folder / f"{path.stem}-{stamp}.ipynb", 1
    while target.exists():
        number += 1
        target = folder / f"{path.stem}-{stamp}-{number}.ipynb"
    shutil.copy2(path, target)
    return target


def cli(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgcourse.classroom.exercisegen",
                                     description="Generate exercises/*.ipynb from solutions/*.ipynb.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 listing the exercise notebooks that are out of date")
    parser.add_argument("--solutions", default="solutions", help="folder of solution notebooks (default: solutions)")
    parser.add_argument("--exercises", default="exercises", help="folder of exercise notebooks (default: exercises)")
    args = parser.parse_args(argv)
    return main(check=args.check, solutions_dir=args.solutions, exercises_dir=args.exercises)


if __name__ == "__main__":
    raise SystemExit(cli())
