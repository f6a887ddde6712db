"""Advantage actor-critic (A2C) with GAE on gymnasium vector envs: one gradient step per rollout.

Pseudo-code (lesson 03):

    for each update:
        anneal the learning rates                                         (optional)
        collect n_steps from num_envs envs                                -> obs, a, V(s), r, done flags
        A = GAE(r, V(s), V(s'), terminated, truncated, gamma, lambda);  R = A + V(s)
        actor:  L = -mean(log pi(a|s) * A) - beta H[pi]                   (A normalised, a constant)
        critic: L = 1/2 mean((V(s) - R)^2)
        clip each network's gradient norm separately, step both Adams

Hyperparameters are the fields of :class:`pgcourse.config.A2CConfig`.
"""
from __future__ import annotations

import torch

from ..config import A2CConfig
from ..diagnostics import explained_variance, relative_value_error
from ..run import Run
from .core import Components, Trainer, collect_rollout, flatten_valid


def train_a2c(config: A2CConfig, components: Components | None = None) -> Run:
    trainer = Trainer(config, components)
    parts = trainer.components
    policy, value_net = trainer.policy, trainer.value_net

    while not trainer.done:
        trainer.anneal_learning_rates()
        rollout = collect_rollout(trainer, config.n_steps)

        advantages = parts.compute_gae(rollout.rewards, rollout.values, rollout.next_values, rollout.terminated,
                                       rollout.truncated, config.gamma, config.gae_lambda)  # [T, N]
        returns = advantages + rollout.values  # [T, N]
        obs, actions, advantages, returns = flatten_valid(rollout, rollout.obs, rollout.actions, advantages, returns)
        advantage_std = float(advantages.std())
        if config.normalize_advantages:
            advantages = parts.normalize(advantages)  # [B]

        log_probs, entropy = policy.log_prob_entropy(obs, actions, parts.gaussian_log_prob)  # [B], [B]
        policy_loss = parts.reinforce_loss(log_probs, advantages)
        actor_loss = policy_loss + parts.entropy_bonus_loss(entropy, config.ent_coef)
        values = value_net(obs)  # [B]
        critic_loss = parts.value_loss(values, returns)

        if "joint_grad_clip" in config.traps:  # trap: one optimiser, one clip over actor + critic together
            from ..traps import joint_clip_and_step  # imported only when the trap is on
            actor_norm, critic_norm = joint_clip_and_step(trainer, actor_loss + critic_loss)
        else:
            trainer.actor_optimizer.zero_grad()
            actor_loss.backward()
            actor_norm = trainer.clip_and_step(trainer.actor_optimizer, policy.parameters(), config.max_grad_norm)
            trainer.critic_optimizer.zero_grad()
            critic_loss.backward()
            critic_norm = trainer.clip_and_step(trainer.critic_optimizer, value_net.parameters(),
                                                config.critic_max_grad_norm)

        trainer.end_update(policy_loss=policy_loss.item(), value_loss=critic_loss.item(),
                           entropy=entropy.mean().item(), explained_variance=explained_variance(values.detach(), returns),
                           value_rel_error=relative_value_error(values, returns),
                           actor_grad_norm=actor_norm, critic_grad_norm=critic_norm, advantage_std=advantage_std,
                           epochs_run=1)
    return trainer.finish()
