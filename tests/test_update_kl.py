"""PPO logs how far each update moved the policy: update_kl = KL(pi_old || pi_new) over the whole batch
after the last epoch, beside approx_kl (the mean of the minibatch KLs measured before each step)."""
from __future__ import annotations

import numpy as np
import torch

import pgcourse as pg
from conftest import TINY_PPO_DISCRETE


def test_update_kl_is_the_kl_between_the_collecting_and_the_updated_policy(monkeypatch):
    from pgcourse.rl.algorithms import trainer as trainer_module

    seen = {}
    original = trainer_module.Trainer.end_update

    def end_update(self, **metrics):  # recompute the KL of the first update by hand from the weights
        if "update_kl" not in seen:
            seen["update_kl"] = metrics["update_kl"]
            seen["policy_after"] = {k: v.clone() for k, v in self.policy.state_dict().items()}
        original(self, **metrics)
    monkeypatch.setattr(trainer_module.Trainer, "end_update", end_update)
    settings = dict(TINY_PPO_DISCRETE, total_steps=128)
    run = pg.train("ppo", "CartPole-v1", seed=0, progress=False, **settings)
    monkeypatch.undo()
    assert run.history.updates["update_kl"][0] == seen["update_kl"]

    # the same batch, collected again by the initial policy (same seed), scored under both policies
    from pgcourse.rl.algorithms.trainer import Trainer
    from pgcourse.rl.algorithms.rollout import collect_rollout, flatten_valid
    from pgcourse.rl.config import make_config

    config = make_config("ppo", "CartPole-v1", "discrete", seed=0, progress=False, **settings)
    with Trainer(config) as trainer:
        rollout = collect_rollout(trainer, config.n_steps)
        obs, actions, old_log_probs = flatten_valid(rollout, rollout.obs, rollout.actions, rollout.log_probs)
        trainer.policy.load_state_dict(seen["policy_after"])
        with torch.no_grad():
            new_log_probs, _ = trainer.log_probs_and_entropy(obs, actions)
    trainer.finish()
    log_ratio = new_log_probs - old_log_probs
    expected = float(((log_ratio.exp() - 1) - log_ratio).mean())
    assert seen["update_kl"] == expected
    assert expected > 0


def test_a_stale_old_policy_hides_the_move_from_approx_kl_but_not_from_update_kl():
    run = pg.train("ppo", "CartPole-v1", seed=0, progress=False, traps=("stale_old_log_probs",),
                   **dict(TINY_PPO_DISCRETE, total_steps=512))
    updates = run.history.updates
    assert np.all(updates["approx_kl"] == 0)  # rho == 1 by construction: the trap's signature
    assert np.all(updates["update_kl"] > 0)   # yet every update moved the policy


def test_other_algorithms_leave_update_kl_empty():
    run = pg.train("a2c", "CartPole-v1", seed=0, progress=False, total_steps=256, num_envs=4, n_steps=16)
    assert np.isnan(run.history.updates["update_kl"]).all()
