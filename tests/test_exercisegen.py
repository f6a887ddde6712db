"""The exercise generator: stubs, stripped outputs, kept metadata, clear errors, committed files up to date."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from pgcourse.classroom import exercisegen
from pgcourse.classroom.exercisegen import ExerciseGenError, make_exercise_notebook

ROOT = Path(__file__).resolve().parents[1]

SOLUTION_SOURCE = '''def discounted_returns(rewards, gamma):
    """G_t = r_t + gamma * G_{t+1}."""
    ### BEGIN SOLUTION
    returns = rewards.clone()
    for t in range(len(rewards) - 2, -1, -1):
        returns[t] += gamma * returns[t + 1]
    return returns
    ### END SOLUTION'''


def nbgrader_solution(grade_id: str) -> dict:
    return {"nbgrader": {"grade": False, "solution": True, "locked": False, "grade_id": grade_id,
                         "schema_version": 3}}


def nbgrader_check(grade_id: str, points: int = 2) -> dict:
    return {"nbgrader": {"grade": True, "solution": False, "locked": True, "grade_id": grade_id,
                         "points": points, "schema_version": 3}}


def synthetic_notebook() -> nbformat.NotebookNode:
    locked_md = {"nbgrader": {"grade": False, "solution": False, "locked": True, "grade_id": "intro",
                              "schema_version": 3}}
    answer = new_code_cell(SOLUTION_SOURCE, metadata=nbgrader_solution("ex1_answer"), execution_count=3,
                           outputs=[new_output("stream", name="stdout", text="hello\n")])
    answer.metadata["execution"] = {"iopub.status.busy": "2025-01-01T00:00:00Z"}
    check = new_code_cell("pg.checks.check_discounted_returns(discounted_returns)",
                          metadata=nbgrader_check("ex1_check"), execution_count=4,
                          outputs=[new_output("execute_result", data={"text/plain": "'ok'"}, execution_count=4)])
    secret = new_code_cell("print('only in the solution')", metadata={"tags": ["solution_only"]})
    notebook = new_notebook(cells=[new_markdown_cell("# Exercises", metadata=locked_md), answer, check, secret],
                            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                     "language": "python"},
                                      "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}}})
    return notebook


def test_markers_replaced_and_signature_kept():
    exercise = make_exercise_notebook(synthetic_notebook())
    answer = exercise.cells[1]
    assert answer.source == ('def discounted_returns(rewards, gamma):\n'
                             '    """G_t = r_t + gamma * G_{t+1}."""\n'
                             '    raise NotImplementedError()')
    assert "BEGIN SOLUTION" not in answer.source and "returns.clone" not in answer.source


def test_outputs_stripped_and_metadata_kept():
    solution = synthetic_notebook()
    exercise = make_exercise_notebook(solution)
    for cell in exercise.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
        assert "execution" not in cell.metadata
    assert exercise.cells[1].metadata["nbgrader"] == nbgrader_solution("ex1_answer")["nbgrader"]
    assert exercise.cells[2].metadata["nbgrader"] == nbgrader_check("ex1_check")["nbgrader"]
    assert exercise.cells[0].metadata["nbgrader"]["locked"] is True
    assert exercise.cells[2].source == solution.cells[2].source
    assert exercise.metadata["kernelspec"]["name"] == "python3"
    assert "widgets" not in exercise.metadata
    # the input is not modified
    assert solution.cells[1].outputs and "### BEGIN SOLUTION" in solution.cells[1].source


def test_solution_only_cells_dropped():
    exercise = make_exercise_notebook(synthetic_notebook())
    assert len(exercise.cells) == 3
    assert all("only in the solution" not in cell.source for cell in exercise.cells)


def test_several_regions_and_indentation():
    source = "x = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION\nif x:\n    ### BEGIN SOLUTION\n    z = 3\n    ### END SOLUTION\n"
    notebook = new_notebook(cells=[new_code_cell(source, metadata=nbgrader_solution("a"))])
    out = make_exercise_notebook(notebook).cells[0].source
    assert out == "x = 1\nraise NotImplementedError()\nif x:\n    raise NotImplementedError()\n"


def test_missing_end_marker_is_an_error():
    notebook = synthetic_notebook()
    notebook.cells[1].source = SOLUTION_SOURCE.replace("    ### END SOLUTION", "")
    with pytest.raises(ExerciseGenError, match="never closed.*END SOLUTION|END SOLUTION"):
        make_exercise_notebook(notebook, "demo.ipynb")
    with pytest.raises(ExerciseGenError, match="ex1_answer"):
        make_exercise_notebook(notebook, "demo.ipynb")


def test_solution_cell_without_markers_is_an_error():
    notebook = synthetic_notebook()
    notebook.cells[1].source = "def f():\n    return 1\n"
    with pytest.raises(ExerciseGenError, match="needs a '### BEGIN SOLUTION'"):
        make_exercise_notebook(notebook)


def test_stray_end_marker_is_an_error():
    notebook = synthetic_notebook()
    notebook.cells[1].source = "### END SOLUTION\n" + SOLUTION_SOURCE
    with pytest.raises(ExerciseGenError, match="without a '### BEGIN SOLUTION'"):
        make_exercise_notebook(notebook)


def test_duplicate_grade_id_is_an_error():
    notebook = synthetic_notebook()
    notebook.cells[2].metadata["nbgrader"]["grade_id"] = "ex1_answer"
    with pytest.raises(ExerciseGenError, match="grade_id 'ex1_answer' is used by cells 1 and 2"):
        make_exercise_notebook(notebook)


def test_markers_outside_a_solution_cell_are_an_error():
    notebook = synthetic_notebook()
    notebook.cells.append(new_code_cell(SOLUTION_SOURCE))
    with pytest.raises(ExerciseGenError, match="solution would leak"):
        make_exercise_notebook(notebook)


def test_graded_cell_needs_points():
    notebook = synthetic_notebook()
    del notebook.cells[2].metadata["nbgrader"]["points"]
    with pytest.raises(ExerciseGenError, match="needs 'points'"):
        make_exercise_notebook(notebook)


def test_main_writes_then_check_passes_and_detects_drift(tmp_path, capsys):
    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    solutions.mkdir()
    nbformat.write(synthetic_notebook(), solutions / "00_demo.ipynb")
    assert exercisegen.main(check=True, solutions_dir=solutions, exercises_dir=exercises) == 1
    assert "00_demo.ipynb is missing" in capsys.readouterr().err
    assert exercisegen.main(solutions_dir=solutions, exercises_dir=exercises) == 0
    first = (exercises / "00_demo.ipynb").read_bytes()
    assert exercisegen.main(check=True, solutions_dir=solutions, exercises_dir=exercises) == 0
    # deterministic: generating again writes the same bytes
    assert exercisegen.main(solutions_dir=solutions, exercises_dir=exercises) == 0
    assert (exercises / "00_demo.ipynb").read_bytes() == first
    # a hand edit of the exercise, and an exercise without a solution, are both reported
    (exercises / "00_demo.ipynb").write_text(first.decode().replace("Exercises", "Exercise"))
    (exercises / "99_orphan.ipynb").write_bytes(first)
    capsys.readouterr()
    assert exercisegen.main(check=True, solutions_dir=solutions, exercises_dir=exercises) == 1
    err = capsys.readouterr().err
    assert "00_demo.ipynb differs" in err and "99_orphan.ipynb has no solution notebook" in err
    assert "run `pgcourse exercises`" in err  # the command a course author types


def test_main_reports_bad_solution_notebook(tmp_path, capsys):
    notebook = synthetic_notebook()
    notebook.cells[2].metadata["nbgrader"]["grade_id"] = "ex1_answer"
    (tmp_path / "solutions").mkdir()
    nbformat.write(notebook, tmp_path / "solutions" / "bad.ipynb")
    assert exercisegen.main(solutions_dir=tmp_path / "solutions", exercises_dir=tmp_path / "exercises") == 2
    assert "bad.ipynb" in capsys.readouterr().err


# -- the committed course -------------------------------------------------------------------------
SOLUTIONS = exercisegen.solution_notebooks(ROOT / "solutions")


def test_the_course_has_solution_notebooks():
    assert SOLUTIONS, "no solutions/*.ipynb found"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_committed_exercise_matches_generator(solution):
    exercise = ROOT / "exercises" / solution.name
    assert exercise.is_file(), f"{exercise} is missing: run `python -m pgcourse.exercisegen`"
    assert exercise.read_text(encoding="utf-8") == exercisegen.exercise_text(solution), (
        f"{exercise} differs from what the generator makes from {solution}: run `python -m pgcourse.exercisegen` "
        "(edit solutions/, never exercises/)")


def test_no_exercise_without_a_solution():
    orphans = sorted(p.name for p in (ROOT / "exercises").glob("*.ipynb") if not (ROOT / "solutions" / p.name).is_file())
    assert not orphans, f"exercise notebooks without a solution notebook: {orphans}"


@pytest.mark.parametrize("exercise", sorted((ROOT / "exercises").glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_exercise_has_no_outputs(exercise):
    notebook = nbformat.read(exercise, as_version=4)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{exercise.name} cell {index} has outputs"
        assert "### BEGIN SOLUTION" not in cell.source, f"{exercise.name} cell {index} contains a solution"


def test_regenerating_keeps_a_copy_of_the_learners_work_before_replacing_it(tmp_path, capsys):
    """A newcomer read found that `pgcourse exercises`, which the start page names, rewrote every exercise notebook
    that differs from its solution: a learner's answers were gone. Now a notebook holding answers or outputs is
    copied to exercises/your-work/ first; a notebook as generated is replaced without a copy."""
    import shutil

    from pgcourse.classroom import exercisegen

    solutions, exercises = tmp_path / "solutions", tmp_path / "exercises"
    shutil.copytree(ROOT / "solutions", solutions, ignore=shutil.ignore_patterns("*.py"))
    assert exercisegen.main(solutions_dir=solutions, exercises_dir=exercises) == 0
    mine = exercises / "00_setup_and_tour.ipynb"
    notebook = nbformat.read(mine, as_version=4)
    answer = next(cell for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("solution"))
    answer.source = answer.source.replace("raise NotImplementedError()", "return 42  # my answer")
    nbformat.write(notebook, mine)
    untouched = exercises / "01_reinforce.ipynb"
    untouched.write_text(untouched.read_text().replace('"metadata": {', '"metadata": {"x": 1, ', 1))  # differs, no work
    capsys.readouterr()
    assert exercisegen.main(solutions_dir=solutions, exercises_dir=exercises) == 0
    kept = list((exercises / "your-work").glob("00_setup_and_tour-*.ipynb"))
    assert len(kept) == 1 and "return 42  # my answer" in kept[0].read_text()
    assert "return 42" not in mine.read_text()
    assert not list((exercises / "your-work").glob("01_reinforce-*.ipynb"))
    assert f"kept your version of 00_setup_and_tour.ipynb as {kept[0]}" in capsys.readouterr().out
