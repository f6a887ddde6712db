"""Exercise 06 Part B must prove it learned (issue 26, item 3): a ``train_actor_critic`` that trains nothing,
writes each probe's right critic by hand and reports 100 returns of 500 passed ("✓ train_actor_critic: ... best
50-episode average 500"), in the notebook and graded: the check scored the returns the loop reported and the
critic it returned. The check now owns the envs (the namespace's ``make_envs`` is swapped, during the check, for
one that builds recording envs, in the notebook and in the grader's student process: pgcourse.grading.loops),
records every optimiser step, scores the returns it recorded, and checks the returned weights are the product of
the recorded steps (pgcourse/checks/ch06_proof.py).
"""
from __future__ import annotations

import contextlib
import io
import time

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Categorical

from pgcourse.course.checks import LearnerCodeError
from pgcourse.course.checks import ch06_traps
from pgcourse.classroom.sandboxed.link import StudentFunction
from pgcourse.classroom.grading.sandbox import SANDBOX, UNSAFE, Limits, probe_sandbox
from pgcourse.classroom.grading.worker import StudentProcess

import actor_critic_loops

LOOPS = {name: (source, expected) for name, source, expected in actor_critic_loops.loops()}


def local(name: str):
    """The loop defined as in a notebook: the ch06-envs cell's namespace."""
    namespace = {"np": np, "torch": torch, "nn": nn, "Categorical": Categorical}
    exec(actor_critic_loops.envs_source(), namespace)
    exec(LOOPS[name][0], namespace)
    return namespace[name]


def verdict(fn) -> tuple[str, str]:
    try:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            ch06_traps.check_train_actor_critic(fn)
    except AssertionError as error:
        return "rejected", str(error)
    except LearnerCodeError as error:
        return "crash", str(error)
    return "passed", out.getvalue()


@pytest.fixture(scope="module")
def student_process(runner_folder):
    mode = SANDBOX if probe_sandbox()[0] == SANDBOX else UNSAFE
    runner = runner_folder
    process = StudentProcess({"isolation": mode, "limits": Limits(memory_mb=2048).to_dict(),
                              "runner_folder": str(runner)}, time.monotonic() + 120)
    link = process.link
    link.deadline = time.monotonic() + 120
    sources = ["import numpy as np\nimport torch\n", actor_critic_loops.envs_source(),
               *[source for source, _ in LOOPS.values()]]
    for number, source in enumerate(sources):
        answer = link._answer(link.request("exec", {"source": source, "filename": f"<source {number}>"}))
        assert not answer.get("error"), answer.get("error")
    link.deadline = None
    yield process
    process.end()


def graded(process, name: str) -> tuple[str, str]:
    process.link.deadline = time.monotonic() + 600
    try:
        return verdict(StudentFunction(process.link, name))
    finally:
        process.link.deadline = None


def test_a_hand_written_critic_with_reported_returns_of_500_scores_nothing_in_the_notebook_and_graded(
        student_process):
    """The finding: passed both ways before ('both probe critics right ... best 50-episode average 500')."""
    for where, result in (("notebook", verdict(local("fake_hand_written_critic"))),
                          ("grader", graded(student_process, "fake_hand_written_critic"))):
        assert result[0] == "rejected" and "took no optimiser step" in result[1], (where, result)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LOOPS))
def test_every_actor_critic_loop_gets_the_same_verdict_in_the_notebook_and_the_grade(student_process, name):
    """Right loops written otherwise (two Adams, mse_loss without the 1/2, copies of the state dicts returned) pass;
    each wrong one (the fake, returns never reset, a critic edited after training, lr hard-coded, a new optimiser per
    update, half rollouts) is named the same in both places."""
    expected = LOOPS[name][1]
    results = {"notebook": verdict(local(name)), "grader": graded(student_process, name)}
    for where, (outcome, message) in results.items():
        if expected == "passed":
            assert outcome == "passed", (where, message)
        else:
            assert outcome == "rejected" and expected in message, (where, message)
