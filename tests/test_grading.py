"""Classroom grading (pgcourse grade): exact points for a class of synthetic submissions.

The class: a right answer, the stubs as handed out, partly right work, every failure mode (an
infinite loop in a function and at import, os._exit, a segfault, MemoryError, an exception or a
syntax error when the cell runs, huge output, missing cells), every forge attempt (edited or
deleted check cells, monkeypatched pgcourse.checks / torch.allclose / numpy.testing, fake result
lines, exiting with status 0, writing the gradebook and the course's files, objects that compare
equal to anything, killing the grader), a notebook saved by nbformat 3, a file that is not a
notebook and an empty file. Each gets its exact points; no submission file changes.

The course is a small synthetic chapter written here (so the expected points never move when
the real chapters change); the real chapters get their own test: the solution scores full
points, the exercise as handed out scores 0.
"""
from __future__ import annotations

import copy
import csv
import hashlib
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from pgcourse.classroom import exercisegen, grading
from pgcourse.cli import main as cli_main
from pgcourse.classroom.grading import GradingError, Limits
from pgcourse.classroom.grading import sandbox

ROOT = Path(__file__).resolve().parents[1]
SANDBOX = sandbox.probe_sandbox()[0] == sandbox.SANDBOX
# Without bubblewrap (a machine where `make test` could not install it) the grader refuses to run student code
# unless asked; these tests then grade without the sandbox (the attack tests skip: test_grading_attacks.py).
ISOLATION = "auto" if SANDBOX else sandbox.UNSAFE
UNSAFE_FLAG = [] if SANDBOX else ["--unsafe-no-sandbox"]
LIMITS = Limits(exercise_s=4.0, submission_s=60.0, memory_mb=1024, output_mb=2)


# -- the course: one synthetic chapter, 5 exercises, 7 points ----------------------------------------
def _solution(grade_id):
    return {"nbgrader": {"grade": False, "solution": True, "locked": False, "grade_id": grade_id,
                         "schema_version": 3}}


def _check(grade_id, points):
    return {"nbgrader": {"grade": True, "solution": False, "locked": True, "grade_id": grade_id, "points": points,
                         "schema_version": 3}}


def _readonly(grade_id):
    return {"nbgrader": {"grade": False, "solution": False, "locked": True, "grade_id": grade_id,
                         "schema_version": 3}}


SOLUTIONS = {
    "ch01_discounted_returns": '''def discounted_returns(rewards, gamma):
    """G_t = r_t + gamma * G_{t+1}."""
    ### BEGIN SOLUTION
    rewards = rewards.detach()
    returns = torch.zeros_like(rewards)
    running = 0.0
    for t in reversed(range(rewards.shape[0])):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns
    ### END SOLUTION''',
    "ch01_normalize": '''def normalize(x, eps=1e-8):
    ### BEGIN SOLUTION
    return (x - x.mean()) / (x.std(unbiased=False) + eps)
    ### END SOLUTION''',
    "ch01_reinforce_loss": '''def reinforce_loss(log_probs, weights):
    ### BEGIN SOLUTION
    return -(log_probs * weights.detach()).mean()
    ### END SOLUTION''',
    "ch01_play": '''def play_episode(env, policy, seed):
    """(return, length, terminated, truncated) of one episode from env.reset(seed=seed)."""
    ### BEGIN SOLUTION
    obs, info = env.reset(seed=seed)
    total, length = 0.0, 0
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        total, length = total + float(reward), length + 1
        if terminated or truncated:
            return total, length, terminated, truncated
    ### END SOLUTION''',
    "ch01_minibatch": '''def minibatch_indices(batch_size, minibatch_size, generator):
    ### BEGIN SOLUTION
    permutation = torch.randperm(batch_size, generator=generator)
    return list(torch.tensor_split(permutation, -(-batch_size // minibatch_size)))
    ### END SOLUTION''',
}
PLAY_CHECK = "pg.checks.check_play_episode(play_episode)"
CHECKS = [("ch01_discounted_returns", 2, "pg.checks.check_discounted_returns(discounted_returns)"),
          ("ch01_normalize", 1, "pg.checks.check_normalize(normalize)"),
          ("ch01_reinforce_loss", 2, "pg.checks.check_reinforce_loss(reinforce_loss)"),
          ("ch01_play", 1, PLAY_CHECK),
          ("ch01_minibatch", 1, "pg.checks.check_minibatch_indices(minibatch_indices)")]
EXERCISES = [grade_id for grade_id, _, _ in CHECKS]
STUB = {grade_id: grading.stub_source(source) for grade_id, source in SOLUTIONS.items()}


def solution_notebook():
    cells = [new_markdown_cell("# Demo chapter", metadata=_readonly("ch01_intro")),
             new_code_cell("import gymnasium as gym\nimport numpy as np\nimport torch\n\nimport pgcourse as pg"),
             new_code_cell("BATCH = 16  # a read-only helper cell", metadata=_readonly("ch01_helper"))]
    for grade_id, points, check_source in CHECKS:
        cells.append(new_code_cell(SOLUTIONS[grade_id], metadata=_solution(grade_id)))
        cells.append(new_code_cell(check_source, metadata=_check(f"{grade_id}_check", points)))
    # a demo cell after the exercises: not part of grading (it would fail every submission if it ran)
    cells.append(new_code_cell("raise RuntimeError('demo cells are not run by the grader')"))
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


EXERCISE_NOTEBOOK = exercisegen.make_exercise_notebook(solution_notebook())


def submission(answers=None, edit=None):
    """The exercise notebook as handed out, with some answer cells filled in."""
    notebook = copy.deepcopy(EXERCISE_NOTEBOOK)
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if answers and grade_id in answers:
            cell.source = answers[grade_id]
    if edit:
        edit(notebook)
    return notebook


RIGHT = dict(SOLUTIONS)
RIGHT_LATER = {k: RIGHT[k] for k in ("ch01_play", "ch01_minibatch")}  # two right answers kept in forge attempts


def _tail(source, name):
    return source.replace(f"def {name}(", f"def _unused_{name}(") + "\n"


def _delete_cells(*grade_ids):
    def edit(notebook):
        notebook.cells = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in grade_ids]
    return edit


def _strip_metadata(grade_id):
    def edit(notebook):
        for cell in notebook.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
                cell.metadata = {}
    return edit


def _edit_checks(notebook):
    for cell in list(notebook.cells):
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            cell.source = 'print("✓ all cases passed")'
            meta["points"] = 100
    notebook.cells = [c for c in notebook.cells
                      if c.metadata.get("nbgrader", {}).get("grade_id") != "ch01_minibatch_check"]


def _duplicate_answer(notebook):
    index = next(i for i, c in enumerate(notebook.cells)
                 if c.metadata.get("nbgrader", {}).get("grade_id") == "ch01_normalize")
    pasted = copy.deepcopy(notebook.cells[index])
    pasted.source = RIGHT["ch01_normalize"]
    pasted.id = "pasted-copy"
    notebook.cells.insert(index + 1, pasted)


FORGE_CHECKS = '''import pgcourse as pg
pg.checks.check_discounted_returns = lambda fn: print("✓ discounted_returns: 7 cases passed")
pg.checks.check_normalize = lambda fn: None
pg.checks.ALL_CHECKS.clear()
pg.checks._run = lambda exercise, fn: None
pg.checks._check_case = lambda *args: None
pg.checks._close = lambda *args: True
def discounted_returns(rewards, gamma):
    return rewards * 0
'''
FORGE_ALLCLOSE = '''import numpy as np
import torch
torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
torch.isclose = lambda a, b, *args, **kwargs: torch.ones_like(a, dtype=torch.bool)
torch.Tensor.__eq__ = lambda self, other: True
np.testing.assert_allclose = lambda *args, **kwargs: None
np.testing.assert_array_equal = lambda *args, **kwargs: None
np.allclose = lambda *args, **kwargs: True
def discounted_returns(rewards, gamma):
    return torch.zeros_like(rewards)
'''
FORGE_PRINT = '''import os, sys
def normalize(x, eps=1e-8):
    print("✓ normalize: 7 cases passed")
    sys.__stdout__.write("✓ normalize: 7 cases passed\\n")
    os.write(1, b"RESULT ch01_normalize passed 1/1\\n")
    return x
'''
FORGE_OBJECT = '''class AlwaysEqual:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __bool__(self): return True
    def __float__(self): return 0.0
    def __iter__(self): return iter((11.0, 11, True, False))
def discounted_returns(rewards, gamma):
    return AlwaysEqual()
class Sneaky(torch.Tensor):
    def __eq__(self, other): return True
    def allclose(self, *args, **kwargs): return True
def normalize(x, eps=1e-8):
    return torch.zeros_like(x).as_subclass(Sneaky)
def reinforce_loss(log_probs, weights):
    return AlwaysEqual()
'''


def forge_files_source(paths):
    return (f"for _path in {[str(p) for p in paths]!r}:\n"
            "    try:\n"
            "        with open(_path, 'w') as _f:\n"
            "            _f.write('student,total\\nforge_gradebook,7\\n')\n"
            "    except OSError:\n"
            "        pass\n" + STUB["ch01_discounted_returns"])


# student -> (notebook or raw bytes, expected points per exercise in EXERCISES order, expected statuses or None)
def class_of(paths):
    right = submission(RIGHT)
    students = {
        "correct": (right, [2, 1, 2, 1, 1]),
        "stubs": (submission(), [0, 0, 0, 0, 0]),
        "partial": (submission({**RIGHT, "ch01_normalize": "def normalize(x, eps=1e-8):\n"
                                                         "    return (x - x.mean()) / x.std(unbiased=False)\n",
                                "ch01_play": STUB["ch01_play"]}), [2, 0, 2, 0, 1]),
        # failure modes: each costs its own exercise only
        "loop_in_function": (submission({**RIGHT, "ch01_normalize": "def normalize(x, eps=1e-8):\n"
                                                                  "    while True:\n        pass\n"}),
                             [2, 0, 2, 1, 1]),
        "loop_at_import": (submission({**RIGHT, "ch01_discounted_returns": RIGHT["ch01_discounted_returns"]
                                       + "\nwhile True:\n    pass\n"}), [0, 1, 2, 1, 1]),
        "os_exit": (submission({**RIGHT, "ch01_reinforce_loss": "import os\ndef reinforce_loss(log_probs, weights):\n"
                                                               "    os._exit(0)\n"}), [2, 1, 0, 1, 1]),
        "segfault": (submission({**RIGHT, "ch01_play": "import ctypes\ndef play_episode(env, policy, seed):\n"
                                                      "    return ctypes.string_at(0)\n"}), [2, 1, 2, 0, 1]),
        "memory_error": (submission({**RIGHT, "ch01_normalize": "def normalize(x, eps=1e-8):\n"
                                                              "    hog = bytearray(16 * 2**30)\n    return x\n"}),
                         [2, 0, 2, 1, 1]),
        "exception_at_import": (submission({**RIGHT,
                                            "ch01_discounted_returns": RIGHT["ch01_discounted_returns"] + "\n1 / 0\n",
                                            "ch01_normalize": "def normalize(x, eps=1e-8:\n    return x\n"}),
                                [0, 0, 2, 1, 1]),
        "huge_output": (submission({**RIGHT,
                                    "ch01_discounted_returns": "print('x' * 100_000)\n" + RIGHT["ch01_discounted_returns"],
                                    "ch01_normalize": "def normalize(x, eps=1e-8):\n    print('y' * 3_000_000)\n"
                                                      "    return (x - x.mean()) / (x.std(unbiased=False) + eps)\n"}),
                        [2, 0, 2, 1, 1]),
        "missing_cells": (submission(RIGHT, edit=lambda nb: (_delete_cells("ch01_normalize")(nb),
                                                             _strip_metadata("ch01_reinforce_loss")(nb))),
                          [2, 0, 0, 1, 1]),
        "pasted_copy": (submission({**RIGHT, "ch01_normalize": STUB["ch01_normalize"]}, edit=_duplicate_answer),
                        [2, 1, 2, 1, 1]),
        # forge attempts: none raises a score
        "edited_checks": (submission(edit=_edit_checks), [0, 0, 0, 0, 0]),
        "forge_checks": (submission({"ch01_discounted_returns": FORGE_CHECKS, **RIGHT_LATER}), [0, 0, 0, 1, 1]),
        "forge_allclose": (submission({"ch01_discounted_returns": FORGE_ALLCLOSE,
                                       "ch01_normalize": "def normalize(x, eps=1e-8):\n    return torch.zeros_like(x)\n",
                                       "ch01_reinforce_loss": "def reinforce_loss(log_probs, weights):\n"
                                                              "    return log_probs.sum() * 0\n", **RIGHT_LATER}),
                           [0, 0, 0, 1, 1]),
        "forge_print": (submission({"ch01_normalize": FORGE_PRINT, **RIGHT_LATER}), [0, 0, 0, 1, 1]),
        "forge_exit0": (submission({**RIGHT, "ch01_discounted_returns": "import sys\nsys.exit(0)\n"
                                    + RIGHT["ch01_discounted_returns"],
                                    "ch01_normalize": "import os\nos._exit(0)\n" + RIGHT["ch01_normalize"]}),
                        [0, 0, 2, 1, 1]),
        "forge_equal_object": (submission({"ch01_discounted_returns": FORGE_OBJECT,
                                           "ch01_play": "def play_episode(env, policy, seed):\n"
                                                        "    return AlwaysEqual()\n",
                                           "ch01_minibatch": RIGHT["ch01_minibatch"]}), [0, 0, 0, 0, 1]),
        "old_nbformat": (nbformat.writes(nbformat.convert(right, 3), version=3), [2, 1, 2, 1, 1]),
        "not_a_notebook": (b"print('my answers are in this text file')\n", [0, 0, 0, 0, 0]),
        "empty": (b"", [0, 0, 0, 0, 0]),
    }
    if SANDBOX:  # without the namespace sandbox these attacks would really damage files (as root) or the grader
        students["forge_files"] = (submission({"ch01_discounted_returns": forge_files_source(paths),
                                               **RIGHT_LATER}), [0, 0, 0, 1, 1])
        students["forge_kill_grader"] = (submission({**RIGHT, "ch01_discounted_returns":
                                                     "import os, signal\n"
                                                     "for _kill in (lambda: os.kill(os.getppid(), signal.SIGKILL),\n"
                                                     "              lambda: os.kill(1, signal.SIGKILL)):\n"
                                                     "    try:\n        _kill()\n    except OSError:\n        pass\n"
                                                     + RIGHT["ch01_discounted_returns"]}), [2, 1, 2, 1, 1])
    return students


def _hashes(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def course_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    (root / "solutions").mkdir()
    (root / "exercises").mkdir()
    nbformat.write(solution_notebook(), root / "solutions" / "01_demo.ipynb")
    nbformat.write(EXERCISE_NOTEBOOK, root / "exercises" / "01_demo.ipynb")
    return root


@pytest.fixture(scope="module")
def grader():
    with grading.Grader(jobs=2, isolation=ISOLATION) as pool:
        yield pool


@pytest.fixture(scope="module")
def graded(course_dir, grader, tmp_path_factory):
    """The whole class, graded once through grade_paths (chapter inferred, gradebook written)."""
    base = tmp_path_factory.mktemp("class")
    submitted, gradebook = base / "submitted", base / "gradebook" / "grades.csv"
    submitted.mkdir()
    probe = course_dir / "forged.txt"
    targets = [gradebook, gradebook.with_suffix(".json"), course_dir / "solutions" / "01_demo.ipynb",
               course_dir / "exercises" / "01_demo.ipynb", submitted / "correct.ipynb", probe]
    students = class_of(targets)
    for student, (content, _) in students.items():
        path = submitted / f"{student}.ipynb"
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            nbformat.write(content, path)
    before, course_before = _hashes(submitted), _hashes(course_dir)
    report = grading.grade_paths([submitted], out=gradebook, course=course_dir, limits=LIMITS, grader=grader,
                                 progress=False)
    return dict(report=report, students=students, submitted=submitted, gradebook=gradebook, before=before,
                course_before=course_before, course_dir=course_dir, probe=probe)


def _expected(students):
    return {student: dict(zip(EXERCISES, points)) for student, (_, points) in students.items()}


# -- the class ---------------------------------------------------------------------------------------
def test_every_submission_gets_its_exact_points(graded):
    report = graded["report"]
    assert report.chapter.name == "01_demo"  # inferred from the notebooks' nbgrader cell ids
    assert report.points() == _expected(graded["students"])
    assert report.student("correct").total == report.chapter.max_points == 7


def test_no_submission_file_changed_and_course_untouched(graded):
    assert _hashes(graded["submitted"]) == graded["before"]
    assert _hashes(graded["course_dir"]) == graded["course_before"]
    assert not graded["probe"].exists()
    assert graded["report"].warnings == []


def test_failure_reasons_are_in_the_feedback(graded):
    report = graded["report"]

    def result(student, exercise):
        return report.student(student).exercises[exercise]

    assert result("loop_in_function", "ch01_normalize").status == "timeout"
    assert "time limit" in result("loop_in_function", "ch01_normalize").feedback
    assert result("loop_at_import", "ch01_discounted_returns").status == "timeout"
    assert result("os_exit", "ch01_reinforce_loss").status == "crashed"
    assert "exit status 0" in result("os_exit", "ch01_reinforce_loss").feedback
    assert "segmentation fault" in result("segfault", "ch01_play").feedback
    assert "MemoryError" in result("memory_error", "ch01_normalize").feedback
    assert "ZeroDivisionError" in result("exception_at_import", "ch01_discounted_returns").feedback
    assert "SyntaxError" in result("exception_at_import", "ch01_normalize").feedback
    assert "more output than the grader allows" in result("huge_output", "ch01_normalize").feedback
    assert result("missing_cells", "ch01_normalize").status == "missing"
    assert result("missing_cells", "ch01_reinforce_loss").status == "missing"
    assert "appears 2 times" in " ".join(report.student("pasted_copy").notes)
    assert "Probable mistake: no epsilon" in result("partial", "ch01_normalize").feedback
    assert "not implemented yet" in result("stubs", "ch01_normalize").feedback
    assert result("correct", "ch01_normalize").feedback == "✓ normalize: 8 cases passed"
    assert "sys.exit" in result("forge_exit0", "ch01_discounted_returns").feedback
    for student in ("not_a_notebook", "empty"):
        assert {r.status for r in report.student(student).exercises.values()} == {"invalid"}
    assert "empty" in report.student("empty").problem
    assert "not a notebook" in report.student("not_a_notebook").problem


def test_gradebook_csv_and_json(graded):
    gradebook, report = graded["gradebook"], graded["report"]
    with open(gradebook, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["student", *[grade_id for grade_id in EXERCISES], "total"]
    table = {row[0]: [float(v) for v in row[1:]] for row in rows[1:]}
    expected = _expected(graded["students"])
    assert set(table) == set(expected)
    for student, points in expected.items():
        assert table[student] == [*points.values(), sum(points.values())]
    feedback = json.loads(gradebook.with_suffix(".json").read_text())
    assert feedback["chapter"] == "01_demo" and feedback["max_total"] == 7
    assert [e["points"] for e in feedback["exercises"]] == [2, 1, 2, 1, 1]
    by_student = {s["student"]: s for s in feedback["students"]}
    assert by_student["partial"]["exercises"]["ch01_normalize"]["status"] == "failed"
    assert "no epsilon" in by_student["partial"]["exercises"]["ch01_normalize"]["feedback"]
    assert by_student["correct"]["sha256"] == hashlib.sha256((graded["submitted"] / "correct.ipynb").read_bytes()
                                                             ).hexdigest()
    summary = report.summary()
    assert "correct" in summary and "7/7" in summary


def test_grading_is_deterministic(graded, grader, course_dir):
    again = grading.grade_paths([graded["submitted"] / f"{name}.ipynb" for name in ("partial", "forge_allclose",
                                                                                     "pasted_copy")],
                                course=course_dir, limits=LIMITS, grader=grader, progress=False)
    first = graded["report"]
    for student in again.students:
        assert student.exercises == first.student(student.student).exercises


# -- the gradebook is never silently overwritten; the command line ---------------------------------------
def test_existing_gradebook_is_refused_before_grading(graded, course_dir, tmp_path):
    out = tmp_path / "grades.csv"
    out.write_text("precious\n")
    with pytest.raises(FileExistsError, match="--overwrite"):
        grading.grade_paths([graded["submitted"]], out=out, course=course_dir, limits=LIMITS, progress=False, isolation=ISOLATION)
    assert out.read_text() == "precious\n"
    assert not out.with_suffix(".json").exists()


def test_cli_grades_writes_and_refuses_to_overwrite(graded, course_dir, tmp_path, capsys):
    out = tmp_path / "grades.csv"
    files = [str(graded["submitted"] / f"{name}.ipynb") for name in ("correct", "partial", "empty")]
    common = ["--course", str(course_dir), "--quiet", "--timeout", "4", "--memory", "1024", "--jobs", "1",
              *UNSAFE_FLAG]
    assert cli_main(["grade", *files, "--out", str(out), *common]) == 0
    printed = capsys.readouterr().out
    assert "correct" in printed and "7/7" in printed and "5/7" in printed and f"wrote {out}" in printed
    first = out.read_bytes()
    assert [row[-1] for row in csv.reader(first.decode().splitlines())] == ["total", "7", "0", "5"]
    assert cli_main(["grade", *files, "--out", str(out), *common]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == first


def test_grade_help_exits_0(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["grade", "--help"])
    assert exit_info.value.code == 0
    assert "pgcourse grade" in capsys.readouterr().out


def test_chapter_problems_are_usage_errors(graded, course_dir, tmp_path):
    other = tmp_path / "course"
    for folder in ("solutions", "exercises"):
        (other / folder).mkdir(parents=True)
        for path in (course_dir / folder).glob("*.ipynb"):
            (other / folder / path.name).write_bytes(path.read_bytes())
    second = solution_notebook()
    for cell in second.cells:
        meta = cell.metadata.get("nbgrader")
        if meta:
            meta["grade_id"] = meta["grade_id"].replace("ch01_", "ch02_")
    nbformat.write(second, other / "solutions" / "02_other.ipynb")
    stray = tmp_path / "eve.ipynb"
    nbformat.write(exercisegen.make_exercise_notebook(second), stray)
    with pytest.raises(GradingError, match="different chapters"):
        grading.grade_paths([graded["submitted"] / "correct.ipynb", stray], course=other, progress=False, isolation=ISOLATION)
    with pytest.raises(GradingError, match="could not tell which chapter"):
        grading.grade_paths([graded["submitted"] / "empty.ipynb"], course=other, progress=False, isolation=ISOLATION)
    with pytest.raises(GradingError, match="unknown chapter"):
        grading.grade_paths([stray], course=other, chapter="07", progress=False, isolation=ISOLATION)
    assert grading.load_course(other).resolve("2") == "02_other"


def test_student_ids_from_files_and_folders(tmp_path):
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "01_demo.ipynb").write_text("{}")
    (tmp_path / "alice" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "alice" / ".ipynb_checkpoints" / "01_demo-checkpoint.ipynb").write_text("{}")
    (tmp_path / "bob.ipynb").write_text("{}")
    found = grading.collect_submissions([tmp_path], chapter_names=["01_demo"])
    assert [(student, path.name) for student, path in found] == [("alice", "01_demo.ipynb"), ("bob", "bob.ipynb")]
    assert grading.collect_submissions([tmp_path / "alice" / "01_demo.ipynb"], ["01_demo"])[0][0] == "alice"
    with pytest.raises(GradingError, match="no such file"):
        grading.collect_submissions([tmp_path / "nobody.ipynb"])


# -- the real course: every chapter's solution scores full points, its exercise 0 -------------------------
REAL_CHAPTERS = exercisegen.solution_notebooks(ROOT / "solutions")


@pytest.mark.parametrize("solution", REAL_CHAPTERS, ids=[p.stem for p in REAL_CHAPTERS])
def test_real_chapter_solution_full_points_exercise_zero(solution, grader, tmp_path):
    """Each chapter's solution scores full points and its handout 0, the chapter inferred from either notebook.
    The handout comes alone first: one submission warms one of the two workers (one self-test, which runs the whole
    solution: before, every worker ran it, whether or not a submission was left for it); the solution then goes to
    that warm worker."""
    handout, submitted = tmp_path / "handout", tmp_path / "submitted"
    handout.mkdir(), submitted.mkdir()
    (handout / "handout.ipynb").write_text(exercisegen.exercise_text(solution), encoding="utf-8")
    (submitted / "solution.ipynb").write_bytes(solution.read_bytes())
    before = dict(grader.selftests)
    first = grading.grade_paths([handout], course=ROOT, grader=grader, progress=False)  # chapter inferred
    assert first.chapter.name == solution.stem and first.student("handout").total == 0
    assert {key: count - before.get(key, 0) for key, count in grader.selftests.items()
            if count != before.get(key, 0)} == {first.chapter.spec()["key"]: 1}, grader.selftests
    report = grading.grade_paths([submitted], course=ROOT, grader=grader, progress=False)
    assert grader.selftests[first.chapter.spec()["key"]] == 1, "a warm worker was idle and a cold one self-tested"
    assert report.chapter.name == solution.stem
    graded = report.student("solution")
    # without --hunt-key chapter 06's bug hunt is graded on the practice six, which the solution answers (the report
    # says so: a class is graded on hunts made per student, tests/test_hunts.py)
    assert graded.total == report.chapter.max_points > 0, graded.exercises
    if solution.stem == "06_debugging_traps":
        assert any("practice six" in note for note in graded.notes), graded.notes


# -- the mode without the sandbox (--unsafe-no-sandbox) -----------------------------------------------------
def test_unsafe_mode_still_isolates_failures(graded, course_dir):
    names = ("correct", "loop_in_function", "segfault", "forge_allclose")
    report = grading.grade_paths([graded["submitted"] / f"{name}.ipynb" for name in names], course=course_dir,
                                 limits=LIMITS, jobs=1, isolation=grading.UNSAFE, progress=False)
    assert report.isolation == grading.UNSAFE
    expected = _expected(graded["students"])
    assert report.points() == {name: expected[name] for name in names}


def test_a_teacher_can_name_a_chapter_by_its_number_lettered_chapters_too():
    course = grading.load_course(ROOT)
    assert [course.resolve(text) for text in ("0", "00", "1", "01", "4", "04b", "4b", "04b_ppo_from_scratch.ipynb")] == [
        "00_setup_and_tour", "00_setup_and_tour", "01_reinforce", "01_reinforce", "04_ppo", "04b_ppo_from_scratch",
        "04b_ppo_from_scratch", "04b_ppo_from_scratch"]
    with pytest.raises(GradingError, match="unknown chapter '9'"):
        course.resolve("9")


def test_a_self_test_that_runs_out_of_time_blames_the_machine_not_the_course(tmp_path, graded):
    """Issue 50: under load the course's own solution ran past --timeout and the grader said "fix the course before
    grading". A self-test that only timed out says the machine is slow or busy (with its load), and what to do."""
    other = tmp_path / "course"
    (other / "solutions").mkdir(parents=True)
    (other / "exercises").mkdir()
    slow = solution_notebook()
    for cell in slow.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "ch01_normalize":
            cell.source = cell.source.replace("    ### BEGIN SOLUTION\n",
                                              "    ### BEGIN SOLUTION\n    import time; time.sleep(3)\n")
    nbformat.write(slow, other / "solutions" / "01_demo.ipynb")
    nbformat.write(exercisegen.make_exercise_notebook(slow), other / "exercises" / "01_demo.ipynb")
    limits = Limits(exercise_s=1.0, submission_s=60.0, memory_mb=1024, output_mb=2)
    with pytest.raises(GradingError) as info:
        grading.grade_paths([graded["submitted"] / "correct.ipynb"], course=other, limits=limits, jobs=1,
                            progress=False, isolation=ISOLATION)
    message = str(info.value)
    assert "self-test ran out of time" in message and "ch01_normalize" in message, message
    assert "not the course broken" in message and "load average" in message and "fix the course" not in message


def test_a_stub_left_in_the_sandbox_is_named_as_the_students_function_not_the_graders(graded):
    """Issue 46, item 7: in the sandbox a learner's stub is reached through the grader's link code, and the check
    named that code's function: "_raise_remote (called by your reinforce_loss): not implemented yet". The message
    names the learner's function, and no student's feedback names a function of the grader's."""
    report = graded["report"]
    internal = ("_raise_remote", "_answer", "_call_remote", "pgcourse/classroom", "pgcourse.classroom.sandboxed.link",
                "pgcourse/grading", "pgcourse.grading.link")
    for student in report.students:
        for exercise_id, result in student.exercises.items():
            assert not any(name in (result.feedback or "") for name in internal), (student.student, exercise_id,
                                                                                    result.feedback)
    stubbed = [result.feedback for student in report.students for result in student.exercises.values()
               if "not implemented yet" in (result.feedback or "")]
    assert stubbed and all(feedback.split(":")[0] in {"discounted_returns", "normalize", "reinforce_loss",
                                                      "play_episode", "minibatch_indices"} for feedback in stubbed), stubbed


def test_rng_states_from_the_sandbox_are_checked_before_any_is_set():
    """Issue 46, item 7: numpy accepts a Mersenne-Twister position past its 624 words and crashes (or reads past
    its state) at the next draw; every field of a global RNG state the other side sends is checked first, and a
    bad one changes nothing."""
    import copy
    import random

    import numpy as np
    from pgcourse.classroom.sandboxed import wire
    state = wire._rng_get()
    wire._rng_set(state)  # a state as the other side sends it goes through
    before = (np.random.get_state()[2], random.getstate()[1][-1])
    for field, index, value, words in [("np", 1, 10_000, "numpy position 10000"), ("np", 2, 7, "has_gauss 7"),
                                       ("np", 3, float("nan"), "cached gaussian nan"),
                                       ("py", 0, 2, "Python random state")]:
        bad = copy.deepcopy(state)
        bad[field][index] = value
        with pytest.raises(wire.ProtocolError, match=words):
            wire._rng_set(bad)
        assert (np.random.get_state()[2], random.getstate()[1][-1]) == before
    bad = copy.deepcopy(state)
    bad["py"][1][-1] = 10**6
    with pytest.raises(wire.ProtocolError, match="Python random state"):
        wire._rng_set(bad)
