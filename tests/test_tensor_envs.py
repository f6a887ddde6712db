"""pgcourse.tensor_envs: torch vector environments that play gymnasium's episodes.

In float64 on CPU a trajectory is gymnasium's bit for bit from the same start states (observations, flags,
states; rewards too, except Pendulum's, see below), through thousands of steps of terminations, truncations
and NEXT_STEP autoresets. Start states are injected: gymnasium's random stream is numpy's, ours is torch's.
At each autoreset, gymnasium's sub-environment is given the start state the torch batch drew.
In float32 the trajectories drift apart; the episodes' statistics must not.
"""
from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
from torch.utils._python_dispatch import TorchDispatchMode

from pgcourse.rl import tensor_dynamics
from pgcourse.rl.envs import AUTORESET_MODE, completed_episode_returns, make_raw_vector_env, transition_mask
from pgcourse.rl.tensor_envs import TENSOR_ENVS, TensorVectorEnv

# Pendulum's action cost 0.001 * u**2 is a float32 product in gymnasium, and numpy's float32 `u**2` is the C
# library's powf, which is not always the correctly rounded u * u: a reward may differ by a float32 ulp of
# 0.001 * u**2 (u**2 <= 4: at most ~5e-10). The states, which do not use u**2, are equal.
PENDULUM_REWARD_ATOL = 1e-9


# ---------------------------------------------------------------------------------------------------------
# gymnasium's side: read and write a sub-environment's state
# ---------------------------------------------------------------------------------------------------------
class GymSide:
    """A gymnasium ``SyncVectorEnv`` (NEXT_STEP) whose sub-environments' states the test reads and sets."""

    def __init__(self, env_id: str, num_envs: int, max_episode_steps: int | None = None):
        kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
        self.env_id = env_id
        self.envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                                 vector_kwargs={"autoreset_mode": AUTORESET_MODE}, **kwargs)
        self.envs.reset(seed=0)

    def state(self) -> np.ndarray:  # [N, D] float64
        return np.stack([np.asarray(env.unwrapped.state, dtype=np.float64) for env in self.envs.envs])

    def set_state(self, i: int, state: np.ndarray) -> np.ndarray:
        """Put sub-environment ``i`` in ``state``; returns the observation gymnasium gives of it."""
        env = self.envs.envs[i].unwrapped
        env.state = np.array(state, dtype=np.float64)
        if self.env_id == "Acrobot-v1":
            return env._get_ob()
        if self.env_id == "Pendulum-v1":
            return env._get_obs()
        return np.array(env.state, dtype=np.float32)

    def step(self, actions: np.ndarray):
        return self.envs.step(actions)


class CourseCartPoleSide(GymSide):
    """The course's numpy CartPole (:class:`pgcourse.envs.SeededCartPoleVectorEnv`, ``vectorization="auto"``)."""

    def __init__(self, env_id: str, num_envs: int, max_episode_steps: int | None = None):
        assert env_id == "CartPole-v1" and max_episode_steps is None
        self.env_id = env_id
        self.envs = make_raw_vector_env(env_id, num_envs, vectorization="auto")
        assert isinstance(self.envs, CartPoleVectorEnv)
        self.envs.reset(seed=0)

    def state(self) -> np.ndarray:
        return self.envs.state.T.copy()

    def set_state(self, i: int, state: np.ndarray) -> np.ndarray:
        self.envs.state[:, i] = state
        return np.asarray(state, dtype=np.float32)


# ---------------------------------------------------------------------------------------------------------
# policies (numpy, from gymnasium's observations), chosen so that episodes both terminate and truncate
# ---------------------------------------------------------------------------------------------------------
def cartpole_policy(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A balancing rule with 20 % of its actions flipped: some episodes fall, some reach the time limit."""
    balance = (obs[:, 2] + 0.3 * obs[:, 3] + 0.01 * obs[:, 0] + 0.1 * obs[:, 1]) > 0
    return (balance ^ (rng.random(len(obs)) < 0.2)).astype(np.int64)


def acrobot_policy(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """First half of the batch: torque with the second joint's velocity (swings up, terminates); second half:
    random (reaches the time limit)."""
    pump = np.where(obs[:, 5] > 0, 2, 0)
    half = len(obs) // 2
    return np.concatenate([pump[:half], rng.integers(0, 3, len(obs) - half)]).astype(np.int64)


def pendulum_policy(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform torques, some beyond the +-2 bounds (the environment clips them)."""
    return rng.uniform(-2.5, 2.5, size=(len(obs), 1)).astype(np.float32)


def random_discrete(n: int):
    return lambda obs, rng: rng.integers(0, n, len(obs)).astype(np.int64)


POLICIES = {"CartPole-v1": cartpole_policy, "Acrobot-v1": acrobot_policy, "Pendulum-v1": pendulum_policy}


def wide_start_states(env_id: str, num_envs: int, rng: np.random.Generator) -> np.ndarray:
    """First start states from wider ranges than the defaults (Acrobot's include swung-up positions that
    terminate at once); Acrobot's rounded to float32, as AcrobotEnv.reset stores them."""
    if env_id == "CartPole-v1":
        return rng.uniform(-0.15, 0.15, size=(num_envs, 4))
    if env_id == "Acrobot-v1":
        return rng.uniform([-np.pi, -np.pi, -2, -2], [np.pi, np.pi, 2, 2], size=(num_envs, 4)).astype(np.float32)
    return rng.uniform([-np.pi, -8], [np.pi, 8], size=(num_envs, 2))


def play_both(env_id: str, steps: int, num_envs: int = 16, side=GymSide, policy=None, max_episode_steps=None,
              seed: int = 0) -> dict[str, int]:
    """Step gymnasium and the torch batch (float64, CPU) with the same actions from the same start states and
    assert every step equal. Returns counts of terminated / truncated / both / reset steps."""
    rng = np.random.default_rng(seed)
    policy = policy or POLICIES[env_id]
    gym_side = side(env_id, num_envs, max_episode_steps)
    envs = TensorVectorEnv(env_id, num_envs, max_episode_steps=max_episode_steps)
    starts = wide_start_states(env_id, num_envs, rng)
    gym_obs = np.stack([gym_side.set_state(i, s) for i, s in enumerate(starts)])
    obs, _ = envs.reset(seed=seed, options={"state": torch.as_tensor(starts, dtype=torch.float64)})
    np.testing.assert_array_equal(obs.numpy(), gym_obs, err_msg=f"{env_id}: first observations")
    counts = dict(terminated=0, truncated=0, both=0, resets=0)
    resetting = np.zeros(num_envs, dtype=bool)
    for t in range(steps):
        actions = policy(gym_obs, rng)
        gym_obs, gym_reward, gym_term, gym_trunc, _ = gym_side.step(actions)
        obs, reward, term, trunc, _ = envs.step(torch.as_tensor(actions))
        for i in np.flatnonzero(resetting):  # gymnasium drew its own start state: give it the batch's
            gym_obs[i] = gym_side.set_state(i, envs.state[i].numpy())
        where = f"{env_id}, step {t}"
        np.testing.assert_array_equal(envs.state.numpy(), gym_side.state(), err_msg=f"{where}: states")
        np.testing.assert_array_equal(obs.numpy(), gym_obs, err_msg=f"{where}: observations")
        np.testing.assert_array_equal(term.numpy(), gym_term, err_msg=f"{where}: terminated")
        np.testing.assert_array_equal(trunc.numpy(), gym_trunc, err_msg=f"{where}: truncated")
        assert reward.dtype == torch.float64 and obs.dtype == torch.float32
        if env_id == "Pendulum-v1":
            np.testing.assert_allclose(reward.numpy(), gym_reward, rtol=0, atol=PENDULUM_REWARD_ATOL, err_msg=where)
        else:
            np.testing.assert_array_equal(reward.numpy(), gym_reward, err_msg=f"{where}: rewards")
        assert not reward.numpy()[resetting].any(), f"{where}: a reset step's reward is not 0"
        counts["terminated"] += int(gym_term.sum())
        counts["truncated"] += int(gym_trunc.sum())
        counts["both"] += int((gym_term & gym_trunc).sum())
        counts["resets"] += int(resetting.sum())
        resetting = gym_term | gym_trunc
    return counts


# ---------------------------------------------------------------------------------------------------------
# float64: gymnasium's trajectories
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", list(TENSOR_ENVS))
def test_float64_trajectories_are_gymnasiums(env_id):
    counts = play_both(env_id, steps=2000)
    assert counts["truncated"] >= 10 and counts["resets"] >= 20, counts
    if env_id != "Pendulum-v1":  # Pendulum never terminates
        assert counts["terminated"] >= 20, counts


def test_cartpole_random_actions_short_time_limit_terminated_and_truncated_at_once():
    # a limit of 12 steps with random actions (episodes of ~22 steps): some episodes fall on the 12th step
    counts = play_both("CartPole-v1", steps=2000, policy=random_discrete(2), max_episode_steps=12)
    assert counts["both"] >= 1 and counts["terminated"] >= 100 and counts["truncated"] >= 100, counts


def test_cartpole_equals_the_courses_numpy_cartpole():
    counts = play_both("CartPole-v1", steps=2000, num_envs=32, side=CourseCartPoleSide)
    assert counts["terminated"] >= 20 and counts["truncated"] >= 10, counts


def test_reset_steps_ignore_the_action_and_are_the_steps_transition_mask_drops():
    """Batch b gets other actions exactly on the steps transition_mask marks invalid: nothing changes, and those
    steps have reward 0. (Other actions on valid steps do change the episodes: batch c.)"""
    batches = [TensorVectorEnv("CartPole-v1", 8) for _ in range(3)]
    for envs in batches:
        envs.reset(seed=3)
    rng = np.random.default_rng(0)
    terminated, truncated, obs_a, obs_c, valids = [], [], [], [], []
    valid = torch.ones(8, dtype=torch.bool)  # [N]: the next step is a transition (NEXT_STEP: not a reset step)
    for _ in range(300):
        actions = torch.as_tensor(rng.integers(0, 2, 8))
        out_a = batches[0].step(actions)
        out_b = batches[1].step(torch.where(valid, actions, 1 - actions))
        obs_a.append(out_a[0])
        obs_c.append(batches[2].step(1 - actions)[0])
        for x, y in zip(out_a[:4], out_b[:4]):
            assert torch.equal(x, y), "an action on a reset step changed the result"
        assert not out_a[1][~valid].any(), "a reset step's reward is not 0"
        terminated.append(out_a[2])
        truncated.append(out_a[3])
        valids.append(valid)
        valid = ~(out_a[2] | out_a[3])
    mask = transition_mask(torch.stack(terminated), torch.stack(truncated))  # [T, N]
    assert torch.equal(mask, torch.stack(valids)) and (~mask).sum() >= 50
    assert not torch.equal(torch.stack(obs_a), torch.stack(obs_c))


def test_a_truncated_step_returns_the_true_final_observation_to_bootstrap_from():
    """NEXT_STEP: the step that hits the time limit continues the physics (its observation is the final state's,
    what a truncated step's value bootstraps from); the step after it is the new episode's start."""
    envs = TensorVectorEnv("Pendulum-v1", 6, max_episode_steps=5)
    envs.reset(seed=0)
    actions = torch.full((6, 1), 0.5)
    for _ in range(4):
        envs.step(actions)
    before = envs.state.clone()
    obs, reward, terminated, truncated, _ = envs.step(actions)
    final_state, final_reward, _ = tensor_dynamics.pendulum_step(before, actions)
    assert truncated.all() and not terminated.any()
    assert torch.equal(obs, tensor_dynamics.pendulum_observe(final_state)) and torch.equal(reward, final_reward)
    obs, reward, terminated, truncated, _ = envs.step(actions)  # the reset step
    assert not (terminated | truncated).any() and (reward == 0).all()
    assert (envs.state[:, 0].abs() <= math.pi).all() and (envs.state[:, 1].abs() <= 1).all()


# ---------------------------------------------------------------------------------------------------------
# seeding and start states
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", list(TENSOR_ENVS))
def test_start_states_are_uniform_in_gymnasiums_ranges(env_id):
    spec = TENSOR_ENVS[env_id]
    envs = TensorVectorEnv(env_id, 4096)
    envs.reset(seed=0)
    states = envs.state
    low, high = torch.tensor(spec.start_low, dtype=torch.float64), torch.tensor(spec.start_high, dtype=torch.float64)
    assert ((states >= low) & (states <= high)).all()
    width = high - low
    assert (states.min(0).values - low < 0.01 * width).all() and (high - states.max(0).values < 0.01 * width).all()
    assert torch.allclose(states.mean(0), (low + high) / 2, atol=float(0.03 * width.max()))
    if env_id == "Acrobot-v1":  # AcrobotEnv.reset stores float32 states
        assert torch.equal(states, states.float().double())


def test_a_seed_replays_its_episodes_and_other_seeds_differ():
    def rollout(seed):
        envs = TensorVectorEnv("CartPole-v1", 16)
        observations = [envs.reset(seed=seed)[0]]
        for t in range(100):
            observations.append(envs.step(torch.full((16,), t % 2))[0])
        return torch.stack(observations)

    assert torch.equal(rollout(1), rollout(1))
    assert not torch.equal(rollout(1), rollout(2))
    first = [TensorVectorEnv("CartPole-v1", 4).reset()[0] for _ in range(2)]  # unseeded: random, like gymnasium
    assert not torch.equal(*first)


def test_time_limit_defaults_to_gymnasiums_registration():
    for env_id in TENSOR_ENVS:
        assert TensorVectorEnv(env_id, 1).max_episode_steps == gym.spec(env_id).max_episode_steps


# ---------------------------------------------------------------------------------------------------------
# float32: the same statistics
# ---------------------------------------------------------------------------------------------------------
def mean_and_error(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def assert_same_mean(sample, reference, what: str, z: float = 4.5):
    (m1, e1), (m2, e2) = mean_and_error(sample), mean_and_error(reference)
    assert abs(m1 - m2) < z * math.hypot(e1, e2), f"{what}: {m1:.3f} +- {e1:.3f} vs {m2:.3f} +- {e2:.3f}"


def torch_episode_returns(envs: TensorVectorEnv, steps: int, policy, seed: int) -> list[float]:
    obs, _ = envs.reset(seed=seed)
    generator = torch.Generator().manual_seed(seed)
    rewards, terminated, truncated = [], [], []
    for _ in range(steps):
        obs, reward, term, trunc, _ = envs.step(policy(obs, generator))
        rewards.append(reward)
        terminated.append(term)
        truncated.append(trunc)
    return completed_episode_returns(torch.stack(rewards), torch.stack(terminated), torch.stack(truncated))


def test_float32_cartpole_episode_lengths_match_gymnasiums():
    """Random actions: the mean episode length (= return) of the float32 batch is gymnasium's, within the
    sampling error of ~9,000 episodes on each side."""
    random_push = lambda obs, g: torch.randint(0, 2, (len(obs),), generator=g)  # noqa: E731
    ours = torch_episode_returns(TensorVectorEnv("CartPole-v1", 512, dtype=torch.float32), 400, random_push, seed=0)
    envs = CartPoleVectorEnv(num_envs=512)
    envs.reset(seed=0)
    rng, records = np.random.default_rng(0), []
    for _ in range(400):
        _, reward, term, trunc, _ = envs.step(rng.integers(0, 2, 512))
        records.append((reward, term, trunc))
    theirs = completed_episode_returns(*(torch.as_tensor(np.stack(column)) for column in zip(*records)))
    assert len(ours) > 5000 and len(theirs) > 5000
    assert_same_mean(ours, theirs, "CartPole mean episode length, float32 torch vs gymnasium")


@pytest.mark.parametrize("env_id", ["Acrobot-v1", "Pendulum-v1"])
def test_float32_returns_match_float64s(env_id):
    """Mean episode return under a fixed policy, float32 vs float64 (float64 is gymnasium's, bit for bit, by
    the tests above), independent seeds."""
    if env_id == "Acrobot-v1":
        policy = lambda obs, g: torch.where(obs[:, 5] > 0, 2, 0)  # noqa: E731  swings up in ~100 steps
        num_envs, steps = 256, 700
    else:
        policy = lambda obs, g: torch.rand((len(obs), 1), generator=g) * 4 - 2  # noqa: E731
        num_envs, steps = 256, 600
    returns = {dtype: torch_episode_returns(TensorVectorEnv(env_id, num_envs, dtype=dtype), steps, policy, seed)
               for dtype, seed in ((torch.float32, 1), (torch.float64, 2))}
    assert min(len(r) for r in returns.values()) > 400
    assert_same_mean(returns[torch.float32], returns[torch.float64], f"{env_id} mean return, float32 vs float64")


def test_float32_cartpole_follows_float64_until_rounding_grows():
    """From the same start states with the same actions, float32 states stay within float32 rounding of the
    float64 ones for the first steps (then the chaotic parts drift, as any float32 simulation would)."""
    start = torch.as_tensor(np.random.default_rng(0).uniform(-0.05, 0.05, (64, 4)))
    runs = {dtype: TensorVectorEnv("CartPole-v1", 64, dtype=dtype) for dtype in (torch.float32, torch.float64)}
    for envs in runs.values():
        envs.reset(options={"state": start})
    for t in range(20):
        actions = torch.full((64,), t % 2)
        (_, _, term32, _, _), (_, _, term64, _, _) = (envs.step(actions) for envs in runs.values())
        assert torch.equal(term32, term64)
        assert torch.allclose(runs[torch.float32].state.double(), runs[torch.float64].state, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------
# no host synchronisation in step()
# ---------------------------------------------------------------------------------------------------------
# ops that read a tensor's values on the host (.item(), bool(t), `if t:`) or whose output shape depends on them
HOST_READS = {"_local_scalar_dense", "nonzero", "masked_select", "is_nonzero", "equal", "unique", "item"}


class HostReads(TorchDispatchMode):
    """Records every aten op of HOST_READS called inside it."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in HOST_READS or (name == "index" and any(getattr(i, "dtype", None) == torch.bool
                                                          for i in args[1] if i is not None)):
            self.found.append(name)
        return func(*args, **(kwargs or {}))


def test_the_host_read_detector_sees_item_branches_and_boolean_masks():
    x = torch.arange(6.0)
    with HostReads() as reads:
        x.sum().item()
        _ = x[x > 2]
        if (x > 4).any():
            pass
    assert set(reads.found) >= {"_local_scalar_dense", "index"}, reads.found


@pytest.mark.parametrize("env_id", list(TENSOR_ENVS))
def test_step_reads_no_tensor_value_on_the_host(env_id):
    """float32 on CPU runs the code a GPU runs (no numpy path): stepping through autoresets reads nothing back.
    The one allowed exception is the discrete action check, torch._assert_async (asynchronous on a device)."""
    envs = TensorVectorEnv(env_id, 32, dtype=torch.float32, max_episode_steps=5)
    envs.reset(seed=0)
    actions = torch.zeros(32, dtype=torch.int64) if TENSOR_ENVS[env_id].discrete_actions else torch.zeros(32, 1)
    with HostReads() as reads:
        for _ in range(12):
            envs.step(actions)
    assert reads.found == [], f"{env_id}.step reads tensor values on the host: {sorted(set(reads.found))}"


# ---------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("num_envs", [0, -3, 2.0, True, "8"])
def test_num_envs_below_one_or_not_an_int_is_refused(num_envs):
    with pytest.raises(ValueError, match=r"num_envs must be an integer >= 1 .* got"):
        TensorVectorEnv("CartPole-v1", num_envs)


@pytest.mark.parametrize("env_id, actions, error, message", [
    ("CartPole-v1", torch.zeros(4, 1, dtype=torch.int64), ValueError, r"\[4\] integer tensor.*got shape \[4, 1\]"),
    ("CartPole-v1", torch.zeros(3, dtype=torch.int64), ValueError, r"got shape \[3\]"),
    ("CartPole-v1", torch.zeros(4), TypeError, r"integer tensor.*got dtype torch.float32"),
    ("Acrobot-v1", torch.zeros(4, dtype=torch.bool), TypeError, r"got dtype torch.bool"),
    ("Acrobot-v1", np.zeros(4, dtype=np.int64), TypeError, r"got ndarray \(torch.as_tensor"),
    ("Pendulum-v1", torch.zeros(4), ValueError, r"\[4, 1\] float tensor.*got shape \[4\]"),
    ("Pendulum-v1", torch.zeros(4, 1, dtype=torch.int64), TypeError, r"float tensor.*got dtype torch.int64"),
    ("CartPole-v1", torch.zeros(4, dtype=torch.int64, device="meta"), ValueError, r"actions are on meta.*on cpu"),
    ("CartPole-v1", torch.tensor([0, 1, 2, 0]), RuntimeError, r"CartPole-v1 actions must be in 0..1"),
    ("Acrobot-v1", torch.tensor([0, -1, 2, 0]), RuntimeError, r"Acrobot-v1 actions must be in 0..2"),
])
def test_bad_actions_are_refused_with_what_was_expected(env_id, actions, error, message):
    envs = TensorVectorEnv(env_id, 4)
    envs.reset(seed=0)
    with pytest.raises(error, match=message):
        envs.step(actions)


def test_other_misuse_is_refused_clearly():
    with pytest.raises(ValueError, match=r"no torch vector environment for 'MountainCar-v0': there are CartPole-v1"):
        TensorVectorEnv("MountainCar-v0", 4)
    with pytest.raises(ValueError, match="dtype must be torch.float64 or torch.float32"):
        TensorVectorEnv("CartPole-v1", 4, dtype=torch.float16)
    with pytest.raises(ValueError, match="max_episode_steps must be an integer >= 1"):
        TensorVectorEnv("CartPole-v1", 4, max_episode_steps=0)
    envs = TensorVectorEnv("CartPole-v1", 4)
    with pytest.raises(RuntimeError, match=r"step\(\) before reset\(\)"):
        envs.step(torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['low'\]"):
        envs.reset(options={"low": -0.1})
    with pytest.raises(ValueError, match=r"options\['state'\] must be a float tensor of shape \[4, 4\]"):
        envs.reset(options={"state": torch.zeros(4, 2)})


def test_acrobot_wraps_angles_turn_by_turn_as_gymnasium():
    from gymnasium.envs.classic_control.acrobot import wrap

    # up to ACROBOT_WRAP_ITERATIONS turns by construction; up to 5 (a step's worst, measured) with torch.remainder
    x = np.random.default_rng(0).uniform(-11 * np.pi, 11 * np.pi, 40_000)
    x[:4] = [np.pi, -np.pi, np.nextafter(np.pi, 4), np.nextafter(-np.pi, -4)]  # the edges
    wrapped = tensor_dynamics.acrobot_wrap_angle(torch.from_numpy(x)).numpy()
    assert np.array_equal(wrapped, [wrap(value, -np.pi, np.pi) for value in x])  # bit for bit
    far = torch.tensor([40 * np.pi + 1.0, -50.5 * np.pi], dtype=torch.float64)  # far beyond: torch.remainder
    expected = torch.tensor([1.0, -0.5 * np.pi], dtype=torch.float64)
    assert torch.allclose(tensor_dynamics.acrobot_wrap_angle(far), expected, atol=1e-12)


def test_libm_helpers_are_numpys_functions_on_cpu_float64():
    """The three places where torch's own functions give other bits than gymnasium's numpy (see tensor_dynamics)."""
    x = np.random.default_rng(0).uniform(-30, 30, 100_000)
    t = torch.from_numpy(x)
    assert np.array_equal(tensor_dynamics.sin(t).numpy(), np.sin(x))
    assert np.array_equal(tensor_dynamics.cos(t).numpy(), np.cos(x))
    assert np.array_equal(tensor_dynamics.pow2(t[:2000]).numpy(), [value**2 for value in x[:2000]])  # scalar pow
    # ... and they are needed: torch's differ somewhere (if this fails, torch now matches and they can go)
    assert not (np.array_equal(torch.sin(t).numpy(), np.sin(x)) and np.array_equal(torch.cos(t).numpy(), np.cos(x)))
    assert not np.array_equal((t[:2000] * t[:2000]).numpy(), [value**2 for value in x[:2000]])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_observations_are_copies_the_caller_may_change(dtype):
    """A normalisation done in place on the observations must not move the cart (float32 CartPole's observation
    is its state's dtype: it would alias the state without a copy)."""
    envs, reference = TensorVectorEnv("CartPole-v1", 4, dtype=dtype), TensorVectorEnv("CartPole-v1", 4, dtype=dtype)
    obs, _ = envs.reset(seed=0)
    reference.reset(seed=0)
    obs.mul_(100.0)
    for _ in range(3):
        obs, *_ = envs.step(torch.ones(4, dtype=torch.int64))
        obs.zero_()
        reference.step(torch.ones(4, dtype=torch.int64))
    assert torch.equal(envs.state, reference.state)


# ---------------------------------------------------------------------------------------------------------
# the speed measurement (python -m pgcourse.bench.env_speed): its plumbing, not its numbers
# ---------------------------------------------------------------------------------------------------------
def test_env_speed_measures_every_implementation_and_reports_them():
    import json

    from pgcourse.bench import env_speed

    rows = env_speed.measure_env_speed(num_envs=(2, 80), seconds=0.01, repeats=1)
    assert [(row.implementation, row.num_envs) for row in rows] == (
        [(name, 2) for name in env_speed.IMPLEMENTATIONS]
        + [(name, 80) for name in env_speed.IMPLEMENTATIONS if name != "gymnasium SyncVectorEnv"])  # > SYNC_MAX_ENVS
    assert all(row.steps >= 16 and row.seconds >= 0.01 and row.env_steps_per_second > 0 for row in rows)
    table = env_speed.speed_table(rows).splitlines()
    assert len(table) == 2 + len(rows) and table[2].split()[-1] != "—"  # a ratio to CartPoleVectorEnv
    section = env_speed.env_speed_section(num_envs=(2,), seconds=0.01, repeats=1)(lambda line: None)
    assert "steps per second" in section.title and len(json.loads(json.dumps(section.data))["rows"]) == len(
        env_speed.IMPLEMENTATIONS)
    with pytest.raises(ValueError, match="unknown implementation"):
        env_speed.measure_env_speed(implementations=["jax"])


# ---------------------------------------------------------------------------------------------------------
# on a GPU: the fake one of tests/fake_cuda.py (CPU numbers, CUDA's device rules). No GPU was lent to this work.
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", list(TENSOR_ENVS))
def test_runs_on_a_cuda_device_in_float32_and_refuses_cpu_actions(env_id):
    from fake_cuda import fake_cuda, on_fake_cuda, unusable_reason

    if unusable_reason() is not None:
        pytest.skip(str(unusable_reason()))
    discrete = TENSOR_ENVS[env_id].discrete_actions is not None
    cpu = TensorVectorEnv(env_id, 8, dtype=torch.float32, max_episode_steps=7)
    start, _ = cpu.reset(seed=0)
    start_state = cpu.state.clone()
    with fake_cuda():
        envs = TensorVectorEnv(env_id, 8, device="cuda", max_episode_steps=7)
        assert envs.dtype == torch.float32  # the default off the CPU
        obs, _ = envs.reset(seed=0, options={"state": start_state.to("cuda")})
        for t in range(20):
            actions = torch.full((8,), t % 2) if discrete else torch.full((8, 1), 0.5)
            out = envs.step(actions.to("cuda"))
            expected = cpu.step(actions)
            assert all(on_fake_cuda(x) for x in out[:4]) and out[0].dtype == torch.float32
            if t < 7:  # until the first autoreset, whose start states come from the CUDA generator
                for x, y in zip(out[:4], expected[:4]):
                    assert torch.equal(x.cpu(), y)
        with pytest.raises(ValueError, match=r"actions are on cpu, the environments on cuda"):
            envs.step(actions)


# -- start states drawn ahead, and blocks of sub-environments with streams of their own (issue 44) -----------------
def _play(envs, steps, reserve_every=None, seed=0):
    """Observations, rewards and flags of ``steps`` steps under a fixed action sequence; with ``reserve_every``, the
    start states are drawn ahead that many steps at a time (as the trainer does once per rollout)."""
    generator = torch.Generator().manual_seed(99)
    out = []
    for t in range(steps):
        if reserve_every and t % reserve_every == 0:
            envs.reserve_start_states(reserve_every)
        if envs.spec.discrete_actions:
            actions = torch.randint(envs.spec.discrete_actions, (envs.num_envs,), generator=generator)
        else:
            actions = torch.rand((envs.num_envs, 1), generator=generator, dtype=torch.float32) * 4 - 2
        out.append(envs.step(actions)[:4])
    return out


@pytest.mark.parametrize("env_id", list(TENSOR_ENVS))
def test_start_states_drawn_ahead_are_the_ones_each_step_would_draw(env_id):
    """The trainer draws a rollout's start states in one call (4 kernels a rollout, not a step): the episodes, and
    the generator's state after, are those of drawing step by step (short time limits: many autoresets)."""
    stepwise, ahead = (TensorVectorEnv(env_id, 16, max_episode_steps=7) for _ in range(2))
    stepwise.reset(seed=4)
    ahead.reset(seed=4)
    for one, other in zip(_play(stepwise, 60), _play(ahead, 60, reserve_every=12), strict=True):
        assert all(torch.equal(a, b) for a, b in zip(one, other))
    assert torch.equal(stepwise.generator.get_state(), ahead.generator.get_state())


def test_a_block_of_a_streamed_env_is_the_env_of_its_seed_alone():
    """streams=A: block a's episodes are those of an env of N/A seeded s_a, whatever the other blocks' seeds."""
    shared = TensorVectorEnv("CartPole-v1", 12, max_episode_steps=9, streams=3)
    shared.reset(seed=[5, 6, 7])
    alone = TensorVectorEnv("CartPole-v1", 4, max_episode_steps=9)
    alone.reset(seed=6)
    generator = torch.Generator().manual_seed(0)
    for t in range(40):
        if t % 10 == 0:
            shared.reserve_start_states(10)
        actions = torch.randint(2, (12,), generator=generator)
        ours, theirs = shared.step(actions)[:4], alone.step(actions[4:8])[:4]
        assert all(torch.equal(a[4:8], b) for a, b in zip(ours, theirs)), t
    with pytest.raises(ValueError, match="streams must be an integer >= 1 that divides num_envs=12"):
        TensorVectorEnv("CartPole-v1", 12, streams=5)
    with pytest.raises(ValueError, match="expected 3 seed"):
        shared.reset(seed=1)


@pytest.mark.parametrize("used_up", [True, False])
def test_a_pickled_env_leaves_out_only_start_states_it_has_used_up(used_up):
    """A run's checkpoint pickles its env between rollouts, when the start states drawn ahead are all used: those
    are left out (at 262,144 CartPole envs on a GPU they were 134 MB of a 146 MB checkpoint, copied to the host
    at the end of every run), and the copy steps on exactly as the original, reserving its next rollout's states
    as it would. Mid-rollout (some reserved states unused) they are kept, and the copy still steps on exactly."""
    import pickle
    envs = TensorVectorEnv("CartPole-v1", 64, max_episode_steps=5)
    envs.reset(seed=3)
    envs.reserve_start_states(8)
    _play(envs, 8 if used_up else 3)
    data = pickle.dumps(envs)
    reserve_bytes = 8 * 64 * envs.spec.state_dim * envs.dtype.itemsize
    assert (len(data) < reserve_bytes) == used_up, (len(data), reserve_bytes)
    copy = pickle.loads(data)
    for one in (envs, copy):
        if used_up:
            one.reserve_start_states(8)
    for ours, theirs in zip(_play(envs, 8), _play(copy, 8), strict=True):
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    assert torch.equal(envs.generator.get_state(), copy.generator.get_state())
