"""Tests that pin the definitions of the grader's timing, similarity, solution-copy and scratch-folder code (issue 45,
item 5).

The mutation audits found that these modules' behaviour was tested only by slow grading runs, which test paths
through them, not what each decision is. Each test below states one definition in words (its docstring) and checks
it on small objects built here: no worker processes, no sandbox, no sleeping (the scratch watch's thread polls a
function given to it, every millisecond here). Expected values are written out by hand or computed by simple code.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from pgcourse.classroom.grading import copies, scratch, similarity, timing
from pgcourse.classroom.grading.assignment import LatePolicy
from pgcourse.classroom.grading.course import Chapter, Course, Exercise, GradingError
from pgcourse.classroom.grading.gradebook import ExerciseResult, StudentResult, Submission
from pgcourse.classroom.grading.identity import Identity
from pgcourse.classroom.notebook_format import Cell

UTC = timezone.utc


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """A moment in March 2025, UTC."""
    return datetime(2025, 3, day, hour, minute, second, tzinfo=UTC)


def code_cell(index: int, source: str, grade_id: str | None = None, cell_type: str = "code") -> Cell:
    return Cell(index, cell_type, source, {"nbgrader": {"grade_id": grade_id}} if grade_id else {})


# ==================================================================================================================
# timing.py: when a submission was handed in
# ==================================================================================================================
def moodle_file(path: Path, namesake: bool = False, lms: str = "moodle", lms_id: str = "123",
                name: str = "Ann Lee", mtime_ns: int = 0) -> Submission:
    identity = Identity("Ann Lee", lms, lms_id, name, namesake=namesake)
    return Submission("ann", path, "x", identity=identity, mtime_ns=mtime_ns)


MTIME = at(20)
MTIME_NS = int(MTIME.timestamp()) * 10**9


def test_the_timing_modules_names_are_as_the_gradebook_writes_them():
    """The time source of a Canvas file with no time is written ``canvas-late-flag``; the notes lateness writes start
    with the four LATE_NOTES prefixes; a student's own settings are LatePolicy.to_json's three fields; the options of
    an update map to those fields; the file-time warning starts with UNTRUSTED_TIMES."""
    assert timing.CANVAS_FLAG == "canvas-late-flag"
    assert timing.LATE_NOTES == ("handed in ", "Canvas marked this submission LATE", "your deadline: ",
                                 "your late policy: ")
    assert timing.POLICY_FIELDS == ("deadline", "late_penalty", "grace_s")
    assert timing.LATE_FIELDS == {"deadline": "deadline", "late_penalty": "late_penalty", "grace": "grace_s"}
    assert timing.UNTRUSTED_TIMES == "the submission times of "


@pytest.mark.parametrize("key", ["ann", "123", "Ann Lee", "Participant 123"])
def test_a_submission_takes_the_lms_time_under_any_of_its_keys(tmp_path, key):
    """The LMS's times (``--timestamps``) are looked up by the submission's student id, its LMS id, its LMS name and
    Moodle's ``Participant <id>``: any one of them gives the time, with source ``--timestamps``."""
    submission = moodle_file(tmp_path / "ann" / "02.ipynb", mtime_ns=MTIME_NS)
    timing.stamp_submission(submission, {key: at(9, 9, 59)}, set())
    assert (submission.submitted_at, submission.time_source) == (at(9, 9, 59), "--timestamps")


@pytest.mark.parametrize("present, winner", [
    (("ann", "123", "Ann Lee", "Participant 123"), "ann"),
    (("123", "Ann Lee", "Participant 123"), "123"),
    (("Ann Lee", "Participant 123"), "Ann Lee"),
    (("Participant 123",), "Participant 123"),
])
def test_the_lms_keys_are_tried_student_id_then_lms_id_then_name_then_participant(tmp_path, present, winner):
    """When several keys of one submission are in the LMS's times, the first in the order student id, LMS id, name,
    ``Participant <id>`` gives the time."""
    times = {key: at(1 + i) for i, key in enumerate(("ann", "123", "Ann Lee", "Participant 123")) if key in present}
    submission = moodle_file(tmp_path / "ann" / "02.ipynb")
    timing.stamp_submission(submission, times, set())
    assert submission.submitted_at == times[winner]


def test_a_name_two_moodle_participants_share_is_no_key(tmp_path):
    """A Moodle namesake's name is not looked up (it would be either participant's): only the id keys count."""
    submission = moodle_file(tmp_path / "ann" / "02.ipynb", namesake=True, mtime_ns=MTIME_NS)
    timing.stamp_submission(submission, {"Ann Lee": at(9)}, set())
    assert (submission.submitted_at, submission.time_source) == (MTIME, "file modification time")
    assert timing._lms_keys(submission) == ["ann", "123", "Participant 123"]


def test_an_empty_key_and_a_participant_without_a_number_are_no_keys(tmp_path):
    """A submission with no LMS id and no name has only its student id as a key: an LMS row keyed ``""`` or
    ``Participant `` is no one's."""
    submission = moodle_file(tmp_path / "bob" / "02.ipynb", lms="", lms_id="", name="", mtime_ns=MTIME_NS)
    timing.stamp_submission(submission, {"": at(9), "Participant ": at(10)}, set())
    assert (submission.submitted_at, submission.time_source) == (MTIME, "file modification time")
    assert timing._lms_keys(submission) == ["ann"]
    assert timing._lms_keys(Submission("ann", Path("a.ipynb"), "x")) == ["ann"]  # no identity: the student id


@pytest.fixture
def nbgrader_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ann"
    folder.mkdir()
    (folder / "timestamp.txt").write_text("2025-03-14 23:58:00.123456 UTC\n")
    return folder


@pytest.mark.parametrize("lms", ["canvas", "moodle", ""])
def test_nbgrader_timestamp_comes_after_the_lms_time_and_before_canvas_and_file_time(nbgrader_folder, lms):
    """Without an LMS time, nbgrader's ``timestamp.txt`` beside the file gives the time (source ``nbgrader
    timestamp.txt``), also for a Canvas file; with an LMS time, the LMS's wins."""
    submission = moodle_file(nbgrader_folder / "02.ipynb", lms=lms, mtime_ns=MTIME_NS)
    timing.stamp_submission(submission, {}, {nbgrader_folder.parent.resolve()})
    assert (submission.submitted_at, submission.time_source) == \
        (datetime(2025, 3, 14, 23, 58, 0, 123456, tzinfo=UTC), "nbgrader timestamp.txt")
    timing.stamp_submission(submission, {"ann": at(2)}, set())
    assert (submission.submitted_at, submission.time_source) == (at(2), "--timestamps")


def test_a_timestamp_txt_in_a_folder_the_teacher_gave_is_no_students(nbgrader_folder):
    """A ``timestamp.txt`` in one of the folders the teacher gave (``roots``) is not the student's: the file time
    counts instead."""
    submission = moodle_file(nbgrader_folder / "02.ipynb", mtime_ns=MTIME_NS)
    timing.stamp_submission(submission, {}, {nbgrader_folder.resolve()})
    assert (submission.submitted_at, submission.time_source) == (MTIME, "file modification time")


@pytest.mark.parametrize("lms, source", [("canvas", "canvas-late-flag"), ("moodle", "file modification time"),
                                         ("", "file modification time")])
def test_a_canvas_file_without_a_time_has_none_others_the_file_time(tmp_path, lms, source):
    """With neither an LMS time nor a timestamp.txt, a Canvas file has no time (its source is the Canvas flag: its
    LATE flag, if any, decides); any other file has its modification time."""
    submission = moodle_file(tmp_path / "ann" / "02.ipynb", lms=lms, mtime_ns=MTIME_NS)
    timing.stamp_submission(submission, {}, set())
    assert submission.time_source == source
    assert submission.submitted_at == (None if lms == "canvas" else MTIME)
    plain = Submission("ann", tmp_path / "ann.ipynb", "x", mtime_ns=MTIME_NS)  # no identity at all
    timing.stamp_submission(plain, {}, set())
    assert (plain.submitted_at, plain.time_source) == (MTIME, "file modification time")


# -- which of a student's files counts -------------------------------------------------------------------------------
COURSE = Course(root=Path("."), notebooks={}, _grade_ids={"06": frozenset({"ch06_answer", "ch06_check"})})


def file_of(path: str, when: datetime | None = None, *grade_ids: str, problem: str | None = None,
            late: bool | None = None, upload: int = 0, mtime_ns: int = 0, source: str = "--timestamps") -> Submission:
    identity = Identity("s", "canvas", "1234", late_flag=late, upload=upload) if late is not None else None
    return Submission("s", Path(path), "x", problem=problem,
                      cells=[code_cell(i, "x = 1", g) for i, g in enumerate(grade_ids)],
                      identity=identity, submitted_at=when, time_source=source, mtime_ns=mtime_ns)


def test_the_only_file_with_the_chapters_answer_cells_counts_and_says_so():
    """Of a student's files, the readable ones holding the chapter's answer cells are the candidates: one alone is
    chosen, "the only one with this chapter's answer cells", even when it is the only file and the older one."""
    work, notes = file_of("a.ipynb", at(1), "ch06_answer"), file_of("b.ipynb", at(2), "ch07_answer")
    assert timing.choose(COURSE, "06", [notes, work]) == (work, "the only one with this chapter's answer cells")
    assert timing.choose(COURSE, "06", [work]) == (work, "the only one with this chapter's answer cells")


def test_a_file_with_answer_cells_but_a_problem_is_not_a_first_choice():
    """A file that could not be read is no candidate for holding the answer cells: a readable file without them is
    chosen, "the only one that could be read"."""
    broken = file_of("a.ipynb", at(3), "ch06_answer", problem="not a notebook")
    readable = file_of("b.ipynb", at(1))
    assert timing.choose(COURSE, "06", [broken, readable]) == (readable, "the only one that could be read")


def test_when_no_file_can_be_read_the_latest_of_all_counts():
    """When every file has a problem, all of them are candidates: one alone is chosen with no reason given, of two the
    later one, by its submission time."""
    first, second = (file_of(p, at(d), problem="unreadable") for p, d in (("a.ipynb", 1), ("b.ipynb", 2)))
    assert timing.choose(COURSE, "06", [first]) == (first, "")
    assert timing.choose(COURSE, "06", [second, first]) == \
        (second, "the latest by its submission time, from --timestamps")


@pytest.mark.parametrize("changes, why", [
    ({"when": at(2)}, "the latest by its submission time, from --timestamps"),
    ({"late": True}, "the latest upload to Canvas"),
    ({"upload": 7}, "the latest upload to Canvas"),
    ({"mtime_ns": 5}, "the most recently modified file"),
    ({"path": "z.ipynb"}, "the same time as another: the last by path"),
], ids=["time", "late-flag", "upload", "mtime", "path"])
def test_the_latest_file_counts_and_the_first_key_that_differs_is_the_reason(changes, why):
    """Between two readable files with the answer cells, the later counts, by (submission time, Canvas LATE flag,
    Canvas upload number, file time, path), and the reason names the first of these that tells them apart."""
    base = {"path": "m.ipynb", "when": at(1), "late": False, "upload": 3, "mtime_ns": 4}
    older = file_of(base["path"], base["when"], "ch06_answer", late=base["late"], upload=base["upload"],
                    mtime_ns=base["mtime_ns"])
    new = {**base, **changes}
    newer = file_of(new["path"], new["when"], "ch06_answer", late=new["late"], upload=new["upload"],
                    mtime_ns=new["mtime_ns"])
    assert timing.choose(COURSE, "06", [newer, older]) == (newer, why)
    assert timing.choose(COURSE, "06", [older, newer]) == (newer, why)


@pytest.mark.parametrize("earlier, later", [
    ({"when": at(1), "late": True, "upload": 9, "mtime_ns": 9, "path": "z"}, {"when": at(2)}),
    ({"late": False, "upload": 9, "mtime_ns": 9, "path": "z"}, {"late": True, "upload": 1}),
    ({"upload": 1, "mtime_ns": 9, "path": "z"}, {"upload": 2, "mtime_ns": 1}),
    ({"mtime_ns": 1, "path": "z"}, {"mtime_ns": 2, "path": "a"}),
], ids=["time-over-flag", "flag-over-upload", "upload-over-mtime", "mtime-over-path"])
def test_each_time_key_outranks_all_the_keys_after_it(earlier, later):
    """The order is lexicographic: a later submission time wins over any flag, upload, file time and path; a LATE
    flag over a smaller upload number; a larger upload number over an older file; a newer file over the path."""
    base = {"path": "m", "when": at(1), "late": False, "upload": 0, "mtime_ns": 0}
    a, b = {**base, **earlier}, {**base, **later}
    loser = file_of(a["path"], a["when"], "ch06_answer", late=a["late"], upload=a["upload"], mtime_ns=a["mtime_ns"])
    winner = file_of(b["path"], b["when"], "ch06_answer", late=b["late"], upload=b["upload"], mtime_ns=b["mtime_ns"])
    assert timing.choose(COURSE, "06", [winner, loser])[0] is winner
    assert timing.choose(COURSE, "06", [loser, winner])[0] is winner


def test_a_file_without_a_time_is_older_than_any_file_with_one():
    """A file with no submission time (a Canvas file without one) is earlier than any time, even the epoch's first
    second, whatever its later keys."""
    timeless = file_of("z.ipynb", None, "ch06_answer", late=True, upload=9, mtime_ns=9)
    epoch = file_of("a.ipynb", datetime(1970, 1, 1, tzinfo=UTC), "ch06_answer", late=False)
    assert timing.choose(COURSE, "06", [timeless, epoch]) == (epoch, "the latest by its submission time, from "
                                                                    "--timestamps")


def test_a_file_with_no_canvas_identity_is_neither_flagged_late_nor_uploaded():
    """A file without an LMS identity orders as not flagged LATE, upload 0: at the same time as a Canvas file that is
    neither, the tie goes on to the file time and the path."""
    plain = file_of("b.ipynb", at(1), "ch06_answer")
    canvas = file_of("a.ipynb", at(1), "ch06_answer", late=False, upload=0)
    assert timing.choose(COURSE, "06", [plain, canvas]) == (plain, "the same time as another: the last by path")
    assert timing.choose(COURSE, "06", [canvas, plain]) == (plain, "the same time as another: the last by path")


@pytest.mark.parametrize("others, why", [
    ([{"when": at(3)}, {"when": at(1)}], "the latest by its submission time, from --timestamps"),
    ([{}, {"late": False}], "the latest upload to Canvas"),
    ([{}, {"upload": 4}], "the latest upload to Canvas"),
    ([{"mtime_ns": 9}, {"mtime_ns": 1}], "the most recently modified file"),
], ids=["time", "canvas-flag", "canvas-upload", "mtime"])
def test_the_reason_holds_against_every_other_file_not_only_one(others, why):
    """With three files, the reason is the first key at which the chosen file differs from *some* other (the
    keys before it equal for all of them): one other with the same time does not hide one with an earlier time."""
    top = {"path": "z", "when": at(3), "late": True, "upload": 5, "mtime_ns": 9}
    chosen = file_of(top["path"], top["when"], "ch06_answer", late=top["late"], upload=top["upload"],
                     mtime_ns=top["mtime_ns"])
    group = [chosen]
    for i, change in enumerate(others):
        o = {**top, "path": f"{i}", **change}
        group.append(file_of(o["path"], o["when"], "ch06_answer", late=o["late"], upload=o["upload"],
                             mtime_ns=o["mtime_ns"]))
    assert timing.choose(COURSE, "06", group) == (chosen, why)


def test_the_reason_names_the_chosen_files_own_time_source():
    """"From <source>": the source of the chosen file's time, not of the other's."""
    chosen = file_of("a.ipynb", at(2), "ch06_answer", source="nbgrader timestamp.txt")
    other = file_of("b.ipynb", at(1), "ch06_answer", source="file modification time")
    assert timing.choose(COURSE, "06", [other, chosen])[1] == \
        "the latest by its submission time, from nbgrader timestamp.txt"


# -- a student's own late policy ---------------------------------------------------------------------------------------
CLASS = LatePolicy.parse("2025-03-14T23:59+00:00", "10%/day", "15m")


def test_no_own_settings_is_the_class_policy_itself():
    """A student with no settings of their own (an empty dict) gets the class's policy, the same object."""
    assert timing.student_policy(CLASS, {}) is CLASS


@pytest.mark.parametrize("own, expected", [
    ({"deadline": "2025-03-21T23:59:00+00:00"},
     LatePolicy.parse("2025-03-21T23:59+00:00", "10%/day", "15m")),
    ({"late_penalty": "5%/hour"}, LatePolicy.parse("2025-03-14T23:59+00:00", "5%/hour", "15m")),
    ({"grace_s": 3600.0}, LatePolicy.parse("2025-03-14T23:59+00:00", "10%/day", "1h")),
    ({"deadline": "2025-03-21T23:59:00+00:00", "amount": 99.0, "text": "50%"},
     LatePolicy.parse("2025-03-21T23:59+00:00", "10%/day", "15m")),
], ids=["deadline", "penalty", "grace", "other-keys-ignored"])
def test_a_students_own_setting_replaces_only_that_setting(own, expected):
    """Each of a student's own fields (deadline, late_penalty, grace_s) replaces the class's; the others stay the
    class's; keys other than those three are not settings."""
    assert timing.student_policy(CLASS, own) == expected


def test_an_extension_is_described_by_its_deadline_and_the_class_deadline():
    """A student's own policy that differs from the class's only in its deadline is said as "your deadline: ... (an
    extension; the class's is ...)", "none" when the class has no deadline."""
    own = LatePolicy.parse("2025-03-21T23:59+00:00", "10%/day", "15m")
    assert timing.describe_own(CLASS, own) == ("your deadline: 2025-03-21T23:59:00+00:00 (an extension; the class's "
                                               "is 2025-03-14T23:59:00+00:00)")
    bare = LatePolicy.parse("2025-03-21T23:59+00:00", None, None)
    assert timing.describe_own(LatePolicy(), bare) == ("your deadline: 2025-03-21T23:59:00+00:00 (an extension; the "
                                                       "class's is none)")


@pytest.mark.parametrize("own, said", [
    (LatePolicy.parse("2025-03-14T23:59+00:00", "5%/day", "15m"),
     "deadline 2025-03-14T23:59:00+00:00, grace 15 min, late penalty 5%/day"),
    (LatePolicy.parse("2025-03-14T23:59+00:00", "10%/day", "30m"),
     "deadline 2025-03-14T23:59:00+00:00, grace 30 min, late penalty 10%/day"),
    (LatePolicy.parse("2025-03-21T23:59+00:00", "10%/day", None),
     "deadline 2025-03-21T23:59:00+00:00, late penalty 10%/day"),
], ids=["penalty", "grace", "deadline-and-grace"])
def test_an_own_policy_that_differs_beyond_the_deadline_is_described_whole(own, said):
    """When a student's own penalty or grace differs from the class's, their whole policy is said, with the
    class's: "your late policy: ... (the class's: ...)"."""
    assert timing.describe_own(CLASS, own) == (f"your late policy: {said} (the class's: deadline "
                                               "2025-03-14T23:59:00+00:00, grace 15 min, late penalty 10%/day)")


def test_an_own_policy_without_a_deadline_is_described_whole():
    """Without a deadline of its own there is no extension to name: the whole policy is said."""
    assert timing.describe_own(LatePolicy(), LatePolicy()) == "your late policy: no deadline (the class's: no deadline)"


# -- lateness and its penalty -----------------------------------------------------------------------------------------
DEADLINE = LatePolicy.parse("2025-03-14T00:00+00:00", "10%/day", None)


def row_of(earned: float = 8.0, max_points: float = 10.0, **fields) -> StudentResult:
    return StudentResult("ann", "ann.ipynb", None, {"e": ExerciseResult(earned, max_points, "passed", "")}, **fields)


def handed(when: datetime | None, source: str = "--timestamps") -> Submission:
    return Submission("ann", Path("ann.ipynb"), "x", submitted_at=when, time_source=source)


@pytest.mark.parametrize("when, late_s, units, penalty, note", [
    (at(14), 0.0, 0, 0.0, None),
    (at(14, 0, 0, 1), 1.0, 1, 1.0, "handed in 1 s after the deadline (--timestamps): 1 point(s) taken"),
    (at(15), 86400.0, 1, 1.0, "handed in 24.0 h after the deadline (--timestamps): 1 point(s) taken"),
    (at(15, 1), 90000.0, 2, 2.0, "handed in 25.0 h after the deadline (--timestamps): 2 point(s) taken"),
    (at(17, 12), 302400.0, 4, 4.0, "handed in 3.5 days after the deadline (--timestamps): 4 point(s) taken"),
    (at(13, 23, 59, 59), 0.0, 0, 0.0, None),
], ids=["at-deadline", "one-second", "one-day", "day-and-hour", "days", "before"])
def test_lateness_is_seconds_past_the_deadline_charged_per_started_unit_of_the_points_possible(
        when, late_s, units, penalty, note):
    """A submission at the deadline exactly is on time; each started day after it costs 10% of the points possible
    (10, not the 8 earned), and the row's notes say how late, from which source, and what it cost."""
    row = row_of()
    timing.apply_lateness(row, handed(when), DEADLINE)
    assert (row.submitted_at, row.time_source) == (when.isoformat(), "--timestamps")
    assert (row.late_s, row.late_units, row.penalty) == (late_s, units, penalty)
    assert row.notes == ([note] if note else [])


@pytest.mark.parametrize("minutes, late_s, note", [
    (15, 0.0, None),
    (20, 300.0, "handed in 5 min after the deadline and grace period (nbgrader timestamp.txt): 1.5 point(s) taken"),
])
def test_the_grace_period_is_taken_off_and_said(minutes, late_s, note):
    """Lateness is counted from the end of the grace period (its last second on time); a late note then says
    "after the deadline and grace period"."""
    policy = LatePolicy.parse("2025-03-14T00:00+00:00", "10%/day", "15m")
    row = row_of(max_points=15.0)
    timing.apply_lateness(row, handed(at(14, 0, minutes), "nbgrader timestamp.txt"), policy)
    assert row.late_s == late_s and row.notes == ([note] if note else [])


def test_a_time_in_another_zone_is_kept_in_utc():
    """The row's submission time is ISO 8601 in UTC, to the second."""
    row = row_of()
    when = datetime(2025, 3, 14, 1, 30, 15, 999, tzinfo=timezone(timedelta(hours=2)))
    timing.apply_lateness(row, handed(when), DEADLINE)
    assert row.submitted_at == "2025-03-13T23:30:15+00:00" and row.penalty == 0.0


def test_reapplying_lateness_starts_from_zero_and_drops_only_the_old_late_notes():
    """Applying lateness again (an update) resets the late seconds, units and penalty and removes the notes lateness
    wrote (the four LATE_NOTES kinds), keeping the row's other notes, even ones that mention lateness elsewhere."""
    old = ["handed in 3 min after the deadline (x): 1 point(s) taken", "Canvas marked this submission LATE but ...",
           "your deadline: 2025-01-01", "your late policy: deadline ...", "kept: answer cell e2 appears 2 times",
           "the file was handed in twice", "Your deadline: capitalised is another note"]
    row = row_of(late_s=99.0, late_units=9, penalty=9.0, notes=list(old))
    timing.apply_lateness(row, None, LatePolicy())
    assert (row.late_s, row.late_units, row.penalty) == (0.0, 0, 0.0)
    assert row.notes == old[4:]


@pytest.mark.parametrize("setup", ["late", "canvas", "extension", "own-policy"])
def test_applying_lateness_twice_says_each_note_once(setup):
    """Every note lateness writes is one it removes when applied again: a second application leaves the same notes
    and the same penalty as the first."""
    row = row_of()
    submission = handed(at(16))
    if setup == "canvas":
        row.identity, submission = {"late_flag": True}, handed(None, timing.CANVAS_FLAG)
    elif setup == "extension":
        row.late_policy = {"deadline": "2025-03-15T00:00:00+00:00"}
    elif setup == "own-policy":
        row.late_policy = {"late_penalty": "20%/day"}
    timing.apply_lateness(row, submission, DEADLINE)
    first = (list(row.notes), row.penalty, row.late_units, row.late_s)
    assert row.notes and row.penalty > 0
    timing.apply_lateness(row, submission, DEADLINE)
    assert (row.notes, row.penalty, row.late_units, row.late_s) == first


def test_without_a_submission_the_row_keeps_its_own_time():
    """Applied to a gradebook row with no submission (an update), the row's own time and source are judged."""
    row = row_of(submitted_at="2025-03-15T00:00:00+00:00", time_source="--timestamps")
    timing.apply_lateness(row, None, DEADLINE)
    assert (row.submitted_at, row.time_source, row.late_s, row.penalty) == \
        ("2025-03-15T00:00:00+00:00", "--timestamps", 86400.0, 1.0)


def test_a_submission_without_a_time_replaces_the_rows_time_and_costs_nothing():
    """A submission's own (missing) time replaces whatever the row held; no time, no lateness."""
    row = row_of(submitted_at="2025-03-20T00:00:00+00:00", time_source="--timestamps")
    timing.apply_lateness(row, handed(None, "file modification time"), DEADLINE)
    assert (row.submitted_at, row.time_source, row.late_s, row.penalty, row.notes) == \
        (None, "file modification time", 0.0, 0.0, [])


def test_an_extension_is_judged_against_the_students_own_deadline_and_noted():
    """A student's own deadline replaces the class's: a day past the class's deadline but before their own is on
    time, and the notes say their deadline."""
    row = row_of(late_policy={"deadline": "2025-03-16T00:00:00+00:00"})
    timing.apply_lateness(row, handed(at(15)), DEADLINE)
    assert (row.late_s, row.penalty) == (0.0, 0.0)
    assert row.notes == ["your deadline: 2025-03-16T00:00:00+00:00 (an extension; the class's is "
                         "2025-03-14T00:00:00+00:00)"]
    timing.apply_lateness(row, handed(at(17)), DEADLINE)
    assert (row.late_s, row.penalty) == (86400.0, 1.0)


def test_own_settings_equal_to_the_class_policy_say_nothing():
    """Own settings that are the class's own values make no note."""
    row = row_of(late_policy={"deadline": "2025-03-14T00:00:00+00:00", "late_penalty": "10%/day"})
    timing.apply_lateness(row, handed(at(13)), DEADLINE)
    assert row.notes == []


@pytest.mark.parametrize("policy, no_submission", [(LatePolicy(), False), (DEADLINE, True)],
                         ids=["no-deadline", "no-submission"])
def test_no_deadline_or_no_submission_costs_nothing(policy, no_submission):
    """Without a deadline, or for a roster student who handed nothing in, lateness is not judged."""
    row = row_of(no_submission=no_submission)
    timing.apply_lateness(row, handed(at(20)), policy)
    assert (row.late_s, row.late_units, row.penalty, row.notes) == (0.0, 0, 0.0, [])


@pytest.mark.parametrize("policy, unit", [(DEADLINE, "day"), (LatePolicy.parse("2025-03-14T00:00+00:00", "10%/hour",
                                                                                None), "hour"),
                                          (LatePolicy.parse("2025-03-14T00:00+00:00", "10%", None), "penalty")])
def test_a_canvas_late_flag_without_a_time_is_charged_one_unit_and_said(policy, unit):
    """A Canvas file flagged LATE with no time is charged one unit (one day, one hour, or the one penalty of a policy
    without units) with no late seconds, and the note says so and how the teacher can give the exact time."""
    row = row_of(identity={"late_flag": True})
    timing.apply_lateness(row, handed(None, timing.CANVAS_FLAG), policy)
    assert (row.late_s, row.late_units, row.penalty) == (0.0, 1, 1.0)
    assert row.notes == [f"Canvas marked this submission LATE but gives no time: charged one {unit}, 1 point(s) (the "
                         "teacher can give the exact time with --timestamps)"]


def test_a_canvas_file_not_flagged_late_costs_nothing():
    """A Canvas file with no time and no LATE flag is on time: no penalty, no note."""
    row = row_of(identity={"lms": "canvas"})
    timing.apply_lateness(row, handed(None, timing.CANVAS_FLAG), DEADLINE)
    assert (row.late_units, row.penalty, row.notes, row.time_source) == (0, 0.0, [], timing.CANVAS_FLAG)


def test_an_old_gradebook_row_flagged_late_with_no_time_and_no_source_is_a_canvas_flag():
    """A row from before the flag's source was kept (flagged LATE, no time, no source) is read as Canvas's flag;
    a row with a source, or not flagged, is not."""
    row = row_of(identity={"late_flag": True})
    timing.apply_lateness(row, None, DEADLINE)
    assert (row.time_source, row.penalty) == (timing.CANVAS_FLAG, 1.0)
    sourced = row_of(identity={"late_flag": True}, time_source="file modification time")
    timing.apply_lateness(sourced, None, DEADLINE)
    assert (sourced.time_source, sourced.penalty) == ("file modification time", 0.0)
    unflagged = row_of()
    timing.apply_lateness(unflagged, None, DEADLINE)
    assert (unflagged.time_source, unflagged.penalty) == ("", 0.0)
    timed = row_of(identity={"late_flag": True}, submitted_at="2025-03-13T00:00:00+00:00")
    timing.apply_lateness(timed, None, DEADLINE)
    assert (timed.time_source, timed.penalty) == ("", 0.0)


# -- restamping a gradebook row from the LMS's times -------------------------------------------------------------------
MOODLE_ROW = {"lms": "moodle", "lms_id": "123", "name": "Ann Lee"}


@pytest.mark.parametrize("key", ["Ann Lee", "123", "Participant 123"])
def test_a_row_takes_the_lms_time_under_its_student_id_lms_id_or_participant_number(key):
    """An update's LMS times are looked up by the row's student id, LMS id, ``Participant <id>`` and its name (when
    the name is the student id): one found sets the time in UTC with source ``--timestamps`` and says so (True)."""
    row = row_of(identity=dict(MOODLE_ROW))
    row.student = "Ann Lee"
    assert timing.restamp(row, {key: datetime(2025, 3, 9, 10, 59, tzinfo=timezone(timedelta(hours=1)))}) is True
    assert (row.submitted_at, row.time_source) == ("2025-03-09T09:59:00+00:00", "--timestamps")


@pytest.mark.parametrize("present, winner", [(("ann", "123", "Participant 123", "Ann Lee"), "ann"),
                                             (("123", "Participant 123"), "123"),
                                             (("Participant 123",), "Participant 123")])
def test_a_rows_lms_keys_are_tried_in_order(present, winner):
    """Student id first, then the LMS id, then ``Participant <id>``, then the name."""
    times = {key: at(1 + i) for i, key in enumerate(("ann", "123", "Participant 123", "Ann Lee")) if key in present}
    row = row_of(identity=dict(MOODLE_ROW))
    row.student = "ann" if "ann" in present else "Ann Lee"
    assert timing.restamp(row, times) is True
    assert row.submitted_at == times[winner].isoformat()


def test_a_row_whose_name_is_not_its_student_id_is_not_found_by_name():
    """A Moodle namesake's row (student ``Ann Lee_123``) is not found by the shared name; with no LMS id only the
    student id is a key (no ``Participant `` key). Nothing found: False, the row unchanged."""
    row = row_of(identity=dict(MOODLE_ROW), submitted_at="2025-03-01T00:00:00+00:00", time_source="x")
    row.student = "Ann Lee_123"
    assert timing.restamp(row, {"Ann Lee": at(9)}) is False
    assert (row.submitted_at, row.time_source) == ("2025-03-01T00:00:00+00:00", "x")
    bare = row_of(identity={"name": "Ann Lee"})
    assert timing.restamp(bare, {"Participant ": at(9), "": at(9), "Ann Lee": at(9)}) is False
    assert bare.submitted_at is None


# -- why a penalty changed ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source, identity, submitted_at, said", [
    (timing.CANVAS_FLAG, {"late_flag": True}, None, "Canvas's LATE flag, no time"),
    (timing.CANVAS_FLAG, {}, None, "no time (Canvas: not flagged LATE)"),
    ("--timestamps", {"late_flag": True}, None, "no time"),
    ("--timestamps", {}, "2025-03-09T09:59:00+00:00", "2025-03-09T09:59:00+00:00, --timestamps"),
])
def test_a_rows_time_is_said_with_its_source(source, identity, submitted_at, said):
    """A row's time for a penalty's explanation: Canvas's flag (flagged or not), no time, or "<time>, <source>"."""
    assert timing._source(row_of(identity=identity, submitted_at=submitted_at, time_source=source)) == said


def test_an_unchanged_penalty_needs_no_explanation():
    """Equal penalties: an empty explanation, whatever else changed."""
    before = row_of(penalty=1.0, submitted_at="2025-03-15T00:00:00+00:00", time_source="--timestamps")
    now = row_of(penalty=1.0, submitted_at="2025-03-15T06:00:00+00:00", time_source="file modification time")
    assert timing.late_change(before, now, DEADLINE, CLASS) == ""


@pytest.mark.parametrize("before_time, now_time", [
    ((None, timing.CANVAS_FLAG), ("2025-03-09T09:59:00+00:00", "--timestamps")),
    (("2025-03-09T09:59:00+00:00", "file modification time"), ("2025-03-09T09:59:00+00:00", "--timestamps")),
], ids=["time", "source-only"])
def test_a_penalty_changed_by_the_submission_time_says_the_new_and_old_time(before_time, now_time):
    """A changed time or time source explains the penalty as "submission time <now>; was <before>"."""
    before = row_of(penalty=1.0, identity={"late_flag": True}, submitted_at=before_time[0], time_source=before_time[1])
    now = row_of(penalty=0.0, identity={"late_flag": True}, submitted_at=now_time[0], time_source=now_time[1])
    assert timing.late_change(before, now, DEADLINE, DEADLINE) == \
        f"submission time {timing._source(now)}; was {timing._source(before)}"
    assert timing.late_change(before, now, DEADLINE, DEADLINE).startswith(
        f"submission time {now_time[0]}, --timestamps; was ")


def test_a_penalty_changed_by_the_class_policy_says_the_new_policy():
    """A changed class policy (for a student without their own) is said as "late policy now: ..."; with a changed
    time too, both, joined by "; "."""
    before = row_of(penalty=1.0, submitted_at="2025-03-15T00:00:00+00:00", time_source="--timestamps")
    now = row_of(penalty=2.0, submitted_at="2025-03-15T00:00:00+00:00", time_source="--timestamps")
    doubled = LatePolicy.parse("2025-03-14T00:00+00:00", "20%/day", None)
    assert timing.late_change(before, now, DEADLINE, doubled) == \
        "late policy now: deadline 2025-03-14T00:00:00+00:00, late penalty 20%/day"
    moved = row_of(penalty=2.0, submitted_at="2025-03-15T12:00:00+00:00", time_source="--timestamps")
    assert timing.late_change(before, moved, DEADLINE, doubled) == (
        "submission time 2025-03-15T12:00:00+00:00, --timestamps; was 2025-03-15T00:00:00+00:00, --timestamps; "
        "late policy now: deadline 2025-03-14T00:00:00+00:00, late penalty 20%/day")


def test_a_penalty_changed_by_the_students_own_policy_says_their_own_policy():
    """A student with their own settings whose policy changed: "own deadline: ..." (their description, without
    "your")."""
    before = row_of(penalty=1.0, submitted_at="2025-03-16T00:00:00+00:00", time_source="--timestamps")
    now = row_of(penalty=0.0, submitted_at="2025-03-16T00:00:00+00:00", time_source="--timestamps",
                 late_policy={"deadline": "2025-03-17T00:00:00+00:00"})
    assert timing.late_change(before, now, DEADLINE, DEADLINE) == \
        "own deadline: 2025-03-17T00:00:00+00:00 (an extension; the class's is 2025-03-14T00:00:00+00:00)"


def test_a_penalty_changed_with_nothing_else_changed_says_the_policy():
    """When neither the time nor the student's policy changed (their own settings override the class's change), the
    explanation is the policy: "late policy: ..."."""
    own = {"deadline": "2025-03-14T00:00:00+00:00", "late_penalty": "10%/day", "grace_s": 0}
    before = row_of(penalty=1.0, submitted_at="2025-03-15T00:00:00+00:00", time_source="--timestamps", late_policy=own)
    now = row_of(penalty=0.5, submitted_at="2025-03-15T00:00:00+00:00", time_source="--timestamps", late_policy=own)
    assert timing.late_change(before, now, CLASS, LatePolicy.parse("2025-03-01T00:00+00:00", "50%", None)) == \
        "late policy: deadline 2025-03-14T00:00:00+00:00, late penalty 10%/day"


# -- the late settings of an update ------------------------------------------------------------------------------------
def test_an_update_without_late_options_keeps_the_gradebooks_settings():
    """With no option and no file setting, an update grades with the gradebook's own deadline, penalty and grace
    (the grace as seconds), and changes nothing."""
    assert timing.settings_for_update(CLASS, {}, {}) == (
        {"deadline": "2025-03-14T23:59:00+00:00", "late_penalty": "10%/day", "grace": "900s"}, {})


def test_a_gradebook_without_penalty_or_grace_keeps_only_its_deadline():
    """A gradebook setting that is empty (no penalty text, no grace) is not a setting."""
    assert timing.settings_for_update(DEADLINE, {}, {})[0] == {"deadline": "2025-03-14T00:00:00+00:00",
                                                              "late_penalty": "10%/day"}
    bare = LatePolicy.parse("2025-03-14T00:00+00:00", None, None)
    assert timing.settings_for_update(bare, {}, {}) == ({"deadline": "2025-03-14T00:00:00+00:00"}, {})
    assert timing.settings_for_update(LatePolicy(), {}, {}) == ({}, {})


@pytest.mark.parametrize("options, named", [({"late_penalty": "5%/day"}, "--late-penalty"),
                                            ({"grace": "1h"}, "--grace"),
                                            ({"late_penalty": "5%/day", "grace": "1h"}, "--late-penalty/--grace")])
def test_a_penalty_or_grace_for_a_gradebook_without_deadline_is_refused_by_name(options, named):
    """A penalty or grace given for a gradebook without a deadline is refused, naming the options given and asking
    for --deadline; a file setting counts as given."""
    with pytest.raises(GradingError) as refused:
        timing.settings_for_update(LatePolicy(), options, {})
    assert str(refused.value).startswith(f"{named} needs a deadline") and "give --deadline too" in str(refused.value)
    with pytest.raises(GradingError, match=f"^{named} needs a deadline"):
        timing.settings_for_update(LatePolicy(), {}, options)


def test_options_win_over_the_file_and_every_option_given_is_a_change():
    """An option wins over the assignment file's setting; every option given is in the changes (even one equal to the
    gradebook's), as LatePolicy.to_json's field and value."""
    full, changed = timing.settings_for_update(CLASS, {"late_penalty": "10%/day", "grace": "30m"},
                                               {"late_penalty": "20%/day"})
    assert full == {"deadline": "2025-03-14T23:59:00+00:00", "late_penalty": "10%/day", "grace": "30m"}
    assert changed == {"late_penalty": "10%/day", "grace_s": 1800.0}


def test_a_file_setting_is_a_change_only_when_it_differs_from_the_gradebooks():
    """A setting of the assignment file is in the changes when it differs from the gradebook's, not when it is the
    same; giving one setting keeps the others."""
    full, changed = timing.settings_for_update(CLASS, {}, {"late_penalty": "10%/day", "deadline": "2025-03-21T23:59Z"})
    assert full == {"deadline": "2025-03-21T23:59Z", "late_penalty": "10%/day", "grace": "900s"}
    assert changed == {"deadline": "2025-03-21T23:59:00+00:00"}
    assert timing.settings_for_update(CLASS, {"deadline": "2025-03-21T23:59Z"}, {})[1] == \
        {"deadline": "2025-03-21T23:59:00+00:00"}


def test_a_setting_given_as_none_is_not_given():
    """A None value (an option not given) is dropped from the settings graded with."""
    full, _ = timing.settings_for_update(DEADLINE, {}, {"grace": None})
    assert full == {"deadline": "2025-03-14T00:00:00+00:00", "late_penalty": "10%/day"}


@pytest.mark.parametrize("seconds, said", [(0.0, "under a second"), (0.4, "under a second"), (1.0, "1 s"),
                                           (29.0, "29 s"), (31.0, "1 min"), (3599.0, "60 min"),
                                           (3600.0, "1.0 h"), (5400.0, "1.5 h"), (172799.0, "48.0 h"),
                                           (172800.0, "2.0 days"), (302400.0, "3.5 days")])
def test_a_duration_is_minutes_under_an_hour_hours_under_two_days_then_days(seconds, said):
    """How late, in words: whole minutes under an hour (whole seconds, or "under a second", where that would say
    "0 min"), hours to one decimal under two days, else days."""
    assert timing._duration(seconds) == said


def weak(*students: str, source: str = "file modification time") -> list[StudentResult]:
    rows = []
    for student in students:
        row = row_of(time_source=source)
        row.student = student
        rows.append(row)
    return rows


def test_file_times_are_warned_about_only_when_a_deadline_judges_them():
    """No deadline, or no student timed by their file: no warning. Only the source "file modification time" counts."""
    assert timing.untrusted_times(weak("ann"), LatePolicy()) == []
    assert timing.untrusted_times(weak("ann", source="--timestamps") + weak("bob", source="nbgrader timestamp.txt"),
                                  DEADLINE) == []


@pytest.mark.parametrize("count, listed", [(1, "a1"), (5, "a1, a2, a3, a4, a5"), (6, "a1, a2, a3, a4, a5 …"),
                                           (7, "a1, a2, a3, a4, a5 …")])
def test_the_file_time_warning_counts_all_and_names_the_first_five_sorted(count, listed):
    """The warning counts every student timed by their file and names the first five in sorted order, "…" after
    them when there are more."""
    students = [f"a{i}" for i in range(count, 0, -1)]  # in reverse: the warning sorts them
    rows = weak(*students) + weak("zed", source="--timestamps")
    assert timing.untrusted_times(rows, DEADLINE) == [
        f"the submission times of {count} student(s) ({listed}) are file modification times, the least trusted "
        "source: give the LMS's times with --timestamps, or collect with nbgrader (timestamp.txt)"]


# ==================================================================================================================
# similarity.py: answers that look alike
# ==================================================================================================================
def test_the_similarity_constants_are_the_documented_ones():
    """K = 6 tokens per hash, W = 4 hashes per window, a pair at 80% of the smaller answer's fingerprints, answers of
    36 tokens or more (the module's docstring gives each number and why)."""
    assert (similarity.K, similarity.W, similarity.THRESHOLD, similarity.MIN_TOKENS) == (6, 4, 0.8, 36)


BASE = "print(a)"
BASE_TOKENS = ["Module", "Expr", "Call", "v0", "v1", "end"]


@pytest.mark.parametrize("padding", [
    "pass", '"""a docstring"""', "...", "0", "a + 1", "-a", "not a", "a and b or c", "a < b <= 1", "(a, [1], {2})",
    "{1: a, **b}", "{}", "int()", "max(a, 1)", "len(str(a))", "_ = 0", "_ = a + 1", "_ = __ = 0", "_: int = 0",
    "_: int", "_ += 1", "assert True", "assert 1", "assert 'x'", "if 0:\n    q = f()",
    "if False:\n    q = f()\nelse:\n    pass",
    "if None:\n    f()", "while False:\n    f()", "while 0:\n    f()\nelse:\n    0", "for _ in ():\n    f()",
    "for _ in []:\n    f()", "for _ in {}:\n    f()", "for _ in '':\n    f()",
    "if a:\n    pass", "if a:\n    pass\nelse:\n    0", "if 1:\n    pass", "if a:\n    if b:\n        pass",
])
@pytest.mark.parametrize("where", ["before", "after"])
def test_a_statement_with_no_effect_leaves_no_token(padding, where):
    """A statement with no effect is not in the normalised tokens (nor does it take a name's number): pure
    expressions (constants, names, operators, comparisons, literal containers, pure builtins on pure arguments),
    ``pass``, a pure value stored in names the cell never reads, an assert of a true constant, a branch a constant
    condition never takes, a loop over an empty literal, an ``if`` left with nothing to do."""
    source = f"{padding}\n{BASE}" if where == "before" else f"{BASE}\n{padding}"
    assert similarity.normalised_tokens(source) == BASE_TOKENS


PURE = ["int", "float", "str", "bool", "complex", "bytes", "len", "abs", "min", "max", "round", "tuple", "list", "dict",
        "set", "frozenset", "range", "type", "isinstance", "repr", "hash", "id", "sorted", "sum", "any", "all", "divmod",
        "pow", "chr", "ord", "hex", "oct", "bin"]
IMPURE = ["print", "open", "input", "exec", "eval", "setattr", "next", "iter", "vars", "globals"]


@pytest.mark.parametrize("name, pure", [(name, True) for name in PURE] + [(name, False) for name in IMPURE])
def test_each_pure_builtin_called_on_a_constant_leaves_no_token_and_no_other_function_does(name, pure):
    """Each of the pure builtins (conversions, containers, side-effect-free numeric and lookup functions), called on
    constants, is a statement with no effect; a call of any other builtin (print, open, input, exec, ...) is kept."""
    tokens = similarity.normalised_tokens(f"{name}(1)\n{BASE}")
    assert tokens == BASE_TOKENS if pure else tokens[:4] == ["Module", "Expr", "Call", "v0"]


def test_the_pure_builtins_are_the_documented_ones():
    """The builtins taken as pure are exactly those (none more)."""
    assert similarity.PURE_BUILTINS == set(PURE)


@pytest.mark.parametrize("padding, kind", [
    ("f()", "Call"), ("a.b", "Attribute"), ("a[0]", "Subscript"), ("int(a, base=2)", "keyword"),
    ("int(f())", "Call"), ("print(1)", "Call"), ("(lambda: 0)", "Lambda"), ("[x for x in a]", "ListComp"),
    ("{f(): 1}", "Dict"), ("{1: f()}", "Dict"), ("a < f()", "Compare"), ("a or f()", "BoolOp"),
    ("(f(), 1)", "Tuple"), ("-f()", "UnaryOp"), ("1 + f()", "BinOp"), ("q = f()", "Assign"),
    ("q = 0\nprint(q)", "Assign"), ("q.x = 0", "Assign"), ("q[0] = 0", "Assign"),
    ("q, r = 0, 1", "Assign"), ("q = r = 0\nprint(r)", "Assign"), ("q: int = f()", "AnnAssign"),
    ("q += f()", "AugAssign"), ("q += 1\nprint(q)", "AugAssign"), ("assert False", "Assert"), ("assert 0", "Assert"),
    ("assert ''", "Assert"), ("assert a", "Assert"), ("while True:\n    f()", "While"),
    ("while 1:\n    break", "While"),
    ("for _ in (1,):\n    f()", "For"), ("for _ in 'ab':\n    f()", "For"), ("for _ in {1: 2}:\n    f()", "For"),
    ("for _ in a:\n    pass", "For"), ("for _ in set():\n    pass", "For"), ("if f():\n    pass", "If"),
    ("if a:\n    pass\nelse:\n    f()", "If"),
    ("if a.b:\n    pass", "If"), ("del a", "Delete"), ("import os", "Import"), ("raise E", "Raise"),
])
def test_a_statement_that_may_have_an_effect_is_kept(padding, kind):
    """Anything else is kept: calls of other functions or with keywords, attribute and item access, stores into
    names the cell reads or into attributes, items or several names at once, an assert that may fail, loops a
    constant condition keeps going or over a non-empty literal, an ``if`` whose test may have an effect."""
    tokens = similarity.normalised_tokens(f"{BASE}\n{padding}")
    assert tokens[:len(BASE_TOKENS)] == BASE_TOKENS and kind in tokens[len(BASE_TOKENS):], tokens


@pytest.mark.parametrize("padding, left", [
    ("if 1:\n    f()", ["Expr", "Call", "v2", "end"]),
    ("if 1:\n    f()\nelse:\n    g()", ["Expr", "Call", "v2", "end"]),
    ("if 0:\n    f()\nelse:\n    g()", ["Expr", "Call", "v2", "end"]),
    ("if '':\n    f()\nelif a:\n    g()", ["If", "v1", "Expr", "Call", "v2", "end", "end"]),
    ("while 0:\n    f()\nelse:\n    g()", ["Expr", "Call", "v2", "end"]),
    ("for _ in ():\n    f()\nelse:\n    g()", ["Expr", "Call", "v2", "end"]),
    ("for _ in {}:\n    f()\nelse:\n    g()", ["Expr", "Call", "v2", "end"]),
])
def test_a_constant_condition_leaves_the_branch_it_takes(padding, left):
    """A true constant ``if`` is its body; a false one (or a loop that never runs) is its ``else``."""
    assert similarity.normalised_tokens(f"{BASE}\n{padding}") == BASE_TOKENS[:-1] + ["end"] + left


@pytest.mark.parametrize("source, tokens", [
    ("def h():\n    pass\n    return a", ["Module", "FunctionDef", "v0", "arguments", "Return", "v1", "end", "end"]),
    ("try:\n    f()\n    0\nexcept E:\n    0\n    g()\nelse:\n    ...\n    k()\nfinally:\n    1\n    h()",
     ["Module", "Try", "Expr", "Call", "v0", "end", "ExceptHandler", "v1", "Expr", "Call", "v2", "end",
      "Expr", "Call", "v3", "end", "Expr", "Call", "v4", "end", "end"]),
    ("while a:\n    0\n    f()\nelse:\n    pass\n    g()",
     ["Module", "While", "v0", "Expr", "Call", "v1", "end", "Expr", "Call", "v2", "end", "end"]),
    ("with a as b:\n    pass\n    b.c()",
     ["Module", "With", "withitem", "v0", "v1", "Expr", "Call", "Attribute", ".c", "v1", "end", "end"]),
])
def test_nested_bodies_are_cleaned_too(source, tokens):
    """No-op statements are dropped inside functions, loops, ``with``, and every part of a ``try`` (body, handlers,
    ``else``, ``finally``)."""
    assert similarity.normalised_tokens(source) == tokens


@pytest.mark.parametrize("binder", ["def len(x):\n    return print(x)", "class len:\n    x = print()",
                                    "len = print", "import len", "import len.path", "import os as len",
                                    "from os import len", "from os import path as len", "for len in a:\n    print()",
                                    "async def len():\n    print()"])
def test_a_builtin_the_cell_binds_itself_is_not_pure(binder):
    """A call of a builtin's name that the cell binds (def, class, assignment, import, loop target) is the cell's own
    function: kept."""
    tokens = similarity.normalised_tokens(f"{binder}\nlen(1)")
    assert tokens[-5:] == ["Expr", "Call", tokens[-3], "C", "end"] and tokens[-3].startswith("v"), tokens


def test_a_cells_reads_decide_which_stores_are_unread():
    """A store is dropped only when the name is never read anywhere in the cell, also when the read comes first
    (in a function body above it) or inside a nested function."""
    assert similarity.normalised_tokens("def f():\n    return q\nq = 0") == \
        ["Module", "FunctionDef", "v0", "arguments", "Return", "v1", "end", "end", "Assign", "v1", "C", "end"]


@pytest.mark.parametrize("source, tokens", [
    ("print(a)", BASE_TOKENS),
    ("def f(x, y):\n    return y + x", ["Module", "FunctionDef", "v0", "arguments", "arg", "v1", "arg", "v2",
                                         "Return", "BinOp", "v2", "Add", "v1", "end", "end"]),
    ("print(a, 'text', 1.5, b'x', None)", ["Module", "Expr", "Call", "v0", "v1", "C", "C", "C", "C", "end"]),
    ("print(a.mean(axis=0), **k)", ["Module", "Expr", "Call", "v0", "Call", "Attribute", ".mean", "v1", "keyword",
                                    "axis=", "C", "keyword", "v2", "end"]),
    ("class Net:\n    def forward(self):\n        return self.size",
     ["Module", "ClassDef", "v0", "FunctionDef", "v1", "arguments", "arg", "v2", "Return", "Attribute", ".size", "v2",
      "end", "end", "end"]),
    ("", ["Module"]),
    ("   \n# only a comment\n", ["Module"]),
    ("print(café, 'é')", ["Module", "Expr", "Call", "v0", "v1", "C", "end"]),
])
def test_normalised_tokens_are_node_kinds_with_names_by_first_use_and_literals_as_c(source, tokens):
    """The syntax tree pre-order: each node's kind, a name as ``v<n>`` by the order of its first use (a function, a
    class, an argument and a variable alike), every literal ``C``, an attribute as ``.<name>``, a keyword argument
    as ``<name>=``, ``end`` after each statement; contexts (load, store) are no tokens; comments and layout none."""
    assert similarity.normalised_tokens(source) == tokens


@pytest.mark.parametrize("source", ["def f(:\n  return  1", "x = '\ud800' y", "print(a\x00)", "if x\n\tdo thing"])
def test_a_cell_that_does_not_parse_is_its_words(source):
    """A cell Python cannot parse (a syntax error, an unencodable character, a null byte) is compared by its
    whitespace-separated words."""
    assert similarity.normalised_tokens(source) == source.split()


def test_renaming_commenting_and_reformatting_change_no_token():
    """Two answers that differ only in their names, comments, literals' values and layout have the same tokens."""
    one = "def f(x, y):\n    # sum\n    return x + y * 2\n"
    two = "def add(first,second):   return first+second*3  # other\n"
    assert similarity.normalised_tokens(one) == similarity.normalised_tokens(two)


def sha_int(window: list[str]) -> int:
    return int.from_bytes(hashlib.sha1(" ".join(window).encode()).digest()[:8], "big")


@pytest.mark.parametrize("count", [0, 1, 5, 6, 7, 9])
def test_hashes_are_of_every_k_consecutive_tokens_or_of_all_when_fewer(count):
    """One hash per window of K consecutive tokens (the first 8 bytes of the SHA-1 of the tokens joined by spaces,
    big-endian); fewer than K tokens: one hash of all of them; no tokens: none."""
    tokens = [f"t{i}" for i in range(count)]
    expected = [sha_int(tokens[i:i + 6]) for i in range(count - 5)] if count >= 6 else \
        ([sha_int(tokens)] if tokens else [])
    assert similarity._hashes(tokens) == expected


@pytest.mark.parametrize("hashes, kept", [
    ([9, 8, 7, 6, 5, 4, 3], {6, 5, 4, 3}),
    ([1, 9, 9, 9, 2, 9, 9, 9], {1, 2}),
    ([1, 9, 9, 9, 9, 2, 9, 9], {1, 9, 2}),
    ([5, 3, 8], {3}),
    ([5, 3, 8, 7], {3}),
    ([4], {4}),
    ([], set()),
])
def test_fingerprints_are_the_smallest_hash_of_every_w_consecutive_hashes(monkeypatch, hashes, kept):
    """Winnowing keeps the smallest of every W = 4 consecutive hashes (the smallest of all when fewer); no hashes, no
    fingerprints."""
    monkeypatch.setattr(similarity, "_hashes", lambda tokens: list(hashes))
    assert similarity.fingerprints("print(a)") == kept


def test_two_texts_sharing_a_run_of_k_plus_w_minus_1_tokens_share_a_fingerprint(monkeypatch):
    """The winnowing guarantee: a run of K + W - 1 tokens in common gives a fingerprint in common."""
    monkeypatch.setattr(similarity, "normalised_tokens", str.split)
    run = [f"shared{i}" for i in range(similarity.K + similarity.W - 1)]
    for n in range(12):
        one = " ".join([f"a{i}" for i in range(n)] + run + [f"b{i}" for i in range(7)])
        two = " ".join([f"c{i}" for i in range(11 - n)] + run + [f"d{i}" for i in range(n)])
        assert similarity.fingerprints(one) & similarity.fingerprints(two), n


# -- pairs and groups --------------------------------------------------------------------------------------------------
LONG = """def discounted(rewards, gamma):
    total = 0.0
    out = []
    for reward in reversed(rewards):
        total = reward + gamma * total
        out.append(total)
    return out[::-1]
"""
LONG_HEAD, LONG_TAIL = "\n".join(LONG.splitlines()[:3]), "\n".join(LONG.splitlines()[3:])


def answer(student: str, *cells: tuple[str, str | None, str], problem: str | None = None) -> Submission:
    """A student's submission with cells given as (source, grade_id, cell type)."""
    return Submission(student, Path(f"{student}.ipynb"), "x", problem=problem,
                      cells=[code_cell(i, source, grade_id, kind) for i, (source, grade_id, kind) in enumerate(cells)])


def chapter_of(order=("e",), stubs=None) -> SimpleNamespace:
    return SimpleNamespace(answer_order=list(order), stubs=stubs if stubs is not None else {})


def test_identical_long_answers_are_a_pair_with_all_fingerprints_shared():
    """Two students with the same answer (after normalisation) are one pair: overlap 1.0, every fingerprint shared,
    the students in sorted order; a chapter's missing stub is no stub."""
    renamed = LONG.replace("rewards", "rs").replace("total", "acc") + "# mine\n"
    pairs = similarity.similar_pairs(chapter_of(), [answer("bob", (renamed, "e", "code")),
                                                    answer("ann", (LONG, "e", "code"))])
    assert pairs == [similarity.Pair("e", "ann", "bob", 1.0, len(similarity.fingerprints(LONG)))]


def test_only_readable_code_answer_cells_of_the_exercise_count():
    """A submission with a problem is not compared; nor is an answer in a markdown cell, or in a cell of another
    exercise or with no grade_id."""
    ann = answer("ann", (LONG, "e", "code"))
    others = [answer("bob", (LONG, "e", "code"), problem="unreadable"), answer("cat", (LONG, "e", "markdown")),
              answer("dan", (LONG, "other", "code")), answer("eve", (LONG, None, "code"))]
    assert similarity.similar_pairs(chapter_of(), [ann, *others]) == []


def test_an_answer_split_over_cells_is_joined_by_newlines():
    """An exercise's answer cells are one text, joined by newlines: split over two cells it is the same answer."""
    pairs = similarity.similar_pairs(chapter_of(), [answer("ann", (LONG, "e", "code")),
                                                    answer("bob", (LONG_HEAD, "e", "code"), (LONG_TAIL, "e", "code"))])
    assert [(p.first, p.second, p.overlap) for p in pairs] == [("ann", "bob", 1.0)]


def test_the_handed_out_stub_is_not_the_students_own():
    """The K-token hashes of each of the exercise's stub cells are taken out of every student's fingerprints: two
    students who left the stub as it was handed out are no pair (and no error), whatever its size; another
    exercise's stub takes nothing out."""
    students = [answer(s, (LONG, "e", "code")) for s in ("ann", "bob")]
    assert similarity.similar_pairs(chapter_of(stubs={"e": [LONG]}), students) == []
    assert similarity.similar_pairs(chapter_of(stubs={"e": ["print(a)", LONG]}), students) == []
    assert similarity.similar_pairs(chapter_of(stubs={"e": ["print(a)"]}), students) != []
    assert similarity.similar_pairs(chapter_of(stubs={"other": [LONG]}), students) != []


@pytest.mark.parametrize("arguments, additions, compared", [("a, b", 8, True), ("a, b, c", 7, False)])
def test_answers_are_compared_from_min_tokens_included(arguments, additions, compared):
    """Answers of exactly MIN_TOKENS (36) normalised tokens are compared; of 35, not. ``def f(a, b): return a + a
    ...`` with 8 additions is 12 + 3 x 8 = 36 tokens; with three arguments and 7 additions, 14 + 3 x 7 = 35."""
    source = f"def f({arguments}):\n    return a" + " + a" * additions
    pairs = similarity.similar_pairs(chapter_of(), [answer(s, (source, "e", "code")) for s in ("ann", "bob")])
    assert [(p.first, p.second) for p in pairs] == ([("ann", "bob")] if compared else [])


def fake_prints(monkeypatch, prints: dict[str, set[int]]) -> list[Submission]:
    """Submissions of long answers whose fingerprints are ``prints`` (by student)."""
    sources = {f"{LONG}# {student}\n": found for student, found in prints.items()}
    monkeypatch.setattr(similarity, "fingerprints", lambda source: set(sources[source]))
    return [answer(student, (f"{LONG}# {student}\n", "e", "code")) for student in prints]


@pytest.mark.parametrize("ann, bob, overlap, shared", [
    (set(range(5)), {0, 1, 2, 3, 9}, 0.8, 4),
    (set(range(100)), set(range(79)) | set(range(1000, 1021)), None, 79),
    (set(range(5)), set(range(10)), 1.0, 5),
    (set(range(10)), set(range(5)), 1.0, 5),
    (set(range(6)), set(range(5)) | {99}, 0.833, 5),
    (set(range(7)), set(range(6)) | {99}, 0.857, 6),
    (set(range(3)), set(), None, 0),
], ids=["at-threshold", "just-below", "smaller-inside-larger", "larger-first", "rounded", "rounded-up", "none-left"])
def test_a_pair_shares_at_least_the_threshold_of_the_smaller_answers_fingerprints(monkeypatch, ann, bob, overlap,
                                                                                  shared):
    """Overlap is the shared fingerprints over the smaller answer's count, rounded to 3 places; a pair from 0.8
    (included); an answer with no fingerprints of its own is compared with no one."""
    pairs = similarity.similar_pairs(chapter_of(), fake_prints(monkeypatch, {"ann": ann, "bob": bob}))
    assert pairs == ([similarity.Pair("e", "ann", "bob", overlap, shared)] if overlap is not None else [])


def test_pairs_are_sorted_by_overlap_then_shared_then_exercise_and_names(monkeypatch):
    """Pairs are listed by overlap (highest first), then shared fingerprints (most first), then exercise, first and
    second student (alphabetically); a group of copiers is all its pairs, however many others wrote the same."""
    prints = {"dan": {0, 1, 2, 3, 4, 5, 6, 7, 50, 51}, "cat": set(range(5)), "bob": set(range(10)),
              "ann": set(range(10))}
    subs = fake_prints(monkeypatch, prints)
    for sub in subs:  # the same answer to two exercises, the later-sorting one first in the notebook
        sub.cells.append(code_cell(1, sub.cells[0].source, "a"))
    pairs = similarity.similar_pairs(chapter_of(order=("e", "a")), subs)
    assert [(p.overlap, p.shared, p.exercise, p.first, p.second) for p in pairs] == [
        (1.0, 10, "a", "ann", "bob"), (1.0, 10, "e", "ann", "bob"),
        (1.0, 5, "a", "ann", "cat"), (1.0, 5, "a", "bob", "cat"), (1.0, 5, "a", "cat", "dan"),
        (1.0, 5, "e", "ann", "cat"), (1.0, 5, "e", "bob", "cat"), (1.0, 5, "e", "cat", "dan"),
        (0.8, 8, "a", "ann", "dan"), (0.8, 8, "a", "bob", "dan"),
        (0.8, 8, "e", "ann", "dan"), (0.8, 8, "e", "bob", "dan")]


def P(exercise: str, first: str, second: str, overlap: float = 1.0, shared: int = 5) -> similarity.Pair:
    return similarity.Pair(exercise, first, second, overlap, shared)


@pytest.mark.parametrize("pairs, expected", [
    ([], []),
    ([P("e", "ann", "bob")], [("e", ["ann", "bob"])]),
    ([P("e", "bob", "cat"), P("e", "ann", "bob")], [("e", ["ann", "bob", "cat"])]),
    ([P("e", "ann", "bob"), P("e", "cat", "dan"), P("e", "dan", "eve")], [("e", ["cat", "dan", "eve"]),
                                                                          ("e", ["ann", "bob"])]),
    ([P("e2", "ann", "bob"), P("e1", "cat", "dan"), P("e1", "ann", "bob")], [("e1", ["ann", "bob"]),
                                                                             ("e1", ["cat", "dan"]),
                                                                             ("e2", ["ann", "bob"])]),
    ([P("e", "ann", "dan"), P("e", "bob", "cat"), P("e", "cat", "dan")], [("e", ["ann", "bob", "cat", "dan"])]),
], ids=["none", "one", "chain", "two-groups", "by-exercise", "linked-late"])
def test_groups_are_students_linked_by_pairs_in_one_exercise_largest_first(pairs, expected):
    """A group is every student reachable by pairs of one exercise (a chain is one group), in sorted order; groups are
    listed largest first, then by exercise, then by their students."""
    assert similarity.groups(pairs) == expected


def test_the_similarity_report_is_quoted_csv_with_names_safe_for_a_spreadsheet():
    """The report is CSV with a header, text quoted and numbers not, ``\\n`` line ends, and a student name that a
    spreadsheet would take for a formula behind a ``'``."""
    text = similarity.report_csv([P("e1", "=cmd()", "bob", 0.8, 4), P("e2", "ann", "+x", 1.0, 5)])
    assert text == ('"exercise","student","other_student","overlap","shared_fingerprints"\n'
                    '"e1","\'=cmd()","bob",0.8,4\n'
                    '"e2","ann","\'+x",1.0,5\n')
    assert list(csv.reader(io.StringIO(similarity.report_csv([])))) == [
        ["exercise", "student", "other_student", "overlap", "shared_fingerprints"]]


def test_the_similarity_summary_without_pairs_says_what_is_not_compared():
    """No pairs: one line that says so and that answers under MIN_TOKENS tokens are not compared."""
    assert similarity.summary_lines([]) == [
        "similarity: no two students' answers look alike (answers under 36 tokens are not compared: too short to "
        "tell copying from the natural way to write them)"]


def test_the_similarity_summary_lists_each_group_with_its_own_range_of_overlaps():
    """A header with the counts of pairs and groups, then a line per group: its students joined by ``~`` and the
    overlap of its own pairs, one percentage when all equal, else lowest–highest."""
    pairs = [P("e1", "ann", "bob", 0.8), P("e1", "bob", "cat", 0.9), P("e1", "dan", "eve", 1.0),
             P("e2", "ann", "bob", 0.833)]
    assert similarity.summary_lines(pairs) == [
        "similarity (a hint to read the notebooks, never a verdict): 4 pair(s) in 3 group(s)",
        "  e1: ann ~ bob ~ cat (80%–90% of fingerprints shared)",
        "  e1: dan ~ eve (100% of fingerprints shared)",
        "  e2: ann ~ bob (83% of fingerprints shared)"]


@pytest.mark.parametrize("count, limit, more", [(3, 2, "  … 1 more group(s) in the similarity file"), (3, 3, None),
                                                (11, 10, "  … 1 more group(s) in the similarity file"),
                                                (10, 10, None),
                                                (12, None, "  … 2 more group(s) in the similarity file")])
def test_the_similarity_summary_lists_at_most_limit_groups_and_counts_the_rest(count, limit, more):
    """At most ``limit`` groups (10 by default) are listed; the rest are counted on one last line."""
    pairs = [P(f"e{i:02d}", "ann", "bob") for i in range(count)]
    lines = similarity.summary_lines(pairs) if limit is None else similarity.summary_lines(pairs, limit)
    shown = min(count, limit or 10)
    assert lines[0].endswith(f"{count} pair(s) in {count} group(s)")
    assert lines[1:1 + shown] == [f"  e{i:02d}: ann ~ bob (100% of fingerprints shared)" for i in range(shown)]
    assert lines[1 + shown:] == ([more] if more else [])


# ==================================================================================================================
# copies.py: answers that are the course's own solution
# ==================================================================================================================
def test_solution_copies_use_the_similarity_floor_and_name_the_solution():
    """The solution-copy floor is the similarity hints' own (36 tokens); the other "student" of a copy is the
    course's solution."""
    assert copies.MIN_OWN_TOKENS == similarity.MIN_TOKENS == 36
    assert copies.SOLUTION == "the course's solution"


@pytest.mark.parametrize("source, lines", [
    ("### BEGIN SOLUTION\n    x = 1   \n\n   \n    ### END SOLUTION  \ny=2\n", ["    x = 1", "y=2"]),
    ("# BEGIN SOLUTION\nx = 1\n### begin solution", ["# BEGIN SOLUTION", "x = 1", "### begin solution"]),
    ("x = 1  # comment\t\r\n\n", ["x = 1  # comment"]),
    ("", []),
    ("\n\n  \n", []),
])
def test_code_lines_drop_the_solution_markers_blank_lines_and_trailing_spaces(source, lines):
    """A cell's code lines: without nbgrader's exact ``### BEGIN SOLUTION`` / ``### END SOLUTION`` lines (whatever
    their indentation), blank lines and trailing spaces; indentation and comments are kept."""
    assert copies._code_lines(source) == lines


@pytest.mark.parametrize("reference, stub, own", [
    ("print(1)", "", 5),
    ("def f(x):\n    return x", "def f(x):\n    raise NotImplementedError()", -1),
    ("def f(x):\n    return x + 1", "def f(x):\n    pass", 6),
])
def test_own_tokens_are_the_solutions_normalised_tokens_beyond_the_stubs(reference, stub, own):
    """How much the solution adds: its normalised token count less the stub's (negative when the stub is longer)."""
    assert copies.own_tokens(reference, stub) == own


def solution_chapter(reference, stubs=None, exercises=(), order=("e",), path="course/solutions/03_x.ipynb") -> Chapter:
    return Chapter(name="03", path=Path(path), context=[], exercises=list(exercises), answer_order=list(order),
                   grade_ids=frozenset(order), reference=reference, stubs=stubs or {})


LONG_SIZE = 47  # LONG's normalised tokens (48) less an empty stub's (1: the module)


def test_long_is_long_enough_to_be_compared():
    assert len(similarity.normalised_tokens(LONG)) == LONG_SIZE + 1 and LONG_SIZE >= copies.MIN_OWN_TOKENS


@pytest.mark.parametrize("reference", [None, {}])
def test_without_a_solution_notebook_there_are_no_copies_and_no_summary(reference):
    """A chapter without solutions (a handout) finds no copies and says nothing about them."""
    chapter = solution_chapter(reference)
    assert copies.reference_copies(chapter, [answer("ann", (LONG, "e", "code"))]) == []
    assert copies.summary_lines([], chapter) == []


@pytest.mark.parametrize("student_source, verbatim", [
    (LONG, True),
    ("### BEGIN SOLUTION\n" + LONG.replace("\n", "   \n\n") + "### END SOLUTION", True),
    (LONG.replace("rewards", "r").replace("out", "result"), False),
    (LONG.replace("total = 0.0", "total = 0.0  # start"), False),
    (LONG.replace("    ", "  "), False),
])
def test_an_answer_equal_to_the_solution_after_normalisation_is_a_copy(student_source, verbatim):
    """An answer whose normalised tokens are the solution's is a copy; it is verbatim when its code lines (markers,
    blank lines and trailing spaces aside) are the solution's, comments and indentation included. The copy records
    how many tokens the solution adds to the stub."""
    chapter = solution_chapter({"e": [LONG]})
    assert copies.reference_copies(chapter, [answer("ann", (student_source, "e", "code"))]) == \
        [copies.ReferenceCopy("e", "ann", verbatim, LONG_SIZE)]


def test_a_different_or_missing_or_unreadable_answer_is_no_copy():
    """An answer with other tokens, none at all, an answer in a markdown cell or a cell of another exercise, or a
    submission with a problem, is no copy."""
    chapter = solution_chapter({"e": [LONG]})
    others = [answer("ann", (LONG.replace("reward + gamma", "reward - gamma"), "e", "code")),
              answer("bob"), answer("cat", (LONG, "e", "markdown")), answer("dan", (LONG, "f", "code")),
              answer("eve", (LONG, "e", "code"), problem="unreadable")]
    assert copies.reference_copies(chapter, others) == []


def test_a_solution_that_does_not_parse_is_compared_word_for_word():
    """A solution cell Python cannot parse (an IPython magic in it) is compared by its words, all of them: the same
    words are a copy, a different first word is not."""
    reference = "%time\n" + LONG * 2  # 53 words, 52 beyond an empty stub's one token
    chapter = solution_chapter({"e": [reference]})
    respaced = "%time  " + (LONG * 2).replace("    ", "  ")
    found = copies.reference_copies(chapter, [answer("ann", (respaced, "e", "code")),
                                              answer("bob", ("%timeit\n" + LONG * 2, "e", "code"))])
    assert [(c.student, c.verbatim) for c in found] == [("ann", False)]


def test_a_copy_split_over_cells_is_joined_and_a_split_solution_too():
    """The student's answer cells and the solution's of one exercise are each one text, joined by newlines."""
    chapter = solution_chapter({"e": [LONG_HEAD, LONG_TAIL]})
    found = copies.reference_copies(chapter, [answer("ann", (LONG_HEAD, "e", "code"), (LONG_TAIL, "e", "code"))])
    assert found == [copies.ReferenceCopy("e", "ann", True, LONG_SIZE)]


def test_the_copy_size_is_beyond_the_stub_joined_from_its_cells():
    """The solution's own size is its tokens less the stub's, the stub's cells joined by newlines."""
    stub = ["import numpy as np", "def discounted(rewards, gamma):\n    return rewards"]
    reference = "import numpy as np\n" + LONG
    stub_tokens = len(["Module", "Import", "alias", "end", "FunctionDef", "v0", "arguments", "arg", "v1", "arg", "v2",
                       "Return", "v1", "end", "end"])
    chapter = solution_chapter({"e": [reference]}, stubs={"e": stub})
    found = copies.reference_copies(chapter, [answer("ann", (reference, "e", "code"))])
    assert found == [copies.ReferenceCopy("e", "ann", True, LONG_SIZE + 1 + 3 - stub_tokens)]


@pytest.mark.parametrize("arguments, additions, reported", [("a", 9, True), ("a, b", 8, False)])
def test_a_solution_is_compared_from_min_own_tokens_of_its_own_included(arguments, additions, reported):
    """A solution adding exactly MIN_OWN_TOKENS (36) tokens to an empty stub is compared; one adding 35 is not.
    ``def f(a): return a + a ...`` with 9 additions is 10 + 3 x 9 = 37 tokens, less the empty stub's 1: 36; with
    two arguments and 8 additions, 12 + 3 x 8 - 1 = 35."""
    reference = f"def f({arguments}):\n    return a" + " + a" * additions
    chapter = solution_chapter({"e": [reference]})
    found = copies.reference_copies(chapter, [answer("ann", (reference, "e", "code"))])
    assert found == ([copies.ReferenceCopy("e", "ann", True, 36)] if reported else [])


@pytest.mark.parametrize("check, compared", [('pg.concepts.check_concepts("03", answers)', False),
                                             ("assert discounted([1.0], 0.9) == [1.0]", True)])
@pytest.mark.parametrize("kind", ["auto", "manual"])
def test_multiple_choice_answers_are_not_compared(check, compared, kind):
    """The answer cells of an auto-graded concept-questions exercise (a multiple-choice check) are not compared: a
    right answer is always the solution's. Other exercises' are, and a free-text question's check is no check."""
    exercise = Exercise(id="ch03_q", check_grade_id="ch03_q_check", points=1.0, check_source=check,
                        answer_ids=("e",), kind=kind)
    chapter = solution_chapter({"e": [LONG]}, exercises=[exercise])
    found = copies.reference_copies(chapter, [answer("ann", (LONG, "e", "code"))])
    assert [c.student for c in found] == (["ann"] if compared or kind == "manual" else [])


def test_an_exercise_without_a_solution_is_skipped_and_copies_are_sorted():
    """Exercises with no solution text (missing, or no cells) are skipped; copies are sorted by exercise, then
    student, whatever the notebook's and the submissions' order."""
    chapter = solution_chapter({"e2": [LONG], "e1": [LONG], "e0": []}, order=("e2", "e0", "e1", "e3"))
    subs = [answer(s, *((LONG, g, "code") for g in ("e2", "e0", "e1", "e3"))) for s in ("bob", "ann")]
    assert [(c.exercise, c.student) for c in copies.reference_copies(chapter, subs)] == \
        [("e1", "ann"), ("e1", "bob"), ("e2", "ann"), ("e2", "bob")]


def test_copies_are_rows_of_the_similarity_report_naming_the_solution_file():
    """Each copy is a report row without a header: the exercise, the student (safe for a spreadsheet), the course's
    solution with its folder and file (", verbatim" when it is), overlap 1.0 and the solution's own size."""
    chapter = solution_chapter({"e": [LONG]})
    found = [copies.ReferenceCopy("e1", "ann", True, 40), copies.ReferenceCopy("e2", "=bob", False, 37)]
    assert copies.csv_rows(found, chapter) == (
        '"e1","ann","the course\'s solution (solutions/03_x.ipynb, verbatim)",1.0,40\n'
        '"e2","\'=bob","the course\'s solution (solutions/03_x.ipynb)",1.0,37\n')
    assert copies.csv_rows([], chapter) == ""


def test_the_copies_summary_without_copies_says_what_is_not_compared():
    """No copies (with a solution notebook): one line naming the solution file, the floor and multiple choice."""
    assert copies.summary_lines([], solution_chapter({"e": [LONG]})) == [
        "solution copies: no answer is the course's solution (solutions/03_x.ipynb) after normalisation (answers "
        "under 36 tokens of their own and multiple-choice answers are not compared)"]


@pytest.mark.parametrize("count, limit, more", [(2, 10, None),
                                                (3, 2, "  … 1 more in the similarity file (--similarity)"),
                                                (11, None, "  … 1 more in the similarity file (--similarity)"),
                                                (10, None, None)])
def test_the_copies_summary_lists_at_most_limit_copies(count, limit, more):
    """A header with the count and the solution file, a line per copy (" (verbatim, comments included)" when so), at
    most ``limit`` (10 by default), the rest counted."""
    chapter = solution_chapter({"e": [LONG]})
    found = [copies.ReferenceCopy(f"e{i:02d}", "ann", i % 2 == 0, 40) for i in range(count)]
    lines = copies.summary_lines(found, chapter) if limit is None else copies.summary_lines(found, chapter, limit)
    shown = min(count, limit or 10)
    assert lines[0] == (f"solution copies (a hint to read the notebooks, never a verdict): {count} answer(s) are the "
                        "course's solution (solutions/03_x.ipynb) with names, comments and layout set aside")
    assert lines[1:1 + shown] == [f"  e{i:02d}: ann{' (verbatim, comments included)' if i % 2 == 0 else ''}"
                                  for i in range(shown)]
    assert lines[1 + shown:] == ([more] if more else [])


# ==================================================================================================================
# scratch.py: the student's writable folder, watched from outside
# ==================================================================================================================
def test_the_scratch_watch_polls_every_50_ms_and_says_why_it_stopped():
    """The watch looks every 0.05 s; the feedback names the limit in MB, twice."""
    assert scratch.POLL_S == 0.05
    assert scratch.FULL.format(mb=64) == (
        "the process running your code was stopped: it wrote more than 64 MB of files (its scratch folder holds at "
        "most 64 MB; write less, or nothing, to files)")


def fake_proc(monkeypatch, children: dict[int, dict[str, list[int] | None]]):
    """A /proc of ``children``: pid -> {task: its children (None: unreadable)}; a pid not listed cannot be listed."""
    def listdir(path):
        parts = str(path).split("/")
        if parts[:2] == ["", "proc"] and int(parts[2]) in children:
            return list(children[int(parts[2])])
        raise FileNotFoundError(path)

    class FakePath:
        def __init__(self, path):
            self.path = str(path)

        def read_text(self):
            _, _, pid, _, task, _ = self.path.split("/")
            found = children[int(pid)][task]
            if found is None:
                raise PermissionError(self.path)
            return " ".join(map(str, found)) + " "

    monkeypatch.setattr(scratch.os, "listdir", listdir)
    monkeypatch.setattr(scratch, "Path", FakePath)


@pytest.mark.parametrize("tree, found", [
    ({}, []),
    ({1: {"1": []}}, []),
    ({1: {"1": [2, 3]}, 2: {"2": [4]}, 3: {"3": [5]}}, [2, 3, 4, 5]),
    ({1: {"1": [2], "7": [3]}, 3: {"3": [6]}}, [2, 3, 6]),
    ({1: {"1": [2], "7": None}, 2: {"2": [8]}}, [2, 8]),
    ({1: {"0": None, "1": [2]}, 2: {"2": [8]}}, [2, 8]),
    ({1: {"1": [2, 3]}, 3: {"3": [4], "9": [5, 6]}, 4: {"4": [7]}}, [2, 3, 4, 5, 6, 7]),
], ids=["gone", "childless", "breadth-first", "every-thread", "unreadable-thread", "unreadable-first", "deep"])
def test_descendants_are_every_threads_children_nearest_first(monkeypatch, tree, found):
    """The processes below a pid: the children of each of its threads, then theirs, breadth first (nearest first);
    a process or thread that cannot be read is skipped."""
    fake_proc(monkeypatch, tree)
    assert scratch.descendants(1) == found


@pytest.mark.parametrize("looks, used", [
    ({}, None),
    ({2: (10, 4, 4096), 3: (100, 40, 4096)}, 60 * 4096),
    ({2: (10, 4, 4096), 3: None}, 6 * 4096),
    ({2: None, 3: None}, None),
    ({2: (8, 8, 512), 3: None}, 0),
], ids=["no-processes", "deepest", "deepest-gone", "all-gone", "empty"])
def test_the_tmpfs_in_use_is_read_at_the_deepest_process_that_can_be_looked_at(monkeypatch, looks, used):
    """The sandbox's /tmp use is (blocks - free blocks) x fragment size, read through the deepest descendant's root
    that can be looked at (the last in the list); None when none can."""
    monkeypatch.setattr(scratch, "descendants", lambda pid: sorted(looks))
    real = os.statvfs

    def statvfs(path):
        parts = str(path).split("/")
        if parts[:2] != ["", "proc"]:
            return real(path)
        assert parts[3:] == ["root", "tmp"]
        look = looks.get(int(parts[2]))
        if look is None:
            raise ProcessLookupError(path)
        return SimpleNamespace(f_blocks=look[0], f_bfree=look[1], f_frsize=look[2], f_bsize=1)
    monkeypatch.setattr(scratch.os, "statvfs", statvfs)
    assert scratch.tmpfs_used(1) == used


def test_the_folder_in_use_is_the_allocated_blocks_of_every_file_below_it(tmp_path):
    """A folder's use: the allocated bytes (512-byte blocks) of every file in it and its subfolders; a sparse file
    counts what it holds, a link counts itself, not what it points to."""
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "a.bin").write_bytes(os.urandom(64 * 1024))
    (tmp_path / "sub" / "deeper" / "b.bin").write_bytes(os.urandom(32 * 1024))
    with open(tmp_path / "sparse.bin", "wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    (tmp_path / "sub" / "link").symlink_to(tmp_path / "a.bin")
    total = scratch.folder_used(tmp_path)
    assert 96 * 1024 <= total < 1024 * 1024, total  # the written 96 KiB; not the 64 MiB sparse file nor the link's
    files = [Path(root) / name for root, _, names in os.walk(tmp_path) for name in names]
    assert total == sum(os.lstat(f).st_blocks * 512 for f in files)
    assert scratch.folder_used(tmp_path / "sub" / "deeper") >= 32 * 1024
    assert scratch.folder_used(tmp_path / "missing") == 0


def test_a_file_that_vanishes_while_counting_is_skipped(tmp_path, monkeypatch):
    """A file that cannot be looked at (gone between listing and looking) counts nothing; the others still count."""
    (tmp_path / "gone.bin").write_bytes(os.urandom(8192))
    (tmp_path / "kept.bin").write_bytes(os.urandom(8192))
    kept = os.lstat(tmp_path / "kept.bin").st_blocks * 512
    real = os.lstat

    def lstat(path, *args, **kwargs):
        if str(path).endswith("gone.bin"):
            raise FileNotFoundError(path)
        return real(path, *args, **kwargs)
    monkeypatch.setattr(scratch.os, "lstat", lstat)
    assert scratch.folder_used(tmp_path) == kept > 0


def watch_of(monkeypatch, readings: list[int | None], limit: float, close_in_stop: bool = False):
    """A watch polling ``readings`` in turn (then the last forever) every millisecond, its stop recorded."""
    monkeypatch.setattr(scratch, "POLL_S", 0.001)
    seen, stopped, lock, ready = [], threading.Event(), threading.Lock(), threading.Event()
    calls = []
    holder = {}

    def used():
        ready.wait(5.0)  # the first look waits for the watch to be returned (a slow machine may look before)
        with lock:
            value = readings[min(len(seen), len(readings) - 1)]
            seen.append(value)
            return value

    def stop():
        calls.append(len(seen))
        if close_in_stop:
            holder["watch"].close()
        stopped.set()

    watch = scratch.ScratchWatch(used, limit, stop)
    holder["watch"] = watch
    ready.set()
    return watch, seen, stopped, calls


def test_the_watch_stops_the_student_the_first_time_use_exceeds_the_limit(monkeypatch):
    """Unknown use (None) and use up to the limit exactly go on; the first reading above it is recorded and stop()
    is called once, and the watch looks no more."""
    watch, seen, stopped, calls = watch_of(monkeypatch, [None, 5, 100, None, 100, 101, 500, 102], 100)
    assert stopped.wait(5.0)
    watch._thread.join(5.0)
    assert not watch._thread.is_alive()
    assert (watch.exceeded, calls, seen) == (101, [6], [None, 5, 100, None, 100, 101])
    watch.close()


def test_the_watch_limit_is_whole_bytes(monkeypatch):
    """The limit is taken as whole bytes (int): 100.9 is 100, so 101 bytes exceed it."""
    watch, _, stopped, _ = watch_of(monkeypatch, [100, 101], 100.9)
    assert watch.limit_bytes == 100 and isinstance(watch.limit_bytes, int)
    assert stopped.wait(5.0) and watch.exceeded == 101
    watch.close()


def test_a_closed_watch_stops_looking_without_stopping_the_student(monkeypatch):
    """close() ends the watch: its thread is gone when close returns, stop() was never called, nothing exceeded."""
    watch, seen, stopped, calls = watch_of(monkeypatch, [1, 2, 3], 100)
    for _ in range(5000):
        if len(seen) >= 2:
            break
        threading.Event().wait(0.001)
    watch.close()
    assert not watch._thread.is_alive()
    looked = len(seen)
    assert looked >= 2 and (watch.exceeded, calls) == (None, [])
    watch._thread.join(0.05)
    assert len(seen) == looked


def test_the_watch_waits_poll_s_before_each_look(monkeypatch):
    """Between two looks the watch waits POLL_S on its close event (so close() ends it at once): it never polls in
    a busy loop, and it looks first only after one wait."""
    monkeypatch.setattr(scratch, "POLL_S", 0.001)
    log, stopped = [], threading.Event()

    class Recording(threading.Event):
        def wait(self, timeout=None):
            log.append((self, timeout))  # the thread's own start event too: only the watch's counts below
            return super().wait(timeout)
    monkeypatch.setattr(scratch.threading, "Event", Recording)
    readings = iter([1, 2, 300])

    def used():
        log.append(("look", None))
        return next(readings)
    watch = scratch.ScratchWatch(used, 100, stopped.set)
    assert stopped.wait(5.0)
    watch.close()
    ours = [("wait", timeout) if event is watch._done else (event, timeout) for event, timeout in log
            if event is watch._done or event == "look"]
    assert ours[:6] == [("wait", 0.001), ("look", None)] * 3


def test_the_watch_is_a_named_daemon_thread_that_can_be_closed_from_its_own_stop(monkeypatch):
    """The watch's thread is a daemon (it never keeps the grader alive) named ``pgcourse-scratch-watch``; a stop()
    that closes the watch (from the watch's own thread) returns without error."""
    errors = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    watch, _, stopped, _ = watch_of(monkeypatch, [0, 200], 100, close_in_stop=True)
    assert watch._thread.daemon and watch._thread.name == "pgcourse-scratch-watch"
    assert stopped.wait(5.0)
    watch._thread.join(5.0)
    assert errors == [] and watch.exceeded == 200
