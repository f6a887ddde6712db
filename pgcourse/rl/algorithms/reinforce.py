"""REINFORCE, with or without a learned state-value baseline (Monte Carlo policy gradient).

Pseudo-code (lessons 01 and 02):

    for each update:
        reset the num_envs envs; play one complete episode in each with the current policy
        G_t = r_t + gamma G_{t+1}  for every step of every episode
        weights = G_t                        (plain REINFORCE; return_weighting="total": G_0 at every step,
                                              "discounted": gamma^t G_t)
                = G_t - V(s_t)               (with baseline; V is a constant in the actor's loss)
        normalise the weights over the batch                           (optional, default on)
        actor:  L = -mean(log pi(a_t|s_t) * weight_t) - beta H[pi]
        critic: L = 1/2 mean((V(s_t) - G_t)^2)                          (baseline only)
                one Adam step, then critic_epochs - 1 more on the same batch (default: none)

Every episode of a batch comes from the same policy: envs that finish early keep stepping (they
must, in a vector env) but those steps are dropped, so the gradient is an unbiased on-policy
Monte Carlo estimate. ``history.episodes["env_step"]`` counts only the transitions trained on.

Hyperparameters are the fields of :class:`pgcourse.rl.config.ReinforceConfig`. Every piece of math is
``parts.<name>``, a field of :class:`~pgcourse.rl.algorithms.components.Components`.

One agent per run: ``pg.train_many`` batches A2C and PPO only (their loops have the agent axis, :mod:`.agents`).
"""
from __future__ import annotations

import torch

from ..config import ReinforceConfig
from ..diagnostics import relative_value_error
from ..run import Run
from .components import Components
from .rollout import collect_episodes
from .trainer import Hooks, Number, Trainer


def train_reinforce(config: ReinforceConfig, components: Components | None = None, hooks: Hooks | None = None,
                    on_update=None, resume=None) -> Run:
    with_baseline = config.algo == "reinforce_baseline"
    with Trainer(config, components, hooks, on_update, needs_critic=with_baseline,
                 resume=resume) as trainer:
        parts, value_net = trainer.components, trainer.value_net

        while not trainer.done:
            trainer.anneal_learning_rates()
            obs, actions, episode_rewards, raw_returns = collect_episodes(trainer)
            for rewards, raw_return in zip(episode_rewards, raw_returns):
                trainer.env_step += int(rewards.shape[0])
                trainer.record_episodes([raw_return], [int(rewards.shape[0])])
            episode_returns = [parts.discounted_returns(rewards, config.gamma) for rewards in episode_rewards]  # [T_i] each
            returns = torch.cat(episode_returns)  # [B] G_t, the reward-to-go (also the critic's target)
            if config.return_weighting == "total":  # Williams' estimator: each step weighted by its episode's G_0
                returns_to_weight = torch.cat([g[:1].expand_as(g) for g in episode_returns])  # [B]
            elif config.return_weighting == "discounted":  # gamma^t G_t: the discounted objective's own terms
                returns_to_weight = torch.cat([config.gamma ** torch.arange(len(g), dtype=g.dtype, device=g.device) * g
                                               for g in episode_returns])  # [B]
            else:
                returns_to_weight = returns  # [B]

            metrics: dict[str, Number] = {}  # diagnostics, 0-d tensors read once at end_update
            if with_baseline:
                values = value_net(obs)  # [B]
                weights = parts.baseline_advantages(returns_to_weight, values)  # [B] G_t - V(s_t), V a constant
                critic_loss = parts.value_loss(values, returns)
                metrics["value_loss"] = critic_loss.detach()
                metrics["explained_variance"] = parts.explained_variance(values.detach(), returns)
                metrics["explained_variance_before"] = metrics["explained_variance"]  # the critic before its steps
                metrics["value_rel_error"] = relative_value_error(values, returns)
            else:
                weights = returns_to_weight  # [B]
            metrics["advantage_std"] = weights.detach().std()
            if config.normalize_weights and config.center_weights:
                weights = parts.normalize(weights)
            elif config.normalize_weights:  # center_weights=False: scale only, no batch-mean baseline
                weights = weights / (weights.std(unbiased=False) + 1e-8)

            log_probs, entropy = trainer.log_probs_and_entropy(obs, actions)  # [B], [B]
            policy_loss = parts.reinforce_loss(log_probs, weights)
            actor_loss = policy_loss + parts.entropy_bonus_loss(entropy, config.ent_coef)
            if with_baseline:
                actor_norm, critic_norm = trainer.actor_critic_step(actor_loss, critic_loss)
                for _ in range(config.critic_epochs - 1):  # refit V on the same returns (weights already fixed)
                    critic_norm = trainer.critic_step(parts.value_loss(value_net(obs), returns))
                metrics.update(actor_grad_norm=actor_norm, critic_grad_norm=critic_norm)
                with torch.no_grad():  # the critic after its steps, on the batch it fitted (in-sample)
                    metrics["explained_variance_after"] = parts.explained_variance(value_net(obs), returns)
            else:
                metrics["actor_grad_norm"] = trainer.actor_step(actor_loss)
            trainer.end_update(policy_loss=policy_loss.detach(), entropy=entropy.detach().mean(), epochs_run=1,
                               **metrics)
    return trainer.finish()
