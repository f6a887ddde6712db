"""Exercise 04b's PPO-gradient proof: the steps of a learner's actor follow PPO's loss.

Called by the glue recorder of ``loops.py`` (``GlueRecorder.finish(output, config)``) on what it recorded while
the learner's ``train_ppo`` ran, in the notebook and in the grader's sandbox alike. Imports only torch and numpy:
the grader copies it into its sandbox next to ``loops.py``.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

# The PPO-gradient proof of exercise 04b's train_ppo: every step of the actor's optimiser must apply the gradient
# of PPO's clipped surrogate (config.clip_eps, minus config.ent_coef times the entropy) on a minibatch of the
# rollout just played, the advantages being GAE (config.gamma, config.gae_lambda) with the critic the rollout was
# played with, standardised as the config says (population or sample std: either is accepted), at the weights the
# step starts from, and pi_old the policy that played the rollout. Recomputed here from what the recorder saw (the
# envs' steps, the optimisers' weights and gradients, the observations the policy was called on), not from anything
# the loop reports. The gradient may be clipped to config.max_grad_norm (torch.nn.utils.clip_grad_norm_) or not.
# Measured on tests/wrong_loops.py's train_ppo loops (seed 0, 2,000 and 10,000 steps, this CPU): the five correct
# loops (the reference, Categorical.log_prob, log_softmax + gather, other minibatch code, the sample std) at most
# 2.3e-6 of the gradient's size; the loops on another loss at least 1.86 (soft imitation of a hand-made controller),
# 9.9 (+1/-1 agreement with it as the advantages), 12.7 (pi_old the policy being updated). GRADIENT_TOLERANCE sits
# more than two orders of magnitude from both.
GRADIENT_TOLERANCE = 1e-3


def _load_flat(module: nn.Module, flat: Tensor) -> list[Tensor]:
    params = list(module.parameters())
    torch.nn.utils.vector_to_parameters(flat.to(params[0].dtype), params)
    return params


def _gae(rewards: np.ndarray, values: Tensor, next_values: Tensor, terminated: np.ndarray, truncated: np.ndarray,
         gamma: float, lam: float) -> Tensor:
    """GAE over [T, N] steps (pgcourse.rl.returns.compute_gae's recursion): the trace is cut at every episode end,
    the bootstrap only at a termination."""
    not_terminated = torch.as_tensor(~terminated, dtype=torch.float32)  # [T, N]
    not_done = torch.as_tensor(~(terminated | truncated), dtype=torch.float32)  # [T, N]
    deltas = torch.as_tensor(rewards) + gamma * not_terminated * next_values - values  # [T, N]
    advantages, running = torch.zeros_like(deltas), torch.zeros_like(deltas[0])
    for t in reversed(range(deltas.shape[0])):
        running = deltas[t] + gamma * lam * not_done[t] * running
        advantages[t] = running
    return advantages


def _module_with(modules: dict[int, nn.Module], record: dict[str, Any]) -> nn.Module | None:
    """The module called on observations whose parameters are exactly those ``record``'s optimiser steps."""
    wanted = [id(p) for group in record["optimizer"].param_groups for p in group["params"]]
    for module in modules.values():
        if [id(p) for p in module.parameters()] == wanted:
            return module
    return None


def _standardised(advantages: Tensor, how: str) -> Tensor:
    if how == "none":
        return advantages
    std = advantages.std(unbiased=(how == "sample")) if advantages.numel() > 1 else advantages.new_zeros(())
    return (advantages - advantages.mean()) / (std + 1e-8)


def ppo_gradient_proof(recorder: Any, config: Any) -> dict[str, Any] | None:
    """How far each actor step's gradient is from PPO's (see the comment above): ``{"checked", "unmatched",
    "worst", "worst_at": [update, step in it]}``; None when the record has nothing to check (the glue rules
    report that). A step's gap is that of the latest call of the policy PPO's loss explains (within
    GRADIENT_TOLERANCE), or, when none does, the smallest over its calls; ``worst`` the largest step gap."""
    records = list(recorder.optimizers.values())
    actor = next((r for r in records if r["shapes"] and r["shapes"][-1] == [recorder.n_actions]), None)
    critic = next((r for r in records if r["shapes"] and r["shapes"][-1] == [1]), None)
    if actor is None or critic is None or not recorder.actor_steps or not recorder.env_steps:
        return None
    policy_module, critic_module = (_module_with(recorder.obs_modules, r) for r in (actor, critic))
    if policy_module is None or critic_module is None:
        return {"error": "the networks the optimisers step were never called on observations"}
    policy, value_net = copy.deepcopy(policy_module).cpu().float(), copy.deepcopy(critic_module).cpu().float()
    obs = torch.stack([torch.as_tensor(row[0]) for row in recorder.env_steps])  # [S, N, obs_dim]
    actions = torch.as_tensor(np.stack([row[1] for row in recorder.env_steps])).long()  # [S, N]
    rewards = np.stack([row[2] for row in recorder.env_steps])  # [S, N]
    terminated, truncated = (np.stack([row[k] for row in recorder.env_steps]) for k in (3, 4))  # [S, N]
    next_obs = torch.as_tensor(np.stack([row[5] for row in recorder.env_steps]))  # [S, N, obs_dim]
    valid = np.ones_like(terminated)
    valid[1:] = ~(terminated[:-1] | truncated[:-1])  # the step after an episode end only resets that env
    per_minibatch = bool(config.normalize_advantages and config.normalize_per_minibatch)
    batch_norms = ("population", "sample") if config.normalize_advantages and not per_minibatch else ("none",)
    minibatch_norms = ("population", "sample") if per_minibatch else ("none",)
    by_update: dict[int, list[dict[str, Any]]] = {}
    for step in recorder.actor_steps:
        by_update.setdefault(step["clock"], []).append(step)
    ends = sorted(by_update)
    starts = [0, *ends[:-1]]
    checked, unmatched, worst, worst_at, truncations = 0, 0, 0.0, None, 0
    explains = {"stale": True, "cut": True, "flipped": True}  # the mistake explains every step PPO does not
    for u, (start, end) in enumerate(zip(starts, ends)):
        critic_weights = recorder.critic_at.get(end)
        if critic_weights is None or end <= start:
            continue
        with torch.no_grad():
            _load_flat(value_net, critic_weights)
            window = slice(start, end)
            values = value_net(obs[window].reshape(-1, recorder.obs_dim)).reshape(end - start, -1)  # [T, N]
            next_values = value_net(next_obs[window].reshape(-1, recorder.obs_dim)).reshape(end - start, -1)
            advantages = _gae(rewards[window], values, next_values, terminated[window], truncated[window],
                              float(config.gamma), float(config.gae_lambda))  # [T, N]
            # the mistake's advantages: a truncated step's bootstrap cut as at a termination
            cut = _gae(rewards[window], values, next_values, terminated[window] | truncated[window], truncated[window],
                       float(config.gamma), float(config.gae_lambda))  # [T, N]
            mask = torch.as_tensor(valid[window]).reshape(-1)  # [T * N] in [t, n] order
            batch_obs = obs[window].reshape(-1, recorder.obs_dim)[mask]  # [B, obs_dim]
            batch_actions = actions[window].reshape(-1)[mask]  # [B]
            batch_advantages = advantages.reshape(-1)[mask]  # [B]
            cut_advantages = cut.reshape(-1)[mask]  # [B]
            truncations += int(truncated[window].sum())
            _load_flat(policy, by_update[end][0]["theta"])  # pi_old: the policy before the update's first step
            old_log_probs = torch.log_softmax(policy(batch_obs), -1).gather(-1, batch_actions[:, None]).squeeze(-1)
        row_of = {row.numpy().tobytes(): i for i, row in enumerate(batch_obs)}
        normalised = {how: _standardised(batch_advantages, how) for how in batch_norms}
        normalised_cut = {how: _standardised(cut_advantages, how) for how in batch_norms}
        for j, step in enumerate(by_update[end]):
            params = _load_flat(policy, step["theta"])
            candidates = []  # the policy's calls on rows of this batch since the last step: (rows, log-probs, entropy)
            for candidate in step["inputs"]:
                rows = [row_of.get(row.numpy().tobytes()) for row in candidate]
                if any(index is None for index in rows):
                    continue
                idx = torch.as_tensor(rows)
                log_pi = torch.log_softmax(policy(batch_obs[idx]), -1)  # [b, n_actions]
                new_log_probs = log_pi.gather(-1, batch_actions[idx][:, None]).squeeze(-1)  # [b]
                candidates.append((idx, new_log_probs, -(log_pi.exp() * log_pi).sum(-1).mean()))
            # PPO's loss first, the latest call first: the first candidate it explains ends the search (the first
            # actor step of an update also sees each of the rollout's calls, 64 for the check's run: searched first to
            # last, 93% of the proof's gradients went to them). The mistakes' variants only for a step PPO does not
            # explain (stale: the ratio's pi_old the policy being updated; cut: the advantages of a loop that treats a
            # truncation as a termination; flipped: the surrogate's sign flipped, entropy kept), searched the same
            # way, and only while no earlier step has ruled the mistake out
            gaps = dict.fromkeys(("ppo", "stale", "cut", "flipped"), math.inf)
            for variant in gaps:
                if variant != "ppo" and gaps["ppo"] <= GRADIENT_TOLERANCE:
                    break  # PPO's gradient explains the step: the mistakes' variants are not needed
                if not explains.get(variant, True):
                    continue
                table = normalised_cut if variant == "cut" else normalised
                for idx, new_log_probs, entropy in reversed(candidates):
                    if gaps[variant] <= GRADIENT_TOLERANCE:
                        break
                    ratio = torch.exp(new_log_probs - (new_log_probs.detach() if variant == "stale" else
                                                       old_log_probs[idx]))
                    for batch_how, mini_how in ((b, m) for b in batch_norms for m in minibatch_norms):
                        adv = _standardised(table[batch_how][idx], mini_how)  # [b]
                        clipped = torch.clamp(ratio, 1 - config.clip_eps, 1 + config.clip_eps)
                        surrogate = torch.min(ratio * adv, clipped * adv).mean()
                        loss = (surrogate if variant == "flipped" else -surrogate) - config.ent_coef * entropy
                        gap = _relative_gap(step["grad"], loss, params, config.max_grad_norm)
                        gaps[variant] = min(gaps[variant], gap)
                        if gap <= GRADIENT_TOLERANCE:
                            break  # one way of standardising explains it (population or sample std)
            best = gaps["ppo"]
            if best == math.inf:
                unmatched += 1
                continue
            checked += 1
            if best > GRADIENT_TOLERANCE:
                for mistake in explains:
                    explains[mistake] = explains[mistake] and gaps[mistake] <= GRADIENT_TOLERANCE
            if best > worst:
                worst, worst_at = best, [u + 1, j + 1]
    return {"checked": checked, "unmatched": unmatched, "worst": worst, "worst_at": worst_at,
            "ratio_always_one": bool(worst > GRADIENT_TOLERANCE and explains["stale"]),
            "truncation_as_termination": bool(worst > GRADIENT_TOLERANCE and explains["cut"] and truncations),
            "surrogate_sign_flipped": bool(worst > GRADIENT_TOLERANCE and explains["flipped"]),
            "truncations": truncations}


def _relative_gap(applied: Tensor, loss: Tensor, params: list[Tensor], max_grad_norm: float | None) -> float:
    """|applied - g| / |g| for g the gradient of ``loss``, clipped to ``max_grad_norm`` as
    torch.nn.utils.clip_grad_norm_ clips it, or not clipped (the smaller of the two gaps)."""
    grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=True)])
    norm = float(grad.norm())
    scales = [1.0] + ([min(1.0, max_grad_norm / (norm + 1e-6))] if max_grad_norm is not None else [])
    return min(float((applied - scale * grad).norm() / (scale * grad.norm() + 1e-12)) for scale in scales)
