"""A term with pgcourse grade, run the way docs/teachers.md tells a teacher to run it.

Two chapters of a synthetic course, a class of five, every case of the term plan: the first
assignment collected as a Canvas download (on time, late by Canvas's times, a re-upload, a partial
answer, an answer copied with the names changed, a free-text question), the second with nbgrader
(a helper and an import in cells the student added, a late hand-in past the grace period, a wrong
notebook re-graded after the student handed in the right one, a function defined after the last
check, an extension granted afterwards). Both go into one term gradebook, which is exported for Canvas
and for Moodle, with a feedback file per student; a sixth student on the class list handed in nothing
all term and is exported with 0s. Every number is checked exactly.

Everything goes through the command line, as a teacher types it.
"""
from __future__ import annotations

import copy
import csv
import json
import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from pgcourse.classroom import exercisegen
from pgcourse.cli import main as cli_main
from pgcourse.classroom.grading import sandbox

SANDBOX = sandbox.probe_sandbox()[0] == sandbox.SANDBOX
UNSAFE_FLAG = [] if SANDBOX else ["--unsafe-no-sandbox"]


# -- the course: two small chapters --------------------------------------------------------------------
def nbgrader(grade_id, **flags):
    return {"nbgrader": {"grade": False, "solution": False, "locked": True, "grade_id": grade_id,
                         "schema_version": 3, **flags}}


def answer(grade_id):
    return nbgrader(grade_id, solution=True, locked=False)


def check(grade_id, points):
    return nbgrader(grade_id, grade=True, points=points)


SETUP = "import numpy as np\nimport torch\n\nimport pgcourse as pg"
DOUBLE = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"
NORMALIZE = ("def normalize(x, eps=1e-8):\n    ### BEGIN SOLUTION\n    return (x - x.mean()) / (x.std(unbiased=False) + eps)"
             "\n    ### END SOLUTION")
WHY = "### BEGIN SOLUTION\nA baseline that does not depend on the action leaves the gradient unbiased.\n### END SOLUTION"
TRIPLE = "def triple(x):\n    ### BEGIN SOLUTION\n    return 3 * x\n    ### END SOLUTION"
QUADRUPLE = "def quadruple(x):\n    ### BEGIN SOLUTION\n    return 4 * x\n    ### END SOLUTION"


def chapter_one():
    cells = [new_markdown_cell("# Alpha", metadata=nbgrader("ch01_intro")),
             new_code_cell(SETUP),
             new_code_cell(DOUBLE, metadata=answer("ch01_double")),
             new_code_cell('assert double(3) == 6, f"double(3) should be 6, not {double(3)!r}"\nprint("✓ double")',
                           metadata=check("ch01_double_check", 2)),
             new_code_cell(NORMALIZE, metadata=answer("ch01_normalize")),
             new_code_cell("pg.checks.check_normalize(normalize)", metadata=check("ch01_normalize_check", 2)),
             new_markdown_cell("Why is a state baseline unbiased?", metadata=nbgrader("ch01_why_question")),
             new_markdown_cell(WHY, metadata=nbgrader("ch01_why", solution=True, grade=True, points=2, locked=False))]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


def chapter_two():
    cells = [new_markdown_cell("# Beta", metadata=nbgrader("ch02_intro")),
             new_code_cell(SETUP),
             new_code_cell(TRIPLE, metadata=answer("ch02_triple")),
             new_code_cell('assert triple(2) == 6, f"triple(2) should be 6, not {triple(2)!r}"\nprint("✓ triple")',
                           metadata=check("ch02_triple_check", 2)),
             new_code_cell(QUADRUPLE, metadata=answer("ch02_quadruple")),
             new_code_cell('assert quadruple(2) == 8, f"quadruple(2) should be 8, not {quadruple(2)!r}"\n'
                           'print("✓ quadruple")', metadata=check("ch02_quadruple_check", 2)),
             new_code_cell("print('a demo cell: not graded')", metadata=nbgrader("ch02_demo"))]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


def make_course(root: Path) -> Path:
    for folder in ("solutions", "exercises"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name, notebook in (("01_alpha", chapter_one()), ("02_beta", chapter_two())):
        nbformat.write(notebook, root / "solutions" / f"{name}.ipynb")
        nbformat.write(exercisegen.make_exercise_notebook(notebook), root / "exercises" / f"{name}.ipynb")
    return root


def handout(course: Path, name: str):
    return nbformat.read(course / "exercises" / f"{name}.ipynb", as_version=4)


def filled(course: Path, name: str, answers: dict[str, str], added: list[tuple[int, str]] = ()):
    """The handout with ``answers`` in its answer cells and ``added`` cells inserted (position, source)."""
    notebook = copy.deepcopy(handout(course, name))
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    for position, source in added:
        notebook.cells.insert(position, new_code_cell(source))
    return notebook


def write(notebook, path: Path, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


# -- the class -----------------------------------------------------------------------------------------
RIGHT_1 = {"ch01_double": "def double(x):\n    return 2 * x\n",
           "ch01_normalize": "def normalize(x, eps=1e-8):\n    return (x - x.mean()) / (x.std(unbiased=False) + eps)\n",
           "ch01_why": "The baseline does not depend on the action, so its expected score-function term is zero."}
# Carol's own way of writing normalize; Erin hands in the same code with other names, comments and layout.
CAROL_NORMALIZE = '''def normalize(x, eps=1e-8):
    total = x.sum()
    count = x.numel()
    centre = total / count
    spread = ((x - centre) ** 2).sum() / count
    scale = torch.sqrt(spread) + eps
    result = (x - centre) / scale
    return result
'''
ERIN_NORMALIZE = '''def normalize(values, tiny=1e-8):
    # my own normalisation
    s = values.sum()
    n = values.numel()
    mid = s / n

    var = ((values - mid) ** 2).sum() / n
    denominator = torch.sqrt(var) + tiny  # avoid dividing by zero
    out = (values - mid) / denominator
    return out
'''
RIGHT_2 = {"ch02_triple": "def triple(x):\n    return 3 * x\n", "ch02_quadruple": "def quadruple(x):\n    return 4 * x\n"}


def canvas_class(course: Path, folder: Path) -> None:
    """Chapter 1 as Canvas's "Download Submissions" names the files."""
    write(filled(course, "01_alpha", {**RIGHT_1, "ch01_normalize": CAROL_NORMALIZE}),
          folder / "jonescarol_12346_901_01_alpha.ipynb")
    write(filled(course, "01_alpha", RIGHT_1), folder / "smithalice_LATE_12347_902_01_alpha.ipynb")
    # Bob uploads the stubs, then a better notebook (Canvas numbers the second upload higher and adds -1)
    write(filled(course, "01_alpha", {}), folder / "leebob_12348_903_01_alpha.ipynb", mtime=1_800_000_000)
    write(filled(course, "01_alpha", {"ch01_double": RIGHT_1["ch01_double"],
                                      "ch01_normalize": "def normalize(x, eps=1e-8):\n"
                                                        "    return (x - x.mean()) / x.std(unbiased=False)\n"}),
          folder / "leebob_12348_910_01_alpha-1.ipynb", mtime=1_700_000_000)
    write(filled(course, "01_alpha", {"ch01_double": RIGHT_1["ch01_double"],
                                      "ch01_normalize": "def normalize(x, eps=1e-8):\n    return torch.zeros_like(x)\n"}),
          folder / "ngdave_12349_904_01_alpha.ipynb")
    write(filled(course, "01_alpha", {**RIGHT_1, "ch01_normalize": ERIN_NORMALIZE,
                                      "ch01_why": "Because its expectation is zero."}),
          folder / "wuerin_12350_905_01_alpha.ipynb")


def nbgrader_submission(course: Path, root: Path, student: str, notebook, when: str, chapter="02_beta") -> Path:
    folder = root / student / "02_beta"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "timestamp.txt").write_text(f"{when}.000000 UTC")
    return write(notebook, folder / f"{chapter}.ipynb")


def nbgrader_class(course: Path, root: Path) -> None:
    """Chapter 2 collected with nbgrader: submitted/<student>/02_beta/ with timestamp.txt."""
    nbgrader_submission(course, root, "jonescarol", filled(course, "02_beta", RIGHT_2), "2025-03-14 20:00:00")
    # Alice imports math and writes a helper in cells she added before her answers: as in her notebook, they run
    alice = filled(course, "02_beta", {"ch02_triple": "def triple(x):\n    return int(math.floor(3 * x))\n",
                                       "ch02_quadruple": "def quadruple(x):\n    return double_it(double_it(x))\n"},
                   added=[(2, "import math"), (5, "def double_it(x):\n    return x + x")])
    nbgrader_submission(course, root, "smithalice", alice, "2025-03-14 23:30:00")
    # Bob: 3 hours late; the grace period is one hour: one day of 10%
    nbgrader_submission(course, root, "leebob", filled(course, "02_beta", RIGHT_2), "2025-03-15 03:00:00")
    # Dave hands in his chapter-1 notebook by mistake
    nbgrader_submission(course, root, "ngdave", filled(course, "01_alpha", RIGHT_1), "2025-03-14 21:00:00",
                        chapter="01_alpha")
    # Erin solves quadruple in a cell after the last check, leaving the stub in the answer cell
    erin = filled(course, "02_beta", {"ch02_triple": RIGHT_2["ch02_triple"]})
    erin.cells.append(new_code_cell("def quadruple(x):\n    return 4 * x"))
    nbgrader_submission(course, root, "wuerin", erin, "2025-03-14 22:00:00")


CANVAS_ROSTER = '''Student,ID,SIS User ID,SIS Login ID,Section,HW1 (5001),Current Score
    Points Possible,,,,,6,(read only)
"Jones, Carol",12346,S001,cjones,Section A,,
"Smith, Alice",12347,S002,asmith,Section A,,
"Lee, Bob",12348,S003,blee,Section B,,
"Ng, Dave",12349,S004,dng,Section B,,
"Wu, Erin",12350,S005,ewu,Section B,,
"Fox, Frank",12351,S006,ffox,Section B,,
'''
MOODLE_ROSTER = '''First name,Last name,ID number,Institution,Department,Email address
Carol,Jones,S001,Uni,CS,carol@uni.example
Alice,Smith,S002,Uni,CS,alice@uni.example
Bob,Lee,S003,Uni,CS,bob@uni.example
Dave,Ng,S004,Uni,CS,dave@uni.example
Erin,Wu,S005,Uni,CS,erin@uni.example
Frank,Fox,S006,Uni,CS,frank@uni.example
'''
TIMES_1 = '''student,submitted_at
12346,2025-03-07T20:00:00+00:00
12347,2025-03-09T11:00:00+00:00
12348,2025-03-07T23:00:00+00:00
ngdave,2025-03-07T22:00:00+00:00
wuerin,2025-03-07T22:30:00+00:00
'''
ASSIGNMENT_2 = '''name = "HW2"
chapter = "02"
deadline = "2025-03-14T23:59:00+00:00"
late_penalty = "10%/day"
grace = "1h"

[points]
ch02_triple = 3
'''


def grade(*args):
    code = cli_main(["grade", *args, "--quiet", "--jobs", "2", "--timeout", "20", "--memory", "1024", *UNSAFE_FLAG])
    return code


@pytest.fixture(scope="module")
def term(tmp_path_factory):
    """The whole term, run once: each step's output is checked by the tests below."""
    root = tmp_path_factory.mktemp("term")
    course = make_course(root / "course")
    canvas_class(course, root / "downloads" / "hw1")
    nbgrader_class(course, root / "nbgrader" / "submitted")
    (root / "canvas-roster.csv").write_text(CANVAS_ROSTER)
    (root / "moodle-roster.csv").write_text(MOODLE_ROSTER)
    (root / "hw1-times.csv").write_text(TIMES_1)
    (root / "hw2.toml").write_text(ASSIGNMENT_2)
    here = os.getcwd()
    os.chdir(root)  # the teacher works in the term's folder (restored below)
    try:
        steps, free_text_before = run_term(course)
    finally:
        os.chdir(here)
    return dict(root=root, steps=steps, free_text_before=free_text_before)


def run_term(course: Path):
    """The commands of docs/teachers.md's term plan, in order (in the term's folder)."""
    common = ["--course", str(course), "--gradebook", "term.csv"]
    steps = {}
    # week 1: the Canvas download, with Canvas's submission times, partial credit and similarity hints
    steps["hw1"] = grade("downloads/hw1", "--chapter", "01", "--name", "HW1", "--out", "grades/hw1.csv",
                         "--deadline", "2025-03-07T23:59:00+00:00", "--late-penalty", "10%/day",
                         "--timestamps", "hw1-times.csv", "--partial-credit", "--similarity",
                         "--feedback", "feedback/hw1", *common)
    free_text_before = Path("grades/hw1.free-text.csv").read_text()
    # the same grading with one worker instead of two: the same bytes (deterministic output)
    steps["again"] = grade("downloads/hw1", "--chapter", "01", "--name", "HW1", "--out", "again/hw1.csv",
                           "--deadline", "2025-03-07T23:59:00+00:00", "--late-penalty", "10%/day",
                           "--timestamps", "hw1-times.csv", "--partial-credit", "--similarity", "--jobs", "1",
                           "--course", str(course))
    # the free-text answers, graded by the teacher in the exported file, merged back (no re-grading)
    rows = list(csv.DictReader(open("grades/hw1.free-text.csv", newline="")))
    points = {"jonescarol": "2", "smithalice": "1", "wuerin": "1.5"}
    with open("hw1-manual.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            row["points"] = points.get(row["student"], "")
            row["comment"] = "see the lecture notes" if row["student"] == "smithalice" else ""
            writer.writerow(row)
    steps["manual"] = grade("--out", "grades/hw1.csv", "--update", "--manual", "hw1-manual.csv",
                            "--feedback", "feedback/hw1", *common)
    # week 2: nbgrader's folder, the assignment's settings in a file
    steps["hw2"] = grade("nbgrader/submitted", "--assignment", "hw2.toml", "--out", "grades/hw2.csv",
                         "--feedback", "feedback/hw2", "--feedback-format", "html", *common)
    # Dave hands in the right notebook: re-grade him alone into the gradebook
    dave = Path("nbgrader/submitted/ngdave/02_beta")
    (dave / "01_alpha.ipynb").unlink()
    write(filled(course, "02_beta", RIGHT_2), dave / "02_beta.ipynb")
    steps["regrade"] = grade("nbgrader/submitted", "--student", "ngdave", "--update", "--assignment", "hw2.toml",
                             "--out", "grades/hw2.csv", "--feedback", "feedback/hw2", "--feedback-format", "html",
                             *common)
    # Bob was ill: an extension to 04:00 for him alone (nothing graded again; the class keeps its deadline)
    steps["extension"] = grade("--update", "--student", "leebob", "--deadline", "2025-03-15T04:00:00+00:00",
                               "--out", "grades/hw2.csv", "--feedback", "feedback/hw2", "--feedback-format", "html",
                               *common)
    # after the term: the exports
    steps["canvas"] = cli_main(["grade", "--export", "canvas", "--gradebook", "term.csv", "--roster",
                                "canvas-roster.csv", "--out", "canvas-import.csv"])
    steps["moodle"] = cli_main(["grade", "--export", "moodle", "--gradebook", "term.csv", "--roster",
                                "moodle-roster.csv", "--out", "moodle-import.csv"])
    return steps, free_text_before


def table(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_every_step_succeeds(term):
    assert term["steps"] == {"hw1": 0, "again": 0, "manual": 0, "hw2": 0, "regrade": 0, "extension": 0, "canvas": 0,
                             "moodle": 0}


def test_output_is_the_same_with_one_worker_or_two(term):
    root = term["root"]
    first = sorted((root / "grades/hw1.history").glob("*-hw1.json"))[0]  # before the teacher's points
    assert (root / "again/hw1.json").read_bytes() == first.read_bytes()
    assert (root / "again/hw1.similarity.csv").read_bytes() == (root / "grades/hw1.similarity.csv").read_bytes()
    first_csv = sorted((root / "grades/hw1.history").glob("*-hw1.csv"))[0]
    assert (root / "again/hw1.csv").read_bytes() == first_csv.read_bytes()


def test_assignment_one_points_lateness_partial_credit_and_free_text(term):
    data = json.loads((term["root"] / "grades/hw1.json").read_text())
    students = {s["student"]: s for s in data["students"]}
    assert sorted(students) == ["jonescarol", "leebob", "ngdave", "smithalice", "wuerin"]
    points = {name: {k: e["points"] for k, e in s["exercises"].items()} for name, s in students.items()}
    assert points["jonescarol"] == {"ch01_double": 2, "ch01_normalize": 2, "ch01_why": 2}
    assert points["wuerin"] == {"ch01_double": 2, "ch01_normalize": 2, "ch01_why": 1.5}
    # Alice: late by Canvas's times (1 day 11 h: two started days, 10% of 6 each), graded 1 on the free text
    assert points["smithalice"] == {"ch01_double": 2, "ch01_normalize": 2, "ch01_why": 1}
    assert students["smithalice"]["penalty"] == 1.2 and students["smithalice"]["late_units"] == 2
    assert students["smithalice"]["total"] == 3.8 and students["smithalice"]["time_source"] == "--timestamps"
    # Bob's later upload counts; his normalize without eps earns partial credit; his free text is empty
    bob = students["leebob"]
    assert bob["file"].endswith("leebob_12348_910_01_alpha-1.ipynb")
    assert "ignored" in " ".join(bob["notes"]) and "903" in " ".join(bob["notes"])
    normalize = bob["exercises"]["ch01_normalize"]
    assert normalize["status"] == "failed" and normalize["points"] == 1.5  # 6 of 8 cases: 1.5
    assert "Partial credit: your function gets 6 of 8 cases right: 1.5 of 2 point(s)" in normalize["feedback"]
    assert "no epsilon" in normalize["feedback"]
    assert bob["exercises"]["ch01_why"]["status"] == "missing"
    # Dave's zeros earn nothing, partial credit or not; his free-text answer awaits the teacher
    dave = students["ngdave"]["exercises"]["ch01_normalize"]
    assert dave["points"] == 0 and "Partial credit: none. Your function gets 2 of 8 cases right, but only" in dave[
        "feedback"]
    assert students["ngdave"]["exercises"]["ch01_why"]["status"] == "missing"  # he left the handout's text
    assert students["jonescarol"]["exercises"]["ch01_why"]["status"] == "reviewed"
    assert students["jonescarol"]["identity"] == {"lms": "canvas", "lms_id": "12346"}
    assert data["late_policy"]["late_penalty"] == "10%/day"


def test_free_text_export_lists_every_answer(term):
    rows = list(csv.DictReader(term["free_text_before"].splitlines()))
    assert [(r["student"], r["exercise"], r["points"]) for r in rows] == [
        ("jonescarol", "ch01_why", ""), ("leebob", "ch01_why", ""), ("ngdave", "ch01_why", ""),
        ("smithalice", "ch01_why", ""), ("wuerin", "ch01_why", "")]
    assert rows[4]["answer"] == "Because its expectation is zero." and rows[1]["answer"] == ""


def test_similarity_hints_find_the_renamed_copy_only(term):
    rows = table(term["root"] / "grades/hw1.similarity.csv")
    assert rows[0] == ["exercise", "student", "other_student", "overlap", "shared_fingerprints"]
    assert [(r[0], r[1], r[2]) for r in rows[1:]] == [("ch01_normalize", "jonescarol", "wuerin")]


def test_assignment_two_added_cells_lateness_wrong_notebook_regraded(term):
    data = json.loads((term["root"] / "grades/hw2.json").read_text())
    students = {s["student"]: s for s in data["students"]}
    totals = {name: s["total"] for name, s in students.items()}
    # triple is worth 3 here (the assignment file), quadruple 2; Bob's extension took his penalty away
    assert totals == {"jonescarol": 5, "smithalice": 5, "leebob": 5, "ngdave": 5, "wuerin": 3}
    before = sorted((term["root"] / "grades/hw2.history").glob("*-hw2.json"))[-1]  # before the extension
    bob = {s["student"]: s for s in json.loads(before.read_text())["students"]}["leebob"]
    assert bob["penalty"] == 0.5 and bob["total"] == 4.5 and bob["time_source"] == "nbgrader timestamp.txt"
    bob = students["leebob"]
    assert "penalty" not in bob and bob["late_policy"] == {"deadline": "2025-03-15T04:00:00+00:00"}
    assert data["late_policy"]["deadline"] == "2025-03-14T23:59:00+00:00" and data["late_policy"]["grace_s"] == 3600
    assert any(n.startswith("late penalty changed from 0.5 to 0 point(s): own deadline: 2025-03-15T04:00:00+00:00")
               for n in bob["notes"]), bob["notes"]
    erin = students["wuerin"]["exercises"]["ch02_quadruple"]
    assert "move it into the answer cell of ch02_quadruple" in erin["feedback"]
    assert data["assignment"] == "HW2" and data["max_total"] == 5


def test_the_wrong_notebook_was_said_loudly_then_regraded_alone(term):
    root = term["root"]
    first = sorted((root / "grades/hw2.history").glob("*-hw2.json"))[0]
    before = {s["student"]: s for s in json.loads(first.read_text())["students"]}
    assert before["ngdave"]["total"] == 0
    assert {e["status"] for e in before["ngdave"]["exercises"].values()} == {"missing"}
    assert any("holds none of the answer cells of 02_beta" in w for w in json.loads(first.read_text())["warnings"])
    audit = [json.loads(line) for line in (root / "grades/hw2.audit.jsonl").read_text().splitlines()]
    assert [entry["action"] for entry in audit] == ["grade", "update", "update"]
    assert audit[1]["graded"] == ["ngdave"] and audit[1]["course"]["pgcourse"]
    assert audit[1]["changed"] == {"ngdave": [0, 5]} and audit[2]["changed"] == {"leebob": [4.5, 5]}
    assert audit[2]["graded"] == [] and audit[2]["options"]["student"] == ["leebob"]
    assert "course_notebook" in audit[1]["course"] and audit[1]["options"]["student"] == ["ngdave"]


def test_term_gradebook(term):
    rows = table(term["root"] / "term.csv")
    assert rows[0] == ["student", "HW1", "HW2", "total"]
    body = {row[0]: [float(v) for v in row[1:]] for row in rows[1:]}
    assert body == {"jonescarol": [6, 5, 11], "leebob": [3.5, 5, 8.5], "ngdave": [2, 5, 7],
                    "smithalice": [3.8, 5, 8.8], "wuerin": [5.5, 3, 8.5]}
    kept = sorted(p.name for p in (term["root"] / "term.history").iterdir())
    assert len(kept) >= 6  # the term gradebook before each of its updates: never silently replaced


def test_canvas_export(term):
    rows = table(term["root"] / "canvas-import.csv")
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "HW1 (5001)", "HW2"]
    assert rows[1] == ["Points Possible", "", "", "", "", "6", "5"]
    assert rows[2] == ["Jones, Carol", "12346", "S001", "cjones", "Section A", "6", "5"]
    assert rows[5] == ["Smith, Alice", "12347", "S002", "asmith", "Section A", "3.8", "5"]
    assert [row[1] for row in rows[2:]] == ["12346", "12348", "12349", "12347", "12350", "12351"]
    assert rows[7] == ["Fox, Frank", "12351", "S006", "ffox", "Section B", "0", "0"]  # on the class list, nothing in


def test_moodle_export(term):
    rows = table(term["root"] / "moodle-import.csv")
    assert rows[0] == ["Email address", "ID number", "Full name", "HW1", "HW2"]
    assert rows[1] == ["carol@uni.example", "S001", "Carol Jones", "6", "5"]
    assert rows[4] == ["alice@uni.example", "S002", "Alice Smith", "3.8", "5"]
    assert rows[6] == ["frank@uni.example", "S006", "Frank Fox", "0", "0"]
    assert len(rows) == 7


def test_feedback_files(term):
    root = term["root"]
    assert sorted(p.name for p in (root / "feedback/hw1").glob("*.md")) == [
        "jonescarol.md", "leebob.md", "ngdave.md", "smithalice.md", "wuerin.md"]
    alice = (root / "feedback/hw1/smithalice.md").read_text()
    assert "**Total: 3.8 / 6**" in alice and "late penalty: 1.2" in alice and "see the lecture notes" in alice
    assert "after the deadline" in alice and "the grader gave" not in alice  # a free-text answer: only her teacher
    bob = (root / "feedback/hw1/leebob.md").read_text()
    assert "Partial credit" in bob and "Probable mistake: no epsilon" in bob and "What to do:" in bob
    erin = (root / "feedback/hw2/wuerin.html").read_text()
    assert erin.startswith("<!DOCTYPE html>") and "move it into the answer cell" in erin
    dave = (root / "feedback/hw2/ngdave.html").read_text()
    assert "Total: 5 / 5" in dave
    bob = (root / "feedback/hw2/leebob.html").read_text()
    assert "Total: 5 / 5" in bob and "late penalty changed from 0.5 to 0 point(s)" in bob and "an extension" in bob
    assert any((root / "feedback/hw2").glob("ngdave.history/*-ngdave.html"))  # his first feedback is kept
