"""Who handed a notebook in, and when: student ids from file names (plain, Canvas, Moodle, nbgrader) and
the submission times a teacher can trust.

Where a student id comes from, for each layout a teacher may collect (the first that applies):

- **Canvas** ("Download Submissions"): ``jonescarol_12346_789_02_reinforce.ipynb`` and, past the due date,
  ``jonescarol_LATE_12346_789_02_reinforce.ipynb``: the student is ``jonescarol`` (Canvas's sortable name,
  lower case, without punctuation), ``12346`` is their Canvas user id (the ``ID`` column of a Canvas
  gradebook export) and ``LATE`` is Canvas's own late flag. A re-uploaded file may end in ``-1``, ``-2``.
- **Moodle** ("Download all submissions"): ``Alice Smith_123456_assignsubmission_file_02.ipynb``, or a folder
  ``Alice Smith_123456_assignsubmission_file_/`` holding the notebook: the student is ``Alice Smith``;
  ``123456`` is Moodle's participant number for this assignment (the ``Participant 123456`` of its
  grading worksheet).
- **nbgrader** (``submitted/<student>/<assignment>/<notebook>.ipynb``, with nbgrader's ``timestamp.txt``
  in the assignment folder): the student folder.
- **A folder per student** (``submitted/bob/anything.ipynb``) or **a file per student**
  (``submitted/alice.ipynb``): the folder's or the file's name.

Submission times, most trusted first: a CSV of times from the LMS (``--timestamps``: a student column
and a time column, e.g. Moodle's grading worksheet with its ``Last modified (submission)``), which is
the teacher's; nbgrader's ``timestamp.txt`` in a student's assignment folder (written when the student
submitted, by their own nbgrader); the file's modification time, the last resort (an unzipped
download may carry the time of the unzipping).
"""
from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .course import GradingError

# Canvas user ids have 4 digits or more: ``bob_01_reinforce.ipynb`` stays student ``bob_01_reinforce``.
CANVAS_NAME = re.compile(r"^(?P<name>[a-z0-9]+)(?P<late>_LATE)?_(?P<id>\d{4,})_(?P<attachment>\d+)_(?P<rest>.+)$")
CANVAS_SHORT = re.compile(r"^(?P<name>[a-z0-9]+)(?P<late>_LATE)?_(?P<id>\d{4,})(?:_(?P<rest>.+))?$")
MOODLE_NAME = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_(?:file|onlinetext)_(?P<rest>.*)$")


@dataclass
class Identity:
    """What a file name says about its student (``lms`` is ``canvas``, ``moodle`` or ``""``)."""

    student: str
    lms: str = ""
    lms_id: str = ""
    name: str = ""
    late_flag: bool = False
    upload: int = 0         # Canvas's attachment id: larger for a later upload

    def to_json(self) -> dict[str, str | bool]:
        found: dict[str, str | bool] = {"lms": self.lms, "lms_id": self.lms_id, "name": self.name}
        if self.late_flag:
            found["late_flag"] = True
        return {key: value for key, value in found.items() if value}


def identity_of(entry: str) -> Identity:
    """The student behind one entry of a submissions folder (a file or folder name)."""
    stem = entry[: -len(".ipynb")] if entry.endswith(".ipynb") and len(entry) > len(".ipynb") else entry
    moodle = MOODLE_NAME.match(entry)
    if moodle:
        return Identity(moodle["name"], "moodle", moodle["id"], moodle["name"])
    canvas = CANVAS_NAME.match(stem) or CANVAS_SHORT.match(stem)
    if canvas:
        upload = int(canvas["attachment"]) if "attachment" in canvas.groupdict() else 0
        return Identity(canvas["name"], "canvas", canvas["id"], late_flag=bool(canvas["late"]), upload=upload)
    return Identity(stem)


def students_of_files(paths: list[Path], chapter_names: set[str]) -> list[Identity]:
    """Student ids for notebook files given one by one (the shell expanded ``submitted/*/ch02/*.ipynb``).

    A file named like an LMS download is parsed as one. A file named like the assignment (a course
    chapter, or a name all the given files share) is not the student: the nearest folder above it
    that tells the given files apart is, or, for one file, its folder, skipping an nbgrader assignment
    folder (one holding ``timestamp.txt``, or named like the assignment).
    """
    stems = [path.stem for path in paths]
    shared = {stem for stem in stems if stems.count(stem) > 1}
    found = []
    for path in paths:
        identity = identity_of(path.name)
        if identity.lms or (path.stem not in chapter_names and path.stem not in shared):
            found.append(identity)
            continue
        found.append(Identity(_folder_student(path, paths, chapter_names)))
    return found


def _folder_student(path: Path, paths: list[Path], chapter_names: set[str]) -> str:
    """The folder above ``path`` that names its student (see :func:`students_of_files`)."""
    parents = [p.parent.resolve() for p in paths]
    here = path.parent.resolve()
    depth = 0
    if len(paths) > 1:  # the first level (going up) where the given files' folders differ
        while depth < len(here.parts) - 1:
            names = {parent.parents[depth - 1].name if depth else parent.name for parent in parents
                     if depth < len(parent.parts) - 1}
            if len(names) > 1:
                break
            depth += 1
        else:
            depth = 0
    folder = here.parents[depth - 1] if depth else here
    while (folder / "timestamp.txt").is_file() or folder.name in chapter_names or re.fullmatch(r"(ch|hw|ps|week)?\d+",
                                                                                                folder.name):
        if folder.parent == folder:
            break
        folder = folder.parent
    identity = identity_of(folder.name)
    return identity.student or path.stem


# --------------------------------------------------------------------------------------------------
# Submission times
# --------------------------------------------------------------------------------------------------

LMS_TIME_FORMATS = ("%A, %d %B %Y, %I:%M %p", "%d %B %Y, %I:%M %p", "%Y-%m-%d %H:%M")


def parse_time(text: str, what: str) -> datetime:
    """A point in time from what a teacher or an LMS wrote: ISO 8601 (``2025-03-14T23:59+01:00``; no zone
    means this machine's local time), nbgrader's ``2025-03-14 23:58:00.123456 UTC``, or Moodle's
    ``Friday, 14 March 2025, 11:58 PM``. :class:`GradingError` names ``what`` and the expected forms."""
    text = text.strip()
    utc = text.endswith(" UTC")
    core = text[:-4].strip() if utc else text
    moment = None
    try:
        moment = datetime.fromisoformat(core)
    except ValueError:
        for form in LMS_TIME_FORMATS:
            try:
                moment = datetime.strptime(core, form)
                break
            except ValueError:
                continue
    if moment is None:
        raise GradingError(f"{what}: {text!r} is not a time; expected e.g. 2025-03-14T23:59+01:00 (ISO 8601; "
                           "without a zone, this machine's local time)")
    if utc:
        return moment.replace(tzinfo=timezone.utc)
    return moment if moment.tzinfo is not None else moment.astimezone()  # no zone: local time, made explicit


def iso(moment: datetime | None) -> str | None:
    """A time as written in the gradebook: ISO 8601 in UTC, to the second."""
    return None if moment is None else moment.astimezone(timezone.utc).replace(microsecond=0).isoformat()


def nbgrader_timestamp(path: Path) -> datetime | None:
    """The time in nbgrader's ``timestamp.txt`` beside ``path`` (its assignment folder), if any: a regular
    file (never a link), of which at most 200 bytes are read."""
    stamp = path.parent / "timestamp.txt"
    try:
        if stamp.is_symlink() or not stamp.is_file():
            return None
        with open(stamp, "rb") as handle:
            text = handle.read(200).decode("utf-8", errors="replace")
        return parse_time(text.strip().splitlines()[0] if text.strip() else "", str(stamp))
    except (OSError, GradingError):
        return None


STUDENT_COLUMNS = ("student", "id", "identifier", "full name", "name", "email address", "email", "username")
TIME_COLUMNS = ("submitted_at", "submitted", "timestamp", "time", "last modified (submission)", "submitted at")


def read_timestamps(path: str | Path) -> dict[str, datetime]:
    """``--timestamps FILE.csv``: {student: submission time} from the LMS (see the module's docstring)."""
    rows = read_csv_rows(path, "--timestamps")
    header = {name.strip().lower(): name for name in rows[0]} if rows else {}
    who = next((header[name] for name in STUDENT_COLUMNS if name in header), None)
    when = next((header[name] for name in TIME_COLUMNS if name in header), None)
    if who is None or when is None:
        raise GradingError(f"--timestamps {path}: needs a student column ({', '.join(STUDENT_COLUMNS[:5])}) and a "
                           f"time column ({', '.join(TIME_COLUMNS[:5])}); found {', '.join(rows[0]) if rows else 'none'}")
    times = {}
    for number, row in enumerate(rows[1:], start=2):
        record = dict(zip(rows[0], row))
        if record.get(when, "").strip() in ("", "-"):
            continue
        times[record[who].strip()] = parse_time(record[when], f"--timestamps {path} line {number}")
    return times


def read_csv_rows(path: str | Path, option: str) -> list[list[str]]:
    """The rows of a CSV file a teacher gives (UTF-8, with or without a BOM; comma or semicolon)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise GradingError(f"{option} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise GradingError(f"{option} {path}: cannot be read as UTF-8 text ({error})") from None
    dialect = "excel"
    first = text.split("\n", 1)[0]
    if first.count(";") > first.count(","):
        dialect = "excel-semicolon"
        csv.register_dialect(dialect, delimiter=";")
    return [row for row in csv.reader(io.StringIO(text, newline=""), dialect) if any(cell.strip() for cell in row)]


def file_time(mtime_ns: int) -> datetime:
    return datetime.fromtimestamp(mtime_ns / 1e9, tz=timezone.utc)


def environment_note() -> str:
    """The zone a time without one is read in (said in the summary, so a deadline is never misread)."""
    return datetime.now().astimezone().strftime("%Z (UTC%z)") + (f", TZ={os.environ['TZ']}" if "TZ" in os.environ
                                                                  else "")
