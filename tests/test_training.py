"""Training loops end to end on tiny budgets: determinism, NaN guard, pluggable components, history,
learning-rate annealing, KL early stop, evaluations and stopping when solved."""
from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pytest
import torch

import pgcourse as pg
from conftest import TINY_A2C, TINY_PPO_CONTINUOUS, TINY_PPO_DISCRETE, assert_history_equal
from pgcourse.rl.algorithms import Trainer
from pgcourse.rl.config import make_config
from pgcourse.rl.history import EPISODE_FIELDS, EVAL_FIELDS, UPDATE_FIELDS
from pgcourse.rl.returns import compute_gae as reference_compute_gae

CASES = {
    "ppo-cartpole": ("ppo", "CartPole-v1", TINY_PPO_DISCRETE),
    "a2c-cartpole": ("a2c", "CartPole-v1", TINY_A2C),
    "reinforce_baseline-cartpole": ("reinforce_baseline", "CartPole-v1", dict(max_episodes=8, num_envs=4)),
    "reinforce-cartpole": ("reinforce", "CartPole-v1", dict(max_episodes=8, num_envs=4)),
    "ppo-pendulum": ("ppo", "Pendulum-v1", TINY_PPO_CONTINUOUS),
    "a2c-pendulum": ("a2c", "Pendulum-v1", dict(TINY_A2C, num_envs=2, total_steps=512)),
}


def tiny_train(case: str, seed: int = 0, **overrides) -> pg.Run:
    algo, env_id, budget = CASES[case]
    return pg.train(algo, env_id, seed=seed, device="cpu", progress=False, **{**budget, **overrides})


@functools.lru_cache(maxsize=None)
def shared_run(case: str, seed: int = 3) -> pg.Run:
    """A run with the case's defaults, trained once per session and shared by tests that only read it."""
    return tiny_train(case, seed=seed)


def parameters_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def all_finite(module: torch.nn.Module) -> bool:
    return all(torch.isfinite(p).all() for p in module.parameters())


# ---------------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["ppo-cartpole", "a2c-cartpole", "reinforce_baseline-cartpole", "ppo-pendulum"])
def test_same_seed_same_run(case):
    first, second = shared_run(case), tiny_train(case, seed=3)
    assert len(first.history.updates) >= 2 and len(first.history.episodes) >= 2
    assert_history_equal(first.history, second.history, ignore=("wall_time",))
    assert parameters_equal(first.policy, second.policy)
    if first.value_net is not None:
        assert parameters_equal(first.value_net, second.value_net)


@pytest.mark.parametrize("case", ["ppo-cartpole", "a2c-cartpole", "reinforce_baseline-cartpole", "ppo-pendulum"])
def test_different_seed_different_run(case):
    first, other = shared_run(case), tiny_train(case, seed=4)
    assert not parameters_equal(first.policy, other.policy)
    same_returns = (len(first.history.episodes) == len(other.history.episodes)
                    and np.array_equal(first.history.episodes["return"], other.history.episodes["return"]))
    same_losses = np.array_equal(first.history.updates["policy_loss"], other.history.updates["policy_loss"])
    assert not (same_returns and same_losses)


# ---------------------------------------------------------------------------------------------
# NaN guard
# ---------------------------------------------------------------------------------------------
def nan_value_loss(values, returns, *args, **kwargs):
    return (values * float("nan")).mean()


@pytest.mark.parametrize("case", ["ppo-cartpole", "a2c-cartpole", "reinforce_baseline-cartpole", "ppo-pendulum"])
def test_nan_loss_stops_with_warning_and_finite_weights(case):
    with pytest.warns(RuntimeWarning, match="value_loss became non-finite"):
        run = tiny_train(case, value_loss=nan_value_loss)
    assert run.history.status.startswith("stopped")
    assert "value_loss" in run.history.status
    assert all_finite(run.policy) and all_finite(run.value_net)
    # the bad update is not recorded; with the very first update bad, the initial weights are kept
    assert len(run.history.updates) == 0
    algo, env_id, budget = CASES[case]
    config = make_config(algo, env_id, "continuous" if env_id == "Pendulum-v1" else "discrete",
                         seed=0, device="cpu", progress=False, **budget)
    initial = Trainer(config)
    initial.envs.close()
    assert parameters_equal(run.policy, initial.policy)
    assert parameters_equal(run.value_net, initial.value_net)


def test_nan_guard_keeps_the_last_good_update():
    """NaN from the 3rd critic update on: the run holds exactly the weights after update 2 (compared
    with a clean run of the same seed whose budget ends after 2 updates)."""
    calls = {"n": 0}

    def value_loss_nan_from_third(values, returns, *args, **kwargs):
        calls["n"] += 1
        loss = pg.value_loss(values, returns, *args, **kwargs)
        return loss * float("nan") if calls["n"] >= 3 else loss

    overrides = dict(anneal_lr=False)
    with pytest.warns(RuntimeWarning, match="update 3"):
        broken = tiny_train("a2c-cartpole", value_loss=value_loss_nan_from_third, **overrides)
    assert broken.history.status.startswith("stopped")
    assert len(broken.history.updates) == 2
    budget = int(broken.history.updates["env_step"][-1])
    clean = tiny_train("a2c-cartpole", total_steps=budget, **overrides)
    assert len(clean.history.updates) == 2
    assert parameters_equal(broken.policy, clean.policy)
    assert parameters_equal(broken.value_net, clean.value_net)
    np.testing.assert_array_equal(clean.history.updates["value_loss"], broken.history.updates["value_loss"])


def test_nan_in_policy_loss_also_caught():
    def nan_surrogate(new_log_probs, old_log_probs, advantages, clip_eps):
        return (new_log_probs * float("nan")).mean()

    with pytest.warns(RuntimeWarning, match="policy_loss"):
        run = tiny_train("ppo-cartpole", clipped_surrogate_loss=nan_surrogate)
    assert run.history.status.startswith("stopped")
    assert all_finite(run.policy)


@pytest.mark.parametrize("case", ["ppo-cartpole", "a2c-cartpole"])
def test_nan_loss_raise_mode(case):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # raise mode must not merely warn
        with pytest.raises(pg.NonFiniteError, match="value_loss"):
            tiny_train(case, value_loss=nan_value_loss, on_nonfinite="raise")
    assert issubclass(pg.NonFiniteError, FloatingPointError)


# ---------------------------------------------------------------------------------------------
# learner-supplied components drive real training
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["ppo-cartpole", "a2c-cartpole", "ppo-pendulum"])
def test_learner_compute_gae_is_called(case):
    calls = []

    def my_compute_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
        calls.append((tuple(rewards.shape), gamma, lam))
        return reference_compute_gae(rewards, values, next_values, terminated, truncated, gamma, lam)

    run = tiny_train(case, seed=3, compute_gae=my_compute_gae)
    assert len(calls) == len(run.history.updates) > 0
    config = run.config
    assert all(shape == (config.n_steps, config.num_envs) for shape, _, _ in calls)
    assert all(gamma == config.gamma and lam == config.gae_lambda for _, gamma, lam in calls)
    # delegating to the reference gives the reference run
    reference = shared_run(case)
    assert_history_equal(run.history, reference.history, ignore=("wall_time",))


def test_learner_compute_gae_changes_learning():
    def zero_advantages(rewards, values, next_values, terminated, truncated, gamma, lam):
        return torch.zeros_like(rewards)

    reference = shared_run("a2c-cartpole")
    broken = tiny_train("a2c-cartpole", seed=3, compute_gae=zero_advantages)
    assert not np.array_equal(reference.history.updates["value_loss"], broken.history.updates["value_loss"])


@pytest.mark.parametrize("case", ["reinforce-cartpole", "reinforce_baseline-cartpole"])
def test_learner_discounted_returns_is_called(case):
    calls = []

    def my_returns(rewards, gamma):
        calls.append(int(rewards.shape[0]))
        return pg.discounted_returns(rewards, gamma)

    run = tiny_train(case, discounted_returns=my_returns)
    # one call per episode trained on
    assert sum(calls) == int(run.history.episodes["length"].sum())
    assert len(calls) == len(run.history.episodes)


# ---------------------------------------------------------------------------------------------
# history
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(CASES))
def test_history_columns(case):
    run = shared_run(case)
    history = run.history
    assert history.status == "completed"
    assert tuple(history.episodes.fields) == EPISODE_FIELDS
    assert tuple(history.updates.fields) == UPDATE_FIELDS
    assert tuple(history.evals.fields) == EVAL_FIELDS
    n_episodes, n_updates = len(history.episodes), len(history.updates)
    assert n_episodes > 0 and n_updates > 0
    for name in EPISODE_FIELDS:
        assert history.episodes[name].shape == (n_episodes,)
        assert np.isfinite(history.episodes[name]).all(), name
    for name in UPDATE_FIELDS:
        assert history.updates[name].shape == (n_updates,)
    assert len(history.evals) == 0  # eval_every defaults to 0
    env_steps = history.episodes["env_step"]
    assert np.all(np.diff(env_steps) >= 0)
    assert np.all(np.diff(history.updates["env_step"]) > 0)
    assert np.all(np.diff(history.episodes["wall_time"]) >= 0)
    assert np.all(history.episodes["length"] >= 1)
    algo, env_id, _ = CASES[case]
    if env_id == "CartPole-v1":
        np.testing.assert_array_equal(history.episodes["return"], history.episodes["length"])
        assert np.isnan(history.updates["log_std_mean"]).all()
    else:
        assert np.isfinite(history.updates["log_std_mean"]).all()
        assert np.all(history.episodes["length"] == 200)  # Pendulum only truncates
    always = ["policy_loss", "entropy", "actor_grad_norm", "advantage_std", "lr", "epochs_run"]
    if algo != "reinforce":
        always += ["value_loss", "critic_grad_norm", "explained_variance", "critic_lr", "value_rel_error"]
    for name in always:
        assert np.isfinite(history.updates[name]).all(), name
    if algo == "ppo":
        assert np.isfinite(history.updates["approx_kl"]).all() and (history.updates["approx_kl"] >= 0).all()
        clip = history.updates["clip_fraction"]
        assert np.all((clip >= 0) & (clip <= 1))
    else:
        assert np.isnan(history.updates["approx_kl"]).all()
    if algo in ("reinforce", "reinforce_baseline"):
        assert len(history.episodes) == run.config.max_episodes


def test_a2c_counts_only_real_transitions():
    run = shared_run("a2c-cartpole")
    config = run.config
    steps = run.history.updates["env_step"]
    per_update = np.diff(np.concatenate([[0], steps]))
    # every update collects num_envs * n_steps vector steps, fewer are transitions (reset steps drop out)
    assert np.all(per_update <= config.num_envs * config.n_steps)
    assert per_update.sum() < len(steps) * config.num_envs * config.n_steps
    assert steps[-1] >= config.total_steps


# ---------------------------------------------------------------------------------------------
# learning-rate annealing, KL early stop
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["ppo-cartpole", "a2c-cartpole"])
def test_anneal_lr_decays_to_about_zero(case):
    run = tiny_train(case, anneal_lr=True, lr=1e-3, critic_lr=2e-3)
    config = run.config
    lr, critic_lr = run.history.updates["lr"], run.history.updates["critic_lr"]
    assert lr[0] == pytest.approx(1e-3)
    assert critic_lr[0] == pytest.approx(2e-3)
    assert np.all(np.diff(lr) < 0)
    # the last update starts less than one batch before the end of the budget
    last_fraction = config.num_envs * config.n_steps / config.total_steps
    assert lr[-1] <= 1e-3 * last_fraction + 1e-12
    assert critic_lr[-1] <= 2e-3 * last_fraction + 1e-12
    np.testing.assert_allclose(critic_lr / lr, 2.0)
    # lr follows 1 - env_step / total_steps with env_step counted before each update's rollout
    steps_before = np.concatenate([[0], run.history.updates["env_step"][:-1]])
    np.testing.assert_allclose(lr, 1e-3 * (1 - steps_before / config.total_steps), rtol=1e-9)


def test_without_anneal_lr_is_constant():
    run = tiny_train("ppo-cartpole", anneal_lr=False, lr=5e-4)
    np.testing.assert_array_equal(run.history.updates["lr"], 5e-4)


def test_target_kl_stops_epochs_early():
    run = tiny_train("ppo-cartpole", update_epochs=4, target_kl=1e-6, anneal_lr=False)
    epochs = run.history.updates["epochs_run"]
    assert np.all(epochs < 4) and np.all(epochs >= 1)
    plain = tiny_train("ppo-cartpole", update_epochs=4, anneal_lr=False)
    np.testing.assert_array_equal(plain.history.updates["epochs_run"], 4)


def test_reinforce_and_a2c_run_one_epoch():
    assert np.all(shared_run("a2c-cartpole").history.updates["epochs_run"] == 1)


# ---------------------------------------------------------------------------------------------
# evaluation during training, stopping when solved
# ---------------------------------------------------------------------------------------------
def test_eval_every_records_evaluations():
    run = tiny_train("ppo-cartpole", eval_every=128, eval_episodes=2)
    evals = run.history.evals
    last_step = run.history.updates["env_step"][-1]
    assert len(evals) == int(last_step // 128) >= 3
    assert np.all(np.diff(evals["env_step"]) > 0)
    assert np.all(evals["env_step"] >= 128)
    assert np.isfinite(evals["mean"]).all() and np.all(evals["std"] >= 0)
    assert np.all(evals["mean"] >= 1)
    assert run.history.solved_at is None  # CartPole's threshold (475) is out of reach here


def test_stop_when_solved_stops_early():
    run = tiny_train("ppo-cartpole", total_steps=5000, eval_every=200, eval_episodes=2, solve_threshold=5.0,
                     stop_when_solved=True)
    history = run.history
    assert history.status == "solved"
    assert len(history.evals) == 1
    assert history.solved_at is not None
    assert history.solved_at["env_step"] == history.evals["env_step"][0]
    assert history.solved_at["mean"] >= 5.0
    assert history.updates["env_step"][-1] < 5000
    assert history.solved_at["episodes"] == len(history.episodes)


def test_solved_without_stopping_keeps_training():
    run = tiny_train("ppo-cartpole", eval_every=300, eval_episodes=2, solve_threshold=5.0)
    assert run.history.status == "completed"
    assert run.history.solved_at is not None
    assert run.history.solved_at["env_step"] == run.history.evals["env_step"][0]
    assert run.history.updates["env_step"][-1] >= run.config.total_steps


def test_device_cpu_and_run_attributes():
    run = shared_run("a2c-cartpole")
    assert run.device == torch.device("cpu")
    assert next(run.policy.parameters()).device.type == "cpu"
    assert isinstance(run.policy, torch.nn.Module)
    assert run.config.algo == "a2c" and run.config.seed == 3
    assert math.isfinite(float(run.history.episodes["return"].mean()))
