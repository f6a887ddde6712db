"""Classroom grading: ``pgcourse grade SUBMISSION... --out grades.csv``.

A teacher hands out ``exercises/NN_name.ipynb``, collects one filled notebook per student and
grades the whole class with one command::

    pgcourse grade submitted/ --out grades.csv           # a folder: one notebook (or sub-folder) per student
    pgcourse grade alice.ipynb bob.ipynb --out grades.csv --chapter 01_reinforce

It writes ``grades.csv`` (one row per student, one column per exercise, and the total),
``grades.json`` (the same points plus, per exercise, a status and the check's own message: the
feedback to hand back) and prints a summary table.

What is graded, and how (the full trust model is in :mod:`pgcourse._gradeworker`):

- From a submission only the *answer cells* are taken: the cells whose nbgrader ``grade_id`` is one
  of the chapter's solution cells. Everything else -- the setup cells, the check cells and their
  points -- comes from the course's own notebook (``solutions/``, else ``exercises/``). Editing or
  deleting a check cell changes nothing.
- For each exercise, in notebook order, the student's answer cells run in a sandboxed student
  process after the course's setup cells (the code cells before the first exercise, plus any
  locked read-only code cell); then the course's check cell runs in a trusted grading worker that
  never runs student code, calling the student's functions across the process boundary with data
  only. The check passes: the exercise's points; it fails or anything goes wrong: 0 and the reason.
- A time limit per exercise and per submission, a memory limit and an output limit; an infinite
  loop, a crash, ``sys.exit``, an exception when the cell runs, a missing cell costs that exercise
  only. Grading is deterministic (seeded RNGs, one thread).
- Submission files are only read. The gradebook is written atomically and never replaces an
  existing file unless ``--overwrite`` is given.

Programmatic use::

    from pgcourse import grading
    report = grading.grade_paths(["submitted/"], out="grades.csv")
    report.students[0].total, report.students[0].exercises["ch01_normalize"].feedback
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, TextIO

from ._gradeworker import LIMITS_ONLY, SANDBOX, Limits

__all__ = ["Limits", "GradingError", "Course", "Chapter", "Exercise", "Submission", "ExerciseResult",
           "StudentResult", "GradeReport", "Grader", "load_course", "find_course", "read_submission",
           "collect_submissions", "grade_paths", "write_gradebook", "bench", "main"]

MAX_NOTEBOOK_BYTES = 50 * 2**20
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
STATUSES = ("passed", "failed", "error", "timeout", "crashed", "missing", "invalid")


class GradingError(ValueError):
    """A problem with the grading request (paths, chapter, course, gradebook), reported in one line."""


class NotebookError(ValueError):
    """A file that is not a readable Jupyter notebook."""


# --------------------------------------------------------------------------------------------------
# Notebooks (read without nbformat, which is only a dev dependency: nbformat 4 and the older 3)
# --------------------------------------------------------------------------------------------------

@dataclass
class Cell:
    index: int
    cell_type: str
    source: str
    metadata: dict[str, Any]

    @property
    def nbgrader(self) -> dict[str, Any]:
        meta = self.metadata.get("nbgrader")
        return meta if isinstance(meta, dict) else {}

    @property
    def grade_id(self) -> str | None:
        grade_id = self.nbgrader.get("grade_id")
        return grade_id if isinstance(grade_id, str) and grade_id else None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "".join(value)
    return ""


def parse_notebook(data: bytes) -> tuple[list[Cell], dict[str, Any], int]:
    """(cells, notebook metadata, nbformat major version); :class:`NotebookError` if it is not a notebook."""
    if not data.strip():
        raise NotebookError("the file is empty")
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise NotebookError(f"the file is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NotebookError("not a notebook (the file is not UTF-8 text)") from None
    try:
        notebook = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise NotebookError(f"not a notebook (not valid JSON: {str(error)[:120]})") from None
    if not isinstance(notebook, dict) or not ("cells" in notebook or "worksheets" in notebook):
        raise NotebookError("not a notebook (JSON without notebook cells)")
    version = notebook.get("nbformat") if isinstance(notebook.get("nbformat"), int) else 4
    if "cells" in notebook:
        raw_cells = notebook["cells"]
    else:  # nbformat 3 (and 2): cells live in worksheets, code in "input"
        worksheets = notebook["worksheets"] if isinstance(notebook["worksheets"], list) else []
        raw_cells = [cell for sheet in worksheets if isinstance(sheet, dict)
                     for cell in (sheet.get("cells") if isinstance(sheet.get("cells"), list) else [])]
    if not isinstance(raw_cells, list):
        raise NotebookError("not a notebook (its cells are not a list)")
    cells = []
    for index, raw in enumerate(raw_cells):
        if not isinstance(raw, dict):
            continue
        cell_type = raw.get("cell_type") if isinstance(raw.get("cell_type"), str) else "unknown"
        source = _text(raw.get("source")) if "source" in raw else _text(raw.get("input"))
        metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
        cells.append(Cell(index, cell_type, source, metadata))
    metadata = notebook.get("metadata") if isinstance(notebook.get("metadata"), dict) else {}
    return cells, metadata, version


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


_MARKER = re.compile(r"^(?P<indent>[ \t]*)### (?P<which>BEGIN|END) SOLUTION[ \t]*$")


def stub_source(source: str) -> str:
    """``source`` with each solution region replaced by ``raise NotImplementedError()`` (as the exercise has it)."""
    output, inside = [], False
    for line in source.split("\n"):
        match = _MARKER.match(line)
        if match and match["which"] == "BEGIN":
            inside = True
            output.append(match["indent"] + "raise NotImplementedError()")
        elif match:
            inside = False
        elif not inside:
            output.append(line)
    return "\n".join(output)


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

    @property
    def max_points(self) -> float:
        return sum(exercise.points for exercise in self.exercises)

    def spec(self) -> dict[str, Any]:
        """What a grading worker needs (plain data)."""
        spec = {"context": self.context,
                "exercises": [{"id": e.id, "check_grade_id": e.check_grade_id, "points": e.points,
                               "check_source": e.check_source, "answer_ids": list(e.answer_ids)}
                              for e in self.exercises]}
        spec["key"] = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        return spec


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
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags") if isinstance(cell.metadata.get("tags"), list) else []
        if "solution_only" in tags:
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
            points = meta.get("points")
            if not cell.grade_id or not isinstance(points, int | float) or isinstance(points, bool) or \
                    not math.isfinite(points) or points < 0:
                raise GradingError(f"{path}: graded cell {cell.index} needs a grade_id and non-negative points")
            exercise_id = cell.grade_id.removesuffix("_check") or cell.grade_id
            exercises.append(Exercise(exercise_id, cell.grade_id, points, _strip_magics(cell.source),
                                      tuple(pending_answers)))
            pending_answers = []
        elif not seen_answer and not meta:
            context.append((f"<setup cell {cell.index}>", _strip_magics(cell.source)))
        elif _is_locked_readonly(cell):
            context.append((f"<read-only cell {cell.grade_id or cell.index}>", _strip_magics(cell.source)))
    if not exercises:
        raise GradingError(f"{path} has no auto-graded exercises (no nbgrader cell with grade: true)")
    if len({e.id for e in exercises}) != len(exercises):
        raise GradingError(f"{path}: two check cells give the same exercise id")
    is_solution = any(BEGIN_SOLUTION in src for sources in reference.values() for src in sources)
    return Chapter(name, path, context, exercises, answer_order, frozenset(grade_ids),
                   reference if is_solution else None, stubs)


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
            try:
                cells, _, _ = parse_notebook(path.read_bytes())
            except NotebookError as error:
                raise GradingError(f"course notebook {path}: {error}") from None
            self._chapters[name] = build_chapter(name, path, cells)
        return self._chapters[name]

    def resolve(self, chapter: str) -> str:
        """A chapter name from what a teacher may type: ``01_reinforce``, ``01_reinforce.ipynb``, ``01`` or ``1``."""
        text = Path(chapter).name.removesuffix(".ipynb")
        if text in self.notebooks:
            return text
        matches = [name for name in self.names if name.split("_")[0].lstrip("0") == text.lstrip("0")
                   and text.isdigit()]
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
    candidates = [here, *here.parents, Path(__file__).resolve().parents[1]]
    for folder in candidates:
        if any((folder / sub).is_dir() and any((folder / sub).glob("*.ipynb")) for sub in ("solutions", "exercises")):
            return load_course(folder)
    raise GradingError("could not find the course (a folder with solutions/ or exercises/); pass --course DIR")


# --------------------------------------------------------------------------------------------------
# Submissions
# --------------------------------------------------------------------------------------------------

@dataclass
class Submission:
    """One student's file, read once (graded from memory; the file is never written)."""

    student: str
    path: Path
    sha256: str
    problem: str | None = None
    cells: list[Cell] = field(default_factory=list, repr=False)
    chapter_hint: str | None = None
    nbformat: int | None = None

    @property
    def grade_ids(self) -> frozenset[str]:
        return frozenset(cell.grade_id for cell in self.cells if cell.grade_id)

    def answers(self, chapter: Chapter) -> tuple[dict[str, list[str]], list[str]]:
        """The student's answer cells by grade_id (code cells only, in notebook order), and notes."""
        answers: dict[str, list[str]] = {}
        notes = []
        wanted = set(chapter.answer_order)
        for cell in self.cells:
            if cell.grade_id in wanted:
                if cell.cell_type == "code":
                    answers.setdefault(cell.grade_id, []).append(_strip_magics(cell.source))
                else:
                    notes.append(f"answer cell {cell.grade_id} is a {cell.cell_type} cell, not code: ignored")
        for grade_id, sources in answers.items():
            if len(sources) > 1:
                notes.append(f"answer cell {grade_id} appears {len(sources)} times: all copies ran, in notebook order")
        if not answers and chapter.answer_order:
            notes.append(f"none of the answer cells of {chapter.name} is in this notebook: is it the right notebook?")
        return answers, notes


def read_submission(path: str | Path, student: str | None = None) -> Submission:
    path = Path(path)
    data = path.read_bytes()
    submission = Submission(student or path.stem, path, hashlib.sha256(data).hexdigest())
    try:
        submission.cells, metadata, submission.nbformat = parse_notebook(data)
    except NotebookError as error:
        submission.problem = str(error)
        return submission
    hint = metadata.get("pgcourse")
    if isinstance(hint, dict) and isinstance(hint.get("chapter"), str):
        submission.chapter_hint = hint["chapter"]
    return submission


def _skip(path: Path, base: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(base).parts)


def collect_submissions(paths: Sequence[str | Path], chapter_names: Iterable[str] = ()) -> list[tuple[str, Path]]:
    """(student id, file) for each submission: a file's own name, or for a folder, the name of its entry
    (``folder/alice.ipynb`` and ``folder/alice/<anything>.ipynb`` are both student ``alice``)."""
    chapter_names = set(chapter_names)
    found: list[tuple[str, Path]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for file in sorted(path.rglob("*.ipynb")):
                if file.is_file() and not _skip(file, path):
                    first = file.relative_to(path).parts[0]
                    found.append((Path(first).stem if first.endswith(".ipynb") else first, file))
        elif path.is_file():
            stem = path.stem
            if stem in chapter_names and path.parent.name not in ("", ".", "submitted", "submissions"):
                stem = path.parent.name  # submitted/alice/01_reinforce.ipynb given directly
            found.append((stem, path))
        else:
            raise GradingError(f"no such file or folder: {given}")
    if not found:
        raise GradingError("no submissions found (give .ipynb files or folders holding them)")
    return found


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------

@dataclass
class ExerciseResult:
    points: float
    max_points: float
    status: str          # passed | failed | error | timeout | crashed | missing | invalid
    feedback: str


@dataclass
class StudentResult:
    student: str
    file: str
    sha256: str
    exercises: dict[str, ExerciseResult]
    problem: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(result.points for result in self.exercises.values())

    @property
    def max_total(self) -> float:
        return sum(result.max_points for result in self.exercises.values())


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(float(value), 6)


@dataclass
class GradeReport:
    chapter: Chapter
    students: list[StudentResult]
    limits: Limits
    isolation: str
    isolation_detail: str
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def student(self, name: str) -> StudentResult:
        for result in self.students:
            if result.student == name:
                return result
        raise KeyError(name)

    def points(self) -> dict[str, dict[str, float]]:
        """{student: {exercise id: points}} (handy in tests and notebooks)."""
        return {s.student: {k: v.points for k, v in s.exercises.items()} for s in self.students}

    def csv_text(self) -> str:
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["student", *[e.id for e in self.chapter.exercises], "total"])
        for result in self.students:
            writer.writerow([result.student, *[_number(result.exercises[e.id].points) for e in self.chapter.exercises],
                             _number(result.total)])
        return buffer.getvalue()

    def to_json(self) -> dict[str, Any]:
        return {
            "chapter": self.chapter.name,
            "course_notebook": str(self.chapter.path),
            "max_total": _number(self.chapter.max_points),
            "exercises": [{"id": e.id, "points": _number(e.points), "check_cell": e.check_grade_id,
                           "answer_cells": list(e.answer_ids)} for e in self.chapter.exercises],
            "limits": self.limits.to_dict(),
            "isolation": {"mode": self.isolation, "detail": self.isolation_detail},
            "warnings": self.warnings,
            "students": [{
                "student": s.student, "file": s.file, "sha256": s.sha256,
                "total": _number(s.total), "max_total": _number(s.max_total),
                "problem": s.problem, "notes": s.notes,
                "exercises": {k: {"points": _number(v.points), "max_points": _number(v.max_points),
                                  "status": v.status, "feedback": v.feedback} for k, v in s.exercises.items()},
            } for s in self.students],
        }

    def summary(self) -> str:
        """The table printed after grading."""
        marks = {"timeout": "T", "crashed": "C", "error": "E", "missing": "M", "invalid": "I"}
        labels = [e.label for e in self.chapter.exercises]
        rows = []
        for s in self.students:
            cells = []
            for e in self.chapter.exercises:
                r = s.exercises[e.id]
                cells.append(f"{_number(r.points)}{' ' + marks[r.status] if r.status in marks else ''}")
            rows.append([s.student, *cells, f"{_number(s.total)}/{_number(s.max_total)}"])
        header = ["student", *labels, "total"]
        widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(str(v).ljust(widths[0]) if i == 0 else str(v).rjust(widths[i]) for i, v in enumerate(row))
                 for row in [header, *rows]]
        lines.insert(1, "  ".join("-" * w for w in widths))
        totals = [s.total for s in self.students]
        if totals:
            lines.append("")
            lines.append(f"{len(totals)} submission(s) of {self.chapter.name}, mean {sum(totals) / len(totals):.2f} / "
                         f"{_number(self.chapter.max_points)}; graded in {self.seconds:.1f} s")
        lines.append("marks: T time limit, C crashed, E exception, M answer cell missing, I not a notebook "
                     "(details per exercise in the JSON)")
        lines.append(f"isolation: {self.isolation} ({self.isolation_detail})")
        lines += [f"warning: {warning}" for warning in self.warnings]
        return "\n".join(lines)


def _atomic_write(path: Path, text: str, overwrite: bool) -> Path:
    """Write ``text`` to ``path`` atomically; without ``overwrite`` never replace an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, 0o644)
        if overwrite:
            os.replace(handle.name, path)
        else:
            try:
                os.link(handle.name, path)     # atomic "create if absent"
            except FileExistsError:
                raise FileExistsError(f"{path} already exists; pass --overwrite to replace it") from None
            os.unlink(handle.name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(handle.name)
    return path


def _gradebook_paths(out: str | Path, json_out: str | Path | None) -> tuple[Path, Path]:
    csv_path = Path(out)
    json_path = Path(json_out) if json_out else csv_path.with_suffix(".json")
    if csv_path.resolve() == json_path.resolve():
        raise GradingError(f"--out {csv_path} and the JSON file are the same path; give --out a .csv name")
    return csv_path, json_path


def check_gradebook_free(out: str | Path, json_out: str | Path | None = None, overwrite: bool = False) -> None:
    for path in _gradebook_paths(out, json_out):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists; pass --overwrite to replace it (or choose another --out)")
        if path.exists() and path.is_dir():
            raise GradingError(f"{path} is a folder")


def write_gradebook(report: GradeReport, out: str | Path, json_out: str | Path | None = None,
                    overwrite: bool = False) -> tuple[Path, Path]:
    """Write the CSV and the JSON (atomically; existing files only with ``overwrite``)."""
    csv_path, json_path = _gradebook_paths(out, json_out)
    check_gradebook_free(csv_path, json_path, overwrite)
    _atomic_write(json_path, json.dumps(report.to_json(), indent=1, ensure_ascii=False) + "\n", overwrite)
    _atomic_write(csv_path, report.csv_text(), overwrite)
    return csv_path, json_path


# --------------------------------------------------------------------------------------------------
# The pool of grading workers
# --------------------------------------------------------------------------------------------------

def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0",
               SDL_VIDEODRIVER="dummy", MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
    return env


class _WorkerHandle:
    """A grading worker process (python -c 'from pgcourse._gradeworker import worker_main; ...')."""

    def __init__(self, isolation: str, cwd: Path | None):
        ours, theirs = socket.socketpair()
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", f"from pgcourse._gradeworker import worker_main; worker_main({theirs.fileno()})"],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log,
            env=_worker_env(), cwd=cwd, start_new_session=True)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.conn.send({"op": "hello", "isolation": isolation})
        self.ready = False
        self.isolation = ""
        self.detail = ""
        self.warm: set[str] = set()
        self.task: dict[str, Any] | None = None
        self.deadline: float | None = None
        self.started = time.monotonic()

    def log_tail(self) -> str:
        with contextlib.suppress(Exception):
            self.log.seek(0)
            return self.log.read().decode(errors="replace")[-2000:]
        return ""

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=10)
        with contextlib.suppress(Exception):
            self.conn.close()
        with contextlib.suppress(Exception):
            self.log.close()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.send({"op": "stop"})
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        self.kill()


class Grader:
    """A pool of trusted grading workers (one per CPU core by default); reuse it for several gradings.

    Each worker imports torch and the course package once, before any student code runs, and runs the
    chapter's own solution through the grader once (the self-test) before its first student of that
    chapter: a course whose solution does not score full points stops grading with the reason.
    """

    START_TIMEOUT = 180.0

    def __init__(self, jobs: int | None = None, isolation: str = "auto", cwd: str | Path | None = None):
        if not hasattr(os, "fork") or sys.platform == "win32":
            raise GradingError("pgcourse grade needs Linux or macOS (it forks sandboxed student processes)")
        if isolation not in ("auto", SANDBOX, LIMITS_ONLY):
            raise GradingError(f"isolation must be auto, {SANDBOX} or {LIMITS_ONLY}")
        self.jobs = max(1, int(jobs or min(os.cpu_count() or 1, 8)))
        self.isolation = isolation
        self.cwd = Path(cwd) if cwd else None
        self.workers: list[_WorkerHandle] = []
        self.mode, self.detail = "", ""

    def __enter__(self) -> Grader:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        while len(self.workers) < self.jobs:
            self.workers.append(_WorkerHandle(self.isolation, self.cwd))

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def _replace(self, worker: _WorkerHandle) -> _WorkerHandle:
        worker.kill()
        fresh = _WorkerHandle(self.isolation, self.cwd)
        self.workers[self.workers.index(worker)] = fresh
        return fresh

    def grade(self, chapter: Chapter, submissions: list[tuple[str, dict[str, list[str]]]], limits: Limits,
              on_result: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, dict[str, Any]]:
        """Grade ``(key, answers)`` pairs; returns {key: {exercise id: {points, status, feedback}}}."""
        self.start()
        spec, limit_dict = chapter.spec(), limits.to_dict()
        selftest_answers = chapter.reference if chapter.reference is not None else chapter.stubs
        pending = list(submissions)
        results: dict[str, dict[str, Any]] = {}
        hard_limit = float(limits.submission_s) + 60.0
        while pending or any(w.task for w in self.workers):
            now = time.monotonic()
            for worker in list(self.workers):
                if not worker.ready or worker.task is not None:
                    continue
                if spec["key"] not in worker.warm:
                    task = {"op": "grade", "key": "\0selftest", "course": spec, "answers": selftest_answers,
                            "limits": limit_dict}
                elif pending:
                    key, answers = pending.pop(0)
                    task = {"op": "grade", "key": key, "course": spec, "answers": answers, "limits": limit_dict}
                else:
                    continue
                worker.task, worker.deadline = task, now + hard_limit
                worker.conn.send(task)
            waiting = [w for w in self.workers if w.task is not None or not w.ready]
            if not waiting:
                continue
            deadlines = [w.deadline if w.ready else w.started + self.START_TIMEOUT for w in waiting]
            timeout = max(0.0, min(deadlines) - time.monotonic())
            ready_conns = wait([w.conn for w in waiting], timeout=timeout)
            for worker in waiting:
                if worker.conn in ready_conns:
                    self._receive(worker, chapter, spec, results, on_result)
                elif time.monotonic() > (worker.deadline if worker.ready else worker.started + self.START_TIMEOUT):
                    self._fail_worker(worker, "the grading worker stopped responding", results, on_result, chapter)
        return results

    def _receive(self, worker: _WorkerHandle, chapter: Chapter, spec: dict[str, Any],
                 results: dict[str, dict[str, Any]], on_result: Callable | None) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            self._fail_worker(worker, "the grading worker died", results, on_result, chapter)
            return
        op = message.get("op")
        if op == "ready":
            worker.ready, worker.isolation, worker.detail = True, message["isolation"], message["detail"]
            self.mode, self.detail = worker.isolation, worker.detail
            return
        if op == "crash":
            self._fail_worker(worker, f"the grading worker failed: {message.get('error', '')[-500:]}", results,
                              on_result, chapter)
            return
        task, worker.task = worker.task, None
        if task is None or message.get("key") != task["key"]:
            self._fail_worker(worker, "the grading worker answered out of turn", results, on_result, chapter)
            return
        if op == "failure":
            exercises = {e.id: {"points": 0, "status": "error",
                                "feedback": "grading failed (not caused by this answer): "
                                            + message.get("error", "").strip().splitlines()[-1][:500]}
                         for e in chapter.exercises}
        else:
            exercises = message["exercises"]
        if task["key"] == "\0selftest":
            self._check_selftest(chapter, exercises)
            worker.warm.add(spec["key"])
            return
        results[task["key"]] = exercises
        if on_result is not None:
            on_result(task["key"], exercises)

    def _check_selftest(self, chapter: Chapter, exercises: dict[str, Any]) -> None:
        if chapter.reference is None:
            return
        wrong = [(e.id, exercises[e.id]) for e in chapter.exercises if exercises[e.id]["status"] != "passed"]
        if wrong:
            details = "; ".join(f"{key}: {r['status']}: {r['feedback'].strip().splitlines()[0][:300] if r['feedback'] else ''}"
                                for key, r in wrong)
            self.close()
            raise GradingError(f"self-test failed: the course's own solution {chapter.path} does not pass its checks "
                               f"in the grader ({details}); fix the course before grading")

    def _fail_worker(self, worker: _WorkerHandle, reason: str, results: dict[str, dict[str, Any]],
                     on_result: Callable | None, chapter: Chapter) -> None:
        task = worker.task
        tail = worker.log_tail().strip().splitlines()
        if not worker.ready:
            self.close()
            raise GradingError(f"a grading worker did not start: {reason}" + (f" ({tail[-1]})" if tail else ""))
        self._replace(worker)
        if task is None:
            return
        if task["key"] == "\0selftest":
            self.close()
            raise GradingError(f"the self-test of {chapter.name} could not run: {reason}")
        exercises = {e.id: {"points": 0, "status": "crashed", "feedback": f"not graded: {reason} while grading "
                                                                          "this submission"}
                     for e in chapter.exercises}
        results[task["key"]] = exercises
        if on_result is not None:
            on_result(task["key"], exercises)


# --------------------------------------------------------------------------------------------------
# Grading a class
# --------------------------------------------------------------------------------------------------

def _infer_chapter(course: Course, submissions: list[Submission]) -> str:
    votes: dict[str, list[str]] = {}
    for submission in submissions:
        if submission.problem:
            continue
        ids = submission.grade_ids
        best, best_overlap = None, 0
        for name in course.names:
            overlap = len(ids & course.grade_ids(name))
            if overlap > best_overlap:
                best, best_overlap = name, overlap
        if best is None and submission.chapter_hint in course.notebooks:
            best = submission.chapter_hint
        if best is not None:
            votes.setdefault(best, []).append(submission.student)
    if not votes:
        raise GradingError("could not tell which chapter these notebooks belong to (none carries the course's "
                           "nbgrader cell ids); pass --chapter")
    if len(votes) > 1:
        listing = "; ".join(f"{name}: {', '.join(sorted(students)[:5])}{' …' if len(students) > 5 else ''}"
                            for name, students in sorted(votes.items()))
        raise GradingError(f"the submissions belong to different chapters ({listing}); grade one chapter at a "
                           "time, or pass --chapter")
    return next(iter(votes))


def _dedupe(course: Course, chapter: str | None, submissions: list[Submission]) -> list[Submission]:
    by_student: dict[str, list[Submission]] = {}
    for submission in submissions:
        by_student.setdefault(submission.student, []).append(submission)
    kept = []
    for student, group in sorted(by_student.items()):
        if len(group) > 1 and chapter is not None:
            ids = course.grade_ids(chapter)
            matching = [s for s in group if not s.problem and s.grade_ids & ids]
            group = matching or group
        if len(group) > 1:
            files = ", ".join(str(s.path) for s in group)
            raise GradingError(f"student {student!r} has {len(group)} notebooks ({files}); give one per student")
        kept.append(group[0])
    return kept


def grade_paths(paths: Sequence[str | Path], *, out: str | Path | None = None, json_out: str | Path | None = None,
                chapter: str | None = None, course: str | Path | Course | None = None, limits: Limits | None = None,
                jobs: int | None = None, isolation: str = "auto", overwrite: bool = False, progress: bool = True,
                grader: Grader | None = None) -> GradeReport:
    """Grade the notebooks at ``paths`` (files or folders); with ``out``, also write the gradebook."""
    started = time.monotonic()
    limits = limits or Limits()
    if out is not None:
        check_gradebook_free(out, json_out, overwrite)  # fail before grading, not after
    course = course if isinstance(course, Course) else (load_course(course) if course else find_course())
    found = collect_submissions(paths, course.names)
    if out is not None:
        gradebook = {p.resolve() for p in _gradebook_paths(out, json_out)}
        clash = [str(path) for _, path in found if path.resolve() in gradebook]
        if clash:
            raise GradingError(f"--out would overwrite a submission: {clash[0]}")
    submissions = [read_submission(path, student) for student, path in found]
    name = course.resolve(chapter) if chapter else _infer_chapter(course, submissions)
    submissions = _dedupe(course, name, submissions)
    the_chapter = course.chapter(name)

    tasks, notes = [], {}
    for submission in submissions:
        if submission.problem is None:
            answers, notes[submission.student] = submission.answers(the_chapter)
            tasks.append((submission.student, answers))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(submissions), desc=f"grading {name}", unit="notebook", file=sys.stderr,
                   dynamic_ncols=True)
        bar.update(len(submissions) - len(tasks))

    def advance(key: str, exercises: dict[str, Any]) -> None:
        if bar is not None:
            bar.set_postfix_str(key[:20])
            bar.update(1)

    own = grader is None
    if grader is None:  # no more workers than submissions: each one costs seconds of start-up
        jobs = min(jobs or min(os.cpu_count() or 1, 8), max(1, len(tasks)))
    pool = grader or Grader(jobs=jobs, isolation=isolation, cwd=the_chapter.path.parent)
    try:
        raw = pool.grade(the_chapter, tasks, limits, on_result=advance) if tasks else {}
        mode, detail = pool.mode, pool.detail
    finally:
        if own:
            pool.close()
        if bar is not None:
            bar.close()

    students = []
    for submission in submissions:
        exercises = {}
        for exercise in the_chapter.exercises:
            if submission.problem is not None:
                result = ExerciseResult(0, exercise.points, "invalid", f"not graded: {submission.problem}")
            else:
                got = raw[submission.student][exercise.id]
                points = float(got["points"]) if got["status"] == "passed" else 0.0
                result = ExerciseResult(_number(min(points, exercise.points)), exercise.points, got["status"],
                                        got["feedback"])
            exercises[exercise.id] = result
        students.append(StudentResult(submission.student, str(submission.path), submission.sha256, exercises,
                                      submission.problem, notes.get(submission.student, [])))
    warnings = []
    for submission in submissions:  # read-only: a changed file means something else touched it
        try:
            now = hashlib.sha256(submission.path.read_bytes()).hexdigest()
        except OSError:
            now = None
        if now != submission.sha256:
            warnings.append(f"{submission.path} changed while it was being graded (graded: the version read first)")
    report = GradeReport(the_chapter, students, limits, mode or "none", detail or "no submission needed a worker",
                         time.monotonic() - started, warnings)
    if out is not None:
        # The paths were checked free (or --overwrite given) before grading; a file that appeared since
        # (a submission's code without the sandbox, another program) is replaced, and said so.
        for path in _gradebook_paths(out, json_out):
            if path.exists() and not overwrite:
                warnings.append(f"{path} appeared while grading (not written by this run); replaced")
        write_gradebook(report, out, json_out, overwrite=True)
    return report


# --------------------------------------------------------------------------------------------------
# Benchmark: 30 synthetic submissions of one chapter
# --------------------------------------------------------------------------------------------------

def synthetic_notebook(chapter: Chapter, answers: dict[str, str]) -> dict[str, Any]:
    """A submission notebook: the course notebook with the given answer cell sources (others as handed out)."""
    notebook = json.loads(chapter.path.read_text(encoding="utf-8"))
    for cell in notebook.get("cells", []):
        grade_id = (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id")
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
            if grade_id in chapter.stubs:
                cell["source"] = answers.get(grade_id, chapter.stubs[grade_id][0])
    return notebook


def bench(count: int = 30, chapter: str | None = None, course: str | Path | Course | None = None,
          jobs: int | None = None, limits: Limits | None = None, stream: TextIO | None = None) -> dict[str, Any]:
    """Grade ``count`` synthetic submissions of one chapter (a third right, a third stubs, a third mixed)
    from scratch (worker start-up included) and print the table and the time."""
    stream = stream or sys.stdout
    course = course if isinstance(course, Course) else (load_course(course) if course else find_course())
    if chapter:
        name = course.resolve(chapter)
    else:
        solved = [n for n in course.names if course.notebooks[n].parent.name == "solutions"] or course.names
        name = "01_reinforce" if "01_reinforce" in solved else solved[0]
    the_chapter = course.chapter(name)
    if the_chapter.reference is None:
        raise GradingError(f"{name} has no solutions notebook to build right answers from")
    with tempfile.TemporaryDirectory(prefix="pgcourse-grade-bench-") as folder:
        submitted = Path(folder) / "submitted"
        submitted.mkdir()
        for number in range(count):
            answers = {}
            for position, grade_id in enumerate(the_chapter.answer_order):
                right = number % 3 == 0 or (number % 3 == 2 and position % 2 == 0)
                if right:
                    answers[grade_id] = the_chapter.reference[grade_id][0]
            notebook = synthetic_notebook(the_chapter, answers)
            (submitted / f"student{number:02d}.ipynb").write_text(json.dumps(notebook, indent=1), encoding="utf-8")
        started = time.monotonic()
        report = grade_paths([submitted], chapter=name, course=course, limits=limits, jobs=jobs, progress=True)
        seconds = time.monotonic() - started
    print(report.summary(), file=stream)
    workers = jobs or min(os.cpu_count() or 1, 8)
    print(f"\nbenchmark: graded {count} submissions of {name} ({len(the_chapter.exercises)} exercises each) in "
          f"{seconds:.1f} s with {workers} worker(s) on {os.cpu_count()} CPU core(s), start-up and self-test "
          f"included", file=stream)
    return {"chapter": name, "count": count, "seconds": seconds, "workers": workers,
            "totals": {s.student: s.total for s in report.students}}


# --------------------------------------------------------------------------------------------------
# Command line (``pgcourse grade``; also ``python -m pgcourse.grading``)
# --------------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submissions", nargs="*", metavar="SUBMISSION",
                        help="student notebooks, or folders of them (folder/alice.ipynb or folder/alice/*.ipynb)")
    parser.add_argument("--out", metavar="FILE.csv", help="gradebook CSV to write (the JSON feedback goes next to it)")
    parser.add_argument("--json", metavar="FILE.json", help="feedback JSON (default: --out with .json)")
    parser.add_argument("--chapter", metavar="NAME", help="e.g. 01_reinforce or 01 (default: from the notebooks)")
    parser.add_argument("--course", metavar="DIR", help="course folder with solutions/ or exercises/ (default: found "
                                                        "from the current folder)")
    parser.add_argument("--jobs", type=int, metavar="N", help="parallel grading workers (default: one per CPU core)")
    parser.add_argument("--timeout", type=float, default=Limits.exercise_s, metavar="S",
                        help=f"wall-clock seconds per exercise (default {Limits.exercise_s:g})")
    parser.add_argument("--submission-timeout", type=float, default=Limits.submission_s, metavar="S",
                        help=f"wall-clock seconds per submission (default {Limits.submission_s:g})")
    parser.add_argument("--memory", type=int, default=Limits.memory_mb, metavar="MB",
                        help=f"memory a submission's code may use (default {Limits.memory_mb})")
    parser.add_argument("--isolation", choices=["auto", SANDBOX, LIMITS_ONLY], default="auto",
                        help="auto: the namespace sandbox where it works, else resource limits only")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing gradebook")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--bench", action="store_true",
                        help="benchmark: grade --count synthetic submissions of --chapter and print the time")
    parser.add_argument("--count", type=int, default=30, metavar="N", help="submissions for --bench (default 30)")


def run(args: argparse.Namespace) -> int:
    try:
        limits = Limits(exercise_s=args.timeout, submission_s=args.submission_timeout, memory_mb=args.memory)
    except ValueError as error:
        raise GradingError(str(error)) from None
    if args.jobs is not None and args.jobs < 1:
        raise GradingError("--jobs must be at least 1")
    if args.bench:
        bench(count=args.count, chapter=args.chapter, course=args.course, jobs=args.jobs, limits=limits)
        return 0
    if not args.submissions:
        raise GradingError("give the submissions to grade (notebooks or folders)")
    if not args.out:
        raise GradingError("give --out FILE.csv for the gradebook")
    report = grade_paths(args.submissions, out=args.out, json_out=args.json, chapter=args.chapter,
                         course=args.course, limits=limits, jobs=args.jobs, isolation=args.isolation,
                         overwrite=args.overwrite, progress=not args.quiet)
    print(report.summary())
    csv_path, json_path = _gradebook_paths(args.out, args.json)
    print(f"wrote {csv_path} and {json_path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgcourse.grading", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (GradingError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
