"""Definitions of the grader's course, assignment and gradebook modules, pinned in the fast lane (issue 45, item 5).

The slow grading tests run whole sandboxed grading runs: they test paths. Each test here states one decision of
``pgcourse.classroom.grading.course``, ``.assignment`` or ``.gradebook`` in words (its docstring) and checks it on
small objects built in the test, at its edges (a boundary and one past it, empty, one, duplicates, case, unicode),
with the expected value written out by hand. Nothing here starts a process or a sandbox: files live in tmp_path.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pgcourse.classroom.grading import course as course_module
from pgcourse.classroom.grading import gradebook
from pgcourse.classroom.grading.assignment import (
    ASSIGNMENT_KEYS,
    UNITS,
    Assignment,
    LatePolicy,
    make_assignment,
    parse_duration,
    read_assignment_file,
)
from pgcourse.classroom.grading.course import (
    Chapter,
    Course,
    Exercise,
    GradingError,
    _is_locked_readonly,
    _manual_exercise,
    _points_of,
    _strip_magics,
    _top_level_names,
    build_chapter,
    cell_ids,
    course_cell_keys,
    find_course,
    load_course,
)
from pgcourse.classroom.grading.gradebook import (
    FORMULA_START,
    GRADEBOOK_FORMAT,
    STATUSES,
    SYMLINK_PROBLEM,
    ExerciseResult,
    GradeReport,
    StudentResult,
    Submission,
    _NotRead,
    _number,
    _size_text,
    check_gradebook_free,
    collect_identified,
    collect_submissions,
    csv_text_cell,
    read_gradebook_json,
    read_limited,
    read_report,
    read_submission,
    report_from_json,
    shown,
    shown_line,
    writable,
    write_gradebook,
)
from pgcourse.classroom.grading.sandbox import Limits
from pgcourse.classroom.notebook_format import Cell

UTC = timezone.utc
NEW_YEAR = datetime(2026, 1, 1, tzinfo=UTC)
NEW_YEAR_ISO = "2026-01-01T00:00:00+00:00"


# --------------------------------------------------------------------------------------------------------------------
# Small builders
# --------------------------------------------------------------------------------------------------------------------

def cell(index: int, source: str = "", cell_type: str = "code", tags: list[str] | None = None, **nbgrader) -> Cell:
    """A parsed cell with the given nbgrader metadata (none when no keyword is given)."""
    metadata: dict = {}
    if nbgrader:
        metadata["nbgrader"] = nbgrader
    if tags is not None:
        metadata["tags"] = tags
    return Cell(index, cell_type, source, metadata)


def raw_cell(source: str, cell_type: str = "code", **nbgrader) -> dict:
    """A cell as a notebook file holds it."""
    return {"cell_type": cell_type, "source": source, "metadata": {"nbgrader": nbgrader} if nbgrader else {}}


def notebook_bytes(*cells: dict, metadata: dict | None = None, version: int = 4) -> bytes:
    return json.dumps({"cells": list(cells), "metadata": metadata or {}, "nbformat": version,
                       "nbformat_minor": 5}).encode()


def write_notebook(path: Path, *cells: dict, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(notebook_bytes(*cells, **kwargs))
    return path


def check_raw(grade_id: str, points, source: str = "assert True") -> dict:
    return raw_cell(source, grade=True, grade_id=grade_id, points=points)


def auto(exercise_id: str, points: float = 1.0, answers: tuple[str, ...] = ("a",), check: str | None = None,
         partial: bool = False) -> Exercise:
    return Exercise(exercise_id, check or f"{exercise_id}_check", points, "assert True", answers, "auto", partial)


def manual(exercise_id: str, points: float = 1.0) -> Exercise:
    return Exercise(exercise_id, exercise_id, points, "", (exercise_id,), kind="manual")


def chapter_of(*exercises: Exercise, name: str = "01", answer_order: list[str] | None = None,
               grade_ids: set[str] | None = None, stubs: dict | None = None, course_cells: frozenset = frozenset(),
               context: list | None = None) -> Chapter:
    answer_order = answer_order if answer_order is not None else \
        [a for e in exercises if e.kind == "auto" for a in e.answer_ids]
    if grade_ids is None:
        grade_ids = {*answer_order, *(e.check_grade_id for e in exercises)}
    return Chapter(name, Path(f"{name}.ipynb"), context or [], list(exercises), answer_order, frozenset(grade_ids),
                   None, stubs or {}, course_cells)


def result(points: float, max_points: float, status: str = "passed", feedback: str = "", **kwargs) -> ExerciseResult:
    return ExerciseResult(points, max_points, status, feedback, **kwargs)


def report_of(chapter: Chapter, students: list[StudentResult], **kwargs) -> GradeReport:
    kwargs.setdefault("seconds", 1.0)
    return GradeReport(chapter, students, Limits(), kwargs.pop("isolation", "none"), kwargs.pop("detail", "test"),
                       **kwargs)


# ====================================================================================================================
# course.py
# ====================================================================================================================

def test_a_grading_error_is_a_value_error():
    """GradingError is a ValueError (callers that catch bad values catch it) with its message as given."""
    assert issubclass(GradingError, ValueError) and str(GradingError("bad --out")) == "bad --out"


@pytest.mark.parametrize("source, expected", [
    ("", ""),
    ("x = 1", "x = 1"),
    ("%matplotlib inline", "pass  # IPython line removed by the grader: %matplotlib inline"),
    ("!pip install x", "pass  # IPython line removed by the grader: !pip install x"),
    ("    %time f()", "    pass  # IPython line removed by the grader: %time f()"),
    ("\t!ls", "\tpass  # IPython line removed by the grader: !ls"),
    ("%time x  ", "pass  # IPython line removed by the grader: %time x  "),
    ("x = 5 % 2\ny = not_magic!", "x = 5 % 2\ny = not_magic!"),
    ("a = 1\n%%timeit\nb = 2\n", "a = 1\npass  # IPython line removed by the grader: %%timeit\nb = 2\n"),
    ("% " + "m" * 70, "pass  # IPython line removed by the grader: % " + "m" * 58),
    ("é\n  !é", "é\n  pass  # IPython line removed by the grader: !é"),
])
def test_ipython_lines_become_pass_with_their_indent_and_the_first_60_characters(source, expected):
    """A line whose first non-blank character is ``%`` or ``!`` becomes ``pass`` at the same indent, with a comment
    quoting the line's first 60 characters (from the magic on, trailing spaces kept); every other line, and the line
    breaks, stay as they are."""
    assert _strip_magics(source) == expected


@pytest.mark.parametrize("exercise_id, label", [
    ("ch02_value_loss", "value_loss"), ("ch123_a", "a"), ("ch02", "ch02"), ("ch_a", "ch_a"), ("xch02_a", "xch02_a"),
    ("ch02_ch03_a", "ch03_a"), ("CH02_a", "CH02_a"), ("value", "value"), ("ch0_", ""),
])
def test_an_exercises_label_drops_only_a_leading_chapter_prefix(exercise_id, label):
    """An exercise's label is its id without a leading ``ch<digits>_`` (lower-case ``ch``, at least one digit, once)."""
    assert auto(exercise_id).label == label


def test_an_exercise_is_auto_graded_and_without_partial_credit_by_default():
    """An Exercise is an auto-graded one (kind "auto") without partial credit unless told otherwise."""
    exercise = Exercise("e", "e_check", 1.0, "", ())
    assert (exercise.kind, exercise.partial) == ("auto", False)


def test_a_chapters_points_and_its_auto_and_manual_exercises():
    """A chapter is worth the sum of its exercises' points (0 with none); its auto exercises are those of kind "auto"
    and its manual ones those of kind "manual", each in notebook order; ``exercise(id)`` finds one by id and a
    KeyError names an unknown id."""
    a, why, b = auto("a", 2.0), manual("why", 0.5), auto("b", 3.25, ("b1",))
    chapter = chapter_of(a, why, b)
    assert chapter.max_points == 5.75
    assert chapter.auto_exercises == [a, b] and chapter.manual_exercises == [why]
    assert chapter.exercise("why") is why and chapter.exercise("b") is b
    with pytest.raises(KeyError, match="nope"):
        chapter.exercise("nope")
    assert chapter_of().max_points == 0


def test_a_chapters_spec_is_its_context_its_auto_exercises_and_the_names_its_stubs_define():
    """What a worker gets: the context, the auto exercises only (id, check cell, points, check source, answer ids,
    partial), the sorted top-level names the handed-out answer cells define, and a key: the first 16 hex digits of
    the SHA-256 of that data as sorted-key JSON."""
    a = Exercise("a", "a_check", 2.0, "assert f(1) == 2", ("a1", "a2"), partial=True)
    chapter = chapter_of(a, manual("why"), answer_order=["a1", "a2"], context=[("<setup cell 0>", "import os")],
                         stubs={"a1": ["def f(x):\n    raise NotImplementedError()", "class K:\n    pass\nz: int = 3"],
                                "a2": ["(p, [q, r]) = 1, [2, 3]\nasync def g():\n    pass\nimport os\n"
                                       "for i in []:\n    pass\nw += 1\nf = 2"]})
    expected = {"context": [("<setup cell 0>", "import os")],
                "exercises": [{"id": "a", "check_grade_id": "a_check", "points": 2.0,
                               "check_source": "assert f(1) == 2", "answer_ids": ["a1", "a2"], "partial": True}],
                "answer_names": ["K", "f", "g", "p", "q", "r", "z"]}
    key = hashlib.sha256(json.dumps(expected, sort_keys=True).encode()).hexdigest()[:16]
    assert chapter.spec() == {**expected, "key": key}
    cheaper = chapter_of(Exercise("a", "a_check", 1.0, "assert f(1) == 2", ("a1", "a2"), partial=True),
                         answer_order=["a1", "a2"], context=chapter.context, stubs=chapter.stubs)
    assert cheaper.spec()["key"] != key and len(key) == 16


@pytest.mark.parametrize("source, names", [
    ("", set()),
    ("def f(:", set()),
    ("def f():\n    inner = 1", {"f"}),
    ("async def g():\n    pass", {"g"}),
    ("class K:\n    attr = 1", {"K"}),
    ("x = y = 1", {"x", "y"}),
    ("a, (b, c) = 1, (2, 3)", {"a", "b", "c"}),
    ("n: int = 3", {"n"}),
    ("m: int", {"m"}),
    ("w += 1", set()),
    ("import os\nfrom math import pi", set()),
    ("for i in range(2):\n    j = i", set()),
    ("if True:\n    k = 1", set()),
])
def test_the_names_a_cell_defines_are_its_top_level_functions_classes_and_assignments(source, names):
    """A cell defines the functions (also async), classes and assigned or annotated variables of its top level; not
    an augmented assignment, an import, a loop's or an if's names, nor anything nested; a cell that does not parse
    defines none."""
    assert _top_level_names(source) == names


@pytest.mark.parametrize("meta, locked", [
    ({"locked": True}, True), ({"locked": True, "grade_id": "r"}, True), ({"locked": False}, False), ({}, False),
    ({"locked": True, "solution": True}, False), ({"locked": True, "grade": True}, False),
    ({"locked": True, "solution": False, "grade": False}, True), ({"locked": 1}, True),
])
def test_a_read_only_cell_is_locked_and_neither_an_answer_nor_a_check(meta, locked):
    """A locked read-only cell is one nbgrader locks that is neither a solution nor a graded cell."""
    assert _is_locked_readonly(cell(0, "x", **meta)) is locked


SOLUTION = "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"


def course_cells() -> list[Cell]:
    return [
        cell(0, "import numpy as np"),
        cell(1, "# Intro", "markdown"),
        cell(2, "%matplotlib inline\nx = 1"),
        cell(3, "HELPER = 1", locked=True, grade_id="ro1"),
        cell(4, "noted = 1", grade_id="tagged", locked=False),
        cell(5, SOLUTION, solution=True, grade_id="ch01_a_answer"),
        cell(6, "y = 2"),
        cell(7, "LATER = 2", locked=True),
        cell(8, "assert f() == 1", grade=True, grade_id="ch01_a_check", points=2),
        cell(9, "b1 = 1", solution=True, grade_id="ch01_b1"),
        cell(10, "%time b2 = 2", solution=True, grade_id="ch01_b2"),
        cell(11, "secret = 3", tags=["solution_only"], solution=True, grade_id="solonly"),
        cell(12, "!echo check\nassert b1", grade=True, grade_id="ch01_b_check", points=3.5),
        cell(13, "Because.", "markdown", solution=True, grade=True, grade_id="ch01_why", points=1),
        cell(14, "Notes.", "markdown", solution=True, grade_id="md_sol"),
        cell(15, "assert True", grade=True, grade_id="ch01_c", points=0),
        cell(16, "both = 1", solution=True, grade=True, grade_id="both_answer", points=4),
        cell(17, "raw", "raw", grade=True, grade_id="raw_check", points=1),
    ]


def test_a_course_notebooks_grading_structure():
    """From a course notebook: setup cells are the plain code cells (no nbgrader metadata) before the first answer,
    read-only cells the locked ones anywhere; an answer is a code cell with solution (before grade: a cell with both
    is an answer), unless tagged solution_only; a check is a code cell with grade and takes the answers since the
    previous check; a markdown cell with solution and grade is a free-text exercise; an exercise's id is its check's
    grade_id without ``_check``; every grade_id of any cell is the chapter's."""
    chapter = build_chapter("01", Path("01.ipynb"), course_cells())
    magic = "pass  # IPython line removed by the grader: %matplotlib inline"
    assert chapter.context == [("<setup cell 0>", "import numpy as np"), ("<setup cell 2>", f"{magic}\nx = 1"),
                               ("<read-only cell ro1>", "HELPER = 1"), ("<read-only cell 7>", "LATER = 2")]
    assert [(e.id, e.check_grade_id, e.points, e.answer_ids, e.kind) for e in chapter.exercises] == [
        ("ch01_a", "ch01_a_check", 2, ("ch01_a_answer",), "auto"),
        ("ch01_b", "ch01_b_check", 3.5, ("ch01_b1", "ch01_b2"), "auto"),
        ("ch01_why", "ch01_why", 1, ("ch01_why",), "manual"),
        ("ch01_c", "ch01_c", 0, (), "auto")]
    assert chapter.exercises[1].check_source == "pass  # IPython line removed by the grader: !echo check\nassert b1"
    assert chapter.answer_order == ["ch01_a_answer", "ch01_b1", "ch01_b2", "both_answer"]
    assert chapter.grade_ids == {"ro1", "tagged", "ch01_a_answer", "ch01_a_check", "ch01_b1", "ch01_b2", "solonly",
                                 "ch01_b_check", "ch01_why", "md_sol", "ch01_c", "both_answer", "raw_check"}
    assert chapter.reference == {"ch01_a_answer": [SOLUTION], "ch01_b1": ["b1 = 1"],
                                 "ch01_b2": ["pass  # IPython line removed by the grader: %time b2 = 2"],
                                 "both_answer": ["both = 1"]}
    assert chapter.stubs["ch01_a_answer"] == ["def f():\n    raise NotImplementedError()"]
    assert chapter.stubs["ch01_b1"] == ["b1 = 1"] and chapter.course_cells == frozenset()
    assert (chapter.name, chapter.path) == ("01", Path("01.ipynb"))


def test_a_notebook_without_solution_markers_has_no_reference_answers():
    """The reference answers (for the grader's self-test) are kept only when some answer cell holds a solution
    region: a handed-out notebook (stubs only) has none."""
    cells = [cell(0, "def f():\n    raise NotImplementedError()", solution=True, grade_id="a"),
             cell(1, "assert True", grade=True, grade_id="a_check", points=1)]
    chapter = build_chapter("01", Path("01.ipynb"), cells)
    assert chapter.reference is None and chapter.stubs == {"a": ["def f():\n    raise NotImplementedError()"]}


def test_a_check_named_only_check_keeps_its_whole_grade_id():
    """An exercise's id is its check's grade_id without the ``_check`` suffix, unless nothing would be left."""
    chapter = build_chapter("01", Path("01.ipynb"), [cell(0, "", grade=True, grade_id="_check", points=1),
                                                     cell(1, "", grade=True, grade_id="x_check_check", points=1)])
    assert [e.id for e in chapter.exercises] == ["_check", "x_check"]


@pytest.mark.parametrize("cells, message", [
    ([], "has no graded exercises"),
    ([cell(0, "x = 1", solution=True, grade_id="a")], "has no graded exercises"),
    ([cell(0, "Why?", "markdown", grade=True, grade_id="m", points=1)], "has no graded exercises"),
    ([cell(0, "x", solution=True), cell(1, "", grade=True, grade_id="c", points=1)],
     "cell 0 is a solution cell without a grade_id"),
    ([cell(0, ""), cell(3, "x", solution=True, grade_id=""), cell(4, "", grade=True, grade_id="c", points=1)],
     "cell 3 is a solution cell without a grade_id"),
    ([cell(0, "", grade=True, grade_id="a_check", points=1), cell(1, "", grade=True, grade_id="a", points=1)],
     "two check cells give the same exercise id"),
    ([cell(0, "", grade=True, grade_id="a", points=1), cell(1, "", "markdown", solution=True, grade=True,
                                                            grade_id="a", points=1)],
     "two check cells give the same exercise id"),
])
def test_a_notebook_that_grades_nothing_or_is_ambiguous_is_refused(cells, message):
    """A course notebook must grade something (a code check or a free-text question), every answer cell needs a
    grade_id, and no two exercises may share an id: GradingError names the notebook and what is wrong."""
    with pytest.raises(GradingError, match=message) as error:
        build_chapter("01", Path("course/01.ipynb"), cells)
    assert str(error.value).startswith("course/01.ipynb")


@pytest.mark.parametrize("points, ok", [
    (0, True), (0.0, True), (2, True), (2.5, True), (1e9, True), (-1, False), (-0.5, False), (True, False),
    (False, False), ("2", False), (None, False), (float("nan"), False), (float("inf"), False), ([1], False),
])
def test_a_graded_cells_points_are_a_finite_number_at_least_0(points, ok):
    """A graded cell's points are a finite int or float ≥ 0 (0 included; not a bool, a string, NaN or infinity), and
    the cell needs a grade_id; otherwise GradingError names the notebook and the cell's index."""
    graded = cell(7, "", grade=True, grade_id="c", points=points)
    if ok:
        assert _points_of(Path("n.ipynb"), graded) == points
    else:
        with pytest.raises(GradingError, match=r"n.ipynb: graded cell 7 needs a grade_id and non-negative points"):
            _points_of(Path("n.ipynb"), graded)
    with pytest.raises(GradingError, match="graded cell 7"):
        _points_of(Path("n.ipynb"), cell(7, "", grade=True, points=1))


def test_a_free_text_question_is_its_own_answer_cell():
    """A free-text question (a markdown answer with points) is a manual exercise whose id, check cell and only answer
    cell are its grade_id, with its points and no check source."""
    exercise = _manual_exercise(Path("n.ipynb"), cell(3, "Why?", "markdown", solution=True, grade=True,
                                                     grade_id="ch01_why", points=2.5))
    assert exercise == Exercise("ch01_why", "ch01_why", 2.5, "", ("ch01_why",), kind="manual", partial=False)


@pytest.mark.parametrize("data, ids", [
    (json.dumps({"cells": [{"id": "a"}, "junk", {"id": ""}, {"id": 5}, {}, {"id": "f"}]}).encode(),
     {0: "a", 5: "f"}),
    (b"\xef\xbb\xbf" + json.dumps({"cells": [{"id": "x"}]}).encode(), {0: "x"}),
    (json.dumps({"cells": []}).encode(), {}),
    (json.dumps({"cells": {"0": {"id": "a"}}}).encode(), {}),
    (json.dumps([{"id": "a"}]).encode(), {}),
    (json.dumps({"worksheets": []}).encode(), {}),
    (b"{not json", {}),
    (b"\xff\xfe", {}),
    (b"[" * 100000, {}),
])
def test_cell_ids_are_the_nonempty_string_ids_by_raw_index(data, ids):
    """The nbformat 4.5 ids of a notebook's cells, keyed by the cell's position in the file's cells list (entries
    that are not cells count as positions), only non-empty strings; ``{}`` when the file is not JSON, not an object,
    or has no cells list (a UTF-8 byte order mark is allowed)."""
    assert cell_ids(data) == ids


def test_the_course_cells_are_known_by_their_ids_and_by_the_sources_of_their_non_answer_cells():
    """The course's own cells are known by ``id:<cell id>`` (every cell with one, answers too) and by
    ``src:<source, stripped>`` (every cell except the answer cells, whose source is the student's to change)."""
    cells = [cell(0, "x = 1 \n"), cell(1, "answer", solution=True, grade_id="a"), cell(2, "  # Title  ", "markdown"),
             cell(3, "assert x", grade=True, grade_id="c", points=1)]
    assert course_cell_keys(cells, {0: "aa", 1: "bb", 7: "zz"}) == {"id:aa", "id:bb", "src:x = 1", "src:# Title",
                                                                     "src:assert x"}
    assert course_cell_keys([], {}) == frozenset()


def make_course(root: Path, *, solutions: dict | None = None, exercises: dict | None = None) -> Path:
    """A course folder: {name: cells} in solutions/ and exercises/."""
    for folder, notebooks in (("solutions", solutions or {}), ("exercises", exercises or {})):
        for name, cells in notebooks.items():
            write_notebook(root / folder / f"{name}.ipynb", *cells)
    return root


def one_check(points=2, grade_id: str = "ch01_a_check") -> list[dict]:
    return [raw_cell(SOLUTION, solution=True, grade_id="ch01_a"), check_raw(grade_id, points)]


def test_load_course_prefers_solutions_and_needs_a_notebook(tmp_path):
    """A course's notebooks are the ``*.ipynb`` of exercises/ and solutions/ by name, solutions/ winning where both
    have one; its root is resolved; no notebook in either folder is a GradingError naming both folders."""
    root = make_course(tmp_path / "course", solutions={"01_a": one_check()}, exercises={"01_a": one_check(),
                                                                                         "02_b": one_check()})
    (root / "solutions" / "notes.txt").write_text("not a notebook")
    assert load_course(tmp_path / "course" / ".." / "course").root == root
    course = load_course(root)
    assert course.notebooks == {"01_a": root / "solutions" / "01_a.ipynb",
                                                        "02_b": root / "exercises" / "02_b.ipynb"}
    assert course.names == ["01_a", "02_b"]
    (tmp_path / "empty" / "solutions").mkdir(parents=True)
    with pytest.raises(GradingError, match="no course notebooks in .*empty/solutions or .*empty/exercises"):
        load_course(tmp_path / "empty")


def test_a_courses_names_are_sorted():
    """A course lists its chapters' names in sorted order, whatever order they were found in."""
    course = Course(Path("."), {"10_x": Path("b"), "02_y": Path("a"), "01_z": Path("c")})
    assert course.names == ["01_z", "02_y", "10_x"]


def test_find_course_looks_in_the_folder_then_its_parents_then_pgcourses_own_repo(tmp_path, monkeypatch):
    """The course is the first of the start folder, its parents and pgcourse's own repository (three folders above
    the package's grading folder) with a solutions/ or exercises/ folder holding a notebook; an empty solutions/
    folder is not a course; none found is a GradingError saying to pass --course."""
    make_course(tmp_path / "course", exercises={"01": one_check()})
    deep = tmp_path / "course" / "sub" / "deeper"
    (deep / "solutions").mkdir(parents=True)  # empty: not a course
    assert find_course(deep).root == tmp_path / "course"
    monkeypatch.chdir(deep)
    assert find_course().root == tmp_path / "course"
    repo = make_course(tmp_path / "repo", solutions={"01": one_check()})
    monkeypatch.setattr(course_module, "__file__", str(repo / "pgcourse" / "classroom" / "grading" / "course.py"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert find_course(elsewhere).root == repo
    monkeypatch.setattr(course_module, "__file__", str(tmp_path / "x" / "pgcourse" / "classroom" / "grading" / "c.py"))
    with pytest.raises(GradingError, match="could not find the course .*pass --course DIR"):
        find_course(elsewhere)


def test_a_courses_chapter_is_read_once_with_its_course_cells(tmp_path):
    """``chapter(name)`` reads the notebook once (later calls return the same chapter, even if the file changes) and
    records the course's own cells; ``grade_ids(name)`` is every grade_id of the notebook, also read once; a notebook
    that cannot be parsed is a GradingError naming it."""
    cells = [dict(raw_cell("import os"), id="setup1"), raw_cell(SOLUTION, solution=True, grade_id="ch01_a"),
             raw_cell("Notes", "markdown", grade_id="md"), check_raw("ch01_a_check", 2)]
    root = make_course(tmp_path, solutions={"01": cells, "02": []})
    (root / "solutions" / "03.ipynb").write_bytes(b"")
    course = load_course(root)
    chapter = course.chapter("01")
    assert chapter.course_cells == {"id:setup1", "src:import os", "src:Notes", "src:assert True"}
    assert course.grade_ids("01") == {"ch01_a", "md", "ch01_a_check"}
    (root / "solutions" / "01.ipynb").write_bytes(notebook_bytes())
    assert course.chapter("01") is chapter and course.grade_ids("01") == {"ch01_a", "md", "ch01_a_check"}
    assert course.grade_ids("02") == frozenset()
    with pytest.raises(GradingError, match=r"course notebook .*03.ipynb: the file is empty"):
        course.chapter("03")


@pytest.mark.parametrize("handout_points, expected", [(3, ["ch01_a 3 point(s) but"]), (2, []), (2.0, []),
                                                      (None, []), ("missing", [])])
def test_the_handout_is_compared_with_the_course_notebook_by_check_points(tmp_path, handout_points, expected):
    """Where exercises/NAME.ipynb gives a check other points than solutions/NAME.ipynb (the notebook graded), the
    teacher is told (both files, the exercise, both numbers, that solutions/ counts); equal points (2 and 2.0), a
    check without points or a check the handout lacks say nothing."""
    handout = one_check(handout_points) if handout_points != "missing" else one_check(2, "other_check")
    if handout_points is None:
        handout[1]["metadata"]["nbgrader"].pop("points")
    root = make_course(tmp_path, solutions={"01": one_check(2)}, exercises={"01": handout})
    problems = load_course(root).handout_disagreements("01")
    assert len(problems) == len(expected)
    if expected:
        assert problems[0] == (f"{root}/exercises/01.ipynb gives ch01_a 3 point(s) but {root}/solutions/01.ipynb "
                               f"gives 2: the grader uses {root}/solutions/01.ipynb (edit it and run `pgcourse "
                               "exercises`, or set the points in an assignment file with --assignment)")


def test_a_handout_that_is_the_graded_notebook_missing_or_unreadable(tmp_path):
    """No comparison when the graded notebook is the handout itself (no solutions/) or there is no handout; an
    unreadable handout is said so, naming both files."""
    root = make_course(tmp_path / "a", exercises={"01": one_check(2)})
    assert load_course(root).handout_disagreements("01") == []
    root = make_course(tmp_path / "b", solutions={"01": one_check(2)})
    assert load_course(root).handout_disagreements("01") == []
    (root / "exercises").mkdir()
    (root / "exercises" / "01.ipynb").write_bytes(b"{broken")
    assert load_course(root).handout_disagreements("01") == [
        f"{root}/exercises/01.ipynb could not be read to compare its points with {root}/solutions/01.ipynb"]


CHAPTER_NAMES = ["01_reinforce", "02_baseline", "04_ppo", "04b_ppo_scratch", "10_trpo", "07B_upper"]


@pytest.mark.parametrize("typed, name", [
    ("01_reinforce", "01_reinforce"), ("01_reinforce.ipynb", "01_reinforce"),
    ("some/dir/02_baseline.ipynb", "02_baseline"), ("1", "01_reinforce"), ("01", "01_reinforce"),
    ("001", "01_reinforce"), ("4", "04_ppo"), ("04", "04_ppo"), ("04b", "04b_ppo_scratch"), ("04B", "04b_ppo_scratch"),
    ("10", "10_trpo"), ("7b", "07B_upper"), ("07B", "07B_upper"),
])
def test_a_chapter_is_found_by_its_name_file_or_number(typed, name):
    """A teacher may type a chapter's name, its file name (any folder before it), or its number with or without
    leading zeros, a lettered chapter's letter in either case."""
    course = Course(Path("/c"), {n: Path(f"/c/solutions/{n}.ipynb") for n in CHAPTER_NAMES})
    assert course.resolve(typed) == name


@pytest.mark.parametrize("typed", ["3", "x", "1a", "a1", "", "reinforce", "01_reinforce.py", "1.0", " 1"])
def test_an_unknown_chapter_is_refused_listing_the_courses(typed):
    """A name or number that matches no chapter is a GradingError naming what was typed, the course's folder and its
    chapters."""
    course = Course(Path("/c"), {n: Path(f"/c/solutions/{n}.ipynb") for n in CHAPTER_NAMES})
    with pytest.raises(GradingError) as error:
        course.resolve(typed)
    assert str(error.value) == (f"unknown chapter {typed!r}; the course at /c has: 01_reinforce, 02_baseline, 04_ppo, "
                                "04b_ppo_scratch, 07B_upper, 10_trpo")


def test_a_number_two_chapters_share_is_refused():
    """A number that two chapters share (``05_a``, ``05_b``) names neither: GradingError."""
    course = Course(Path("/c"), {"05_a": Path("a"), "05_b": Path("b"), "06_c": Path("c")})
    assert course.resolve("6") == "06_c"
    with pytest.raises(GradingError, match="unknown chapter '5'"):
        course.resolve("5")


# ====================================================================================================================
# assignment.py
# ====================================================================================================================

def test_the_time_units_in_seconds():
    """The units a duration or a late penalty may use, in seconds."""
    assert UNITS == {"s": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400, "w": 604800,
                     "week": 604800}


@pytest.mark.parametrize("text, seconds", [
    ("15m", 900), ("2h", 7200), ("1d", 86400), ("1w", 604800), ("30s", 30), ("1.5h", 5400), ("2min", 120),
    ("2mins", 120), ("3 hours", 10800), (" 1 day ", 86400), ("2days", 172800), ("1week", 604800), ("0m", 0),
    ("10hour", 36000), ("1ws", 604800), ("0.25d", 21600),
])
def test_a_duration_is_a_number_and_a_unit(text, seconds):
    """A duration is a non-negative number (decimals allowed) and a unit (s, m, min, h, hour, d, day, w, week, each
    with an optional plural s), spaces allowed around and between them."""
    assert parse_duration(text, "--grace") == seconds


@pytest.mark.parametrize("text", ["", "15", "m", "-1h", "15x", "1 h m", "2H", "1.d", ".5h", "1e3s", "15 m/day",
                                  "1,5h", "1dd"])
def test_anything_else_is_not_a_duration(text):
    """Anything else (no unit, no number, a sign, another unit or case, an exponent) is a GradingError naming the
    option and the text."""
    with pytest.raises(GradingError) as error:
        parse_duration(text, "--grace")
    assert str(error.value) == f"--grace {text!r}: expected a duration such as 15m, 2h or 1d"


def test_no_deadline_is_no_late_policy_and_needs_no_penalty():
    """Without a deadline there is no late policy (nothing is late); a penalty or a grace period without one is a
    GradingError (empty text counts as not given)."""
    assert LatePolicy.parse(None, None, None) == LatePolicy() == LatePolicy.parse(None, "", "")
    assert (LatePolicy().deadline, LatePolicy().amount, LatePolicy().percent, LatePolicy().unit_s,
            LatePolicy().grace_s, LatePolicy().text) == (None, 0.0, True, 0.0, 0.0, "")
    for penalty, grace in (("10%/day", None), (None, "15m"), ("10%", "1h")):
        with pytest.raises(GradingError, match="--late-penalty and --grace need a --deadline"):
            LatePolicy.parse(None, penalty, grace)


@pytest.mark.parametrize("penalty, amount, percent, unit_s", [
    ("10%/day", 10.0, True, 86400.0), ("2%/hour", 2.0, True, 3600.0), ("1pt/day", 1.0, False, 86400.0),
    ("1pts/d", 1.0, False, 86400.0), ("1 point / h", 1.0, False, 3600.0), ("2points/day", 2.0, False, 86400.0),
    ("100%", 100.0, True, 0.0), ("5", 5.0, True, 0.0), (" 2.5 % / hour ", 2.5, True, 3600.0),
    ("150pt", 150.0, False, 0.0),
    ("0%/day", 0.0, True, 86400.0), (None, 0.0, True, 0.0), ("", 0.0, True, 0.0),
])
def test_a_late_penalty_is_an_amount_percent_or_points_per_day_hour_or_once(penalty, amount, percent, unit_s):
    """A late penalty is an amount, ``%`` (of the points possible; also when no kind is written) or points (pt, pts,
    point, points), per day or hour (d, h) or once (no unit); the policy keeps the text as written."""
    policy = LatePolicy.parse(NEW_YEAR_ISO, penalty, None)
    assert (policy.deadline, policy.amount, policy.percent, policy.unit_s, policy.grace_s, policy.text) == \
        (NEW_YEAR, amount, percent, unit_s, 0.0, penalty or "")


@pytest.mark.parametrize("penalty, message", [
    ("10%/week", "expected e.g. 10%/day"), ("-5%", "expected e.g. 10%/day"), ("10%/days", "expected e.g. 10%/day"),
    ("ten", "expected e.g. 10%/day"), ("10%/DAY", "expected e.g. 10%/day"), ("10 pct", "expected e.g. 10%/day"),
    ("100.5%", "a percentage above 100% takes more than the points"),
    ("101", "a percentage above 100% takes more than the points"),
])
def test_a_late_penalty_that_cannot_be_read_or_takes_more_than_everything_is_refused(penalty, message):
    """A late penalty in another form, or a percentage above 100 (also one written without ``%``), is a GradingError
    naming ``--late-penalty`` and the text."""
    with pytest.raises(GradingError, match=message) as error:
        LatePolicy.parse(NEW_YEAR_ISO, penalty, None)
    assert str(error.value).startswith(f"--late-penalty {penalty!r}: ")


def test_a_deadline_that_is_no_time_is_refused_naming_the_option():
    """A deadline that is not a time is a GradingError naming ``--deadline``."""
    with pytest.raises(GradingError, match="--deadline: 'soon' is not a time"):
        LatePolicy.parse("soon", "10%/day", None)


def test_the_grace_period_is_a_duration():
    """``grace`` is a duration in seconds (0 when not given); one that is not a duration names ``--grace``."""
    assert LatePolicy.parse(NEW_YEAR_ISO, None, "15m").grace_s == 900.0
    assert LatePolicy.parse(NEW_YEAR_ISO, None, None).grace_s == 0.0
    with pytest.raises(GradingError, match="--grace 'soon'"):
        LatePolicy.parse(NEW_YEAR_ISO, None, "soon")


@pytest.mark.parametrize("policy, text", [
    (LatePolicy(), "no deadline"),
    (LatePolicy(deadline=NEW_YEAR), f"deadline {NEW_YEAR_ISO}, no late penalty"),
    (LatePolicy(NEW_YEAR, 10, True, 86400, 900, "10%/day"),
     f"deadline {NEW_YEAR_ISO}, grace 15 min, late penalty 10%/day"),
    (LatePolicy(NEW_YEAR, 1, False, 0, 90, "1pt"), f"deadline {NEW_YEAR_ISO}, grace 1.5 min, late penalty 1pt"),
    (LatePolicy(NEW_YEAR, 0, True, 86400, 0, "0%/day"), f"deadline {NEW_YEAR_ISO}, late penalty 0%/day"),
    (LatePolicy(datetime(2026, 1, 1, 1, 30, 5, 999, tzinfo=timezone(timedelta(hours=1))), grace_s=3600),
     "deadline 2026-01-01T00:30:05+00:00, grace 60 min, no late penalty"),
])
def test_a_late_policy_described_in_words(policy, text):
    """A policy reads: its deadline in UTC to the second, the grace period in minutes when there is one, then the
    penalty as the teacher wrote it or "no late penalty"; "no deadline" without a deadline."""
    assert policy.describe() == text


@pytest.mark.parametrize("submitted, late", [
    (None, 0.0), (NEW_YEAR - timedelta(days=1), 0.0), (NEW_YEAR, 0.0), (NEW_YEAR + timedelta(seconds=900), 0.0),
    (NEW_YEAR + timedelta(seconds=901), 1.0), (NEW_YEAR + timedelta(hours=2), 7200.0 - 900),
])
def test_lateness_is_the_seconds_after_the_deadline_and_the_grace_period(submitted, late):
    """Seconds late are those after deadline + grace (never negative); none for an unknown submission time."""
    assert LatePolicy(NEW_YEAR, 10, True, 86400, 900, "x").lateness(submitted) == late
    assert LatePolicy().lateness(NEW_YEAR + timedelta(days=5)) == 0.0


@pytest.mark.parametrize("late_s, units, expected", [
    (0.0, None, (0.0, 0)), (-5.0, None, (0.0, 0)), (1.0, None, (1.0, 1)), (86400.0, None, (1.0, 1)),
    (86400.5, None, (2.0, 2)), (10 * 86400.0, None, (10.0, 10)), (11 * 86400.0, None, (10.0, 11)),
    (0.0, 0, (0.0, 0)), (0.0, 3, (3.0, 3)), (5 * 86400.0, 1, (1.0, 1)),
])
def test_a_percent_penalty_per_day_started_capped_at_the_points_possible(late_s, units, expected):
    """At 10%/day of 10 points: each day started after the deadline takes 1 point (a forced ``units`` count wins
    over the seconds), at most all 10 points; nothing when not late and no count is forced."""
    policy = LatePolicy(NEW_YEAR, 10.0, True, 86400.0)
    assert policy.penalty(late_s, max_points=10.0, units=units) == expected


def test_a_points_penalty_and_a_once_only_penalty():
    """A points penalty takes its amount per unit whatever the points possible (up to them); a penalty with no unit
    is charged once, however late; amounts are rounded to 6 decimals."""
    per_hour = LatePolicy(NEW_YEAR, 1.5, False, 3600.0)
    assert per_hour.penalty(3600 * 2 + 1, max_points=100.0) == (4.5, 3)
    assert per_hour.penalty(3600 * 20, max_points=7.0) == (7.0, 20)
    once = LatePolicy(NEW_YEAR, 25.0, True, 0.0)
    assert once.penalty(1.0, max_points=8.0) == (2.0, 1) == once.penalty(1e7, max_points=8.0)
    assert once.penalty(0.0, max_points=8.0) == (0.0, 0) == once.penalty(-1.0, max_points=8.0)
    third = LatePolicy(NEW_YEAR, 1 / 3, False, 0.0)
    assert third.penalty(1.0, max_points=5.0) == (0.333333, 1)
    assert LatePolicy(NEW_YEAR, 10.0, True, 86400.0).penalty(1.0, max_points=0.0) == (0.0, 1)


@pytest.mark.parametrize("unit_s, name", [(0.0, ""), (3600.0, "hour"), (86400.0, "day"), (60.0, "60 s"),
                                          (1.5, "1.5 s"), (604800.0, "604800 s")])
def test_a_late_units_name(unit_s, name):
    """The unit charged is called "day" or "hour", nothing for a once-only penalty, else its seconds."""
    assert LatePolicy(unit_s=unit_s).unit_name() == name


def test_a_late_policy_in_json_and_back():
    """A policy is written as its deadline (UTC ISO), penalty text and grace seconds ({} without a deadline) and read
    back as the same policy; a JSON without a deadline, or with an empty one, is no policy."""
    policy = LatePolicy(NEW_YEAR, 10.0, True, 86400.0, 900.0, "10%/day")
    assert policy.to_json() == {"deadline": NEW_YEAR_ISO, "late_penalty": "10%/day", "grace_s": 900.0}
    assert LatePolicy.from_json(policy.to_json()) == policy
    assert LatePolicy().to_json() == {}
    for data in ({}, {"deadline": ""}, {"deadline": None, "late_penalty": "10%"}, {"late_penalty": "10%"}):
        assert LatePolicy.from_json(data) == LatePolicy()
    assert LatePolicy.from_json({"deadline": NEW_YEAR_ISO, "late_penalty": "", "grace_s": 0}) == \
        LatePolicy(NEW_YEAR, 0.0, True, 0.0, 0.0, "")
    assert LatePolicy.from_json({"deadline": NEW_YEAR_ISO, "grace_s": 90}).grace_s == 90.0


def test_an_update_inherits_what_this_run_does_not_set():
    """``inherit`` takes from the gradebook being updated what the run does not set: the exercises' numeric points
    (entries without an id, or not objects, skipped), partial credit if any exercise had it, hide_expected, the
    assignment's name when it is not the chapter's, the chapter and the late policy."""
    gradebook_json = {
        "exercises": [{"id": "a", "points": 2, "partial_credit": False}, {"id": "b", "points": 1.5,
                                                                          "partial_credit": True},
                      {"id": "c", "points": "x"}, {"id": "d"}, {"points": 3}, "junk"],
        "settings": {"hide_expected": 1}, "assignment": "HW1", "chapter": "01",
        "late_policy": {"deadline": NEW_YEAR_ISO, "late_penalty": "10%/day", "grace_s": 900.0}}
    taken = Assignment()
    taken.inherit(gradebook_json)
    assert taken.points == {"a": 2.0, "b": 1.5} and all(type(v) is float for v in taken.points.values())
    assert (taken.partial_credit, taken.hide_expected, taken.name, taken.chapter) == (True, True, "HW1", "01")
    assert taken.policy == LatePolicy(NEW_YEAR, 10.0, True, 86400.0, 900.0, "10%/day")
    own_policy = LatePolicy(NEW_YEAR + timedelta(days=1))
    kept = Assignment("Mine", "02", {"x": 1.0}, own_policy, False, False)
    kept.inherit(gradebook_json)
    assert (kept.name, kept.chapter, kept.points, kept.policy, kept.partial_credit, kept.hide_expected) == \
        ("Mine", "02", {"x": 1.0}, own_policy, False, False)


def test_an_update_of_a_gradebook_named_for_its_chapter_sets_no_name():
    """A gradebook whose assignment is its chapter's name (or that has neither) gives no name; no exercise with
    partial credit and no settings give False for both flags."""
    for data in ({"assignment": "01", "chapter": "01", "exercises": [{"id": "a", "points": 1}]}, {}):
        taken = Assignment()
        taken.inherit(data)
        assert (taken.name, taken.partial_credit, taken.hide_expected) == (None, False, False)
        assert taken.policy == LatePolicy()


def test_an_assignment_applies_its_points_and_partial_credit_to_auto_exercises_only():
    """``apply`` gives the chapter the assignment's points (others keep theirs) and partial credit to its auto
    exercises when asked (never to a free-text one); the course's chapter itself is not changed."""
    chapter = chapter_of(auto("a", 1.0), manual("why", 2.0), auto("b", 3.0, ("b1",)))
    applied = Assignment(points={"a": 5.0, "why": 0.0}, partial_credit=True).apply(chapter)
    assert [(e.id, e.points, e.partial) for e in applied.exercises] == [("a", 5.0, True), ("why", 0.0, False),
                                                                        ("b", 3.0, True)]
    assert [(e.points, e.partial) for e in chapter.exercises] == [(1.0, False), (2.0, False), (3.0, False)]
    for partial in (None, False):
        assert not any(e.partial for e in Assignment(partial_credit=partial).apply(chapter).exercises)
    assert applied.name == chapter.name and applied.answer_order == chapter.answer_order


@pytest.mark.parametrize("source, start", [("--assignment hw.toml", "--assignment hw.toml"), ("", "points")])
def test_points_for_an_exercise_the_chapter_lacks_are_refused(source, start):
    """Points for an exercise the chapter does not have are a GradingError naming them (sorted), the chapter and its
    exercises, from the assignment file (or "points" when set otherwise)."""
    chapter = chapter_of(auto("a"), manual("why"))
    with pytest.raises(GradingError) as error:
        Assignment(points={"zz": 1.0, "b": 2.0, "a": 1.0}, source=source).apply(chapter)
    assert str(error.value) == f"{start}: b, zz is not an exercise of 01; its exercises are a, why"


def test_the_settings_an_assignment_file_may_hold():
    """An assignment file may set exactly these settings, each of one type."""
    assert ASSIGNMENT_KEYS == {"name": str, "chapter": str, "deadline": str, "late_penalty": str, "grace": str,
                               "partial_credit": bool, "hide_expected": bool, "points": dict}


def test_an_assignment_file_is_read_with_a_toml_time_as_the_deadline_text(tmp_path):
    """A valid file's settings come back as written; a TOML date-time (unquoted) is taken as its ISO text."""
    path = tmp_path / "hw2.toml"
    path.write_text('name = "HW2 ü"\nchapter = "02"\ndeadline = 2025-03-14T23:59:00+01:00\nlate_penalty = "10%/day"\n'
                    'grace = "15m"\npartial_credit = true\nhide_expected = false\n[points]\na = 3\nb = 0\nc = 2.5\n',
                    encoding="utf-8")
    assert read_assignment_file(path) == {"name": "HW2 ü", "chapter": "02", "deadline": "2025-03-14T23:59:00+01:00",
                                          "late_penalty": "10%/day", "grace": "15m", "partial_credit": True,
                                          "hide_expected": False, "points": {"a": 3, "b": 0, "c": 2.5}}
    (tmp_path / "empty.toml").write_text("")
    assert read_assignment_file(tmp_path / "empty.toml") == {}


@pytest.mark.parametrize("text, message", [
    ('nme = "x"', "unknown setting 'nme'; expected one of name, chapter, deadline, late_penalty, grace, "
                  "partial_credit, hide_expected, points"),
    ('Name = "x"', "unknown setting 'Name'"),
    ("name = 3", "name must be a str, got 3"),
    ("partial_credit = 1", "partial_credit must be a bool, got 1"),
    ('hide_expected = "yes"', "hide_expected must be a bool, got 'yes'"),
    ("points = 3", "points must be a dict, got 3"),
    ("deadline = 2025-03-14", "deadline must be a str, got datetime.date(2025, 3, 14)"),
    ("[points]\na = true", "points for a must be a number ≥ 0, got True"),
    ("[points]\na = -1", "points for a must be a number ≥ 0, got -1"),
    ("[points]\na = -0.5", "points for a must be a number ≥ 0, got -0.5"),
    ("[points]\na = nan", "points for a must be a number ≥ 0, got nan"),
    ("[points]\na = inf", "points for a must be a number ≥ 0, got inf"),
    ('[points]\na = "2"', "points for a must be a number ≥ 0, got '2'"),
    ("[points]\nb = 1\na = [1]", "points for a must be a number ≥ 0, got [1]"),
    ("name = ", "not valid TOML"),
])
def test_an_assignment_file_with_a_wrong_setting_is_refused_saying_what_and_where(tmp_path, text, message):
    """A setting the file may not hold, a value of another type, or points that are not a finite number ≥ 0 (a
    bool is not a number), are a GradingError naming the file and the setting; so is a file that is not TOML."""
    path = tmp_path / "hw.toml"
    path.write_text(text)
    with pytest.raises(GradingError) as error:
        read_assignment_file(path)
    assert str(error.value).startswith(f"--assignment {path}: ") and message in str(error.value)


def test_an_assignment_file_that_is_missing_or_unreadable(tmp_path):
    """A file that is not there says "no such file"; one that cannot be read (not UTF-8, a folder) says so."""
    with pytest.raises(GradingError, match=r"hw.toml: no such file$"):
        read_assignment_file(tmp_path / "hw.toml")
    (tmp_path / "bad.toml").write_bytes(b'name = "\xff"')
    with pytest.raises(GradingError, match="bad.toml: cannot be read"):
        read_assignment_file(tmp_path / "bad.toml")
    with pytest.raises(GradingError, match=f"--assignment {tmp_path}: cannot be read"):
        read_assignment_file(tmp_path)


def test_an_assignment_from_its_file_and_the_options_that_win(tmp_path):
    """``make_assignment``: each setting from the option given, else the file; points from the file as floats; the
    source names the file; False given as an option wins over the file's true."""
    path = tmp_path / "hw2.toml"
    path.write_text('name = "HW2"\nchapter = "02"\ndeadline = "2026-01-01T00:00:00+00:00"\nlate_penalty = "10%/day"\n'
                    'grace = "15m"\npartial_credit = true\nhide_expected = true\n[points]\na = 3\n')
    from_file = make_assignment(path)
    assert (from_file.name, from_file.chapter, from_file.points, from_file.partial_credit, from_file.hide_expected,
            from_file.source) == ("HW2", "02", {"a": 3.0}, True, True, f"--assignment {path}")
    assert type(from_file.points["a"]) is float
    assert from_file.policy == LatePolicy(NEW_YEAR, 10.0, True, 86400.0, 900.0, "10%/day")
    given = make_assignment(path, name="X", chapter="03", deadline="2026-01-02T00:00:00+00:00", late_penalty="1pt/day",
                            grace="1h", partial_credit=False, hide_expected=False)
    assert (given.name, given.chapter, given.partial_credit, given.hide_expected) == ("X", "03", False, False)
    assert given.policy == LatePolicy(NEW_YEAR + timedelta(days=1), 1.0, False, 86400.0, 3600.0, "1pt/day")
    bare = make_assignment()
    assert (bare.name, bare.chapter, bare.points, bare.policy, bare.partial_credit, bare.hide_expected, bare.source) \
        == (None, None, {}, LatePolicy(), None, None, "")
    assert make_assignment(None, deadline=NEW_YEAR_ISO).policy == LatePolicy(NEW_YEAR)


# ====================================================================================================================
# gradebook.py: submissions
# ====================================================================================================================

def test_the_statuses_an_exercise_may_have():
    """An exercise's result is one of these statuses."""
    assert STATUSES == ("passed", "failed", "error", "timeout", "crashed", "missing", "invalid", "manual", "reviewed")


def test_a_submissions_grade_ids_are_its_cells_nonempty_grade_ids():
    """A submission's grade_ids are those of its cells, each once, none for cells without one."""
    cells = [cell(0, "", grade_id="a"), cell(1, ""), cell(2, "", grade_id="a"), cell(3, "", "markdown", grade_id="m"),
             cell(4, "", grade_id="")]
    sub = Submission("s", Path("s.ipynb"), "x", cells=cells)
    assert sub.grade_ids == {"a", "m"}
    assert Submission("s", Path("s.ipynb"), None).grade_ids == frozenset()


def ch_for_answers(**kwargs) -> Chapter:
    """Exercise e1 (answers a1, a2; check e1_check) and e2 (answer b; check e2_check), free-text question why."""
    return chapter_of(auto("e1", answers=("a1", "a2")), auto("e2", answers=("b",)), manual("why"),
                      grade_ids=kwargs.pop("grade_ids", {"a1", "a2", "e1_check", "b", "e2_check", "ro"}), **kwargs)


def answers_of(cells: list[Cell], chapter: Chapter | None = None, ids: dict | None = None):
    sub = Submission("s", Path("s.ipynb"), "x", cells=cells, cell_ids=ids or {})
    found, notes = sub.answers(chapter or ch_for_answers())
    return found, notes, sub.not_taken


def test_a_students_answers_are_their_code_answer_cells_in_notebook_order():
    """The answers are the code cells with the chapter's answer grade_ids, by grade_id, their IPython lines made
    ``pass``; a student's own code cell runs with the next answer cell (before it) or, when a check comes first,
    after the last answer cell of that check's exercise the student has."""
    cells = [cell(0, "import numpy as np"), cell(1, "a1 = 1", grade_id="a1"), cell(2, "%time h = 2"),
             cell(3, "a2 = 2", grade_id="a2"), cell(4, "extra = 3"), cell(5, "assert a1", grade_id="e1_check"),
             cell(6, "b = 1", grade_id="b")]
    found, notes, not_taken = answers_of(cells)
    assert found["a1"] == [{"added": 1, "source": "import numpy as np"}, "a1 = 1"]
    assert found["a2"] == [{"added": 3, "source": "pass  # IPython line removed by the grader: %time h = 2"},
                           "a2 = 2", {"added": 5, "source": "extra = 3"}]
    assert found["b"] == ["b = 1"] and list(found) == ["a1", "a2", "b"]
    assert notes == [] and not_taken == []


def test_an_answer_cell_that_is_not_code_is_ignored_with_a_note():
    """An answer cell the student turned into markdown (or raw) is not run: a note says which and what it is."""
    found, notes, _ = answers_of([cell(0, "a1 = 1", "markdown", grade_id="a1"), cell(1, "a2 = 1", grade_id="a2"),
                                  cell(2, "b", "raw", grade_id="b")])
    assert found == {"a2": ["a2 = 1"]}
    assert notes == ["answer cell a1 is a markdown cell, not code: ignored",
                     "answer cell b is a raw cell, not code: ignored"]


def test_the_students_own_cells_that_run_and_those_that_do_not():
    """A student's own cell is a code cell with some text that is no course cell (by its id or its stripped source)
    and carries no grade_id of the chapter nor of a free-text question: it is taken with the next answer cell; a
    blank one, a markdown one, a course cell, a read-only cell of the chapter or a free-text question's cell is not
    the student's. Their own cells after the last check, or before a check none of whose answer cells they have, are
    not taken."""
    chapter = ch_for_answers(course_cells=frozenset({"id:course-id", "src:SETUP = 1"}))
    cells = [cell(0, "   \n "), cell(1, "own = 1", "markdown"), cell(2, "whatever", grade_id="ro"),
             cell(3, "changed", grade_id="why"), cell(4, "  SETUP = 1  "), cell(5, "edited course cell"),
             cell(6, "foreign = 1", grade_id="other_chapter"), cell(7, "a1 = 1", grade_id="a1"),
             cell(8, "lost = 1"), cell(9, "assert b", grade_id="e2_check"), cell(10, "after = 1")]
    found, notes, not_taken = answers_of(cells, chapter, ids={5: "course-id"})
    assert found == {"a1": [{"added": 7, "source": "foreign = 1"}, "a1 = 1"]}
    assert [c.index for c in not_taken] == [8, 10]
    assert notes == []


def test_what_is_not_taken_is_reset_on_each_reading():
    """Reading a submission's answers again starts its list of cells not taken afresh."""
    sub = Submission("s", Path("s.ipynb"), "x", cells=[cell(0, "lost = 1")])
    chapter = ch_for_answers()
    sub.answers(chapter)
    sub.answers(chapter)
    assert [c.index for c in sub.not_taken] == [0]


def test_an_answer_cell_given_twice_runs_both_copies_and_says_so():
    """An answer cell that appears more than once runs every copy in notebook order, and a note counts the copies
    (the student's own cells attached to it are not copies)."""
    found, notes, _ = answers_of([cell(0, "a1 = 1", grade_id="a1"), cell(1, "mine = 0"), cell(2, "a1 = 2",
                                                                                             grade_id="a1"),
                                  cell(3, "a1 = 3", grade_id="a1"), cell(4, "a2 = 1", grade_id="a2")])
    assert found["a1"] == ["a1 = 1", {"added": 2, "source": "mine = 0"}, "a1 = 2", "a1 = 3"]
    assert notes == ["answer cell a1 appears 3 times: all copies ran, in notebook order"]
    found, notes, _ = answers_of([cell(0, "a1 = 1", grade_id="a1"), cell(1, "a1 = 2", grade_id="a1")])
    assert found["a1"] == ["a1 = 1", "a1 = 2"]
    assert notes == ["answer cell a1 appears 2 times: all copies ran, in notebook order"]
    found, notes, _ = answers_of([cell(0, "a1 = 1", grade_id="a1"), cell(1, "mine = 0"),
                                  cell(2, "assert 1", grade_id="e1_check")])
    assert found["a1"] == ["a1 = 1", {"added": 2, "source": "mine = 0"}] and notes == []


def test_a_notebook_with_none_of_the_answer_cells_is_said_to_be_perhaps_the_wrong_one():
    """A notebook holding none of the chapter's answer cells (as code) gets a note naming the chapter; a chapter
    without answer cells (free-text questions only) does not."""
    _, notes, _ = answers_of([cell(0, "x = 1"), cell(1, "a1", "markdown", grade_id="a1")])
    assert notes[-1] == "none of the answer cells of 01 is in this notebook: is it the right notebook?"
    assert len(notes) == 2
    found, notes, not_taken = answers_of([cell(0, "x = 1")], chapter_of(manual("why"), answer_order=[]))
    assert (found, notes, [c.index for c in not_taken]) == ({}, [], [0])


def test_free_text_answers_are_the_markdown_cells_of_the_free_text_questions():
    """A student's free-text answer is the text of their markdown cells with a free-text question's grade_id (several
    joined by a blank line, stripped); code or raw cells and other grade_ids are not answers."""
    chapter = chapter_of(auto("e1"), manual("why"), manual("how"))
    cells = [cell(0, "  First part.\n", "markdown", grade_id="why"), cell(1, "code()", grade_id="why"),
             cell(2, "Second part.  ", "markdown", grade_id="why"), cell(3, "not a question", "markdown", grade_id="a"),
             cell(4, "Ünïcode ✓", "markdown", grade_id="how"), cell(5, "  ", "markdown", grade_id="empty"),
             cell(6, "raw text", "raw", grade_id="how")]
    sub = Submission("s", Path("s.ipynb"), "x", cells=cells)
    assert sub.free_text(chapter) == {"why": "First part.\n\nSecond part.", "how": "Ünïcode ✓"}
    assert Submission("s", Path("s.ipynb"), "x", cells=[cell(0, "", "markdown", grade_id="why")]).free_text(chapter) \
        == {"why": ""}


def test_a_symlink_is_said_not_to_be_graded():
    """A symbolic link's student is told it is not graded and to hand in the file itself."""
    assert SYMLINK_PROBLEM == "it is a symbolic link: symlinks are not graded (hand in the notebook file itself)"


@pytest.mark.parametrize("size, text", [
    (0, "0 bytes"), (1, "1 bytes"), (2**20 - 1, "1048575 bytes"), (2**20, "1 MB"), (2**20 + 1, "1048577 bytes"),
    (50 * 2**20, "50 MB"), (3 * 2**20 + 2**19, "3670016 bytes"),
])
def test_a_size_is_in_whole_megabytes_when_it_is_one_else_in_bytes(size, text):
    """A size is written in MB when it is a whole number of megabytes (2**20 bytes), one or more; else in bytes."""
    assert _size_text(size) == text


def fake_stat(real: os.stat_result, **changes) -> os.stat_result:
    fields = {"st_mode": real.st_mode, "st_ino": real.st_ino, "st_dev": real.st_dev, "st_nlink": real.st_nlink,
              "st_uid": real.st_uid, "st_gid": real.st_gid, "st_size": real.st_size, "st_atime": real.st_atime,
              "st_mtime": real.st_mtime, "st_ctime": real.st_ctime, **changes}
    return os.stat_result(tuple(fields[name] for name in ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid",
                                                           "st_gid", "st_size", "st_atime", "st_mtime", "st_ctime")))


def test_read_limited_returns_the_bytes_and_the_open_files_stat(tmp_path):
    """A regular file within the limit comes back whole (also one of several megabytes, read in pieces), with the
    stat of the file that was opened."""
    path = tmp_path / "s.ipynb"
    data = bytes(range(256)) * (3 * 2**12 + 1)
    path.write_bytes(data)
    read, info = read_limited(path, limit=len(data))
    assert read == data and (info.st_ino, info.st_size) == (os.stat(path).st_ino, len(data))


def test_read_limited_refuses_what_is_not_a_regular_file(tmp_path):
    """A missing file, a symbolic link (to a file, never followed), a folder and a pipe are not read: _NotRead says
    why (the OS's reason for a missing file)."""
    target = tmp_path / "real.ipynb"
    target.write_text("{}")
    (tmp_path / "link.ipynb").symlink_to(target)
    os.mkfifo(tmp_path / "pipe.ipynb")
    cases = {"missing.ipynb": "could not read the file (No such file or directory)", "link.ipynb": SYMLINK_PROBLEM,
             "": "not a regular file (a folder, device or pipe); expected a notebook file",
             "pipe.ipynb": "not a regular file (a folder, device or pipe); expected a notebook file"}
    for name, message in cases.items():
        with pytest.raises(_NotRead) as error:
            read_limited(tmp_path / name if name else tmp_path)
        assert str(error.value) == message, name


def test_a_file_too_large_is_refused_before_it_is_opened_naming_both_sizes(tmp_path, monkeypatch):
    """A file larger than the limit on lstat is refused without being opened; the message gives its size and the
    limit."""
    path = tmp_path / "big.ipynb"
    path.write_bytes(b"x" * (2**20 + 1))
    opened = []
    monkeypatch.setattr(os, "open", lambda *args: opened.append(args))
    with pytest.raises(_NotRead) as error:
        read_limited(path, limit=2**20)
    assert str(error.value) == "the file is too large (1048577 bytes); the limit is 1 MB" and opened == []


def test_a_file_swapped_for_a_link_after_the_check_is_a_symlink(tmp_path, monkeypatch):
    """A path that lstat saw as a file but is a link when opened is refused as a symlink (O_NOFOLLOW)."""
    target = tmp_path / "real.ipynb"
    target.write_text("{}")
    link = tmp_path / "s.ipynb"
    link.symlink_to(target)
    real_lstat = os.lstat
    monkeypatch.setattr(os, "lstat", lambda p, *a, **k: os.stat(p) if Path(p) == link else real_lstat(p, *a, **k))
    with pytest.raises(_NotRead) as error:
        read_limited(link)
    assert str(error.value) == SYMLINK_PROBLEM


def test_a_file_that_cannot_be_opened_says_why(tmp_path, monkeypatch):
    """An open refused for another reason is _NotRead with the OS's reason."""
    path = tmp_path / "s.ipynb"
    path.write_text("{}")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(_NotRead) as error:
        read_limited(path)
    assert str(error.value) == "could not read the file (Permission denied)"


def test_a_file_that_fails_while_it_is_read_says_why_and_is_closed(tmp_path, monkeypatch):
    """An error while the open file is read is _NotRead with the OS's reason, and the file is closed."""
    path = tmp_path / "s.ipynb"
    path.write_text("{}")
    closed, real_close = [], os.close

    def failing_read(fd, n):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(os, "read", failing_read)
    monkeypatch.setattr(os, "close", lambda fd: closed.append(fd) or real_close(fd))
    with pytest.raises(_NotRead) as error:
        read_limited(path)
    assert str(error.value) == "could not read the file (Input/output error)" and len(closed) == 1


@pytest.fixture
def no_hang():
    """Fail, rather than hang, a test whose open of a pipe would block (O_NONBLOCK is what prevents it)."""
    import signal

    def timed_out(signum, frame):
        raise TimeoutError("opening the file blocked: a pipe must be opened without blocking")
    previous = signal.signal(signal.SIGALRM, timed_out)
    signal.alarm(5)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("swap", ["another file", "a pipe"])
def test_a_file_replaced_between_the_check_and_the_open_is_refused(tmp_path, monkeypatch, swap, no_hang):
    """The file opened must be the one checked (same device and inode) and a regular file: one replaced meanwhile
    (another file, or a pipe with the checked one's identity) is refused: grade it again."""
    path = tmp_path / "s.ipynb"
    if swap == "a pipe":
        os.mkfifo(path)
    else:
        path.write_text("{}")
    other = tmp_path / "other.ipynb"
    other.write_text("{}")
    real_lstat = os.lstat
    checked = fake_stat(os.stat(path), st_mode=stat.S_IFREG | 0o644, st_size=2) if swap == "a pipe" else \
        real_lstat(other)
    monkeypatch.setattr(os, "lstat", lambda p, *a, **k: checked if Path(p) == path else real_lstat(p, *a, **k))
    with pytest.raises(_NotRead, match="the file was replaced while it was being read; grade it again"):
        read_limited(path)


def test_a_file_that_grew_past_the_limit_is_refused_on_open_or_while_read(tmp_path, monkeypatch):
    """The size is checked again on the open file, and the read stops one byte past the limit: a file that grew
    after the check is refused either way, never read whole."""
    path = tmp_path / "s.ipynb"
    path.write_bytes(b"x" * 11)
    real_lstat, real_fstat = os.lstat, os.fstat
    small = lambda info: fake_stat(info, st_size=5)  # noqa: E731
    monkeypatch.setattr(os, "lstat", lambda p, *a, **k: small(real_lstat(p)) if Path(p) == path else real_lstat(p))
    with pytest.raises(_NotRead) as error:
        read_limited(path, limit=10)
    assert str(error.value) == "the file is too large (11 bytes); the limit is 10 bytes"
    reads = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    monkeypatch.setattr(os, "fstat", lambda fd: small(real_fstat(fd)))
    with pytest.raises(_NotRead) as error:
        read_limited(path, limit=10)
    assert str(error.value) == "the file is too large (it grew past 10 bytes while it was being read); the limit is " \
                               "10 bytes"
    assert reads == [11]
    path.write_bytes(b"x" * 10)
    reads.clear()
    assert read_limited(path, limit=10)[0] == b"x" * 10 and reads[0] == 11


def write_submission(path: Path, *cells: dict, **kwargs) -> Path:
    return write_notebook(path, *cells, **kwargs)


def test_a_submission_is_read_once_with_its_hash_cells_ids_and_chapter_hint(tmp_path):
    """A notebook's submission: its student (the file's stem unless named), the SHA-256 of its bytes, its cells,
    their ids, its nbformat version, its modification time and the chapter its pgcourse metadata names."""
    cells = [dict(raw_cell("x = 1", grade_id="a"), id="c0"), raw_cell("text", "markdown")]
    path = write_submission(tmp_path / "ann.ipynb", *cells, metadata={"pgcourse": {"chapter": "03_a2c"}})
    data = path.read_bytes()
    sub = read_submission(path)
    assert (sub.student, sub.path, sub.sha256, sub.problem) == ("ann", path, hashlib.sha256(data).hexdigest(), None)
    assert [(c.index, c.cell_type, c.source, c.grade_id) for c in sub.cells] == [(0, "code", "x = 1", "a"),
                                                                                (1, "markdown", "text", None)]
    assert sub.cell_ids == {0: "c0"} and sub.nbformat == 4 and sub.chapter_hint == "03_a2c"
    assert sub.mtime_ns == os.stat(path).st_mtime_ns
    assert read_submission(path, "Ann Lee").student == "Ann Lee"


@pytest.mark.parametrize("metadata", [{}, {"pgcourse": "03"}, {"pgcourse": {"chapter": 3}}, {"pgcourse": {}},
                                      {"chapter": "03"}])
def test_a_chapter_hint_is_only_a_string_in_the_pgcourse_metadata(tmp_path, metadata):
    """The chapter hint is taken only from ``metadata.pgcourse.chapter`` when that is a string."""
    path = write_submission(tmp_path / "s.ipynb", raw_cell("x"), metadata=metadata)
    assert read_submission(path).chapter_hint is None


def test_a_submission_that_cannot_be_graded_has_a_problem_not_an_exception(tmp_path):
    """A link, a missing file or a file that is no notebook is a submission with a problem (why) and no hash or
    cells; a link's time is the link's own, a missing file's 0; a file that is no notebook is hashed."""
    target = write_submission(tmp_path / "real.ipynb", raw_cell("x"))
    os.utime(target, ns=(10**18, 10**18))
    (tmp_path / "link.ipynb").symlink_to(target)
    link = read_submission(tmp_path / "link.ipynb")
    assert (link.student, link.problem, link.sha256, link.cells) == ("link", SYMLINK_PROBLEM, None, [])
    assert link.mtime_ns == os.lstat(tmp_path / "link.ipynb").st_mtime_ns != 10**18
    missing = read_submission(tmp_path / "gone.ipynb")
    assert missing.problem.startswith("could not read the file") and missing.mtime_ns == 0
    (tmp_path / "empty.ipynb").write_bytes(b"")
    empty = read_submission(tmp_path / "empty.ipynb")
    assert (empty.problem, empty.sha256, empty.cells) == ("the file is empty", hashlib.sha256(b"").hexdigest(), [])
    assert empty.mtime_ns == os.stat(tmp_path / "empty.ipynb").st_mtime_ns


def make_tree(root: Path, files: list[str]) -> None:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("{}")


def test_the_notebooks_in_a_students_folder(tmp_path):
    """A student's notebooks are the ``.ipynb`` files at any depth, sorted, hidden files and folders skipped; a
    symlinked notebook or folder is listed, not followed."""
    student = tmp_path / "ann"
    make_tree(student, ["b.ipynb", "a.ipynb", "notes.txt", ".hidden.ipynb", "sub/deep.ipynb", ".git/x.ipynb",
                        "sub/.cache/y.ipynb", "z/zz.IPYNB"])
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "e.ipynb").write_text("{}")
    (student / "linked").symlink_to(tmp_path / "elsewhere")
    (student / ".hidden_link").symlink_to(tmp_path / "elsewhere")
    (student / "l.ipynb").symlink_to(tmp_path / "elsewhere" / "e.ipynb")
    assert gradebook._notebooks_below(student) == [student / p for p in ("a.ipynb", "b.ipynb", "l.ipynb", "linked",
                                                                         "sub/deep.ipynb")]


def test_a_folder_is_one_students_when_it_holds_a_chapters_notebook_or_an_nbgrader_folder(tmp_path):
    """A folder given by the teacher is one student's when it holds a (regular, not hidden) notebook named like a
    chapter, a timestamp.txt, or a folder holding one; the student is the folder's own name, or the first folder
    above an assignment folder. A class's folder, or one that cannot be listed, is no student's."""
    names = {"01_reinforce", "ch02"}
    make_tree(tmp_path, ["alice/01_reinforce.ipynb", "class/alice.ipynb", "class/bob/01_reinforce.ipynb",
                         "carl/ch02/timestamp.txt", "carl/ch02/work.ipynb", "dan/01_reinforce/01_reinforce.ipynb",
                         "eve/.01_reinforce.ipynb", "fay/notes.ipynb", "gus/sub/timestamp.txt"])
    (tmp_path / "hal").mkdir()
    (tmp_path / "hal" / "01_reinforce.ipynb").symlink_to(tmp_path / "alice" / "01_reinforce.ipynb")
    (tmp_path / "ivy" / "01_reinforce.ipynb").mkdir(parents=True)
    found = {name: gradebook.one_students_folder(tmp_path / name, names)
             for name in ("alice", "class", "carl", "carl/ch02", "dan/01_reinforce", "eve", "fay", "gus", "hal", "ivy",
                          "missing")}
    assert found == {"alice": tmp_path / "alice", "class": None, "carl": tmp_path / "carl",
                     "carl/ch02": tmp_path / "carl", "dan/01_reinforce": tmp_path / "dan", "eve": None, "fay": None,
                     "gus": tmp_path / "gus", "hal": None, "ivy": None, "missing": None}
    assert gradebook.one_students_folder(tmp_path / "class" / ".." / "alice" / "", names) == tmp_path / "alice"
    assert gradebook.one_students_folder(tmp_path / "fay", {"notes"}) == tmp_path / "fay"


def test_the_files_of_a_class_folder_and_their_students(tmp_path):
    """In a class's folder: each notebook is its name's student's, each folder's notebooks its name's student's;
    hidden entries and other files are skipped; a symlinked notebook or folder is listed (its student gets a row) but
    not followed, a symlink to anything else is skipped. One student's folder given alone is that student's."""
    class_folder = tmp_path / "class"
    make_tree(class_folder, ["ann.ipynb", "bob/work.ipynb", "bob/sub/more.ipynb", ".carl.ipynb", ".dora/d.ipynb",
                             "notes.txt", "empty/readme.md"])
    (class_folder / "dan.ipynb").symlink_to(class_folder / "ann.ipynb")
    (class_folder / "eve").symlink_to(class_folder / "bob")
    (class_folder / "link.txt").symlink_to(class_folder / "notes.txt")
    (class_folder / "gone.ipynb").symlink_to(tmp_path / "nowhere.ipynb")
    (class_folder / "gone_dir").symlink_to(tmp_path / "nowhere")
    assert collect_submissions([class_folder]) == [
        ("ann", class_folder / "ann.ipynb"), ("bob", class_folder / "bob" / "sub" / "more.ipynb"),
        ("bob", class_folder / "bob" / "work.ipynb"), ("dan", class_folder / "dan.ipynb"),
        ("eve", class_folder / "eve"), ("gone", class_folder / "gone.ipynb")]
    make_tree(tmp_path, ["alice/01_reinforce.ipynb", "alice/extra/more.ipynb"])
    assert collect_submissions([tmp_path / "alice"], ["01_reinforce"]) == [
        ("alice", tmp_path / "alice" / "01_reinforce.ipynb"), ("alice", tmp_path / "alice" / "extra" / "more.ipynb")]
    assert [(i.student, p) for i, p in collect_identified([tmp_path / "alice"], ["01_reinforce"])] == \
        collect_submissions([tmp_path / "alice"], ["01_reinforce"])


def test_files_given_one_by_one_and_what_is_not_there(tmp_path):
    """Files may be given one by one (a dangling link too: refused when read); a path that is not there is a
    GradingError naming it; nothing to grade at all is a GradingError."""
    make_tree(tmp_path, ["ann.ipynb", "bob.ipynb"])
    (tmp_path / "gone.ipynb").symlink_to(tmp_path / "nowhere.ipynb")
    assert collect_submissions([tmp_path / "ann.ipynb", tmp_path / "bob.ipynb", tmp_path / "gone.ipynb"]) == [
        ("ann", tmp_path / "ann.ipynb"), ("bob", tmp_path / "bob.ipynb"), ("gone", tmp_path / "gone.ipynb")]
    with pytest.raises(GradingError, match=f"no such file or folder: {tmp_path}/nope.ipynb"):
        collect_submissions([tmp_path / "ann.ipynb", tmp_path / "nope.ipynb"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(GradingError, match=r"no submissions found \(give .ipynb files or folders holding them\)"):
        collect_submissions([tmp_path / "empty"])
    with pytest.raises(GradingError, match="no submissions found"):
        collect_submissions([])


# ====================================================================================================================
# gradebook.py: text for spreadsheets, JSON and terminals
# ====================================================================================================================

@pytest.mark.parametrize("text, expected", [
    ("ann", "ann"), ("Ünïcode ✓ 名", "Ünïcode ✓ 名"), ("caf\udce9", "caf\\xe9"), ("\udcff\udc80", "\\xff\\x80"),
    ("lone \ud800 surrogate", "lone \\ud800 surrogate"), ("", ""), ("a\nb\x00", "a\nb\x00"),
])
def test_writable_text_is_valid_utf8_with_undecodable_bytes_escaped(text, expected):
    """Text is written as valid UTF-8: an undecodable byte of a file name (an escaped surrogate) becomes ``\\xNN``,
    any other lone surrogate ``\\udNNN``; all other text is unchanged."""
    assert writable(text) == expected
    writable(text).encode("utf-8")


@pytest.mark.parametrize("text, expected", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("ann", "ann"), (" =1", " =1"), ("a=b", "a=b"), ("", ""), ("'=x", "'=x"), ("\nx", "\nx"), ("=\udcff", "'=\\xff"),
])
def test_a_csv_text_cell_that_a_spreadsheet_would_read_as_a_formula_gets_a_quote(text, expected):
    """A text cell starting with ``= + - @``, a tab or a carriage return gets a leading ``'`` (shown as text, not
    run as a formula); other text is kept (made valid UTF-8)."""
    assert FORMULA_START == ("=", "+", "-", "@", "\t", "\r")
    assert csv_text_cell(text) == expected


@pytest.mark.parametrize("text, as_name, as_line", [
    ("ann", "ann", "ann"), ("Ünïcode ✓", "Ünïcode ✓", "Ünïcode ✓"), ("a b", "a b", "a b"), ("", "", ""),
    ("a\nb", "'a\\nb'", "a\\nb"), ("\x1b[31mred", "'\\x1b[31mred'", "\\x1b[31mred"), ("tab\t", "'tab\\t'", "tab\\t"),
    ("it's\n", '"it\'s\\n"', "it's\\n"), ("\u200b", "'\\u200b'", "\\u200b"),
])
def test_text_for_the_terminal_is_shown_as_is_only_when_printable(text, as_name, as_line):
    """A name is shown as is when every character is printable, else as its Python repr; a message line keeps its
    printable characters and escapes each other one in place."""
    assert shown(text) == as_name and shown_line(text) == as_line


def test_json_safe_makes_every_string_and_key_writable_and_lists_of_tuples():
    """Every string in the JSON (keys too, nested at any depth) is made writable; tuples become lists; numbers,
    None, booleans and non-string keys stay."""
    value = {"n\udcff": ("a\udcfe", 1, None, True), "l": [{"k": "v\udcfd"}], 3: 2.5}
    assert gradebook._json_safe(value) == {"n\\xff": ["a\\xfe", 1, None, True], "l": [{"k": "v\\xfd"}], 3: 2.5}


# ====================================================================================================================
# gradebook.py: results
# ====================================================================================================================

def test_an_exercise_results_defaults():
    """An exercise's result has, unless given, no grader's points (a free-text question), no teacher's points, no
    comment and no answer."""
    r = ExerciseResult(1.0, 2.0, "passed", "ok")
    assert (r.graded_points, r.teacher_points, r.comment, r.answer) == (None, None, "", "")


@pytest.mark.parametrize("points, penalty, total", [
    ((2.0, 6.0), 0.0, 8.0), ((2.0, 6.0), 2.0, 6.0), ((2.0, 6.0), 8.0, 0.0), ((2.0, 6.0), 9.5, 0.0),
    ((0.0, 0.0), 3.0, 0.0), ((-1.0, 0.0), 2.0, -1.0), ((1.5,), 0.25, 1.25), ((), 0.0, 0.0), ((), 1.0, 0.0),
])
def test_a_students_total_is_what_they_earned_less_a_late_penalty_of_at_most_that(points, penalty, total):
    """A student earns the sum of their exercises' points; the total takes the late penalty off, never more than
    was earned (a negative earning loses nothing more); the points possible are the sum of the exercises'."""
    student = StudentResult("s", "s.ipynb", None, {f"e{i}": result(p, 10.0) for i, p in enumerate(points)},
                            penalty=penalty)
    assert student.earned == sum(points) and student.total == total and student.max_total == 10.0 * len(points)


def test_a_student_results_defaults():
    """A student's row has, unless given, no problem, notes, identity, time, lateness, own policy, and a
    submission."""
    s = StudentResult("s", "s.ipynb", None, {})
    assert (s.problem, s.notes, s.identity, s.submitted_at, s.time_source, s.late_s, s.late_units, s.penalty,
            s.late_policy, s.no_submission) == (None, [], {}, None, "", 0.0, 0, 0.0, {}, False)


@pytest.mark.parametrize("value, number", [(2.0, 2), (2, 2), (0.0, 0), (-3.0, -3), (2.5, 2.5), (1 / 3, 0.333333),
                                           (2 / 3, 0.666667), (1e-7, 0.0), (1e20, 100000000000000000000)])
def test_a_number_in_the_gradebook_is_an_int_when_whole_else_rounded_to_6_decimals(value, number):
    """Points are written as an int when whole, else as a float rounded to 6 decimals."""
    written = _number(value)
    assert written == number and type(written) is type(number)


def test_the_gradebook_format_name():
    """The gradebook's JSON names its format, version 2."""
    assert GRADEBOOK_FORMAT == "pgcourse-grades/2"


# ====================================================================================================================
# gradebook.py: the report, its CSV, JSON and summary
# ====================================================================================================================

def two_exercise_report(**kwargs) -> GradeReport:
    """Chapter 01 (ch01_a: 2 points, ch01_b: 3 points); ann passed a and failed b; bob timed out on a and got the
    teacher's 1.5 on b, which raised an error."""
    chapter = chapter_of(auto("ch01_a", 2.0), auto("ch01_b", 3.0, ("b",)))
    ann = StudentResult("ann", "ann.ipynb", "h1", {"ch01_a": result(2, 2, "passed", "ok", graded_points=2),
                                                  "ch01_b": result(0, 3, "failed", "wrong", graded_points=0)})
    bob = StudentResult("bob", "bob.ipynb", "h2", {"ch01_a": result(0, 2, "timeout", "slow", graded_points=0),
                                                  "ch01_b": result(1.5, 3, "error", "boom", graded_points=0,
                                                                   teacher_points=1.5, comment="close")})
    return report_of(chapter, [ann, bob], **kwargs)


def late_report() -> GradeReport:
    """Chapter 02 with a deadline (10%/day, 15 min grace): ch02_a (2 points) and a free-text question (1 point);
    ann is late (0.2 taken), a student with an unprintable name, and cat who handed in nothing."""
    chapter = chapter_of(auto("ch02_a", 2.0), manual("ch02_why", 1.0), name="02")
    policy = LatePolicy(NEW_YEAR, 10.0, True, 86400.0, 900.0, "10%/day")
    ann = StudentResult("ann", "ann.ipynb", "h1", {"ch02_a": result(2, 2, "passed", "ok", graded_points=2),
                                                  "ch02_why": result(0, 1, "manual", "", answer="Because.")},
                        submitted_at="2026-01-01T03:00:00+00:00", time_source="nbgrader", late_s=9900.0,
                        late_units=1, penalty=0.2)
    odd = StudentResult("=bob\n", "bob.ipynb", "h2", {"ch02_a": result(0, 2, "missing", "no cell", graded_points=0),
                                                     "ch02_why": result(1, 1, "reviewed", "", teacher_points=1)})
    cat = StudentResult("cat", "", None, {"ch02_a": result(0, 2, "missing", ""), "ch02_why": result(0, 1, "missing",
                                                                                                    "")},
                        no_submission=True)
    return report_of(chapter, [ann, odd, cat], seconds=2.0, policy=policy, isolation="bwrap", detail="bubblewrap 0.8",
                     changes=[("ann", 2.0, 1.8, "late\tpolicy")], notices=["n\x1b"], warnings=["w", "x\ny"])


def test_a_reports_name_students_and_points():
    """A report's name is its assignment's, else its chapter's; ``student(name)`` finds a row (KeyError naming an
    unknown one); ``points()`` is {student: {exercise: points}}."""
    report = two_exercise_report()
    assert report.name == "01" and two_exercise_report(assignment="HW1").name == "HW1"
    assert report.student("bob").file == "bob.ipynb"
    with pytest.raises(KeyError, match="carl"):
        report.student("carl")
    assert report.points() == {"ann": {"ch01_a": 2, "ch01_b": 0}, "bob": {"ch01_a": 0, "ch01_b": 1.5}}
    assert (report.warnings, report.assignment, report.policy, report.submissions, report.hide_expected,
            report.changes, report.notices) == ([], "", LatePolicy(), [], False, [], [])


def test_the_csv_is_a_row_per_student_and_a_column_per_exercise_then_the_total():
    """The CSV: a header (student, the exercise ids, total), then one row per student; every text cell quoted, every
    number the grader wrote unquoted (an int when whole)."""
    assert two_exercise_report().csv_text() == ('"student","ch01_a","ch01_b","total"\n'
                                                '"ann",2,0,2\n'
                                                '"bob",0,1.5,1.5\n')


def test_the_csv_with_a_deadline_has_a_late_penalty_column_and_neutralised_names():
    """With a deadline the CSV has a late_penalty column before the total; a name a spreadsheet would take for a
    formula is written with a leading ``'`` (a newline in it stays inside its quotes)."""
    assert late_report().csv_text() == ('"student","ch02_a","ch02_why","late_penalty","total"\n'
                                        '"ann",2,0,0.2,1.8\n'
                                        '"\'=bob\n",0,1,0,1\n'
                                        '"cat",0,0,0,0\n')


def test_the_json_gradebook_holds_the_chapter_the_settings_and_each_students_feedback():
    """The JSON: its format, the assignment and chapter, the course notebook, the points possible, each exercise
    (id, points, check cell, answer cells, kind, partial credit), the late policy, the settings, the limits, the
    isolation, the warnings and a row per student."""
    report = two_exercise_report(hide_expected=True, warnings=["careful"])
    assert report.to_json() == {
        "format": "pgcourse-grades/2", "assignment": "01", "chapter": "01", "course_notebook": "01.ipynb",
        "max_total": 5,
        "exercises": [{"id": "ch01_a", "points": 2, "check_cell": "ch01_a_check", "answer_cells": ["a"], "kind": "auto",
                       "partial_credit": False},
                      {"id": "ch01_b", "points": 3, "check_cell": "ch01_b_check", "answer_cells": ["b"], "kind": "auto",
                       "partial_credit": False}],
        "late_policy": {}, "settings": {"hide_expected": True}, "limits": Limits().to_dict(),
        "isolation": {"mode": "none", "detail": "test"}, "warnings": ["careful"],
        "students": [
            {"student": "ann", "file": "ann.ipynb", "sha256": "h1", "total": 2, "max_total": 5, "problem": None,
             "notes": [], "exercises": {"ch01_a": {"points": 2, "max_points": 2, "status": "passed", "feedback": "ok"},
                                        "ch01_b": {"points": 0, "max_points": 3, "status": "failed",
                                                   "feedback": "wrong"}}},
            {"student": "bob", "file": "bob.ipynb", "sha256": "h2", "total": 1.5, "max_total": 5, "problem": None,
             "notes": [], "exercises": {
                 "ch01_a": {"points": 0, "max_points": 2, "status": "timeout", "feedback": "slow"},
                 "ch01_b": {"points": 1.5, "max_points": 3, "status": "error", "feedback": "boom", "graded_points": 0,
                            "teacher_points": 1.5, "comment": "close"}}}]}
    assert json.dumps(report.to_json())  # plain JSON


def test_the_json_of_a_late_report_keeps_the_late_fields_only_where_they_say_something():
    """A student's row keeps the submission time and its source when either is known, the lateness and penalty when
    either is non-zero, their own late policy when they have one, ``no_submission`` only when true and their identity
    only when known; an exercise keeps the grader's points only when they differ from those that count, the
    teacher's points, comment and a free-text answer only when given. Names are made valid UTF-8."""
    report = late_report()
    report.students[1].identity = {"lms": "canvas", "lms_id": "123"}
    report.students[1].late_policy = {"deadline": "2026-01-03T00:00:00+00:00"}
    report.students[1].time_source = "Canvas LATE flag"
    report.students[1].late_s = 30.0
    report.students[2].penalty = 0.5
    report.students.append(StudentResult("d\udcffn", "d.ipynb", None, {"ch02_a": result(0, 2), "ch02_why": result(
        0, 1, "manual", "")}, late_units=2, submitted_at="2026-01-02T00:00:00+00:00"))
    found = report.to_json()
    assert found["late_policy"] == {"deadline": NEW_YEAR_ISO, "late_penalty": "10%/day", "grace_s": 900.0}
    assert found["max_total"] == 3 and found["exercises"][1] == {
        "id": "ch02_why", "points": 1, "check_cell": "ch02_why", "answer_cells": ["ch02_why"], "kind": "manual",
        "partial_credit": False}
    ann, bob, cat, dan = found["students"]
    assert ann == {"student": "ann", "file": "ann.ipynb", "sha256": "h1", "total": 1.8, "max_total": 3,
                   "problem": None, "notes": [], "submitted_at": "2026-01-01T03:00:00+00:00", "time_source": "nbgrader",
                   "late_s": 9900, "late_units": 1, "penalty": 0.2,
                   "exercises": {"ch02_a": {"points": 2, "max_points": 2, "status": "passed", "feedback": "ok"},
                                 "ch02_why": {"points": 0, "max_points": 1, "status": "manual", "feedback": "",
                                              "answer": "Because."}}}
    assert bob == {"student": "=bob\n", "file": "bob.ipynb", "sha256": "h2", "total": 1, "max_total": 3,
                   "problem": None, "notes": [], "identity": {"lms": "canvas", "lms_id": "123"},
                   "submitted_at": None, "time_source": "Canvas LATE flag", "late_s": 30, "late_units": 0,
                   "penalty": 0, "late_policy": {"deadline": "2026-01-03T00:00:00+00:00"},
                   "exercises": {"ch02_a": {"points": 0, "max_points": 2, "status": "missing", "feedback": "no cell"},
                                 "ch02_why": {"points": 1, "max_points": 1, "status": "reviewed", "feedback": "",
                                              "teacher_points": 1}}}
    assert cat["no_submission"] is True and "submitted_at" not in cat and "time_source" not in cat
    assert (cat["late_s"], cat["late_units"], cat["penalty"], cat["total"]) == (0, 0, 0.5, 0)
    assert dan["student"] == "d\\xffn" and "late_units" not in dan and "no_submission" not in dan
    assert (dan["submitted_at"], dan["time_source"]) == ("2026-01-02T00:00:00+00:00", "")
    assert not {"identity", "late_policy", "late_s", "penalty"} & set(dan)


def test_the_summary_table_of_a_class():
    """The summary: a column per exercise (its label), the student's name left-aligned and every other column
    right-aligned, two spaces apart, under a dashed line; a cell is the points and the status's mark (T, E; none for
    passed or failed) with ``*`` where the teacher gave points; the total as points/possible; then the count, the
    mean total, the time, the legend (``*`` only when some teacher's points are in), the isolation."""
    rows = [["student", "a", "b", "total"], ["ann", "2", "0", "2/5"], ["bob", "0 T", "1.5 E*", "1.5/5"]]
    table = [f"{r[0]:<7}  {r[1]:>3}  {r[2]:>6}  {r[3]:>5}" for r in rows]
    assert two_exercise_report().summary().split("\n") == [
        table[0], "-------  ---  ------  -----", *table[1:], "",
        "2 submission(s) of 01, mean 1.75 / 5; graded in 1.0 s",
        "marks: T time limit, C crashed, E exception, M answer cell missing, I not graded (not a notebook, a symlink, "
        "too large; details per exercise in the JSON), * the teacher's points",
        "isolation: none (test)"]


def test_the_summary_of_a_late_class_with_absent_students_free_text_and_messages():
    """With a deadline the table has a late column (``-penalty``, empty when none) and the policy is described; a
    student with no submission shows ``-`` for each exercise and is counted apart (not in the mean); ``?`` marks a
    free-text answer to grade and ``M`` a missing answer; a name that is not printable is shown as its repr; the
    run's changes, notes and warnings follow, each unprintable character escaped."""
    rows = [["student", "a", "why", "late", "total"], ["ann", "2", "0 ?", "-0.2", "1.8/3"],
            ["'=bob\\n'", "0 M", "1 *", "", "1/3"], ["cat", "-", "-", "", "0/3"]]
    table = [f"{r[0]:<8}  {r[1]:>3}  {r[2]:>3}  {r[3]:>4}  {r[4]:>5}" for r in rows]
    assert late_report().summary().split("\n") == [
        table[0], "--------  ---  ---  ----  -----", *table[1:], "",
        "2 submission(s) of 02 and 1 student(s) of the class list with none (0 each), mean 1.40 / 3; graded in 2.0 s",
        "marks: T time limit, C crashed, E exception, M answer cell missing, I not graded (not a notebook, a symlink, "
        "too large; details per exercise in the JSON), ? free-text answer to grade (--manual), - no submission (on "
        "the roster, nothing handed in: 0), * the teacher's points",
        f"late policy: deadline {NEW_YEAR_ISO}, grace 15 min, late penalty 10%/day",
        "isolation: bwrap (bubblewrap 0.8)",
        "changed: ann 2 → 1.8: late\\tpolicy",
        "note: n\\x1b",
        "warning: w",
        "warning: x\\ny"]


@pytest.mark.parametrize("status, teacher, cell_text", [
    ("passed", None, "1"), ("failed", None, "1"), ("reviewed", None, "1"), ("timeout", None, "1 T"),
    ("crashed", None, "1 C"), ("error", None, "1 E"), ("missing", None, "1 M"), ("invalid", None, "1 I"),
    ("manual", None, "1 ?"), ("passed", 1.0, "1 *"), ("crashed", 0.0, "1 C*"),
])
def test_each_status_has_its_mark_in_the_summary(status, teacher, cell_text):
    """A status's mark: T timeout, C crashed, E error, M missing, I invalid, ? manual, none for passed, failed or
    reviewed; ``*`` follows when the teacher gave points (0 included)."""
    chapter = chapter_of(auto("ch01_a", 2.0))
    student = StudentResult("ann", "a.ipynb", None, {"ch01_a": result(1, 2, status, "", teacher_points=teacher)})
    line = report_of(chapter, [student]).summary().split("\n")[2]
    assert line == f"{'ann':<7}  {cell_text:>{len(cell_text)}}  {'1/2':>5}"


def test_the_summary_of_an_empty_or_wholly_absent_class():
    """With no students the summary is the header, the dashes, the legend and the isolation (no count); with only
    absent students the count is 0 and there is no mean; a teacher's points on an absent student's exercise are
    shown (with ``*``), not ``-``."""
    chapter = chapter_of(auto("ch01_a", 2.0))
    assert report_of(chapter, []).summary().split("\n") == [
        "student  a  total", "-------  -  -----",
        "marks: T time limit, C crashed, E exception, M answer cell missing, I not graded (not a notebook, a symlink, "
        "too large; details per exercise in the JSON)", "isolation: none (test)"]
    absent = [StudentResult("ann", "", None, {"ch01_a": result(0, 2, "missing", "")}, no_submission=True),
              StudentResult("bo", "", None, {"ch01_a": result(1, 2, "missing", "", teacher_points=1)},
                            no_submission=True)]
    lines = report_of(chapter, absent, seconds=0.04).summary().split("\n")
    assert lines[2:4] == [f"{'ann':<7}  {'-':>4}  {'0/2':>5}", f"{'bo':<7}  {'1 M*':>4}  {'1/2':>5}"]
    assert lines[5] == "0 submission(s) of 01 and 2 student(s) of the class list with none (0 each); graded in 0.0 s"
    assert lines[6].endswith(", - no submission (on the roster, nothing handed in: 0), * the teacher's points")


def test_the_summary_says_free_text_marks_when_the_chapter_has_free_text_questions():
    """The legend explains ``?`` whenever the chapter has a free-text question, even if no one's answer waits."""
    chapter = chapter_of(auto("ch01_a", 2.0), manual("ch01_why", 1.0))
    student = StudentResult("ann", "a.ipynb", None, {"ch01_a": result(2, 2), "ch01_why": result(1, 1, "reviewed", "")})
    legend = report_of(chapter, [student]).summary().split("\n")[5]
    assert legend.endswith("details per exercise in the JSON), ? free-text answer to grade (--manual)")


def test_a_gradebook_json_is_read_back_as_the_report_it_was():
    """A gradebook's JSON read back is the report written (students, results, settings, late policy, warnings),
    and writes the same JSON again."""
    for report in (two_exercise_report(warnings=["w"], hide_expected=True), late_report()):
        data = json.loads(json.dumps(report.to_json()))
        back = report_from_json(data, report.chapter, "g.json")
        assert back.to_json() == {**report.to_json(), "settings": {"hide_expected": False}}
        assert [(s.student, s.total, s.penalty, s.no_submission) for s in back.students] == \
            [(s.student, s.total, s.penalty, s.no_submission) for s in report.students]
        assert back.policy == report.policy and back.seconds == 0.0 and back.warnings == report.warnings
    assert report_from_json(json.loads(json.dumps(late_report().to_json())), late_report().chapter, "g").student(
        "ann").exercises["ch02_why"].graded_points is None


def test_a_gradebook_read_back_takes_each_exercises_grader_points_as_written():
    """An exercise read back: the grader's points are its ``graded_points`` when written, else its points when no
    teacher's points are in, else unknown; a free-text question's are always unknown (only the teacher grades it);
    an exercise the gradebook lacks (or all, for a row without exercises) is "missing" with 0 points and says the
    chapter changed."""
    chapter = chapter_of(auto("a", 2.0), auto("b", 2.0), auto("c", 2.0), manual("why", 1.0), auto("new", 4.0))
    entry = {"student": "ann", "file": "ann.ipynb", "exercises": {
        "a": {"points": 1.5, "status": "passed", "feedback": ""},
        "b": {"points": 2, "status": "error", "feedback": "x", "teacher_points": 2, "comment": "ok"},
        "c": {"points": 2, "status": "failed", "feedback": "", "teacher_points": 2, "graded_points": 0},
        "why": {"points": 1, "status": "reviewed", "feedback": "", "graded_points": 1, "answer": "Because."}}}
    back = report_from_json({"chapter": "01", "students": [entry]}, chapter, "g.json").student("ann")
    got = {k: (r.points, r.max_points, r.status, r.graded_points, r.teacher_points, r.comment, r.answer)
           for k, r in back.exercises.items()}
    assert got == {"a": (1.5, 2.0, "passed", 1.5, None, "", ""), "b": (2, 2.0, "error", None, 2, "ok", ""),
                   "c": (2, 2.0, "failed", 0, 2, "", ""), "why": (1, 1.0, "reviewed", None, None, "", "Because."),
                   "new": (0, 4.0, "missing", None, None, "", "")}
    assert back.exercises["new"].feedback == "not in the earlier gradebook (the chapter changed since)"
    bare = report_from_json({"chapter": "01", "students": [{"student": "bo", "file": ""}]}, chapter, "g.json")
    assert {k: (r.points, r.status) for k, r in bare.student("bo").exercises.items()} == {
        e: (0, "missing") for e in ("a", "b", "c", "why", "new")}
    assert (back.sha256, back.problem, back.notes, back.identity, back.submitted_at, back.time_source, back.late_s,
            back.late_units, back.penalty, back.late_policy, back.no_submission) == \
        (None, None, [], {}, None, "", 0.0, 0, 0.0, {}, False)


def test_a_gradebook_read_back_keeps_its_settings():
    """The limits, isolation (``none`` when not written), warnings, late policy and assignment name are read back;
    an assignment named as its chapter is no separate name."""
    chapter = chapter_of(auto("a", 2.0))
    data = {"chapter": "01", "students": [], "limits": {"exercise_s": 7.0}, "isolation": {"mode": "bwrap"},
            "warnings": ["w"], "assignment": "HW1",
            "late_policy": {"deadline": NEW_YEAR_ISO, "late_penalty": "1pt", "grace_s": 60}}
    back = report_from_json(data, chapter, "g.json")
    assert (back.limits, back.isolation, back.isolation_detail, back.warnings, back.assignment, back.name) == \
        (Limits(exercise_s=7.0), "bwrap", "", ["w"], "HW1", "HW1")
    assert back.policy == LatePolicy(NEW_YEAR, 1.0, False, 0.0, 60.0, "1pt")
    bare = report_from_json({"chapter": "01", "students": [], "assignment": "01"}, chapter, "g.json")
    assert (bare.limits, bare.isolation, bare.isolation_detail, bare.warnings, bare.assignment, bare.policy) == \
        (Limits(), "none", "", [], "", LatePolicy())


@pytest.mark.parametrize("data", [[], "x", None, {"students": []}, {"chapter": "01"}, {"chapter": "01", "students": {}},
                                  {"chapter": "01", "students": "ann"}])
def test_what_is_not_a_gradebook_is_refused(data):
    """A JSON that is not an object with a chapter and a list of students is a GradingError naming the file."""
    with pytest.raises(GradingError) as error:
        report_from_json(data, chapter_of(auto("a")), "old.json")
    assert str(error.value) == "old.json is not a gradebook written by pgcourse grade (no chapter and students)"


def test_a_gradebook_of_another_chapter_is_refused_saying_how_to_fix_it():
    """A gradebook of another chapter is refused, naming both chapters and the two ways out."""
    with pytest.raises(GradingError) as error:
        report_from_json({"chapter": "02", "students": []}, chapter_of(auto("a")), "old.json")
    assert str(error.value) == "old.json grades chapter 02, not 01: give --out the gradebook of 01, or --chapter 02"


def test_reading_the_gradebook_to_update(tmp_path):
    """The gradebook to update is read as JSON; a missing one says to grade without --update first; one that is not
    JSON or not readable says it cannot be read; ``read_report`` reads it as the chapter's report."""
    path = tmp_path / "g.json"
    with pytest.raises(GradingError) as error:
        read_gradebook_json(path)
    assert str(error.value) == (f"--update: there is no gradebook {path} to update yet (grade the class first, "
                                "without --update)")
    path.write_text("{not json")
    with pytest.raises(GradingError, match=f"^{path} cannot be read as a gradebook \\("):
        read_gradebook_json(path)
    with pytest.raises(GradingError, match=f"^{tmp_path} cannot be read as a gradebook"):
        read_gradebook_json(tmp_path)
    path.write_bytes(b'{"chapter": "\xff"}')
    with pytest.raises(GradingError, match="cannot be read as a gradebook"):
        read_gradebook_json(path)
    path.write_text(json.dumps(two_exercise_report().to_json()), encoding="utf-8")
    assert read_gradebook_json(path)["chapter"] == "01"
    assert read_report(path, two_exercise_report().chapter).points() == two_exercise_report().points()
    with pytest.raises(GradingError, match=f"^{path} grades chapter 01, not 02"):
        read_report(path, chapter_of(auto("a"), name="02"))


def test_the_gradebook_files_and_when_they_may_be_written(tmp_path):
    """The JSON is the CSV's name with ``.json`` unless named; both may not be one path; an existing file is
    replaced only with overwrite (FileExistsError naming it otherwise), and never when it is a folder."""
    csv_path = tmp_path / "g.csv"
    assert gradebook._gradebook_paths(csv_path, None) == (csv_path, tmp_path / "g.json")
    assert gradebook._gradebook_paths(csv_path, tmp_path / "x.json") == (csv_path, tmp_path / "x.json")
    assert gradebook._gradebook_paths(csv_path, "") == (csv_path, tmp_path / "g.json")
    (tmp_path / "sub").mkdir()
    same = (tmp_path / "g.json", None), (csv_path, csv_path), (csv_path, tmp_path / "sub" / ".." / "g.csv")
    for out, json_out in same:
        with pytest.raises(GradingError, match=f"--out {out} and the JSON file are the same path; give --out a .csv"):
            check_gradebook_free(out, json_out)
    check_gradebook_free(csv_path)
    csv_path.write_text("old")
    with pytest.raises(FileExistsError) as error:
        check_gradebook_free(csv_path)
    assert str(error.value) == f"{csv_path} already exists; pass --overwrite to replace it (or choose another --out)"
    check_gradebook_free(csv_path, overwrite=True)
    (tmp_path / "g.json").mkdir()
    with pytest.raises(FileExistsError, match="g.json already exists"):
        check_gradebook_free(tmp_path / "h.csv", tmp_path / "g.json")
    with pytest.raises(GradingError, match=f"^{tmp_path}/g.json is a folder$"):
        check_gradebook_free(csv_path, overwrite=True)


def test_write_gradebook_writes_the_csv_and_the_json_and_keeps_what_it_replaces(tmp_path):
    """The CSV and the JSON (indented by one, non-ASCII as written, ending in a newline) are written; a second
    write needs overwrite, and then keeps each previous version that changed in the history, listed in ``kept``."""
    report = late_report()
    report.students[0].student = "Zoë"
    csv_path, json_path = write_gradebook(report, tmp_path / "g.csv")
    assert (csv_path, json_path) == (tmp_path / "g.csv", tmp_path / "g.json")
    assert csv_path.read_text(encoding="utf-8") == report.csv_text()
    text = json_path.read_text(encoding="utf-8")
    assert json.loads(text) == report.to_json() and text.endswith("}\n") and '"Zoë"' in text
    assert text.split("\n")[1] == ' "format": "pgcourse-grades/2",'
    with pytest.raises(FileExistsError):
        write_gradebook(report, tmp_path / "g.csv")
    kept: list[Path] = []
    write_gradebook(report, tmp_path / "g.csv", overwrite=True, kept=kept)
    assert kept == []  # nothing changed: nothing kept
    report.students[0].exercises["ch02_a"].points = 1
    write_gradebook(report, tmp_path / "g.csv", tmp_path / "other.json", overwrite=True, kept=kept)
    assert [p.parent.name for p in kept] == ["g.history"] and kept[0].read_text(encoding="utf-8").startswith(
        '"student"') and '"Zoë",2,' in kept[0].read_text(encoding="utf-8")
    assert (tmp_path / "other.json").is_file()
    write_gradebook(report, tmp_path / "h.csv", overwrite=True)  # no list to append to: fine
    report.students[0].exercises["ch02_a"].points = 0
    write_gradebook(report, tmp_path / "g.csv", overwrite=True)
    assert json.loads(json_path.read_text(encoding="utf-8"))["students"][0]["exercises"]["ch02_a"]["points"] == 0


def test_a_deadline_without_a_penalty_still_gives_the_late_columns():
    """The late columns (``late_penalty`` in the CSV, ``late`` in the summary) and the policy line come with a
    deadline, also one that costs nothing."""
    report = two_exercise_report(policy=LatePolicy(deadline=NEW_YEAR))
    assert report.csv_text().split("\n")[:2] == ['"student","ch01_a","ch01_b","late_penalty","total"', '"ann",2,0,0,2']
    lines = report.summary().split("\n")
    assert lines[0].split() == ["student", "a", "b", "late", "total"] and lines[2].split() == ["ann", "2", "0", "2/5"]
    assert f"late policy: deadline {NEW_YEAR_ISO}, no late penalty" in lines


def test_the_legend_explains_the_star_when_a_teacher_gave_0_points():
    """Teacher's points of 0 are the teacher's points: the legend explains ``*``."""
    student = StudentResult("ann", "a.ipynb", None, {"ch01_a": result(0, 2, "crashed", "", teacher_points=0.0)})
    legend = report_of(chapter_of(auto("ch01_a", 2.0)), [student]).summary().split("\n")[5]
    assert legend.endswith("details per exercise in the JSON), * the teacher's points")
