"""Checks of chapter 05 (continuous actions, Pendulum): gaussian_log_prob, gaussian_entropy, env_action."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .. import losses
from .harness import Case, Exercise, Mistake, _make_check, _randn, _t


# --------------------------------------------------------------------------------------------------
# gaussian_log_prob, gaussian_entropy, env_action
# --------------------------------------------------------------------------------------------------

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _gaussian_terms(mean: Tensor, log_std: Tensor, actions: Tensor) -> Tensor:
    """[B, D] per-dimension log-densities."""
    return -0.5 * ((actions - mean) / log_std.exp()) ** 2 - log_std - LOG_SQRT_2PI


def _cases_gaussian_log_prob() -> list[Case]:
    g = torch.Generator().manual_seed(16)

    def random_case(description, batch, dims, per_sample, dtype=torch.float32):
        std_shape = (batch, dims) if per_sample else (dims,)
        return Case(description, dict(mean=_randn(g, batch, dims, dtype=dtype, requires_grad=True),
                                      log_std=_randn(g, *std_shape, dtype=dtype, scale=0.5, requires_grad=True),
                                      actions=_randn(g, batch, dims, dtype=dtype, scale=1.5)))
    return [
        Case("B=1, D=1", dict(mean=_t([[0.0]], requires_grad=True), log_std=_t([0.0], requires_grad=True),
                              actions=_t([[1.0]]))),
        Case("B=2, D=2, log_std of shape [D]",
             dict(mean=_t([[0.0, 1.0], [0.5, -1.0]], requires_grad=True), log_std=_t([-0.5, 0.3], requires_grad=True),
                  actions=_t([[0.2, 1.5], [0.0, -2.0]]))),
        random_case("log_std of shape [B, D] (B=3, D=4)", 3, 4, True),
        random_case("float64 (B=4, D=2)", 4, 2, False, torch.float64),
        random_case("random (B=16, D=6)", 16, 6, False),
    ]


GAUSSIAN_LOG_PROB = Exercise(
    name="gaussian_log_prob",
    reference=losses.gaussian_log_prob,
    make_cases=_cases_gaussian_log_prob,
    concept="the log-density of each action vector under a diagonal Gaussian with the given mean and standard "
            "deviation exp(log_std): the action dimensions are independent, so it is the sum over the last dim "
            "of the one-dimensional Gaussian log-densities, one number per row.",
    grad_args=("mean", "log_std"),
    mistakes=[
        Mistake("Gaussian log-prob not summed over action dims: the dimensions are independent, so the joint "
                "log-prob is the SUM over the last dim, shape [B].",
                lambda mean, log_std, actions: _gaussian_terms(mean, log_std, actions)),
        Mistake("sum the per-dimension log-probs over the action dims, don't average them.",
                lambda mean, log_std, actions: _gaussian_terms(mean, log_std, actions).mean(-1)),
        Mistake("log_std used as std: log_std is the LOG of the standard deviation.",
                lambda mean, log_std, actions:
                (-0.5 * ((actions - mean) / log_std) ** 2 - torch.log(log_std) - LOG_SQRT_2PI).sum(-1)),
        Mistake("missing the normaliser -log(std) = -log_std in each dimension.",
                lambda mean, log_std, actions:
                (-0.5 * ((actions - mean) / log_std.exp()) ** 2 - LOG_SQRT_2PI).sum(-1)),
        Mistake("missing the constant -0.5 * log(2 pi) in each dimension.",
                lambda mean, log_std, actions:
                (-0.5 * ((actions - mean) / log_std.exp()) ** 2 - log_std).sum(-1)),
        Mistake("you divided (actions - mean) by the variance: standardise with the standard deviation.",
                lambda mean, log_std, actions:
                (-0.5 * ((actions - mean) / (2 * log_std).exp()) ** 2 - log_std - LOG_SQRT_2PI).sum(-1)),
        Mistake("sign flipped: you return the negative log-likelihood; this function returns log pi(a|s).",
                lambda mean, log_std, actions: -_gaussian_terms(mean, log_std, actions).sum(-1)),
    ],
)


def _cases_gaussian_entropy() -> list[Case]:
    g = torch.Generator().manual_seed(17)
    return [
        Case("D=1: a single action dim gives a scalar", dict(log_std=_t([0.0], requires_grad=True))),
        Case("log_std of shape [D], D=3", dict(log_std=_t([-0.5, 0.0, 0.7], requires_grad=True))),
        Case("[B, D] = [4, 2]", dict(log_std=_randn(g, 4, 2, scale=0.5, requires_grad=True))),
        Case("float64, [3, 5]", dict(log_std=_randn(g, 3, 5, dtype=torch.float64, scale=0.5, requires_grad=True))),
        Case("[2, 3, 5]: sum over the last dim only", dict(log_std=_randn(g, 2, 3, 5, scale=0.5,
                                                                          requires_grad=True))),
    ]


_ENTROPY_CONSTANT = 0.5 + LOG_SQRT_2PI  # 0.5 * log(2 pi e)

GAUSSIAN_ENTROPY = Exercise(
    name="gaussian_entropy",
    reference=losses.gaussian_entropy,
    make_cases=_cases_gaussian_entropy,
    concept="the entropy of a diagonal Gaussian with standard deviation exp(log_std): the action dimensions (the "
            "last dim) are independent, so it is the sum over the last dim of the one-dimensional entropies.",
    grad_args=("log_std",),
    mistakes=[
        Mistake("gaussian entropy not summed: the entropy of independent dimensions is the SUM over the last "
                "(action) dim.", lambda log_std: log_std + _ENTROPY_CONSTANT),
        Mistake("you summed over the first dim (dim=0): sum over the LAST dim, the action dimensions.",
                lambda log_std: (log_std + _ENTROPY_CONSTANT).sum(0)),
        Mistake("sum over the action dims, don't average them.",
                lambda log_std: (log_std + _ENTROPY_CONSTANT).mean(-1)),
        Mistake("missing the constant 0.5 * log(2 pi e) per dimension.", lambda log_std: log_std.sum(-1)),
        Mistake("the constant is 0.5 * log(2 pi e) = 0.5 + 0.5 * log(2 pi): you left out the 0.5 from e.",
                lambda log_std: (log_std + LOG_SQRT_2PI).sum(-1)),
        Mistake("the entropy depends on log(std) = log_std itself, not on std = exp(log_std).",
                lambda log_std: (log_std.exp() + _ENTROPY_CONSTANT).sum(-1)),
    ],
)


def _cases_env_action() -> list[Case]:
    g = torch.Generator().manual_seed(18)
    return [
        Case("B=1, D=1, inside the bounds", dict(actions=_t([[0.5]]), low=_t([-2.0]), high=_t([2.0]))),
        Case("Pendulum bounds [-2, 2] (B=4, D=1)", dict(actions=_t([[-3.0], [-1.0], [1.5], [2.5]]),
                                                        low=_t([-2.0]), high=_t([2.0]))),
        Case("asymmetric bounds (B=3, D=2)", dict(actions=_t([[-0.5, 4.0], [0.5, -2.0], [2.0, 0.0]]),
                                                  low=_t([0.0, -1.0]), high=_t([1.0, 3.0]))),
        Case("random (B=8, D=2)", dict(actions=_randn(g, 8, 2), low=_t([-0.4, -2.0]), high=_t([0.4, 2.0]))),
        Case("float64 (B=16, D=3)", dict(actions=_randn(g, 16, 3, dtype=torch.float64, scale=2.0),
                                         low=_t([-1.0, -2.0, 0.0], torch.float64),
                                         high=_t([1.0, 2.0, 0.5], torch.float64))),
    ]


ENV_ACTION = Exercise(
    name="env_action",
    reference=losses.env_action,
    make_cases=_cases_env_action,
    concept="a new tensor: the actions clipped into the box [low, high] of the environment, each dimension to "
            "its own bounds, the input left as it was.",
    inplace_hint="you clip `actions` in place (clamp_, out=, or assigning into it): the rollout must store the "
                 "action as SAMPLED (its log-prob is what PPO's ratio uses). Return a clipped copy instead.",
    mistakes=[
        Mistake("you return the actions unclipped: clip them to [low, high] before they go to env.step.",
                lambda actions, low, high: actions),
        Mistake("use the env's bounds low and high, not [-1, 1].", lambda actions, low, high: actions.clamp(-1, 1)),
        Mistake("clip both sides: you only applied the upper bound.",
                lambda actions, low, high: torch.minimum(actions, high)),
        Mistake("clip, don't squash: tanh rescaling changes actions that are already inside the bounds.",
                lambda actions, low, high: low + (high - low) * (torch.tanh(actions) + 1) / 2),
    ],
)


# --------------------------------------------------------------------------------------------------
# The checks of this chapter
# --------------------------------------------------------------------------------------------------

EXERCISES: list[Exercise] = [GAUSSIAN_LOG_PROB, GAUSSIAN_ENTROPY, ENV_ACTION]

check_gaussian_log_prob = _make_check(GAUSSIAN_LOG_PROB)
check_gaussian_entropy = _make_check(GAUSSIAN_ENTROPY)
check_env_action = _make_check(ENV_ACTION)

CHECKS: dict[str, Callable[[Callable[..., Any]], None]] = {
    "gaussian_log_prob": check_gaussian_log_prob,
    "gaussian_entropy": check_gaussian_entropy,
    "env_action": check_env_action,
}
