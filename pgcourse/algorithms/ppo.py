"""Proximal Policy Optimisation (clip variant), discrete and continuous, on gymnasium vector envs.

Pseudo-code this file follows, line for line (lesson 04):

    for each update:
        anneal the learning rates                                  (optional)
        collect n_steps from num_envs envs with pi_old             -> obs, a, log pi_old(a|s), V(s), r, done flags
        A = GAE(r, V(s), V(s'), terminated, truncated, gamma, lambda);  R = A + V(s)
        for epoch in 1..update_epochs:
            for each shuffled minibatch:
                rho = exp(log pi(a|s) - log pi_old(a|s))
                actor:  L = -mean(min(rho A, clip(rho, 1-eps, 1+eps) A)) - beta H[pi]   (A normalised)
                critic: L = 1/2 mean((V(s) - R)^2)
                clip each network's gradient norm separately, step both Adams
            stop the epochs early if approx-KL > target_kl                          (optional)

Hyperparameters are the fields of :class:`pgcourse.config.PPOConfig` (clip_eps = epsilon,
gae_lambda = lambda, ent_coef = beta, target_kl, update_epochs, minibatch_size, ...).
"""
from __future__ import annotations

import numpy as np
import torch

from ..batching import minibatch_indices
from ..config import PPOConfig
from ..diagnostics import clip_fraction, explained_variance, relative_value_error
from ..run import Run
from .core import Components, Trainer, collect_rollout, flatten_valid


def train_ppo(config: PPOConfig, components: Components | None = None) -> Run:
    trainer = Trainer(config, components)
    parts = trainer.components
    policy, value_net = trainer.policy, trainer.value_net
    log_prob_fn = parts.gaussian_log_prob

    while not trainer.done:
        trainer.anneal_learning_rates()
        rollout = collect_rollout(trainer, config.n_steps)

        advantages = parts.compute_gae(rollout.rewards, rollout.values, rollout.next_values, rollout.terminated,
                                       rollout.truncated, config.gamma, config.gae_lambda)  # [T, N]
        returns = advantages + rollout.values  # [T, N] critic targets
        obs, actions, old_log_probs, old_values, advantages, returns = flatten_valid(
            rollout, rollout.obs, rollout.actions, rollout.log_probs, rollout.values, advantages, returns)  # [B, ...]
        advantage_std = float(advantages.std())  # scale before normalisation (a diagnostic)
        per_minibatch_norm = "per_minibatch_adv_norm" in config.traps  # trap: normalise per minibatch instead
        if config.normalize_advantages and not per_minibatch_norm:
            advantages = parts.normalize(advantages)  # [B]

        sums = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0, "clip_fraction": 0.0,
                "actor_grad_norm": 0.0, "critic_grad_norm": 0.0}
        num_steps, epochs_run = 0, 0
        for epoch in range(config.update_epochs):
            epoch_kls = []
            for batch_idx in minibatch_indices(obs.shape[0], config.minibatch_size, trainer.minibatch_generator,
                                               trainer.device):
                new_log_probs, entropy = policy.log_prob_entropy(obs[batch_idx], actions[batch_idx], log_prob_fn)
                batch_old_log_probs, batch_advantages = old_log_probs[batch_idx], advantages[batch_idx]  # [b], [b]
                if "stale_old_log_probs" in config.traps:  # trap: "old" log-probs recomputed from the current policy
                    batch_old_log_probs = new_log_probs.detach()
                if per_minibatch_norm and config.normalize_advantages:
                    batch_advantages = parts.normalize(batch_advantages)
                policy_loss = parts.clipped_surrogate_loss(new_log_probs, batch_old_log_probs, batch_advantages,
                                                           config.clip_eps)
                actor_loss = policy_loss + parts.entropy_bonus_loss(entropy, config.ent_coef)
                new_values = value_net(obs[batch_idx])  # [b]
                old_v = old_values[batch_idx] if config.clip_value_loss else None
                critic_loss = parts.value_loss(new_values, returns[batch_idx], old_v,
                                               config.clip_eps if config.clip_value_loss else None)

                if "joint_grad_clip" in config.traps:  # trap: one optimiser, one clip over actor + critic together
                    from ..traps import joint_clip_and_step  # imported only when the trap is on
                    actor_norm, critic_norm = joint_clip_and_step(trainer, actor_loss + critic_loss)
                else:
                    trainer.actor_optimizer.zero_grad()
                    actor_loss.backward()
                    actor_norm = trainer.clip_and_step(trainer.actor_optimizer, policy.parameters(),
                                                       config.max_grad_norm)
                    trainer.critic_optimizer.zero_grad()
                    critic_loss.backward()
                    critic_norm = trainer.clip_and_step(trainer.critic_optimizer, value_net.parameters(),
                                                        config.critic_max_grad_norm)

                with torch.no_grad():
                    log_ratio = new_log_probs - batch_old_log_probs  # [b]
                    kl = float(parts.approx_kl(batch_old_log_probs, new_log_probs))
                    sums["clip_fraction"] += float(clip_fraction(log_ratio.exp(), config.clip_eps))
                epoch_kls.append(kl)
                sums["policy_loss"] += float(policy_loss.detach())
                sums["value_loss"] += float(critic_loss.detach())
                sums["entropy"] += float(entropy.detach().mean())
                sums["approx_kl"] += kl
                sums["actor_grad_norm"] += actor_norm
                sums["critic_grad_norm"] += critic_norm
                num_steps += 1
            epochs_run += 1
            if config.target_kl is not None and np.mean(epoch_kls) > config.target_kl:
                break  # the policy moved far enough from pi_old: stop this update's epochs

        with torch.no_grad():
            values_after = value_net(obs)  # [B]
        trainer.end_update(**{name: total / num_steps for name, total in sums.items()},
                           explained_variance=explained_variance(values_after, returns),
                           value_rel_error=relative_value_error(values_after, returns),
                           advantage_std=advantage_std, epochs_run=epochs_run)
    return trainer.finish()
