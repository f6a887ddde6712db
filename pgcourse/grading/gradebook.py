"""Submissions in, gradebook out: reading the students' notebooks, the results and the CSV/JSON files.

A submission is read once, from memory (the file is never written); the gradebook is one CSV row
per student and one column per exercise, and a JSON file with each check's feedback, written
atomically and never over an existing file unless asked.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..notebook_format import Cell, NotebookError, parse_notebook
from .course import Chapter, GradingError, _strip_magics
from .sandbox import Limits

STATUSES = ("passed", "failed", "error", "timeout", "crashed", "missing", "invalid")


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
