"""The teacher's own points: overrides of the grader's points and grades of free-text answers.

A manual file (``--manual FILE.csv``) is a CSV with a header and one row per (student, exercise)::

    student,exercise,points,comment
    alice,ch02_value_loss,2,"right idea; the grader's case 3 is an edge case we did not cover in class"
    bob,ch02_why_baseline,1.5,"good, but the variance argument is missing"

``points`` replaces the grader's points for that exercise (an override: the gradebook marks it ``*``
and keeps the grader's own points beside it) or grades a free-text question; an empty ``points``
with a ``comment`` only adds the comment; ``auto`` removes an earlier override. Further columns
(such as ``answer``) are ignored, so the free-text export below, filled in, is a manual file.

Free-text questions (markdown answer cells with points, nbgrader's "manually graded answer") are
never run: each grading writes ``<gradebook>.free-text.csv`` with every student's answer, the points
given so far and an empty column for the rest. The teacher's points stay in the gradebook across
re-gradings (a student's re-submission keeps them, and the feedback says so).
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, replace
from pathlib import Path

from .course import Chapter, GradingError
from .gradebook import FORMULA_START, ExerciseResult, GradeReport, StudentResult, Submission, csv_text_cell
from .identity import read_csv_lines

UNANSWERED = ("YOUR ANSWER HERE", "")


@dataclass(frozen=True)
class ManualEntry:
    student: str
    exercise: str
    points: float | None      # None: comment only; nan: remove the override ("auto")
    comment: str
    line: int


def _plain(text: str) -> str:
    """A name as the teacher's spreadsheet may have it (our CSV's leading ``'`` before a formula removed)."""
    text = text.strip()
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_START) else text


def read_manual(path: str | Path) -> list[ManualEntry]:
    """The rows of a manual file; :class:`GradingError` on a missing column or a value that is not a number."""
    numbered = read_csv_lines(path, "--manual")
    rows = [row for _, row in numbered]
    if not rows:
        raise GradingError(f"--manual {path}: the file is empty; expected a header student,exercise,points,comment")
    header = [name.strip().lower() for name in rows[0]]
    missing = [name for name in ("student", "exercise", "points") if name not in header]
    if missing:
        raise GradingError(f"--manual {path}: no {', '.join(missing)} column; expected a header "
                           f"student,exercise,points,comment (found {','.join(rows[0])})")
    entries, problems = [], []
    for line, row in numbered[1:]:
        record = dict(zip(header, row + [""] * (len(header) - len(row))))
        text = record["points"].strip()
        if text.lower() == "auto":
            points: float | None = math.nan
        elif text == "":
            points = None
        else:
            try:
                points = float(text.replace(",", ".") if text.count(",") == 1 and "." not in text else text)
            except ValueError:
                problems.append(f"line {line}: points {text!r} is not a number (or 'auto' to remove an override, "
                                "or empty to give only a comment)")
                continue
            if not math.isfinite(points) or points < 0:
                problems.append(f"line {line}: points must be ≥ 0, got {text!r}")
                continue
        comment = record.get("comment", "").strip()
        if points is None and not comment:
            continue
        entries.append(ManualEntry(_plain(record["student"]), record["exercise"].strip(), points, comment, line))
    _refuse(f"--manual {path}", problems)
    return entries


def _refuse(where: str, problems: list[str]) -> None:
    """Every bad row at once (a teacher fixing them one run at a time saw one per run): one line each."""
    if len(problems) == 1:
        raise GradingError(f"{where} {problems[0]}")
    if problems:
        raise GradingError(f"{where}: {len(problems)} rows to fix, nothing applied:\n" +
                           "\n".join(f"  {problem}" for problem in problems))


def apply_manual(report: GradeReport, entries: list[ManualEntry], where: str) -> int:
    """Merge the teacher's points and comments into ``report``; the number of entries applied.

    Every entry is checked before any is applied: an unknown student or exercise, or more points than
    the exercise is worth, is a :class:`GradingError` naming the line and what is expected."""
    students = {row.student: row for row in report.students}
    exercises = {exercise.id: exercise for exercise in report.chapter.exercises}
    entries = [resolve_exercise(entry, report.chapter) for entry in entries]
    problems = []
    for entry in entries:
        if entry.student not in students:
            known = ", ".join(sorted(students)[:8]) + (" …" if len(students) > 8 else "")
            problems.append(f"line {entry.line}: no student {entry.student!r} in the gradebook of {report.name} "
                            f"(students: {known})")
        elif entry.exercise not in exercises:
            names = ", ".join(f"{e.id} ({e.label})" if e.label != e.id else e.id for e in report.chapter.exercises)
            problems.append(f"line {entry.line}: {entry.exercise!r} is not an exercise of {report.chapter.name}; "
                            f"expected one of {names} (the id, or the short name the table shows)")
        elif entry.points is not None and not math.isnan(entry.points) and \
                entry.points > exercises[entry.exercise].points:
            limit = exercises[entry.exercise].points
            problems.append(f"line {entry.line}: {entry.points:g} points for {entry.exercise}, which is worth "
                            f"{limit:g}; give at most {limit:g}")
    _refuse(where, problems)
    for entry in entries:
        result = students[entry.student].exercises[entry.exercise]
        if entry.points is not None:
            result.teacher_points = None if math.isnan(entry.points) else entry.points
        if entry.comment:
            result.comment = entry.comment
        settle(result)
    return len(entries)


def resolve_exercise(entry: ManualEntry, chapter: Chapter) -> ManualEntry:
    """``entry`` with its exercise as the chapter's id: the table's short name (``normalize``) names the exercise
    whose id it is without the chapter prefix (``ch01_normalize``); an id, or a name matching nothing, stays."""
    if any(exercise.id == entry.exercise for exercise in chapter.exercises):
        return entry
    found = [exercise.id for exercise in chapter.exercises if exercise.label == entry.exercise]
    return replace(entry, exercise=found[0]) if len(found) == 1 else entry


def settle(result: ExerciseResult) -> None:
    """The points that count: the teacher's where given, else the grader's (0 for an ungraded free text)."""
    if result.teacher_points is not None:
        result.points = result.teacher_points
        if result.status == "manual":
            result.status = "reviewed"
    else:
        result.points = result.graded_points if result.graded_points is not None else 0
        if result.status == "reviewed":
            result.status = "manual"


def free_text_result(exercise_points: float, answer: str | None) -> ExerciseResult:
    """A free-text question's row before the teacher grades it."""
    if answer is None or answer.strip() in UNANSWERED:
        return ExerciseResult(0, exercise_points, "missing", "not answered: the answer cell still holds the "
                              "handout's text", graded_points=None)
    return ExerciseResult(0, exercise_points, "manual", "a free-text answer: your teacher grades it",
                          graded_points=None, answer=answer)


def carry_over(new: StudentResult, old: StudentResult) -> None:
    """Keep the teacher's points and comments when a student is graded again (a re-submission)."""
    for exercise_id, before in old.exercises.items():
        now = new.exercises.get(exercise_id)
        if now is None or (before.teacher_points is None and not before.comment):
            continue
        now.teacher_points, now.comment = before.teacher_points, before.comment
        settle(now)
        if before.teacher_points is not None:
            new.notes.append(f"your teacher's points for {exercise_id} ({before.teacher_points:g}) were kept from the "
                             "earlier grading")


def free_text_csv(report: GradeReport) -> str | None:
    """The free-text answers to grade, as a manual file to fill in (None when the chapter has none)."""
    exercises = report.chapter.manual_exercises
    if not exercises:
        return None
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["student", "exercise", "points", "comment", "max_points", "answer"])
    for row in report.students:
        for exercise in exercises:
            result = row.exercises[exercise.id]
            points = "" if result.teacher_points is None else f"{result.teacher_points:g}"
            writer.writerow([csv_text_cell(row.student), exercise.id, points, csv_text_cell(result.comment),
                             f"{exercise.points:g}", csv_text_cell(result.answer)])
    return buffer.getvalue()


def answers_of(submission: Submission, chapter: Chapter) -> dict[str, str]:
    return submission.free_text(chapter) if submission.problem is None else {}
