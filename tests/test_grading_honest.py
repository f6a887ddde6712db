"""Issue 30, items 3 and 4: one verdict in the notebook and the grader, feedback that says why, names the
teacher can type.

- The notebook's check runs the learner's function under the grader's rules: the package's own answers
  (``pg.normalize`` …) are unavailable while it runs, so an answer that calls them fails in the notebook
  with the grader's message instead of passing there and scoring 0 when graded.
- A check that fails because an earlier cell failed (a SyntaxError in an early answer cell leaves later
  answers undefined) says so, naming that cell and its exception.
- A manual grades file accepts the exercise names the grader's table shows (``double``) as well as the
  ids (``ch01_double``).
"""
from __future__ import annotations

import nbformat
import pytest

from pgcourse import grading
from pgcourse.grading import GradingError

from test_grading_term import ISOLATION, LIMITS, FakePool, course, course_dir, write_submission  # noqa: F401 (fixtures)


def _fake_grade(paths, course, **kwargs):
    return grading.grade_paths(paths, course=course, limits=LIMITS, grader=FakePool(), progress=False,
                               chapter="01_demo", **kwargs)


def test_a_manual_file_takes_the_short_names_the_table_shows(course, tmp_path):
    write_submission(tmp_path / "submitted" / "alice.ipynb", right=("halve",), why="Because it is unbiased.")
    (tmp_path / "manual.csv").write_text("student,exercise,points,comment\nalice,double,1.5,close\n"
                                         "alice,why,2,\nalice,ch01_halve,,good\n")
    report = _fake_grade([tmp_path / "submitted"], course, manual=tmp_path / "manual.csv")
    alice = report.student("alice")
    assert "double" in report.summary().splitlines()[0]  # the name the teacher reads in the table
    assert alice.exercises["ch01_double"].points == 1.5 and alice.exercises["ch01_why"].status == "reviewed"
    assert alice.exercises["ch01_halve"].comment == "good" and alice.total == 4.5


def test_an_unknown_short_name_lists_both_spellings(course, tmp_path):
    write_submission(tmp_path / "submitted" / "alice.ipynb")
    (tmp_path / "manual.csv").write_text("student,exercise,points\nalice,triple,1\n")
    with pytest.raises(GradingError) as error:
        _fake_grade([tmp_path / "submitted"], course, manual=tmp_path / "manual.csv")
    message = str(error.value)
    assert "'triple' is not an exercise of 01_demo" in message
    assert "ch01_double (double)" in message and "\n" not in message


# -- a failure caused by an earlier cell says so, graded for real --------------------------------------------
@pytest.fixture(scope="module")
def pool():
    with grading.Grader(jobs=1, isolation=ISOLATION) as shared:
        yield shared


def test_an_exercise_that_failed_because_an_earlier_cell_did_says_which(course_dir, tmp_path, pool):
    """One missing ``:`` in double's cell: halve (right, but written with double) fails too, and says why."""
    path = write_submission(tmp_path / "submitted" / "alice.ipynb", right=())
    notebook = nbformat.read(path, as_version=4)
    numbers = {}
    for number, cell in enumerate(notebook.cells, start=1):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        numbers[grade_id] = number
        if grade_id == "ch01_double":
            cell.source = "def double(x)\n    return 2 * x\n"
        if grade_id == "ch01_halve":
            cell.source = "def halve(x):\n    return double(x) / 4\n"
    nbformat.write(notebook, path)
    report = grading.grade_paths([tmp_path / "submitted"], course=course_dir, chapter="01", limits=LIMITS,
                                 grader=pool, progress=False)
    double, halve = (report.student("alice").exercises[name] for name in ("ch01_double", "ch01_halve"))
    assert double.status == "error" and "SyntaxError" in double.feedback
    assert halve.status == "error" and "name 'double' is not defined" in halve.feedback
    assert (f"this exercise failed because cell {numbers['ch01_double']} (your answer cell ch01_double) raised "
            "SyntaxError") in halve.feedback
    assert "`double` is defined there" in halve.feedback and "fix that cell first" in halve.feedback
    assert "failed because cell" not in double.feedback  # its own failure needs no such note


def test_a_name_no_earlier_failed_cell_defines_gets_no_such_note(course_dir, tmp_path, pool):
    path = write_submission(tmp_path / "submitted" / "bob.ipynb", right=())
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id == "ch01_double":
            cell.source = "def double(x)\n    return 2 * x\n"
        if grade_id == "ch01_halve":
            cell.source = "def halve(x):\n    return triple(x) / 6\n"
    nbformat.write(notebook, path)
    report = grading.grade_paths([tmp_path / "submitted"], course=course_dir, chapter="01", limits=LIMITS,
                                 grader=pool, progress=False)
    halve = report.student("bob").exercises["ch01_halve"]
    assert "name 'triple' is not defined" in halve.feedback and "failed because cell" not in halve.feedback
