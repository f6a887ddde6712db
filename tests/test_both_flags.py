"""Steps on which terminated and truncated are BOTH True (issue 14).

gymnasium raises both flags when the terminal state comes on the time-limit step: CartPole whose pole
falls on its last allowed step returns ``terminated=True, truncated=True``. ``collect_rollout`` stores
the raw flags (as 0/1 floats), so such a step reaches every function that reads them. It is ONE
episode end: terminal (no bootstrap from V(s')), the lambda-trace cut there, the next step a reset
step, the episode counted once. A learner's ``done = terminated + truncated`` makes it 2 instead
(``1 - done = -1``), and the checks must say so.

The rollouts here are real: CartPole registered with a time limit equal to the step on which the pole
falls when the cart is always pushed left from ``reset(seed=SEED)``, played by the package's trainer
(its vectorised CartPole, its ``RolloutStepper``, its ``collect_rollout``); and short training runs on
a tiny registered environment whose episodes end with both flags a quarter of the time (gymnasium's
``TimeLimit`` and ``SyncVectorEnv``, a policy that samples its actions).
"""
from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch

import pgcourse as pg
from pgcourse.course import checks
from pgcourse.rl.algorithms.rollout import Rollout, collect_rollout
from pgcourse.rl.algorithms.trainer import Hooks, Trainer
from pgcourse.course.checks import ch00_setup, ch03_a2c_gae
from pgcourse.rl.config import make_config
from pgcourse.rl.envs import CARTPOLE_ENTRY_POINT, completed_episode_returns, transition_mask
from pgcourse.rl.returns import compute_gae

from wrong_versions import episode_returns_unclamped_sum, gae_unclamped_done_sum, transition_mask_unclamped_sum

SEED = 2  # sub-environments 0, 1, 2 are seeded 2, 3, 4
GAMMA, LAM = 0.99, 0.95
BOTH_FLAGS_HINT = "can both be True on the same step"


def fall_step(seed: int) -> int:
    """The step on which CartPole's pole falls when the cart is always pushed left from ``reset(seed=seed)``."""
    env = gym.make("CartPole-v1")  # its time limit, 500, is far away
    env.reset(seed=seed)
    try:
        for step in itertools.count(1):
            _, _, terminated, truncated, _ = env.step(0)
            if terminated or truncated:
                assert terminated and not truncated
                return step
    finally:
        env.close()


LIMIT = fall_step(SEED)
LIMITED_CARTPOLE = "pgcourse_test/CartPoleFallsOnTheLimitStep-v0"
if LIMITED_CARTPOLE not in gym.registry:
    gym.register(id=LIMITED_CARTPOLE, entry_point=CARTPOLE_ENTRY_POINT, max_episode_steps=LIMIT)


class Corridor(gym.Env):
    """A walk on a line from 0, one step left or right per action, that terminates 2 steps from the start.
    Registered with a time limit of 4 steps: an episode terminates on step 2 (half of them), or reaches the
    time limit on step 4, where it also terminates half the time (both flags) or is only truncated."""

    observation_space = gym.spaces.Box(-3.0, 3.0, shape=(1,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = 0
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action):
        self.position += 1 if int(action) == 1 else -1
        return np.array([self.position], dtype=np.float32), 1.0, abs(self.position) >= 2, False, {}


CORRIDOR = "pgcourse_test/CorridorEndsOnTheLimitStep-v0"
CORRIDOR_LIMIT = 4
if CORRIDOR not in gym.registry:
    gym.register(id=CORRIDOR, entry_point=Corridor, max_episode_steps=CORRIDOR_LIMIT)


def push_left(trainer: Trainer, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``act`` hook of a fixed controller: always action 0, with its log-prob under the policy."""
    actions = torch.zeros(obs.shape[0], dtype=torch.long, device=obs.device)
    return actions, trainer.log_prob_fn(trainer.policy(obs), actions)


def both_flags(rollout: Rollout) -> list[tuple[int, int]]:
    return [tuple(index) for index in (rollout.terminated.bool() & rollout.truncated.bool()).nonzero().tolist()]


def hand_gae(rewards, values, next_values, terminated, truncated, gamma: float, lam: float) -> torch.Tensor:
    """GAE worked out step by step in Python floats, each flag read on its own as a boolean."""
    steps, num_envs = rewards.shape
    advantages = [[0.0] * num_envs for _ in range(steps)]
    for i in range(num_envs):
        following = 0.0  # the advantage of step t + 1
        for t in reversed(range(steps)):
            terminal = bool(terminated[t, i])
            ended = terminal or bool(truncated[t, i])
            delta = float(rewards[t, i]) - float(values[t, i]) + (0.0 if terminal else gamma * float(next_values[t, i]))
            following = delta + (0.0 if ended else gamma * lam * following)
            advantages[t][i] = following
    return torch.tensor(advantages, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# The premise: gymnasium really raises both flags
# ---------------------------------------------------------------------------------------------
def test_gymnasium_raises_both_flags_when_the_pole_falls_on_the_limit_step():
    env = gym.make(LIMITED_CARTPOLE)
    env.reset(seed=SEED)
    flags = [tuple(env.step(0)[2:4]) for _ in range(LIMIT)]
    env.close()
    assert flags[-1] == (True, True)
    assert not any(terminated or truncated for terminated, truncated in flags[:-1])


# ---------------------------------------------------------------------------------------------
# Real rollouts of the package with both flags, mid-rollout and on the last step
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rollouts():
    """Two consecutive rollouts of 3 CartPoles pushed left: the first ends on a both-flags step, the
    second starts with the reset steps that follow it and has both flags again mid-rollout."""
    config = make_config("a2c", LIMITED_CARTPOLE, "discrete", progress=False, num_envs=3, n_steps=LIMIT, seed=SEED,
                         device="cpu", eval_every=0)
    trainer = Trainer(config, hooks=Hooks(act=push_left))
    try:
        first = collect_rollout(trainer, LIMIT)
        second = collect_rollout(trainer, 3 * LIMIT)
        episodes = {name: list(trainer.history.episodes[name]) for name in ("return", "length")}
    finally:
        trainer.envs.close()
    assert (LIMIT - 1, 0) in both_flags(first), "env 0's first episode should end with both flags on the last step"
    assert any(t < 3 * LIMIT - 1 for t, _ in both_flags(second)), "both flags mid-rollout in the second rollout"
    terminated, truncated = second.terminated.bool(), second.truncated.bool()
    assert (terminated & ~truncated).any() and (truncated & ~terminated).any(), "plain ends of both kinds too"
    return first, second, episodes


def test_compute_gae_on_rollouts_with_both_flags_matches_the_hand_computation(rollouts):
    first, second, _ = rollouts
    for rollout in (first, second):
        args = (rollout.rewards, rollout.values, rollout.next_values, rollout.terminated, rollout.truncated)
        advantages = compute_gae(*args, GAMMA, LAM)
        torch.testing.assert_close(advantages.double(), hand_gae(*args, GAMMA, LAM), rtol=1e-5, atol=1e-5)
        for t, i in both_flags(rollout):  # terminal: no bootstrap, and nothing of the next episode
            expected = float(rollout.rewards[t, i] - rollout.values[t, i])
            assert float(advantages[t, i]) == pytest.approx(expected, abs=1e-6)
    # the learner's unclamped sum flips the trace at a both-flags step inside the rollout
    args = (second.rewards, second.values, second.next_values, second.terminated, second.truncated, GAMMA, LAM)
    wrong = gae_unclamped_done_sum(*args)
    inside = [(t, i) for t, i in both_flags(second) if t > 0 and bool(second.valid[t - 1, i])]
    assert inside
    for t, i in inside:
        assert abs(float(wrong[t - 1, i]) - float(compute_gae(*args)[t - 1, i])) > 1e-3


def test_the_step_after_both_flags_is_a_reset_step(rollouts):
    first, second, _ = rollouts
    # across the rollouts: the first ends on a both-flags step, so the second starts with its reset step
    for t, i in both_flags(first):
        if t == LIMIT - 1:
            assert not bool(second.valid[0, i])
    # inside a rollout
    mask = transition_mask(second.terminated.bool(), second.truncated.bool())
    learner_sum = transition_mask_unclamped_sum(second.terminated.bool(), second.truncated.bool())
    inside = [(t, i) for t, i in both_flags(second) if t + 1 < second.valid.shape[0]]
    assert inside
    for t, i in inside:
        assert not bool(second.valid[t + 1, i]) and not bool(mask[t + 1, i])
        assert bool(learner_sum[t + 1, i])  # the bug the check now rejects: the reset step counted as a transition
    assert torch.equal(mask[1:], second.valid[1:])  # row 0 depends on the rollout before


def test_an_episode_ending_with_both_flags_is_counted_once(rollouts):
    """completed_episode_returns over the two rollouts (one stream from the reset) finds exactly the
    episodes gymnasium's statistics recorded: one per end, a both-flags end included."""
    first, second, episodes = rollouts
    rewards = torch.cat([first.rewards, second.rewards])
    terminated = torch.cat([first.terminated, second.terminated])
    truncated = torch.cat([first.truncated, second.truncated])
    returns = completed_episode_returns(rewards, terminated, truncated)
    assert len(returns) == int((terminated.bool() | truncated.bool()).sum()) == len(episodes["return"])
    assert returns == pytest.approx(episodes["return"])
    assert returns == pytest.approx(episodes["length"])  # CartPole: reward 1 per step
    assert LIMIT in episodes["length"]  # episodes that ended with both flags, among others
    assert episode_returns_unclamped_sum(rewards, terminated, truncated) != pytest.approx(returns)


# ---------------------------------------------------------------------------------------------
# Training on an environment whose episodes often end with both flags (the Corridor)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algo, budget", [("a2c", dict(total_steps=1024, num_envs=4, n_steps=16)),
                                          ("ppo", dict(total_steps=1024, num_envs=4, n_steps=32,
                                                       minibatch_size=64, update_epochs=2))])
def test_training_with_both_flags_uses_the_right_advantages(algo, budget):
    """The advantages of every update of a real run (the policy samples its actions) are the hand-computed
    ones, both-flags steps included, and every episode is recorded once."""
    calls = []

    def recorded_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
        advantages = compute_gae(rewards, values, next_values, terminated, truncated, gamma, lam)
        calls.append(([x.clone() for x in (rewards, values, next_values, terminated, truncated)], gamma, lam,
                      advantages.clone()))
        return advantages

    run = pg.train(algo, CORRIDOR, seed=0, device="cpu", progress=False, eval_every=0,
                   compute_gae=recorded_gae, **budget)
    assert calls
    both = 0
    for args, gamma, lam, advantages in calls:
        torch.testing.assert_close(advantages.double(), hand_gae(*args, gamma, lam), rtol=1e-5, atol=1e-5)
        both += int((args[3].bool() & args[4].bool()).sum())
    assert both >= 20, "the run should contain many steps with both flags"
    rewards, terminated, truncated = (torch.cat([args[k] for args, *_ in calls]) for k in (0, 3, 4))
    returns = completed_episode_returns(rewards, terminated, truncated)
    assert returns == pytest.approx(list(run.history.episodes["return"]))
    assert set(run.history.episodes["length"]) == {2, CORRIDOR_LIMIT}
    for column in ("policy_loss", "value_loss"):
        assert torch.isfinite(torch.tensor(list(run.history.updates[column]))).all()


def test_the_unclamped_sum_changes_training():
    """Why the check must reject it: on this environment the learner's `done = terminated + truncated`
    trains on other advantages than the reference, silently."""
    budget = dict(total_steps=512, num_envs=4, n_steps=16, seed=0, device="cpu", progress=False, eval_every=0)
    reference = pg.train("a2c", CORRIDOR, **budget)
    learner = pg.train("a2c", CORRIDOR, compute_gae=gae_unclamped_done_sum, **budget)
    assert list(reference.history.updates["advantage_std"]) != pytest.approx(
        list(learner.history.updates["advantage_std"]))


# ---------------------------------------------------------------------------------------------
# The checks: cases with both flags, and the learner's unclamped sums rejected by name
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("exercise", [ch00_setup.TRANSITION_MASK, ch00_setup.COMPLETED_EPISODE_RETURNS,
                                      ch03_a2c_gae.COMPUTE_GAE], ids=lambda ex: ex.name)
def test_checks_have_cases_with_both_flags_mid_rollout_and_on_the_last_step(exercise):
    mid, last = False, False
    for case in exercise.make_cases():
        terminated, truncated = case.args["terminated"].bool(), case.args["truncated"].bool()
        steps = (terminated & truncated).nonzero()[:, 0].tolist()
        mid |= any(t < terminated.shape[0] - 1 for t in steps)
        last |= terminated.shape[0] - 1 in steps
    assert mid and last


def transition_mask_sum_not_one(terminated, truncated):
    """Counts the flags and takes `count != 1` as 'no end': a step with both flags (count 2) looks like none."""
    count = terminated.int() + truncated.int()
    valid = torch.ones_like(terminated, dtype=torch.bool)
    valid[1:] = count[:-1] != 1
    return valid


def episode_returns_sum_equals_one(rewards, terminated, truncated):
    """Closes an episode where terminated + truncated == 1: an episode ending with both flags is missed and
    merged into the next."""
    done = terminated.float() + truncated.float()
    running = [0.0] * rewards.shape[1]
    found = []
    for t in range(rewards.shape[0]):
        for i in range(rewards.shape[1]):
            if t == 0 or done[t - 1, i] != 1:  # a reset step (after an end it saw) adds nothing
                running[i] += float(rewards[t, i])
            if done[t, i] == 1:
                found.append(running[i])
                running[i] = 0.0
    return found


def gae_sum_as_in_the_issue(rewards, values, next_values, terminated, truncated, gamma, lam):
    """The learner's code of issue 14: the trace multiplied by 1 - (terminated + truncated)."""
    done = terminated + truncated
    deltas = (rewards + gamma * (1 - terminated) * next_values - values).detach()
    advantages = torch.zeros_like(deltas)
    last = torch.zeros_like(deltas[0])
    for t in reversed(range(deltas.shape[0])):
        last = deltas[t] + gamma * lam * (1 - done[t]) * last
        advantages[t] = last
    return advantages


@pytest.mark.parametrize("exercise, fn", [
    ("transition_mask", transition_mask_unclamped_sum), ("transition_mask", transition_mask_sum_not_one),
    ("completed_episode_returns", episode_returns_unclamped_sum),
    ("completed_episode_returns", episode_returns_sum_equals_one),
    ("compute_gae", gae_unclamped_done_sum), ("compute_gae", gae_sum_as_in_the_issue),
], ids=lambda value: getattr(value, "__name__", value))
def test_unclamped_sums_are_rejected_as_such(exercise, fn):
    with pytest.raises(AssertionError) as info:
        checks.ALL_CHECKS[exercise](fn)
    message = str(info.value)
    assert f"Probable mistake: terminated and truncated {BOTH_FLAGS_HINT}" in message, message
    assert "Smallest failing case: " in message and "both" in message.split("Smallest failing case: ")[1]
