"""The planted bugs ("traps") of the debugging chapter (lesson 06): what each one is, and how it plugs in.

``pg.train("ppo", "CartPole-v1", traps=("joint_grad_clip",))`` trains the course's PPO with one bug
planted; with ``traps=()`` nothing here runs and every algorithm is exactly the correct one. The loops
under ``pgcourse/algorithms`` know nothing about traps: :func:`plant` replaces pieces from outside,
through the three seams every loop already has:

- **Components** (the math a learner can also replace): a wrong GAE, a flipped or undetached loss,
  a ratio from raw probabilities, a log-prob not summed, an entropy bonus with the wrong sign.
- **Hooks** (named steps of the loops): ``actor_critic_step`` (one optimiser and one gradient clip over
  actor + critic, or one backward through a shared graph), ``act`` (store the clipped action),
  ``old_log_probs`` (recompute pi_old from the policy being updated).
- **Config presets**: values a trap writes into the config (``long_rollout``, ``low_critic_lr``,
  ``per_minibatch_adv_norm``, ``entropy_wrong_sign``'s ``ent_coef``), so ``run.config`` records them.

Each buggy function sits next to a comment saying what it gets wrong. The lesson's experiments, the
bug hunt and ``pg.diagnose`` live in :mod:`pgcourse.course.debugging`.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import diagnostics
from .algorithms.components import Components
from .algorithms.trainer import Hooks, sample_actions
from .config import BaseConfig, ConfigError

ALL = ("reinforce", "reinforce_baseline", "a2c", "ppo")
ACTOR_CRITIC = ("a2c", "ppo")

# name -> (algorithms that implement it, one-line description)
TRAPS: dict[str, tuple[tuple[str, ...], str]] = {
    # the three root causes of the "flat-line" diary
    "joint_grad_clip": (ACTOR_CRITIC, "one Adam over actor+critic, one loss, one clip_grad_norm_ over both networks "
                                      "(the critic's big gradient sets one clip factor that scales the actor's gradient too)"),
    "long_rollout": (("ppo",), "16 envs x 256 steps per rollout, 4 epochs of 4 minibatches: 16 gradient steps per "
                               "4096 transitions (CartPole default: 40 per 512)"),
    "low_critic_lr": (ACTOR_CRITIC, "critic_lr = 3e-4 (and actor lr = 3e-4), too slow to fit returns that grow "
                                    "as the policy learns (on CartPole towards 1/(1-gamma) = 100)"),
    # the classic mistakes
    "truncation_as_termination": (ACTOR_CRITIC, "GAE cuts the bootstrap on truncation too (time limit treated as "
                                                "a terminal state)"),
    "advantage_sign_flipped": (ALL, "the policy loss uses -A: it makes bad actions more likely"),
    "missing_detach": (ALL, "the policy loss does not detach the advantages that weight log pi, so its gradient "
                            "flows into whatever computed them (the critic, in REINFORCE with baseline)"),
    "ratio_from_probs": (("ppo",), "PPO ratio as exp(new)/exp(old) instead of exp(new - old): equal in exact "
                                "arithmetic, but a very unlikely action underflows to 0/0"),
    "log_prob_not_summed": (ACTOR_CRITIC, "Gaussian log-prob returned per action dimension [B, D], not summed to [B]"),
    "clipped_action_log_prob": (ACTOR_CRITIC, "the sampled action is clipped to the bounds before it and its "
                                              "log-prob are stored"),
    "stale_old_log_probs": (("ppo",), "the 'old' log-probs are recomputed from the policy being updated, so the "
                                      "ratio is always 1 and nothing is clipped"),
    "entropy_wrong_sign": (ALL, "entropy term +beta H instead of -beta H (sets ent_coef=0.01 if it was 0): "
                                "the bonus punishes exploration"),
    "per_minibatch_adv_norm": (("ppo",), "advantages normalised per minibatch instead of once per batch"),
}

# Traps that act on continuous (Box) actions only: planted in a Discrete run they change nothing
BOX_ONLY = ("log_prob_not_summed", "clipped_action_log_prob")

# Config values a trap writes into the run's config (recorded in run.config). Values are exactly these.
PRESETS: dict[str, dict[str, Any]] = {
    "long_rollout": dict(num_envs=16, n_steps=256, minibatch_size=1024, update_epochs=4),
    "low_critic_lr": dict(lr=3e-4, critic_lr=3e-4),
    "per_minibatch_adv_norm": dict(normalize_per_minibatch=True),
}

# The buggy PPO of the diary = the correct PPO with its three root causes switched on.
FLAT_LINE_TRAPS = ("joint_grad_clip", "long_rollout", "low_critic_lr")


def validate_traps(algo: str, traps: tuple[str, ...]) -> None:
    """Raise :class:`ConfigError` for an unknown trap or one that ``algo`` does not have."""
    for name in traps:
        if name not in TRAPS:
            raise ConfigError(f"traps: unknown trap {name!r}; known traps: {sorted(TRAPS)}")
        algos, _ = TRAPS[name]
        if algo not in algos:
            raise ConfigError(f"traps: {name!r} is implemented for {algos}, not for algo={algo!r}")


def describe() -> dict[str, str]:
    """Name -> what the trap does, for the lesson's table."""
    return {name: description for name, (_, description) in TRAPS.items()}


# --------------------------------------------------------------------------------------------------
# The buggy pieces of math. Each wraps the piece it replaces (so a learner's own function still runs).
# --------------------------------------------------------------------------------------------------

def gae_truncation_as_termination(compute_gae: Callable) -> Callable:
    """GAE that treats ``truncated`` as ``terminated``: no bootstrap from V(s') at a time limit."""
    def buggy_compute_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
        done = torch.maximum(terminated.float(), truncated.float())  # BUG: a time limit is not a terminal state
        return compute_gae(rewards, values, next_values, done, truncated, gamma, lam)
    return buggy_compute_gae


def flipped_reinforce_loss(reinforce_loss: Callable) -> Callable:
    def buggy_reinforce_loss(log_probs, weights):
        return reinforce_loss(log_probs, -weights)  # BUG: ascends -A
    return buggy_reinforce_loss


def flipped_a2c_policy_loss(a2c_policy_loss: Callable) -> Callable:
    def buggy_a2c_policy_loss(log_probs, advantages, entropy, ent_coef):
        return a2c_policy_loss(log_probs, -advantages, entropy, ent_coef)  # BUG: ascends -A
    return buggy_a2c_policy_loss


def flipped_surrogate_loss(surrogate: Callable) -> Callable:
    def buggy_clipped_surrogate_loss(new_log_probs, old_log_probs, advantages, clip_eps):
        return surrogate(new_log_probs, old_log_probs, -advantages, clip_eps)  # BUG: ascends -A
    return buggy_clipped_surrogate_loss


def reinforce_loss_no_detach(log_probs: Tensor, weights: Tensor) -> Tensor:
    """``-mean(log pi * w)`` without ``w.detach()``: the gradient also flows into ``w``'s graph."""
    return -(log_probs * weights).mean()  # BUG: weights are not constants


def baseline_advantages_no_detach(returns: Tensor, values: Tensor) -> Tensor:
    return returns - values  # BUG: V keeps its graph, so the actor's loss pushes gradient into the critic


def a2c_policy_loss_no_detach(log_probs: Tensor, advantages: Tensor, entropy: Tensor, ent_coef: float) -> Tensor:
    return -(log_probs * advantages).mean() - ent_coef * entropy.mean()  # BUG: advantages not detached


def surrogate_no_detach(new_log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, clip_eps: float) -> Tensor:
    ratio = torch.exp(new_log_probs - old_log_probs.detach())
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return -torch.min(ratio * advantages, clipped * advantages).mean()  # BUG: advantages not detached


def surrogate_ratio_from_probs(new_log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor,
                               clip_eps: float) -> Tensor:
    """PPO's clipped surrogate with the ratio formed from raw probabilities (0/0 = NaN once they underflow)."""
    ratio = torch.exp(new_log_probs) / torch.exp(old_log_probs.detach())  # BUG: underflows below log p ~ -87 (float32)
    advantages = advantages.detach()
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return -torch.min(ratio * advantages, clipped * advantages).mean()


def gaussian_log_prob_not_summed(mean: Tensor, log_std: Tensor, actions: Tensor) -> Tensor:
    """Per-dimension Gaussian log-density ``[B, D]``: the missing ``.sum(-1)``."""
    log_std = log_std.expand_as(mean)
    z = (actions - mean) / torch.exp(log_std)
    return -0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)  # BUG: no .sum(dim=-1); [B, D] broadcasts


def entropy_bonus_wrong_sign(entropy: Tensor, ent_coef: float) -> Tensor:
    return ent_coef * entropy.mean()  # BUG: +beta H; minimising it lowers the entropy


def a2c_policy_loss_entropy_wrong_sign(a2c_policy_loss: Callable) -> Callable:
    def buggy_a2c_policy_loss(log_probs, advantages, entropy, ent_coef):
        return a2c_policy_loss(log_probs, advantages, entropy, -ent_coef)  # BUG: +beta H
    return buggy_a2c_policy_loss


# --------------------------------------------------------------------------------------------------
# The buggy steps (replacements for Hooks)
# --------------------------------------------------------------------------------------------------

def joint_clip_step() -> Callable:
    """The ``joint_grad_clip`` step: one Adam over actor + critic, one backward of the summed loss, one
    ``clip_grad_norm_`` over all parameters. Returns the actor's and the critic's gradient norms *before*
    clipping (their ratio is the diagnostic). Each training run gets its own step (and optimiser)."""
    joint: dict[str, torch.optim.Optimizer] = {}

    def joint_clip_and_step(trainer, actor_loss: Tensor, critic_loss: Tensor) -> tuple[float, float]:
        actor_params, critic_params = list(trainer.policy.parameters()), list(trainer.value_net.parameters())
        if "optimizer" not in joint:
            joint["optimizer"] = torch.optim.Adam(
                [{"params": actor_params, "lr": trainer.config.lr},
                 {"params": critic_params, "lr": trainer.config.critic_lr}], eps=trainer.config.adam_eps)
        optimizer = joint["optimizer"]
        # follow the (possibly annealed) learning rates of the two regular optimisers
        optimizer.param_groups[0]["lr"] = trainer.actor_optimizer.param_groups[0]["lr"]
        optimizer.param_groups[1]["lr"] = trainer.critic_optimizer.param_groups[0]["lr"]
        optimizer.zero_grad()
        (actor_loss + critic_loss).backward()  # BUG: one loss, one optimiser ...
        actor_norm, critic_norm = diagnostics.grad_norm(actor_params), diagnostics.grad_norm(critic_params)
        if trainer.config.max_grad_norm is not None:  # ... and one clip: the critic's norm sets the actor's step
            torch.nn.utils.clip_grad_norm_(actor_params + critic_params, trainer.config.max_grad_norm)
        optimizer.step()
        return actor_norm, critic_norm

    joint_clip_and_step.clips_networks_together = True  # pg.train_many's batched loop clips each agent so
    return joint_clip_and_step


def one_backward_step(trainer, actor_loss: Tensor, critic_loss: Tensor) -> tuple[float, float]:
    """Both losses summed and backpropagated once, then each network clipped and stepped: what a learner
    writes with one loss. Harmless when the actor's weights are constants; with ``missing_detach`` the
    actor's gradient lands in the critic."""
    trainer.actor_optimizer.zero_grad()
    trainer.critic_optimizer.zero_grad()
    (actor_loss + critic_loss).backward()
    actor_norm = trainer.clip_and_step(trainer.actor_optimizer, trainer.policy.parameters(),
                                       trainer.config.max_grad_norm)
    critic_norm = trainer.clip_and_step(trainer.critic_optimizer, trainer.value_net.parameters(),
                                        trainer.config.critic_max_grad_norm)
    return actor_norm, critic_norm


def act_storing_clipped_action(trainer, obs: Tensor) -> tuple[Tensor, Tensor]:
    """Sample, then store the action clipped to the bounds and *its* log-prob (Discrete actions have no
    bounds: there the step is the correct one)."""
    if trainer.action_kind != "continuous":
        return sample_actions(trainer, obs)
    actions, _ = sample_actions(trainer, obs)
    actions = trainer.components.env_action(actions, trainer.action_low, trainer.action_high)  # BUG: stored clipped
    log_probs = trainer.policy.log_prob_entropy(obs, actions, trainer.log_prob_fn, trainer.entropy_fn)[0]
    return actions, log_probs


def act_with_summed_log_prob(trainer, obs: Tensor) -> tuple[Tensor, Tensor]:
    """Sampling with the correct (summed) log-prob, so that only the update's log-prob is the buggy one:
    the two code paths of a real PPO that disagree."""
    return trainer.policy.sample(obs)


def old_log_probs_from_current_policy(stored: Tensor, new_log_probs: Tensor) -> Tensor:
    return new_log_probs.detach()  # BUG: pi_old recomputed from the policy being updated: the ratio is always 1


# --------------------------------------------------------------------------------------------------
# Planting
# --------------------------------------------------------------------------------------------------

def plant(config: BaseConfig, components: Components, hooks: Hooks) -> tuple[BaseConfig, Components, Hooks]:
    """Return a new config (presets written, re-validated), components and hooks with ``config.traps``
    planted. Nothing passed in is changed; with ``config.traps == ()`` they come back as they are."""
    validate_traps(config.algo, config.traps)
    settings: dict[str, Any] = {}
    parts: dict[str, Callable] = {}
    steps: dict[str, Callable] = {}
    for name in config.traps:
        settings.update(PRESETS.get(name, {}))
        if name == "entropy_wrong_sign":
            if config.ent_coef == 0.0:
                settings["ent_coef"] = 0.01
            parts["entropy_bonus_loss"] = entropy_bonus_wrong_sign
            parts["a2c_policy_loss"] = a2c_policy_loss_entropy_wrong_sign(components.a2c_policy_loss)
        elif name == "truncation_as_termination":
            parts["compute_gae"] = gae_truncation_as_termination(components.gae())
        elif name == "advantage_sign_flipped":
            parts["reinforce_loss"] = flipped_reinforce_loss(components.reinforce_loss)
            parts["a2c_policy_loss"] = flipped_a2c_policy_loss(components.a2c_policy_loss)
            parts["clipped_surrogate_loss"] = flipped_surrogate_loss(components.clipped_surrogate_loss)
        elif name == "missing_detach":
            parts["reinforce_loss"] = reinforce_loss_no_detach
            parts["baseline_advantages"] = baseline_advantages_no_detach
            parts["a2c_policy_loss"] = a2c_policy_loss_no_detach
            parts["clipped_surrogate_loss"] = surrogate_no_detach
            if config.algo == "reinforce_baseline":
                steps["actor_critic_step"] = one_backward_step
        elif name == "ratio_from_probs":
            parts["clipped_surrogate_loss"] = surrogate_ratio_from_probs
        elif name == "log_prob_not_summed":
            parts["gaussian_log_prob"] = gaussian_log_prob_not_summed
            steps["act"] = act_with_summed_log_prob
        elif name == "joint_grad_clip":
            steps["actor_critic_step"] = joint_clip_step()
        elif name == "clipped_action_log_prob":
            steps["act"] = act_storing_clipped_action
        elif name == "stale_old_log_probs":
            steps["old_log_probs"] = old_log_probs_from_current_policy
    return (dataclasses.replace(config, **settings), dataclasses.replace(components, **parts),
            dataclasses.replace(hooks, **steps))
