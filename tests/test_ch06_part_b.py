"""Exercise 06 Part B (pgcourse.checks.ch06_traps.check_train_actor_critic): which observation a truncated step
bootstraps from.

The one-state probes have one observation, so a loop that stores its row after ``env.reset()`` (the truncated step
then bootstraps from the next episode's first observation) passed them. The two-state probe
(pgcourse.episode_cases.TwoStateTimeLimitProbe) ends every episode on B while the next starts on A: the check
names that loop, passes the fixed one, and the grader, which plays the loop in its sandboxed student process,
gives the same verdicts.
"""
from __future__ import annotations

import contextlib
import io
import re
import time

import gymnasium as gym
import pytest

from pgcourse.classroom.sandboxed import episode_cases
from pgcourse.course.checks import LearnerCodeError
from pgcourse.course.checks import ch06_traps
from pgcourse.classroom.sandboxed.link import StudentFunction
from pgcourse.classroom.grading.sandbox import SANDBOX, UNSAFE, Limits, probe_sandbox
from pgcourse.classroom.grading.worker import StudentProcess

from test_bug_hunt import _cell, _loop

ROW_BEFORE_RESET = """                rows.append((obs[i], int(actions[i]), float(reward), next_obs, float(terminated)))
                running[i] += reward
                if terminated or truncated:
                    episode_returns.append(running[i])
                    running[i] = 0.0
                    next_obs, _ = env.reset()
"""
ROW_AFTER_RESET = """                running[i] += reward
                if terminated or truncated:
                    episode_returns.append(running[i])
                    running[i] = 0.0
                    next_obs, _ = env.reset()
                rows.append((obs[i], int(actions[i]), float(reward), next_obs, float(terminated)))
"""
FROM_RESET_HINT = "instead of V(B), the final observation that step itself returned"


def _row_after_reset(source: str) -> str:
    """The fixed loop with its row stored after the reset: a truncated step's next_obs is the new episode's first."""
    assert source.count(ROW_BEFORE_RESET) == 1
    return source.replace(ROW_BEFORE_RESET, ROW_AFTER_RESET)


def test_the_two_state_probe_ends_each_episode_on_another_observation_than_the_next_starts_on():
    env = gym.make(episode_cases.TWO_STATE_PROBE_ID)
    first, _ = env.reset(seed=0)
    steps = [env.step(env.action_space.sample()) for _ in range(3)]
    assert [float(obs[0]) for obs, *_ in steps] == [-1.0, 1.0, -1.0] and float(first[0]) == 1.0
    assert [reward for _, reward, *_ in steps] == [1.0, 0.0, 1.0]
    flags = [(terminated, truncated) for _, _, terminated, truncated, _ in steps]
    assert flags == [(False, False), (False, False), (False, True)]
    assert float(env.reset()[0][0]) == 1.0 != float(steps[-1][0][0])  # the final observation is not the reset one
    right, from_reset = ch06_traps.TWO_STATE_VALUES, ch06_traps.FROM_RESET_VALUES
    assert right == pytest.approx((1 / (1 - 0.9 ** 2), 0.9 / (1 - 0.9 ** 2)))
    assert min(abs(a - b) for a, b in zip(right, from_reset)) > 2 * ch06_traps.PROBE_TOLERANCE


@pytest.mark.slow
def test_the_fixed_loop_learns_the_two_state_values_and_the_row_after_reset_learns_the_other_fixed_point():
    fixed = _loop("ch06_train_actor_critic", "train_actor_critic")
    after_reset = _loop("ch06_train_actor_critic", "train_actor_critic", _row_after_reset)
    for values, expected in ((ch06_traps.two_state_probe_values(fixed), ch06_traps.TWO_STATE_VALUES),
                             (ch06_traps.two_state_probe_values(after_reset), ch06_traps.FROM_RESET_VALUES)):
        assert values == pytest.approx(expected, abs=ch06_traps.PROBE_TOLERANCE / 3)


@pytest.mark.slow
def test_the_check_names_a_loop_that_stores_its_row_after_the_reset():
    with pytest.raises(AssertionError, match=re.escape(FROM_RESET_HINT)):
        ch06_traps.check_train_actor_critic(_loop("ch06_train_actor_critic", "train_actor_critic", _row_after_reset))


# -- the grader's verdict: the loop played in the sandboxed student process ------------------------------------------

@pytest.fixture(scope="module")
def student_process(runner_folder):
    mode = SANDBOX if probe_sandbox()[0] == SANDBOX else UNSAFE
    runner = runner_folder
    process = StudentProcess({"isolation": mode, "limits": Limits().to_dict(), "runner_folder": str(runner)},
                             time.monotonic() + 120)
    link = process.link
    link.deadline = time.monotonic() + 120
    fixed = "\n".join(line for line in _cell("ch06_train_actor_critic").splitlines() if not line.startswith("### "))
    sources = ["import numpy as np\nimport torch\n", _cell("ch06_envs"), fixed,
               _row_after_reset(fixed).replace("def train_actor_critic(", "def row_after_reset(")]
    for number, source in enumerate(sources):
        answer = link._answer(link.request("exec", {"source": source, "filename": f"<source {number}>"}))
        assert not answer.get("error"), answer.get("error")
    link.deadline = None
    yield process
    process.end()


def _verdict(fn) -> tuple[str, str]:
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            ch06_traps.check_train_actor_critic(fn)
    except AssertionError as error:
        return "rejected", str(error)
    except LearnerCodeError as error:
        return "crash", str(error)
    return "passed", ""


@pytest.mark.slow
@pytest.mark.parametrize("name, edit, verdict", [("row_after_reset", _row_after_reset, "rejected")],
                         ids=["row stored after the reset"])
def test_the_grader_gives_the_notebooks_verdict(student_process, name, edit, verdict):
    """(The fixed loop, the solution's cell, passes both ways in tests/test_ch06_learning_proof.py, whose probes
    include the two-state one: running it here too cost 13 s of the suite.)"""
    local = _verdict(_loop("ch06_train_actor_critic", "train_actor_critic", edit))
    student_process.link.deadline = time.monotonic() + 600
    try:
        remote = _verdict(StudentFunction(student_process.link, name))
    finally:
        student_process.link.deadline = None
    assert local[0] == remote[0] == verdict, f"notebook: {local}\ngrader: {remote}"
    if verdict == "rejected":
        assert FROM_RESET_HINT in local[1] and FROM_RESET_HINT in remote[1]
