"""The grader's and the bench's small text and threshold decisions, pinned at their edges (issue 45, item 5).

Audit 12 left alive: "1 torch threads" in the scaling bench, a bench run whose final mean equals the threshold not
counted as solved, and a feedback text read with its blank lines. Each test states the definition and checks it at
the edge (equality, one below, one above; one and several; empty input); every expected value is worked out by hand.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import pgcourse.bench as bench
from pgcourse.bench import scaling
from pgcourse.classroom.grading import grader
from pgcourse.rl.history import History


# -- the grader: the exception a failed cell raised, and where a name is defined -----------------------------------
@pytest.mark.parametrize("feedback, line", [
    ("", "an exception"),  # nothing to read
    ("   \n\t\n  ", "an exception"),
    ("ValueError: bad", "ValueError: bad"),
    ("Traceback:\n  File x\nNameError: name 'f' is not defined", "NameError: name 'f' is not defined"),
    ("Traceback\n\nSyntaxError: expected ':'\n\n\n", "SyntaxError: expected ':'"),  # blank lines after it
    ("Traceback\n   \n   KeyError: 'k'   \n \t \n", "KeyError: 'k'"),  # the line itself stripped
    ("first\r\nlast\r\n", "last"),
])
def test_a_failed_cells_exception_is_the_last_non_blank_line_of_its_feedback_stripped(feedback, line):
    assert grader._exception_line(feedback) == line


@pytest.mark.parametrize("source, name, defines", [
    ("def f(x):\n    return x", "f", True),
    ("async def f():\n    pass", "f", True),
    ("class f:\n    pass", "f", True),
    ("f = 3", "f", True),
    ("f: int = 3", "f", True),
    ("f=3", "f", True),
    ("f == 3", "f", False),  # a comparison is not an assignment
    ("def fg(x):\n    return x", "f", False),  # another name that starts like it
    ("    f = 3", "f", False),  # not at top level
    ("x = f", "f", False),
    ("def f(x)\n    return x", "f", True),  # a cell that does not parse is still read
    ("import numpy\n\nf = 3", "f", True),  # on any line of the cell
    ("import numpy\nclass f:\n    pass", "f", True),
    ("x = 1\n    f = 3", "f", False),
])
def test_a_cell_defines_a_name_by_a_top_level_def_class_or_assignment(source, name, defines):
    assert grader._cell_defines(source, name) is defines


# -- the scaling bench's device line -------------------------------------------------------------------------------
@pytest.mark.parametrize("threads, shown", [(1, "1 torch thread"), (2, "2 torch threads"), (16, "16 torch threads")])
def test_the_scaling_benchs_cpu_line_names_its_torch_threads_singular_for_one(monkeypatch, threads, shown):
    monkeypatch.setattr(bench, "_cpu_model", lambda: "Some CPU")
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    assert scaling.device_name(torch.device("cpu")) == f"Some CPU ({shown})"


# -- the bench's solve point and totals ----------------------------------------------------------------------------
def run_with(solved_at=None):
    history = History()
    history.solved_at = solved_at
    return SimpleNamespace(history=history)


@pytest.mark.parametrize("final_mean, solved", [(474.99, False), (475.0, True), (475.01, True)])
def test_a_bench_run_whose_final_mean_reaches_the_threshold_is_solved_at_its_end(final_mean, solved):
    """Not solved during training: solved at the end of its budget iff its final mean >= the threshold."""
    point = bench._solve_point(run_with(), final_mean, 475.0, 50_000, 120, 12.5)
    assert point == ((True, 50_000, 120, 12.5) if solved else (False, None, None, None))


def test_a_bench_run_without_a_threshold_is_never_solved_at_its_end():
    assert bench._solve_point(run_with(), 1e9, None, 50_000, 120, 12.5) == (False, None, None, None)


def test_a_bench_run_solved_during_training_is_solved_where_its_evaluation_was():
    """``solved_at`` wins, whatever the final mean (even below the threshold, or with none)."""
    at = {"env_step": 2048.0, "episodes": 31.0, "wall_time": 1.25, "mean": 480.0}
    for final_mean, threshold in [(10.0, 475.0), (500.0, 475.0), (10.0, None)]:
        point = bench._solve_point(run_with(at), final_mean, threshold, 50_000, 120, 12.5)
        assert point == (True, 2048, 31, 1.25)
        assert type(point[1]) is int and type(point[2]) is int
    point = bench._solve_point(run_with({"env_step": 2048, "episodes": 31, "wall_time": 2}), 10.0, 475.0, 1, 1, 0.5)
    assert point == (True, 2048, 31, 2.0) and type(point[3]) is float  # plain Python numbers, a float time


def test_a_bench_runs_totals_are_its_last_update_step_its_episodes_and_its_latest_wall_time():
    history = History()
    assert bench._training_totals(SimpleNamespace(history=history)) == (0, 0, 0.0)  # nothing logged
    history.episodes.extend(**{"return": [1.0, 2.0, 3.0], "env_step": [10, 20, 30], "wall_time": [0.5, 1.0, 3.5]})
    assert bench._training_totals(SimpleNamespace(history=history)) == (0, 3, 3.5)  # episodes, no update yet
    history.updates.extend(env_step=[64, 128], wall_time=[1.5, 2.5])
    assert bench._training_totals(SimpleNamespace(history=history)) == (128, 3, 3.5)  # the episodes' time is later
    history.updates.extend(env_step=[192], wall_time=[4.0])
    assert bench._training_totals(SimpleNamespace(history=history)) == (192, 3, 4.0)  # the update's is later
    assert np.isclose(bench._training_totals(SimpleNamespace(history=history))[2], 4.0)
