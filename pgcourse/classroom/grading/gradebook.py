"""Submissions in, gradebook out: reading the students' notebooks, the results and the CSV/JSON files.

A submission is read once, from memory (the file is never written); the gradebook is one CSV row
per student and one column per exercise, and a JSON file with each check's feedback, written
atomically and never over an existing file unless asked (and then the previous one is kept: see
:mod:`.records`). The JSON is read back (:func:`report_from_json`) to update a gradebook: re-grade
some students, merge the teacher's points, apply another late policy.

The submissions folder is written by the class, so nothing in it is trusted: a symlink is listed
(its student gets a row saying why there are no points) but never followed, a file's size is
checked before it is opened and never more than the limit is read, and a student's name (a file
name: any bytes but ``/``) is made safe for a spreadsheet, for JSON and for the terminal where it
is written.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..notebook_format import MAX_NOTEBOOK_BYTES, Cell, NotebookError, parse_notebook
from .assignment import LatePolicy
from .course import Chapter, GradingError, _strip_magics, cell_ids
from .identity import Identity, attribute_files, identity_of, owners_of_files
from .records import atomic_write, run_stamp, write_kept
from .sandbox import Limits

STATUSES = ("passed", "failed", "error", "timeout", "crashed", "missing", "invalid", "manual", "reviewed")
# manual: a free-text answer waiting for the teacher's points; reviewed: the teacher gave them (--manual)


# --------------------------------------------------------------------------------------------------
# Submissions
# --------------------------------------------------------------------------------------------------

@dataclass
class Submission:
    """One student's file, read once (graded from memory; the file is never written)."""

    student: str
    path: Path
    sha256: str | None            # None: the file was not read (a symlink, too large, unreadable)
    problem: str | None = None
    cells: list[Cell] = field(default_factory=list, repr=False)
    chapter_hint: str | None = None
    nbformat: int | None = None
    mtime_ns: int = 0             # when the file was last modified (the least trusted submission time)
    notes: list[str] = field(default_factory=list)
    cell_ids: dict[int, str] = field(default_factory=dict, repr=False)
    identity: Identity | None = None
    submitted_at: datetime | None = None   # the most trusted submission time known (see identity.py)
    time_source: str = ""
    not_taken: list[Cell] = field(default_factory=list, repr=False)  # the student's cells the grader does not run

    @property
    def grade_ids(self) -> frozenset[str]:
        return frozenset(cell.grade_id for cell in self.cells if cell.grade_id)

    def answers(self, chapter: Chapter) -> tuple[dict[str, list[Any]], list[str]]:
        """The student's answer cells by grade_id (code cells only, in notebook order), and notes.

        A code cell the student added (no grade_id of the course, not one of the course's cells by id or
        source) runs too, as in their notebook: with the exercise whose answer or check cell comes next,
        as ``{"added": cell number, "source": ...}`` (its errors are notes, not failures). Added cells
        after the last exercise's check, or before a check whose answer cell is missing, are not taken
        (:attr:`not_taken`).
        """
        answers: dict[str, list[Any]] = {}
        notes = []
        wanted = set(chapter.answer_order)
        manual = {exercise.id for exercise in chapter.manual_exercises}
        check_of = {exercise.check_grade_id: exercise for exercise in chapter.auto_exercises}
        pending: list[Cell] = []
        self.not_taken = []
        for cell in self.cells:
            if cell.grade_id in wanted:
                if cell.cell_type == "code":
                    answers.setdefault(cell.grade_id, []).extend([_added(c) for c in pending]
                                                                 + [_strip_magics(cell.source)])
                    pending = []
                else:
                    notes.append(f"answer cell {cell.grade_id} is a {cell.cell_type} cell, not code: ignored")
            elif cell.grade_id in check_of:
                last = next((g for g in reversed(check_of[cell.grade_id].answer_ids) if g in answers), None)
                if last is not None:
                    answers[last].extend(_added(c) for c in pending)
                else:
                    self.not_taken += pending
                pending = []
            elif cell.cell_type == "code" and cell.grade_id not in chapter.grade_ids and cell.grade_id not in manual \
                    and not self._is_course_cell(cell, chapter) and cell.source.strip():
                pending.append(cell)
        self.not_taken += pending
        for grade_id, sources in answers.items():
            copies = sum(isinstance(source, str) for source in sources)
            if copies > 1:
                notes.append(f"answer cell {grade_id} appears {copies} times: all copies ran, in notebook order")
        if not any(isinstance(s, str) for sources in answers.values() for s in sources) and chapter.answer_order:
            notes.append(f"none of the answer cells of {chapter.name} is in this notebook: is it the right notebook?")
        return answers, notes

    def _is_course_cell(self, cell: Cell, chapter: Chapter) -> bool:
        cell_id = self.cell_ids.get(cell.index)
        return (cell_id is not None and f"id:{cell_id}" in chapter.course_cells) or \
            f"src:{cell.source.strip()}" in chapter.course_cells

    def free_text(self, chapter: Chapter) -> dict[str, str]:
        """The student's free-text answers (markdown answer cells of the chapter's manual exercises)."""
        wanted = {exercise.id for exercise in chapter.manual_exercises}
        found: dict[str, str] = {}
        for cell in self.cells:
            if cell.grade_id in wanted and cell.cell_type == "markdown":
                found[cell.grade_id] = (found.get(cell.grade_id, "") + "\n\n" + cell.source).strip()
        return found


def _added(cell: Cell) -> dict[str, Any]:
    return {"added": cell.index + 1, "source": _strip_magics(cell.source)}


class _NotRead(Exception):
    """Why a submission file was not read (the student's row says it; the batch goes on)."""


SYMLINK_PROBLEM = "it is a symbolic link: symlinks are not graded (hand in the notebook file itself)"


def _size_text(size: int) -> str:
    return f"{size // 2**20} MB" if size >= 2**20 and size % 2**20 == 0 else f"{size} bytes"


def _too_large(size: str, limit: int) -> _NotRead:
    return _NotRead(f"the file is too large ({size}); the limit is {_size_text(limit)}")


def read_limited(path: str | Path, limit: int = MAX_NOTEBOOK_BYTES) -> tuple[bytes, os.stat_result]:
    """The bytes of the regular file ``path`` and its stat, without following a symlink and without reading
    more than ``limit + 1`` bytes; :class:`_NotRead` says why not.

    The size is checked on ``lstat`` before the file is opened (a 700 MB sparse file costs nothing),
    again on the open file, and the read stops one byte past the limit, so a file that grows
    meanwhile is still refused without being read whole. ``O_NOFOLLOW`` refuses a file swapped for a
    symlink after the check; ``O_NONBLOCK`` keeps a FIFO swapped in from blocking the grader.
    """
    try:
        info = os.lstat(path)
    except OSError as error:
        raise _NotRead(f"could not read the file ({error.strerror or error})") from None
    if stat.S_ISLNK(info.st_mode):
        raise _NotRead(SYMLINK_PROBLEM)
    if not stat.S_ISREG(info.st_mode):
        raise _NotRead("not a regular file (a folder, device or pipe); expected a notebook file")
    if info.st_size > limit:
        raise _too_large(_size_text(info.st_size), limit)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _NotRead(SYMLINK_PROBLEM) from None
        raise _NotRead(f"could not read the file ({error.strerror or error})") from None
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
            raise _NotRead("the file was replaced while it was being read; grade it again")
        if opened.st_size > limit:
            raise _too_large(_size_text(opened.st_size), limit)
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 2**20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as error:
        raise _NotRead(f"could not read the file ({error.strerror or error})") from None
    finally:
        os.close(fd)
    if left <= 0:
        raise _too_large(f"it grew past {_size_text(limit)} while it was being read", limit)
    return b"".join(chunks), opened


def read_submission(path: str | Path, student: str | None = None) -> Submission:
    """One student's file, read once and parsed; a file that cannot be graded gets ``problem`` (why), not
    an exception: a symlink (never followed), a file over :data:`MAX_NOTEBOOK_BYTES` (never opened), not
    a notebook."""
    path = Path(path)
    submission = Submission(student or path.stem, path, None)
    try:
        data, info = read_limited(path, MAX_NOTEBOOK_BYTES)
    except _NotRead as error:
        submission.problem = str(error)
        with contextlib.suppress(OSError):
            submission.mtime_ns = os.lstat(path).st_mtime_ns
        return submission
    submission.sha256, submission.mtime_ns = hashlib.sha256(data).hexdigest(), info.st_mtime_ns
    try:
        submission.cells, metadata, submission.nbformat = parse_notebook(data)
    except NotebookError as error:
        submission.problem = str(error)
        return submission
    submission.cell_ids = cell_ids(data)
    hint = metadata.get("pgcourse")
    if isinstance(hint, dict) and isinstance(hint.get("chapter"), str):
        submission.chapter_hint = hint["chapter"]
    return submission


def _notebooks_below(folder: Path) -> list[Path]:
    """The notebooks in a student's folder, at any depth, hidden entries skipped. Symlinks are listed,
    not followed: a linked notebook or folder is an entry that :func:`read_submission` refuses."""
    found = []
    for where, folders, files in os.walk(folder, followlinks=False):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in folders:
            if os.path.islink(os.path.join(where, name)):
                found.append(Path(where, name))  # os.walk does not go in: the student gets an error entry
        found += [Path(where, name) for name in sorted(files) if name.endswith(".ipynb") and not name.startswith(".")]
    return sorted(found)


def one_students_folder(folder: Path, chapter_names: set[str]) -> Path | None:
    """The folder named for its student when ``folder`` (given by the teacher) is one student's, not a class's:
    it holds a notebook named like a chapter (``alice/01_reinforce.ipynb``: a class's folder names notebooks
    for students), or it or a folder in it is an nbgrader assignment folder (``timestamp.txt``). The name is
    the folder's as given (a symlink's own name, never its target's), or the first folder above an assignment
    folder (``alice`` for ``submitted/alice/ch01``). ``None`` for a class's folder."""
    folder = Path(os.path.abspath(folder))  # '..' and a trailing slash collapsed, a link's name kept
    try:
        with os.scandir(folder) as scan:
            entries = [entry for entry in scan if not entry.name.startswith(".")]
    except OSError:
        return None
    own = (folder / "timestamp.txt").is_file() or any(
        entry.name.endswith(".ipynb") and entry.name[:-len(".ipynb")] in chapter_names
        and entry.is_file(follow_symlinks=False) for entry in entries) or any(
        entry.is_dir(follow_symlinks=False) and (Path(entry.path) / "timestamp.txt").is_file() for entry in entries)
    if not own:
        return None
    while ((folder / "timestamp.txt").is_file() or folder.name in chapter_names) and folder.parent != folder:
        folder = folder.parent
    return folder


def collect_identified(paths: Sequence[str | Path], chapter_names: Iterable[str] = ()) -> list[tuple[Identity, Path]]:
    """(who, file) for each submission: see :mod:`pgcourse.classroom.grading.identity` for the layouts (a file per
    student, a folder per student, nbgrader, Canvas and Moodle downloads).

    A folder given here is the teacher's and is opened even through a symlink. One student's folder given alone
    (:func:`one_students_folder`) is that student: all its notebooks are theirs. Inside a folder, nothing is
    followed: a symlinked notebook or student folder is still listed, so that its student gets a row
    (0 points, "symlinks are not graded") instead of silently nothing, or a classmate's work.

    A notebook in a student's folder is that student's whatever its name; one named for a classmate is
    marked (``named_for``: not graded, never the classmate's), and Moodle participants who share a name are
    told apart by their participant numbers (:func:`pgcourse.classroom.grading.identity.attribute_files`).
    """
    chapter_names = set(chapter_names)
    owned: list[tuple[Identity, Path, bool]] = []  # (whose, the file, it lies in its student's folder)
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        student_folder = one_students_folder(path, chapter_names) if path.is_dir() else None
        if student_folder is not None:
            owner = identity_of(student_folder.name)
            owned += [(owner, file, True) for file in _notebooks_below(path)]
        elif path.is_dir():
            with os.scandir(path) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_symlink():
                    if entry.name.endswith(".ipynb") or os.path.isdir(entry.path):  # stat only, never listed
                        owned.append((identity_of(entry.name), Path(entry.path), False))
                elif entry.is_dir(follow_symlinks=False):
                    owner = identity_of(entry.name)
                    owned += [(owner, file, True) for file in _notebooks_below(Path(entry.path))]
                elif entry.name.endswith(".ipynb") and entry.is_file(follow_symlinks=False):
                    owned.append((identity_of(entry.name), Path(entry.path), False))
        elif path.is_file() or path.is_symlink():  # a link given by name is refused when it is read
            files.append(path)
        else:
            raise GradingError(f"no such file or folder: {given}")
    owned += [(owner, path, inside) for (owner, inside), path in zip(owners_of_files(files, chapter_names), files)]
    if not owned:
        raise GradingError("no submissions found (give .ipynb files or folders holding them)")
    return list(zip(attribute_files(owned, chapter_names), (path for _, path, _ in owned)))


def collect_submissions(paths: Sequence[str | Path], chapter_names: Iterable[str] = ()) -> list[tuple[str, Path]]:
    """(student id, file) for each submission (:func:`collect_identified` without the LMS details)."""
    return [(identity.student, path) for identity, path in collect_identified(paths, chapter_names)]


# --------------------------------------------------------------------------------------------------
# Text written for people and programs: spreadsheet, JSON, terminal
# --------------------------------------------------------------------------------------------------

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet may read as a formula (OWASP CSV injection)


def writable(text: str) -> str:
    """``text`` as valid UTF-8: the undecodable bytes of a file name (lone surrogates in Python) become
    ``\\xNN``, so writing the gradebook cannot fail on one odd name."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that is not an escaped byte (from a student's own message)
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def csv_text_cell(text: str) -> str:
    """A text cell (never a number the grader wrote) that a spreadsheet shows as text, not a formula:
    a leading ``'`` before ``= + - @``, tab or carriage return."""
    text = writable(text)
    return "'" + text if text.startswith(FORMULA_START) else text


def shown(text: str) -> str:
    """A name for the terminal: as is if printable, else its ``repr`` (escape sequences, newlines and
    undecodable bytes shown, not acted on)."""
    return text if text.isprintable() else repr(text)


def shown_line(text: str) -> str:
    """A message line for the terminal: each unprintable character escaped in place."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _json_safe(value: Any) -> Any:
    if isinstance(value, str):
        return writable(value)
    if isinstance(value, dict):
        return {writable(k) if isinstance(k, str) else k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------

@dataclass
class ExerciseResult:
    points: float        # what counts: the grader's points, or the teacher's where they gave some
    max_points: float
    status: str          # one of STATUSES
    feedback: str
    graded_points: float | None = None   # the grader's own points (None: a free-text question)
    teacher_points: float | None = None  # the teacher's, from a --manual file (override or free-text grade)
    comment: str = ""                    # the teacher's comment, from the --manual file
    answer: str = ""                     # a free-text answer, as written (for the teacher, never run)


@dataclass
class StudentResult:
    student: str
    file: str
    sha256: str | None
    exercises: dict[str, ExerciseResult]
    problem: str | None = None
    notes: list[str] = field(default_factory=list)
    identity: dict[str, Any] = field(default_factory=dict)   # from the file name: LMS, LMS id, name
    submitted_at: str | None = None      # ISO 8601, UTC
    time_source: str = ""                # where submitted_at comes from (nbgrader, LMS, Canvas flag, file time)
    late_s: float = 0.0                  # seconds late, after the grace period
    late_units: int = 0                  # days (hours) charged
    penalty: float = 0.0                 # points taken for lateness
    late_policy: dict[str, Any] = field(default_factory=dict)  # this student's own settings (an extension), as
    #                                      LatePolicy.to_json's: deadline, late_penalty, grace_s; the class's otherwise
    no_submission: bool = False          # on the roster, nothing handed in: 0 points, said so

    @property
    def earned(self) -> float:
        """Points before the late penalty."""
        return sum(result.points for result in self.exercises.values())

    @property
    def total(self) -> float:
        earned = self.earned  # a late penalty takes at most what was earned
        return earned - min(self.penalty, max(earned, 0.0)) if self.penalty else earned

    @property
    def max_total(self) -> float:
        return sum(result.max_points for result in self.exercises.values())


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(float(value), 6)


GRADEBOOK_FORMAT = "pgcourse-grades/2"


@dataclass
class GradeReport:
    chapter: Chapter
    students: list[StudentResult]
    limits: Limits
    isolation: str
    isolation_detail: str
    seconds: float
    warnings: list[str] = field(default_factory=list)
    assignment: str = ""                 # the gradebook column in a term gradebook (default: the chapter)
    policy: LatePolicy = field(default_factory=LatePolicy)
    submissions: list[Submission] = field(default_factory=list, repr=False)  # graded in this run (not saved)
    hide_expected: bool = False          # the feedback files hide the checks' expected values
    changes: list[tuple[str, float, float, str]] = field(default_factory=list)  # this run's changed totals (not
    #                                      saved): (student, before, after, why), said in the summary and the audit
    notices: list[str] = field(default_factory=list)  # this run's notes for the teacher (not saved): a student's
    #                                      own late setting that a change for the class left alone

    @property
    def name(self) -> str:
        return self.assignment or self.chapter.name

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

        # Every text cell is quoted (a carriage return inside a name cannot split the row) and
        # neutralised (csv_text_cell); the grader's own numbers are written as numbers, untouched.
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
        late = self.policy.deadline is not None
        writer.writerow([csv_text_cell(text) for text in ["student", *[e.id for e in self.chapter.exercises],
                                                          *(["late_penalty"] if late else []), "total"]])
        for result in self.students:
            writer.writerow([csv_text_cell(result.student),
                             *[_number(result.exercises[e.id].points) for e in self.chapter.exercises],
                             *([_number(result.penalty)] if late else []), _number(result.total)])
        return buffer.getvalue()

    def to_json(self) -> dict[str, Any]:
        """The JSON feedback; every string valid UTF-8 (names and messages may come from the class)."""
        return _json_safe({
            "format": GRADEBOOK_FORMAT,
            "assignment": self.name,
            "chapter": self.chapter.name,
            "course_notebook": str(self.chapter.path),
            "max_total": _number(self.chapter.max_points),
            "exercises": [{"id": e.id, "points": _number(e.points), "check_cell": e.check_grade_id,
                           "answer_cells": list(e.answer_ids), "kind": e.kind, "partial_credit": e.partial}
                          for e in self.chapter.exercises],
            "late_policy": self.policy.to_json(),
            "settings": {"hide_expected": self.hide_expected},
            "limits": self.limits.to_dict(),
            "isolation": {"mode": self.isolation, "detail": self.isolation_detail},
            "warnings": self.warnings,
            "students": [_student_json(s) for s in self.students],
        })

    def summary(self) -> str:
        """The table printed after grading."""
        marks = {"timeout": "T", "crashed": "C", "error": "E", "missing": "M", "invalid": "I", "manual": "?"}
        labels = [e.label for e in self.chapter.exercises]
        late = self.policy.deadline is not None
        rows = []
        for s in self.students:
            cells = []
            for e in self.chapter.exercises:
                r = s.exercises[e.id]
                mark = marks.get(r.status, "") + ("*" if r.teacher_points is not None else "")
                cells.append("-" if s.no_submission and r.teacher_points is None else
                             f"{_number(r.points)}{' ' + mark if mark else ''}")
            penalty = [f"-{_number(s.penalty)}" if s.penalty else ""] if late else []
            rows.append([shown(s.student), *cells, *penalty, f"{_number(s.total)}/{_number(s.max_total)}"])
        header = ["student", *labels, *(["late"] if late else []), "total"]
        widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(str(v).ljust(widths[0]) if i == 0 else str(v).rjust(widths[i]) for i, v in enumerate(row))
                 for row in [header, *rows]]
        lines.insert(1, "  ".join("-" * w for w in widths))
        totals = [s.total for s in self.students if not s.no_submission]
        absent = sum(s.no_submission for s in self.students)
        if self.students:
            lines.append("")
            mean = f", mean {sum(totals) / len(totals):.2f} / {_number(self.chapter.max_points)}" if totals else ""
            lines.append(f"{len(totals)} submission(s) of {self.chapter.name}"
                         + (f" and {absent} student(s) of the class list with none (0 each)" if absent else "")
                         + f"{mean}; graded in {self.seconds:.1f} s")
        lines.append("marks: T time limit, C crashed, E exception, M answer cell missing, I not graded (not a "
                     "notebook, a symlink, too large; details per exercise in the JSON)"
                     + (", ? free-text answer to grade (--manual)" if self.chapter.manual_exercises else "")
                     + (", - no submission (on the roster, nothing handed in: 0)" if any(
                         s.no_submission for s in self.students) else "")
                     + (", * the teacher's points" if any(r.teacher_points is not None for s in self.students
                                                            for r in s.exercises.values()) else ""))
        if late:
            lines.append(f"late policy: {self.policy.describe()}")
        lines.append(f"isolation: {self.isolation} ({self.isolation_detail})")
        lines += [f"changed: {shown_line(f'{student} {_number(before)} → {_number(after)}: {why}')}"
                  for student, before, after, why in self.changes]
        lines += [f"note: {shown_line(notice)}" for notice in self.notices]
        lines += [f"warning: {shown_line(warning)}" for warning in self.warnings]
        return "\n".join(lines)


def _student_json(s: StudentResult) -> dict[str, Any]:
    found = {"student": s.student, "file": s.file, "sha256": s.sha256,
             "total": _number(s.total), "max_total": _number(s.max_total),
             "problem": s.problem, "notes": s.notes,
             "exercises": {k: _exercise_json(v) for k, v in s.exercises.items()}}
    if s.identity:
        found["identity"] = s.identity
    if s.submitted_at is not None or s.time_source:  # a Canvas LATE flag is a source without a time: kept too
        found.update(submitted_at=s.submitted_at, time_source=s.time_source)
    if s.late_s or s.penalty:
        found.update(late_s=_number(s.late_s), late_units=s.late_units, penalty=_number(s.penalty))
    if s.late_policy:
        found["late_policy"] = s.late_policy
    if s.no_submission:
        found["no_submission"] = True
    return found


def _exercise_json(result: ExerciseResult) -> dict[str, Any]:
    found: dict[str, Any] = {"points": _number(result.points), "max_points": _number(result.max_points),
                             "status": result.status, "feedback": result.feedback}
    if result.graded_points is not None and result.graded_points != result.points:
        found["graded_points"] = _number(result.graded_points)
    if result.teacher_points is not None:
        found["teacher_points"] = _number(result.teacher_points)
    if result.comment:
        found["comment"] = result.comment
    if result.answer:
        found["answer"] = result.answer
    return found


def report_from_json(data: dict[str, Any], chapter: Chapter, where: str) -> GradeReport:
    """A gradebook written by :meth:`GradeReport.to_json`, read back (to update it: re-grade some students,
    merge the teacher's points, re-apply a late policy). :class:`GradingError` if it is not one of this chapter."""
    if not isinstance(data, dict) or not isinstance(data.get("students"), list) or "chapter" not in data:
        raise GradingError(f"{where} is not a gradebook written by pgcourse grade (no chapter and students)")
    if data["chapter"] != chapter.name:
        raise GradingError(f"{where} grades chapter {data['chapter']}, not {chapter.name}: give --out the "
                           f"gradebook of {chapter.name}, or --chapter {data['chapter']}")
    students = []
    for entry in data["students"]:
        exercises = {}
        for exercise in chapter.exercises:
            got = entry.get("exercises", {}).get(exercise.id)
            if got is None:
                exercises[exercise.id] = ExerciseResult(0, exercise.points, "missing",
                                                        "not in the earlier gradebook (the chapter changed since)")
                continue
            graded = got.get("graded_points", got["points"] if got.get("teacher_points") is None else None)
            if exercise.kind == "manual":
                graded = None  # a free-text answer: only the teacher gives points
            exercises[exercise.id] = ExerciseResult(got["points"], exercise.points, got["status"], got["feedback"],
                                                    graded, got.get("teacher_points"), got.get("comment", ""),
                                                    got.get("answer", ""))
        students.append(StudentResult(entry["student"], entry["file"], entry.get("sha256"), exercises,
                                      entry.get("problem"), list(entry.get("notes", [])), entry.get("identity", {}),
                                      entry.get("submitted_at"), entry.get("time_source", ""),
                                      float(entry.get("late_s", 0)), int(entry.get("late_units", 0)),
                                      float(entry.get("penalty", 0)), dict(entry.get("late_policy") or {}),
                                      bool(entry.get("no_submission"))))
    isolation = data.get("isolation", {})
    return GradeReport(chapter, students, Limits(**data.get("limits", {})), isolation.get("mode", "none"),
                       isolation.get("detail", ""), 0.0, list(data.get("warnings", [])),
                       data.get("assignment", "") if data.get("assignment") != chapter.name else "",
                       LatePolicy.from_json(data.get("late_policy", {})))


def read_gradebook_json(json_path: Path) -> Any:
    """The JSON of the gradebook ``--update`` merges into, or a GradingError saying why it cannot be read."""
    try:
        return json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GradingError(f"--update: there is no gradebook {json_path} to update yet (grade the class first, "
                           "without --update)") from None
    except (OSError, ValueError) as error:
        raise GradingError(f"{json_path} cannot be read as a gradebook ({error})") from None


def read_report(json_path: Path, chapter: Chapter) -> GradeReport:
    return report_from_json(read_gradebook_json(json_path), chapter, str(json_path))


_atomic_write = atomic_write  # the earlier name


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
                    overwrite: bool = False, kept: list[Path] | None = None) -> tuple[Path, Path]:
    """Write the CSV and the JSON (atomically; existing files only with ``overwrite``, and then the previous
    version is kept in ``<stem>.history/``, its path appended to ``kept``)."""
    csv_path, json_path = _gradebook_paths(out, json_out)
    check_gradebook_free(csv_path, json_path, overwrite)
    texts = {json_path: json.dumps(report.to_json(), indent=1, ensure_ascii=False) + "\n",
             csv_path: report.csv_text()}
    stamp = run_stamp()
    for path, text in texts.items():
        if overwrite:
            previous = write_kept(path, text, stamp)
            if previous is not None and kept is not None:
                kept.append(previous)
        else:
            atomic_write(path, text, overwrite=False)
    return csv_path, json_path
