"""Every decision of the rl package's small formatting and threshold helpers, pinned at its edge (issue 45, item 5).

A mutation audit (audit 12) found one-line bugs that no test saw because no case sat on the edge: a size of exactly
one GiB, an evaluation exactly at the solve threshold, an interrupt exactly when the budget is spent, one agent (not
"1 agents"), a window of exactly 20 returns, a log-std with more than one action dimension. Each test below states
the definition and checks it at the edge, one below and one above; every expected value is worked out by hand.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import pgcourse as pg
from pgcourse.rl import memory
from pgcourse.rl.algorithms import trainer as trainer_module
from pgcourse.rl.history import History
from pgcourse.rl.memory import RolloutMemory, action_bytes, gib, rollout_bytes, rollout_memory, transition_bytes

GIB, MIB = 2**30, 2**20
TWO_UPDATES = dict(num_envs=4, n_steps=32, minibatch_size=64, update_epochs=1, total_steps=256, progress=False,
                   device="cpu")  # on Pendulum (no episode ends before 200 steps) updates end at env steps 128 and 256


# -- memory: sizes, the formula, the refusal -----------------------------------------------------------------------
@pytest.mark.parametrize("num_bytes, shown", [
    (0, "0.0 MiB"),
    (MIB, "1.0 MiB"),
    (1536 * 1024, "1.5 MiB"),
    (GIB - 1, "1,024.0 MiB"),  # one byte below a GiB is still MiB (1023.999... rounds up)
    (GIB, "1.0 GiB"),  # exactly one GiB switches unit
    (GIB + 1, "1.0 GiB"),
    (3 * GIB // 2, "1.5 GiB"),
    (1024 * GIB, "1,024.0 GiB"),  # thousands separated
])
def test_gib_shows_mib_below_one_gib_and_gib_from_exactly_one_gib(num_bytes, shown):
    """``gib``: MiB (one decimal, thousands separated) below 2**30 bytes, GiB from 2**30 on."""
    assert gib(num_bytes) == shown


def test_a_transitions_bytes_are_the_modules_formula_worked_by_hand():
    """CartPole (4 floats observed, an int64 action, widest layer 64): stored 16 + 8 + 20 + 3 = 47, flattened
    16 + 8 + 16 = 40, GAE 16, the forward 2 * 4 * 64 = 512: 615 bytes; a 3-D continuous action is 12 bytes."""
    assert action_bytes(True, 3) == 8 and action_bytes(False, 3) == 12 and action_bytes(False, 1) == 4
    assert transition_bytes(4, 8) == 615
    assert transition_bytes(4, 8, widest_hidden=1) == 47 + 40 + 16 + 8
    assert transition_bytes(3, 4, widest_hidden=0) == (12 + 4 + 20 + 3) + (12 + 4 + 16) + 16
    # agents * num_envs * (n_steps * b + 4 d_obs)
    assert rollout_bytes(1, 1, 4, 8) == 615 + 16
    assert rollout_bytes(3, 10, 4, 8, agents=2) == 2 * 3 * (10 * 615 + 16)


@pytest.mark.parametrize("available, fits", [(1000 * 631 - 1, False), (1000 * 631, True), (1000 * 631 + 1, True)])
def test_a_rollout_fits_when_it_needs_at_most_what_is_available(available, fits):
    """``fits``: needed <= available (equality fits); ``largest_num_envs`` = floor(available / (agents * per_env))."""
    estimate = rollout_memory(1000, 1, 4, 8, torch.device("cpu"), available=available)
    assert estimate.per_env == 631 and estimate.needed == 631_000
    assert estimate.fits is fits
    assert estimate.largest_num_envs == available // 631
    assert estimate.largest_num_envs == (1000 if fits else 999)


def test_rollout_memory_multiplies_by_the_agents_and_keeps_the_device_name():
    estimate = rollout_memory(10, 2, 4, 8, torch.device("cpu"), agents=3, available=10**9)
    per_env = 2 * 615 + 16
    assert (estimate.per_env, estimate.needed, estimate.agents, estimate.device) == (per_env, 3 * 10 * per_env, 3,
                                                                                    "cpu")
    assert estimate.largest_num_envs == 10**9 // (3 * per_env)


def test_rollout_memory_is_none_when_the_device_cannot_say(monkeypatch):
    def broken(device):
        raise RuntimeError("no driver")
    monkeypatch.setattr(memory, "available_bytes", broken)
    assert rollout_memory(1, 1, 4, 8, torch.device("cpu")) is None


@pytest.mark.parametrize("agents, who, tail", [
    (1, "", ""),  # one agent: no "1 agents x", no " for 1 agents"
    (2, "2 agents x ", " for 2 agents"),
    (3, "3 agents x ", " for 3 agents"),
])
def test_a_memory_refusal_names_the_agents_only_when_there_are_several(agents, who, tail):
    """The refusal names the width, the steps, both sizes, the bytes per env and the widest width that fits; the
    agents appear (twice) only for more than one."""
    estimate = RolloutMemory(needed=3 * GIB, available=GIB, per_env=1000, agents=agents, device="cpu")
    largest = 1073741824 // (1000 * agents)
    assert estimate.refusal(8, 16) == (
        f"num_envs=8 is too wide for the memory of cpu: a rollout of {who}8 envs x 16 steps needs at least 3.0 GiB "
        f"(1,000 bytes per env), 1.0 GiB is available; the largest num_envs that fits is {largest}{tail}")
    assert "1 agents" not in estimate.refusal(8, 16)


# -- the trainer: solving, evaluating, finishing, logging --------------------------------------------------------
def fake_evaluations(monkeypatch, means):
    """The trainer's evaluations return ``means`` in turn (the last one repeated); the calls are recorded."""
    calls = []

    def evaluate(run, env_id, episodes, seed, mode):
        calls.append(env_id)
        mean = means[min(len(calls), len(means)) - 1]
        return mean, 0.0, np.full(episodes, mean)
    monkeypatch.setattr(trainer_module, "evaluate", evaluate)
    return calls


@pytest.mark.parametrize("mean, solved", [(99.99, False), (100.0, True), (100.01, True)])
def test_an_evaluation_whose_mean_reaches_the_threshold_exactly_counts_as_solved(monkeypatch, mean, solved):
    """Solved: the evaluation's mean >= ``solve_threshold`` (equality solves); with ``stop_when_solved`` the run
    stops after that update with status "solved", and ``solved_at`` records that evaluation."""
    fake_evaluations(monkeypatch, [mean])
    run = pg.train("ppo", "Pendulum-v1", seed=0, eval_every=128, solve_threshold=100.0, stop_when_solved=True,
                   **TWO_UPDATES)
    if solved:
        assert run.history.status == "solved" and len(run.history.updates) == 1
        assert run.history.solved_at["env_step"] == 128 and run.history.solved_at["mean"] == mean
    else:
        assert run.history.status == "completed" and len(run.history.updates) == 2
        assert run.history.solved_at is None


def test_solved_at_is_the_first_evaluation_that_reaches_the_threshold_and_a_run_not_stopped_completes(monkeypatch):
    """Without ``stop_when_solved`` the run trains its whole budget and its status is "completed"; ``solved_at``
    keeps the first evaluation at the threshold, not a later, higher one."""
    fake_evaluations(monkeypatch, [100.0, 200.0])
    run = pg.train("ppo", "Pendulum-v1", seed=0, eval_every=128, solve_threshold=100.0, **TWO_UPDATES)
    assert run.history.status == "completed" and len(run.history.updates) == 2
    assert run.history.solved_at["env_step"] == 128 and run.history.solved_at["mean"] == 100.0
    assert list(run.history.evals["mean"]) == [100.0, 200.0]


@pytest.mark.parametrize("eval_every, at", [
    (127, [128, 256]),  # due at 127: evaluated at the first update past it, then due at 254
    (128, [128, 256]),  # due exactly at an update's end: evaluated there
    (129, [256]),  # one step later: not at 128
    (255, [256]),
    (256, [256]),
    (257, []),  # past the budget: never
])
def test_an_evaluation_runs_at_the_first_update_end_that_reaches_each_multiple_of_eval_every(monkeypatch, eval_every,
                                                                                              at):
    """Evaluations are due at env step ``eval_every`` and then every ``eval_every`` past the last one due; an update
    that ends at or past a due step evaluates once."""
    calls = fake_evaluations(monkeypatch, [0.0])
    run = pg.train("ppo", "Pendulum-v1", seed=0, eval_every=eval_every, **TWO_UPDATES)
    assert list(run.history.evals["env_step"]) == at and len(calls) == len(at)


@pytest.mark.parametrize("eval_every, at", [
    (256, [256, 512]),  # evaluated at 256 exactly: next due at 512, not at the update after
    (200, [256, 512]),  # due at 200, evaluated at 256: next due at 400, reached at 512
    (128, [128, 256, 384, 512]),
])
def test_after_an_evaluation_the_next_is_due_eval_every_later_than_the_last_one_due(monkeypatch, eval_every, at):
    """Four updates (env steps 128, 256, 384, 512): an evaluation at a due step moves the next one a whole
    ``eval_every`` past it, so none runs in between."""
    calls = fake_evaluations(monkeypatch, [0.0])
    run = pg.train("ppo", "Pendulum-v1", seed=0, eval_every=eval_every, **{**TWO_UPDATES, "total_steps": 512})
    assert list(run.history.updates["env_step"]) == [128, 256, 384, 512]
    assert list(run.history.evals["env_step"]) == at and len(calls) == len(at)


@pytest.mark.parametrize("interrupt_at, status, updates", [
    (1, "interrupted", 1),  # asked to stop with budget left: interrupted after that update
    (2, "completed", 2),  # asked exactly when the budget is spent: the run is done, not interrupted
])
def test_an_interrupt_when_the_budget_is_spent_leaves_the_run_completed(monkeypatch, interrupt_at, status, updates):
    """Status "interrupted" means steps of the budget were left: a stop asked for at the update that spends it
    (env_step == total_steps) is "completed"."""
    original = trainer_module.Trainer.end_update

    def end_update(self, **metrics):
        if self.num_updates + 1 == interrupt_at:
            self.interrupt.requested = True
        original(self, **metrics)
    monkeypatch.setattr(trainer_module.Trainer, "end_update", end_update)
    run = pg.train("ppo", "Pendulum-v1", seed=0, **TWO_UPDATES)
    assert run.history.status == status and len(run.history.updates) == updates
    assert run.history.updates["env_step"][-1] == 128 * updates


def test_an_interrupt_past_an_uneven_budget_is_completed_too(monkeypatch):
    """A budget of 200 steps is spent by the second update (256 >= 200): a stop asked for then is "completed"."""
    original = trainer_module.Trainer.end_update

    def end_update(self, **metrics):
        if self.num_updates == 1:
            self.interrupt.requested = True
        original(self, **metrics)
    monkeypatch.setattr(trainer_module.Trainer, "end_update", end_update)
    run = pg.train("ppo", "Pendulum-v1", seed=0, **{**TWO_UPDATES, "total_steps": 200})
    assert run.history.status == "completed" and len(run.history.updates) == 2


def test_log_std_mean_is_the_mean_over_the_action_dimensions():
    """``log_std_mean`` is the mean of the Gaussian policy's ``log_std`` over its action dimensions, logged after
    the update: with two action dimensions (LunarLanderContinuous) the last update's is the mean of the returned
    run's two log-stds, half their sum."""
    run = pg.train("ppo", "LunarLanderContinuous-v3", seed=0, num_envs=2, n_steps=64, minibatch_size=64,
                   update_epochs=1, total_steps=128, log_std_init=-0.5, progress=False, device="cpu")
    log_std = run.policy.log_std.detach().double()
    assert log_std.shape == (2,)
    logged = run.history.updates["log_std_mean"]
    assert len(logged) == 1
    assert logged[-1] == pytest.approx((float(log_std[0]) + float(log_std[1])) / 2, abs=1e-6)
    assert -0.6 < logged[-1] < -0.4  # near log_std_init, not twice it


def test_a_discrete_policy_logs_no_log_std():
    run = pg.train("ppo", "CartPole-v1", seed=0, **{**TWO_UPDATES, "total_steps": 128})
    assert np.isnan(run.history.updates["log_std_mean"]).all()


# -- the live view's label -----------------------------------------------------------------------------------------
def fake_trainer(returns, env_step=1234, total=5000, num_updates=3):
    history = History()
    if len(returns):
        history.episodes.extend(**{"return": np.asarray(returns, dtype=float)})
    return SimpleNamespace(history=history, config=SimpleNamespace(total_steps=total), env_step=env_step,
                           num_updates=num_updates)


@pytest.mark.parametrize("returns, recent", [
    ([], ""),  # no episode yet: no average
    ([4.0], ", last 20 episodes: 4.0"),
    (list(range(1, 20)), ", last 20 episodes: 10.0"),  # 19 episodes: their mean
    (list(range(1, 21)), ", last 20 episodes: 10.5"),  # exactly 20: all of them
    ([1000.0] + list(range(1, 21)), ", last 20 episodes: 10.5"),  # 21: the first is left out
    ([1000.0, 1000.0] + list(range(1, 21)), ", last 20 episodes: 10.5"),
])
def test_the_live_label_averages_exactly_the_last_20_returns(returns, recent):
    """The label: ``env_step / total steps, update n`` (thousands separated), then the mean of the last 20 episode
    returns (one decimal) when there is one; the bar shows the steps, capped at the total."""
    from pgcourse.rl.live import LiveView
    view = LiveView(every=10**9)  # never draws
    view.update(fake_trainer(returns))
    assert view.label.value == f"1,234 / 5,000 steps, update 3{recent}"
    assert (view.progress.value, view.progress.max) == (1234, 5000)
    assert view.updates_seen == 1 and view.redraws == 0


def test_the_live_view_caps_the_bar_counts_each_update_once_and_names_the_agent_it_shows():
    from pgcourse.rl.live import LiveView
    view = LiveView(every=10**9)
    first = fake_trainer([1.0], env_step=6000, total=5000, num_updates=1)
    view.update(first)
    assert view.progress.value == 5000 and view.label.value == "6,000 / 5,000 steps, update 1, last 20 episodes: 1.0"
    second = fake_trainer([3.0], env_step=6000, total=5000, num_updates=1)
    view.update(second)  # the batch's other agent reporting the same update: not counted, label unchanged
    assert view.updates_seen == 1 and len(view.histories) == 2
    assert view.label.value == "6,000 / 5,000 steps, update 1, last 20 episodes: 1.0"
    second.num_updates = 2
    view.update(second)
    assert view.updates_seen == 2
    assert view.label.value == ("6,000 / 5,000 steps, update 2, last 20 episodes: 3.0 "
                                "(2 agents; numbers of agent 1)")
