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
import torch

import pgcourse as pg
from pgcourse.classroom import grading
from pgcourse.classroom.grading import GradingError

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


# -- one verdict: the notebook's check runs the answer under the grader's rules -------------------------------
PG_NORMALIZE = "def normalize(x, eps=1e-8):\n    return pg.normalize(x, eps)\n"
RIGHT_NORMALIZE = "def normalize(x, eps=1e-8):\n    return (x - x.mean()) / (x.std(unbiased=False) + eps)\n"


def _notebook_function(source, name):
    """``name`` defined as a notebook cell defines it: in the kernel's namespace, module ``__main__``."""
    import pgcourse as pg
    import torch

    namespace = {"__name__": "__main__", "pg": pg, "torch": torch}
    exec(compile(source, "<notebook cell>", "exec"), namespace)  # noqa: S102 - the test's own source
    return namespace[name], namespace


def _last_line(text):
    return [line for line in text.strip().splitlines() if line.strip()][-1].strip()


def test_an_answer_that_calls_the_package_fails_in_the_notebook_as_when_graded(tmp_path, pool):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    import pgcourse as pg
    from pgcourse.course.checks import LearnerCodeError

    function, namespace = _notebook_function(PG_NORMALIZE, "normalize")
    with pytest.raises(LearnerCodeError) as notebook:
        pg.checks.check_normalize(function)
    assert namespace["pg"] is pg  # the learner's names are given back after the check
    # the same answer, graded: a one-exercise course whose check cell is the notebook's
    meta = {"grade": False, "solution": False, "locked": True, "schema_version": 3}
    cells = [new_code_cell("import torch\nimport pgcourse as pg", metadata={"nbgrader": {**meta, "grade_id": "setup"}}),
             new_code_cell(RIGHT_NORMALIZE, metadata={"nbgrader": {**meta, "grade_id": "ch01_normalize",
                                                                   "solution": True, "locked": False}}),
             new_code_cell("pg.checks.check_normalize(normalize)",
                           metadata={"nbgrader": {**meta, "grade_id": "ch01_normalize_check", "grade": True,
                                                  "points": 1}})]
    for folder in ("solutions", "exercises"):
        (tmp_path / "course" / folder).mkdir(parents=True)
        nbformat.write(new_notebook(cells=cells), tmp_path / "course" / folder / "01_norm.ipynb")
    cells[1].source = PG_NORMALIZE
    (tmp_path / "submitted").mkdir()
    nbformat.write(new_notebook(cells=cells), tmp_path / "submitted" / "alice.ipynb")
    report = grading.grade_paths([tmp_path / "submitted"], course=tmp_path / "course", chapter="01", limits=LIMITS,
                                 grader=pool, progress=False)
    graded = report.student("alice").exercises["ch01_normalize"]
    assert graded.points == 0 and "pgcourse.normalize is not available while grading" in graded.feedback
    assert _last_line(str(notebook.value)) == _last_line(graded.feedback)
    assert str(notebook.value).split("\n")[0] == graded.feedback.split("\n")[0]


def test_the_grading_rules_keep_the_kit_and_right_answers(capsys):
    import pgcourse as pg
    from pgcourse.course.checks import rules
    from pgcourse.classroom.sandboxed.loops import KIT_NAMES

    from pgcourse.classroom.sandboxed.runner import POLICY

    assert {name for items in rules.KIT.values() for name in items} == set(KIT_NAMES)
    assert rules.POLICY == POLICY  # the notebook's message is the grader's, word for word
    pg.checks.check_normalize(_notebook_function(RIGHT_NORMALIZE, "normalize")[0])
    assert "8 cases passed" in capsys.readouterr().out
    policy_net, namespace = _notebook_function(
        "def build(n):\n    return pg.networks.CategoricalPolicy(4, 2, (8,)), pg.minibatch_indices(n, 2)\n", "build")
    with rules.grading_rules(policy_net):
        assert namespace["pg"] is not pg and len(policy_net(4)[1]) == 2  # what the sandbox offers a loop
        with pytest.raises(ImportError, match="pgcourse.train is not available while grading"):
            namespace["pg"].train
    with rules.grading_rules(policy_net, withheld=frozenset({"minibatch_indices"})):
        with pytest.raises(ImportError, match="pgcourse.minibatch_indices is not available while grading"):
            policy_net(4)
    assert namespace["pg"] is pg


def test_a_function_imported_from_the_package_is_withheld_too():
    import pgcourse as pg
    from pgcourse.course.checks import LearnerCodeError

    function, namespace = _notebook_function("from pgcourse.returns import discounted_returns as reference\n"
                                             "def discounted_returns(rewards, gamma):\n"
                                             "    return reference(rewards, gamma)\n", "discounted_returns")
    with pytest.raises(LearnerCodeError, match="is not available while grading"):
        pg.checks.check_discounted_returns(function)
    assert namespace["reference"] is pg.returns.discounted_returns


def test_chapter_06_part_b_loop_is_checked_under_the_graders_rules_too():
    """check_train_actor_critic was not among the wrapped checks (chapter 06 is not in pg.checks' chapter list), so a
    Part B loop calling the package passed the notebook's check and then failed when graded."""
    from pgcourse.course.checks import LearnerCodeError

    notebook = {"__name__": "__main__", "pg": pg, "torch": torch}  # a notebook's namespace: the loop's module
    exec("def train_actor_critic(env_name, total_steps, seed=0, gamma=0.99, lr=3e-3, n_steps=16):\n"
         "    pg.normalize(torch.ones(3))\n"
         "    raise RuntimeError('the package answer was available to the loop')\n", notebook)
    with pytest.raises(LearnerCodeError, match="pgcourse.normalize is not available while grading"):
        pg.checks.check_train_actor_critic(notebook["train_actor_critic"])
    assert notebook["pg"] is pg  # the notebook's names are given back
