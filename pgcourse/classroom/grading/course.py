"""The course, as the grader reads it: chapters, their exercises, points, setup and check cells.

The grading structure of a course notebook (``solutions/NN_name.ipynb``, else
``exercises/NN_name.ipynb``) comes from its nbgrader metadata, read by
:mod:`pgcourse.classroom.notebook_format`: answer cells (solution: true), check cells (grade: true, with
points), the setup cells before the first exercise and locked read-only cells.
"""
from __future__ import annotations

import ast
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..notebook_format import BEGIN_SOLUTION, SOLUTION_ONLY_TAG, Cell, NotebookError, parse_notebook, stub_source


class GradingError(ValueError):
    """A problem with the grading request (paths, chapter, course, gradebook), reported in one line."""


def _strip_magics(source: str) -> str:
    """IPython-only lines (``%magic``, ``!shell``) become ``pass``: the grader runs plain Python."""
    lines = []
    for line in source.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            indent = line[: len(line) - len(stripped)]
            line = f"{indent}pass  # IPython line removed by the grader: {stripped[:60]}"
        lines.append(line)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# The course
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Exercise:
    """One auto-graded exercise: a check cell (with its points) and the answer cells before it."""

    id: str                       # gradebook column: the check cell's grade_id without "_check"
    check_grade_id: str
    points: float
    check_source: str
    answer_ids: tuple[str, ...]
    kind: str = "auto"            # "auto": a check cell grades it; "manual": a free-text answer the teacher grades
    partial: bool = False         # partial credit by cases (see pgcourse.classroom.grading.partial)

    @property
    def label(self) -> str:
        return re.sub(r"^ch\d+_", "", self.id)


@dataclass
class Chapter:
    """A course notebook, as the grader uses it."""

    name: str
    path: Path
    context: list[tuple[str, str]]
    exercises: list[Exercise]
    answer_order: list[str]
    grade_ids: frozenset[str]
    reference: dict[str, list[str]] | None      # solution answers (for the self-test), if a solutions notebook
    stubs: dict[str, list[str]]                  # the answers as handed out
    course_cells: frozenset[str] = frozenset()   # cell ids and sources of the course's own cells (not the student's)

    @property
    def max_points(self) -> float:
        return sum(exercise.points for exercise in self.exercises)

    @property
    def auto_exercises(self) -> list[Exercise]:
        """The exercises a check cell grades (the grading workers' part)."""
        return [exercise for exercise in self.exercises if exercise.kind == "auto"]

    @property
    def manual_exercises(self) -> list[Exercise]:
        """Free-text questions (nbgrader's manually graded markdown answers): graded by the teacher."""
        return [exercise for exercise in self.exercises if exercise.kind == "manual"]

    def exercise(self, exercise_id: str) -> Exercise:
        for exercise in self.exercises:
            if exercise.id == exercise_id:
                return exercise
        raise KeyError(exercise_id)

    def spec(self) -> dict[str, Any]:
        """What a grading worker needs (plain data)."""
        spec = {"context": self.context,
                "exercises": [{"id": e.id, "check_grade_id": e.check_grade_id, "points": e.points,
                               "check_source": e.check_source, "answer_ids": list(e.answer_ids),
                               "partial": e.partial}
                              for e in self.auto_exercises],
                # names the answer cells define: the sandbox never offers the course's own version of one
                # (pgcourse.classroom.sandboxed.loops.install_kit)
                "answer_names": sorted({name for sources in self.stubs.values() for source in sources
                                        for name in _top_level_names(source)})}
        spec["key"] = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        return spec


def _top_level_names(source: str) -> set[str]:
    """Functions, classes and variables a cell defines at top level (none if it does not parse)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for target in targets for t in ast.walk(target) if isinstance(t, ast.Name))
    return names


def _is_locked_readonly(cell: Cell) -> bool:
    meta = cell.nbgrader
    return bool(meta.get("locked")) and not meta.get("solution") and not meta.get("grade")


def build_chapter(name: str, path: Path, cells: list[Cell]) -> Chapter:
    """Read the grading structure of a course notebook; :class:`GradingError` if it has none."""
    context: list[tuple[str, str]] = []
    exercises: list[Exercise] = []
    answer_order: list[str] = []
    pending_answers: list[str] = []
    reference: dict[str, list[str]] = {}
    stubs: dict[str, list[str]] = {}
    grade_ids: set[str] = set()
    seen_answer = False
    for cell in cells:
        meta = cell.nbgrader
        if cell.grade_id:
            grade_ids.add(cell.grade_id)
        if cell.cell_type == "markdown" and meta.get("solution") and meta.get("grade"):
            exercises.append(_manual_exercise(path, cell))
            continue
        if cell.cell_type != "code":
            continue
        if SOLUTION_ONLY_TAG in cell.tags:
            continue
        if meta.get("solution"):
            if not cell.grade_id:
                raise GradingError(f"{path}: cell {cell.index} is a solution cell without a grade_id")
            seen_answer = True
            answer_order.append(cell.grade_id)
            pending_answers.append(cell.grade_id)
            source = _strip_magics(cell.source)
            reference[cell.grade_id] = [source]
            stubs[cell.grade_id] = [stub_source(source)]
        elif meta.get("grade"):
            points = _points_of(path, cell)
            exercise_id = cell.grade_id.removesuffix("_check") or cell.grade_id
            exercises.append(Exercise(exercise_id, cell.grade_id, points, _strip_magics(cell.source),
                                      tuple(pending_answers)))
            pending_answers = []
        elif not seen_answer and not meta:
            context.append((f"<setup cell {cell.index}>", _strip_magics(cell.source)))
        elif _is_locked_readonly(cell):
            context.append((f"<read-only cell {cell.grade_id or cell.index}>", _strip_magics(cell.source)))
    if not exercises:
        raise GradingError(f"{path} has no graded exercises (no nbgrader cell with grade: true)")
    if len({e.id for e in exercises}) != len(exercises):
        raise GradingError(f"{path}: two check cells give the same exercise id")
    is_solution = any(BEGIN_SOLUTION in src for sources in reference.values() for src in sources)
    return Chapter(name, path, context, exercises, answer_order, frozenset(grade_ids),
                   reference if is_solution else None, stubs)


def _points_of(path: Path, cell: Cell) -> float:
    points = cell.nbgrader.get("points")
    if not cell.grade_id or not isinstance(points, int | float) or isinstance(points, bool) or \
            not math.isfinite(points) or points < 0:
        raise GradingError(f"{path}: graded cell {cell.index} needs a grade_id and non-negative points")
    return points


def _manual_exercise(path: Path, cell: Cell) -> Exercise:
    """A free-text question: a markdown answer cell with points (nbgrader's "manually graded answer")."""
    return Exercise(cell.grade_id or "", cell.grade_id or "", _points_of(path, cell), "", (cell.grade_id or "",),
                    kind="manual")


def cell_ids(data: bytes) -> dict[int, str]:
    """The nbformat 4.5 cell ids of a notebook file, by cell index (``{}`` for older notebooks or bad JSON)."""
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return {}
    cells = raw.get("cells") if isinstance(raw, dict) else None
    if not isinstance(cells, list):
        return {}
    return {index: cell["id"] for index, cell in enumerate(cells)
            if isinstance(cell, dict) and isinstance(cell.get("id"), str) and cell["id"]}


def course_cell_keys(cells: list[Cell], ids: dict[int, str]) -> frozenset[str]:
    """What identifies the course's own cells in a student's copy: their ids and their sources (a cell that
    matches neither, and carries none of the course's grade_ids, is one the student added)."""
    found = {f"id:{ids[cell.index]}" for cell in cells if cell.index in ids}
    found |= {f"src:{cell.source.strip()}" for cell in cells if not cell.nbgrader.get("solution")}
    return frozenset(found)


@dataclass
class Course:
    """The course's notebooks: ``solutions/`` (preferred: they also self-test the grader) and ``exercises/``."""

    root: Path
    notebooks: dict[str, Path]
    _chapters: dict[str, Chapter] = field(default_factory=dict, repr=False)
    _grade_ids: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)

    @property
    def names(self) -> list[str]:
        return sorted(self.notebooks)

    def grade_ids(self, name: str) -> frozenset[str]:
        if name not in self._grade_ids:
            cells, _, _ = parse_notebook(self.notebooks[name].read_bytes())
            self._grade_ids[name] = frozenset(cell.grade_id for cell in cells if cell.grade_id)
        return self._grade_ids[name]

    def chapter(self, name: str) -> Chapter:
        if name not in self._chapters:
            path = self.notebooks[name]
            data = path.read_bytes()
            try:
                cells, _, _ = parse_notebook(data)
            except NotebookError as error:
                raise GradingError(f"course notebook {path}: {error}") from None
            chapter = build_chapter(name, path, cells)
            chapter.course_cells = course_cell_keys(cells, cell_ids(data))
            self._chapters[name] = chapter
        return self._chapters[name]

    def handout_disagreements(self, name: str) -> list[str]:
        """Where the handed-out ``exercises/NAME.ipynb`` gives other points than the course notebook the grader
        uses (``solutions/``): editing the handout changes nothing, so say so."""
        chapter = self.chapter(name)
        handout = self.root / "exercises" / f"{name}.ipynb"
        if chapter.path.resolve() == handout.resolve() or not handout.is_file():
            return []
        try:
            cells, _, _ = parse_notebook(handout.read_bytes())
        except (NotebookError, OSError):
            return [f"{handout} could not be read to compare its points with {chapter.path}"]
        given = {cell.grade_id: cell.nbgrader.get("points") for cell in cells if cell.nbgrader.get("grade")}
        problems = []
        for exercise in chapter.exercises:
            there = given.get(exercise.check_grade_id)
            if there is not None and there != exercise.points:
                problems.append(f"{handout} gives {exercise.id} {there} point(s) but {chapter.path} gives "
                                f"{exercise.points:g}: the grader uses {chapter.path} (edit it and run `pgcourse "
                                "exercises`, or set the points in an assignment file with --assignment)")
        return problems

    def resolve(self, chapter: str) -> str:
        """A chapter name from what a teacher may type: ``01_reinforce``, ``01_reinforce.ipynb``, ``01``, ``1``,
        or a lettered chapter's number such as ``04b``."""
        text = Path(chapter).name.removesuffix(".ipynb")
        if text in self.notebooks:
            return text
        number = text.lower() if re.fullmatch(r"\d+[a-z]?", text.lower()) else None  # "1", "01", "04b"
        matches = [name for name in self.names
                   if number is not None and name.split("_")[0].lower().lstrip("0") == number.lstrip("0")]
        if len(matches) == 1:
            return matches[0]
        raise GradingError(f"unknown chapter {chapter!r}; the course at {self.root} has: {', '.join(self.names)}")


def load_course(root: str | Path) -> Course:
    root = Path(root)
    notebooks: dict[str, Path] = {}
    for folder in ("exercises", "solutions"):  # solutions last: they win
        for path in sorted((root / folder).glob("*.ipynb")):
            notebooks[path.stem] = path
    if not notebooks:
        raise GradingError(f"no course notebooks in {root}/solutions or {root}/exercises (use --course)")
    return Course(root.resolve(), notebooks)


def find_course(start: str | Path | None = None) -> Course:
    """The course around ``start`` (default: the current folder, then its parents, then pgcourse's own repo)."""
    here = Path(start or Path.cwd()).resolve()
    candidates = [here, *here.parents, Path(__file__).resolve().parents[3]]
    for folder in candidates:
        if any((folder / sub).is_dir() and any((folder / sub).glob("*.ipynb")) for sub in ("solutions", "exercises")):
            return load_course(folder)
    raise GradingError("could not find the course (a folder with solutions/ or exercises/); pass --course DIR")
