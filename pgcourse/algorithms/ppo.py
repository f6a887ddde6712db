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
        diagnostics: update_kl = KL(pi_old || pi_new) over the whole batch after the last epoch

Two KLs are logged. ``approx_kl`` is the mean, over the update's gradient steps, of the minibatch KL
measured *before* each step (what ``target_kl`` is compared with): it lags the policy and understates
how far the update moved it. ``update_kl`` is the KL between the policy that collected the batch and
the policy after the update, estimated on the whole batch: how far the update went.

Hyperparameters are the fields of :class:`pgcourse.config.PPOConfig` (clip_eps = epsilon,
gae_lambda = lambda, ent_coef = beta, target_kl, update_epochs, minibatch_size, ...). Every piece of
math is ``parts.<name>``, a field of :class:`~pgcourse.algorithms.components.Components`.
"""
from __future__ import annotations

import numpy as np
import torch

from ..batching import minibatch_size_for, on_device
from ..config import PPOConfig
from ..diagnostics import relative_value_error
from ..run import Run
from .components import Components
from .rollout import collect_rollout, flatten_valid
from .trainer import Hooks, Means, Trainer, read_numbers


def train_ppo(config: PPOConfig, components: Components | None = None, hooks: Hooks | None = None,
              on_update=None, resume=None) -> Run:
    with Trainer(config, components, hooks, on_update, resume=resume) as trainer:
        parts, value_net = trainer.components, trainer.value_net
        compute_gae = parts.gae()
        normalize_batch = config.normalize_advantages and not config.normalize_per_minibatch
        normalize_minibatch = config.normalize_advantages and config.normalize_per_minibatch

        while not trainer.done:
            trainer.anneal_learning_rates()
            rollout = collect_rollout(trainer, config.n_steps)

            advantages = compute_gae(rollout.rewards, rollout.values, rollout.next_values, rollout.terminated,
                                     rollout.truncated, config.gamma, config.gae_lambda)  # [T, N]
            returns = advantages + rollout.values  # [T, N] critic targets
            obs, actions, old_log_probs, old_values, advantages, returns = flatten_valid(
                rollout, rollout.obs, rollout.actions, rollout.log_probs, rollout.values, advantages,
                returns)  # [B, ...]
            advantage_std = advantages.std()  # scale before normalisation (a diagnostic; read at end_update)
            if normalize_batch:
                advantages = parts.normalize(advantages)  # [B]

            # rows per gradient step: minibatch_size, or B / num_minibatches (a fixed number of steps per epoch)
            minibatch_size = minibatch_size_for(obs.shape[0], config.minibatch_size, config.num_minibatches)
            per_step = Means()  # the history records each diagnostic's mean over the update's gradient steps
            epochs_run = 0
            for epoch in range(config.update_epochs):
                epoch_kls = []
                minibatches = on_device(parts.minibatch_indices(obs.shape[0], minibatch_size,
                                                                trainer.minibatch_generator), trainer.device)
                for batch_idx in minibatches:  # [b] each, on the device
                    batch_obs = obs[batch_idx]  # [b, obs_dim]
                    new_log_probs, entropy = trainer.log_probs_and_entropy(batch_obs, actions[batch_idx])  # [b], [b]
                    batch_old_log_probs = trainer.hooks.old_log_probs(old_log_probs[batch_idx], new_log_probs)  # [b]
                    batch_advantages = advantages[batch_idx]  # [b]
                    if normalize_minibatch:
                        batch_advantages = parts.normalize(batch_advantages)
                    policy_loss = parts.clipped_surrogate_loss(new_log_probs, batch_old_log_probs, batch_advantages,
                                                               config.clip_eps)
                    actor_loss = policy_loss + parts.entropy_bonus_loss(entropy, config.ent_coef)
                    new_values = value_net(batch_obs)  # [b]
                    old_v = old_values[batch_idx] if config.clip_value_loss else None
                    critic_loss = parts.value_loss(new_values, returns[batch_idx], old_v,
                                                   config.clip_eps if config.clip_value_loss else None)
                    actor_norm, critic_norm = trainer.actor_critic_step(actor_loss, critic_loss)

                    with torch.no_grad():  # diagnostics stay 0-d tensors: read once per update, not per step
                        ratio = (new_log_probs - batch_old_log_probs).exp()  # [b]
                        kl = parts.approx_kl(batch_old_log_probs, new_log_probs)
                        clipped = parts.clip_fraction(ratio, config.clip_eps)
                    epoch_kls.append(kl)
                    per_step.add(policy_loss=policy_loss.detach(), value_loss=critic_loss.detach(),
                                 entropy=entropy.detach().mean(), approx_kl=kl, clip_fraction=clipped,
                                 actor_grad_norm=actor_norm, critic_grad_norm=critic_norm)
                epochs_run += 1
                if config.target_kl is not None:  # the one read per epoch, and only when it decides something
                    epoch_kl = np.mean(list(read_numbers(dict(enumerate(epoch_kls))).values()))
                    if epoch_kl > config.target_kl:
                        break  # the policy moved far enough from pi_old: stop this update's epochs

            with torch.no_grad():
                values_after = value_net(obs)  # [B]
                log_probs_after, _ = trainer.log_probs_and_entropy(obs, actions)  # [B] under pi_new
                update_kl = parts.approx_kl(old_log_probs, log_probs_after)  # KL(pi_old || pi_new)
            fit_after = parts.explained_variance(values_after, returns)  # in sample: the batch the critic just fitted
            trainer.end_update(**per_step.means(), explained_variance=fit_after, explained_variance_after=fit_after,
                               explained_variance_before=parts.explained_variance(old_values, returns),
                               value_rel_error=relative_value_error(values_after, returns),
                               advantage_std=advantage_std, epochs_run=epochs_run, update_kl=update_kl)
    return trainer.finish()
