"""Every training loop of the catalogues gets the same verdict from the notebook's check and from the grade
(issue 26, item 3): pass, or the same named mistake.

The catalogue: lesson 01's ``train_reinforce`` loops of tests/training_loops.py (right ones written otherwise,
and the realistic wrong ones: random play then hand-made weights, no env, random or greedy actions, returns
not discounted, the wrong sign, no zero_grad, an update after every step, the wrong budget, a new optimiser per
batch, ...) and of tests/wrong_loops.py. Each runs through the check called on the function (as in a notebook)
and through the same check called on the grader's handle, the function living in a student process (sandboxed
where bubblewrap is available; only data crosses the wire). Exercise 04b's ``train_ppo`` loops of
tests/wrong_loops.py go through the same two calls in tests/test_train_ppo_agreement.py (with the same budgets:
the wrong ones 2,000 steps, the right ones the check's own), each its own test.

Budgets: the graded train_reinforce check is fixed (seed 0, 50 episodes); the notebook's runs on seed 0 with 100
episodes instead of 3 seeds x 200 (every right loop here reaches its learning bar at 100; the rules that name a
wrong loop's mistake do not depend on the budget).
"""
from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import pytest
import torch

import training_loops
import wrong_loops
from pgcourse.course import checks
from pgcourse.course.checks import LearnerCodeError
from pgcourse.classroom.sandboxed import loops
from pgcourse.classroom.sandboxed.link import StudentFunction
from pgcourse.classroom.grading.sandbox import SANDBOX, UNSAFE, Limits, probe_sandbox
from pgcourse.classroom.grading.worker import StudentProcess

NOTEBOOK_BUDGET = {"train_reinforce": {"seeds": (0,), "max_episodes": 100}}


def catalogue() -> list[tuple[str, object, str]]:
    """(stage, function, "passed" or the hint naming its mistake) for every training loop."""
    rows = list(training_loops.TRAINING_LOOPS)
    rows += [(stage, fn, "passed") for stage, fn in wrong_loops.CORRECT_LOOPS if stage in NOTEBOOK_BUDGET]
    rows += [(w.stage, w.fn, w.hint) for w in wrong_loops.WRONG_LOOPS if w.stage in NOTEBOOK_BUDGET]
    return rows


@pytest.fixture(scope="module")
def student_process(runner_folder):
    """A student process as the grader starts one, holding the kit and both catalogues' sources."""
    mode = SANDBOX if probe_sandbox()[0] == SANDBOX else UNSAFE
    runner = runner_folder
    process = StudentProcess({"isolation": mode, "limits": Limits(memory_mb=2048).to_dict(),
                              "runner_folder": str(runner)}, time.monotonic() + 120)
    link = process.link
    link.deadline = time.monotonic() + 120
    link._answer(link.request("kit", {"names": list(loops.KIT_NAMES)}))
    for module in (wrong_loops, training_loops):
        answer = link._answer(link.request("exec", {"source": Path(module.__file__).read_text(),
                                                    "filename": f"<{module.__name__}>"}))
        assert not (isinstance(answer, dict) and answer.get("error")), answer
    link.deadline = None
    yield process
    process.end()


def verdict(stage: str, fn, **kwargs) -> tuple[str, str]:
    """("passed" | "rejected" | "crash", the first problem the check names, or its message)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            checks.STAGE_CHECKS[stage](fn, **kwargs)
    except AssertionError as error:
        problems = [line for line in str(error).splitlines() if line.startswith("  - ")]
        return "rejected", problems[0] if problems else str(error)
    except LearnerCodeError as error:
        return "crash", str(error)
    return "passed", ""


@pytest.mark.slow
def test_every_training_loop_gets_the_same_verdict_in_the_notebook_and_the_grade(student_process):
    rows = catalogue()
    assert len(rows) >= 20 and {stage for stage, _, _ in rows} == set(NOTEBOOK_BUDGET)
    disagreements = []
    for stage, fn, expected in rows:
        torch.manual_seed(0)
        local = verdict(stage, fn, **NOTEBOOK_BUDGET[stage])
        student_process.link.deadline = time.monotonic() + 400
        try:
            torch.manual_seed(0)
            graded = verdict(stage, StudentFunction(student_process.link, fn.__name__))
        finally:
            student_process.link.deadline = None
        same = local[0] == graded[0] == "passed" if expected == "passed" else \
            local[0] == graded[0] == "rejected" and expected in local[1] and expected in graded[1]
        if not same:
            disagreements.append(f"{stage}:{fn.__name__} (expected {expected!r})\n  notebook: {local}\n  grader: "
                                 f"{graded}")
    assert not disagreements, "\n".join(disagreements)
