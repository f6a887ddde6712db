"""The reference of exercises 04b (PPO from scratch): this package's PPO (``algorithms/ppo.py``,
``algorithms/rollout.py``) written as the four functions the learner writes, ``collect_rollout``,
``advantages_and_returns``, ``ppo_update`` and ``train_ppo``.

Glued together they train, seed for seed, exactly the run ``pg.train("ppo", ...)`` trains (tested in
``tests/test_loop_checks.py``): the same random draws, the same floating-point operations in the same order,
``torch.optim.Adam`` (which the package's ``LeanAdam`` matches number for number). ``mistake=`` switches on a
known wrong version, so that the checks (:mod:`.ch04b_ppo_loop`) can recognise it in a learner's result.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...rl.algorithms.rollout import Rollout
from ...rl.batching import minibatch_indices
from ...rl.config import PPOConfig
from ...rl.diagnostics import approx_kl, clip_fraction, explained_variance
from ...rl.distributions import categorical_entropy, categorical_log_prob
from ...rl.losses import clipped_surrogate_loss, entropy_bonus_loss, value_loss
from ...rl.networks import CategoricalPolicy, ValueNet, sample_categorical
from ...rl.returns import compute_gae, normalize


def reference_collect_rollout(envs, policy, value_net, start, n_steps, *, mistake: str | None = None):
    """``n_steps`` steps of every env from ``start = (obs [N, obs_dim], resetting [N] bool)``; returns the
    :class:`Rollout` and where the next rollout starts."""
    obs_np, resetting = start
    resetting = np.array(resetting, dtype=bool)
    if mistake == "start_ignored":
        resetting[:] = False
    num_envs = envs.num_envs
    stored_obs, action_rows, log_prob_rows, value_rows = [], [], [], []
    rewards = np.zeros((n_steps, num_envs), dtype=np.float32)
    terminated = np.zeros((n_steps, num_envs), dtype=bool)
    truncated = np.zeros((n_steps, num_envs), dtype=bool)
    valid = np.zeros((n_steps, num_envs), dtype=bool)
    with torch.no_grad():
        for t in range(n_steps):
            obs = torch.as_tensor(obs_np, dtype=torch.float32)  # [N, obs_dim]
            logits = policy(obs)  # [N, A]
            actions = logits.argmax(dim=-1) if mistake == "greedy" else sample_categorical(logits)  # [N]
            scored = logits.argmax(dim=-1) if mistake == "log_prob_of_argmax" else actions  # [N]
            log_probs = categorical_log_prob(logits, scored)  # [N]
            action_rows.append(actions)
            log_prob_rows.append(log_probs.exp() if mistake == "probabilities" else log_probs)
            value_rows.append(value_net(obs))
            valid[t] = ~resetting
            obs_np, step_rewards, step_terminated, step_truncated, _ = envs.step(actions.numpy())
            rewards[t], terminated[t], truncated[t] = step_rewards, step_terminated, step_truncated
            resetting = np.asarray(step_terminated) if mistake == "truncation_not_reset" else \
                np.asarray(step_terminated) | np.asarray(step_truncated)
            stored_obs.append(torch.as_tensor(obs_np, dtype=torch.float32) if mistake == "obs_after_step" else obs)
        all_values = torch.cat([torch.stack(value_rows), value_net(torch.as_tensor(obs_np, dtype=torch.float32))[None]])
    done = terminated | truncated  # [T, N]
    next_values = all_values[1:].clone()  # [T, N]: V of the observation each step returned
    if mistake == "bootstrap_from_reset_obs":  # the new episode's first observation, two steps on
        for t, n in zip(*np.nonzero(done[:-1])):
            next_values[t, n] = all_values[t + 2, n]
    if mistake == "last_next_value_zero":
        next_values[-1] = 0.0
    if mistake == "valid_everywhere":
        valid[:] = True
    if mistake == "valid_off_by_one":
        valid = ~done
    stored_terminated = done if mistake == "flags_merged" else terminated
    rollout = Rollout(obs=torch.stack(stored_obs), actions=torch.stack(action_rows),
                      log_probs=torch.stack(log_prob_rows), values=all_values[:-1], next_values=next_values,
                      rewards=torch.as_tensor(rewards), terminated=torch.as_tensor(stored_terminated).float(),
                      truncated=torch.as_tensor(truncated).float(), valid=torch.as_tensor(valid))
    return rollout, (obs_np, resetting)


def reference_advantages_and_returns(rewards, values, next_values, terminated, truncated, gamma: float,
                                     lam: float) -> tuple[Tensor, Tensor]:
    """GAE advantages ``[T, N]`` of a rollout's fields and the critic targets ``advantages + values`` (both
    constants)."""
    values, next_values = values.detach(), next_values.detach()
    advantages = compute_gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    return advantages, advantages + values


def _gae_fields(rollout) -> list[Tensor]:
    """The fields of a rollout that ``advantages_and_returns`` takes, in its order."""
    return [rollout.rewards, rollout.values, rollout.next_values, rollout.terminated, rollout.truncated]


def _flatten_valid(rollout, mask: Tensor, *tensors: Tensor) -> list[Tensor]:
    flat_mask = mask.reshape(-1)
    return [tensor.reshape(flat_mask.shape[0], *tensor.shape[2:])[flat_mask] for tensor in tensors]


def _clip_and_step(optimizer, parameters: list[Tensor], max_norm: float | None) -> None:
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    optimizer.step()


def _standardise(x: Tensor, sample_std: bool) -> Tensor:
    """:math:`(x - \\bar x) / (\\sigma + 10^{-8})` with the population std (divides by B, ``pg.normalize``) or the
    sample std (divides by B - 1, torch's default)."""
    if not sample_std:
        return normalize(x)
    return (x - x.mean()) / (x.std() + 1e-8)


_SURROGATE_MISTAKES = ("max_not_min", "clipped_only", "advantage_clipped", "ratio_inverted", "surrogate_sign")


def _mistaken_surrogate(new_log_probs, old_log_probs, advantages, clip_eps, mistake: str) -> Tensor:
    """The clipped loss with one of the known wrong versions of :data:`_SURROGATE_MISTAKES`: max in place of min,
    the clipped term alone, the advantage clipped in place of the ratio, the ratio upside down, the sign flipped."""
    log_ratio = old_log_probs - new_log_probs if mistake == "ratio_inverted" else new_log_probs - old_log_probs
    ratio = torch.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = (ratio * advantages.clamp(1 - clip_eps, 1 + clip_eps) if mistake == "advantage_clipped"
               else ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages)
    objective = (torch.max(unclipped, clipped) if mistake == "max_not_min" else
                 clipped if mistake == "clipped_only" else torch.min(unclipped, clipped)).mean()
    return objective if mistake == "surrogate_sign" else -objective


def reference_ppo_update(policy, value_net, actor_optimizer, critic_optimizer, rollout, advantages, returns,
                         minibatches, config, *, mistake: str | None = None, sample_std: bool = False
                         ) -> dict[str, float]:
    """One PPO update: for each epoch, for each minibatch (indices into the valid transitions, in order), the
    clipped surrogate step of the actor and the value step of the critic, each network's gradient norm
    clipped separately; returns the update's diagnostics. The advantages are standardised with the population
    std, or with the sample std if ``sample_std`` (both correct: the exercise accepts either)."""
    mask = torch.ones_like(rollout.valid) if mistake == "reset_steps_trained" else rollout.valid
    obs, actions, old_log_probs, advantages, returns = _flatten_valid(
        rollout, mask, rollout.obs, rollout.actions, rollout.log_probs, advantages, returns)  # [B, ...]
    per_minibatch = config.normalize_per_minibatch
    if mistake == "normalization_level_swapped":
        per_minibatch = not per_minibatch
    normalizing = config.normalize_advantages != (mistake == "normalization_flag_ignored")
    if normalizing and not per_minibatch:
        advantages = _standardise(advantages, sample_std)
    actor_parameters, critic_parameters = list(policy.parameters()), list(value_net.parameters())
    max_norm, critic_max_norm = config.max_grad_norm, config.critic_max_grad_norm
    if mistake == "no_grad_clipping":
        max_norm = critic_max_norm = None
    if mistake == "no_actor_clipping":
        max_norm = None
    kls, fractions, policy_losses, value_losses, entropies = [], [], [], [], []
    for epoch in minibatches:
        if mistake == "old_log_probs_per_epoch":
            with torch.no_grad():
                old_log_probs = categorical_log_prob(policy(obs), actions)
        for batch_idx in epoch:
            logits = policy(obs[batch_idx])  # [b, A]
            new_log_probs = categorical_log_prob(logits, actions[batch_idx])  # [b]
            entropy = categorical_entropy(logits)  # [b]
            batch_old = new_log_probs.detach() if mistake == "old_log_probs_from_current" else old_log_probs[batch_idx]
            batch_advantages = advantages[batch_idx]
            if mistake == "advantages_from_current_critic":  # returns - V(s) of the critic being updated
                with torch.no_grad():
                    batch_advantages = returns[batch_idx] - value_net(obs[batch_idx])
            if normalizing and per_minibatch:
                batch_advantages = _standardise(batch_advantages, sample_std)
            policy_loss = clipped_surrogate_loss(new_log_probs, batch_old, batch_advantages, config.clip_eps) \
                if mistake not in _SURROGATE_MISTAKES else _mistaken_surrogate(new_log_probs, batch_old,
                                                                               batch_advantages, config.clip_eps,
                                                                               mistake)
            actor_loss = policy_loss + entropy_bonus_loss(entropy, config.ent_coef) * (
                -1 if mistake == "entropy_sign_flipped" else 1)
            critic_loss = value_loss(value_net(obs[batch_idx]), returns[batch_idx]) * (
                2 if mistake == "value_loss_without_half" else 1)
            if mistake == "joint_grad_clipping":
                actor_optimizer.zero_grad()
                critic_optimizer.zero_grad()
                (actor_loss + critic_loss).backward()
                if max_norm is not None:
                    torch.nn.utils.clip_grad_norm_(actor_parameters + critic_parameters, max_norm)
                actor_optimizer.step()
                critic_optimizer.step()
            else:
                actor_optimizer.zero_grad()
                actor_loss.backward()
                _clip_and_step(actor_optimizer, actor_parameters, max_norm)
                critic_optimizer.zero_grad()
                critic_loss.backward()
                _clip_and_step(critic_optimizer, critic_parameters, critic_max_norm)
            with torch.no_grad():
                if mistake == "kl_after_step":
                    new_log_probs = categorical_log_prob(policy(obs[batch_idx]), actions[batch_idx])
                ratio = (new_log_probs - batch_old).exp()  # [b]
                kl = approx_kl(new_log_probs, batch_old) if mistake == "kl_swapped" else \
                    (batch_old - new_log_probs).mean() if mistake == "kl_k1" else approx_kl(batch_old, new_log_probs)
                kls.append(float(kl))
                upper_only = mistake == "clip_fraction_upper_only"
                fractions.append(float((ratio > 1 + config.clip_eps).float().mean()) if upper_only
                                 else float(clip_fraction(ratio, config.clip_eps)))
            policy_losses.append(float(policy_loss.detach()))
            value_losses.append(float(critic_loss.detach()))
            entropies.append(float(entropy.detach().mean()))
    with torch.no_grad():
        if mistake == "ev_before_update":
            values_for_ev = _flatten_valid(rollout, mask, rollout.values)[0]
        else:
            values_for_ev = value_net(obs)
        ev = explained_variance(values_for_ev, returns) if mistake != "ev_of_values" else \
            float(1 - values_for_ev.double().var(unbiased=False) / returns.double().var(unbiased=False))
    if mistake == "kl_last_minibatch":
        kls = kls[-1:]
    if mistake == "clip_fraction_last":
        fractions = fractions[-1:]

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)  # summed in order, as the package's loop does
    return {"approx_kl": mean(kls), "clip_fraction": mean(fractions), "explained_variance": ev,
            "policy_loss": mean(policy_losses), "value_loss": mean(value_losses), "entropy": mean(entropies)}


# (mistake, hint, the fields it changes): the known wrong versions of ppo_update, in the order the check tries them
UPDATE_MISTAKE_HINTS: list[tuple[str, str, tuple[str, ...]]] = [
    ("old_log_probs_from_current",
     "the 'old' log-probs are recomputed from the policy being updated, so the ratio is always 1 and "
     "nothing is ever clipped: pi_old is the policy that COLLECTED the rollout, and its log-probs are the "
     "ones stored in the rollout (constants for the whole update).",
     ("policy", "approx_kl", "clip_fraction")),
    ("old_log_probs_per_epoch",
     "pi_old moves from epoch to epoch (log-probs recomputed at the start of each epoch): it must stay "
     "the policy that collected the rollout for every epoch of the update.",
     ("policy",)),
    ("reset_steps_trained",
     "reset steps are in your batch: the minibatch indices count the valid transitions only (the rows "
     "with valid = True, in [t, n] order), so flatten with the valid mask before indexing.",
     ("policy", "value_net")),
    ("normalization_level_swapped",
     "the advantages are normalised at the wrong level: config.normalize_per_minibatch says whether to "
     "standardise each minibatch or the whole batch once (False: once, before the epochs).",
     ("policy",)),
    ("normalization_flag_ignored",
     "config.normalize_advantages is not followed: standardise the advantages only when it is True.",
     ("policy",)),
    ("joint_grad_clipping",
     "the gradient norm is clipped over both networks together: the exercise clips each network's "
     "gradient to its own limit (config.max_grad_norm, config.critic_max_grad_norm). One clip over both "
     "scales the actor's gradient by a factor the critic's larger gradient sets (Adam largely undoes a "
     "steady factor, lesson 06), but the update is not the one specified.",
     ("policy", "value_net")),
    ("no_actor_clipping",
     "the actor's gradient is not clipped: clip the policy's gradient norm to config.max_grad_norm before "
     "its optimiser steps, as the critic's to config.critic_max_grad_norm.",
     ("policy",)),
    ("max_not_min",
     "max instead of min: PPO keeps the pessimistic MIN of the unclipped and the clipped surrogate "
     "(negated into a loss, that is the max of the negated terms).",
     ("policy",)),
    ("surrogate_sign",
     "the actor's loss has the wrong sign: the loss is the NEGATIVE of the clipped surrogate (minimising "
     "+surrogate makes the actions with a positive advantage less likely). Negate the mean of the min.",
     ("policy",)),
    ("clipped_only",
     "only the clipped term is kept: PPO takes the MIN of the unclipped and the clipped surrogate, which keeps "
     "the full penalty where the ratio moved the wrong way.",
     ("policy",)),
    ("advantage_clipped",
     "you clip the advantage: clip the ratio, not the advantage (the ratio is what must stay within "
     "[1 - clip_eps, 1 + clip_eps]; the advantage multiplies it unclipped).",
     ("policy",)),
    ("ratio_inverted",
     "the ratio is upside down: it is pi_new / pi_old, the exp of the new log-probs minus the stored old ones.",
     ("policy",)),
    ("value_loss_without_half",
     "the critic's loss lacks its half: it is half the mean squared error, 0.5 * mean((V - R)^2) (Adam "
     "would hide a constant factor, but the gradient clip does not).",
     ("value_net",)),
    ("no_grad_clipping",
     "the gradients are not clipped: clip each network's gradient norm to config.max_grad_norm and "
     "config.critic_max_grad_norm (None means no clipping) before its optimiser steps.",
     ("policy", "value_net")),
    ("kl_swapped",
     "approx_kl has its arguments swapped (the inverse ratio): with rho = exp(new log-probs - old "
     "log-probs) = pi_new / pi_old, k3 is mean((rho - 1) - log rho), an estimate of KL(pi_old || pi_new) "
     "from actions sampled by pi_old.",
     ("approx_kl",)),
    ("kl_k1",
     "approx_kl is k1, the mean of -log rho (it can be negative, and is noisy): report k3, mean((rho - 1) - log "
     "rho), with rho = pi_new / pi_old on the rollout's actions.",
     ("approx_kl",)),
    ("kl_after_step",
     "approx_kl and clip_fraction are measured after the optimiser step: measure them on the log-probs "
     "of the forward pass that the step's loss used.",
     ("approx_kl", "clip_fraction")),
    ("kl_last_minibatch",
     "approx_kl is the last minibatch's only: report the mean over all gradient steps of the update.",
     ("approx_kl",)),
    ("clip_fraction_last",
     "clip_fraction is the last gradient step's: report the mean over all gradient steps of the update, as for "
     "approx_kl.",
     ("clip_fraction",)),
    ("clip_fraction_upper_only",
     "clip_fraction counts only ratios above 1 + clip_eps: count both sides of the clip range.",
     ("clip_fraction",)),
    ("entropy_sign_flipped",
     "the entropy term has the wrong sign: the actor's loss SUBTRACTS ent_coef x the mean entropy (a "
     "bonus that keeps the policy exploring); added, it pushes the policy to collapse.",
     ("policy",)),
    ("advantages_from_current_critic",
     "the advantages are recomputed from the critic being updated (returns - V(s) inside the loop): use "
     "the advantages given, computed once by GAE from the rollout's values.",
     ("policy",)),
    ("ev_before_update",
     "explained_variance uses the values stored in the rollout: measure it with the critic's "
     "predictions AFTER the update, on the whole batch of valid transitions.",
     ("explained_variance",)),
    ("ev_of_values",
     "explained_variance compares the variance of the predictions with that of the returns: it is "
     "1 - Var(returns - predictions) / Var(returns), one minus the variance of the critic's ERRORS over that "
     "of the returns.",
     ("explained_variance",)),
]


def reference_train_ppo(envs, config: PPOConfig, collect=reference_collect_rollout,
                        advantages_fn=reference_advantages_and_returns, update=reference_ppo_update):
    """PPO on ``envs`` with ``config``, seeded as ``pg.train`` seeds: returns ``(policy, value_net, history)``."""
    torch.manual_seed(config.seed)
    obs, _ = envs.reset(seed=config.seed)
    obs_dim, n_actions = envs.single_observation_space.shape[0], int(envs.single_action_space.n)
    policy = CategoricalPolicy(obs_dim, n_actions, config.hidden_sizes)
    value_net = ValueNet(obs_dim, config.hidden_sizes)
    actor_optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr, eps=config.adam_eps)
    critic_optimizer = torch.optim.Adam(value_net.parameters(), lr=config.critic_lr, eps=config.adam_eps)
    generator = torch.Generator().manual_seed(config.seed)
    start = (obs, np.zeros(envs.num_envs, dtype=bool))
    transitions, history = 0, []
    while transitions < config.total_steps:
        if config.anneal_lr:
            fraction_left = max(0.0, 1.0 - transitions / config.total_steps)
            actor_optimizer.param_groups[0]["lr"] = fraction_left * config.lr
            critic_optimizer.param_groups[0]["lr"] = fraction_left * config.critic_lr
        rollout, start = collect(envs, policy, value_net, start, config.n_steps)
        transitions += int(rollout.valid.sum())
        advantages, returns = advantages_fn(*_gae_fields(rollout), config.gamma, config.gae_lambda)
        batch_size = int(rollout.valid.sum())
        minibatches = [minibatch_indices(batch_size, config.minibatch_size, generator)
                       for _ in range(config.update_epochs)]
        history.append(update(policy, value_net, actor_optimizer, critic_optimizer, rollout, advantages, returns,
                              minibatches, config))
    return policy, value_net, history


def _gae_variant(rewards, values, next_values, terminated, truncated, gamma: float, lam: float, *,
                 bootstrap: str = "not_terminated", trace: str = "not_done", env_axis: bool = False,
                 forwards: bool = False, swap: bool = False, no_lambda: bool = False,
                 use_next_values: bool = True) -> Tensor:
    """GAE with its masks chosen explicitly, to reproduce the classic mistakes."""
    values, next_values = values.detach(), next_values.detach()
    if not use_next_values:  # V(s_{t+1}) read from the next row, nothing after the last step
        next_values = torch.cat([values[1:], torch.zeros_like(values[:1])])
    if swap:
        values, next_values = next_values, values
    if env_axis:
        rewards, terminated, truncated, values, next_values = (x.T for x in (rewards, terminated, truncated, values,
                                                                            next_values))
    masks = {"not_terminated": 1 - terminated, "not_done": 1 - torch.clamp(terminated + truncated, max=1),
             "always": torch.ones_like(rewards), "flag_sum": 1 - (terminated + truncated)}
    deltas = rewards + gamma * masks[bootstrap] * next_values - values
    keep = masks[trace]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    steps = range(rewards.shape[0]) if forwards else range(rewards.shape[0] - 1, -1, -1)
    for t in steps:
        running = deltas[t] + gamma * (1.0 if no_lambda else lam) * keep[t] * running
        advantages[t] = running
    return advantages.T if env_axis else advantages


def _gae_mistake(**knobs: Any) -> Callable[..., tuple[Tensor, Tensor]]:
    def compute(rewards, values, next_values, terminated, truncated, gamma, lam):
        advantages = _gae_variant(rewards, values, next_values, terminated, truncated, gamma, lam, **knobs)
        return advantages, advantages + values.detach()
    return compute
