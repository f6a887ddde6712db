"""Advantage actor-critic (A2C) with GAE on gymnasium vector envs: one gradient step per rollout.

Pseudo-code (lesson 03):

    for each update:
        anneal the learning rates                                         (optional)
        collect n_steps from num_envs envs                                -> obs, a, V(s), r, done flags
        A = GAE(r, V(s), V(s'), terminated, truncated, gamma, lambda);  R = A + V(s)
        actor:  L = -mean(log pi(a|s) * A) - beta H[pi]                   (A normalised, a constant)
        critic: L = 1/2 mean((V(s) - R)^2)
        clip each network's gradient norm separately, step both Adams

Hyperparameters are the fields of :class:`pgcourse.config.A2CConfig`. Every piece of math is
``parts.<name>``, a field of :class:`~pgcourse.algorithms.components.Components`.
"""
from __future__ import annotations

import torch

from ..config import A2CConfig
from ..diagnostics import relative_value_error
from ..run import Run
from .components import Components
from .rollout import collect_rollout, flatten_valid
from .trainer import Hooks, Trainer


def train_a2c(config: A2CConfig, components: Components | None = None, hooks: Hooks | None = None,
              on_update=None, resume=None) -> Run:
    with Trainer(config, components, hooks, on_update, resume=resume) as trainer:
        parts, value_net = trainer.components, trainer.value_net
        compute_gae = parts.gae()

        while not trainer.done:
            trainer.anneal_learning_rates()
            rollout = collect_rollout(trainer, config.n_steps)

            advantages = compute_gae(rollout.rewards, rollout.values, rollout.next_values, rollout.terminated,
                                     rollout.truncated, config.gamma, config.gae_lambda)  # [T, N]
            returns = advantages + rollout.values  # [T, N]
            obs, actions, advantages, returns = flatten_valid(rollout, rollout.obs, rollout.actions, advantages,
                                                              returns)  # [B, ...]
            advantage_std = advantages.std()  # a diagnostic, read with the others at end_update
            if config.normalize_advantages:
                advantages = parts.normalize(advantages)  # [B]

            log_probs, entropy = trainer.log_probs_and_entropy(obs, actions)  # [B], [B]
            actor_loss = parts.a2c_policy_loss(log_probs, advantages, entropy, config.ent_coef)
            values = value_net(obs)  # [B]
            critic_loss = parts.value_loss(values, returns)
            actor_norm, critic_norm = trainer.actor_critic_step(actor_loss, critic_loss)

            with torch.no_grad():  # the policy-gradient term alone, and the critic after its step, for the history
                policy_loss = parts.a2c_policy_loss(log_probs, advantages, entropy, 0.0)
                values_after = value_net(obs)  # [B]
            predicted_before = parts.explained_variance(values.detach(), returns)  # the critic before its step
            trainer.end_update(policy_loss=policy_loss, value_loss=critic_loss.detach(),
                               entropy=entropy.detach().mean(),
                               explained_variance=predicted_before, explained_variance_before=predicted_before,
                               explained_variance_after=parts.explained_variance(values_after, returns),
                               value_rel_error=relative_value_error(values, returns),
                               actor_grad_norm=actor_norm, critic_grad_norm=critic_norm, advantage_std=advantage_std,
                               epochs_run=1)
    return trainer.finish()
