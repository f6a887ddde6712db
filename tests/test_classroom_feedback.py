"""Tests that pin the definitions of the grader's feedback files, the teacher's manual points and partial credit
(issue 45, item 5): ``pgcourse.classroom.grading.feedback``, ``.manual`` and ``.partial``.

Each test states one decision of these modules in words and checks it on small objects built here (no worker
processes, no sandbox, no training): what each status says, which parts of an exercise a student sees and when,
what is escaped and how, the file names, how a teacher's CSV is read and refused, how overrides settle the points,
what carries over a re-grading, the free-text export, which check cells earn partial credit and how it is rounded.
The expected values are written out by hand (or with obvious code), never by calling the function a second way.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from pgcourse.classroom.grading import feedback, manual, partial
from pgcourse.classroom.grading.course import Chapter, Exercise, GradingError
from pgcourse.classroom.grading.gradebook import ExerciseResult, GradeReport, StudentResult, Submission
from pgcourse.classroom.grading.manual import ManualEntry
from pgcourse.classroom.grading.sandbox import Limits
from pgcourse.classroom.notebook_format import Cell


# -- small objects ------------------------------------------------------------------------------------------------
def exercise(exercise_id: str, points: float = 1.0, kind: str = "auto") -> Exercise:
    return Exercise(id=exercise_id, check_grade_id=f"{exercise_id}_check", points=points, check_source="",
                    answer_ids=(f"{exercise_id}_answer",), kind=kind)


def chapter(*exercises: Exercise, name: str = "02") -> Chapter:
    return Chapter(name=name, path=Path(f"{name}.ipynb"), context=[], exercises=list(exercises),
                   answer_order=[e.answer_ids[0] for e in exercises],
                   grade_ids=frozenset(e.answer_ids[0] for e in exercises), reference=None, stubs={})


def student(name: str, results: dict[str, ExerciseResult], **fields) -> StudentResult:
    return StudentResult(name, fields.pop("file", f"{name}.ipynb"), None, results, **fields)


def report(the_chapter: Chapter, *students: StudentResult, assignment: str = "") -> GradeReport:
    return GradeReport(the_chapter, list(students), Limits(), "none", "", 0.0, assignment=assignment)


def result(points: float = 0.0, max_points: float = 1.0, status: str = "failed", message: str = "",
           **fields) -> ExerciseResult:
    return ExerciseResult(points, max_points, status, message, **fields)


def one_exercise_page(status: str, message: str = "msg", fmt: str = "md", hide: bool = False, **fields) -> str:
    """The feedback page of a student with one exercise ``ch02_e`` (label ``e``) in ``status``."""
    row = student("ann", {"ch02_e": result(0.0, 1.0, status, message, **fields)})
    render = feedback.html_page if fmt == "html" else feedback.markdown
    return render(report(chapter(exercise("ch02_e")), row), row, hide)


# ==================================================================================================================
# feedback.py
# ==================================================================================================================
STATUS_WORDS = [("passed", "passed"), ("failed", "the check failed"), ("error", "your code raised an exception"),
                ("timeout", "time limit reached"), ("crashed", "the process running your code crashed"),
                ("missing", "answer missing"), ("invalid", "not graded"), ("manual", "to be graded by your teacher"),
                ("reviewed", "graded by your teacher"), ("something new", "something new")]


@pytest.mark.parametrize("fmt", ["md", "html"])
@pytest.mark.parametrize("status, words", STATUS_WORDS, ids=[s for s, _ in STATUS_WORDS])
def test_an_exercises_heading_says_its_status_in_words(status, words, fmt):
    """Each exercise's heading is ``<label>: <points> / <max> — <status in words>``: passed, the check failed, your
    code raised an exception, time limit reached, the process running your code crashed, answer missing, not graded,
    to be graded by your teacher, graded by your teacher; a status without words is shown as it is."""
    page = one_exercise_page(status, fmt=fmt)
    heading = f"e: 0 / 1 — {words}"
    assert (f"\n## {heading}\n" in page) if fmt == "md" else (f"<h2>{heading}</h2>" in page)


NEXT_STEPS = {
    "failed": "Run the check cell in your notebook: it shows the same message. Work the smallest failing case out by "
              "hand and compare it with what your function returns.",
    "error": "Run your answer cell and then the check cell in a fresh kernel (Kernel → Restart & Run All): the "
             "traceback above shows the line that failed.",
    "timeout": "Look for a loop that never ends or work that grows with the input far more than needed; the check's "
               "cases are small.",
    "crashed": "Your code ended the process (os._exit, a segfault, using too much memory): remove that call, or work "
               "on smaller tensors.",
    "missing": "Hand in the notebook you were given, with your answer in its answer cell; do not delete or re-create "
               "answer cells (the grader finds them by their metadata).",
    "invalid": "Hand in the .ipynb notebook file itself (not a link, not another format).",
}
ALL_STATUSES = [s for s, _ in STATUS_WORDS]


@pytest.mark.parametrize("fmt", ["md", "html"])
@pytest.mark.parametrize("status", ALL_STATUSES)
def test_what_to_do_is_said_for_each_failure_kind_and_never_for_passed_or_teacher_graded(status, fmt):
    """An exercise that failed, raised, timed out, crashed, is missing or could not be graded gets a "What to do:"
    line (the next step for that kind of failure, which does not give the answer away); a passed exercise, a
    free-text one (graded or not) and an unknown status get none."""
    page = one_exercise_page(status, fmt=fmt)
    if status in NEXT_STEPS:
        line = NEXT_STEPS[status] if fmt == "md" else NEXT_STEPS[status].replace("&", "&amp;").replace("'", "&#x27;")
        assert f"What to do: {line}" in page
    else:
        assert "What to do" not in page


@pytest.mark.parametrize("fmt", ["md", "html"])
@pytest.mark.parametrize("status", ["failed", "error", "missing"])
def test_no_next_step_once_the_teacher_set_the_points(status, fmt):
    """A teacher's points (even 0) replace the grader's verdict: the "What to do" line is no longer shown."""
    assert "What to do" not in one_exercise_page(status, fmt=fmt, teacher_points=0.0, graded_points=0.0)
    assert "What to do" in one_exercise_page(status, fmt=fmt, teacher_points=None, graded_points=0.0)


@pytest.mark.parametrize("fmt", ["md", "html"])
@pytest.mark.parametrize("status, shown", [(s, s not in ("passed", "manual", "reviewed")) for s in ALL_STATUSES])
def test_the_checks_message_is_shown_unless_the_exercise_passed_or_is_free_text(status, shown, fmt):
    """The check's message (the likely mistake, the smallest failing case, the traceback) is shown for every status
    but passed, manual and reviewed (whose feedback is the grader's note, not a diagnosis); an empty one never."""
    page = one_exercise_page(status, "the-check-said-this", fmt=fmt)
    assert ("the-check-said-this" in page) is shown
    if fmt == "md":
        assert ("\n    the-check-said-this\n" in page) is shown  # an indented code block
    else:
        assert ("<pre>the-check-said-this</pre>" in page) is shown
    empty = one_exercise_page(status, "", fmt=fmt)
    assert "    (empty)" not in empty and "<pre></pre>" not in empty


@pytest.mark.parametrize("fmt", ["md", "html"])
@pytest.mark.parametrize("status, shown", [("manual", True), ("reviewed", True), ("failed", False),
                                           ("passed", False), ("missing", False)])
def test_a_free_text_answer_is_quoted_only_for_free_text_exercises(status, shown, fmt):
    """The student's free-text answer is shown back under "Your answer:" for a manual or reviewed exercise with an
    answer; never for other statuses, and not at all when the answer is empty."""
    page = one_exercise_page(status, fmt=fmt, answer="my-free-text")
    assert ("Your answer:" in page) is shown and ("my-free-text" in page) is shown
    if shown and fmt == "md":
        assert "Your answer:\n\n    my-free-text\n" in page
    if shown and fmt == "html":
        assert "<p>Your answer:</p><blockquote><pre>my-free-text</pre></blockquote>" in page
    assert "Your answer:" not in one_exercise_page(status, fmt=fmt, answer="")


@pytest.mark.parametrize("teacher, graded, line", [
    (2.0, 1.0, "Your teacher set the points to 2 (the grader gave 1)."),
    (0.0, 1.5, "Your teacher set the points to 0 (the grader gave 1.5)."),
    (0.75, 0.0, "Your teacher set the points to 0.75 (the grader gave 0)."),
    (1.0, None, None),    # a free-text grade: the grader gave nothing to override
    (None, 1.0, None),    # no override
])
@pytest.mark.parametrize("fmt", ["md", "html"])
def test_both_formats_say_when_the_teacher_overrode_the_graders_points(teacher, graded, line, fmt):
    """Both feedback formats say "Your teacher set the points to T (the grader gave G)." when the teacher's points
    override the grader's own (both known, also 0); not for a free-text grade (no grader's points) nor without one
    (the HTML page said nothing of an override before)."""
    page = one_exercise_page("failed", fmt=fmt, teacher_points=teacher, graded_points=graded)
    if line is None:
        assert "Your teacher set the points" not in page
    else:
        assert (f"\n\n{line}\n" if fmt == "md" else f"<p>{line}</p>") in page


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_the_teachers_comment_is_shown_when_there_is_one(fmt):
    """A teacher's comment follows "Comment from your teacher: "; an empty comment adds no line."""
    assert "Comment from your teacher: well done" in one_exercise_page("passed", fmt=fmt, comment="well done")
    assert "Comment from your teacher" not in one_exercise_page("passed", fmt=fmt, comment="")


def full_page_row(**fields) -> tuple[GradeReport, StudentResult]:
    """A student with a passed exercise ``a`` (2 of 2) and a failed one ``b`` (0 of 1)."""
    results = {"ch02_b": result(0.0, 1.0, "failed", "b: wrong\n  expected: 3\n  received: 4"),
               "ch02_a": result(2.0, 2.0, "passed", "all cases right")}  # not the chapter's order
    row = student("ann", results, **fields)
    return report(chapter(exercise("ch02_a", 2.0), exercise("ch02_b")), row), row


def test_the_markdown_page_of_a_graded_student_in_full():
    """The Markdown page: the assignment, the student and the notebook's file name (without its folders) as code
    spans, the total in bold, then each exercise in the chapter's order (not the results' order) with its
    heading, its message as an indented block unless passed, and the next step; one trailing newline."""
    the_report, row = full_page_row(file="deep/folder/ann.ipynb")
    assert feedback.markdown(the_report, row) == "\n".join([
        "# Feedback: 02", "", "Student: `ann`  ", "Notebook: `ann.ipynb`", "", "**Total: 2 / 3**",
        "", "## a: 2 / 2 — passed",
        "", "## b: 0 / 1 — the check failed", "", "    b: wrong", "      expected: 3", "      received: 4",
        "", f"What to do: {NEXT_STEPS['failed']}", ""])


def test_the_html_page_of_a_graded_student_in_full():
    """The HTML page: a self-contained document whose Content-Security-Policy allows no script (only inline style),
    titled with the assignment, the same parts as the Markdown page, everything escaped."""
    the_report, row = full_page_row(file="deep/folder/ann.ipynb")
    body = "\n".join([
        "<h1>Feedback: 02</h1>", "<p>Student: <code>ann</code><br>Notebook: <code>ann.ipynb</code></p>",
        "<p><strong>Total: 2 / 3</strong></p>", "<h2>a: 2 / 2 — passed</h2>",
        "<h2>b: 0 / 1 — the check failed</h2>",
        "<pre>b: wrong\n  expected: 3\n  received: 4</pre>",
        f"<p>What to do: {NEXT_STEPS['failed']}</p>"])
    assert feedback.html_page(the_report, row) == (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Feedback: 02</title>"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}pre{white-space:pre-wrap;"
        "background:#f4f4f4;padding:.5em}</style></head>\n<body>\n" + body + "\n</body></html>\n")


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_the_page_is_titled_with_the_assignment_not_the_chapter(fmt):
    """A term gradebook's assignment name (when set) titles the page, else the chapter's name."""
    row = student("ann", {"ch02_e": result()})
    render = feedback.html_page if fmt == "html" else feedback.markdown
    named = render(report(chapter(exercise("ch02_e")), row, assignment="Homework 2"), row)
    assert "Feedback: Homework 2" in named and "Feedback: 02" not in named
    assert "Feedback: 02" in render(report(chapter(exercise("ch02_e")), row), row)


@pytest.mark.parametrize("fmt", ["md", "html"])
@pytest.mark.parametrize("file, shown", [("", "none handed in"), ("a/b/c/ann.ipynb", "ann.ipynb"),
                                         ("ann.ipynb", "ann.ipynb")])
def test_the_notebook_is_named_by_its_file_name_or_none_handed_in(file, shown, fmt):
    """The notebook line gives the submitted file's name without its folders, or "none handed in" without a file."""
    row = student("ann", {"ch02_e": result()}, file=file)
    if fmt == "md":
        code = "none handed in" if not file else f"`{shown}`"
        assert f"\nNotebook: {code}\n" in feedback.markdown(report(chapter(exercise("ch02_e")), row), row)
    else:
        code = "none handed in" if not file else f"<code>{shown}</code>"
        assert f"Notebook: {code}</p>" in feedback.html_page(report(chapter(exercise("ch02_e")), row), row)


@pytest.mark.parametrize("points, penalty, total, md_line, html_part", [
    ([2.0, 1.5], 0.0, "3.5", None, None),
    ([2.0, 1.5], 1.0, "2.5", "(late penalty: 1 point(s) taken from 3.5)", " (late penalty: 1 point(s) taken)"),
    ([2.0, 0.0], 0.25, "1.75", "(late penalty: 0.25 point(s) taken from 2)", " (late penalty: 0.25 point(s) taken)"),
    ([1 / 3, 0.0], 0.0, "0.333333", None, None),  # six decimals at most
])
@pytest.mark.parametrize("fmt", ["md", "html"])
def test_the_total_and_a_late_penalty(points, penalty, total, md_line, html_part, fmt):
    """The total is shown over the maximum (whole numbers without ``.0``, others to six decimals); a late penalty
    adds a line saying how many points were taken from what was earned (HTML: in the total's paragraph); none
    without a penalty."""
    row = student("ann", {"ch02_a": result(points[0], 2.0, "passed"), "ch02_b": result(points[1], 2.0, "passed")},
                  penalty=penalty)
    the_report = report(chapter(exercise("ch02_a", 2.0), exercise("ch02_b", 2.0)), row)
    if fmt == "md":
        page = feedback.markdown(the_report, row)
        assert f"**Total: {total} / 4**" + (f"\n{md_line}" if md_line else "\n\n## a") in page
        assert ("late penalty" in page) is (md_line is not None)
    else:
        page = feedback.html_page(the_report, row)
        assert f"<p><strong>Total: {total} / 4</strong>{html_part or ''}</p>" in page
        assert ("late penalty" in page) is (html_part is not None)


def no_submission_row(**exercise_fields) -> tuple[GradeReport, StudentResult]:
    row = student("ann", {"ch02_a": result(0.0, 2.0, "missing", "no notebook", **exercise_fields),
                          "ch02_b": result(0.0, 1.0, "missing", "no notebook")},
                  file="", no_submission=True, problem="a problem that is not shown")
    return report(chapter(exercise("ch02_a", 2.0), exercise("ch02_b")), row), row


NO_SUBMISSION = ("No submission: nothing was handed in for this assignment, so every exercise gets 0. If you did hand "
                 "something in, tell your teacher.")


def test_a_student_who_handed_in_nothing_gets_a_page_saying_so():
    """A student of the class list with nothing handed in: the "No submission" paragraph (not the problem), and each
    exercise only as ``<label>: 0 / <max> — no submission``, without message or next step."""
    the_report, row = no_submission_row()
    md = feedback.markdown(the_report, row)
    assert md == "\n".join(["# Feedback: 02", "", "Student: `ann`  ", "Notebook: none handed in", "",
                            "**Total: 0 / 3**", "", NO_SUBMISSION, "", "## a: 0 / 2 — no submission",
                            "", "## b: 0 / 1 — no submission", ""])
    page = feedback.html_page(the_report, row)
    assert f"<p>{NO_SUBMISSION}</p>" in page
    assert "<h2>a: 0 / 2 — no submission</h2>\n<h2>b: 0 / 1 — no submission</h2>" in page
    assert "not shown" not in page and "What to do" not in page and "no notebook" not in page


@pytest.mark.parametrize("fmt", ["md", "html"])
@pytest.mark.parametrize("fields", [{"teacher_points": 0.0}, {"comment": "see me"}], ids=["points", "comment"])
def test_a_teachers_points_or_comment_show_an_exercise_of_a_no_submission_in_full(fields, fmt):
    """An exercise of a student with no submission is shown in full (its status, the teacher's comment) as soon as
    the teacher gave it points (0 included) or a comment; the others stay "no submission"."""
    the_report, row = no_submission_row(**fields)
    page = (feedback.html_page if fmt == "html" else feedback.markdown)(the_report, row)
    assert "a: 0 / 2 — answer missing" in page and "a: 0 / 2 — no submission" not in page
    assert "b: 0 / 1 — no submission" in page


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_a_notebook_that_could_not_be_graded_says_why(fmt):
    """A submission with a problem (and something handed in) says "Your notebook could not be graded:" and the
    problem (Markdown: as an indented block); a row without problem says nothing of it."""
    row = student("ann", {"ch02_e": result(0.0, 1.0, "invalid", "")}, problem="it is not JSON")
    the_report = report(chapter(exercise("ch02_e")), row)
    if fmt == "md":
        assert "\n\nYour notebook could not be graded:\n\n    it is not JSON\n" in feedback.markdown(the_report, row)
    else:
        assert "<p>Your notebook could not be graded: it is not JSON</p>" in feedback.html_page(the_report, row)
    row.problem = None
    assert "could not be graded" not in (feedback.html_page if fmt == "html" else feedback.markdown)(the_report, row)


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_the_notes_come_last_one_per_line(fmt):
    """The row's notes (what lateness cost, why a grade changed) end the page under "Notes", one per line ("- note"
    in a Markdown code block, list items in HTML); no Notes section without notes."""
    row = student("ann", {"ch02_e": result()}, notes=["late by 1 day", "grade changed: new policy"])
    the_report = report(chapter(exercise("ch02_e")), row)
    if fmt == "md":
        assert feedback.markdown(the_report, row).endswith(
            "\n\n## Notes\n\n    - late by 1 day\n    - grade changed: new policy\n")
    else:
        assert ("<h2>Notes</h2><ul><li>late by 1 day</li><li>grade changed: new policy</li></ul>\n</body>"
                in feedback.html_page(the_report, row))
    row.notes = []
    assert "Notes" not in (feedback.html_page if fmt == "html" else feedback.markdown)(the_report, row)


def test_nothing_a_student_wrote_becomes_html_markup():
    """The HTML page escapes the student's id, file name, messages, answer, problem and notes, and the teacher's
    assignment name and comment: no tag, quote or ampersand of theirs survives raw."""
    evil = "<img src=x onerror='alert(1)'>&\""  # no "/": also a file name
    row = student(evil, {"ch02_e": result(0.0, 1.0, "manual", evil, answer=evil, comment=evil)},
                  file=f"dir/{evil}.ipynb", problem=evil, notes=[evil])
    row.exercises["ch02_f"] = result(0.0, 1.0, "failed", evil)
    page = feedback.html_page(report(chapter(exercise("ch02_e"), exercise("ch02_f")), row, assignment=evil), row)
    escaped = "&lt;img src=x onerror=&#x27;alert(1)&#x27;&gt;&amp;&quot;"
    assert "<img" not in page and "'alert" not in page
    assert page.count(escaped) == 9  # title, h1, student, file, problem, answer, comment, message, note


def test_nothing_a_student_wrote_becomes_markdown_markup():
    """In Markdown the student's id and file name are code spans, their messages, answers, problem and notes
    indented code blocks; the teacher's assignment name and comment have their markup characters as references."""
    row = student("<b>", {"ch02_e": result(0.0, 1.0, "failed", "# heading\n[link](x)")},
                  file="x/<i>.ipynb", problem="<p>", notes=["*bold*"])
    row.exercises["ch02_e"].comment = "*nice*"
    page = feedback.markdown(report(chapter(exercise("ch02_e")), row, assignment="HW *2*"), row)
    assert page.startswith("# Feedback: HW &#42;2&#42;\n")
    assert "Student: `<b>`  \nNotebook: `<i>.ipynb`\n" in page
    assert "\n    <p>\n" in page and "\n    # heading\n    [link](x)\n" in page and "\n    - *bold*\n" in page
    assert "Comment from your teacher: &#42;nice&#42;" in page


# -- hiding the expected values ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, hidden", [
    ("expected: 6", "expected: (hidden)"),
    ("  expected: tensor([1., 2.])", "  expected: (hidden)"),
    ("  expected gradient of `x`: [1, 2]", "  expected gradient of `x`: (hidden)"),
    ("expected:6", "expected: (hidden)"),
    ("expected:", "expected: (hidden)"),
    ("  received: 4", "  received: 4"),
    ("the value expected: 3", "the value expected: 3"),                   # not a label at the line's start
    ("Expected: 6", "Expected: 6"),                                        # labels are lower case
    ("  expected: 6\n  received: 4\n  expected: 7", "  expected: (hidden)\n  received: 4\n  expected: (hidden)"),
    ("at [0]: expected 1.5, received 2", "at [0]: expected (hidden), received 2"),
    ("at [0]: expected 1, received 2; at [3]: expected 4, received 5",
     "at [0]: expected (hidden), received 2; at [3]: expected (hidden), received 5"),
    ("expected 1; received 2", "expected 1; received 2"),                 # not a pair
    ("expected 1, 2, received 3", "expected 1, 2, received 3"),           # a pair's value has no comma
    ("expected a tensor, got a list", "expected a tensor, got a list"),   # a type problem: nothing to hide
    ("", ""),
])
def test_hiding_expected_values_keeps_the_labels_and_the_received_values(text, hidden):
    """With hide_expected, a line whose label starts with "expected" (indented or not, up to its first colon)
    keeps the label and shows "(hidden)" for the rest of the line; "expected X, received" pairs become
    "expected (hidden), received"; received values, other lines and other text stay."""
    assert feedback.hide_expected_values(text) == hidden


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_expected_values_are_hidden_only_when_asked(fmt):
    """The check's message keeps its expected values unless ``hide_expected`` is given."""
    shown = one_exercise_page("failed", "e: wrong\n  expected: 6\n  received: 4", fmt=fmt)
    hidden = one_exercise_page("failed", "e: wrong\n  expected: 6\n  received: 4", fmt=fmt, hide=True)
    assert "expected: 6" in shown and "expected: 6" not in hidden
    assert "expected: (hidden)" in hidden and "received: 4" in hidden


# -- file names ----------------------------------------------------------------------------------------------------
def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]


@pytest.mark.parametrize("student_id, stem", [
    ("alice", "alice"),
    ("Alice.Smith-2_b", "Alice.Smith-2_b"),                  # letters, digits, ., -, _ are kept, case too
    ("a b", "a_b-" + short_hash("a b")),                     # anything else becomes _, plus a short hash
    ("a/b", "a_b-" + short_hash("a/b")),
    ("a_b", "a_b"),                                           # ... so "a b" and "a_b" never collide
    ("Zoë Li", "Zo__Li-" + short_hash("Zoë Li")),            # not ASCII
    ("José", "Jos-" + short_hash("José")),                   # ... and the _ it became at the end stripped
    ("..hidden", "hidden-" + short_hash("..hidden")),        # no leading dot (a hidden file)
    ("_x_", "x-" + short_hash("_x_")),                        # nor leading or trailing _
    ("-x-", "-x-"),                                           # - is kept at both ends
    ("x.", "x-" + short_hash("x.")),
    ("...", "student-" + short_hash("...")),                 # nothing left: "student"
    ("", "student-" + short_hash("")),
    ("a" * 120, "a" * 120),                                   # the longest stem kept whole
    ("a" * 121, "a" * 113 + "-" + short_hash("a" * 121)),   # at most 120 characters: cut, then the hash
    ("a" * 130 + " x", "a" * 113 + "-" + short_hash("a" * 130 + " x")),  # the hash survives the cut
    ("a\udcffb", "a_xffb-" + short_hash("a\\xffb")),         # an undecodable byte of a file name
])
def test_a_feedback_file_name_is_safe_everywhere(student_id, stem):
    """A feedback file's stem is the student's id with every character but ASCII letters, digits, ``.``, ``-`` and
    ``_`` made ``_``, leading and trailing ``.`` and ``_`` stripped ("student" if nothing is left), then, if that
    changed the id or the id is longer than 120 characters, the first 113 characters, ``-`` and the first 6 hex
    digits of the SHA-256 of the id: at most 120 characters, and two ids never share a stem."""
    assert feedback.file_stem(student_id) == stem


# -- markdown escaping ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, span", [
    ("x", "`x`"),
    ("ann.ipynb", "`ann.ipynb`"),
    ("a`b", "``a`b``"),                   # the fence is one longer than the longest backtick run in the text
    ("a``b`c", "```a``b`c```"),
    ("a```b", "````a```b````"),
    ("`x", "`` `x ``"),                   # a text starting or ending with a backtick or a space is padded
    ("x ", "` x  `"),
    ("a\nb", "`a\\nb`"),                 # a newline would end the span: shown escaped
    ("\x1b[31mred", "`\\x1b[31mred`"),
    ("José", "`José`"),                  # printable unicode stays
    ("<b>*x*</b>", "`<b>*x*</b>`"),
])
def test_a_code_span_is_fenced_longer_than_any_backtick_run(text, span):
    """``md_code``: the text (unprintable characters escaped) between fences of ``n + 1`` backticks, ``n`` the
    longest run of backticks in it (1 without any), padded with a space each side when it starts or ends with a
    backtick or a space."""
    assert feedback.md_code(text) == span


@pytest.mark.parametrize("text, lines", [
    ("one line", ["    one line"]),
    ("a\nb", ["    a", "    b"]),
    ("a\n\nb", ["    a", "", "    b"]),                       # an inner blank line stays (empty, not indented)
    ("\n\n  a  \n\n", ["      a"]),                          # blank lines at both ends dropped, trailing spaces too
    ("a   \n  \nb", ["    a", "", "    b"]),
    ("\tx", ["        x"]),                                   # a tab is 4 spaces
    ("a\tb", ["    a   b"]),
    ("", ["    (empty)"]),
    ("   \n\n  ", ["    (empty)"]),
    ("```\n</pre>", ["    ```", "    </pre>"]),              # nothing in it ends the block
    ("a\x1bb\x00", ["    a\\x1bb\\x00"]),
    ("é ✓", ["    é ✓"]),
    ("a\r\nb", ["    a", "    b"]),
])
def test_a_code_block_indents_every_line_by_four_spaces(text, lines):
    """``md_block``: each line (tabs expanded to 4 columns, unprintable characters escaped, trailing spaces
    removed) indented by 4 spaces; an empty line is left empty; blank lines at the start and the end are dropped;
    nothing at all is ``    (empty)``."""
    assert feedback.md_block(text) == lines


MD_SPECIAL = "\\`*_{}[]()<>#!|~&"


@pytest.mark.parametrize("char", list(MD_SPECIAL))
def test_each_markdown_markup_character_becomes_a_character_reference(char):
    """``md_text``: each of ``\\ ` * _ { } [ ] ( ) < > # ! | ~ &`` becomes ``&#<its code point>;``."""
    assert feedback.md_text(f"a{char}b") == f"a&#{ord(char)};b"


@pytest.mark.parametrize("text, shown", [
    ("plain text, 1 + 2 = 3; \"quoted\" 'x' $ % ^ - . ? / @", "plain text, 1 + 2 = 3; \"quoted\" 'x' $ % ^ - . ? / @"),
    ("José ✓", "José ✓"),
    ("**b**", "&#42;&#42;b&#42;&#42;"),
    ("a\nb", "a&#92;nb"),              # unprintable shown escaped: its backslash is a markup character too
    ("", ""),
])
def test_markdown_text_keeps_what_is_not_markup(text, shown):
    """Characters outside the markup set stay as written (also unicode); unprintable ones are escaped first."""
    assert feedback.md_text(text) == shown


# -- writing the files ---------------------------------------------------------------------------------------------
def two_students() -> GradeReport:
    rows = [student(name, {"ch02_e": result(1.0, 1.0, "passed")}) for name in ("bob", "a b")]
    return report(chapter(exercise("ch02_e")), *rows)


@pytest.mark.parametrize("fmt, start", [("md", "# Feedback: 02\n"), ("html", "<!DOCTYPE html>\n"),
                                        ("txt", "# Feedback: 02\n"), ("htm", "# Feedback: 02\n"),
                                        ("HTML", "# Feedback: 02\n")])
def test_write_feedback_writes_one_file_per_student_in_the_format_asked(tmp_path, fmt, start):
    """One file per student, in the report's order, named ``<file stem>.<fmt>`` in the folder (created with its
    parents); ``html`` writes HTML pages, any other format Markdown."""
    folder = tmp_path / "new" / "feedback"
    written = feedback.write_feedback(two_students(), folder, fmt=fmt)
    assert written == [folder / f"bob.{fmt}", folder / f"a_b-{short_hash('a b')}.{fmt}"]
    assert all(path.read_text(encoding="utf-8").startswith(start) for path in written)


@pytest.mark.parametrize("chosen, names", [(None, ["bob", "a b"]), ({"a b"}, ["a b"]), (set(), []),
                                           ({"nobody"}, [])])
def test_write_feedback_writes_only_the_students_asked_for(tmp_path, chosen, names):
    """With ``students`` only those students' files are written (an empty set: none); without, everyone's."""
    written = feedback.write_feedback(two_students(), tmp_path, students=chosen)
    assert written == [tmp_path / f"{feedback.file_stem(name)}.md" for name in names]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)


def test_write_feedback_hides_expected_values_when_asked_and_keeps_the_previous_version(tmp_path):
    """``hide_expected`` reaches the pages written; a page that changes keeps its previous version in
    ``<name>.history/``, one that does not change is not rewritten."""
    row = student("bob", {"ch02_e": result(0.0, 1.0, "failed", "  expected: 6")})
    the_report = report(chapter(exercise("ch02_e")), row)
    [path] = feedback.write_feedback(the_report, tmp_path, stamp="t1")
    assert "expected: 6" in path.read_text(encoding="utf-8")
    feedback.write_feedback(the_report, tmp_path, stamp="t2")
    assert not (tmp_path / "bob.history").exists()
    feedback.write_feedback(the_report, tmp_path, hide_expected=True, stamp="t3")
    assert "expected: (hidden)" in path.read_text(encoding="utf-8")
    assert [p.name for p in (tmp_path / "bob.history").iterdir()] == ["t3-bob.md"]


# ==================================================================================================================
# manual.py
# ==================================================================================================================
def manual_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "manual.csv"
    path.write_text(text, encoding="utf-8")
    return path


def entries_of(tmp_path: Path, text: str) -> list[tuple]:
    found = manual.read_manual(manual_file(tmp_path, text))
    return [(e.student, e.exercise, e.points, e.comment, e.line) for e in found]


@pytest.mark.parametrize("points, value", [
    ("2", 2.0), ("0", 0.0), ("1.5", 1.5), (" 1.5 ", 1.5), ("1,5", 1.5), ("0,25", 0.25), ("1e1", 10.0), ("-0", -0.0),
    ("auto", "nan"), ("AUTO", "nan"), (" Auto ", "nan"), ("", None), ("  ", None),
])
def test_a_manual_files_points_are_a_number_auto_or_empty(tmp_path, points, value):
    """``points`` is a number ≥ 0 (a decimal comma accepted when it is the only comma and there is no dot), ``auto``
    in any case (removes an override: NaN), or empty (a comment only: None)."""
    [(_, _, found, _, _)] = entries_of(tmp_path, f'student,exercise,points,comment\nann,ch02_e,"{points}",nice\n')
    if value == "nan":
        assert math.isnan(found)
    else:
        assert found == value and (found is None) is (value is None)


@pytest.mark.parametrize("points, problem", [
    ("abc", "line 2: points 'abc' is not a number (or 'auto' to remove an override, or empty to give only a comment)"),
    ("1,000.5", "line 2: points '1,000.5' is not a number"),   # a comma with a dot is not a decimal comma
    ("1,2,3", "line 2: points '1,2,3' is not a number"),
    (",", "line 2: points ',' is not a number"),
    ("-1", "line 2: points must be ≥ 0, got '-1'"),
    ("-0.25", "line 2: points must be ≥ 0, got '-0.25'"),
    ("inf", "line 2: points must be ≥ 0, got 'inf'"),
    ("nan", "line 2: points must be ≥ 0, got 'nan'"),          # only "auto" removes an override
])
def test_points_that_are_not_a_number_at_least_0_are_refused_with_their_line(tmp_path, points, problem):
    """A value that is not a number, or a negative or non-finite one, is a GradingError naming the file, the line
    and the value."""
    path = manual_file(tmp_path, f'student,exercise,points,comment\nann,ch02_e,"{points}",x\n')
    with pytest.raises(GradingError) as error:
        manual.read_manual(path)
    assert str(error.value).startswith(f"--manual {path} line 2: ")
    assert problem in str(error.value)


def test_every_bad_row_is_reported_at_once_and_nothing_is_read(tmp_path):
    """Several bad rows: one GradingError that counts them and lists each on its own indented line."""
    path = manual_file(tmp_path, "student,exercise,points\nann,e,x\nbob,e,1\ncid,e,-2\n")
    with pytest.raises(GradingError) as error:
        manual.read_manual(path)
    assert str(error.value) == (f"--manual {path}: 2 rows to fix, nothing applied:\n"
                                "  line 2: points 'x' is not a number (or 'auto' to remove an override, or empty to "
                                "give only a comment)\n  line 4: points must be ≥ 0, got '-2'")


def test_refuse_says_nothing_without_problems_and_one_line_for_one():
    """``_refuse``: no problem, no error; one problem: ``<where> <problem>``; more: the count and one line each."""
    assert manual._refuse("--manual m.csv", []) is None
    with pytest.raises(GradingError, match=r"^--manual m.csv line 3: bad$"):
        manual._refuse("--manual m.csv", ["line 3: bad"])
    with pytest.raises(GradingError, match=r"^--manual m.csv: 3 rows to fix, nothing applied:\n  a\n  b\n  c$"):
        manual._refuse("--manual m.csv", ["a", "b", "c"])


def test_a_manual_files_rows_are_read_with_their_line_numbers(tmp_path):
    """Each row becomes (student, exercise, points, comment, line): the header is line 1; values are stripped; a
    row with neither points nor a comment is skipped; a short row's missing cells are empty."""
    text = ("student,exercise,points,comment\n"
            " ann , ch02_a ,2, good work \n"
            "bob,ch02_a,,\n"
            "cid,ch02_b,,just a comment\n"
            "dan,ch02_b\n"
            "eve,ch02_b,auto\n")
    found = entries_of(tmp_path, text)
    assert [(s, e, p, c, n) for s, e, p, c, n in found if s != "eve"] == [
        ("ann", "ch02_a", 2.0, "good work", 2), ("cid", "ch02_b", None, "just a comment", 4)]
    assert found[-1][0] == "eve" and math.isnan(found[-1][2]) and found[-1][3:] == ("", 6)


@pytest.mark.parametrize("header", ["student,exercise,points,comment", "Student,EXERCISE,Points,Comment",
                                    " student , exercise , points , comment ",
                                    "exercise,comment,points,student,answer"])
def test_the_header_names_columns_in_any_case_order_and_spacing(tmp_path, header):
    """Columns are found by name, whatever their case, surrounding spaces or order; other columns are ignored."""
    names = [name.strip().lower() for name in header.split(",")]
    values = {"student": "ann", "exercise": "ch02_e", "points": "1", "comment": "ok", "answer": "my answer"}
    text = header + "\n" + ",".join(values[name] for name in names) + "\n"
    assert entries_of(tmp_path, text) == [("ann", "ch02_e", 1.0, "ok", 2)]


def test_a_manual_file_without_a_comment_column_has_empty_comments(tmp_path):
    """The comment column is optional: without it every comment is empty (and a row needs points)."""
    text = "student,exercise,points\nann,ch02_e,1\nbob,ch02_e,\n"
    assert entries_of(tmp_path, text) == [("ann", "ch02_e", 1.0, "", 2)]


def test_a_semicolon_separated_manual_file_with_decimal_commas(tmp_path):
    """A spreadsheet's semicolon CSV (a decimal comma in its numbers) reads the same."""
    assert entries_of(tmp_path, "student;exercise;points;comment\nann;ch02_e;1,5;gut\n") == [
        ("ann", "ch02_e", 1.5, "gut", 2)]


@pytest.mark.parametrize("header, missing", [
    ("student,exercise,comment", "points"),
    ("name,exercise,points", "student"),
    ("student,task,points", "exercise"),
    ("name,task,score", "student, exercise, points"),
    ("comment", "student, exercise, points"),
    ("Name, Task ,Score", "student, exercise, points"),     # the header found is quoted as written
])
def test_a_manual_file_without_a_needed_column_is_refused(tmp_path, header, missing):
    """The student, exercise and points columns are needed: the error names each missing one (in that order), the
    header expected and the header found."""
    path = manual_file(tmp_path, header + "\nann,ch02_e,1\n")
    with pytest.raises(GradingError) as error:
        manual.read_manual(path)
    assert str(error.value) == (f"--manual {path}: no {missing} column; expected a header "
                                f"student,exercise,points,comment (found {header})")


@pytest.mark.parametrize("text", ["", "\n\n", " , \n"])
def test_an_empty_manual_file_is_refused(tmp_path, text):
    """A file without any row (blank lines only) is a GradingError saying it is empty and what header is expected."""
    path = manual_file(tmp_path, text)
    with pytest.raises(GradingError, match="the file is empty; expected a header student,exercise,points,comment"):
        manual.read_manual(path)


@pytest.mark.parametrize("cell, name", [
    ("ann", "ann"), ("  ann  ", "ann"),
    ("'=ann", "=ann"), ("'+1", "+1"), ("'-x", "-x"), ("'@x", "@x"),   # our own CSV's guard before a formula removed
    ("'ann", "'ann"), ("'", "'"), ("''=x", "''=x"), ("=ann", "=ann"),  # any other ' is the name's own
    ("a-b", "a-b"), ("1+1", "1+1"), ("x'=y", "x'=y"),                  # nothing is removed without a leading '
])
def test_a_student_name_loses_only_the_quote_our_csv_put_before_a_formula(cell, name):
    """A student cell is stripped, and a leading ``'`` is removed only before a formula's first character
    (``= + - @``, tab, carriage return): that quote is the one the gradebook's CSV adds."""
    assert manual._plain(cell) == name


def test_a_student_name_in_the_manual_file_loses_the_formula_guard(tmp_path):
    """Read from a file, ``'=ann`` names the student ``=ann`` (the gradebook's CSV wrote that id with the guard)."""
    assert entries_of(tmp_path, "student,exercise,points\n'=ann,ch02_e,1\n")[0][0] == "=ann"


# -- applying the teacher's points ---------------------------------------------------------------------------------
def manual_report(*names: str, assignment: str = "") -> GradeReport:
    """A chapter "02" with an auto exercise ``ch02_code`` (2 points) and a free text ``why`` (1 point, label = id)."""
    rows = [student(name, {"ch02_code": result(1.0, 2.0, "failed", "m", graded_points=1.0),
                           "why": result(0.0, 1.0, "manual", "free text", graded_points=None)}) for name in names]
    return report(chapter(exercise("ch02_code", 2.0), exercise("why", 1.0, "manual")), *rows, assignment=assignment)


def entry(student_name: str, exercise_id: str, points: float | None, comment: str = "", line: int = 2) -> ManualEntry:
    return ManualEntry(student_name, exercise_id, points, comment, line)


@pytest.mark.parametrize("given, exercise_id", [(2.0, "ch02_code"), (2.0, "code"), (0.0, "code"), (1.0, "why")])
def test_the_teachers_points_override_up_to_the_exercises_worth(given, exercise_id):
    """Points from 0 to the exercise's worth (included) are applied, by id or by the table's short name: they count,
    and the grader's own points are kept beside them."""
    the_report = manual_report("ann")
    assert manual.apply_manual(the_report, [entry("ann", exercise_id, given)], "--manual m.csv") == 1
    found = the_report.student("ann").exercises["ch02_code" if exercise_id != "why" else "why"]
    assert (found.points, found.teacher_points) == (given, given)
    assert found.graded_points == (1.0 if exercise_id != "why" else None)


@pytest.mark.parametrize("given, worth, exercise_id", [(2.25, 2, "ch02_code"), (2.000001, 2, "code"),
                                                       (1.5, 1, "why")])
def test_more_points_than_an_exercise_is_worth_are_refused(given, worth, exercise_id):
    """More than the exercise's worth (by any amount) is a GradingError naming the line, the points given, the
    exercise's id and its worth; nothing is applied."""
    the_report = manual_report("ann")
    full_id = "ch02_code" if exercise_id == "code" else exercise_id
    with pytest.raises(GradingError) as error:
        manual.apply_manual(the_report, [entry("ann", exercise_id, given, line=7)], "--manual m.csv")
    assert str(error.value) == (f"--manual m.csv line 7: {given:g} points for {full_id}, which is worth {worth}; "
                                f"give at most {worth}")
    assert the_report.student("ann").exercises[full_id].teacher_points is None


def test_auto_and_a_comment_only_row_are_never_too_many_points():
    """``auto`` (NaN) and a comment-only row (None) pass the worth check."""
    the_report = manual_report("ann")
    assert manual.apply_manual(the_report, [entry("ann", "code", math.nan), entry("ann", "why", None, "hm")], "w") == 2


def test_an_unknown_student_is_refused_naming_the_gradebook_and_its_students():
    """A student not in the gradebook: the error names the line, the student, the assignment, and the gradebook's
    students, sorted (upper case first), the first 8 only, then "…"."""
    nine = manual_report("bob", "Ann", "carl", "dan", "eve", "fay", "gus", "hal", "ivy", assignment="HW2")
    with pytest.raises(GradingError) as error:
        manual.apply_manual(nine, [entry("zed", "code", 1.0, line=5)], "--manual m.csv")
    assert str(error.value) == ("--manual m.csv line 5: no student 'zed' in the gradebook of HW2 "
                                "(students: Ann, bob, carl, dan, eve, fay, gus, hal …)")
    eight = manual_report("bob", "Ann", "carl", "dan", "eve", "fay", "gus", "hal")
    with pytest.raises(GradingError, match=r"\(students: Ann, bob, carl, dan, eve, fay, gus, hal\)$"):
        manual.apply_manual(eight, [entry("zed", "code", 1.0)], "--manual m.csv")
    with pytest.raises(GradingError, match="no student 'ANN'"):  # ids are matched exactly
        manual.apply_manual(nine, [entry("ANN", "code", 1.0)], "--manual m.csv")


def test_an_unknown_exercise_is_refused_naming_the_chapters_exercises():
    """An exercise that is neither an id nor a short name of the chapter: the error names the line, the value, the
    chapter (not the assignment) and every exercise as ``id (short name)``, or the id alone when they are equal."""
    the_report = manual_report("ann", assignment="HW2")
    with pytest.raises(GradingError) as error:
        manual.apply_manual(the_report, [entry("ann", "Code", 1.0, line=3)], "--manual m.csv")
    assert str(error.value) == ("--manual m.csv line 3: 'Code' is not an exercise of 02; expected one of "
                                "ch02_code (code), why (the id, or the short name the table shows)")


def test_an_unknown_student_is_reported_before_an_unknown_exercise():
    """A row whose student and exercise are both unknown is reported once, for its student."""
    with pytest.raises(GradingError) as error:
        manual.apply_manual(manual_report("ann"), [entry("zed", "nope", 5.0)], "w")
    assert "no student 'zed'" in str(error.value) and "nope" not in str(error.value)


def test_every_row_is_checked_before_any_is_applied():
    """One bad row among good ones: nothing is applied, and every bad row is listed."""
    the_report = manual_report("ann", "bob")
    rows = [entry("ann", "code", 2.0, "great", line=2), entry("zed", "code", 1.0, line=3),
            entry("bob", "why", 9.0, line=4)]
    with pytest.raises(GradingError, match=r"^w: 2 rows to fix, nothing applied:\n  line 3: .*\n  line 4: "):
        manual.apply_manual(the_report, rows, "w")
    ann = the_report.student("ann").exercises["ch02_code"]
    assert (ann.teacher_points, ann.points, ann.comment) == (None, 1.0, "")


def test_auto_removes_an_override_and_an_empty_points_cell_keeps_it():
    """``auto`` (NaN) removes the teacher's points (the grader's count again); a row without points changes only the
    comment; an empty comment keeps the comment there was."""
    the_report = manual_report("ann")
    manual.apply_manual(the_report, [entry("ann", "code", 2.0, "first")], "w")
    manual.apply_manual(the_report, [entry("ann", "code", None, "second")], "w")
    found = the_report.student("ann").exercises["ch02_code"]
    assert (found.teacher_points, found.points, found.comment) == (2.0, 2.0, "second")
    manual.apply_manual(the_report, [entry("ann", "code", math.nan, "")], "w")
    assert (found.teacher_points, found.points, found.comment) == (None, 1.0, "second")


def test_apply_manual_counts_the_entries_applied():
    """The number returned is the number of entries, each applied (also two for one exercise: the last wins)."""
    the_report = manual_report("ann", "bob")
    rows = [entry("ann", "code", 1.5), entry("bob", "why", 0.5), entry("ann", "code", 0.25)]
    assert manual.apply_manual(the_report, rows, "w") == 3
    assert the_report.student("ann").exercises["ch02_code"].points == 0.25
    assert the_report.student("bob").exercises["why"].status == "reviewed"
    assert manual.apply_manual(the_report, [], "w") == 0


@pytest.mark.parametrize("ids, given, found", [
    (["ch01_norm", "ch01_loss"], "ch01_loss", "ch01_loss"),   # an id stays
    (["ch01_norm", "ch01_loss"], "loss", "ch01_loss"),        # the short name names its exercise
    (["ch01_norm", "ch01_loss"], "Loss", "Loss"),             # names are matched exactly
    (["ch01_norm", "ch01_loss"], "nothing", "nothing"),       # matching nothing: stays (and is refused later)
    (["ch01_x", "ch1_x"], "x", "x"),                          # two exercises with that short name: stays
    (["x", "ch01_x"], "x", "x"),                              # an id wins over another's short name
    (["ch01_x"], "ch01_x", "ch01_x"),
])
def test_an_exercise_is_named_by_its_id_or_its_unique_short_name(ids, given, found):
    """``resolve_exercise``: an exercise id of the chapter stays; otherwise the one exercise whose short name
    (the id without ``chNN_``) it is becomes its id; no match or an ambiguous one stays as given."""
    row = entry("ann", given, 1.0)
    resolved = manual.resolve_exercise(row, chapter(*[exercise(i) for i in ids]))
    assert resolved.exercise == found
    assert (resolved.student, resolved.points, resolved.comment, resolved.line) == ("ann", 1.0, "", 2)


@pytest.mark.parametrize("status, teacher, graded, points, after", [
    ("manual", 1.5, None, 1.5, "reviewed"),
    ("manual", 0.0, None, 0.0, "reviewed"),       # 0 points are points
    ("failed", 2.0, 1.0, 2.0, "failed"),          # an override keeps the grader's status
    ("passed", 0.5, 1.0, 0.5, "passed"),
    ("reviewed", None, None, 0, "manual"),        # the teacher's grade removed: back to be graded
    ("manual", None, None, 0, "manual"),          # ungraded free text: 0
    ("failed", None, 0.75, 0.75, "failed"),       # no override: the grader's points
    ("reviewed", 1.0, None, 1.0, "reviewed"),
    ("error", None, 0.0, 0.0, "error"),
])
def test_settle_the_points_that_count(status, teacher, graded, points, after):
    """``settle``: the teacher's points where given (a manual exercise becomes reviewed), else the grader's (0 for a
    free text the grader does not grade; a reviewed exercise becomes manual again); other statuses stay."""
    found = result(99.0, 2.0, status, "", graded_points=graded, teacher_points=teacher)
    manual.settle(found)
    assert (found.points, found.status) == (points, after)


@pytest.mark.parametrize("answer", [None, "", "   ", "YOUR ANSWER HERE", "  YOUR ANSWER HERE\n",
                                    "\nYOUR ANSWER HERE  "])
def test_a_free_text_answer_left_as_handed_out_is_missing(answer):
    """A free-text answer that is absent, empty, blank or the handout's "YOUR ANSWER HERE" (spaces around it
    aside) is missing: 0 points, nothing kept."""
    found = manual.free_text_result(1.5, answer)
    assert (found.points, found.max_points, found.status, found.graded_points, found.answer) == (
        0, 1.5, "missing", None, "")
    assert found.feedback == "not answered: the answer cell still holds the handout's text"


@pytest.mark.parametrize("answer", ["because the variance drops", "your answer here", "YOUR ANSWER HERE, and more",
                                    " x "])
def test_any_other_free_text_answer_waits_for_the_teacher(answer):
    """Any other text (also the handout's words in another case, or with more) is an answer to grade: status
    manual, 0 points until graded, the answer kept as written."""
    found = manual.free_text_result(2.0, answer)
    assert (found.points, found.max_points, found.status, found.graded_points, found.answer) == (
        0, 2.0, "manual", None, answer)
    assert found.feedback == "a free-text answer: your teacher grades it"


def test_a_regrading_keeps_the_teachers_points_and_comments():
    """``carry_over``: for each exercise of the earlier grading with teacher's points or a comment, both are copied
    to the new grading and settled; a note says which points were kept (``:g``); a comment alone adds no note;
    exercises without either, or no longer in the new grading, are left alone."""
    old = student("ann", {"a": result(2.0, 2.0, "failed", "", graded_points=0.0, teacher_points=2.0, comment="ok"),
                          "b": result(0.0, 1.0, "reviewed", "", teacher_points=0.0),
                          "c": result(0.5, 1.0, "failed", "", graded_points=0.5, comment="only a comment"),
                          "d": result(1.0, 1.0, "passed", "", graded_points=1.0),
                          "gone": result(1.0, 1.0, "failed", "", teacher_points=1.0)})
    new = student("ann", {"a": result(1.0, 2.0, "failed", "", graded_points=1.0),
                          "b": result(0.0, 1.0, "manual", "", graded_points=None),
                          "c": result(1.0, 1.0, "passed", "", graded_points=1.0),
                          "d": result(0.0, 1.0, "failed", "", graded_points=0.0, comment="new")})
    manual.carry_over(new, old)
    got = {k: (r.points, r.status, r.teacher_points, r.comment) for k, r in new.exercises.items()}
    assert got == {"a": (2.0, "failed", 2.0, "ok"), "b": (0.0, "reviewed", 0.0, ""),
                   "c": (1.0, "passed", None, "only a comment"), "d": (0.0, "failed", None, "new")}
    assert new.notes == ["your teacher's points for a (2) were kept from the earlier grading",
                         "your teacher's points for b (0) were kept from the earlier grading"]


def test_a_kept_fractional_point_is_written_short():
    """The note writes the kept points with ``:g`` (1.25, not 1.250000)."""
    new = student("ann", {"a": result(0.0, 2.0, "failed", "", graded_points=0.0)})
    manual.carry_over(new, student("ann", {"a": result(0.0, 2.0, "failed", "", teacher_points=1.25)}))
    assert new.notes == ["your teacher's points for a (1.25) were kept from the earlier grading"]


def test_the_free_text_export_is_a_manual_file_to_fill_in():
    """``free_text_csv``: a header student, exercise, points, comment, max_points, answer, then one row per student
    and free-text exercise (report and chapter order), every cell quoted, ``\\n`` line ends; the teacher's points
    so far (``:g``, 0 included; empty if none), the worth (``:g``) and the answer; a cell starting like a formula
    gets a ``'``."""
    rows = [student("=bob", {"ch02_code": result(), "ch02_why": result(0.0, 1.5, "manual", "", answer="+1 since"),
                             "ch02_how": result(0.0, 2.0, "reviewed", "", teacher_points=1.25, comment="-ok")}),
            student("ann", {"ch02_code": result(), "ch02_why": result(0.0, 1.5, "missing", "", teacher_points=0.0),
                            "ch02_how": result(0.0, 2.0, "manual", "", answer='say "hi"\nthen')})]
    the_chapter = chapter(exercise("ch02_code"), exercise("ch02_why", 1.5, "manual"),
                          exercise("ch02_how", 2.0, "manual"))
    assert manual.free_text_csv(report(the_chapter, *rows)) == (
        '"student","exercise","points","comment","max_points","answer"\n'
        '"\'=bob","ch02_why","","","1.5","\'+1 since"\n'
        '"\'=bob","ch02_how","1.25","\'-ok","2",""\n'
        '"ann","ch02_why","0","","1.5",""\n'
        '"ann","ch02_how","","","2","say ""hi""\nthen"\n')


def test_the_free_text_export_reads_back_as_a_manual_file(tmp_path):
    """The export, with points filled in, is a manual file: the student ids read back as the gradebook's."""
    the_chapter = chapter(exercise("ch02_why", 1.0, "manual"))
    text = manual.free_text_csv(report(the_chapter, student("=bob", {"ch02_why": result(0.0, 1.0, "manual", "")})))
    assert text is not None
    filled = text.replace('"ch02_why",""', '"ch02_why","1"')
    assert entries_of(tmp_path, filled) == [("=bob", "ch02_why", 1.0, "", 2)]


def test_no_free_text_export_without_free_text_questions():
    """A chapter without free-text (manual) exercises has no export: None."""
    assert manual.free_text_csv(report(chapter(exercise("ch02_code")), student("ann", {"ch02_code": result()}))) is None


def test_free_text_answers_are_read_only_from_a_notebook_without_problem():
    """``answers_of``: the free-text answers of a submission that could be read; none of one with a problem."""
    the_chapter = chapter(exercise("ch02_code"), exercise("ch02_why", 1.0, "manual"))
    cells = [Cell(0, "markdown", "my answer", {"nbgrader": {"grade_id": "ch02_why"}})]
    ok = Submission("ann", Path("ann.ipynb"), "x", cells=cells)
    assert manual.answers_of(ok, the_chapter) == {"ch02_why": "my answer"}
    broken = Submission("ann", Path("ann.ipynb"), "x", problem="not JSON", cells=cells)
    assert manual.answers_of(broken, the_chapter) == {}
    empty_problem = Submission("ann", Path("ann.ipynb"), "x", problem="", cells=cells)  # a problem, if empty: the
    assert manual.answers_of(empty_problem, the_chapter) == {}                         # grader's "is None" rule


# ==================================================================================================================
# partial.py
# ==================================================================================================================
def test_partial_points_are_rounded_down_to_a_quarter():
    """The partial credit step is a quarter point."""
    assert partial.STEP == 0.25


@pytest.mark.parametrize("points, right, total, informative, earned", [
    (2.0, 3, 4, 1, 1.5),
    (1.0, 2, 3, 1, 0.5),          # 0.667 rounded down
    (1.0, 1, 3, 1, 0.25),         # 0.333
    (1.0, 1, 4, 1, 0.25),         # exactly a quarter
    (1.0, 1, 5, 1, 0.0),          # 0.2: less than a quarter
    (3.0, 7, 8, 1, 2.5),          # 2.625
    (0.58, 25, 29, 1, 0.5),       # exactly 0.5, computed as 0.49999999999999994: not rounded down a step
    (1.16, 25, 29, 1, 1.0),       # exactly 1, computed as 0.9999999999999999
    (0.2499999, 1, 1, 1, 0.0),    # a hair under a quarter is under a quarter
    (4.0, 4, 4, 1, 4.0),          # all right
    (2.0, 0, 4, 1, 0.0),
    (2.0, 3, 4, 0, 0.0),          # no informative case right: nothing
    (2.0, 4, 4, 0, 0.0),
    (2.0, 3, 0, 1, 0.0),          # no cases: nothing (no division by 0)
    (2.0, 3, -1, 1, 0.0),
    (2.0, 3, 4, -1, 0.0),
])
def test_partial_points_definition(points, right, total, informative, earned):
    """``partial_points``: ``points × right / total`` rounded down to a multiple of 0.25 (a float a rounding error
    under a step counts as the step), 0 without cases or without an informative case right."""
    assert partial.partial_points(points, right, total, informative) == earned


@pytest.mark.parametrize("right, total, informative, earned, points, line", [
    (3, 4, 1, 1.5, 2.0, "Partial credit: your function gets 3 of 4 cases right: 1.5 of 2 point(s)."),
    (1, 4, 2, 0.25, 1.0, "Partial credit: your function gets 1 of 4 cases right: 0.25 of 1 point(s)."),
    (1, 5, 1, 0.0, 1.0, "Partial credit: your function gets 1 of 5 cases right: 0 of 1 point(s)."),
    (2, 4, 0, 0.0, 2.0, "Partial credit: none. Your function gets 2 of 4 cases right, but only cases that an answer of "
                        "zeros or an unchanged input would also get right."),
    (0, 4, 0, 0.0, 2.0, "Partial credit: none. Your function gets 0 of 4 cases right, but only cases that an answer of "
                        "zeros or an unchanged input would also get right."),
])
def test_the_partial_credit_line(right, total, informative, earned, points, line):
    """``describe``: how many cases were right and what that earned (numbers with ``:g``), or, without an
    informative case right, why nothing was earned."""
    assert partial.describe(right, total, informative, earned, points) == line


@pytest.mark.parametrize("source, found", [
    ("pg.checks.check_normalize(normalize)", ("normalize", "normalize")),
    ("pg.checks.check_discounted_returns(my_returns)", ("discounted_returns", "my_returns")),
    ("check_normalize(f)", ("normalize", "f")),                                # imported by name
    ("# run the check\npg.checks.check_normalize(f)  # here\n", ("normalize", "f")),  # comments aside
    ("\n\npg.checks.check_normalize(f)\n\n", ("normalize", "f")),
])
def test_a_standard_check_cell_is_one_call_of_a_course_check_on_one_name(source, found):
    """``standard_check``: a cell that is exactly ``pg.checks.check_<name>(<function>)`` or ``check_<name>(<function>)``
    for an exercise of the course gives (exercise, function)."""
    assert partial.standard_check(source) == found


@pytest.mark.parametrize("source", [
    "", "# only a comment", "pg.checks.check_normalize(",                       # nothing, or not Python
    "pg.checks.check_normalize(f)\npg.checks.check_normalize(g)",             # two statements
    "x = 1\npg.checks.check_normalize(f)",
    "result = pg.checks.check_normalize(f)",                                   # not an expression statement
    "pg.checks.check_normalize",                                               # not a call
    "pg.checks.check_normalize(f, g)", "pg.checks.check_normalize()",          # not one argument
    "pg.checks.check_normalize(f, seed=0)", "pg.checks.check_normalize(fn=f)",  # keywords
    "pg.checks.check_normalize(lambda x: x)", "pg.checks.check_normalize(m.f)",  # not a name
    "pg.checks.check_normalize('f')", "pg.checks.check_normalize(*fs)",
    "np.checks.check_normalize(f)", "pg.check.check_normalize(f)",            # not pg.checks
    "checks.check_normalize(f)", "a.pg.checks.check_normalize(f)",
    "pg.checks.normalize(f)", "normalize(f)", "pg.checks.Check_normalize(f)",  # not check_<name>
    "pg.checks.check_nothing(f)", "check_(f)", "pg.checks.check_check_normalize(f)",  # not a course exercise
    "pg.checks.check_Normalize(f)",
    "pg.concepts.check_concepts('01', answers)",
])
def test_any_other_check_cell_is_not_a_standard_check(source):
    """Anything else (no call, several statements, an assignment, other arguments, keywords, another object than
    ``pg.checks``, a name without ``check_``, an exercise the course does not have) is not a standard check: None."""
    assert partial.standard_check(source) is None


@pytest.mark.parametrize("source, found", [
    ('pg.concepts.check_concepts("01", answers)', ("01", "answers")),
    ("pg.concepts.check_concepts('04', my_answers)  # the concept questions", ("04", "my_answers")),
    ("pg.concepts.check_concepts(3, answers)", ("3", "answers")),      # a chapter given as a number
    ('# comment\npg.concepts.check_concepts("ch02", a)\n', ("ch02", "a")),
])
def test_a_concept_check_cell_is_one_call_of_check_concepts(source, found):
    """``concept_check``: a cell that is exactly ``pg.concepts.check_concepts(<chapter>, <name>)``, the chapter a
    string or number, gives (chapter as text, name of the answers)."""
    assert partial.concept_check(source) == found


@pytest.mark.parametrize("source", [
    "", "pg.concepts.check_concepts(", "x = 1\npg.concepts.check_concepts('01', a)",
    "r = pg.concepts.check_concepts('01', a)",
    "check_concepts('01', a)", "concepts.check_concepts('01', a)",              # not pg.concepts
    "np.concepts.check_concepts('01', a)", "pg.checks.check_concepts('01', a)",
    "pg.concepts.check_answers('01', a)", "pg.concepts.check_concepts",
    "pg.concepts.check_concepts('01')", "pg.concepts.check_concepts('01', a, b)",
    "pg.concepts.check_concepts(a)", "pg.concepts.check_concepts('01', answers=a)",
    "pg.concepts.check_concepts(chapter, a)", "pg.concepts.check_concepts(1.0, a)",  # chapter not a str or int
    "pg.concepts.check_concepts(None, a)", "pg.concepts.check_concepts('01', {'q1': 'a'})",  # answers not a name
    "pg.concepts.check_concepts('01', a.b)",
    "pg.concepts.check_concepts('01', a)\nprint(a)",                          # a second statement after it
    "pg.concepts.check_concepts('01', a, verbose=True)",                      # a keyword besides the two arguments
    "pg.checks.check_normalize(f)",
])
def test_any_other_cell_is_not_a_concept_check(source):
    """Anything else is not a concept check: None."""
    assert partial.concept_check(source) is None


@pytest.mark.parametrize("right, total, points, earned", [
    (3, 4, 2.0, 1.5), (2, 3, 1.0, 0.5), (1, 4, 1.0, 0.25), (0, 4, 2.0, 0.0), (4, 4, 2.0, 2.0), (5, 4, 2.0, 2.0)])
def test_concept_questions_earn_per_question_right(monkeypatch, right, total, points, earned):
    """``concept_points``: ``points × right / questions`` rounded down to a quarter (nothing when none is right),
    never more than the points, and the line "Partial credit: R of Q questions right: E of P point(s)."."""
    import pgcourse.course.concepts as concepts
    calls = []
    monkeypatch.setattr(concepts, "count_correct", lambda chapter, answers: calls.append((chapter, answers))
                        or (right, total))
    assert partial.concept_points(points, "02", {"q1": "a"}) == (
        earned, f"Partial credit: {right} of {total} questions right: {earned:g} of {points:g} point(s).")
    assert calls == [("02", {"q1": "a"})]


def test_concept_answers_that_cannot_be_counted_earn_nothing(monkeypatch):
    """Answers the concept module cannot count (it raises) earn 0 with a line saying they are not a dict of
    letters; answers that are not a dict are counted as none right."""
    expected = (0.0, "Partial credit: none (the answers are not a dict of letters).")
    found = partial.concept_points(2.0, "99", {"q1": "a"})   # no such chapter: count_correct raises
    assert found == expected and type(found[0]) is float
    from pgcourse.course.concepts import QUESTIONS
    questions = len(QUESTIONS["01"])
    assert partial.concept_points(2.0, "01", ["a", "b"]) == (
        0.0, f"Partial credit: 0 of {questions} questions right: 0 of 2 point(s).")


def test_a_do_nothing_answer_is_zeros_like_the_result_and_the_first_input():
    """``_trivial_outputs``: zeros shaped like the right result (a tensor: detached zeros; a list or tuple: that many
    0.0; anything else: 0.0), then the first input unchanged when it is a tensor (a detached copy)."""
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    case = SimpleNamespace(args={"x": x, "gamma": 0.9})
    zeros, first = partial._trivial_outputs(None, case, torch.tensor([[3.0, 4.0]], requires_grad=True) * 2)
    assert torch.equal(zeros, torch.zeros(1, 2)) and not zeros.requires_grad
    assert torch.equal(first, x.detach()) and not first.requires_grad and first.data_ptr() != x.data_ptr()
    assert partial._trivial_outputs(None, case, [1.0, 2.0, 3.0])[0] == [0.0, 0.0, 0.0]
    assert partial._trivial_outputs(None, case, (1.0, 2.0))[0] == [0.0, 0.0]
    assert partial._trivial_outputs(None, case, 7.5)[0] == 0.0
    number_first = SimpleNamespace(args={"gamma": 0.9, "x": x})
    assert partial._trivial_outputs(None, number_first, 7.5) == [0.0]   # only the first input counts
    assert partial._trivial_outputs(None, SimpleNamespace(args={}), 7.5) == [0.0]


# -- counting the cases a function gets right ----------------------------------------------------------------------
def relu_cases():
    """Four cases of relu, listed not in size order: sizes 3 and 4 informative; size 1 (zeros in, zeros out) passed
    by both do-nothing answers; size 2 (positive) passed by the unchanged input."""
    from pgcourse.course.checks.harness import Case
    double = torch.float64
    return [Case("a: mixed signs", {"x": torch.tensor([-1.0, 2.0, 3.0], dtype=double)}),
            Case("b: alternating", {"x": torch.tensor([-1.0, 2.0, -3.0, 4.0], dtype=double)}),
            Case("c: zero", {"x": torch.tensor([0.0], dtype=double)}),
            Case("d: positive", {"x": torch.tensor([1.0, 2.0], dtype=double)})]


@pytest.fixture
def relu(monkeypatch):
    """A standard check ``relu`` (reference ``x.clamp(min=0)``) added to the course's checks for the test."""
    from pgcourse.course.checks import EXERCISES
    from pgcourse.course.checks.harness import Exercise as CheckExercise
    monkeypatch.setitem(EXERCISES, "relu", CheckExercise(name="relu", reference=lambda x: x.clamp(min=0),
                                                         make_cases=relu_cases, concept="max(x, 0)"))
    return "relu"


def first_call_only(answer):
    """A function that gives ``answer``'s result on its first call and garbage after."""
    calls = []

    def function(x):
        calls.append(1)
        return answer(x) if len(calls) == 1 else x + 100
    return function


def raising_on_size(size):
    def function(x):
        if x.numel() == size:
            raise ValueError("my bug")
        return x.clamp(min=0)
    return function


class LostStudent(BaseException):
    """What losing the student's process looks like (not an Exception)."""


def lost(x):
    raise LostStudent()


def stub(x):
    raise NotImplementedError()


def in_place(x):
    return x.clamp_(min=0)


@pytest.mark.parametrize("function, counts", [
    (lambda x: x.clamp(min=0), (4, 4, 2)),            # right: every case, the two informative ones among them
    (torch.relu, (4, 4, 2)),
    (lambda x: torch.zeros_like(x), (1, 4, 0)),        # zeros: right only where zeros are
    (lambda x: x.clone(), (2, 4, 0)),                  # the input unchanged: right only where it is the result
    (lambda x: x.abs(), (2, 4, 0)),                    # right on sizes 1 and 2, neither informative
    (lambda x: x.clamp(min=0) + (x.numel() == 4), (3, 4, 1)),
    (raising_on_size(3), (3, 4, 1)),                   # an exception fails that case only
    (stub, (0, 4, 0)),
    (in_place, (2, 4, 0)),                             # right values but the input changed: a case failed
    (lambda x: x.clamp(min=0).float(), (0, 4, 0)),     # the dtype is part of what the check requires
    (first_call_only(lambda x: x.clamp(min=0)), (1, 4, 0)),  # cases run smallest first: c (zeros, trivial)
])
def test_count_cases_counts_right_and_informative_cases(relu, function, counts):
    """``count_cases``: (cases right, cases, informative cases right), the cases run smallest first, each right
    when the check would pass it (values, in-place changes, dtype), informative when neither zeros like the result
    nor the first input unchanged passes it; an exception in the function fails its case only."""
    assert partial.count_cases(relu, function) == counts


def warning_relu(x):
    import warnings
    warnings.warn("a deprecated call", DeprecationWarning, stacklevel=1)
    return x.clamp(min=0)


def test_a_function_is_called_as_the_check_calls_it_its_warnings_ignored(relu):
    """The student's function is called as the check calls it: a warning it emits does not fail a case, even where
    warnings are errors."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert partial.count_cases(relu, warning_relu) == (4, 4, 2)


def test_a_lost_student_process_is_not_a_failed_case(relu):
    """An error that is not an Exception (the grader lost the student's process) propagates: not a case failed."""
    with pytest.raises(LostStudent):
        partial.count_cases(relu, lost)
