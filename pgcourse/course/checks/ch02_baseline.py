"""Checks of chapter 02 (REINFORCE with a baseline): baseline_advantages, value_loss, gradient_variance,
categorical_entropy, fit_critic (the critic's regression steps with its optimiser)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ...rl import diagnostics, distributions, losses, returns
from .harness import Case, Exercise, Mistake, _call_learner, _fmt, _make_check, _message, _randn, _t


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
        Mistake("values [B, 1] minus returns [B] broadcasts to a [B, B] matrix (every value against every return): "
                "give both the same shape [B] before subtracting (squeeze the values' last dim).",
                lambda values, returns_: 0.5 * ((values.unsqueeze(1) - returns_) ** 2).mean()),
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
    reference=distributions.categorical_entropy,
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
        Mistake("you normalised over the batch (softmax or log_softmax with dim=0): each state's probabilities are "
                "normalised over its ACTIONS, the last dim (dim=-1).",
                lambda logits: -(torch.softmax(logits, 0) * torch.log_softmax(logits, 0)).sum(-1)),
        Mistake("you summed over the batch (dim=0): the entropy of each state sums over its ACTIONS, the last dim.",
                lambda logits: -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(0)),
        Mistake("you forgot to sum over the actions: the entropy is one number per state, shape [B].",
                lambda logits: -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1))),
        Mistake("sum over the actions, not mean: the entropy adds up the contribution of every action.",
                lambda logits: -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).mean(-1)),
    ],
)


# --------------------------------------------------------------------------------------------------
# fit_critic: the critic's regression steps with its optimiser (a loop with state, so its own check)
# --------------------------------------------------------------------------------------------------

CRITIC_CONCEPT = ("steps of Adam on a linear critic V(s) = observations @ weights, each on L_V = 1/2 mean_i "
                  "(V(s_i) - G_i)^2 with the returns G_i as constant targets: clear the previous step's gradients, "
                  "backpropagate L_V, step; return the trained weights and each step's L_V, measured before its step.")
_WEIGHT_TOLERANCE = (1e-4, 1e-6)  # (rtol, atol) after a few Adam steps computed in another operation order
_LOSS_TOLERANCE = (1e-5, 1e-7)


def reference_fit_critic(weights: Tensor, observations: Tensor, returns: Tensor, lr: float, steps: int, *,
                         mistake: str | None = None) -> tuple[Tensor, list[float]]:
    """``steps`` full-batch Adam steps of the critic ``V(s) = observations @ w`` ([B, d] @ [d] -> [B]) on
    ``L_V = 1/2 * mean_i (V(s_i) - G_i)^2``, ``G`` a constant target; each step: ``zero_grad``, the loss,
    ``backward``, ``step``. Starts from a copy of ``weights`` (the input is left as it came). Returns the
    trained weights [d] and the ``steps`` losses, each measured before its step.

    ``mistake`` plays a known wrong loop (:data:`CRITIC_MISTAKES`; the check names it when it reproduces a
    learner's results)."""
    start_values = (observations @ weights).detach()  # [B] the starting critic's values
    weights = weights.detach().clone().requires_grad_(True)  # [d]
    optimizer = torch.optim.SGD([weights], lr=lr) if mistake == "sgd" else torch.optim.Adam([weights], lr=lr)
    losses_: list[float] = []
    for _ in range(steps + {"one_more_step": 1, "one_fewer_step": -1}.get(mistake or "", 0)):
        if mistake == "new_optimizer_each_step":
            optimizer = torch.optim.Adam([weights], lr=lr)  # forgets Adam's moment estimates every step
        values = observations @ weights  # [B]
        targets = returns.detach()  # [B] G, constants
        if mistake == "advantage_targets":
            targets = targets - values.detach()
        elif mistake == "mean_target":
            targets = targets.mean().expand_as(targets)
        elif mistake == "start_value_targets":
            targets = start_values
        errors = values - targets
        loss = 0.5 * (errors ** 2).mean()
        if mistake == "sum":
            loss = 0.5 * (errors ** 2).sum()
        elif mistake == "no_half":
            loss = (errors ** 2).mean()
        if mistake != "no_zero_grad":
            optimizer.zero_grad()
        (-loss if mistake == "ascent" else loss).backward()
        if mistake != "no_step":
            optimizer.step()
        if mistake == "loss_after_step":  # the loss at the weights the step left: the next step's loss
            with torch.no_grad():
                loss = 0.5 * ((observations @ weights - targets) ** 2).mean()
        losses_.append(float(loss.detach()))
    return weights.detach(), losses_


CRITIC_MISTAKES: list[tuple[str, tuple[str, ...], str]] = [
    # (mistake, what it changes: "weights" and/or "losses", the hint)
    ("sgd", ("weights",), "the steps are plain gradient descent (SGD): the critic's optimiser is Adam, "
                          "torch.optim.Adam with the lr given."),
    ("no_step", ("weights",), "the weights did not move: take the optimiser's step after each backward pass "
                              "(and clear the gradients before backward, not between backward and step)."),
    ("no_zero_grad", ("weights",), "each step's gradient was added to those of the steps before: zero "
                                   "the optimiser's gradients before each backward pass, every step."),
    ("ascent", ("weights",), "the steps went uphill: minimise L_V (call backward on the loss itself, not on its "
                             "negative)."),
    # The targets G - V with V attached give exactly twice the gradient of G - V detached: Adam's steps and the
    # losses are the same, so one entry names both.
    ("advantage_targets", ("weights", "losses"), "the critic regresses on the returns G_i, not on the advantages "
                                                 "G_i - V(s_i): its values should match the returns."),
    ("one_more_step", ("weights", "losses"), "one step too many: take exactly `steps` optimiser steps."),
    ("one_fewer_step", ("weights", "losses"), "one step too few: take exactly `steps` optimiser steps."),
    ("new_optimizer_each_step", ("weights",), "a new Adam at every step starts its moment estimates afresh, so "
                                             "every step is Adam's first: create one optimiser before the loop and "
                                             "let it serve all the steps."),
    ("no_half", ("losses",), "missing the factor 1/2 in front of the mean squared error (the losses are twice the "
                             "reference's; Adam's steps hide it, the losses do not)."),
    ("sum", ("losses",), "average the squared errors over the batch, not .sum(): the loss must not grow with the "
                         "batch size."),
    # three students' tries (issue 49): one Adam step moves each weight by about lr whatever the target, so a wrong
    # target shows first in the losses; each was told a mistake it did not make
    ("mean_target", ("weights", "losses"),
     "one target, the mean return, for every state: regress each value V(s_i) on its own return G_i."),
    ("start_value_targets", ("weights", "losses"),
     "the targets are the critic's own values at the start, not the returns: L_V starts at 0 and the weights move "
     "only by rounding noise; regress each V(s_i) on its return G_i."),
    ("loss_after_step", ("losses",),
     "you record each step's L_V after its optimiser step; it should be measured before it (the loss whose "
     "gradient the step followed)."),
]


@dataclass(frozen=True)
class _CriticCase:
    description: str
    batch_size: int
    obs_dim: int
    lr: float
    steps: int
    seed: int
    dtype: torch.dtype = torch.float32

    def args(self) -> dict[str, Any]:
        """Fresh, seeded arguments: weights [d], observations [B, d], returns [B], lr, steps."""
        generator = torch.Generator().manual_seed(self.seed)
        weights = torch.randn(self.obs_dim, generator=generator, dtype=self.dtype)
        observations = torch.randn(self.batch_size, self.obs_dim, generator=generator, dtype=self.dtype)
        returns_ = 5.0 * torch.rand(self.batch_size, generator=generator, dtype=self.dtype)
        return dict(weights=weights, observations=observations, returns=returns_, lr=self.lr, steps=self.steps)


CRITIC_CASES = [
    _CriticCase("1 step, B=4, d=2", 4, 2, 0.1, 1, 0),
    _CriticCase("3 steps, B=8, d=3", 8, 3, 0.05, 3, 1),
    _CriticCase("5 steps, B=16, d=4, float64", 16, 4, 0.02, 5, 2, torch.float64),
]


def _critic_result(result: Any, shape: tuple[int, ...]) -> tuple[tuple[Tensor, list[float]] | None, str | None]:
    """(weights, losses) from a learner's return value, or a problem saying what was wrong with its form."""
    if result is None:
        return None, "your function returned None. Did you forget the `return` statement?"
    if not isinstance(result, tuple | list) or len(result) != 2:
        return None, f"expected a pair (weights, losses), got {_fmt(result)}."
    weights, losses_ = result
    if not isinstance(weights, Tensor) or tuple(weights.shape) != shape:
        return None, f"the first element must be the trained weights, a tensor of shape {shape}, got {_fmt(weights)}."
    if isinstance(losses_, Tensor):
        losses_ = losses_.detach().flatten().tolist()
    if not isinstance(losses_, list | tuple) or not all(
            (isinstance(x, Tensor) and x.numel() == 1) or (isinstance(x, int | float) and not isinstance(x, bool))
            for x in losses_):
        return None, "the second element must be a list with one loss (a number) per step."
    return (weights.detach().double(), [float(x) for x in losses_]), None


def _same_critic(found: tuple[Tensor, list[float]], other: tuple[Tensor, list[float]], fields: tuple[str, ...]) -> bool:
    weights, losses_ = found
    other_weights, other_losses = other
    if "weights" in fields and not torch.allclose(weights.double(), other_weights.double(), rtol=_WEIGHT_TOLERANCE[0],
                                                  atol=_WEIGHT_TOLERANCE[1]):
        return False
    if "losses" in fields and (len(losses_) != len(other_losses) or not torch.allclose(
            torch.tensor(losses_, dtype=torch.float64), torch.tensor(other_losses, dtype=torch.float64),
            rtol=_LOSS_TOLERANCE[0], atol=_LOSS_TOLERANCE[1])):
        return False
    return True


def _reproduces(mistake: str, cases: list[_CriticCase], founds: list[tuple[Tensor, list[float]]]) -> bool:
    """True when the wrong loop ``mistake`` gives the learner's results, weights AND losses, on every one of
    ``cases`` (a loop that stepped and recorded losses of 0 was named 'the weights did not move' on its weights
    alone, though its losses ruled that loop out: a student's try, issue 49)."""
    if mistake == "start_value_targets":
        # In exact arithmetic its L_V is 0 and the weights never move. In floating point a learner's values and its
        # start values may come from different kernels (a sum of products, a matmul) that round differently, and
        # Adam's normalised step turns that 1e-8 noise into steps of about lr: only the first loss, measured before
        # any step, is the same on every processor (0 within rounding), with weights that are not the reference's.
        return all(found[1] and abs(found[1][0]) <= _LOSS_TOLERANCE[1]
                   and not _same_critic(found, reference_fit_critic(**case.args()), ("weights",))
                   for case, found in zip(cases, founds))
    return all(_same_critic(found, reference_fit_critic(**case.args(), mistake=mistake), ("weights", "losses"))
               for case, found in zip(cases, founds))


def _critic_failure(cases: list[_CriticCase], founds: list[tuple[Tensor, list[float]]], failing: int,
                    ) -> tuple[str, str | None, bool]:
    """(problem, hint, certain) for the learner's results ``founds`` on ``cases``, ``cases[failing]`` being the
    first that differs from the reference: the known wrong loop whose replay gives the learner's weights and losses
    on every case is named as the probable mistake; otherwise no cause is named (a wrong loop that agrees with one
    case alone is not the learner's: issue 49), and the problem says what differs."""
    case, found = cases[failing], founds[failing]
    expected = reference_fit_critic(**case.args())
    for mistake, _, hint in CRITIC_MISTAKES:
        if _reproduces(mistake, cases, founds):
            return "your results differ from the reference's, and a known wrong loop reproduces them.", hint, True
    if len(found[1]) != len(expected[1]):
        return (f"you returned {len(found[1])} loss(es) for {case.steps} step(s): the list holds one loss per step, "
                f"each measured before its step.", None, False)
    if not _same_critic(found, expected, ("weights",)):
        if not _same_critic(found, expected, ("losses",)):
            return "the trained weights and the losses differ from the reference's.", None, False
        return "the losses are right, but the trained weights differ from the reference's.", None, False
    return "the weights are right, but the losses differ from the reference's.", None, False


def check_fit_critic(fn: Callable[..., Any]) -> None:
    """Check ``fit_critic(weights, observations, returns, lr, steps) -> (weights, losses)`` against
    :func:`reference_fit_critic`.

    On each case both loops start from the same seeded weights; the trained weights must agree within Adam's
    rounding (rtol 1e-4), the losses within rtol 1e-5, their number exactly, and the inputs must come back as they
    went in. A failure names the known wrong loop that reproduces the learner's results on every case
    (:data:`CRITIC_MISTAKES`).
    """
    name = "fit_critic"
    arg_names = list(CRITIC_CASES[0].args())
    founds = []
    for case in CRITIC_CASES:
        args, originals = case.args(), case.args()
        result = _call_learner(fn, name, list(args.values()), arg_names)
        shown = Case(case.description, originals)
        found, problem = _critic_result(result, (case.obs_dim,))
        if problem is not None:
            raise AssertionError(_message(name, problem, None, True, shown, concept=CRITIC_CONCEPT,
                                          expected="(weights, losses)", received=result))
        changed = next((key for key, value in originals.items() if isinstance(value, Tensor)
                        and not torch.equal(value, args[key].detach())), None)
        if changed is not None:
            raise AssertionError(_message(name, f"your function changed its input {changed!r} in place.",
                                          "train a copy of the weights (weights.detach().clone()), leave the "
                                          "inputs as they came.", True, shown, concept=CRITIC_CONCEPT,
                                          show_values=False))
        founds.append(found)
    failing = next((index for index, (case, found) in enumerate(zip(CRITIC_CASES, founds))
                    if not _same_critic(found, reference_fit_critic(**case.args()), ("weights", "losses"))), None)
    if failing is not None:
        problem, hint, certain = _critic_failure(CRITIC_CASES, founds, failing)
        case, found = CRITIC_CASES[failing], founds[failing]
        expected = reference_fit_critic(**case.args())
        raise AssertionError(_message(
            name, problem, hint, certain, Case(case.description, case.args()), concept=CRITIC_CONCEPT,
            expected=f"losses {[round(x, 6) for x in expected[1]]}; weights {_fmt(expected[0], meta=False)}",
            received=f"losses {[round(x, 6) for x in found[1]]}; weights {_fmt(found[0], meta=False)}"))
    print(f"✓ {name}: {len(CRITIC_CASES)} cases passed")


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
    "fit_critic": check_fit_critic,
}
