"""Submissions in, gradebook out: reading the students' notebooks, the results and the CSV/JSON files.

A submission is read once, from memory (the file is never written); the gradebook is one CSV row
per student and one column per exercise, and a JSON file with each check's feedback, written
atomically and never over an existing file unless asked.

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
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..notebook_format import MAX_NOTEBOOK_BYTES, Cell, NotebookError, parse_notebook
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
    sha256: str | None            # None: the file was not read (a symlink, too large, unreadable)
    problem: str | None = None
    cells: list[Cell] = field(default_factory=list, repr=False)
    chapter_hint: str | None = None
    nbformat: int | None = None
    mtime_ns: int = 0             # when the file was last modified (picks one of a student's notebooks)
    notes: list[str] = field(default_factory=list)

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
    hint = metadata.get("pgcourse")
    if isinstance(hint, dict) and isinstance(hint.get("chapter"), str):
        submission.chapter_hint = hint["chapter"]
    return submission


def _student_of(name: str) -> str:
    """``alice.ipynb`` and ``alice/`` are both student ``alice``."""
    return name[: -len(".ipynb")] if name.endswith(".ipynb") and len(name) > len(".ipynb") else name


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


def collect_submissions(paths: Sequence[str | Path], chapter_names: Iterable[str] = ()) -> list[tuple[str, Path]]:
    """(student id, file) for each submission: a file's own name, or for a folder, the name of its entry
    (``folder/alice.ipynb`` and ``folder/alice/<anything>.ipynb`` are both student ``alice``).

    A folder given here is the teacher's and is opened even through a symlink; inside it, nothing is
    followed: a symlinked notebook or student folder is still listed, so that its student gets a row
    (0 points, "symlinks are not graded") instead of silently nothing, or a classmate's work.
    """
    chapter_names = set(chapter_names)
    found: list[tuple[str, Path]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            with os.scandir(path) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_symlink():
                    if entry.name.endswith(".ipynb") or os.path.isdir(entry.path):  # stat only, never listed
                        found.append((_student_of(entry.name), Path(entry.path)))
                elif entry.is_dir(follow_symlinks=False):
                    found += [(_student_of(entry.name), file) for file in _notebooks_below(Path(entry.path))]
                elif entry.name.endswith(".ipynb") and entry.is_file(follow_symlinks=False):
                    found.append((_student_of(entry.name), Path(entry.path)))
        elif path.is_file() or path.is_symlink():  # a link given by name is refused when it is read
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
    points: float
    max_points: float
    status: str          # passed | failed | error | timeout | crashed | missing | invalid
    feedback: str


@dataclass
class StudentResult:
    student: str
    file: str
    sha256: str | None
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

        # Every text cell is quoted (a carriage return inside a name cannot split the row) and
        # neutralised (csv_text_cell); the grader's own numbers are written as numbers, untouched.
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow([csv_text_cell(text) for text in ["student", *[e.id for e in self.chapter.exercises], "total"]])
        for result in self.students:
            writer.writerow([csv_text_cell(result.student),
                             *[_number(result.exercises[e.id].points) for e in self.chapter.exercises],
                             _number(result.total)])
        return buffer.getvalue()

    def to_json(self) -> dict[str, Any]:
        """The JSON feedback; every string valid UTF-8 (names and messages may come from the class)."""
        return _json_safe({
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
        })

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
            rows.append([shown(s.student), *cells, f"{_number(s.total)}/{_number(s.max_total)}"])
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
        lines.append("marks: T time limit, C crashed, E exception, M answer cell missing, I not graded (not a "
                     "notebook, a symlink, too large; details per exercise in the JSON)")
        lines.append(f"isolation: {self.isolation} ({self.isolation_detail})")
        lines += [f"warning: {shown_line(warning)}" for warning in self.warnings]
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
