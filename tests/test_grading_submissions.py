"""pgcourse grade against a hostile class: what a submissions folder can hold, and the gradebook it makes.

Each attack here was reproduced on the grader before these tests: a symlink to a solution or a
classmate's notebook got full marks, a file named ``=HYPERLINK(...)`` became a spreadsheet formula,
a 700 MB sparse notebook was read whole before the size check, two notebooks from one student
aborted the whole batch, and one submission's exception lost every other student's row. Issue 26:
a stub named ``bob.ipynb`` in mallory's own folder was graded as bob's (0/15, his notebook ignored),
two Moodle participants named "Alice Smith" were one student (one notebook silently dropped), and a
notebook named ``x` <img src=x onerror=alert(1)> `.ipynb`` was live HTML in its Markdown feedback.

Most tests only collect, read or write (no student process starts); the grading itself is
replaced by :class:`FakePool`, which "grades" an answer by looking at its text. One test grades a
hostile folder for real through the command line, with one worker and a one-exercise chapter.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tracemalloc
from pathlib import Path

import nbformat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import pgcourse.grading.grader as grader_module
from pgcourse.classroom import exercisegen, grading
from pgcourse.cli import main as cli_main
from pgcourse.classroom.grading.sandbox import SANDBOX, probe_sandbox
from pgcourse.classroom.grading import ExerciseResult, GradeReport, Limits, StudentResult

LIMITS = Limits(exercise_s=10.0, submission_s=60.0, memory_mb=1024, output_mb=2)
BIG = 700 * 2**20  # the sparse notebook: no disk space, 700 MB to whoever reads it


# -- a one-exercise course ---------------------------------------------------------------------------
def _nbgrader(grade_id, **flags):
    return {"nbgrader": {"grade": False, "solution": False, "locked": True, "grade_id": grade_id,
                         "schema_version": 3, **flags}}


SOLUTION = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"
RIGHT = "def double(x):\n    return 2 * x\n"
CHECK = 'assert double(3) == 6, f"double(3) should be 6, not {double(3)!r}"\nprint("✓ double")'


def solution_notebook():
    cells = [new_markdown_cell("# Demo", metadata=_nbgrader("ch01_intro")),
             new_code_cell("import math"),
             new_code_cell(SOLUTION, metadata=_nbgrader("ch01_double", solution=True, locked=False)),
             new_code_cell(CHECK, metadata=_nbgrader("ch01_double_check", grade=True, points=2))]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


EXERCISE = exercisegen.make_exercise_notebook(solution_notebook())


def write_submission(path: Path, right: bool = True) -> Path:
    notebook = nbformat.from_dict(json.loads(nbformat.writes(EXERCISE)))
    if right:
        for cell in notebook.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == "ch01_double":
                cell.source = RIGHT
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    (root / "solutions").mkdir()
    (root / "exercises").mkdir()
    nbformat.write(solution_notebook(), root / "solutions" / "01_demo.ipynb")
    nbformat.write(EXERCISE, root / "exercises" / "01_demo.ipynb")
    return grading.load_course(root)


class FakePool:
    """Stands in for :class:`grading.Grader`: full points when the answer is ``RIGHT``'s text, no processes."""

    mode, detail = "fake", "no student process"

    def __init__(self, fail_for=()):
        self.fail_for = set(fail_for)
        self.graded: list[str] = []

    def grade(self, chapter, tasks, limits, on_result=None):
        results = {}
        for key, answers in tasks:
            if key in self.fail_for:
                raise RuntimeError(f"injected failure while grading {key}")
            self.graded.append(key)
            right = "return 2 * x" in "".join(answers.get("ch01_double", []))
            exercises = {e.id: {"points": e.points if right else 0, "status": "passed" if right else "failed",
                                "feedback": "ok" if right else "double(3) should be 6"} for e in chapter.exercises}
            results[key] = exercises
            if on_result is not None:
                on_result(key, exercises)
        return results


def fake_grade(paths, course, pool=None, **kwargs):
    return grading.grade_paths(paths, course=course, chapter="01_demo", limits=LIMITS, grader=pool or FakePool(),
                               progress=False, **kwargs)


@pytest.fixture
def opened(monkeypatch):
    """The real paths of every file opened from now on (io.open and os.open): to show what was never read."""
    paths: list[str] = []
    real_io_open, real_os_open = io.open, os.open

    def record(file):
        if isinstance(file, (str, bytes, os.PathLike)):
            paths.append(os.path.realpath(os.fsdecode(file)))

    def io_open(file, *args, **kwargs):
        record(file)
        return real_io_open(file, *args, **kwargs)

    def os_open(path, *args, **kwargs):
        record(path)
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(io, "open", io_open)
    monkeypatch.setattr(os, "open", os_open)
    return paths


# -- symlinks: never followed, an error row for the student ------------------------------------------------
@pytest.fixture
def linked_class(tmp_path):
    """alice hands in a notebook; bob, carol and dave hand in links to a solution or to alice's work."""
    elsewhere = tmp_path / "elsewhere"
    secret = write_submission(elsewhere / "01_demo.ipynb")             # a solution the students can see
    submitted = tmp_path / "submitted"
    write_submission(submitted / "alice.ipynb")
    (submitted / "bob.ipynb").symlink_to(secret)                        # a symlinked notebook
    (submitted / "carol").symlink_to(elsewhere, target_is_directory=True)  # a symlinked student folder
    (submitted / "dave").mkdir()
    (submitted / "dave" / "01_demo.ipynb").symlink_to(submitted / "alice.ipynb")  # a classmate's notebook
    return submitted, secret


def test_symlinks_are_listed_but_never_read(linked_class, opened):
    submitted, secret = linked_class
    found = grading.collect_submissions([submitted], ["01_demo"])
    assert sorted(student for student, _ in found) == ["alice", "bob", "carol", "dave"]
    for student, path in found:
        if student == "alice":
            continue
        opened.clear()
        submission = grading.read_submission(path, student)
        assert submission.problem is not None and "symlinks are not graded" in submission.problem, (student,
                                                                                                   submission.problem)
        assert submission.cells == [] and not submission.sha256
        assert opened == [], f"{student}'s link was opened: {opened}"
    # given by name (the shell expands submitted/*.ipynb to links too): still not followed
    assert "symlinks are not graded" in grading.read_submission(submitted / "bob.ipynb").problem


def test_symlinks_get_an_error_row_with_zero_points(course, linked_class, opened):
    submitted, secret = linked_class
    report = fake_grade([submitted], course)
    assert report.points() == {"alice": {"ch01_double": 2}, "bob": {"ch01_double": 0},
                               "carol": {"ch01_double": 0}, "dave": {"ch01_double": 0}}
    for student in ("bob", "carol", "dave"):
        result = report.student(student).exercises["ch01_double"]
        assert result.status == "invalid" and "symlinks are not graded" in result.feedback
    assert str(secret) not in opened
    assert report.student("alice").total == 2


# -- formula-like names: neutralised in the CSV; odd bytes cannot break the JSON or the terminal -----------
def _report(chapter, rows):
    students = [StudentResult(name, f"{name}.ipynb", "0" * 64,
                              {"ch01_double": ExerciseResult(points, 2, "passed", "ok")}) for name, points in rows]
    return GradeReport(chapter, students, LIMITS, "fake", "test", 0.0)


FORMULAS = ['=HYPERLINK("http://evil.example","click me")', "+1+1", "-1", "@SUM(A1:A9)", "\t=1", "\r=1",
            "=cmd|' /C calc'!A0"]


def test_formula_like_student_names_are_neutralised_in_the_csv(course):
    report = _report(course.chapter("01_demo"), [*[(name, 2) for name in FORMULAS], ("plain", 2), ("o'neil", 0),
                                                 ("negative", -1)])
    rows = list(csv.reader(io.StringIO(report.csv_text(), newline="")))
    assert rows[0] == ["student", "ch01_double", "total"]
    names = [row[0] for row in rows[1:]]
    assert names == [*["'" + name for name in FORMULAS], "plain", "o'neil", "negative"]
    assert [row[1:] for row in rows[1:]] == [["2", "2"]] * len(FORMULAS) + [["2", "2"], ["0", "0"], ["-1", "-1"]]


def test_odd_bytes_in_a_file_name_cannot_break_the_gradebook_or_the_terminal(course, tmp_path):
    submitted = tmp_path / "submitted"
    for name in (b"\xff\xfe", b"esc\x1b[2Jape", b"new\nline", b"=1+2"):
        write_submission(Path(os.fsdecode(bytes(submitted) + b"/" + name + b".ipynb")))
    out = tmp_path / "grades.csv"
    report = fake_grade([submitted], course, out=out)
    assert sorted(report.points()) == sorted(["\udcff\udcfe", "esc\x1b[2Jape", "new\nline", "=1+2"])
    feedback = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert sorted(s["student"] for s in feedback["students"]) == sorted(["\\xff\\xfe", "esc\x1b[2Jape", "new\nline",
                                                                        "=1+2"])
    with open(out, newline="", encoding="utf-8") as handle:
        names = sorted(row[0] for row in list(csv.reader(handle))[1:])
    assert names == sorted(["'=1+2", "\\xff\\xfe", "esc\x1b[2Jape", "new\nline"])
    summary = report.summary()
    assert "\x1b" not in summary and "new\nline" not in summary and "\udcff" not in summary
    assert r"'esc\x1b[2Jape'" in summary and r"'new\nline'" in summary


# -- oversized files: the size is checked before the file is opened ---------------------------------------
def test_oversized_notebook_is_refused_before_it_is_opened(tmp_path, opened):
    big = tmp_path / "big.ipynb"
    with open(big, "wb") as handle:
        handle.truncate(BIG)  # sparse: takes no disk space
    opened.clear()
    submission = grading.read_submission(big, "mallory")
    assert str(big) not in opened, "the oversized file was opened for reading"
    assert submission.problem is not None and "too large" in submission.problem, submission.problem
    assert "50 MB" in submission.problem


def test_a_file_that_grows_after_the_size_check_is_read_only_up_to_the_limit(tmp_path, monkeypatch):
    path = write_submission(tmp_path / "grows.ipynb")
    real_fstat = os.fstat

    def fstat_then_grow(fd):  # the file is small when looked at, 700 MB when read
        result = real_fstat(fd)
        if os.path.exists(path) and os.path.samestat(result, os.stat(path)) and os.stat(path).st_size < BIG:
            os.truncate(path, BIG)
        return result

    monkeypatch.setattr(os, "fstat", fstat_then_grow)
    tracemalloc.start()
    try:
        submission = grading.read_submission(path, "mallory")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert submission.problem is not None and "too large" in submission.problem, submission.problem
    assert peak < 3 * grading.MAX_NOTEBOOK_BYTES, f"read {peak / 2**20:.0f} MB of a growing file"


def test_oversized_notebook_gets_a_row_saying_so(course, tmp_path, opened):
    submitted = tmp_path / "submitted"
    write_submission(submitted / "alice.ipynb")
    with open(submitted / "big.ipynb", "wb") as handle:
        handle.truncate(BIG)
    opened.clear()
    report = fake_grade([submitted], course)
    assert str(submitted / "big.ipynb") not in opened, "the oversized file was opened (to read or to hash it)"
    result = report.student("big").exercises["ch01_double"]
    assert result.points == 0 and "too large" in result.feedback and "50 MB" in result.feedback
    assert report.student("alice").total == 2


# -- two notebooks from one student: graded once, said so; the batch goes on ------------------------------
def test_two_notebooks_from_one_student_are_graded_once_with_a_warning(course, tmp_path):
    submitted = tmp_path / "submitted"
    write_submission(submitted / "alice.ipynb")
    older = write_submission(submitted / "bob" / "01_demo.ipynb", right=True)
    newer = write_submission(submitted / "bob" / "01_demo-final.ipynb", right=False)
    os.utime(older, ns=(1_600_000_000 * 10**9,) * 2)
    os.utime(newer, ns=(1_700_000_000 * 10**9,) * 2)
    tie_a = write_submission(submitted / "carol" / "a.ipynb", right=False)
    tie_b = write_submission(submitted / "carol" / "b.ipynb", right=True)
    for path in (tie_a, tie_b):
        os.utime(path, ns=(1_650_000_000 * 10**9,) * 2)
    pool = FakePool()
    report = fake_grade([submitted], course, pool=pool)
    assert sorted(pool.graded) == ["alice", "bob", "carol"]  # each student graded once
    assert [s.student for s in report.students] == ["alice", "bob", "carol"]
    bob, carol = report.student("bob"), report.student("carol")
    assert bob.file == str(newer) and bob.total == 0     # the most recently modified
    assert carol.file == str(tie_b) and carol.total == 2  # same time: the last by path
    bob_note = " ".join(bob.notes)
    assert "2 notebooks" in bob_note and f"graded {newer}" in bob_note and f"ignored {older}" in bob_note
    summary = report.summary()
    assert f"graded {newer}" in summary and f"ignored {older}" in summary and "'bob'" in summary


# -- one student's failure never loses another student's row ----------------------------------------------
def test_an_exception_reading_one_submission_costs_that_student_only(course, tmp_path, monkeypatch):
    submitted = tmp_path / "submitted"
    for student in ("alice", "mallory", "zoe"):
        write_submission(submitted / f"{student}.ipynb")
    real_read = grader_module.read_submission

    def read_or_fail(path, student=None, *args, **kwargs):
        if student == "mallory":
            raise RuntimeError("injected failure while reading mallory")
        return real_read(path, student, *args, **kwargs)

    monkeypatch.setattr(grader_module, "read_submission", read_or_fail)
    out = tmp_path / "grades.csv"
    report = fake_grade([submitted], course, out=out)
    assert report.points() == {"alice": {"ch01_double": 2}, "mallory": {"ch01_double": 0}, "zoe": {"ch01_double": 2}}
    mallory = report.student("mallory")
    assert "injected failure while reading mallory" in mallory.exercises["ch01_double"].feedback
    with open(out, newline="") as handle:
        assert [row[0] for row in csv.reader(handle)] == ["student", "alice", "mallory", "zoe"]


def test_an_exception_grading_one_submission_costs_that_student_only(course, tmp_path):
    submitted = tmp_path / "submitted"
    for student in ("alice", "mallory", "zoe"):
        write_submission(submitted / f"{student}.ipynb")
    out = tmp_path / "grades.csv"
    report = fake_grade([submitted], course, pool=FakePool(fail_for={"mallory"}), out=out)
    assert report.points() == {"alice": {"ch01_double": 2}, "mallory": {"ch01_double": 0}, "zoe": {"ch01_double": 2}}
    result = report.student("mallory").exercises["ch01_double"]
    assert result.status == "error" and "injected failure while grading mallory" in result.feedback
    with open(out, newline="") as handle:
        assert [row[-1] for row in csv.reader(handle)] == ["total", "2", "0", "2"]


# -- the whole hostile folder, graded for real through the command line -----------------------------------
def test_cli_grades_a_hostile_folder(course, tmp_path, capsys):
    submitted = tmp_path / "submitted"
    solution = course.notebooks["01_demo"]
    write_submission(submitted / "alice.ipynb")
    (submitted / "eve.ipynb").symlink_to(solution)
    formula = '=HYPERLINK("evil.example","click me")'
    write_submission(submitted / f"{formula}.ipynb")
    older = write_submission(submitted / "bob" / "draft.ipynb", right=False)
    newer = write_submission(submitted / "bob" / "01_demo.ipynb", right=True)
    os.utime(older, ns=(1_600_000_000 * 10**9,) * 2)
    os.utime(newer, ns=(1_700_000_000 * 10**9,) * 2)
    with open(submitted / "big.ipynb", "wb") as handle:
        handle.truncate(BIG)
    out = tmp_path / "grades.csv"
    code = cli_main(["grade", str(submitted), "--out", str(out), "--course", str(course.root), "--quiet",
                     "--jobs", "1", "--timeout", "10", "--memory", "1024",
                     *([] if probe_sandbox()[0] == SANDBOX else ["--unsafe-no-sandbox"])])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    with open(out, newline="") as handle:
        rows = {row[0]: row[1:] for row in list(csv.reader(handle))[1:]}
    assert rows == {"'" + formula: ["2", "2"], "alice": ["2", "2"], "big": ["0", "0"], "bob": ["2", "2"],
                    "eve": ["0", "0"]}
    feedback = {s["student"]: s for s in json.loads(out.with_suffix(".json").read_text())["students"]}
    assert "symlinks are not graded" in feedback["eve"]["exercises"]["ch01_double"]["feedback"]
    assert "too large" in feedback["big"]["problem"]
    assert f"ignored {older}" in " ".join(feedback["bob"]["notes"])
    assert f"ignored {older}" in printed.out


# -- a notebook named for a classmate (issue 26, finding 1): a file in a student's folder is that student's ---------
STAMP, LATER = "2025-03-07 10:00:00 UTC", "2025-03-08 09:00:00 UTC"
MOODLE_FOLDERS = {"alice": "Alice Smith_123450_assignsubmission_file_", "bob": "Bob Lee_123451_assignsubmission_file_",
                  "carol": "Carol Jones_12345_assignsubmission_file_",
                  "mallory": "Mallory Evil_123459_assignsubmission_file_"}


def framed_class(root: Path, layout: str, frame: str, own: bool) -> tuple[dict[str, Path], Path]:
    """alice, bob and carol hand in right notebooks; mallory adds a stub named ``frame`` inside her own folder, her
    submission time making it the latest of all (with ``own``, she also hands in a right notebook of her own).
    ``layout``: nbgrader's (``root/<student>/ch01/`` with timestamp.txt) or Moodle's "download in folders" (file
    times). Returns {student folder: her or his own notebook} and the stub."""
    own_files = {}
    for student in ("alice", "bob", "carol", "mallory"):
        folder = root / student / "ch01" if layout == "nbgrader" else root / MOODLE_FOLDERS[student]
        folder.mkdir(parents=True)
        if layout == "nbgrader":
            (folder / "timestamp.txt").write_text(LATER if student == "mallory" else STAMP)
        if student != "mallory" or own:
            own_files[student] = write_submission(folder / "01_demo.ipynb")
            os.utime(own_files[student], ns=(1_700_000_000 * 10**9,) * 2)
    hers = root / "mallory" / "ch01" if layout == "nbgrader" else root / MOODLE_FOLDERS["mallory"]
    stub = write_submission(hers / frame, right=False)
    os.utime(stub, ns=(1_800_000_000 * 10**9,) * 2)
    if own:  # an older draft named for no one of the class: simply hers (and no row for a "dave")
        os.utime(write_submission(hers / "dave_12399_777_01_demo.ipynb", right=False), ns=(1_600_000_000 * 10**9,) * 2)
    return own_files, stub


FRAMES = [  # (layout, the student the file names, the file's name)
    ("nbgrader", "bob", "bob.ipynb"),
    ("nbgrader", "carol", "carol_12345_678_01_demo.ipynb"),                          # a Canvas download's name
    ("nbgrader", "bob", "Bob_12346_assignsubmission_file_01_demo.ipynb"),            # a Moodle download's name
    ("moodle", "Carol Jones", "Carol Jones_12345_assignsubmission_file_01_demo.ipynb"),
    ("moodle", "Bob Lee", "Bob Lee.ipynb"),
]


@pytest.mark.parametrize("given", ["files", "folder"])
@pytest.mark.parametrize("own", [True, False], ids=["with-her-own", "only-the-stub"])
@pytest.mark.parametrize("layout, victim, frame", FRAMES, ids=[f"{layout}-{frame}" for layout, _, frame in FRAMES])
def test_a_notebook_named_for_a_classmate_is_never_graded_for_the_classmate(course, tmp_path, layout, victim, frame,
                                                                            own, given):
    own_files, stub = framed_class(tmp_path / "submitted", layout, frame, own)
    students = {"alice": "alice", "bob": "bob", "carol": "carol", "mallory": "mallory"} if layout == "nbgrader" else \
        {folder: name.split("_")[0] for folder, name in MOODLE_FOLDERS.items()}
    paths = ([tmp_path / "submitted"] if given == "folder" else  # as docs/teachers.md shows: submitted/*/ch01/*.ipynb
             sorted((tmp_path / "submitted").glob("*/ch01/*.ipynb" if layout == "nbgrader" else "*/*.ipynb")))
    report = fake_grade(paths, course)
    # every student is graded on their own notebook; the stub counts for nobody but the student whose folder holds it
    assert sorted(report.points()) == sorted(students.values()), "one row per student, mallory's too, and no other"
    for folder, student in students.items():
        if folder == "mallory":
            continue
        row = report.student(student)
        assert (row.file, row.total) == (str(own_files[folder]), 2), (student, row.file, row.notes)
        assert not any(str(stub) in note for note in row.notes), row.notes
    mallory = report.student(students["mallory"])
    if own:  # her own notebook counts; the stub is hers, not graded, and said so
        assert (mallory.file, mallory.total) == (str(own_files["mallory"]), 2), (mallory.file, mallory.notes)
        assert any(str(stub) in note and "named for another student" in note for note in mallory.notes), mallory.notes
    else:    # the stub alone: an error row for her, never a grade for the one it names
        result = mallory.exercises["ch01_double"]
        assert (mallory.file, mallory.total, result.status) == (str(stub), 0, "invalid"), (mallory.file, result)
        assert "named for another student" in mallory.problem and "named for another student" in result.feedback
    assert any(str(stub) in w and "named for another student" in w and repr(victim) in w for w in report.warnings), \
        report.warnings


# -- Moodle participants who share a name (issue 26, finding 3): two students, in the gradebook and the exports ----
def test_moodle_participants_with_the_same_name_are_two_students(course, tmp_path):
    from datetime import datetime, timezone

    from pgcourse.classroom.grading.assignment import make_assignment
    from pgcourse.classroom.grading.lms import read_roster
    from pgcourse.classroom.grading.term import TERM_FORMAT, export, update_term

    flat, folders = tmp_path / "download", tmp_path / "in-folders"  # "Download all submissions", without, with folders
    for number, right in ((123456, True), (123457, False)):
        write_submission(flat / f"Alice Smith_{number}_assignsubmission_file_01_demo.ipynb", right=right)
        write_submission(folders / f"Alice Smith_{number}_assignsubmission_file_" / "01_demo.ipynb", right=right)
    write_submission(flat / "Bob Lee_123458_assignsubmission_file_01_demo.ipynb")
    write_submission(folders / "Bob Lee_123458_assignsubmission_file_" / "01_demo.ipynb")
    times = {"Participant 123456": datetime(2025, 3, 7, 10, tzinfo=timezone.utc),  # the grading worksheet's times
             "Participant 123457": datetime(2025, 3, 9, 10, tzinfo=timezone.utc),
             "Alice Smith": datetime(2025, 3, 1, 10, tzinfo=timezone.utc)}        # a name: whose time would it be?
    for given in ([flat], sorted(flat.glob("*.ipynb")), [folders], sorted(folders.glob("*/*.ipynb"))):
        report = fake_grade(given, course, timestamps=times)
        assert report.points() == {"Alice Smith_123456": {"ch01_double": 2}, "Alice Smith_123457": {"ch01_double": 0},
                                   "Bob Lee": {"ch01_double": 2}}, given
        first, second = report.student("Alice Smith_123456"), report.student("Alice Smith_123457")
        assert first.identity == {"lms": "moodle", "lms_id": "123456", "name": "Alice Smith"}
        assert second.identity == {"lms": "moodle", "lms_id": "123457", "name": "Alice Smith"}
        assert (first.submitted_at, second.submitted_at) == ("2025-03-07T10:00:00+00:00", "2025-03-09T10:00:00+00:00")
        assert any("'Alice Smith'" in w and "123456" in w and "123457" in w for w in report.warnings), report.warnings
    # the term gradebook keeps them apart, and so do the exports
    term = {"format": TERM_FORMAT, "assignments": [], "students": []}
    update_term(term, report, "grades.json")
    assert [(s["student"], s["scores"]) for s in term["students"]] == [
        ("Alice Smith_123456", {"01_demo": 2}), ("Alice Smith_123457", {"01_demo": 0}), ("Bob Lee", {"01_demo": 2})]
    worksheet = tmp_path / "worksheet.csv"  # Moodle's grading worksheet: who each participant number is
    worksheet.write_text("Identifier,Full name,Email address,Status\n"
                         "Participant 123457,Alice Smith,alice.b@uni.example,Submitted\n"
                         "Participant 123456,Alice Smith,alice.a@uni.example,Submitted\n"
                         "Participant 123458,Bob Lee,bob@uni.example,Submitted\n")
    text, _ = export(term, "moodle", read_roster(worksheet))
    assert list(csv.reader(io.StringIO(text))) == [["Email address", "ID number", "Full name", "01_demo"],
                                                   ["alice.a@uni.example", "", "Alice Smith", "2"],
                                                   ["alice.b@uni.example", "", "Alice Smith", "0"],
                                                   ["bob@uni.example", "", "Bob Lee", "2"]]
    # the next assignment: Moodle numbers its participants anew; both worksheets together say who is who
    hw2 = tmp_path / "hw2"
    for number, right in ((223456, False), (223457, True)):
        write_submission(hw2 / f"Alice Smith_{number}_assignsubmission_file_01_demo.ipynb", right=right)
    write_submission(hw2 / "Bob Lee_223458_assignsubmission_file_01_demo.ipynb")
    update_term(term, fake_grade([hw2], course, assignment=make_assignment(name="HW2")), "hw2.json")
    with open(worksheet, "a") as handle:
        handle.write("Participant 223457,Alice Smith,alice.b@uni.example,Submitted\n"
                     "Participant 223456,Alice Smith,alice.a@uni.example,Submitted\n"
                     "Participant 223458,Bob Lee,bob@uni.example,Submitted\n")
    text, warnings = export(term, "moodle", read_roster(worksheet))
    assert list(csv.reader(io.StringIO(text))) == [["Email address", "ID number", "Full name", "01_demo", "HW2"],
                                                   ["alice.a@uni.example", "", "Alice Smith", "2", "0"],
                                                   ["alice.b@uni.example", "", "Alice Smith", "0", "2"],
                                                   ["bob@uni.example", "", "Bob Lee", "2", "2"]]
    assert any("'Alice Smith_123456', 'Alice Smith_223456' are one student" in w for w in warnings), warnings
    # a roster that cannot tell them apart (Moodle's gradebook export: names, no participant numbers): refused
    both = tmp_path / "gradebook-export.csv"
    both.write_text("First name,Last name,ID number,Email address\nAlice,Smith,S1,alice.a@uni.example\n"
                    "Alice,Smith,S2,alice.b@uni.example\nBob,Lee,S3,bob@uni.example\n")
    with pytest.raises(grading.GradingError, match=r"Alice Smith_123456, Alice Smith_123457"):
        export(term, "moodle", read_roster(both))
    one = tmp_path / "one-alice.csv"  # one Alice on the roster: she must not get either grade, let alone both
    one.write_text("First name,Last name,ID number,Email address\nAlice,Smith,S1,alice.a@uni.example\n"
                   "Bob,Lee,S3,bob@uni.example\n")
    canvas = tmp_path / "canvas-gradebook.csv"
    canvas.write_text("Student,ID,SIS User ID,SIS Login ID,Section\n    Points Possible,,,,\n"
                      "\"Smith, Alice\",777,S1,asmith,A\n\"Lee, Bob\",778,S3,blee,A\n")
    for lms, roster in (("moodle", one), ("canvas", canvas)):
        with pytest.raises(grading.GradingError, match=r"Alice Smith_123456, Alice Smith_123457.*one student"):
            export(term, lms, read_roster(roster))


# -- feedback files: nothing a student wrote becomes markup (issue 26, finding 7) ----------------------------------
HOSTILE_NAME = "x` <img src=x onerror=alert(1)> `*em* [link](javascript:alert(2)) <!-- &amp; \\"
HOSTILE_TEXT = ("```\n<img src=x onerror=alert(3)>\n```\n\n<script>alert(4)</script>\n~~~\n# heading\n"
                "    </pre></code><b onclick=alert(5)>bold</b> **strong** [x](javascript:alert(6)) ![i](x.png)\n"
                "&lt;script&gt; http://evil.example <http://evil.example> `` ` `` |a|b|\n---|---\n<!-- -->")
PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "blockquote"}  # the HTML page's own
FEEDBACK_TAGS = {"h1", "h2", "p", "code", "pre", "strong", "ul", "li", "br"}  # what the grader's own text makes


class EchoPool(FakePool):
    """Fails every answer with the student's own text as the message, as their exception's message would be."""

    def grade(self, chapter, tasks, limits, on_result=None):
        results = {}
        for key, answers in tasks:
            text = "".join(a for a in answers.get("ch01_double", []) if isinstance(a, str))
            results[key] = {e.id: {"points": 0, "status": "error", "feedback": "Traceback (most recent call last):\n"
                                   + text} for e in chapter.exercises}
            if on_result is not None:
                on_result(key, results[key])
        return results


def _renderings(text: str) -> dict[str, str]:
    """A Markdown feedback file as a student's viewer shows it: Jupyter's renderer (mistune, as nbconvert uses it)
    and Python-Markdown (with and without fenced code blocks). Both pass raw HTML through, as most do."""
    mistune = pytest.importorskip("mistune")
    markdown = pytest.importorskip("markdown")
    return {"mistune": mistune.html(text), "python-markdown": markdown.markdown(text, extensions=["fenced_code"]),
            "python-markdown, core only": markdown.markdown(text)}


def assert_only_text(page: str, student_texts: list[str], tags: set[str], attributes=frozenset(), where=""):
    """``page`` holds no element or attribute but ``tags`` and ``attributes``, and shows each line of each student
    text as written (so no part of it was taken as markup: an emphasis, a link, a tag would change or drop it)."""
    from html.parser import HTMLParser

    class Page(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.tags, self.attributes, self.text = [], [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            self.attributes += [(tag, name) for name, _ in attrs]

        handle_startendtag = handle_starttag

        def handle_comment(self, data):
            self.tags.append("<!-- comment -->")

        def handle_data(self, data):
            self.text.append(data)

    parser = Page()
    parser.feed(page)
    parser.close()
    assert set(parser.tags) <= tags, f"{where}: markup from a student: {set(parser.tags) - tags}\n{page}"
    assert set(parser.attributes) <= set(attributes), f"{where}: attributes {set(parser.attributes)}\n{page}"
    shown = "".join(parser.text)
    for text in student_texts:
        for line in text.splitlines():
            assert line.strip() in shown, f"{where}: {line.strip()!r} is not shown as written\n{page}"


def test_feedback_files_show_what_students_wrote_as_text_never_as_markup(course, tmp_path):
    from pgcourse.classroom.grading.feedback import html_page, markdown, write_feedback

    submitted = tmp_path / "submitted"
    hostile = write_submission(submitted / f"{HOSTILE_NAME}.ipynb")   # its name, and its answer as the message
    notebook = nbformat.read(hostile, as_version=4)
    next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "ch01_double").source = \
        HOSTILE_TEXT
    nbformat.write(notebook, hostile)
    write_submission(submitted / "eve" / "01_demo.ipynb")               # a note naming her other file
    os.utime(write_submission(submitted / "eve" / f"{HOSTILE_NAME}.ipynb"), ns=(1_600_000_000 * 10**9,) * 2)
    (submitted / "<b onmouseover=alert(9)>.ipynb").write_text("<img src=x onerror=alert(10)>")  # not a notebook
    report = fake_grade([submitted], course, pool=EchoPool())
    # a free-text answer and a teacher's comment, which no grading of this one-exercise chapter makes
    crafted = StudentResult(HOSTILE_NAME, f"/tmp/{HOSTILE_NAME}.ipynb", None,
                            {"ch01_double": ExerciseResult(0, 2, "manual", "", comment=HOSTILE_NAME,
                                                           answer=HOSTILE_TEXT)}, notes=[HOSTILE_TEXT])
    rows = [report.student(HOSTILE_NAME), *[row for row in report.students if row.student != HOSTILE_NAME], crafted]
    assert len(rows) == 4 and any(HOSTILE_NAME in note for note in report.student("eve").notes)
    for fmt in ("md", "html"):
        written = write_feedback(report, tmp_path / "feedback", fmt)
        assert len(written) == 3 and all(path.parent == tmp_path / "feedback" for path in written)
    for row in rows:
        texts = [row.student, Path(row.file).name, *row.notes, *([row.problem] if row.problem else []),
                 *[result.feedback for result in row.exercises.values() if result.status not in ("passed", "manual")],
                 *[result.answer for result in row.exercises.values() if result.answer],
                 *[result.comment for result in row.exercises.values() if result.comment]]
        for hide in (False, True):
            for renderer, page in _renderings(markdown(report, row, hide)).items():
                assert_only_text(page, texts, FEEDBACK_TAGS, {("code", "class")},  # a code block's language
                                 where=f"{renderer} of {row.student!r}'s Markdown")
            assert_only_text(html_page(report, row, hide), texts, FEEDBACK_TAGS | PAGE_TAGS,
                             {("meta", "charset"), ("meta", "http-equiv"), ("meta", "content")},
                             where=f"{row.student!r}'s HTML")


MARKDOWN_PIECES = st.sampled_from(list("`*_<>&[]()!#\\ -~|:.@=$^\"';/\n\t") + [
    "&amp;", "&#60;", "<img src=x onerror=alert(1)>", "```", "~~~", "<!--", "-->", "http://evil.example", "www.e.xx",
    "a@b.cc", "    ", "1. ", "> ", "| a |", "---", "***", "[x]: http://e.xx", "\x1b[2J", "\u2028"])


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(MARKDOWN_PIECES | st.text(max_size=3), max_size=12).map("".join))
def test_markdown_escapes_show_any_text_as_written(text):
    """The three ways the Markdown feedback writes text it did not write itself, on any text: a name's code span, a
    message's code block, the teacher's prose; each renders as the text (unprintables escaped), never as markup."""
    from pgcourse.classroom.grading.feedback import md_block, md_code, md_text
    from pgcourse.classroom.grading.gradebook import shown_line

    line = shown_line(text).strip()
    block = "\n".join(md_block(text))
    for renderer, page in _renderings(f"Student: {md_code(text)}\n").items():
        assert_only_text(page, [line] if line else [], {"p", "code"}, where=f"{renderer}, code span of {text!r}")
    for renderer, page in _renderings(f"## Notes\n\n{block}\n\nWhat to do: nothing.\n").items():
        assert_only_text(page, [shown_line(part) for part in text.expandtabs(4).splitlines()],
                         {"h2", "p", "pre", "code"}, where=f"{renderer}, code block of {text!r}")
    for renderer, page in _renderings(f"Comment from your teacher: {md_text(text)}\n").items():
        assert_only_text(page, [line] if line else [], {"p"}, where=f"{renderer}, prose of {text!r}")


# -- issue 26, item 5.3: similarity on the syntax tree, groups of any size, not one-liners ---------------------
LOOPED = '''def double(x):
    total = 0
    for step in range(2):
        total = total + x
    if total != total:
        raise ValueError("not a number")
    return total
'''
PADDED = '''def double(x):
    """Twice x."""
    pass
    total = 0
    pass
    for step in range(2):
        pass
        total = total + x
        pass
    pass
    if total != total:
        pass
        raise ValueError("not a number")
    pass
    return total
'''
RENAMED = '''def double(value):
    # adding it twice
    acc = 0
    for i in range(2):
        acc = acc + value

    if acc != acc:
        raise ValueError('nan')  # never
    return acc
'''
OWN_WAYS = ['''def double(x):
    import torch
    if isinstance(x, torch.Tensor):
        return x.mul(2.0).to(x.dtype)
    result = x * 2
    return result
''', '''def double(x):
    parts = [x, x]
    while len(parts) > 1:
        parts = [parts[0] + parts[1]] + parts[2:]
    return parts[0]
''', '''def double(x):
    try:
        return x.__add__(x)
    except AttributeError:
        numbers = list(x)
        return type(x)(a * 2 for a in numbers)
''', '''def double(x):
    from functools import reduce
    import operator
    return reduce(operator.add, [x] * 2, 0 * x)
''']
ONE_LINERS = ["def double(x):\n    return 2 * x\n", "def double(x):\n    return x * 2\n",
              "def double(value):\n    return 2 * value  # easy\n", "def double(x):\n    return x + x\n",
              "def double(x):\n    '''Doubles.'''\n    return 2.0 * x\n"]


def _similar(course, tmp_path, answers: dict[str, str]):
    from pgcourse.classroom.grading.similarity import similar_pairs

    chapter = course.chapter("01_demo")
    submissions = []
    for student, source in answers.items():
        path = write_submission(tmp_path / f"{student}.ipynb")
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == "ch01_double":
                cell.source = source
        nbformat.write(notebook, path)
        submissions.append(grading.read_submission(path, student))
    return similar_pairs(chapter, submissions)


def test_a_copy_padded_with_pass_and_a_docstring_is_reported(course, tmp_path):
    """``pass`` after every line broke every window of the old token fingerprints: not reported."""
    pairs = _similar(course, tmp_path, {"carol": LOOPED, "mallory": PADDED, "erin": OWN_WAYS[0]})
    assert [(p.first, p.second, p.overlap) for p in pairs] == [("carol", "mallory", 1.0)]


def test_a_copy_with_other_names_comments_and_layout_is_reported(course, tmp_path):
    pairs = _similar(course, tmp_path, {"carol": LOOPED, "erin": RENAMED, "frank": OWN_WAYS[1]})
    assert [(p.first, p.second, p.overlap) for p in pairs] == [("carol", "erin", 1.0)]


def test_a_group_of_three_copiers_in_a_class_of_seven_is_reported(course, tmp_path):
    """The old rule dropped what more than max(2, a quarter of the class) shared: three copiers of seven hid each
    other. Now only the handout is common: three pairs, one group."""
    answers = {"ann": LOOPED, "ben": RENAMED, "cat": RENAMED.replace("acc", "twice"),
               **{name: own for name, own in zip(["dan", "eve", "fay", "gus"], OWN_WAYS)}}
    pairs = _similar(course, tmp_path, answers)
    assert sorted((p.first, p.second) for p in pairs) == [("ann", "ben"), ("ann", "cat"), ("ben", "cat")]
    from pgcourse.classroom.grading.similarity import groups, summary_lines

    assert groups(pairs) == [("ch01_double", ["ann", "ben", "cat"])]
    assert summary_lines(pairs)[1] == "  ch01_double: ann ~ ben ~ cat (100% of fingerprints shared)"


def test_one_line_answers_written_alike_are_not_reported(course, tmp_path):
    """Five students who wrote the natural one-liner have identical trees (names and literals normalised): below
    the size floor nothing is compared, so no pair says they copied; the long copy beside them is reported."""
    from pgcourse.classroom.grading.similarity import MIN_TOKENS, normalised_tokens, summary_lines

    assert all(len(normalised_tokens(source)) < MIN_TOKENS for source in ONE_LINERS)
    assert len(normalised_tokens(LOOPED)) >= MIN_TOKENS
    answers = {f"s{i}": source for i, source in enumerate(ONE_LINERS)}
    assert _similar(course, tmp_path, answers) == []
    assert "answers under 36 tokens are not compared" in summary_lines([])[0]
    pairs = _similar(course, tmp_path / "b", {**answers, "carol": LOOPED, "mallory": PADDED})
    assert [(p.first, p.second) for p in pairs] == [("carol", "mallory")]


# -- issue 26, item 5.4: one student's folder given alone is one student ---------------------------------------
@pytest.mark.parametrize("layout", ["plain", "trailing slash", "linked", "nbgrader", "nbgrader assignment"])
def test_one_students_folder_given_alone_is_that_student(tmp_path, layout):
    """``pgcourse grade submitted/alice/`` graded each of alice's notebooks as a student named after the file
    (``01_demo``, ``scratch``); given through a symlink the same. A folder that holds a notebook named like a
    chapter, or an nbgrader assignment folder, is one student's: the folder's name (the link's, as given)."""
    submitted = tmp_path / "submitted"
    if layout == "nbgrader" or layout == "nbgrader assignment":
        write_submission(submitted / "alice" / "01_demo" / "01_demo.ipynb")
        (submitted / "alice" / "01_demo" / "timestamp.txt").write_text("2025-03-01 10:00:00.000000 UTC")
        given = submitted / "alice" / ("01_demo" if layout == "nbgrader assignment" else "")
    elif layout == "linked":
        write_submission(tmp_path / "elsewhere" / "01_demo.ipynb")
        write_submission(tmp_path / "elsewhere" / "scratch.ipynb")
        submitted.mkdir()
        (submitted / "alice").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
        given = submitted / "alice"
    else:
        write_submission(submitted / "alice" / "01_demo.ipynb")
        write_submission(submitted / "alice" / "scratch.ipynb")
        given = submitted / "alice"
    argument = str(given) + ("/" if layout == "trailing slash" else "")
    found = grading.collect_submissions([argument], ["01_demo"])
    assert {student for student, _ in found} == {"alice"}, found
    # a class's folder is still a class, one student per folder
    write_submission(tmp_path / "class" / "bob" / "01_demo.ipynb")
    write_submission(tmp_path / "class" / "carol" / "01_demo.ipynb")
    assert sorted(s for s, _ in grading.collect_submissions([tmp_path / "class"], ["01_demo"])) == ["bob", "carol"]


# -- identity: each file one student, or the run stops and says which files (issue 46, item 3) ----------------------
def test_plain_names_that_look_like_canvas_are_each_their_own_student(course, tmp_path):
    """A flat folder of ``hw1_2025_alice.ipynb`` and ``hw1_2025_bob.ipynb`` was one student ``hw1`` (Canvas's
    ``name_userid_rest`` read into them): Bob's work was dropped with one warning line and neither got a row. A
    first field that is an assignment's is no student's name."""
    submitted = tmp_path / "submitted"
    write_submission(submitted / "hw1_2025_alice.ipynb", right=True)
    write_submission(submitted / "hw1_2025_bob.ipynb", right=False)
    report = fake_grade([submitted], course)
    assert report.points() == {"hw1_2025_alice": {"ch01_double": 2}, "hw1_2025_bob": {"ch01_double": 0}}
    assert not any("notebooks handed in" in warning for warning in report.warnings), report.warnings


def test_files_that_would_merge_with_nothing_saying_they_are_one_student_stop_the_run(course, tmp_path):
    """Two files that read as one Canvas-like student and id but carry no Canvas attachment id (which tells a
    student's uploads apart) may be two people: the run stops and lists them instead of dropping one."""
    submitted = tmp_path / "submitted"
    first = write_submission(submitted / "alice_2025_one.ipynb")
    second = write_submission(submitted / "alice_2025_two.ipynb")
    with pytest.raises(grading.GradingError) as info:
        fake_grade([submitted], course)
    message = str(info.value)
    assert str(first) in message and str(second) in message and "Rename them" in message
    # Canvas's own download tells two uploads apart by their attachment ids: the later counts, as before
    canvas = tmp_path / "canvas"
    write_submission(canvas / "jonescarol_12346_789_01_demo.ipynb", right=False)
    write_submission(canvas / "jonescarol_12346_790_01_demo-1.ipynb", right=True)
    report = fake_grade([canvas], course)
    assert report.points() == {"jonescarol": {"ch01_double": 2}}


def test_a_canvas_upload_named_like_moodle_keeps_its_late_flag_and_id(course, tmp_path):
    """Canvas keeps the student's own file name after its ids; one that looks like Moodle's pattern was read as
    Moodle's, losing Canvas's LATE flag and user id."""
    submitted = tmp_path / "submitted"
    write_submission(submitted / "jonescarol_LATE_12346_789_Carol Jones_5_assignsubmission_file_01_demo.ipynb")
    write_submission(submitted / "smithbob_12347_790_01_demo.ipynb")
    report = fake_grade([submitted], course)
    carol = report.student("jonescarol")
    assert carol.identity == {"lms": "canvas", "lms_id": "12346", "late_flag": True}
    assert sorted(report.points()) == ["jonescarol", "smithbob"]


def _padded_with(line: str) -> str:
    """LOOPED with ``line`` (a statement with no effect) after every statement of the function body."""
    out = []
    for source_line in LOOPED.splitlines():
        out.append(source_line)
        stripped = source_line.strip()
        if source_line.startswith("    ") and stripped and not stripped.endswith(":"):
            indent = source_line[:len(source_line) - len(source_line.lstrip())]
            out.append(indent + line)
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("padding", ["_ = 0", "int()", "if 0: _ = 1", "while False: pass", "for _ in (): pass",
                                     "assert True", "x + 1", "unused: int = len('')", "_ += 0", "if x: pass"])
def test_a_copy_padded_with_statements_that_have_no_effect_is_reported(course, tmp_path, padding):
    """Issue 46, item 6: padding a copy with no-op statements other than ``pass`` (``_ = 0``, ``int()``,
    ``if 0: _ = 1``) gave overlaps of 0.13-0.75, under the 0.8 threshold. The normalisation drops every statement
    without effect, so the padded copy has the original's tokens and is reported; the solution-copy hint uses
    the same tokens."""
    from pgcourse.classroom.grading.similarity import normalised_tokens
    padded = _padded_with(padding)
    assert padded.count(padding) >= 4
    assert normalised_tokens(padded) == normalised_tokens(LOOPED)
    pairs = _similar(course, tmp_path, {"carol": LOOPED, "mallory": padded, "erin": OWN_WAYS[0]})
    assert [(p.first, p.second, p.overlap) for p in pairs] == [("carol", "mallory", 1.0)]


@pytest.mark.parametrize("statement", ["print(1)", "total = 0", "assert x", "if x: total = 1", "range = list",
                                       "x.append(1)", "while x: pass", "for _ in x: pass", "_ = open('f')"])
def test_statements_with_an_effect_are_kept(statement):
    """What may change anything (a call that is not a pure builtin, a store into a name the answer reads, a
    condition that is not a constant, a loop over data) stays in the tokens."""
    from pgcourse.classroom.grading.similarity import normalised_tokens
    assert normalised_tokens(_padded_with(statement)) != normalised_tokens(LOOPED)
