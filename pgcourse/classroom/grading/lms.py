"""The class list of the LMS (a roster) and the CSV files Canvas and Moodle import.

**Roster** (``--roster FILE.csv``): the file the LMS gives, read as is —

- Canvas: the gradebook export (Grades → Export): ``Student`` ("Jones, Carol"), ``ID`` (the Canvas user
  id of its download names), ``SIS User ID``, ``SIS Login ID``, ``Section``, then one column per
  assignment (``HW2 (4321)``) and a ``Points Possible`` row, which is skipped;
- Moodle: the gradebook export (Grades → Export → Plain text file): ``First name``, ``Last name``,
  ``ID number``, ``Email address``, …; or an assignment's grading worksheet (``Identifier`` —
  ``Participant 123456`` —, ``Full name``, ``Email address``, …), which alone tells apart two participants
  with the same name;
- or any CSV with a ``student`` column and some of ``name``, ``email``, ``id``.

A student id of the gradebook is matched to one roster row by the LMS user id from a Canvas
download name or the participant number from a Moodle one (when the roster has an ``Identifier``
column), else by any of: the roster's student, login, email (or its part before ``@``), ID
number, SIS ids, or the name (``Jones, Carol``, ``Carol Jones`` and Canvas's ``jonescarol`` are
alike: letters and digits, lower case). Two matching rows are no match (and a warning). Students of the
term gradebook whom the LMS would take for one user (the same Canvas ID or SIS id; the same email or ID
number) are one line of the export when their grades are for different assignments (one person under two
ids: a Moodle participant's number changes from one assignment to the next); when two have a grade for
the same assignment they are two people the roster does not tell apart, and the export stops with their
names rather than give one of them the other's grade.

**Every student is exported, a non-submitter as 0.** A student with no grade for an assignment (no row in its
gradebook, or a row marked "no submission") is exported with 0 for it, and a warning names them; a student of
the roster whom no student of the term gradebook could be (:meth:`Roster.candidates`) handed in nothing all
term: their line has 0 for every assignment, and a warning names them too. A grade always wins over a "no
submission" of the same person under another id.

**Canvas** (Grades → Import): ``Student, ID, SIS User ID, SIS Login ID, Section``, then one column per
assignment, and a second row ``Points Possible`` with each assignment's points. Canvas finds the
student by ``ID`` (or the SIS ids), and the assignment by the column name: ``HW2 (4321)`` as in the
roster for an existing assignment, a new name creates one. (A blank cell would change nothing: the export
writes none.)

**Moodle** (Grades → Import → CSV file): one row per student with ``Email address``, ``ID number`` and
``Full name``, then one column per assignment; on import map ``Email address`` (or ``ID number``) to
the user and each assignment column to a grade item. Moodle takes no points-possible row: the grade
item's maximum is set in Moodle (the export prints each assignment's points to set it to).
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .course import GradingError
from .gradebook import _number, csv_text_cell
from .identity import person_keys, read_csv_rows


def name_keys(text: str) -> set[str]:
    """A name's keys, as the term's identities have them (:func:`.identity.person_keys`: its words in any script,
    lower case, in any order; an apostrophe joins, ``O'Neil`` is ``oneil``): ``Jones, Carol``, ``Carol Jones`` and
    Canvas's ``jonescarol`` share ``jonescarol``."""
    return person_keys(re.sub(r"['\u2019]", "", text))


@dataclass
class RosterEntry:
    """One student of the LMS's class list."""

    fields: dict[str, str]
    keys: set[str] = field(default_factory=set)

    def get(self, *names: str) -> str:
        for name in names:
            value = self.fields.get(name.lower(), "").strip()
            if value:
                return value
        return ""

    @property
    def name(self) -> str:
        full = self.get("student", "full name", "name")
        return full or " ".join(part for part in (self.get("first name"), self.get("last name")) if part)


@dataclass
class Roster:
    entries: list[RosterEntry]
    header: list[str]
    source: str

    def assignment_header(self, name: str) -> str:
        """The roster's own column for assignment ``name`` (``HW2 (4321)``), else ``name``."""
        for column in self.header:
            if column == name or re.fullmatch(re.escape(name) + r" \(\d+\)", column):
                return column
        return name

    def _exact(self, identity: dict[str, Any]) -> list[RosterEntry]:
        """The rows a class-list student's identity names (their email or ID number: see :meth:`student_of`)."""
        if identity.get("email"):
            return [entry for entry in self.entries if entry.get("email address", "email").lower() ==
                    identity["email"].lower()]
        if identity.get("id_number"):
            return [entry for entry in self.entries if entry.get("id number") == identity["id_number"]]
        return []

    def match(self, student: str, identity: dict[str, Any]) -> RosterEntry | None:
        exact = self._exact(identity)
        if len(exact) == 1:
            return exact[0]
        if identity.get("lms") == "canvas" and identity.get("lms_id"):
            by_id = [entry for entry in self.entries if entry.get("id") == identity["lms_id"]]
            if len(by_id) == 1:
                return by_id[0]
        if identity.get("lms") == "moodle" and identity.get("lms_id"):  # a grading worksheet's "Participant 123456"
            number = identity["lms_id"]
            by_number = [entry for entry in self.entries
                         if entry.get("identifier").lower().removeprefix("participant").strip() == number]
            if len(by_number) == 1:
                return by_number[0]
        wanted = {student.strip().lower(), "".join(re.findall(r"[^\W_]", student.casefold()))}
        if identity.get("name"):
            wanted |= name_keys(identity["name"])
        found = [entry for entry in self.entries if entry.keys & wanted]
        return found[0] if len(found) == 1 else None

    def candidates(self, student: str, identity: dict[str, Any]) -> list[RosterEntry]:
        """Every row that could be this student (:meth:`match` needs exactly one): a row none of the class's
        students could be is a student who handed in nothing."""
        found = self._exact(identity)
        number = identity.get("lms_id")
        if identity.get("lms") == "canvas" and number:
            found += [entry for entry in self.entries if entry.get("id") == number]
        if identity.get("lms") == "moodle" and number:
            found += [entry for entry in self.entries
                      if entry.get("identifier").lower().removeprefix("participant").strip() == number]
        wanted = {student.strip().lower(), "".join(re.findall(r"[^\W_]", student.casefold()))}
        if identity.get("name"):
            wanted |= name_keys(identity["name"])
        found += [entry for entry in self.entries if entry.keys & wanted]
        return list({id(entry): entry for entry in found}.values())

    def student_of(self, entry: RosterEntry) -> tuple[str, dict[str, str]]:
        """The student id and identity of a class-list row no submission is (a student who handed in nothing): the id
        the LMS's downloads would give them (Canvas's ``jonescarol``, Moodle's ``Carol Jones``), and what finds their
        row again (the Canvas ID, the Moodle participant number, the email or ID number)."""
        name = entry.name
        canvas_id = entry.get("id") if "sis user id" in self.fields or "sis login id" in self.fields else ""
        if canvas_id:
            student = "".join(re.findall(r"[0-9a-z]", name.lower())) or canvas_id
            return student, {"lms": "canvas", "lms_id": canvas_id, "name": name}
        identity = {"name": name}
        number = entry.get("identifier").lower().removeprefix("participant").strip()
        if number:
            identity.update(lms="moodle", lms_id=number)
        email, id_number = entry.get("email address", "email"), entry.get("id number")
        if email:
            identity["email"] = email
        elif id_number:
            identity["id_number"] = id_number
        return entry.get("student") or name or email or id_number, identity

    @property
    def fields(self) -> set[str]:
        return {column.lower() for column in self.header}


def read_roster(path: str | Path) -> Roster:
    rows = read_csv_rows(path, "--roster")
    if not rows:
        raise GradingError(f"--roster {path}: the file is empty; expected the class list exported from the LMS")
    header = [name.strip() for name in rows[0]]
    lower = [name.lower() for name in header]
    if not {"student", "id", "email address", "email", "first name", "full name", "name"} & set(lower):
        raise GradingError(f"--roster {path}: no student column; expected a Canvas gradebook export (Student, ID, …), "
                           f"a Moodle export (First name, Last name, Email address, …) or a CSV with a student column")
    entries = []
    for row in rows[1:]:
        fields = dict(zip(lower, row))
        if fields.get("student", "").strip().lower() in ("points possible", "test student"):
            continue
        entry = RosterEntry(fields)
        email = entry.get("email address", "email")
        keys = {entry.get(name).lower() for name in ("student", "sis login id", "sis user id", "id number", "username",
                                                      "login") if entry.get(name)}
        keys |= {email.lower(), email.split("@")[0].lower()} if email else set()
        keys |= name_keys(entry.name)
        entry.keys = {key for key in keys if key}
        entries.append(entry)
    return Roster(entries, header, str(path))


def _lms_rows(term: dict[str, Any], roster: Roster | None) -> tuple[list[tuple[dict, RosterEntry | None]], list[str]]:
    """(term student, roster entry) for each student of the term gradebook, then for each student of the roster
    whom no term student could be (they handed in nothing: a line with 0 for every assignment), and warnings."""
    rows, warnings = [], []
    claimed: set[int] = set()
    for student in term["students"]:
        entry = roster.match(student["student"], student.get("identity", {})) if roster else None
        if roster is not None and entry is None:
            warnings.append(f"{student['student']!r} matches no single student of --roster {roster.source}")
        if roster is not None:
            claimed |= {id(e) for e in roster.candidates(student["student"], student.get("identity", {}))}
        rows.append((student, entry))
    absent = [entry for entry in roster.entries if id(entry) not in claimed] if roster is not None else []
    for entry in absent:
        name, identity = roster.student_of(entry)
        rows.append(({"student": name, "identity": identity, "scores": {}, "roster_only": True}, entry))
    if absent:
        names = [entry.name or roster.student_of(entry)[0] for entry in absent]
        warnings.append(f"{len(absent)} student(s) of --roster {roster.source} have no grade in the term gradebook "
                        f"(no submission): exported with 0 for every assignment: {', '.join(names[:10])}"
                        f"{' …' if len(names) > 10 else ''}")
    return rows, warnings


def _one_line_per_user(lms: str, found: list[tuple[str, dict, list[str]]],
                       assignments: list[dict[str, Any]]) -> tuple[list[list[Any]], list[str]]:
    """The export's lines, one per LMS user (``found``: the user's key as the LMS finds them, the term student,
    the line's first cells): term students the LMS would take for one user are one line if their grades are for
    different assignments, and a :class:`GradingError` if two have a grade for one assignment (module docstring)."""
    users: dict[str, tuple[list[str], list[dict]]] = {}
    for key, student, cells in found:
        users.setdefault(key, (cells, []))[1].append(student)
    lines, warnings, clashes = [], [], []
    absent: dict[str, list[str]] = {}  # assignment: the students with no submission for it, exported as 0
    for key, (cells, students) in users.items():
        names, scores, both = [student["student"] for student in students], {}, set()
        for student in students:
            graded = {name: score for name, score in student["scores"].items()
                      if name not in student.get("no_submission", ())}
            both |= set(scores) & set(graded)
            scores.update(graded)
        if both:
            clashes.append(f"{', '.join(names)} are one student for {lms} ({key}) and have each a grade for "
                           f"{', '.join(sorted(both))}")
        elif len(students) > 1:
            warnings.append(f"{', '.join(map(repr, names))} are one student for {lms} ({key}), graded in different "
                            "assignments: exported as one line")
        if not all(student.get("roster_only") for student in students):  # (those are said on their own)
            for assignment in assignments:
                if assignment["name"] not in scores:
                    absent.setdefault(assignment["name"], []).append(" / ".join(names))
        lines.append([*cells, *[_cell(scores.get(a["name"], 0)) for a in assignments]])
    if absent:
        warnings.append("no submission, exported as 0: " + "; ".join(
            f"{name}: {', '.join(students[:10])}{' …' if len(students) > 10 else ''}"
            for name, students in sorted(absent.items())))
    if clashes:
        raise GradingError(f"the {lms} export cannot tell whose grade is whose: " + "; ".join(clashes) + ". They are "
                           "two people the roster does not tell apart (or one person graded twice): give a roster that "
                           "tells them apart (for Moodle participants with the same name, the assignments' grading "
                           "worksheets, whose Identifier column holds the participant numbers of their file names)")
    return lines, warnings


def canvas_csv(term: dict[str, Any], roster: Roster | None) -> tuple[str, list[str]]:
    """The term gradebook as a Canvas gradebook import (see the module's docstring); (text, warnings)."""
    rows, warnings = _lms_rows(term, roster)
    assignments = term["assignments"]
    headers = [roster.assignment_header(a["name"]) if roster else a["name"] for a in assignments]
    found = []
    unmatched = []
    for student, entry in rows:
        identity = student.get("identity", {})
        canvas_id = (entry.get("id") if entry else "") or (identity.get("lms_id") if identity.get("lms") == "canvas"
                                                            else "")
        sis_user, sis_login = (entry.get("sis user id"), entry.get("sis login id")) if entry else ("", "")
        if not (canvas_id or sis_user or sis_login):
            unmatched.append(student["student"])
            continue
        name = (entry.name if entry else "") or identity.get("name") or student["student"]
        section = entry.get("section") if entry else ""
        key = f"ID {canvas_id}" if canvas_id else f"SIS User ID {sis_user}" if sis_user else f"SIS Login ID {sis_login}"
        found.append((key, student, [csv_text_cell(name), canvas_id, sis_user, sis_login, csv_text_cell(section)]))
    if unmatched:
        raise GradingError(f"Canvas needs each student's Canvas ID or SIS id, and {len(unmatched)} student(s) have none "
                           f"({', '.join(unmatched[:6])}{' …' if len(unmatched) > 6 else ''}): give --roster with the "
                           "Canvas gradebook export (Grades → Export), or collect with Canvas's download names")
    lines, more = _one_line_per_user("Canvas", found, assignments)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *headers])
    writer.writerow(["Points Possible", "", "", "", "", *[_cell(a["max_points"]) for a in assignments]])
    writer.writerows(lines)
    return buffer.getvalue(), warnings + more


def moodle_csv(term: dict[str, Any], roster: Roster | None) -> tuple[str, list[str]]:
    """The term gradebook as a Moodle grade import (see the module's docstring); (text, warnings)."""
    rows, warnings = _lms_rows(term, roster)
    assignments = term["assignments"]
    found, unmatched = [], []
    for student, entry in rows:
        email = entry.get("email address", "email") if entry else ""
        id_number = entry.get("id number") if entry else ""
        if not (email or id_number):
            unmatched.append(student["student"])
            continue
        name = (entry.name if entry else "") or student.get("identity", {}).get("name") or student["student"]
        key = f"email {email.lower()}" if email else f"ID number {id_number}"
        found.append((key, student, [email, id_number, csv_text_cell(name)]))
    if unmatched:
        raise GradingError(f"Moodle finds a student by email or ID number, and {len(unmatched)} student(s) have "
                           f"neither ({', '.join(unmatched[:6])}{' …' if len(unmatched) > 6 else ''}): give --roster "
                           "with Moodle's gradebook export (Grades → Export → Plain text file)")
    lines, more = _one_line_per_user("Moodle", found, assignments)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Email address", "ID number", "Full name", *[a["name"] for a in assignments]])
    writer.writerows(lines)
    warnings += more
    warnings.append("Moodle: set each grade item's maximum to " + ", ".join(
        f"{a['name']} {_number(a['max_points'])}" for a in assignments) + " (Moodle takes no points-possible row)")
    return buffer.getvalue(), warnings


def _cell(value: Any) -> Any:
    return "" if value is None else _number(value)
