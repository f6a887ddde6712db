"""The speed-ups behind ``pgcourse bench`` change no number: each fast path against the plain one it replaces.

- CartPole on gymnasium's numpy-vectorised env (``SeededCartPoleVectorEnv``) plays exactly the episodes of a
  ``SyncVectorEnv`` of ``CartPoleEnv`` (observations, rewards, flags, resets, time limits), and a whole
  training run on it equals the run on the ``SyncVectorEnv``;
- ``pg.evaluate`` (all episodes at once, one batched forward per step) returns, episode for episode, what
  playing each seeded episode alone returns;
- ``LeanAdam`` moves the parameters exactly as ``torch.optim.Adam``; ``sample_categorical`` draws exactly what
  ``torch.distributions.Categorical`` draws; the gradient norm the trainer logs is ``diagnostics.grad_norm``'s.

No timing here: speed is measured by ``pgcourse bench``.
"""
from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

import pgcourse as pg
from conftest import SHORT_CARTPOLE, TINY_PPO_DISCRETE, assert_history_close, assert_history_equal
from pgcourse.rl import diagnostics
from pgcourse.rl.algorithms import trainer as trainer_module
from pgcourse.rl.algorithms.optim import LeanAdam, flat_members
from pgcourse.rl.algorithms.trainer import Trainer
from pgcourse.rl.envs import (SeededCartPoleVectorEnv, fast_vectorization, make_raw_vector_env, make_vector_env,
                              play_episode)
from pgcourse.rl.networks import CategoricalPolicy, GaussianPolicy, ValueNet, sample_categorical


# -- CartPole, vectorised by numpy ---------------------------------------------------------------------
@pytest.mark.parametrize("env_id, num_envs, seed, steps", [
    ("CartPole-v1", 8, 0, 3000), ("CartPole-v1", 20, 10_000, 1500), (SHORT_CARTPOLE, 3, 5, 600)])
def test_vectorised_cartpole_plays_the_sync_env_episodes(env_id, num_envs, seed, steps):
    fast = make_raw_vector_env(env_id, num_envs, vectorization="auto")
    sync = make_raw_vector_env(env_id, num_envs)  # the default: a SyncVectorEnv
    assert isinstance(fast, SeededCartPoleVectorEnv) and isinstance(sync, gym.vector.SyncVectorEnv)
    try:
        np.testing.assert_array_equal(fast.reset(seed=seed)[0], sync.reset(seed=seed)[0])
        rng = np.random.default_rng(seed)
        ends = truncations = 0
        for t in range(steps):
            if t == steps // 3:  # a reset without a seed continues each sub-env's generator
                np.testing.assert_array_equal(fast.reset()[0], sync.reset()[0])
            if t == steps // 2:  # reset bounds apply to that reset only, as CartPoleEnv.reset(options=...)
                options = {"low": -0.2, "high": 0.2}
                np.testing.assert_array_equal(fast.reset(seed=seed + 1, options=options)[0],
                                              sync.reset(seed=seed + 1, options=options)[0])
            actions = rng.integers(0, 2, size=num_envs)
            fast_step, sync_step = fast.step(actions), sync.step(actions)
            for x, y in zip(fast_step[:4], sync_step[:4]):
                assert x.dtype == y.dtype
                np.testing.assert_array_equal(x, y, err_msg=f"step {t}")
            ends += int((fast_step[2] | fast_step[3]).sum())
            truncations += int(fast_step[3].sum())
        assert ends >= 20  # many autoresets compared
        assert truncations > 0 or env_id == "CartPole-v1"  # the short time limit truncates
    finally:
        fast.close()
        sync.close()


def test_vectorised_cartpole_only_where_it_is_the_same_env():
    assert fast_vectorization("CartPole-v1") and fast_vectorization(SHORT_CARTPOLE)
    assert not fast_vectorization("CartPole-v1", render_mode="rgb_array")
    assert not fast_vectorization("Pendulum-v1") and not fast_vectorization("NoSuchEnv-v0")
    if "pgcourse_test/CartPoleSutton-v0" not in gym.registry:
        gym.register(id="pgcourse_test/CartPoleSutton-v0", max_episode_steps=50,
                     entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
                     kwargs={"sutton_barto_reward": True})
    assert not fast_vectorization("pgcourse_test/CartPoleSutton-v0")  # other arguments: the plain env
    envs = make_vector_env("Pendulum-v1", 2, vectorization="auto")
    try:
        assert isinstance(envs.unwrapped, gym.vector.SyncVectorEnv)
    finally:
        envs.close()
    with pytest.raises(ValueError, match="vectorization"):
        make_raw_vector_env("CartPole-v1", 2, vectorization="fast")


def test_training_runs_cartpole_on_the_vectorised_env():
    from pgcourse.rl.config import make_config

    trainer = Trainer(make_config("ppo", "CartPole-v1", "discrete", device="cpu", progress=False))
    try:
        assert isinstance(trainer.envs.unwrapped, SeededCartPoleVectorEnv)
    finally:
        trainer.envs.close()


@pytest.mark.parametrize("algo, budget", [
    ("ppo", dict(TINY_PPO_DISCRETE, total_steps=1024)), ("a2c", dict(total_steps=1024, num_envs=4, n_steps=16)),
    ("reinforce", dict(max_episodes=8, num_envs=4))])
def test_training_on_the_vectorised_env_is_the_same_run(monkeypatch, algo, budget):
    fast = pg.train(algo, "CartPole-v1", seed=3, device="cpu", progress=False, eval_every=512, eval_episodes=3,
                    **budget)

    def sync_env(env_id, num_envs, **kwargs):  # what the trainer built before: the default SyncVectorEnv
        return make_vector_env(env_id, num_envs, **{**kwargs, "vectorization": "sync"})

    monkeypatch.setattr(trainer_module, "make_vector_env", sync_env)
    sync = pg.train(algo, "CartPole-v1", seed=3, device="cpu", progress=False, eval_every=512, eval_episodes=3,
                    **budget)
    assert len(sync.history.episodes) > 5
    # The same environment steps (episodes equal), and the same learning up to rounding: the two envs hand the
    # networks equal observations in other arrays, and whether the matrix products then round alike is a fact of the
    # CPU (bit for bit on the machine that wrote this test, not on an AMX Xeon), not of the env.
    assert_history_close(fast.history, sync.history, ignore=("wall_time",))
    for a, b in zip(fast.policy.parameters(), sync.policy.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# -- evaluation: all episodes at once --------------------------------------------------------------------
@pytest.fixture(scope="module")
def cartpole_run():
    return pg.train("ppo", "CartPole-v1", seed=1, device="cpu", progress=False, total_steps=3000)


@pytest.mark.parametrize("vectorization", ["auto", "sync"])
def test_evaluation_equals_playing_each_seeded_episode_alone(cartpole_run, vectorization):
    result = pg.evaluate(cartpole_run, episodes=20, seed=10_000, vectorization=vectorization)
    env = gym.make("CartPole-v1")
    try:
        alone = [play_episode(env, lambda obs: int(cartpole_run.act(obs[None], deterministic=True)[0]), 10_000 + i)[0]
                 for i in range(20)]
    finally:
        env.close()
    np.testing.assert_array_equal(result.returns, alone)
    assert len(set(alone)) > 1  # the seeds really give different episodes
    # in batches of at most max_parallel: the same episodes
    np.testing.assert_array_equal(pg.evaluate(cartpole_run, episodes=20, seed=10_000, max_parallel=7).returns, alone)


# -- the update's pieces ----------------------------------------------------------------------------------
def _adam_twins(module: torch.nn.Module, steps: int, sometimes_without_grad: bool = False) -> None:
    """Train two copies of ``module``, one with torch's Adam, one with LeanAdam: the same parameters every step."""
    nets = {"torch": copy.deepcopy(module), "lean": copy.deepcopy(module)}
    optimizers = {"torch": torch.optim.Adam(nets["torch"].parameters(), lr=1e-3, eps=1e-5),
                  "lean": LeanAdam(nets["lean"].parameters(), lr=1e-3, eps=1e-5)}
    in_dim = next(module.parameters()).shape[-1] if not hasattr(module, "net") else module.net[0].in_features
    for step in range(steps):
        x = torch.randn(32, in_dim)
        for key, net in nets.items():
            optimizers[key].zero_grad()
            out = net(x)
            loss = out.pow(2).mean() * (1 + step % 7)
            if hasattr(net, "log_std"):
                loss = loss + (net.log_std * out.mean()).sum()
            loss.backward()
            if sometimes_without_grad and step % 3 == 0:
                list(net.parameters())[-1].grad = None  # no gradient: no step for it (its count falls behind)
            optimizers[key].param_groups[0]["lr"] = 1e-3 * (1 - step / steps)  # annealed, as the trainer does
            optimizers[key].step()
        for a, b in zip(nets["torch"].parameters(), nets["lean"].parameters()):
            assert torch.equal(a, b), f"step {step}"


@pytest.mark.parametrize("make", [
    lambda: CategoricalPolicy(4, 2), lambda: ValueNet(4), lambda: GaussianPolicy(3, 1),
    lambda: CategoricalPolicy(4, 3, hidden_sizes=(64, 37)),  # some sizes no multiple of 64: flat and per-tensor
    lambda: torch.nn.Linear(200, 200),  # too big for the flat buffer with its tail... 40,000 > FLAT_MAX
], ids=["categorical", "value", "gaussian", "odd-sizes", "big"])
def test_lean_adam_moves_parameters_exactly_as_torch_adam(make):
    torch.manual_seed(0)
    _adam_twins(make(), 150)


def test_lean_adam_without_some_gradients_still_matches_torch():
    torch.manual_seed(1)
    _adam_twins(CategoricalPolicy(4, 2), 60, sometimes_without_grad=True)


def test_flat_buffer_members():
    sizes = lambda params: [p.numel() for p in params]  # noqa: E731
    assert sizes(flat_members(list(CategoricalPolicy(4, 2).parameters()))) == [256, 64, 4096, 64, 128, 2]
    assert sizes(flat_members(list(GaussianPolicy(3, 1).parameters()))) == [192, 64, 4096, 64, 64, 1]
    assert sizes(flat_members(list(CategoricalPolicy(4, 3, hidden_sizes=(64, 37)).parameters()))) == [256, 64, 2368, 3]
    assert flat_members(list(CategoricalPolicy(4, 3, hidden_sizes=(100, 37)).parameters())) == []
    assert flat_members(list(torch.nn.Linear(200, 200).parameters())) == []


def test_sample_categorical_draws_what_torch_categorical_draws():
    for shape, scale in [((8, 2), 1.0), ((256, 5), 3.0), ((3, 1), 1.0), ((20, 2), 30.0)]:
        logits = torch.randn(*shape) * scale
        torch.manual_seed(5)
        expected, after_expected = torch.distributions.Categorical(logits=logits).sample(), torch.rand(3)
        torch.manual_seed(5)
        drawn, after_drawn = sample_categorical(logits), torch.rand(3)
        assert torch.equal(drawn, expected) and drawn.dtype == expected.dtype
        assert torch.equal(after_drawn, after_expected)  # the same draws from torch's generator


def test_logged_gradient_norm_is_the_norm_before_clipping():
    torch.manual_seed(0)
    policy = CategoricalPolicy(4, 2)
    loss = policy(torch.randn(64, 4)).pow(2).sum() * 100  # a big gradient: clipping is active
    loss.backward()
    parameters = list(policy.parameters())
    expected_norm = diagnostics.grad_norm(parameters)
    twins = [torch.nn.Parameter(p.detach().clone()) for p in parameters]
    for twin, p in zip(twins, parameters):
        twin.grad = p.grad.clone()
    torch.nn.utils.clip_grad_norm_(twins, 0.5)  # what torch's clip makes of the same gradients
    clipped = [twin.grad for twin in twins]

    optimizer = LeanAdam(parameters, lr=1e-3)
    optimizer.step = lambda: None  # look, do not move
    norm = Trainer.clip_and_step(optimizer, parameters, 0.5)
    assert norm == expected_norm > 0.5
    for p, expected in zip(parameters, clipped):
        assert torch.equal(p.grad, expected)
