"""Issue 30, item 2: a handout for graded use, and answers that are the course's own solution.

``pgcourse handout DIR`` writes the course without solutions/ (and START_HERE without its column of links
to them) into a new or empty folder only; ``pgcourse grade`` tells the teacher which answers are the
course's solution after the similarity normalisation (renamed, comments gone), in the summary and in the
similarity report, never in a student's feedback or points.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import pgcourse.grading.grader as grader_module
from pgcourse.classroom import exercisegen
from pgcourse.cli import main as cli_main

from test_grading_term import FakePool  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


# -- the handout ------------------------------------------------------------------------------------------------
def test_the_handout_has_no_solutions_and_start_here_no_links_to_them(tmp_path, capsys):
    target = tmp_path / "class"
    assert cli_main(["handout", str(target), "--course", str(ROOT)]) == 0
    names = {path.name for path in target.iterdir()}
    assert {"START_HERE.ipynb", "notebooks", "exercises", "figures", "pgcourse", "pyproject.toml",
            "README.md"} <= names
    assert not names & {"solutions", "tests", "tools", "docs"}
    assert sorted(p.name for p in (target / "exercises").glob("*.ipynb")) == sorted(
        p.name for p in (ROOT / "exercises").glob("*.ipynb"))
    start = (target / "START_HERE.ipynb").read_text()
    assert "solutions" not in start and "solved" not in start
    table = next(cell for cell in nbformat.reads(start, as_version=4).cells if "| 01 |" in cell.source)
    row = next(line for line in table.source.splitlines() if line.startswith("| 01 |"))
    assert row.count("|") == 4 and "exercises/01_reinforce.ipynb" in row  # lesson and exercises stay
    for notebook in [*(target / "exercises").glob("*.ipynb"), *(target / "notebooks").glob("*.ipynb")]:
        assert "solutions/" not in notebook.read_text(), notebook
    assert not list(target.rglob("__pycache__")) and not list(target.rglob("runs"))
    assert "wrote the handout" in capsys.readouterr().out


@pytest.mark.parametrize("layout", ["a file in it", "a file"])
def test_the_handout_never_writes_into_a_folder_that_holds_something(tmp_path, capsys, layout):
    target = tmp_path / "class"
    if layout == "a file in it":
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    else:
        target.write_text("mine")
    assert cli_main(["handout", str(target), "--course", str(ROOT)]) == 2
    err = capsys.readouterr().err
    assert ("is not empty" if layout == "a file in it" else "is not a folder") in err
    assert (target / "notes.txt" if layout == "a file in it" else target).read_text() == "mine"
    assert (not target.is_dir()) or sorted(p.name for p in target.iterdir()) == ["notes.txt"]


def test_the_handout_refuses_a_folder_inside_what_it_copies(tmp_path, capsys):
    from pgcourse.classroom.handout import HandoutError, check_target

    with pytest.raises(HandoutError, match="inside the course's exercises/"):
        check_target(ROOT / "exercises" / "class", ROOT)


# -- answers that are the course's solution ---------------------------------------------------------------------
SOLUTION = '''def double(x):
    """Twice x, by adding it to itself (the exercise's docstring)."""
    ### BEGIN SOLUTION
    total = 0
    for step in range(2):
        total = total + x  # add x once more
    if total != total:
        raise ValueError("double: not a number")
    if isinstance(total, float) and abs(total) == float("inf"):
        raise OverflowError("double: too large")
    return total
    ### END SOLUTION'''
RENAMED = '''def double(value):
    """Twice x, by adding it to itself (the exercise's docstring)."""
    acc = 0
    for i in range(2):
        acc = acc + value
    if acc != acc:
        raise ValueError("NaN!")
    if isinstance(acc, float) and abs(acc) == float("inf"):
        raise OverflowError("big")
    return acc'''
OWN = "def double(x):\n    \"\"\"Twice x.\"\"\"\n    result = x * 2\n    assert result == result, 'nan'\n    return result"


def _course(root):
    meta = {"grade": False, "solution": False, "locked": True, "schema_version": 3}
    cells = [new_markdown_cell("# Demo", metadata={"nbgrader": {**meta, "grade_id": "ch01_intro"}}),
             new_code_cell(SOLUTION, metadata={"nbgrader": {**meta, "grade_id": "ch01_double", "solution": True,
                                                             "locked": False}}),
             new_code_cell("assert double(3) == 6", metadata={"nbgrader": {**meta, "grade_id": "ch01_double_check",
                                                                           "grade": True, "points": 2}})]
    solution = new_notebook(cells=cells)
    for folder, notebook in (("solutions", solution), ("exercises", exercisegen.make_exercise_notebook(solution))):
        (root / folder).mkdir(parents=True)
        nbformat.write(notebook, root / folder / "01_demo.ipynb")
    return root


def _submit(path, source):
    notebook = nbformat.read(path.parents[1] / "course" / "exercises" / "01_demo.ipynb", as_version=4)
    for cell in notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "ch01_double":
            cell.source = source
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)


def test_an_answer_that_is_the_courses_solution_is_reported_to_the_teacher(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(grader_module, "Grader", FakePool)
    course = _course(tmp_path / "course")
    verbatim = "\n".join(line for line in SOLUTION.splitlines() if "### " not in line)
    for student, source in (("alice", verbatim), ("bob", RENAMED), ("carol", OWN), ("dave", "def double(x):\n"
                                                                                           "    return 2 * x")):
        _submit(tmp_path / "submitted" / f"{student}.ipynb", source)
    out = tmp_path / "grades" / "hw1.csv"
    assert cli_main(["grade", str(tmp_path / "submitted"), "--course", str(course), "--chapter", "01",
                     "--out", str(out), "--similarity", "--feedback", str(tmp_path / "feedback")]) == 0
    printed = capsys.readouterr().out
    assert "solution copies (a hint to read the notebooks, never a verdict): 2 answer(s)" in printed
    assert "ch01_double: alice (verbatim, comments included)" in printed and "ch01_double: bob\n" in printed
    assert "carol" not in printed.split("solution copies")[1].split("\n\n")[0]
    rows = list(csv.reader(io.StringIO(out.with_name("hw1.similarity.csv").read_text())))
    copied = {row[1]: row[2] for row in rows[1:] if "course's solution" in row[2]}
    assert copied == {"alice": "the course's solution (solutions/01_demo.ipynb, verbatim)",
                      "bob": "the course's solution (solutions/01_demo.ipynb)"}
    for student in ("alice", "bob"):  # a hint for the teacher: not in the student's feedback, nor their points
        assert "solution" not in (tmp_path / "feedback" / f"{student}.md").read_text().lower()
    assert all("solution" not in json.dumps(s) for s in json.loads(out.with_suffix(".json").read_text())["students"])
