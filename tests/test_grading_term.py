"""The parts of a term with pgcourse grade, one item of issue 17 at a time.

Most tests here grade with :class:`FakePool` (an answer is right when its text is), so they run in
milliseconds; the ones about running student code (cells a student added, partial credit) grade
for real, in the sandbox, with one shared pool of workers. The whole term, end to end through the
command line, is tests/test_term.py.
"""
from __future__ import annotations

import csv
import io
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import pgcourse.grading.grader as grader_module
from pgcourse.classroom import exercisegen, grading
from pgcourse.cli import main as cli_main
from pgcourse.classroom.grading import GradingError, LatePolicy
from pgcourse.classroom.grading import sandbox
from pgcourse.classroom.grading.assignment import make_assignment
from pgcourse.classroom.grading.feedback import file_stem, hide_expected_values, html_page, markdown
from pgcourse.classroom.grading.identity import identity_of, parse_time, students_of_files
from pgcourse.classroom.grading.lms import name_keys, read_roster
from pgcourse.classroom.grading.partial import count_cases, partial_points, standard_check
from pgcourse.classroom.grading.similarity import similar_pairs
from pgcourse.classroom.grading.term import export

SANDBOX = sandbox.probe_sandbox()[0] == sandbox.SANDBOX
ISOLATION = "auto" if SANDBOX else sandbox.UNSAFE
LIMITS = grading.Limits(exercise_s=3.0, submission_s=60.0, memory_mb=1024, output_mb=2)


# -- a course of two chapters: 01_demo (double, 2 points; halve, 1 point; a free-text question) and 02_other
def _nbgrader(grade_id, **flags):
    return {"nbgrader": {"grade": False, "solution": False, "locked": True, "grade_id": grade_id,
                         "schema_version": 3, **flags}}


def solution_notebook(prefix="ch01"):
    cells = [new_markdown_cell("# Demo", metadata=_nbgrader(f"{prefix}_intro")),
             new_code_cell("import math"),
             new_code_cell("def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION",
                           metadata=_nbgrader(f"{prefix}_double", solution=True, locked=False)),
             new_code_cell('assert double(3) == 6, f"double(3) should be 6, not {double(3)!r}"\nprint("✓ double")',
                           metadata=_nbgrader(f"{prefix}_double_check", grade=True, points=2)),
             new_code_cell("def halve(x):\n    ### BEGIN SOLUTION\n    return x / 2\n    ### END SOLUTION",
                           metadata=_nbgrader(f"{prefix}_halve", solution=True, locked=False)),
             new_code_cell('assert halve(3) == 1.5\nprint("✓ halve")',
                           metadata=_nbgrader(f"{prefix}_halve_check", grade=True, points=1)),
             new_markdown_cell("### BEGIN SOLUTION\nBecause.\n### END SOLUTION",
                               metadata=_nbgrader(f"{prefix}_why", solution=True, grade=True, points=2, locked=False))]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


EXERCISE = exercisegen.make_exercise_notebook(solution_notebook())


@pytest.fixture(scope="module")
def course_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    (root / "solutions").mkdir()
    (root / "exercises").mkdir()
    for name, prefix in (("01_demo", "ch01"), ("02_other", "ch02")):
        solution = solution_notebook(prefix)
        nbformat.write(solution, root / "solutions" / f"{name}.ipynb")
        nbformat.write(exercisegen.make_exercise_notebook(solution), root / "exercises" / f"{name}.ipynb")
    return root


@pytest.fixture
def course(course_dir):
    return grading.load_course(course_dir)


def write_submission(path: Path, right=("double", "halve"), why="Because.", prefix="ch01", extra=()) -> Path:
    notebook = nbformat.from_dict(json.loads(nbformat.writes(exercisegen.make_exercise_notebook(
        solution_notebook(prefix)))))
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if grade_id == f"{prefix}_double" and "double" in right:
            cell.source = "def double(x):\n    return 2 * x\n"
        if grade_id == f"{prefix}_halve" and "halve" in right:
            cell.source = "def halve(x):\n    return x / 2\n"
        if grade_id == f"{prefix}_why":
            cell.source = why
    for position, source in extra:
        notebook.cells.insert(position, new_code_cell(source))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


class FakePool:
    """Stands in for :class:`grading.Grader`: full points when the answer's text is right, no processes."""

    mode, detail = "fake", "no student process"

    def __init__(self, *args, **kwargs):
        self.graded: list[str] = []

    def grade(self, chapter, tasks, limits, on_result=None):
        results = {}
        for key, answers in tasks:
            self.graded.append(key)
            text = {grade_id: "".join(a for a in sources if isinstance(a, str)) for grade_id, sources in answers.items()}
            exercises = {}
            for e in chapter.auto_exercises:
                right = ("return 2 * x" if "double" in e.id else "return x / 2") in "".join(
                    text.get(g, "") for g in e.answer_ids)
                exercises[e.id] = {"points": e.points if right else 0, "status": "passed" if right else "failed",
                                   "feedback": "ok" if right else f"{e.id}: wrong\n  expected: 6\n  received: 4"}
            results[key] = exercises
            if on_result is not None:
                on_result(key, exercises)
        return results

    def close(self):
        pass


def fake_grade(paths, course, **kwargs):
    kwargs.setdefault("chapter", "01_demo")
    return grading.grade_paths(paths, course=course, limits=LIMITS, grader=FakePool(), progress=False, **kwargs)


@pytest.fixture
def fake_cli(monkeypatch):
    """``pgcourse grade`` with :class:`FakePool` in place of the workers."""
    monkeypatch.setattr(grader_module, "Grader", FakePool)

    def run(*args):
        return cli_main(["grade", *args, "--quiet"])
    return run


# -- 1. points: where they live, the handout disagreeing, an assignment file ------------------------------
def test_points_edited_in_the_handout_are_said_to_be_ignored(course_dir, tmp_path, capsys):
    course = tmp_path / "course"
    for folder in ("solutions", "exercises"):
        (course / folder).mkdir(parents=True)
        (course / folder / "01_demo.ipynb").write_bytes((course_dir / folder / "01_demo.ipynb").read_bytes())
    handout = nbformat.read(course / "exercises" / "01_demo.ipynb", as_version=4)
    for cell in handout.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "ch01_double_check":
            cell.metadata["nbgrader"]["points"] = 5
    nbformat.write(handout, course / "exercises" / "01_demo.ipynb")
    write_submission(tmp_path / "submitted" / "alice.ipynb")
    report = fake_grade([tmp_path / "submitted"], grading.load_course(course))
    assert report.student("alice").exercises["ch01_double"].max_points == 2
    [warning] = [w for w in report.warnings if "ch01_double" in w]
    assert "gives ch01_double 5 point(s)" in warning and "the grader uses" in warning and "--assignment" in warning
    assert "warning:" in report.summary() and "5 point(s)" in report.summary()


def test_an_assignment_file_sets_points_name_and_policy(course, tmp_path):
    (tmp_path / "hw1.toml").write_text('name = "HW1"\nchapter = "1"\ndeadline = "2025-03-07T23:59:00Z"\n'
                                       'late_penalty = "1pt/day"\n[points]\nch01_double = 4\nch01_why = 0\n')
    assignment = make_assignment(tmp_path / "hw1.toml")
    write_submission(tmp_path / "submitted" / "alice.ipynb")
    report = fake_grade([tmp_path / "submitted"], course, chapter=None, assignment=assignment)
    assert report.name == "HW1" and report.chapter.max_points == 4 + 1 + 0
    assert report.student("alice").exercises["ch01_double"].points == 4
    assignment = make_assignment(tmp_path / "hw1.toml", late_penalty="50%", name="other")  # options win
    assert assignment.name == "other" and assignment.policy.text == "50%"


@pytest.mark.parametrize("text, message", [
    ('colour = "red"\n', "unknown setting 'colour'; expected one of name, chapter"),
    ('[points]\nch01_nope = 1\n', "ch01_nope is not an exercise of 01_demo; its exercises are ch01_double"),
    ('[points]\nch01_double = -1\n', "points for ch01_double must be a number ≥ 0"),
    ('deadline = "next friday"\n', "--deadline: 'next friday' is not a time; expected e.g. 2025-03-14T23:59"),
    ('deadline = "2025-03-07"\nlate_penalty = "lots"\n', "--late-penalty 'lots': expected e.g. 10%/day"),
    ('late_penalty = "10%/day"\n', "--late-penalty and --grace need a --deadline"),
    ('partial_credit = "yes"\n', "partial_credit must be a bool, got 'yes'"),
    ('name = \n', "not valid TOML"),
])
def test_a_bad_assignment_file_is_one_clear_line(course, tmp_path, text, message):
    (tmp_path / "a.toml").write_text(text)
    with pytest.raises(GradingError) as error:
        make_assignment(tmp_path / "a.toml").apply(course.chapter("01_demo"))
    assert message in str(error.value) and "\n" not in str(error.value)


# -- 2. a wrong --chapter fails the run; one wrong notebook is said loudly ---------------------------------
def test_a_wrong_chapter_fails_the_run_and_writes_nothing(course_dir, tmp_path, fake_cli, capsys):
    for student in ("alice", "bob", "carol"):
        write_submission(tmp_path / "submitted" / f"{student}.ipynb")
    out = tmp_path / "grades.csv"
    code = fake_cli(str(tmp_path / "submitted"), "--chapter", "02", "--course", str(course_dir), "--out", str(out))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--chapter 02_other: 3 of 3 submissions hold none of its answer cells (they look like 01_demo)" in err
    assert not out.exists()


def test_one_wrong_notebook_is_a_loud_warning_and_a_note(course, tmp_path):
    for student in ("alice", "bob", "carol"):
        write_submission(tmp_path / "submitted" / f"{student}.ipynb")
    write_submission(tmp_path / "submitted" / "dave.ipynb", prefix="ch02")
    report = fake_grade([tmp_path / "submitted"], course)
    assert report.student("dave").total == 0
    assert any("student 'dave'" in w and "holds none of the answer cells of 01_demo (it looks like 02_other)" in w
               for w in report.warnings)
    assert "is it the right notebook?" in " ".join(report.student("dave").notes)


# -- 4. re-submissions and deadlines ---------------------------------------------------------------------
def test_late_policy_arithmetic():
    deadline = "2025-03-07T23:59:00+00:00"
    policy = LatePolicy.parse(deadline, "10%/day", "15m")
    at = lambda text: parse_time(text, "test")  # noqa: E731
    assert policy.lateness(at("2025-03-08T00:10:00+00:00")) == 0  # inside the grace period
    late = policy.lateness(at("2025-03-09T12:00:00+00:00"))
    assert policy.penalty(late, 6) == (1.2, 2)   # two started days, 10% of 6 each
    assert policy.penalty(policy.lateness(at("2025-04-30T00:00:00+00:00")), 6) == (6, 53)  # never more than all
    hourly = LatePolicy.parse(deadline, "1pt/hour", None)
    assert hourly.penalty(hourly.lateness(at("2025-03-08T02:30:00+00:00")), 10) == (3, 3)
    flat = LatePolicy.parse(deadline, "100%", None)
    assert flat.penalty(60.0, 7) == (7, 1)
    assert at("2025-03-14 23:58:00.123456 UTC") == datetime(2025, 3, 14, 23, 58, 0, 123456, tzinfo=timezone.utc)
    assert at("Friday, 14 March 2025, 11:58 PM").minute == 58


def test_latest_submission_wins_by_the_most_trusted_time(course, tmp_path):
    # nbgrader's timestamp.txt beats the file times: the older file by mtime is the later hand-in
    first = write_submission(tmp_path / "submitted" / "alice" / "try1" / "01_demo.ipynb", right=("double",))
    second = write_submission(tmp_path / "submitted" / "alice" / "try2" / "01_demo.ipynb")
    (first.parent / "timestamp.txt").write_text("2025-03-07 10:00:00.000000 UTC")
    (second.parent / "timestamp.txt").write_text("2025-03-07 12:00:00.000000 UTC")
    os.utime(first, (1_900_000_000, 1_900_000_000))
    report = fake_grade([tmp_path / "submitted"], course)
    alice = report.student("alice")
    assert alice.file == str(second) and alice.total == 3
    assert alice.submitted_at == "2025-03-07T12:00:00+00:00" and alice.time_source == "nbgrader timestamp.txt"
    assert "the latest by its submission time, from nbgrader timestamp.txt" in " ".join(alice.notes)


def test_canvas_late_flag_without_times_is_charged_once_and_said(course, tmp_path):
    write_submission(tmp_path / "dl" / "smithalice_LATE_12347_902_01_demo.ipynb")
    write_submission(tmp_path / "dl" / "jonescarol_12346_901_01_demo.ipynb")
    assignment = make_assignment(deadline="2025-03-07T23:59:00+00:00", late_penalty="10%/day")
    report = fake_grade([tmp_path / "dl"], course, assignment=assignment)
    alice, carol = report.student("smithalice"), report.student("jonescarol")
    assert (alice.penalty, carol.penalty) == (0.5, 0)  # 10% of 5
    assert "Canvas marked this submission LATE but gives no time" in " ".join(alice.notes)
    assert alice.identity == {"lms": "canvas", "lms_id": "12347", "late_flag": True}


def test_regrading_one_student_keeps_the_others_the_history_and_an_audit_line(course_dir, tmp_path, fake_cli):
    submitted = tmp_path / "submitted"
    write_submission(submitted / "alice.ipynb")
    write_submission(submitted / "bob.ipynb", right=())
    out = tmp_path / "grades" / "01.csv"
    common = ["--course", str(course_dir), "--out", str(out)]
    assert fake_cli(str(submitted), *common) == 0
    first = out.read_text()
    write_submission(submitted / "bob.ipynb", right=("double",))       # bob hands in again
    write_submission(submitted / "alice.ipynb", right=())              # (alice's file changed too: not re-graded)
    assert fake_cli(str(submitted), "--student", "bob", "--update", *common) == 0
    rows = {row[0]: row[1:] for row in csv.reader(io.StringIO(out.read_text()))}
    assert rows["alice"] == ["2", "1", "0", "3"] and rows["bob"] == ["2", "0", "0", "2"]
    [kept] = sorted((tmp_path / "grades" / "01.history").glob("*-01.csv"))
    assert kept.read_text() == first
    audit = [json.loads(line) for line in (tmp_path / "grades" / "01.audit.jsonl").read_text().splitlines()]
    assert [entry["action"] for entry in audit] == ["grade", "update"] and audit[1]["graded"] == ["bob"]
    assert audit[1]["course"]["course_notebook"].startswith("01_demo.ipynb sha256:") and audit[1]["time"]
    # without --update or --overwrite the gradebook is never replaced
    assert fake_cli(str(submitted), *common) == 2 and out.read_text() != first
    with pytest.raises(GradingError, match="--student zoe: not among the submissions given"):
        grading.grade_paths([submitted], course=course_dir, students=["zoe"], grader=FakePool(), progress=False)


# -- 5. LMS names, layouts and exports -----------------------------------------------------------------
@pytest.mark.parametrize("entry, student, lms, lms_id, late", [
    ("jonescarol_12346_789_02_reinforce.ipynb", "jonescarol", "canvas", "12346", False),
    ("jonescarol_LATE_12346_789_02_reinforce.ipynb", "jonescarol", "canvas", "12346", True),
    ("jonescarol_12346_02_reinforce-1.ipynb", "jonescarol", "canvas", "12346", False),
    ("Alice Smith_123456_assignsubmission_file_02_reinforce.ipynb", "Alice Smith", "moodle", "123456", False),
    ("Alice Smith_123456_assignsubmission_file_", "Alice Smith", "moodle", "123456", False),
    ("bob_01_reinforce.ipynb", "bob_01_reinforce", "", "", False),    # not a Canvas id: too short
    ("alice.ipynb", "alice", "", "", False),
])
def test_student_ids_from_lms_download_names(entry, student, lms, lms_id, late):
    identity = identity_of(entry)
    assert (identity.student, identity.lms, identity.lms_id, identity.late_flag) == (student, lms, lms_id, late)


def test_files_given_one_by_one_never_make_the_assignment_the_student(tmp_path):
    paths = []
    for student in ("alice", "bob"):
        folder = tmp_path / "submitted" / student / "ch02"
        folder.mkdir(parents=True)
        (folder / "timestamp.txt").write_text("2025-03-07 10:00:00 UTC")
        paths.append(folder / "02_other.ipynb")
        paths[-1].write_text("{}")
    assert [i.student for i in students_of_files(paths, {"02_other"})] == ["alice", "bob"]
    assert [i.student for i in students_of_files(paths[:1], {"02_other"})] == ["alice"]  # one file: skip ch02
    assert [s for s, _ in grading.collect_submissions(paths, ["02_other"])] == ["alice", "bob"]
    flat = [tmp_path / "x" / name for name in ("alice.ipynb", "bob.ipynb")]
    assert [i.student for i in students_of_files(flat, {"02_other"})] == ["alice", "bob"]


def test_a_moodle_download_is_graded_by_student_name(course, tmp_path):
    write_submission(tmp_path / "dl" / "Alice Smith_123456_assignsubmission_file_" / "01_demo.ipynb")
    write_submission(tmp_path / "dl" / "Bob Lee_123457_assignsubmission_file_mywork.ipynb", right=())
    report = fake_grade([tmp_path / "dl"], course)
    assert report.points() == {"Alice Smith": {"ch01_double": 2, "ch01_halve": 1, "ch01_why": 0},
                               "Bob Lee": {"ch01_double": 0, "ch01_halve": 0, "ch01_why": 0}}
    assert report.student("Bob Lee").identity == {"lms": "moodle", "lms_id": "123457", "name": "Bob Lee"}


TERM = {"format": "pgcourse-term/1",
        "assignments": [{"name": "HW1", "chapter": "01_demo", "max_points": 5, "gradebook": "g.json"}],
        "students": [{"student": "jonescarol", "identity": {"lms": "canvas", "lms_id": "12346"}, "scores": {"HW1": 5}},
                     {"student": "Alice Smith", "identity": {"lms": "moodle", "lms_id": "1", "name": "Alice Smith"},
                      "scores": {"HW1": 2.5}}]}


def test_exports_say_which_students_cannot_be_matched(tmp_path):
    with pytest.raises(GradingError, match=r"Canvas needs each student's Canvas ID or SIS id, and 1 student\(s\) "
                                           r"have none \(Alice Smith\): give --roster"):
        export(TERM, "canvas", None)
    with pytest.raises(GradingError, match="Moodle finds a student by email or ID number"):
        export(TERM, "moodle", None)
    (tmp_path / "r.csv").write_text("Student,ID,SIS User ID,SIS Login ID,Section\n    Points Possible,,,,\n"
                                    "\"Smith, Alice\",777,S9,asmith,A\n\"Jones, Carol\",12346,S1,cjones,B\n")
    text, warnings = export(TERM, "canvas", read_roster(tmp_path / "r.csv"))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "HW1"],
                    ["Points Possible", "", "", "", "", "5"],
                    ["Jones, Carol", "12346", "S1", "cjones", "B", "5"],
                    ["Smith, Alice", "777", "S9", "asmith", "A", "2.5"]]
    assert warnings == []
    assert "jonescarol" in name_keys("Jones, Carol") and "alicesmith" in name_keys("Smith, Alice")


def test_export_refuses_to_overwrite_and_bad_input_is_one_line(tmp_path, fake_cli, capsys):
    (tmp_path / "term.json").write_text(json.dumps({**TERM, "students": TERM["students"][:1]}))
    (tmp_path / "term.csv").write_text("")
    (tmp_path / "canvas.csv").write_text("precious")
    assert fake_cli("--export", "canvas", "--gradebook", str(tmp_path / "term.csv"), "--out",
                    str(tmp_path / "canvas.csv")) == 2
    assert "already exists" in capsys.readouterr().err and (tmp_path / "canvas.csv").read_text() == "precious"
    assert fake_cli("--export", "canvas", "--out", str(tmp_path / "c.csv")) == 2
    assert "--export canvas needs --gradebook" in capsys.readouterr().err
    (tmp_path / "other.json").write_text("{}")
    (tmp_path / "other.csv").write_text("")
    assert fake_cli("--export", "moodle", "--gradebook", str(tmp_path / "other.csv"), "--out", "x.csv") == 2
    assert "is not a term gradebook written by pgcourse grade" in capsys.readouterr().err



# issue 30: with a deadline the gradebook once wrote total before late_penalty under a header that lists them the
# other way. Every CSV the grader writes (the assignment's gradebook, its free-text and similarity files, the term
# gradebook, the Canvas and Moodle imports), for each combination of options: each row has as many fields as its
# header, and each value sits under its own column (compared with the numbers the grader computed, its JSON).
DEADLINE = "2025-03-07T23:59:00+00:00"
LATE_OPTIONS = {"no deadline": [], "deadline, no penalty": ["--deadline", DEADLINE],
                "deadline and penalty": ["--deadline", DEADLINE, "--late-penalty", "10%/day"]}
COLUMNS_ROSTERS = {"canvas": "Student,ID,SIS User ID,SIS Login ID,Section\n"
                             '"Jones, Carol",12346,S1,cjones,A\n"Smith, Alice",12347,S2,asmith,A\n'
                             '"Lee, Bob",12348,S3,blee,B\n',
                   "moodle": "First name,Last name,ID number,Email address\nCarol,Jones,S1,carol@uni.example\n"
                             "Alice,Smith,S2,alice@uni.example\nBob,Lee,S3,bob@uni.example\n"}


def _csv_rows(path: Path, header: list[str]) -> list[dict[str, str]]:
    """The rows of ``path`` under its header (which must be ``header``), each checked to have as many fields."""
    text = path.read_text(encoding="utf-8")
    raw = list(csv.reader(io.StringIO(text, newline="")))
    assert raw[0] == header, f"{path.name}: header {raw[0]}"
    for number, row in enumerate(raw[1:], start=2):
        assert len(row) == len(header), f"{path.name} line {number}: {len(row)} fields under {len(header)} columns"
    return list(csv.DictReader(io.StringIO(text, newline="")))


@pytest.mark.parametrize("manual", [False, True], ids=["grader's points", "teacher's points"])
@pytest.mark.parametrize("late", list(LATE_OPTIONS))
def test_every_csv_the_grader_writes_puts_each_value_under_its_own_column(course_dir, tmp_path, fake_cli, late,
                                                                          manual):
    dl = tmp_path / "dl"
    write_submission(dl / "jonescarol_12346_901_01_demo.ipynb", why="Its expectation is zero.")
    write_submission(dl / "smithalice_12347_902_01_demo.ipynb", why="=a formula-like answer")
    write_submission(dl / "leebob_12348_903_01_demo.ipynb", right=("double",))
    for name, source in (("jonescarol_12346_901", LONG), ("smithalice_12347_902", LONG_RENAMED)):  # a similar pair
        path = dl / f"{name}_01_demo.ipynb"
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == "ch01_double":
                cell.source = source + "# (FakePool: return 2 * x)\n"
        nbformat.write(notebook, path)
    (tmp_path / "times.csv").write_text("student,submitted_at\n12346,2025-03-07T20:00:00+00:00\n"
                                        "12347,2025-03-09T11:00:00+00:00\n12348,2025-03-08T03:00:00+00:00\n")
    for lms, roster in COLUMNS_ROSTERS.items():
        (tmp_path / f"{lms}-roster.csv").write_text(roster)
    out, term_csv = tmp_path / "grades" / "hw1.csv", tmp_path / "term.csv"
    common = ["--course", str(course_dir), "--gradebook", str(term_csv), "--out", str(out)]
    assert fake_cli(str(dl), "--chapter", "01", "--name", "HW1", "--timestamps", str(tmp_path / "times.csv"),
                    "--similarity", *LATE_OPTIONS[late], *common) == 0
    if manual:  # the free-text grades, and an override of the grader's points, merged back
        (tmp_path / "manual.csv").write_text("student,exercise,points,comment\njonescarol,ch01_why,2,\n"
                                             "smithalice,ch01_why,1.5,see the notes\nleebob,ch01_halve,0.5,close\n")
        assert fake_cli("--update", "--manual", str(tmp_path / "manual.csv"), *common) == 0
    for lms in COLUMNS_ROSTERS:
        assert fake_cli("--export", lms, "--gradebook", str(term_csv), "--roster", str(tmp_path / f"{lms}-roster.csv"),
                        "--out", str(tmp_path / f"{lms}-import.csv")) == 0

    # the assignment's gradebook: one column per exercise, late_penalty with a deadline, total
    data = json.loads(out.with_suffix(".json").read_text())
    computed = {s["student"]: s for s in data["students"]}
    exercises = [e["id"] for e in data["exercises"]]
    has_deadline = late != "no deadline"
    rows = _csv_rows(out, ["student", *exercises, *(["late_penalty"] if has_deadline else []), "total"])
    assert sorted(row["student"] for row in rows) == sorted(computed) == ["jonescarol", "leebob", "smithalice"]
    for row in rows:
        student = computed[row["student"]]
        for exercise in exercises:
            assert float(row[exercise]) == student["exercises"][exercise]["points"], (row["student"], exercise)
        if has_deadline:
            assert float(row["late_penalty"]) == student.get("penalty", 0), (
                f"{row['student']}: the late_penalty column holds {row['late_penalty']}, the grader's penalty is "
                f"{student.get('penalty', 0)} (total {student['total']}): {row}")
        assert float(row["total"]) == student["total"], (
            f"{row['student']}: the total column holds {row['total']}, the grader's total is {student['total']}: {row}")
    penalties = [student.get("penalty", 0) for student in computed.values()]
    assert (max(penalties) > 0) == (late == "deadline and penalty")  # Alice and Bob are late: charged with a penalty
    assert all(student["total"] > 0 for student in computed.values())  # a total never looks like a zero penalty
    teacher = {(name, k) for name, s in computed.items() for k, e in s["exercises"].items() if "teacher_points" in e}
    assert teacher == ({("jonescarol", "ch01_why"), ("smithalice", "ch01_why"), ("leebob", "ch01_halve")}
                       if manual else set())

    # the free-text answers to grade (rewritten after the teacher's points were merged)
    rows = _csv_rows(out.with_name("hw1.free-text.csv"), ["student", "exercise", "points", "comment", "max_points",
                                                          "answer"])
    assert [(row["student"], row["exercise"]) for row in rows] == [(name, "ch01_why") for name in sorted(computed)]
    for row in rows:
        result = computed[row["student"]]["exercises"]["ch01_why"]
        assert row["points"] == (f"{result['teacher_points']:g}" if "teacher_points" in result else ""), row
        assert row["comment"] == result.get("comment", "") and float(row["max_points"]) == result["max_points"]
        assert row["answer"].lstrip("'") == result.get("answer", ""), row

    # the similarity hints: Carol's and Alice's double, its numbers where the numbers go
    [row] = _csv_rows(out.with_name("hw1.similarity.csv"),
                      ["exercise", "student", "other_student", "overlap", "shared_fingerprints"])
    assert (row["exercise"], row["student"], row["other_student"]) == ("ch01_double", "jonescarol", "smithalice")
    assert 0 < float(row["overlap"]) <= 1 and int(row["shared_fingerprints"]) > 0, row

    # the term gradebook: the assignment's totals, and their sum
    term = json.loads(term_csv.with_suffix(".json").read_text())
    scores = {s["student"]: s["scores"] for s in term["students"]}
    assert scores == {name: {"HW1": student["total"]} for name, student in computed.items()}
    for row in _csv_rows(term_csv, ["student", "HW1", "total"]):
        assert float(row["HW1"]) == float(row["total"]) == scores[row["student"]]["HW1"], row

    # the LMS imports: each student's score under the assignment, found by the roster's ids
    by_canvas_id = {"12346": "jonescarol", "12347": "smithalice", "12348": "leebob"}
    rows = _csv_rows(tmp_path / "canvas-import.csv", ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "HW1"])
    assert rows[0] == {"Student": "Points Possible", "ID": "", "SIS User ID": "", "SIS Login ID": "", "Section": "",
                       "HW1": f"{data['max_total']:g}"}
    assert sorted(row["ID"] for row in rows[1:]) == sorted(by_canvas_id)
    for row in rows[1:]:
        assert float(row["HW1"]) == computed[by_canvas_id[row["ID"]]]["total"], row
        assert row["SIS User ID"].startswith("S") and row["Section"] in ("A", "B"), row
    by_email = {"carol@uni.example": "jonescarol", "alice@uni.example": "smithalice", "bob@uni.example": "leebob"}
    rows = _csv_rows(tmp_path / "moodle-import.csv", ["Email address", "ID number", "Full name", "HW1"])
    assert sorted(row["Email address"] for row in rows) == sorted(by_email)
    for row in rows:
        assert float(row["HW1"]) == computed[by_email[row["Email address"]]]["total"], row
        assert row["ID number"].startswith("S") and row["Full name"].split()[0] in ("Carol", "Alice", "Bob"), row

# -- 6. feedback files -----------------------------------------------------------------------------------
def test_feedback_files_escape_what_students_wrote_and_can_hide_expected_values(course, tmp_path):
    name = "<img src=x onerror=alert(1)>"
    write_submission(tmp_path / "submitted" / f"{name}.ipynb", right=("halve",))
    report = fake_grade([tmp_path / "submitted"], course)
    row = report.student(name)
    page = html_page(report, row, hide_expected=True)
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "expected: (hidden)" in page and "received: 4" in page
    text = markdown(report, row)
    assert "expected: 6" in text and "## double: 0 / 2 — the check failed" in text and "What to do:" in text
    stem = file_stem(name)
    assert "/" not in stem and "<" not in stem and stem != file_stem("_img src=x onerror=alert_1__")
    message = ("normalize: wrong result in 2 of 7 cases.\nSmallest failing case: x\n  expected: [0, 0]\n"
               "  received: [nan, nan]\n  2 of 2 entries differ, first at [0]: expected 0, received nan")
    hidden = hide_expected_values(message)
    assert "expected: (hidden)" in hidden and "expected (hidden), received nan" in hidden and "[0, 0]" not in hidden


# -- 7. partial credit, the teacher's points, free-text answers ----------------------------------------------
def test_partial_credit_rule_on_the_real_check():
    import pgcourse.returns as returns

    right, total, informative = count_cases("normalize", returns.normalize)
    assert right == total > informative > 0
    zeros = count_cases("normalize", lambda x: torch.zeros_like(x))   # a do-nothing answer: nothing
    assert zeros[0] > 0 and zeros[2] == 0 and partial_points(2, *zeros) == 0
    assert count_cases("normalize", lambda x: x.clone())[2] == 0
    no_eps = count_cases("normalize", lambda x: (x - x.mean()) / x.std(unbiased=False))
    assert 0 < no_eps[0] < no_eps[1] and no_eps[2] > 0 and 0 < partial_points(2, *no_eps) < 2
    assert partial_points(2, 5, 7, 1) == 1.25 and partial_points(1, 6, 7, 3) == 0.75 and partial_points(2, 6, 7, 0) == 0
    assert partial_points(2, 99, 100, 50) == 1.75  # never the full points for a failing check
    assert standard_check("# a comment\npg.checks.check_normalize(normalize)") == ("normalize", "normalize")
    assert standard_check("pg.checks.check_normalize(normalize)\nprint(1)") is None
    assert standard_check("check_play_episode(play_episode)") is None  # not a case-by-case check


def test_manual_points_override_and_free_text_grades(course, tmp_path):
    write_submission(tmp_path / "submitted" / "alice.ipynb", right=("halve",), why="Because it is unbiased.")
    write_submission(tmp_path / "submitted" / "bob.ipynb", why="YOUR ANSWER HERE")
    (tmp_path / "manual.csv").write_text("student,exercise,points,comment\nalice,ch01_double,1.5,close\n"
                                         "alice,ch01_why,2,\nbob,ch01_halve,,see me\n")
    report = fake_grade([tmp_path / "submitted"], course, manual=tmp_path / "manual.csv")
    alice, bob = report.student("alice"), report.student("bob")
    assert alice.exercises["ch01_double"].points == 1.5 and alice.exercises["ch01_double"].graded_points == 0
    assert alice.exercises["ch01_why"].status == "reviewed" and alice.total == 4.5
    assert bob.exercises["ch01_why"].status == "missing" and bob.exercises["ch01_halve"].comment == "see me"
    assert "0 *" not in report.summary() and "1.5 *" in report.summary()
    (tmp_path / "undo.csv").write_text("student,exercise,points\nalice,ch01_double,auto\n")
    report = fake_grade([tmp_path / "submitted"], course, manual=tmp_path / "undo.csv")
    assert report.student("alice").exercises["ch01_double"].points == 0


@pytest.mark.parametrize("text, message", [
    ("who,what\n", "no student, exercise, points column"),
    ("student,exercise,points\nalice,ch01_double,two\n", "line 2: points 'two' is not a number"),
    ("student,exercise,points\nzoe,ch01_double,1\n", "line 2: no student 'zoe' in the gradebook of 01_demo"),
    ("student,exercise,points\nalice,ch01_nope,1\n", "'ch01_nope' is not an exercise of 01_demo; expected one of"),
    ("student,exercise,points\nalice,ch01_double,3\n", "3 points for ch01_double, which is worth 2; give at most 2"),
    ("student,exercise,points\nalice,ch01_double,-1\n", "points must be ≥ 0"),
])
def test_a_bad_manual_file_is_one_clear_line_before_any_grading(course, tmp_path, text, message):
    write_submission(tmp_path / "submitted" / "alice.ipynb")
    (tmp_path / "manual.csv").write_text(text)
    pool = FakePool()
    with pytest.raises(GradingError) as error:
        grading.grade_paths([tmp_path / "submitted"], course=course, manual=tmp_path / "manual.csv", grader=pool,
                            progress=False)
    assert message in str(error.value) and "\n" not in str(error.value)
    if "line" in message and "not a number" in message:
        assert pool.graded == []  # the file was checked before grading


def test_a_manual_file_with_several_bad_rows_names_them_all_at_once(course, tmp_path):
    """Issue 48: `grade --update --manual` reported one bad row per run, so a teacher fixed them one run at a time."""
    write_submission(tmp_path / "submitted" / "alice.ipynb")
    (tmp_path / "bad.csv").write_text("student,exercise,points\nalice,ch01_double,two\nalice,ch01_double,-1\n"
                                      "alice,ch01_double,1\n")
    with pytest.raises(GradingError) as error:
        grading.grade_paths([tmp_path / "submitted"], course=course, manual=tmp_path / "bad.csv", grader=FakePool(),
                            progress=False)
    assert "2 rows to fix, nothing applied" in str(error.value)
    assert "line 2: points 'two' is not a number" in str(error.value) and "line 3: points must be ≥ 0" in str(error.value)
    (tmp_path / "unknown.csv").write_text("student,exercise,points\nzoe,ch01_double,1\nalice,ch01_nope,1\n"
                                          "alice,ch01_double,3\n")
    with pytest.raises(GradingError) as error:
        grading.grade_paths([tmp_path / "submitted"], course=course, manual=tmp_path / "unknown.csv",
                            grader=FakePool(), progress=False)
    message = str(error.value)
    assert "3 rows to fix" in message and "line 2: no student 'zoe'" in message and "line 3: 'ch01_nope'" in message \
        and "line 4: 3 points for ch01_double" in message, message


# -- 8. similarity hints ---------------------------------------------------------------------------------
LONG = '''def double(x):
    result = 0
    for step in range(2):
        result = result + x
    if result != result:
        raise ValueError("not a number")
    return result
'''
LONG_RENAMED = '''def double(value):
    # doubling by adding twice
    acc = 0
    for i in range(2):
        acc = acc + value

    if acc != acc:
        raise ValueError('nan')
    return acc
'''


def test_similarity_finds_a_renamed_copy_not_a_common_answer(course, tmp_path):
    chapter = course.chapter("01_demo")
    notebooks = {"carol": LONG, "erin": LONG_RENAMED, "alice": "def double(x):\n    return 2 * x\n",
                 "bob": "def double(x):\n    return x * 2\n", "dave": "def double(x):\n    return 2 * x  # easy\n",
                 "frank": "def double(x):\n    return x + x\n"}
    submissions = []
    for student, source in notebooks.items():
        path = write_submission(tmp_path / f"{student}.ipynb")
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == "ch01_double":
                cell.source = source
        nbformat.write(notebook, path)
        submissions.append(grading.read_submission(path, student))
    pairs = similar_pairs(chapter, submissions)
    assert [(p.exercise, p.first, p.second) for p in pairs] == [("ch01_double", "carol", "erin")]
    assert pairs[0].overlap == 1.0


# -- 9. small: option names in errors ------------------------------------------------------------------------
@pytest.mark.parametrize("option, value", [("--timeout", "-1"), ("--submission-timeout", "0"), ("--memory", "-5")])
def test_a_bad_limit_names_its_option(option, value, tmp_path, capsys):
    assert cli_main(["grade", str(tmp_path), "--out", str(tmp_path / "g.csv"), option, value]) == 2
    err = capsys.readouterr().err
    assert f"{option} must be a positive number" in err and "exercise_s" not in err and "memory_mb" not in err


# -- 3. cells a student added, and partial credit, graded for real -------------------------------------------
@pytest.fixture(scope="module")
def pool():
    with grading.Grader(jobs=1, isolation=ISOLATION) as shared:
        yield shared


def test_cells_a_student_added_run_as_in_their_notebook(course_dir, tmp_path, pool):
    submitted = tmp_path / "submitted"
    # helper and import in new cells; a new cell that raises; a new cell that hangs; one after the last check
    write_submission(submitted / "helper.ipynb", right=(), extra=[(2, "import operator"),
                                                                   (3, "def twice(x):\n    return operator.mul(2, x)"),
                                                                   (6, "1 / 0")])  # before halve's answer
    notebook = nbformat.read(submitted / "helper.ipynb", as_version=4)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id == "ch01_double":
            cell.source = "def double(x):\n    return twice(x)\n"
    nbformat.write(notebook, submitted / "helper.ipynb")
    write_submission(submitted / "hangs.ipynb", extra=[(2, "while True:\n    pass")])
    late = write_submission(submitted / "after.ipynb", right=("double",))
    notebook = nbformat.read(late, as_version=4)
    notebook.cells.append(new_code_cell("def halve(x):\n    return x / 2"))
    nbformat.write(notebook, late)
    report = grading.grade_paths([submitted], course=course_dir, chapter="01", limits=LIMITS, grader=pool,
                                 progress=False, assignment=make_assignment(partial_credit=True))
    helper = report.student("helper").exercises
    assert helper["ch01_double"].status == "passed"
    assert helper["ch01_halve"].status == "failed" and "raised ZeroDivisionError" in helper["ch01_halve"].feedback
    hangs = report.student("hangs").exercises
    assert hangs["ch01_double"].status == "passed" and hangs["ch01_halve"].status == "passed"
    after = report.student("after").exercises["ch01_halve"]
    assert after.status == "failed" and "move it into the answer cell of ch01_halve" in after.feedback
    assert report.student("hangs").total == 3  # (its why answer is free text: no points until the teacher's)


# -- what a teacher's files and a class's folder must never do to each other ------------------------------
def test_a_link_planted_where_feedback_goes_is_never_followed(course, tmp_path):
    from pgcourse.classroom.grading.feedback import write_feedback

    write_submission(tmp_path / "submitted" / "alice.ipynb")
    report = fake_grade([tmp_path / "submitted"], course)
    secret = tmp_path / "secret.txt"
    secret.write_text("the teacher's token")
    folder = tmp_path / "feedback"
    folder.mkdir()
    (folder / "alice.md").symlink_to(secret)
    with pytest.raises(GradingError, match="is a symbolic link; expected a file name"):
        write_feedback(report, folder, stamp="20250101T000000Z")
    assert secret.read_text() == "the teacher's token" and not (folder / "alice.history").exists()


def test_the_term_gradebook_cannot_be_the_assignment_gradebook(course_dir, tmp_path, fake_cli, capsys):
    write_submission(tmp_path / "submitted" / "alice.ipynb")
    out = str(tmp_path / "grades.csv")
    assert fake_cli(str(tmp_path / "submitted"), "--course", str(course_dir), "--out", out, "--gradebook", out) == 2
    assert "are the same files" in capsys.readouterr().err and not Path(out).exists()


def test_the_teachers_points_survive_a_regrade(course_dir, tmp_path, fake_cli):
    submitted = tmp_path / "submitted"
    write_submission(submitted / "alice.ipynb", right=("halve",), why="Because it is unbiased.")
    out = tmp_path / "grades.csv"
    common = ["--course", str(course_dir), "--out", str(out)]
    assert fake_cli(str(submitted), *common) == 0
    (tmp_path / "m.csv").write_text("student,exercise,points,comment\nalice,ch01_why,2,good\n")
    assert fake_cli("--update", "--manual", str(tmp_path / "m.csv"), *common) == 0
    write_submission(submitted / "alice.ipynb", why="Because it is unbiased.")  # she re-submits: double fixed
    assert fake_cli(str(submitted), "--student", "alice", "--update", *common) == 0
    alice = json.loads(out.with_suffix(".json").read_text())["students"][0]
    assert alice["total"] == 5 and alice["exercises"]["ch01_why"]["comment"] == "good"
    assert "your teacher's points for ch01_why (2) were kept" in " ".join(alice["notes"])
    assert len(list((tmp_path / "grades.history").glob("*-grades.json"))) == 2


# -- issue 30: a teacher's term without surprises (findings 1, 2, 5 and 6) --------------------------------------------
# The class of 01_demo (5 points: double 2, halve 1, the free-text why 2) is collected from Canvas and graded with a
# deadline; the teacher then changes what a term changes: the LMS's times, the late policy, one student's deadline.
D0 = datetime(2025, 3, 7, 23, 59, tzinfo=timezone.utc)


def _at(hours: float) -> str:
    """A time ``hours`` after the deadline D0, as the LMS writes it."""
    from datetime import timedelta

    return (D0 + timedelta(hours=hours)).isoformat()


def _students(out: Path) -> dict[str, dict]:
    return {s["student"]: s for s in json.loads(out.with_suffix(".json").read_text())["students"]}


def _canvas_class(folder: Path, late_flag=("smithalice",)) -> None:
    for name, number in (("jonescarol", 12346), ("smithalice", 12347), ("leebob", 12348)):
        flag = "_LATE" if name in late_flag else ""
        write_submission(folder / f"{name}{flag}_{number}_90{number % 10}_01_demo.ipynb")


def test_an_update_with_the_lms_times_applies_them_and_never_drops_a_penalty_silently(course_dir, tmp_path, fake_cli,
                                                                                     capsys):
    # finding 1: Alice's Canvas file is flagged LATE: charged one day. The teacher then gives Canvas's times (she was
    # 34 h late: two started days) with --update: her penalty must become two days, and say why, everywhere.
    _canvas_class(tmp_path / "dl")
    out, term = tmp_path / "grades" / "hw1.csv", tmp_path / "term.csv"
    common = ["--course", str(course_dir), "--out", str(out), "--gradebook", str(term), "--feedback",
              str(tmp_path / "feedback")]
    assert fake_cli(str(tmp_path / "dl"), "--chapter", "01", "--name", "HW1", "--deadline", D0.isoformat(),
                    "--late-penalty", "10%/day", *common) == 0
    alice = _students(out)["smithalice"]
    assert (alice["penalty"], alice["late_units"], alice["total"]) == (0.5, 1, 2.5)
    capsys.readouterr()

    (tmp_path / "times.csv").write_text(f"student,submitted_at\n12346,{_at(-5)}\n12347,{_at(34)}\n12348,{_at(-1)}\n")
    assert fake_cli("--update", "--timestamps", str(tmp_path / "times.csv"), *common) == 0
    printed = capsys.readouterr().out
    alice = _students(out)["smithalice"]
    assert (alice.get("penalty", 0), alice.get("late_units", 0), alice["total"]) == (1, 2, 2), alice
    assert (alice["time_source"], alice["submitted_at"]) == ("--timestamps", "2025-03-09T09:59:00+00:00"), alice
    assert any("handed in 34.0 h after the deadline (--timestamps): 1 point(s) taken" in n for n in alice["notes"])
    assert not any("Canvas marked this submission LATE" in n for n in alice["notes"])
    rows = {row["student"]: row for row in csv.DictReader(io.StringIO(out.read_text()))}
    assert (rows["smithalice"]["late_penalty"], rows["smithalice"]["total"]) == ("1", "2")
    assert {row["student"]: row["HW1"] for row in csv.DictReader(io.StringIO(term.read_text()))}["smithalice"] == "2"
    # the change says why: in the report, the student's notes and her feedback file, and the audit line
    [line] = [line for line in printed.splitlines() if line.startswith("changed: smithalice")]
    assert "2.5 → 2" in line and "late penalty 0.5 → 1" in line and "--timestamps" in line, printed
    assert not any(line.startswith("changed: jonescarol") for line in printed.splitlines())  # on time: unchanged
    feedback = (tmp_path / "feedback" / "smithalice.md").read_text()
    assert "late penalty: 1 point(s) taken from 3" in feedback and "34.0 h after the deadline" in feedback
    assert "late penalty changed from 0.5 to 1 point(s)" in feedback, feedback
    audit = [json.loads(line) for line in out.with_name("hw1.audit.jsonl").read_text().splitlines()]
    assert audit[-1]["changed"] == {"smithalice": [2.5, 2]}, audit[-1]


def test_an_update_with_every_lms_time_no_longer_warns_of_file_modification_times(course_dir, tmp_path, fake_cli,
                                                                                     capsys):
    """Issue 48: after `--update --timestamps` gave every student's time, the gradebook still warned that the times
    were file modification times (the first run's warning was carried over)."""
    for name in ("alice", "bob"):
        write_submission(tmp_path / "dl" / f"{name}.ipynb")
    out = tmp_path / "hw1.csv"
    common = ["--course", str(course_dir), "--out", str(out)]
    assert fake_cli(str(tmp_path / "dl"), "--chapter", "01", "--deadline", D0.isoformat(), "--late-penalty",
                    "10%/day", *common) == 0
    assert "are file modification times" in capsys.readouterr().out
    (tmp_path / "times.csv").write_text(f"student,submitted_at\nalice,{_at(-5)}\nbob,{_at(-1)}\n")
    assert fake_cli("--update", "--timestamps", str(tmp_path / "times.csv"), *common) == 0
    printed = capsys.readouterr()
    assert "file modification times" not in printed.out + printed.err, printed.out
    assert not [w for w in json.loads(out.with_suffix(".json").read_text()).get("warnings", [])
                if "file modification times" in w]
    assert "0notebook" not in printed.err


def test_an_update_that_changes_no_time_keeps_a_canvas_late_flag_penalty(course_dir, tmp_path, fake_cli):
    # finding 1's cause: the gradebook did not keep that a time came from Canvas's LATE flag, so any --update (here
    # merging the teacher's points) re-applied the late policy to a submission without a time: no penalty
    _canvas_class(tmp_path / "dl")
    out = tmp_path / "hw1.csv"
    common = ["--course", str(course_dir), "--out", str(out)]
    assert fake_cli(str(tmp_path / "dl"), "--chapter", "01", "--deadline", D0.isoformat(), "--late-penalty",
                    "10%/day", *common) == 0
    (tmp_path / "manual.csv").write_text("student,exercise,points,comment\njonescarol,ch01_why,2,\n")
    assert fake_cli("--update", "--manual", str(tmp_path / "manual.csv"), *common) == 0
    alice = _students(out)["smithalice"]
    assert (alice.get("penalty"), alice["total"]) == (0.5, 2.5), "an --update --manual dropped the Canvas LATE penalty"
    assert any("Canvas marked this submission LATE" in note for note in alice["notes"])


def _graded_late_class(tmp_path, course_dir, fake_cli, hours_late: tuple[float, float, float], *options: str):
    """Three Canvas students (ids 12346-12348) handed in ``hours_late`` after the deadline D0, graded with a 10%/day
    late penalty and ``options``; returns (gradebook path, the options every update repeats, penalties())."""
    _canvas_class(tmp_path / "dl", late_flag=())
    rows = "".join(f"{canvas_id},{_at(hours)}\n" for canvas_id, hours in zip((12346, 12347, 12348), hours_late))
    (tmp_path / "times.csv").write_text(f"student,submitted_at\n{rows}")
    out = tmp_path / "hw1.csv"
    common = ["--course", str(course_dir), "--out", str(out)]
    assert fake_cli(str(tmp_path / "dl"), "--chapter", "01", "--deadline", D0.isoformat(), "--late-penalty",
                    "10%/day", *options, "--timestamps", str(tmp_path / "times.csv"), *common) == 0
    return out, common, lambda: {name: s.get("penalty", 0) for name, s in _students(out).items()}


def test_an_update_changes_only_the_late_settings_given(course_dir, tmp_path, fake_cli, capsys):
    # finding 2: the gradebook stores the deadline, the penalty (and its unit) and the grace; an --update that gives
    # one of them keeps the others
    out, common, penalties = _graded_late_class(tmp_path, course_dir, fake_cli, (0.2, 26, -1), "--grace", "15m")
    assert penalties() == {"jonescarol": 0, "smithalice": 1, "leebob": 0}  # Carol within the grace; Alice 2 days
    capsys.readouterr()

    assert fake_cli("--update", "--late-penalty", "5%/day", *common) == 0, capsys.readouterr().err
    policy = json.loads(out.with_suffix(".json").read_text())["late_policy"]
    assert policy == {"deadline": D0.isoformat(), "late_penalty": "5%/day", "grace_s": 900}, policy
    assert penalties() == {"jonescarol": 0, "smithalice": 0.5, "leebob": 0}  # the grace is still there
    assert "late policy: deadline 2025-03-07T23:59:00+00:00, grace 15 min, late penalty 5%/day" in \
        capsys.readouterr().out

    assert fake_cli("--update", "--deadline", _at(3), *common) == 0  # three hours more for everyone
    policy = json.loads(out.with_suffix(".json").read_text())["late_policy"]
    assert policy == {"deadline": _at(3), "late_penalty": "5%/day", "grace_s": 900}, policy
    assert penalties() == {"jonescarol": 0, "smithalice": 0.25, "leebob": 0}  # 22.75 h late: one day of 5%


def test_an_extension_for_one_student_moves_that_student_only(course_dir, tmp_path, fake_cli, capsys):
    # finding 5: --update --student jonescarol --deadline … is an extension for Carol; the class keeps its deadline
    out, common, penalties = _graded_late_class(tmp_path, course_dir, fake_cli, (30, 26, -1))
    assert penalties() == {"jonescarol": 1, "smithalice": 1, "leebob": 0}
    capsys.readouterr()

    assert fake_cli("--update", "--student", "jonescarol", "--deadline", _at(48), *common) == 0, \
        capsys.readouterr().err
    printed = capsys.readouterr().out
    assert penalties() == {"jonescarol": 0, "smithalice": 1, "leebob": 0}, "the extension moved the whole class"
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["late_policy"]["deadline"] == D0.isoformat()   # the class's deadline is unchanged
    carol = _students(out)["jonescarol"]
    assert carol["late_policy"] == {"deadline": _at(48)}       # Carol's own
    assert any("your deadline: 2025-03-09T23:59:00+00:00 (an extension" in note for note in carol["notes"]), carol
    [line] = [line for line in printed.splitlines() if line.startswith("changed:")]
    assert line.startswith("changed: jonescarol 2 → 3: late penalty 1 → 0") and "2025-03-09T23:59:00+00:00" in line
    audit = [json.loads(line) for line in out.with_name("hw1.audit.jsonl").read_text().splitlines()]
    assert audit[-1]["changed"] == {"jonescarol": [2, 3]}, audit[-1]

    # a change for the class later keeps her extension; so does re-grading her
    assert fake_cli("--update", "--deadline", _at(1), "--late-penalty", "20%/day", *common) == 0
    assert penalties() == {"jonescarol": 0, "smithalice": 2, "leebob": 0}
    assert "note: jonescarol keeps their own deadline 2025-03-09T23:59:00+00:00" in capsys.readouterr().out
    assert fake_cli(str(tmp_path / "dl"), "--update", "--student", "jonescarol", *common) == 0
    assert penalties() == {"jonescarol": 0, "smithalice": 2, "leebob": 0}
    assert _students(out)["jonescarol"]["late_policy"] == {"deadline": _at(48)}
    # --student changes no one else, whatever a --manual file holds
    (tmp_path / "manual.csv").write_text("student,exercise,points,comment\njonescarol,ch01_why,2,\n"
                                         "smithalice,ch01_why,2,\n")
    assert fake_cli("--update", "--student", "jonescarol", "--manual", str(tmp_path / "manual.csv"), *common) == 0
    assert {name: s["total"] for name, s in _students(out).items()} == {"jonescarol": 5, "smithalice": 1, "leebob": 3}
    assert "the rows of 1 student(s) not given with --student were not applied (smithalice)" in capsys.readouterr().out
    # a student the gradebook does not have is refused, and nothing changes
    assert fake_cli("--update", "--student", "zoe", "--deadline", _at(48), *common) == 2
    assert "--student zoe" in capsys.readouterr().err


CANVAS_ROSTER_OF_FOUR = ("Student,ID,SIS User ID,SIS Login ID,Section\n    Points Possible,,,,\n"
                         '"Jones, Carol",12346,S1,cjones,A\n"Smith, Alice",12347,S2,asmith,A\n'
                         '"Lee, Bob",12348,S3,blee,B\n"Davis, Dave",12349,S4,ddavis,B\n')
MOODLE_ROSTER_OF_FOUR = ("First name,Last name,ID number,Email address\nCarol,Jones,S1,carol@uni.example\n"
                         "Alice,Smith,S2,alice@uni.example\nBob,Lee,S3,bob@uni.example\n"
                         "Dave,Davis,S4,dave@uni.example\n")


@pytest.mark.parametrize("when", ["grading", "export"], ids=["roster when grading", "roster at the export only"])
def test_a_rostered_student_who_handed_in_nothing_is_in_the_gradebook_and_the_exports(course_dir, tmp_path, fake_cli,
                                                                                     capsys, when):
    # finding 6: Dave is on the class list and handed in nothing: 0, marked "no submission", never left out
    _canvas_class(tmp_path / "dl", late_flag=())
    (tmp_path / "canvas-roster.csv").write_text(CANVAS_ROSTER_OF_FOUR)
    (tmp_path / "moodle-roster.csv").write_text(MOODLE_ROSTER_OF_FOUR)
    out, term = tmp_path / "grades" / "hw1.csv", tmp_path / "term.csv"
    roster = ["--roster", str(tmp_path / "canvas-roster.csv")] if when == "grading" else []
    assert fake_cli(str(tmp_path / "dl"), "--chapter", "01", "--name", "HW1", "--course", str(course_dir), "--out",
                    str(out), "--gradebook", str(term), *roster) == 0
    printed = capsys.readouterr().out
    if when == "grading":
        dave = _students(out)["davisdave"]
        assert dave["total"] == 0 and dave["no_submission"] is True and "no submission" in dave["problem"]
        assert any("davisdave" in line and "no submission" in line for line in printed.splitlines()
                   if line.startswith("warning:")), printed
        rows = {row["student"]: row for row in csv.DictReader(io.StringIO(term.read_text()))}
        assert rows["davisdave"]["HW1"] == "0" and rows["davisdave"]["no_submission"] == "HW1", rows
        assert rows["jonescarol"]["no_submission"] == ""
    for lms in ("canvas", "moodle"):
        assert fake_cli("--export", lms, "--gradebook", str(term), "--roster", str(tmp_path / f"{lms}-roster.csv"),
                        "--out", str(tmp_path / f"{lms}-import.csv")) == 0, capsys.readouterr().err
        printed = capsys.readouterr().out
        assert any("no submission" in line and ("Davis" in line or "davisdave" in line) for line in printed.splitlines()
                   if line.startswith("warning:")), printed
    canvas = list(csv.reader(io.StringIO((tmp_path / "canvas-import.csv").read_text())))
    assert ["Davis, Dave", "12349", "S4", "ddavis", "B", "0"] in canvas, canvas
    assert len(canvas) == 2 + 4
    moodle = list(csv.reader(io.StringIO((tmp_path / "moodle-import.csv").read_text())))
    assert ["dave@uni.example", "S4", "Dave Davis", "0"] in moodle, moodle
    assert len(moodle) == 1 + 4


# issue 26, item 5.5: nothing a student wrote is a formula in any CSV the grader writes (OWASP CSV injection): names
# (file names, the LMS roster's names), free-text answers, similarity pairs, the term gradebook and Canvas's import
# (Moodle's writes its names the same way; its roster matches students by name, so it cannot hold these).
CSV_FORMULAS = ['=HYPERLINK("http://evil.example","click")', "+1+1", "-2", "@SUM(A1 A9)", "\t=1", "=cmd|' /C calc'!A0"]


def _formula_cells(path: Path) -> list[str]:
    """The cells of ``path`` that a spreadsheet would read as a formula (a number the grader wrote is not one)."""
    from pgcourse.classroom.grading.gradebook import FORMULA_START

    found = []
    for row in csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")):
        for cell in row:
            try:
                float(cell)
                continue
            except ValueError:
                pass
            if cell.startswith(FORMULA_START):
                found.append(cell)
    return found


def test_no_csv_the_grader_writes_holds_a_students_formula(course_dir, tmp_path, fake_cli):
    files = tmp_path / "files"
    for number, text in enumerate(CSV_FORMULAS):  # named by their files, and each a formula-like free-text answer
        write_submission(files / f"{text}.ipynb", why=text)
    for text, source in ((CSV_FORMULAS[0], LONG), (CSV_FORMULAS[3], LONG_RENAMED)):  # a similar pair
        path = files / f"{text}.ipynb"
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == "ch01_double":
                cell.source = source + "# (FakePool: return 2 * x)\n"
        nbformat.write(notebook, path)
    out, term_csv = tmp_path / "grades" / "hw1.csv", tmp_path / "term.csv"
    assert fake_cli(str(files), "--course", str(course_dir), "--chapter", "01", "--similarity", "--gradebook",
                    str(term_csv), "--out", str(out)) == 0
    # a Canvas download whose roster (the LMS's names, which students may choose) holds formulas
    canvas = tmp_path / "canvas"
    write_submission(canvas / "jonescarol_12346_901_01_demo.ipynb")
    write_submission(canvas / "smithalice_12347_902_01_demo.ipynb")
    (tmp_path / "roster.csv").write_text('Student,ID,SIS User ID,SIS Login ID,Section\n'
                                         f'"{CSV_FORMULAS[1]}",12346,S1,cjones,"{CSV_FORMULAS[4]}"\n'
                                         f'"{CSV_FORMULAS[5]}",12347,S2,asmith,A\n')
    lms_term = tmp_path / "lms-term.csv"
    assert fake_cli(str(canvas), "--course", str(course_dir), "--chapter", "01", "--gradebook", str(lms_term),
                    "--out", str(tmp_path / "lms" / "hw1.csv")) == 0
    assert fake_cli("--export", "canvas", "--gradebook", str(lms_term), "--roster", str(tmp_path / "roster.csv"),
                    "--out", str(tmp_path / "canvas-import.csv")) == 0
    written = [out, out.with_name("hw1.free-text.csv"), out.with_name("hw1.similarity.csv"), term_csv,
               tmp_path / "canvas-import.csv"]
    assert all(path.is_file() for path in written), [path for path in written if not path.is_file()]
    assert len(out.with_name("hw1.similarity.csv").read_text().splitlines()) == 2  # the header and the pair
    for path in written:
        assert _formula_cells(path) == [], path.name
    text = "".join(path.read_text(encoding="utf-8") for path in written)
    for formula in CSV_FORMULAS:  # each is there, as text
        assert "'" + formula.replace('"', '""') in text or "'" + formula in text, formula
