"""The term gradebook: one row per student, one column per assignment, updated assignment by assignment.

``pgcourse grade … --out grades/02.csv --gradebook term.csv`` grades an assignment, then sets the
assignment's column of ``term.csv`` (and ``term.json``) to the totals of its gradebook
(``grades/02.json``): a student's re-grade, the teacher's points, a late policy changed later all
reach the term gradebook the same way. The other columns are untouched. A student who handed in nothing
for an assignment (a row of its gradebook marked "no submission": on the class list, ``--roster``, with
no notebook; or no row at all) has 0 there, and ``term.csv``'s last column, ``no_submission``, names those
assignments (a warning too, at each update). The previous ``term.csv``/``term.json`` are kept in
``term.history/`` and each update appends a line to ``term.audit.jsonl``.

``term.json`` holds the assignments (name, chapter, points possible, the gradebook they come from) and
per student the scores (one per row of an assignment's gradebook), the assignments of those rows that are
"no submission", and what the file names told about them (LMS, LMS id, name), for the exports to Canvas and
Moodle (:mod:`pgcourse.classroom.grading.lms`).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from .course import GradingError
from .gradebook import GradeReport, _number, csv_text_cell
from .lms import Roster, canvas_csv, moodle_csv
from .records import write_kept

TERM_FORMAT = "pgcourse-term/1"


def term_paths(gradebook: str | Path) -> tuple[Path, Path]:
    csv_path = Path(gradebook)
    if csv_path.suffix.lower() != ".csv":
        raise GradingError(f"--gradebook {gradebook}: expected a .csv file name (the JSON goes beside it)")
    return csv_path, csv_path.with_suffix(".json")


def read_term(gradebook: str | Path, must_exist: bool = False) -> dict[str, Any]:
    """The term gradebook's JSON (an empty one when there is none yet, unless ``must_exist``)."""
    _, json_path = term_paths(gradebook)
    if not json_path.exists():
        if must_exist:
            raise GradingError(f"--gradebook {gradebook}: there is no term gradebook yet ({json_path} is missing); "
                               "grade an assignment with --gradebook first")
        return {"format": TERM_FORMAT, "assignments": [], "students": []}
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise GradingError(f"--gradebook: {json_path} cannot be read ({error})") from None
    if not isinstance(data, dict) or data.get("format") != TERM_FORMAT:
        raise GradingError(f"--gradebook: {json_path} is not a term gradebook written by pgcourse grade (it has no "
                           f"\"format\": \"{TERM_FORMAT}\"); choose another --gradebook")
    return data


def update_term(term: dict[str, Any], report: GradeReport, source: str, roster: Roster | None = None) -> list[str]:
    """Set ``report``'s column of ``term`` (in place); warnings (a name that matches no roster student)."""
    name = report.name
    entry = {"name": name, "chapter": report.chapter.name, "max_points": _number(report.chapter.max_points),
             "gradebook": source}
    assignments = [a for a in term["assignments"] if a["name"] != name] + [entry]
    term["assignments"] = sorted(assignments, key=lambda a: a["name"])
    students = {s["student"]: s for s in term["students"]}
    for student in students.values():
        student["scores"].pop(name, None)
        _mark(student, name, False)
    warnings = []
    for row in report.students:
        key = row.student
        if roster is not None:
            match = roster.match(row.student, row.identity)
            if match is None:
                warnings.append(f"{row.student!r} matches no single student of --roster {roster.source}")
        student = students.setdefault(key, {"student": key, "identity": {}, "scores": {}})
        for field, value in row.identity.items():
            if field != "late_flag":
                student["identity"].setdefault(field, value)
        student["scores"][name] = _number(row.total)
        _mark(student, name, row.no_submission)
    term["students"] = [students[key] for key in sorted(students) if students[key]["scores"]]
    absent = [s["student"] for s in term["students"] if name in no_submission(s, [name])]
    if absent:
        warnings.append(f"no submission for {name}: {', '.join(absent[:10])}{' …' if len(absent) > 10 else ''} "
                        f"({len(absent)} student(s): 0 in the term gradebook, named in its no_submission column)")
    return warnings


def _mark(student: dict[str, Any], name: str, absent: bool) -> None:
    marked = [n for n in student.get("no_submission", []) if n != name] + ([name] if absent else [])
    if marked:
        student["no_submission"] = sorted(marked)
    else:
        student.pop("no_submission", None)


def no_submission(student: dict[str, Any], names: list[str]) -> list[str]:
    """Of the assignments ``names``, those ``student`` handed in nothing for: a row marked so, or no row (0 each)."""
    marked = set(student.get("no_submission", []))
    return [name for name in names if name not in student["scores"] or name in marked]


def term_csv(term: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    names = [a["name"] for a in term["assignments"]]
    absent = {student["student"]: no_submission(student, names) for student in term["students"]}
    marked = any(absent.values())  # the column is there once someone handed in nothing
    writer.writerow([csv_text_cell(text) for text in ["student", *names, "total", *(["no_submission"] if marked
                                                                                      else [])]])
    for student in term["students"]:
        scores = [student["scores"].get(name, 0) for name in names]
        writer.writerow([csv_text_cell(student["student"]), *scores, _number(sum(scores)),
                         *([csv_text_cell("; ".join(absent[student["student"]]))] if marked else [])])
    return buffer.getvalue()


def write_term(gradebook: str | Path, term: dict[str, Any], stamp: str) -> list[Path]:
    """Write the term gradebook (CSV and JSON); the previous versions kept in the history."""
    csv_path, json_path = term_paths(gradebook)
    kept = [write_kept(json_path, json.dumps(term, indent=1, ensure_ascii=False) + "\n", stamp),
            write_kept(csv_path, term_csv(term), stamp)]
    return [path for path in kept if path is not None]


def export(term: dict[str, Any], lms: str, roster: Roster | None) -> tuple[str, list[str]]:
    """The term gradebook in the import format of ``lms`` (``canvas`` or ``moodle``); (text, warnings)."""
    if not term["assignments"]:
        raise GradingError("the term gradebook has no assignment yet: nothing to export")
    return canvas_csv(term, roster) if lms == "canvas" else moodle_csv(term, roster)
