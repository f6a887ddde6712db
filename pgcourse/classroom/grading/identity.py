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
  grading worksheet; Moodle gives each participant a new one in each assignment). Two participants of one
  download with the same name are two students, ``Alice Smith_123456`` and ``Alice Smith_123457`` (Moodle's
  own prefix): a name alone never merges two people (:func:`attribute_files`).
- **nbgrader** (``submitted/<student>/<assignment>/<notebook>.ipynb``, with nbgrader's ``timestamp.txt``
  in the assignment folder): the student folder.
- **A folder per student** (``submitted/bob/anything.ipynb``) or **a file per student**
  (``submitted/alice.ipynb``): the folder's or the file's name.

A notebook inside a student's folder is that student's, whatever its name: the class writes those names
(nbgrader keeps what the student handed in), so a file there named for a classmate (``bob.ipynb``,
``carol_12345_678_….ipynb``, ``Carol Jones_12345_assignsubmission_file_….ipynb`` in mallory's folder) stays
mallory's and is marked :attr:`Identity.named_for`: the grader does not grade it (an error for mallory,
reported to the teacher), and it is never a grade for the classmate.

Submission times, most trusted first: a CSV of times from the LMS (``--timestamps``: a student column
and a time column, e.g. Moodle's grading worksheet with its ``Last modified (submission)``), which is
the teacher's; nbgrader's ``timestamp.txt`` in a student's assignment folder (written when the student
submitted, by their own nbgrader); the file's modification time, the last resort (an unzipped
download may carry the time of the unzipping).
"""
from __future__ import annotations

import csv
import io
import itertools
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
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
    namesake: bool = False  # a Moodle participant another one of the download shares a name with (id ``Name_number``)
    named_for: str = ""     # a file in this student's folder named for another student (that one): not graded
    rest: str = ""          # what follows a Canvas name's ids: the student's own file name

    def to_json(self) -> dict[str, str | bool]:
        found: dict[str, str | bool] = {"lms": self.lms, "lms_id": self.lms_id, "name": self.name}
        if self.late_flag:
            found["late_flag"] = True
        return {key: value for key, value in found.items() if value}


# A name that is an assignment's (``hw1``, ``ch02``, ``week3``, ``2025``) is no student's: Canvas's first field is a
# person's sortable name, so ``hw1_2025_alice.ipynb`` is student ``hw1_2025_alice``, not ``hw1`` (issue 46)
ASSIGNMENT_LIKE = re.compile(r"(ch|hw|ps|week|lab|ex|assignment|exercise)?\d+", re.IGNORECASE)


def identity_of(entry: str) -> Identity:
    """The student behind one entry of a submissions folder (a file or folder name).

    Canvas's full name (with its attachment id) is read first: the student's own file name inside it may look like
    Moodle's (a Canvas upload keeps its LATE flag and id). A Canvas-like name whose first field is an assignment's
    (:data:`ASSIGNMENT_LIKE`) is a plain name."""
    stem = entry[: -len(".ipynb")] if entry.endswith(".ipynb") and len(entry) > len(".ipynb") else entry
    full = CANVAS_NAME.match(stem)
    if full and not ASSIGNMENT_LIKE.fullmatch(full["name"]):
        return Identity(full["name"], "canvas", full["id"], late_flag=bool(full["late"]), upload=int(full["attachment"]),
                        rest=full["rest"])
    moodle = MOODLE_NAME.match(entry)
    if moodle:
        return Identity(moodle["name"], "moodle", moodle["id"], moodle["name"])
    short = CANVAS_SHORT.match(stem)
    if short and not ASSIGNMENT_LIKE.fullmatch(short["name"]):
        return Identity(short["name"], "canvas", short["id"], late_flag=bool(short["late"]), rest=short["rest"] or "")
    return Identity(stem)


def person_keys(text: str) -> set[str]:
    """What a name is matched on: its words (letters and digits, any script), lower case, in any order, joined:
    ``Carol Jones``, ``Jones, Carol`` and Canvas's ``jonescarol`` share ``jonescarol``."""
    words = [word for word in re.split(r"[\W_]+", text.casefold()) if word]
    orders = itertools.permutations(words) if len(words) <= 4 else [words, words[::-1]]
    return {"".join(order) for order in orders} if words else set()


def _keys(identity: Identity) -> set[str]:
    return person_keys(identity.student) | person_keys(identity.name)


def owners_of_files(paths: Sequence[Path], chapter_names: Iterable[str]) -> list[tuple[Identity, bool]]:
    """For notebook files given one by one (the shell expanded ``submitted/*/ch02/*.ipynb``): whose each one
    is, and whether it lies in that student's folder (then its own name is the class's, not the student id).

    The files are read as if the folder above all of them had been given: a file directly in it is its
    student's by its name (a file per student, or an LMS download: Canvas and Moodle chose those names), a
    file below it is the student's whose folder (the first one below it) holds it. When that common folder is
    an nbgrader assignment folder (it holds ``timestamp.txt``), the files are one student's: the folder above
    it. A file named like the assignment (a chapter of the course) is never the student: its folder is,
    skipping assignment folders (``ch02``, ``hw2``, ``02``, a chapter's name).
    """
    if not paths:
        return []
    chapter_names = set(chapter_names)
    files = [Path(os.path.abspath(path)) for path in paths]  # the paths as given: a linked folder is not followed
    top = Path(os.path.commonpath([str(file.parent) for file in files]))
    if (top / "timestamp.txt").is_file():
        owner = identity_of(_student_folder(top, chapter_names).name)
        return [(owner, True) for _ in files]
    found = []
    for file in files:
        if file.parent != top:
            found.append((identity_of(file.relative_to(top).parts[0]), True))
        elif file.stem in chapter_names:
            found.append((identity_of(_student_folder(top, chapter_names).name or file.stem), True))
        else:
            found.append((identity_of(file.name), False))
    return found


def _student_folder(folder: Path, chapter_names: set[str]) -> Path:
    """``folder``, or the first folder above it that is not an assignment's (see :func:`owners_of_files`)."""
    while (folder / "timestamp.txt").is_file() or folder.name in chapter_names or \
            ASSIGNMENT_LIKE.fullmatch(folder.name):
        if folder.parent == folder:
            break
        folder = folder.parent
    return folder


def attribute_files(owned: Sequence[tuple[Identity, Path, bool]], chapter_names: Iterable[str] = ()) -> list[Identity]:
    """The identity of each (owner, file, the file lies in the owner's folder), read together as one class.

    - Moodle participants who share a name are told apart by their participant number: their student ids
      become Moodle's own prefix, ``Alice Smith_123456`` (:attr:`Identity.namesake`).
    - A file in a student's folder stays that student's. If its name names another student of the class (an
      LMS download's name with their LMS id or name, or their id or name as the file name: ``bob.ipynb``,
      ``carol_12345_678_02.ipynb``, ``Carol Jones_12345_assignsubmission_file_02.ipynb``), it is marked
      :attr:`Identity.named_for` (not graded; the teacher is told). A name that names no one of the class (any
      other name) is simply the folder's student's notebook.
    """
    chapter_names = set(chapter_names)
    ids_by_name: dict[str, set[str]] = {}
    for owner, _, _ in owned:
        if owner.lms == "moodle":
            ids_by_name.setdefault(owner.student, set()).add(owner.lms_id)
    shared = {name for name, ids in ids_by_name.items() if len(ids) > 1}

    def final(owner: Identity) -> Identity:
        if owner.lms == "moodle" and owner.student in shared:
            return replace(owner, student=f"{owner.name}_{owner.lms_id}", namesake=True)
        return owner

    owners = [final(owner) for owner, _, _ in owned]
    _refuse_merged_files(owners, [path for _, path, _ in owned], [inside for _, _, inside in owned])
    by_lms_id = {(owner.lms, owner.lms_id): owner.student for owner in owners if owner.lms_id}
    by_key: dict[str, set[str]] = {}
    for owner in owners:
        for key in _keys(owner):
            by_key.setdefault(key, set()).add(owner.student)
    found = []
    for owner, (_, path, inside) in zip(owners, owned):
        other = _named_for(path.name, owner, by_lms_id, by_key, chapter_names) if inside else None
        found.append(replace(owner, named_for=other) if other is not None else owner)
    return found


def _refuse_merged_files(owners: Sequence[Identity], paths: Sequence[Path], inside: Sequence[bool]) -> None:
    """Stop when files given side by side would be taken for one student with nothing that says they are.

    A Canvas download names each upload with the student's user id *and* an attachment id, so two uploads of one
    student are told apart (the later counts). Files that share a Canvas-like name and id but have no attachment id
    (``alice_2025_x.ipynb``, ``alice_2025_y.ipynb``: plain names that look like ``name_number_rest``) may be two
    people: merged, one of them would be dropped. The run stops and lists them (issue 46)."""
    groups: dict[tuple[str, str], list[int]] = {}
    for index, owner in enumerate(owners):
        if owner.lms == "canvas" and not owner.upload and not inside[index]:
            groups.setdefault((owner.student, owner.lms_id), []).append(index)
    ambiguous = [indices for indices in groups.values()
                 if len({re.sub(r"-\d+$", "", owners[i].rest) for i in indices}) > 1]
    if ambiguous:
        listed = "; ".join(", ".join(str(paths[i]) for i in indices) for indices in ambiguous)
        raise GradingError(f"these files would be taken for one student each group, with nothing that says they are "
                           f"(a Canvas-like name and id without Canvas's attachment id): {listed}. Rename them so that "
                           "each file's name is its student (alice.ipynb), or put each in a folder named for its "
                           "student, then grade again")


def _named_for(file_name: str, owner: Identity, by_lms_id: dict[tuple[str, str], str], by_key: dict[str, set[str]],
               chapter_names: set[str]) -> str | None:
    """The other student of the class a file's name names, if any (see :func:`attribute_files`)."""
    named = identity_of(file_name)
    if named.student in chapter_names:
        return None
    if named.lms and (named.lms, named.lms_id) in by_lms_id:  # an LMS id names one participant, whatever the name
        other = by_lms_id[(named.lms, named.lms_id)]
        return other if other != owner.student else None
    keys = _keys(named)
    if keys & _keys(owner):
        return None
    others = sorted({student for key in keys for student in by_key.get(key, ())} - {owner.student})
    return others[0] if others else None


def students_of_files(paths: Sequence[Path], chapter_names: Iterable[str]) -> list[Identity]:
    """Student ids for notebook files given one by one (:func:`owners_of_files`, then :func:`attribute_files`)."""
    owners = owners_of_files(paths, chapter_names)
    return attribute_files([(owner, Path(path), inside) for (owner, inside), path in zip(owners, paths)],
                           chapter_names)


def identity_warnings(found: Iterable[tuple[Identity, Path]]) -> list[str]:
    """What the teacher must hear about who handed what in: files named for a classmate, Moodle namesakes."""
    warnings, namesakes = [], {}
    for identity, path in found:
        if identity.named_for:
            warnings.append(f"student {identity.student!r}: {path} is named for another student, "
                            f"{identity.named_for!r}, but lies in {identity.student!r}'s folder: not graded, for either "
                            "of them (a notebook counts only for the student whose folder holds it)")
        if identity.namesake:
            namesakes.setdefault(identity.name, set()).add((identity.lms_id, identity.student))
    for name, participants in sorted(namesakes.items()):
        numbers = ", ".join(number for number, _ in sorted(participants))
        students = ", ".join(repr(student) for _, student in sorted(participants))
        warnings.append(f"Moodle participants {numbers} are all named {name!r}: graded as {students}, two students; "
                        "Moodle numbers participants anew in each assignment, so give the export a roster that tells "
                        "them apart (Moodle's grading worksheet, with its Identifier column)")
    return warnings


def problem_of(identity: Identity) -> str | None:
    """Why a file is not graded for its student, from its name alone (None: nothing in the name stops it)."""
    if identity.named_for:
        return (f"the file is named for another student, {identity.named_for!r}, but lies in {identity.student!r}'s "
                "folder: it is not graded (a notebook counts only for the student whose folder holds it; hand in "
                "your own notebook, named as you like)")
    return None


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
    numbered = read_csv_lines(path, "--timestamps")
    rows = [row for _, row in numbered]
    header = {name.strip().lower(): name for name in rows[0]} if rows else {}
    who = next((header[name] for name in STUDENT_COLUMNS if name in header), None)
    when = next((header[name] for name in TIME_COLUMNS if name in header), None)
    if who is None or when is None:
        raise GradingError(f"--timestamps {path}: needs a student column ({', '.join(STUDENT_COLUMNS[:5])}) and a "
                           f"time column ({', '.join(TIME_COLUMNS[:5])}); found {', '.join(rows[0]) if rows else 'none'}")
    times = {}
    for number, row in numbered[1:]:
        record = dict(zip(rows[0], row + [""] * (len(rows[0]) - len(row))))
        if record[when].strip() in ("", "-"):
            continue
        if not record[who].strip():
            raise GradingError(f"--timestamps {path} line {number}: no student in column {who!r} (found {','.join(row)})")
        times[record[who].strip()] = parse_time(record[when], f"--timestamps {path} line {number}")
    return times


def read_csv_rows(path: str | Path, option: str) -> list[list[str]]:
    """The rows of a CSV file a teacher gives (UTF-8, with or without a BOM; comma or semicolon), blank ones left out."""
    return [row for _, row in read_csv_lines(path, option)]


def read_csv_lines(path: str | Path, option: str) -> list[tuple[int, list[str]]]:
    """:func:`read_csv_rows` with the line of the file each row starts on (blank lines and a quoted field that spans
    lines counted), for errors that name the line the teacher sees in an editor."""
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
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    numbered, start = [], 1
    for row in reader:
        if any(cell.strip() for cell in row):
            numbered.append((start, row))
        start = reader.line_num + 1
    return numbered


def file_time(mtime_ns: int) -> datetime:
    return datetime.fromtimestamp(mtime_ns / 1e9, tz=timezone.utc)


def environment_note() -> str:
    """The zone a time without one is read in (said in the summary, so a deadline is never misread)."""
    return datetime.now().astimezone().strftime("%Z (UTC%z)") + (f", TZ={os.environ['TZ']}" if "TZ" in os.environ
                                                                  else "")
