"""Gymnasium 1.x NEXT_STEP autoreset handled correctly: reset steps are never transitions, truncated
steps bootstrap from the true final observation, normalisation matches gymnasium's wrappers."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers.vector import NormalizeObservation

from conftest import SHORT_CARTPOLE, SHORT_PENDULUM
from pgcourse.rl.algorithms import Trainer
from pgcourse.rl.algorithms.rollout import collect_rollout
from pgcourse.rl.config import make_config
from pgcourse.rl.envs import (AUTORESET_MODE, ObsNormalizerState, RolloutStepper, action_space_kind,
                              check_observation_space, env_spaces, find_wrapper, make_vector_env, normalizer_state)
from pgcourse.rl.returns import compute_gae


def random_actions(envs, rng, steps):
    space = envs.single_action_space
    if isinstance(space, gym.spaces.Discrete):
        return [rng.integers(0, space.n, size=envs.num_envs) for _ in range(steps)]
    return [rng.uniform(space.low, space.high, size=(envs.num_envs, *space.shape)).astype(np.float32)
            for _ in range(steps)]


# ---------------------------------------------------------------------------------------------
# spaces
# ---------------------------------------------------------------------------------------------
def test_action_space_kind():
    assert action_space_kind(gym.spaces.Discrete(3)) == "discrete"
    assert action_space_kind(gym.spaces.Box(-1, 1, (2,))) == "continuous"
    with pytest.raises(ValueError, match="unsupported action space"):
        action_space_kind(gym.spaces.Box(-1, 1, (2, 2)))
    with pytest.raises(ValueError, match="unsupported action space"):
        action_space_kind(gym.spaces.MultiDiscrete([2, 3]))


def test_check_observation_space():
    assert check_observation_space(gym.spaces.Box(-1, 1, (4,)), "X") == 4
    with pytest.raises(ValueError, match="1-D Box"):
        check_observation_space(gym.spaces.Discrete(4), "X")


def test_env_spaces_unknown_env():
    with pytest.raises(ValueError, match="NoSuchEnv-v0"):
        env_spaces("NoSuchEnv-v0")


def test_make_vector_env_uses_next_step_autoreset():
    envs = make_vector_env("CartPole-v1", 2)
    try:
        assert envs.metadata["autoreset_mode"] == AUTORESET_MODE == gym.vector.AutoresetMode.NEXT_STEP
        assert envs.num_envs == 2
    finally:
        envs.close()


# ---------------------------------------------------------------------------------------------
# RolloutStepper on the raw stream
# ---------------------------------------------------------------------------------------------
def test_stepper_marks_reset_steps_invalid_cartpole():
    envs = make_vector_env("CartPole-v1", 3)
    stepper = RolloutStepper(envs, seed=0)
    rng = np.random.default_rng(0)
    ended_before = np.zeros(3, dtype=bool)
    valid_lengths = np.zeros(3, dtype=int)
    seen_ends, seen_invalid = 0, 0
    for actions in random_actions(envs, rng, 300):
        result = stepper.step(actions)
        # exactly the step right after an episode end is invalid
        np.testing.assert_array_equal(result.valid, ~ended_before)
        assert np.all(result.rewards[~result.valid] == 0.0)
        assert not (result.terminated[~result.valid] | result.truncated[~result.valid]).any()
        seen_invalid += int((~result.valid).sum())
        valid_lengths += result.valid
        ended = result.terminated | result.truncated
        # the episode lengths gymnasium reports count only valid steps (reset steps excluded)
        assert sorted(result.episode_lengths) == sorted(valid_lengths[ended].tolist())
        # CartPole pays 1 per transition: return == length
        assert sorted(result.episode_returns) == sorted(float(x) for x in valid_lengths[ended])
        valid_lengths[ended] = 0
        seen_ends += int(ended.sum())
        ended_before = ended
    assert seen_ends >= 10 and seen_invalid >= 10
    envs.close()


def test_stepper_episode_returns_are_raw_sums_even_with_reward_scaling():
    """Run the wrapped env (obs + reward normalisation) beside a plain gymnasium vector env with the
    same seed and actions: reported episode returns equal the plain env's summed raw rewards."""
    num_envs, seed = 2, 3
    wrapped = make_vector_env(SHORT_PENDULUM, num_envs, normalize_obs=True, normalize_reward=True, gamma=0.9)
    plain = gym.make_vec(SHORT_PENDULUM, num_envs=num_envs, vectorization_mode="sync",
                         vector_kwargs={"autoreset_mode": AUTORESET_MODE})
    stepper = RolloutStepper(wrapped, seed=seed)
    plain.reset(seed=seed)
    rng = np.random.default_rng(1)
    running = np.zeros(num_envs)
    plain_autoreset = np.zeros(num_envs, dtype=bool)
    reported, expected = [], []
    scaled_differs = False
    for actions in random_actions(plain, rng, 80):
        result = stepper.step(actions)
        _, raw_rewards, terminated, truncated, _ = plain.step(actions)
        np.testing.assert_array_equal(result.valid, ~plain_autoreset)
        np.testing.assert_array_equal(result.truncated, truncated)
        scaled_differs |= not np.allclose(result.rewards[result.valid], raw_rewards[result.valid])
        running += np.where(plain_autoreset, 0.0, raw_rewards)
        ended = terminated | truncated
        for i in np.flatnonzero(ended):
            expected.append(running[i])
            running[i] = 0.0
        reported.extend(result.episode_returns)
        plain_autoreset = ended
    assert len(expected) >= 4
    np.testing.assert_allclose(sorted(reported), sorted(expected), rtol=1e-6)
    assert scaled_differs  # the rewards the learner trains on are scaled, the logged returns are not
    wrapped.close()
    plain.close()


def test_short_time_limit_produces_truncations():
    envs = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AUTORESET_MODE}, max_episode_steps=7)
    stepper = RolloutStepper(gym.wrappers.vector.RecordEpisodeStatistics(envs), seed=0)
    rng = np.random.default_rng(0)
    truncations, last_truncated = 0, np.zeros(2, dtype=bool)
    for actions in random_actions(envs, rng, 40):
        result = stepper.step(actions)
        np.testing.assert_array_equal(result.valid[last_truncated], False)
        for length in result.episode_lengths:
            assert length <= 7
        truncations += int(result.truncated.sum())
        last_truncated = result.truncated
    assert truncations >= 4
    stepper.envs.close()


def test_stepper_reports_true_final_observation():
    """For a valid ending step, next_obs is the final observation of the episode (NEXT_STEP mode),
    and the following reset step brings the first observation of a fresh episode."""
    envs = make_vector_env(SHORT_CARTPOLE, 1)
    stepper = RolloutStepper(envs, seed=11)
    single = gym.make(SHORT_CARTPOLE)
    obs, _ = single.reset(seed=11)
    rng = np.random.default_rng(2)
    checked = 0
    for actions in random_actions(envs, rng, 60):
        result = stepper.step(actions)
        if not result.valid[0]:
            obs, _ = single.reset()
            np.testing.assert_allclose(result.next_obs[0], obs, rtol=0, atol=0)
            continue
        obs, _, terminated, truncated, _ = single.step(int(actions[0]))
        np.testing.assert_allclose(result.next_obs[0], obs, rtol=0, atol=0)
        checked += int(terminated or truncated)
    assert checked >= 3
    envs.close()
    single.close()


# ---------------------------------------------------------------------------------------------
# collect_rollout: bootstrapping from the true final observation
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def short_cartpole_rollout():
    config = make_config("a2c", SHORT_CARTPOLE, "discrete", progress=False, num_envs=2, n_steps=80, seed=5,
                         device="cpu")
    trainer = Trainer(config)
    rollout = collect_rollout(trainer, config.n_steps)
    yield trainer, rollout
    trainer.envs.close()


def test_collect_rollout_shapes(short_cartpole_rollout):
    trainer, rollout = short_cartpole_rollout
    T, N = 80, 2
    assert rollout.obs.shape == (T, N, 4)
    assert rollout.actions.shape == (T, N) and rollout.actions.dtype == torch.long
    for name in ("log_probs", "values", "next_values", "rewards", "terminated", "truncated", "valid"):
        assert getattr(rollout, name).shape == (T, N), name
    assert rollout.valid.dtype == torch.bool
    assert trainer.env_step == int(rollout.valid.sum())


def test_collect_rollout_replayed_on_single_envs(short_cartpole_rollout):
    """Replay every sub-env's actions in its own plain gymnasium env: observations, rewards and flags
    agree, invalid rows are exactly the autoreset steps, and next_values[t] = V(true next observation):
    for a step that ended an episode, V(final observation), not V(first observation of the next one)."""
    trainer, rollout = short_cartpole_rollout
    value = lambda obs: float(trainer.value_net(torch.as_tensor(np.asarray(obs), dtype=torch.float32)[None]))  # noqa: E731
    T, N = rollout.rewards.shape
    truncations = terminations = 0
    with torch.no_grad():
        for i in range(N):
            env = gym.make(SHORT_CARTPOLE)
            obs, _ = env.reset(seed=trainer.config.seed + i)
            pending_reset, ended_at = False, None
            for t in range(T):
                np.testing.assert_allclose(rollout.obs[t, i].numpy(), obs, rtol=0, atol=0)
                assert float(rollout.values[t, i]) == pytest.approx(value(obs), abs=1e-6)
                if pending_reset:
                    assert not bool(rollout.valid[t, i]), f"reset step t={t} env={i} marked valid"
                    assert float(rollout.rewards[t, i]) == 0.0
                    obs, _ = env.reset()
                    if rollout.truncated[ended_at, i]:
                        # the truncated step did NOT bootstrap from the new episode's first state
                        assert abs(float(rollout.next_values[ended_at, i]) - value(obs)) > 1e-6
                    pending_reset = False
                    if t < T - 1:
                        assert float(rollout.next_values[t, i]) == pytest.approx(value(obs), abs=1e-6)
                    continue
                assert bool(rollout.valid[t, i]), f"transition t={t} env={i} marked invalid"
                next_obs, reward, terminated, truncated, _ = env.step(int(rollout.actions[t, i]))
                assert float(rollout.rewards[t, i]) == reward
                assert bool(rollout.terminated[t, i]) == terminated
                assert bool(rollout.truncated[t, i]) == truncated
                assert float(rollout.next_values[t, i]) == pytest.approx(value(next_obs), abs=1e-6)
                if terminated or truncated:
                    pending_reset, ended_at = True, t
                    truncations += int(truncated and not terminated)
                    terminations += int(terminated)
                obs = next_obs
            env.close()
    assert truncations >= 2, "the fixture should contain truncated steps"
    assert terminations >= 1, "the fixture should contain terminated steps"


def test_rollout_gae_truncated_step_uses_final_observation_value(short_cartpole_rollout):
    """With the trace cut, a truncated step's advantage is r + gamma * V(final obs) - V(s)."""
    trainer, rollout = short_cartpole_rollout
    gamma, lam = 0.99, 0.95
    advantages = compute_gae(rollout.rewards, rollout.values, rollout.next_values, rollout.terminated,
                             rollout.truncated, gamma, lam)
    ends = (rollout.truncated.bool() & ~rollout.terminated.bool()).nonzero().tolist()
    assert ends
    for t, i in ends:
        expected = rollout.rewards[t, i] + gamma * rollout.next_values[t, i] - rollout.values[t, i]
        assert float(advantages[t, i]) == pytest.approx(float(expected), abs=1e-5)
    for t, i in rollout.terminated.bool().nonzero().tolist():
        assert float(advantages[t, i]) == pytest.approx(float(rollout.rewards[t, i] - rollout.values[t, i]), abs=1e-5)


# ---------------------------------------------------------------------------------------------
# observation normalisation
# ---------------------------------------------------------------------------------------------
def test_obs_normalizer_state_matches_gymnasium_wrapper():
    envs = make_vector_env("Pendulum-v1", 2, normalize_obs=True)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    for actions in random_actions(envs, rng, 30):
        envs.step(actions)
    state = normalizer_state(envs)
    wrapper = find_wrapper(envs, NormalizeObservation)
    assert wrapper is not None and "obs" in state
    assert state["obs"]["count"] == pytest.approx(float(wrapper.obs_rms.count))
    raw = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32) * 3
    ours = ObsNormalizerState.from_dict(state["obs"])(raw)
    wrapper.update_running_mean = False
    theirs = wrapper.observations(raw)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    assert not np.allclose(ours, raw, atol=1e-3)  # the statistics really do something
    envs.close()


def test_obs_normalizer_state_dict_round_trip():
    state = ObsNormalizerState(np.array([1.0, -2.0]), np.array([4.0, 0.25]), 10.0)
    restored = ObsNormalizerState.from_dict(state.to_dict())
    x = np.array([[3.0, -1.0]])
    np.testing.assert_allclose(restored(x), state(x))
    np.testing.assert_allclose(state(x), [[1.0, 2.0]], rtol=1e-6)


def test_normalizer_state_empty_without_wrappers():
    envs = make_vector_env("CartPole-v1", 1)
    assert normalizer_state(envs) == {}
    envs.close()


def test_run_act_normalises_like_the_training_wrapper():
    """After collecting a Pendulum rollout, run.act(raw obs) acts on exactly what the training env's
    NormalizeObservation wrapper would have handed the policy for the same statistics."""
    config = make_config("ppo", "Pendulum-v1", "continuous", progress=False, num_envs=2, n_steps=50,
                         minibatch_size=50, device="cpu")
    trainer = Trainer(config)
    try:
        assert trainer.normalize_obs  # on by default for Box actions
        collect_rollout(trainer, config.n_steps)
        trainer.run.set_normalizer_state(normalizer_state(trainer.envs))
        wrapper = find_wrapper(trainer.envs, NormalizeObservation)
        wrapper.update_running_mean = False
        raw = np.stack([gym.make("Pendulum-v1").reset(seed=s)[0] for s in range(6)])  # [6, 3]
        normalised = wrapper.observations(raw)
        with torch.no_grad():
            mean = trainer.policy(torch.as_tensor(normalised))
        expected = np.clip(mean.numpy(), -2.0, 2.0)
        actions = trainer.run.act(raw, deterministic=True)
        np.testing.assert_allclose(actions, expected, rtol=1e-5, atol=1e-6)
        with torch.no_grad():
            unnormalised = trainer.policy(torch.as_tensor(raw)).numpy()
        assert not np.allclose(actions, unnormalised, rtol=0, atol=1e-6)
    finally:
        trainer.envs.close()
