"""Recorder tampering (issue 26, the grader red team): a training loop changes the envs the check records instead of
the recorder. Exercise 06 Part B scores the returns the check recorded on the envs its ``make_envs`` built; a loop
whose actor learns nothing (its loss's sign flipped) and that widened each env's thresholds
(``env.unwrapped.x_threshold = env.unwrapped.theta_threshold_radians = 1e9``) recorded episodes of 500 and passed
the whole check ("it learns CartPole-v1 (best 50-episode average 500)"), in the notebook and graded. Every recorded
CartPole step is now replayed with CartPole's equations on the check's side (pgcourse/checks/cartpole_replay.py).
"""
from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Categorical

from pgcourse.course.checks import ch06_traps
from pgcourse.classroom.sandboxed.link import StudentFunction
from pgcourse.classroom.grading.sandbox import SANDBOX, UNSAFE, Limits, probe_sandbox
from pgcourse.classroom.grading.worker import StudentProcess

import actor_critic_loops

MAKE = "    envs = make_envs(env_name)\n"
SIGN = ("loss = -(log_probs * weights)", "loss = (log_probs * weights)")  # an actor that learns to fall
TAMPERS = {  # what the loop does to each env right after make_envs(env_name)
    "thresholds_widened": "        env.unwrapped.theta_threshold_radians = env.unwrapped.x_threshold = 1e9\n",
    "gravity_weakened": "        env.unwrapped.gravity = 0.5\n",
    "time_limit_cut": "        env.env._max_episode_steps = 20\n",
    "rewards_doubled": "        env.env = gym.wrappers.TransformReward(env.env, lambda r: 2.0 * r)\n",
}
STEPS = 4096  # 8 envs x 512 steps: each widened env plays one episode of 500


def _source(name: str, tamper: str, learns: bool = False) -> str:
    source = actor_critic_loops.solution_source().replace("def train_actor_critic(", f"def {name}(")
    source = source.replace(MAKE, MAKE + "    for env in envs:\n" + tamper, 1)
    return source if learns else source.replace(*SIGN)


def _local(name: str, source: str):
    namespace = {"np": np, "torch": torch, "nn": nn, "Categorical": Categorical, "gym": gym}
    exec(actor_critic_loops.envs_source(), namespace)
    exec(source, namespace)
    return namespace[name]


def _verdict(fn) -> str:
    try:
        returns = ch06_traps._call(fn, "CartPole-v1", STEPS, seed=0)[2]
    except AssertionError as error:
        return str(error)
    return f"accepted, recorded returns {returns[:8]}"


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_a_loop_that_changes_its_envs_is_caught_in_the_notebook(tamper):
    verdict = _verdict(_local(tamper, _source(tamper, TAMPERS[tamper])))
    assert "as gymnasium makes them: change nothing of them" in verdict, verdict


def test_a_loop_that_changes_its_envs_is_caught_when_graded(runner_folder):
    mode = SANDBOX if probe_sandbox()[0] == SANDBOX else UNSAFE
    runner = runner_folder
    process = StudentProcess({"isolation": mode, "limits": Limits(memory_mb=2048).to_dict(),
                              "runner_folder": str(runner)}, time.monotonic() + 120)
    try:
        link = process.link
        link.deadline = time.monotonic() + 300
        for number, source in enumerate(["import numpy as np\nimport torch\nimport gymnasium as gym\n",
                                         actor_critic_loops.envs_source(),
                                         _source("widened", TAMPERS["thresholds_widened"])]):
            answer = link._answer(link.request("exec", {"source": source, "filename": f"<source {number}>"}))
            assert not answer.get("error"), answer.get("error")
        verdict = _verdict(StudentFunction(link, "widened"))
    finally:
        process.end()
    assert "did not end with the state" in verdict, verdict


def test_right_loops_on_untouched_envs_pass_the_replay():
    """Right both ways: the solution and a loop that reads (but changes nothing of) its envs' attributes."""
    for name, source in (("train_actor_critic", actor_critic_loops.solution_source()),
                         ("reads_only", _source("reads_only", "        assert env.unwrapped.gravity == 9.8\n",
                                                learns=True))):
        assert _verdict(_local(name, source)).startswith("accepted"), name


def test_the_replay_reproduces_gymnasiums_cartpole():
    """The equations and constants written in cartpole_replay are gymnasium's: random actions over 20 episodes,
    every next observation within the tolerance, every termination and truncation as gymnasium's."""
    from pgcourse.course.checks.cartpole_replay import MAX_EPISODE_STEPS, STATE_TOLERANCE, _fallen, cartpole_step

    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(0)
    for episode in range(20):
        obs, _ = env.reset(seed=episode)
        for t in range(1, MAX_EPISODE_STEPS + 1):
            action = int(rng.integers(2)) if episode % 2 else int(obs[2] + obs[3] > 0)  # random; a balancer
            predicted = cartpole_step(obs[None], np.array([action]))[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            assert np.abs(obs - predicted).max() <= STATE_TOLERANCE
            assert reward == 1.0 and _fallen(predicted) in (None, terminated) and truncated == (t >= 500)
            if terminated or truncated:
                break
