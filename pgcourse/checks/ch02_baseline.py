"""Checks of chapter 02 (REINFORCE with a baseline): baseline_advantages, value_loss, gradient_variance,
categorical_entropy."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .. import diagnostics, losses, returns
from .harness import Case, Exercise, Mistake, _make_check, _randn, _t


# --------------------------------------------------------------------------------------------------
# baseline_advantages, value_loss, gradient_variance, categorical_entropy
# --------------------------------------------------------------------------------------------------

def _cases_baseline_advantages() -> list[Case]:
    g = torch.Generator().manual_seed(5)
    return [
        Case("B=1", dict(returns=_t([3.0]), values=_t([1.0], requires_grad=True))),
        Case("B=5", dict(returns=_t([3.0, 1.0, 0.0, 2.5, -1.0]), values=_t([1.0, 1.5, 0.5, 2.5, 0.0],
                                                                            requires_grad=True))),
        Case("float64 (B=6)", dict(returns=_randn(g, 6, dtype=torch.float64, scale=5.0),
                                   values=_randn(g, 6, dtype=torch.float64, scale=5.0, requires_grad=True))),
        Case("random (B=12)", dict(returns=_randn(g, 12, scale=10.0, shift=20.0),
                                   values=_randn(g, 12, scale=10.0, shift=15.0, requires_grad=True))),
    ]


BASELINE_ADVANTAGES = Exercise(
    name="baseline_advantages",
    reference=returns.baseline_advantages,
    make_cases=_cases_baseline_advantages,
    concept="the advantage of each sample: its return minus the critic's value of its state, the values being "
            "constants here (no gradient flows through them).",
    detached_output_hint="missing .detach() on the values: the advantages are constants for the policy loss, so "
                         "no gradient may leak into the critic through them.",
    mistakes=[
        Mistake("sign flipped: an advantage says how much better than expected the outcome was (the return "
                "above the critic's value), not values - returns.", lambda returns_, values: values - returns_),
        Mistake("you return the returns unchanged: subtract the baseline values.", lambda returns_, values: returns_),
        Mistake("you normalise the advantages here: baseline_advantages only subtracts the baseline "
                "(normalisation is a separate step).",
                lambda returns_, values: returns.normalize(returns_ - values)),
    ],
)


def _cases_value_loss() -> list[Case]:
    g = torch.Generator().manual_seed(6)
    return [
        Case("B=1", dict(values=_t([1.0], requires_grad=True), returns=_t([3.0], requires_grad=True))),
        Case("B=4", dict(values=_t([1.0, 2.0, 0.0, -1.0], requires_grad=True),
                         returns=_t([1.5, 0.0, 0.0, 1.0], requires_grad=True))),
        Case("float64 (B=8)", dict(values=_randn(g, 8, dtype=torch.float64, requires_grad=True),
                                   returns=_randn(g, 8, dtype=torch.float64, scale=2.0))),
        Case("random (B=16)", dict(values=_randn(g, 16, requires_grad=True),
                                   returns=_randn(g, 16, scale=3.0, requires_grad=True))),
    ]


VALUE_LOSS = Exercise(
    name="value_loss",
    reference=losses.value_loss,
    make_cases=_cases_value_loss,
    concept="half the mean squared error between the critic's values and the returns, the returns being fixed "
            "regression targets (only the values get a gradient).",
    grad_args=("values",),
    leak_hints={"returns": "missing .detach() on the returns: they are regression targets, so only the critic's "
                           "values may get a gradient."},
    no_grad_hints={"values": "the critic must learn from this loss: do not detach the values (only the returns)."},
    mistakes=[
        Mistake("missing the factor 0.5 in front of the mean squared error.",
                lambda values, returns_: ((values - returns_) ** 2).mean()),
        Mistake("average the squared errors over the batch, not .sum(): the loss scale must not grow with the "
                "batch size.",
                lambda values, returns_: 0.5 * ((values - returns_) ** 2).sum()),
        Mistake("use the squared error, not the absolute error.",
                lambda values, returns_: 0.5 * (values - returns_).abs().mean()),
        Mistake("sign flipped: a squared-error loss is never negative; minimising it pulls the values towards "
                "the returns.", lambda values, returns_: -0.5 * ((values - returns_) ** 2).mean()),
    ],
)


def _cases_gradient_variance() -> list[Case]:
    g = torch.Generator().manual_seed(7)
    return [
        Case("K=2 samples of a 1-parameter gradient", dict(grads=_t([[1.0], [3.0]]))),
        Case("K=3 samples, P=2", dict(grads=_t([[1.0, 0.0], [2.0, 4.0], [3.0, 2.0]]))),
        Case("K=5 samples, P=1", dict(grads=_randn(g, 5, 1, scale=2.0, shift=1.0))),
        Case("float64, K=4, P=3", dict(grads=_randn(g, 4, 3, dtype=torch.float64, shift=0.5))),
        Case("random, K=10, P=5", dict(grads=_randn(g, 10, 5, shift=2.0))),
        Case("random, K=32, P=20", dict(grads=_randn(g, 32, 20, scale=0.1) + torch.linspace(-1, 1, 20))),
    ]


GRADIENT_VARIANCE = Exercise(
    name="gradient_variance",
    reference=diagnostics.gradient_variance,
    make_cases=_cases_gradient_variance,
    output="number",
    concept="the total variance of the K sampled gradients: the unbiased sample variance (divided by K-1) "
            "across the K samples of each of the P coordinates, summed over the coordinates.",
    mistakes=[
        Mistake("you computed the mean gradient, not its variance: measure the spread of the K samples around "
                "their mean with the sample variance across dim 0.", lambda grads: grads.mean(dim=0).sum()),
        Mistake("use the unbiased sample variance (divide by K-1, not by K).",
                lambda grads: grads.var(dim=0, unbiased=False).sum()),
        Mistake("variance along the wrong axis: take it across the K samples (dim=0) for each coordinate, "
                "then sum over the P coordinates.", lambda grads: grads.var(dim=1).sum()),
        Mistake("the total variance SUMS the per-coordinate variances (the trace of the covariance); you "
                "averaged them.", lambda grads: grads.var(dim=0).mean()),
        Mistake("variance, not standard deviation: sum the per-coordinate variances, not their square roots.",
                lambda grads: grads.std(dim=0).sum()),
        Mistake("not the variance of the gradient norms: take the variance of each coordinate across the "
                "samples, then sum.", lambda grads: grads.norm(dim=1).var()),
        Mistake("subtract the mean gradient: the mean squared norm is the second moment, not the variance.",
                lambda grads: (grads ** 2).sum(dim=1).mean()),
    ],
)


def _cases_categorical_entropy() -> list[Case]:
    g = torch.Generator().manual_seed(8)
    return [
        Case("B=1, A=2, uniform policy", dict(logits=_t([[0.0, 0.0]], requires_grad=True))),
        Case("B=2, A=3", dict(logits=_t([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]], requires_grad=True))),
        Case("nearly deterministic policy: a probability underflows to 0 (B=2, A=3)",
             dict(logits=_t([[0.0, -200.0, 5.0], [50.0, 0.0, 0.0]], requires_grad=True))),
        Case("float64 (B=5, A=6)", dict(logits=_randn(g, 5, 6, dtype=torch.float64, scale=2.0, requires_grad=True))),
        Case("random (B=8, A=4)", dict(logits=_randn(g, 8, 4, scale=3.0, requires_grad=True))),
        Case("random (B=32, A=2)", dict(logits=_randn(g, 32, 2, requires_grad=True))),
    ]


CATEGORICAL_ENTROPY = Exercise(
    name="categorical_entropy",
    reference=losses.categorical_entropy,
    make_cases=_cases_categorical_entropy,
    concept="the entropy of each state's action distribution, minus the sum over the actions of p times log p, "
            "computed stably from the logits (a probability that underflows to 0 contributes 0): one number per "
            "state.",
    grad_args=("logits",),
    mistakes=[
        Mistake("lost the minus sign: entropy is -sum p log p (it is never negative).",
                lambda logits: (torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1)),
        Mistake("the log of the softmax is -inf where a probability underflows to 0, and 0 * -inf = nan: compute "
                "the log-probabilities in log space, never through the probabilities themselves.",
                lambda logits: -(torch.softmax(logits, -1) * torch.log(torch.softmax(logits, -1))).sum(-1)),
        Mistake("logits are not log-probabilities: normalise them over the actions first, so that the "
                "probabilities of a state sum to 1.",
                lambda logits: -(logits.exp() * logits).sum(-1)),
        Mistake("you summed over the batch (dim=0): the entropy of each state sums over its ACTIONS, the last dim.",
                lambda logits: -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(0)),
        Mistake("you forgot to sum over the actions: the entropy is one number per state, shape [B].",
                lambda logits: -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1))),
        Mistake("sum over the actions, not mean: the entropy adds up the contribution of every action.",
                lambda logits: -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).mean(-1)),
    ],
)


# --------------------------------------------------------------------------------------------------
# The checks of this chapter
# --------------------------------------------------------------------------------------------------

EXERCISES: list[Exercise] = [BASELINE_ADVANTAGES, VALUE_LOSS, GRADIENT_VARIANCE, CATEGORICAL_ENTROPY]

check_baseline_advantages = _make_check(BASELINE_ADVANTAGES)
check_value_loss = _make_check(VALUE_LOSS)
check_gradient_variance = _make_check(GRADIENT_VARIANCE)
check_categorical_entropy = _make_check(CATEGORICAL_ENTROPY)

CHECKS: dict[str, Callable[[Callable[..., Any]], None]] = {
    "baseline_advantages": check_baseline_advantages,
    "value_loss": check_value_loss,
    "gradient_variance": check_gradient_variance,
    "categorical_entropy": check_categorical_entropy,
}
