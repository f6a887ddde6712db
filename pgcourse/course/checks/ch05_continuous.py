"""Checks of chapter 05 (continuous actions, Pendulum): gaussian_log_prob, gaussian_entropy, env_action,
squashed_log_prob (the tanh squash and its log-determinant) and gaussian_policy_head (mean layer, log_std,
log-probs and entropy together)."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ...rl import distributions
from .harness import (_PRIORITY, Case, Exercise, Mistake, _call_learner, _check_case, _clone_args, _diagnose,
                      _make_check, _message, _randn, _t, _tolerance)


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
        # every log_std positive (a wide policy): log(log_std) is a number here, so "log_std used as std" shows
        # as a value and not only as NaN, which any answer's NaN would match
        Case("a wide policy, every log_std > 0 (B=2, D=2)",
             dict(mean=_t([[0.0, 0.5], [-0.5, 1.0]], requires_grad=True), log_std=_t([0.4, 0.9], requires_grad=True),
                  actions=_t([[1.0, -0.5], [0.3, 2.0]]))),
    ]


GAUSSIAN_LOG_PROB = Exercise(
    name="gaussian_log_prob",
    reference=distributions.gaussian_log_prob,
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
        Mistake("the normaliser's sign is flipped: each dimension SUBTRACTS log(std) = log_std (a wider Gaussian has a "
                "lower density), you added it.",
                lambda mean, log_std, actions:
                (-0.5 * ((actions - mean) / log_std.exp()) ** 2 + log_std - LOG_SQRT_2PI).sum(-1)),
        Mistake("the squared distance is divided by std, not by the variance std^2: square the standardised "
                "distance (actions - mean) / std.",
                lambda mean, log_std, actions:
                (-0.5 * (actions - mean) ** 2 / log_std.exp() - log_std - LOG_SQRT_2PI).sum(-1)),
        # a student's try (issue 49), the slip gaussian_entropy's and kl_k1's checks name
        Mistake("you summed over every dim (a sum with no dim), to one number for the whole batch: the log-prob is "
                "one number per row (per action vector), [B], summed over the last (action) dim only.",
                lambda mean, log_std, actions: _gaussian_terms(mean, log_std, actions).sum()),
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
    reference=distributions.gaussian_entropy,
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
        Mistake("you summed over every dim (a sum with no dim): the entropy is one number per row, summed over the "
                "last (action) dim only.", lambda log_std: (log_std + _ENTROPY_CONSTANT).sum()),
        Mistake("missing the constant 0.5 * log(2 pi e) per dimension.", lambda log_std: log_std.sum(-1)),
        Mistake("the constant is 0.5 * log(2 pi e) = 0.5 + 0.5 * log(2 pi): you left out the 0.5 from e.",
                lambda log_std: (log_std + LOG_SQRT_2PI).sum(-1)),
        # two students' tries (issue 49)
        Mistake("you added the constant once per row: each dimension's entropy is log_std + 0.5 * log(2 pi e), so "
                "the constant comes once per action dimension (D times in the sum).",
                lambda log_std: log_std.sum(-1) + _ENTROPY_CONSTANT),
        Mistake("each dimension counts twice log_std (the log of the variance): a one-dimensional Gaussian's "
                "entropy is log(std) + 0.5 * log(2 pi e), with log(std) = log_std once.",
                lambda log_std: (2 * log_std + _ENTROPY_CONSTANT).sum(-1)),
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
    reference=distributions.env_action,
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
# squashed_log_prob: the tanh-squashed Gaussian and its log-determinant
# --------------------------------------------------------------------------------------------------

def _log_one_minus_tanh_sq(u: Tensor) -> Tensor:
    """log(1 - tanh(u)^2), computed plainly (the known mistakes are played with it)."""
    return torch.log(1 - torch.tanh(u) ** 2)


def _cases_squashed_log_prob() -> list[Case]:
    g = torch.Generator().manual_seed(19)

    def random_case(description, batch, dims, high, dtype=torch.float32):
        # |u| <= 2.5: where 1 - tanh(u)^2 >= 0.026, the plain formula with an eps of 1e-6 inside its log agrees
        # with the exact one to 4e-5 a dimension, well inside this exercise's tolerance
        return Case(description, dict(mean=_randn(g, batch, dims, dtype=dtype, scale=0.5, requires_grad=True),
                                      log_std=_randn(g, dims, dtype=dtype, scale=0.3, shift=-0.3, requires_grad=True),
                                      u=_randn(g, batch, dims, dtype=torch.float64).clamp(-2.5, 2.5).to(dtype),
                                      high=_t(high, dtype)))
    return [
        Case("B=1, D=1, u = 0 (tanh's slope is 1 there), high = 1",
             dict(mean=_t([[0.3]], requires_grad=True), log_std=_t([0.0], requires_grad=True), u=_t([[0.0]]),
                  high=_t([1.0]))),
        Case("B=2, D=1, Pendulum's bound high = 2", dict(mean=_t([[0.0], [0.5]], requires_grad=True),
                                                         log_std=_t([-0.5], requires_grad=True),
                                                         u=_t([[1.0], [-2.0]]), high=_t([2.0]))),
        random_case("B=4, D=3, bounds [2, 0.5, 1]", 4, 3, [2.0, 0.5, 1.0]),
        random_case("float64, B=6, D=2", 6, 2, [1.5, 3.0], torch.float64),
        random_case("random, B=16, D=4", 16, 4, [1.0, 2.0, 0.4, 1.0]),
        Case("a wide policy, every log_std > 0 (B=2, D=2), high = 1",  # log(log_std) a number: see gaussian_log_prob
             dict(mean=_t([[0.0, 0.5], [-0.5, 1.0]], requires_grad=True), log_std=_t([0.4, 0.9], requires_grad=True),
                  u=_t([[1.0, -0.5], [0.3, 2.0]]), high=_t([1.0, 1.0]))),
    ]


def _squash_plain(mean, log_std, u, high, sign=1.0, summed=True, scale=True, at=None):
    log_det = _log_one_minus_tanh_sq(u if at is None else at) + (torch.log(high) if scale else 0.0)  # [B, D]
    gaussian = _gaussian_terms(mean, log_std, u)  # [B, D]
    per_dim = gaussian - sign * log_det
    return per_dim.sum(-1) if summed else per_dim


SQUASHED_LOG_PROB = Exercise(
    name="squashed_log_prob",
    reference=distributions.tanh_squashed_log_prob,
    make_cases=_cases_squashed_log_prob,
    concept="the log-density of the squashed action a = high * tanh(u): the diagonal Gaussian log-density of the "
            "sample u, minus, summed over the action dims, the log of the squash's slope, log(high) + "
            "log(1 - tanh(u)^2) in each dimension (change of variables); one number per row.",
    grad_args=("mean", "log_std"),
    # 1e-3: an eps of 1e-6 inside log(1 - tanh^2 + eps) shifts the result by up to 4e-5 a dimension on these
    # cases; every known mistake is off by 0.1 or more
    tolerance=(1e-4, 1e-3),
    mistakes=[
        Mistake("the change of variables is missing: a = high * tanh(u) is not u, so its density is the Gaussian's "
                "divided by the slope of the squash: subtract sum_d [log(high_d) + log(1 - tanh(u_d)^2)].",
                lambda mean, log_std, u, high: _gaussian_terms(mean, log_std, u).sum(-1)),
        Mistake("the log-determinant has the wrong sign: the density of a is the density of u DIVIDED by the "
                "squash's slope |da/du| = high * (1 - tanh(u)^2), so its log is subtracted, not added.",
                lambda mean, log_std, u, high: _squash_plain(mean, log_std, u, high, sign=-1.0)),
        Mistake("not summed over action dims: the log-probability of an action vector is one number per row, the "
                "sum over the last dim of the Gaussian terms and of the log-determinant terms.",
                lambda mean, log_std, u, high: _squash_plain(mean, log_std, u, high, summed=False)),
        Mistake("log_std used as std in the Gaussian part: log_std is the LOG of the standard deviation.",
                lambda mean, log_std, u, high:
                (-0.5 * ((u - mean) / log_std) ** 2 - torch.log(log_std) - LOG_SQRT_2PI
                 - _log_one_minus_tanh_sq(u) - torch.log(high)).sum(-1)),
        Mistake("the scale of the squash is missing: a = high * tanh(u) also stretches by high, so each dimension "
                "subtracts log(high_d) too.",
                lambda mean, log_std, u, high: _squash_plain(mean, log_std, u, high, scale=False)),
        Mistake("the Gaussian density is taken at the squashed action a = high * tanh(u): it is the density of the "
                "sample u itself, then corrected by the log-determinant.",
                lambda mean, log_std, u, high:
                (_gaussian_terms(mean, log_std, high * torch.tanh(u)) - _log_one_minus_tanh_sq(u)
                 - torch.log(high)).sum(-1)),
        Mistake("the log-determinant is taken at the mean: the slope of the squash is the one at the sample u.",
                lambda mean, log_std, u, high: _squash_plain(mean, log_std, u, high, at=mean)),
    ],
)


# --------------------------------------------------------------------------------------------------
# gaussian_policy_head: the mean layer, the state-independent log_std, the log-probs and the entropy
# --------------------------------------------------------------------------------------------------

def reference_gaussian_policy_head(obs: Tensor, mean_weight: Tensor, mean_bias: Tensor, log_std: Tensor,
                                   actions: Tensor) -> tuple[Tensor, Tensor]:
    """(log pi(a|s) [B], entropy [B]) of the diagonal Gaussian policy with mean = obs @ mean_weight.T + mean_bias
    (a linear mean layer, nn.Linear's layout) and one state-independent log_std [D] shared by every row, as
    ``GaussianPolicy.log_prob_entropy`` computes them."""
    mean = obs @ mean_weight.T + mean_bias  # [B, D]
    log_probs = distributions.gaussian_log_prob(mean, log_std.expand_as(mean), actions)  # [B]
    entropy = distributions.gaussian_entropy(log_std).expand(obs.shape[0])  # [B], the same in every row
    return log_probs, entropy


def _cases_gaussian_policy_head() -> list[Case]:
    g = torch.Generator().manual_seed(20)

    def case(description, batch, obs_dim, dims, dtype=torch.float32):
        return Case(description, dict(obs=_randn(g, batch, obs_dim, dtype=dtype),
                                      mean_weight=_randn(g, dims, obs_dim, dtype=dtype, scale=0.5, requires_grad=True),
                                      mean_bias=_randn(g, dims, dtype=dtype, scale=0.3, requires_grad=True),
                                      log_std=_randn(g, dims, dtype=dtype, scale=0.4, requires_grad=True),
                                      actions=_randn(g, batch, dims, dtype=dtype, scale=1.5)))
    return [case("B=1, obs_dim=3, D=1 (Pendulum's shapes)", 1, 3, 1),
            case("B=3, obs_dim=4, D=2", 3, 4, 2),
            case("float64, B=5, obs_dim=3, D=3", 5, 3, 3, torch.float64),
            case("random, B=16, obs_dim=6, D=4", 16, 6, 4),
            # every log_std positive (a wide policy): "log_std used as std" shows as a value, not only as NaN
            Case("a wide policy, every log_std > 0 (B=2, obs_dim=3, D=2)",
                 dict(obs=_t([[0.5, -1.0, 0.2], [1.0, 0.3, -0.4]]),
                      mean_weight=_t([[0.3, -0.2, 0.1], [-0.5, 0.4, 0.2]], requires_grad=True),
                      mean_bias=_t([0.1, -0.2], requires_grad=True), log_std=_t([0.4, 0.9], requires_grad=True),
                      actions=_t([[1.0, -0.5], [0.3, 2.0]])))]


def _head_mean(obs, mean_weight, mean_bias):
    return obs @ mean_weight.T + mean_bias


HEAD_LOG_PROBS = Exercise(
    name="gaussian_policy_head",
    reference=lambda *args: reference_gaussian_policy_head(*args)[0],
    make_cases=_cases_gaussian_policy_head,
    concept="the first output: the log-density of each row's action under the diagonal Gaussian whose mean is the "
            "linear layer obs @ mean_weight.T + mean_bias and whose log standard deviation is log_std in every row, "
            "summed over the action dims: [B].",
    grad_args=("mean_weight", "mean_bias", "log_std"),
    mistakes=[
        Mistake("log-probs not summed over action dims: the first output is one joint log-probability per row, "
                "shape [B].",
                lambda obs, w, b, log_std, actions: _gaussian_terms(_head_mean(obs, w, b), log_std, actions)),
        Mistake("log_std used as std in the log-probs: log_std is the LOG of the standard deviation.",
                lambda obs, w, b, log_std, actions:
                (-0.5 * ((actions - _head_mean(obs, w, b)) / log_std) ** 2 - torch.log(log_std)
                 - LOG_SQRT_2PI).sum(-1)),
        Mistake("the mean layer's bias is missing: mean = obs @ mean_weight.T + mean_bias.",
                lambda obs, w, b, log_std, actions: _gaussian_terms(obs @ w.T, log_std, actions).sum(-1)),
        Mistake("the log-probs are averaged over the action dims: sum them.",
                lambda obs, w, b, log_std, actions:
                _gaussian_terms(_head_mean(obs, w, b), log_std, actions).mean(-1)),
    ],
)

HEAD_ENTROPY = Exercise(
    name="gaussian_policy_head",
    reference=lambda *args: reference_gaussian_policy_head(*args)[1],
    make_cases=_cases_gaussian_policy_head,
    concept="the second output: the entropy of each row's Gaussian, sum over the action dims of log_std + "
            "0.5 * log(2 pi e); log_std is state-independent, so every row has the same entropy: [B].",
    grad_args=("log_std",),
    mistakes=[
        Mistake("the entropy is one number per row, shape [B] (the same number in every row): expand the "
                "entropy of the distribution over the batch.",
                lambda obs, w, b, log_std, actions: (log_std + _ENTROPY_CONSTANT).sum(-1)),
        Mistake("the entropy is not summed over the action dims.",
                lambda obs, w, b, log_std, actions: (log_std + _ENTROPY_CONSTANT).expand(obs.shape[0], -1)),
        Mistake("log_std used as std in the entropy: the entropy depends on log_std itself, not on its exp.",
                lambda obs, w, b, log_std, actions: (log_std.exp() + _ENTROPY_CONSTANT).sum(-1)
                .expand(obs.shape[0])),
    ],
)

_HEAD_PARTS = (("the log-probs (first output)", HEAD_LOG_PROBS), ("the entropy (second output)", HEAD_ENTROPY))


def _head_form_problem(output: Any) -> str | None:
    """What is wrong with the form of the learner's result (None: a pair, as asked)."""
    if output is None:
        return "your function returned None. Did you forget the `return` statement?"
    if not isinstance(output, tuple | list):
        return f"expected a pair (log_probs, entropy), two [B] tensors, got a single {type(output).__name__}."
    if len(output) != 2:
        return f"expected a pair (log_probs, entropy), two [B] tensors, got {len(output)} values."
    return None


def check_gaussian_policy_head(fn: Callable[..., Any]) -> None:
    """Check ``gaussian_policy_head(obs, mean_weight, mean_bias, log_std, actions) -> (log_probs, entropy)``.

    Each output is checked like a function exercise (values, in-place changes, gradients, dtype), against
    :func:`reference_gaussian_policy_head`, on the same cases; the learner's function is called afresh for
    each output, so the two outputs' gradients are taken on separate graphs.
    """
    name = "gaussian_policy_head"
    cases = sorted(_cases_gaussian_policy_head(), key=lambda case: case.size)
    for index, (label, part) in enumerate(_HEAD_PARTS):
        outcomes, failures = [], []
        for case in cases:
            learner_args = _clone_args(case.args)
            result = _call_learner(fn, name, learner_args, list(case.args))
            problem = _head_form_problem(result)
            if problem is not None:
                raise AssertionError(_message(name, problem, None, True, case, show_values=False))
            output = result[index]
            outcomes.append((case, output))
            failure = _check_case(part, case, learner_args, output)
            if failure is not None:
                failures.append(failure)
        if not failures:
            continue
        failure = min(failures, key=lambda f: _PRIORITY.index(f.kind))
        hint, certain = failure.hint, True
        if failure.kind == "value":
            hint, certain = _diagnose(part, outcomes, failure.case)
            if not failure.problem:
                n_wrong = sum(f.kind == "value" for f in failures)
                failure.problem = f"wrong result in {n_wrong} of {len(cases)} cases."
                if isinstance(failure.received, Tensor) and \
                        tuple(failure.received.shape) != tuple(failure.expected.shape):
                    failure.problem = (f"wrong shape: expected {tuple(failure.expected.shape)}, got "
                                       f"{tuple(failure.received.shape)} ({n_wrong} of {len(cases)} cases wrong).")
        tolerance = _tolerance(failure.case, failure.received, failure.expected) if failure.kind == "value" else None
        raise AssertionError(_message(name, f"{label}: {failure.problem}", hint, certain, failure.case,
                                      concept="" if failure.kind == "type" else part.concept,
                                      expected=failure.expected, received=failure.received,
                                      show_values=failure.show_values, labels=failure.labels, tolerance=tolerance))
    print(f"✓ {name}: {len(cases)} cases passed")


# --------------------------------------------------------------------------------------------------
# The checks of this chapter
# --------------------------------------------------------------------------------------------------

EXERCISES: list[Exercise] = [GAUSSIAN_LOG_PROB, GAUSSIAN_ENTROPY, ENV_ACTION, SQUASHED_LOG_PROB]

check_gaussian_log_prob = _make_check(GAUSSIAN_LOG_PROB)
check_gaussian_entropy = _make_check(GAUSSIAN_ENTROPY)
check_env_action = _make_check(ENV_ACTION)
check_squashed_log_prob = _make_check(SQUASHED_LOG_PROB)

CHECKS: dict[str, Callable[[Callable[..., Any]], None]] = {
    "gaussian_log_prob": check_gaussian_log_prob,
    "gaussian_entropy": check_gaussian_entropy,
    "env_action": check_env_action,
    "squashed_log_prob": check_squashed_log_prob,
    "gaussian_policy_head": check_gaussian_policy_head,
}
