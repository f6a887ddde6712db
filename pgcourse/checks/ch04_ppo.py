"""Checks of chapter 04 (PPO): clipped_surrogate_loss, approx_kl, clip_fraction, explained_variance,
minibatch_indices.

``minibatch_indices`` is random by design, so it has its own check: any shuffle passes, as long as
it is a reproducible partition of the batch.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .. import diagnostics, losses
from .harness import Case, Exercise, Mistake, _call_learner, _log_probs, _make_check, _message, _randn, _t


# --------------------------------------------------------------------------------------------------
# clipped_surrogate_loss, approx_kl, clip_fraction, explained_variance
# --------------------------------------------------------------------------------------------------

def _surrogate(ratio: Tensor, advantages: Tensor, clip_eps: float, *, clip_advantage: bool = False,
               reduce: Callable[[Tensor, Tensor], Tensor] = torch.min) -> Tensor:
    if clip_advantage:
        clipped = ratio * torch.clamp(advantages, 1 - clip_eps, 1 + clip_eps)
    else:
        clipped = torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * advantages
    return -reduce(ratio * advantages, clipped).mean()


def _cases_clipped_surrogate_loss() -> list[Case]:
    g = torch.Generator().manual_seed(12)
    old = _t([-1.0, -1.0, -2.0, -0.5, -1.5])

    def random_case(description, batch, scale, clip_eps, dtype=torch.float32):
        old_log_probs = _log_probs(g, batch, dtype=dtype) - 0.3
        new_log_probs = (old_log_probs + _randn(g, batch, dtype=dtype, scale=scale)).clamp(max=-0.01).requires_grad_()
        return Case(description, dict(new_log_probs=new_log_probs, old_log_probs=old_log_probs,
                                      advantages=_randn(g, batch, dtype=dtype), clip_eps=clip_eps))
    return [
        Case("B=1, ratio inside the clip range", dict(new_log_probs=_t([-1.0], requires_grad=True),
                                                      old_log_probs=_t([-1.1]), advantages=_t([1.0]), clip_eps=0.2)),
        Case("the four clipping regions plus one ratio inside (B=5)",
             dict(new_log_probs=(old + _t([0.5, -0.5, 0.5, -0.5, 0.05])).requires_grad_(), old_log_probs=old,
                  advantages=_t([1.0, 2.0, -1.0, -2.0, 0.5]), clip_eps=0.2)),
        Case("tiny probabilities: log-probs around -150, as with many action dims (B=3)",
             dict(new_log_probs=_t([-149.9, -160.15, -139.95], requires_grad=True),
                  old_log_probs=_t([-150.0, -160.0, -140.0]), advantages=_t([1.0, -1.0, 0.5]), clip_eps=0.2)),
        random_case("float64 (B=8)", 8, 0.3, 0.3, torch.float64),
        random_case("random (B=32)", 32, 0.3, 0.2),
        random_case("random (B=64)", 64, 0.2, 0.1),
    ]


CLIPPED_SURROGATE_LOSS = Exercise(
    name="clipped_surrogate_loss",
    reference=losses.clipped_surrogate_loss,
    make_cases=_cases_clipped_surrogate_loss,
    concept="PPO's clipped loss, one number: minus the batch average of the pessimistic (smaller) of two "
            "surrogates, the ratio pi_new / pi_old times the advantage and the same with the ratio clipped to "
            "[1 - eps, 1 + eps]; the ratio is formed from the log-probabilities.",
    grad_args=("new_log_probs",),
    mistakes=[
        Mistake("you form the ratio from raw probabilities: small probabilities underflow to 0 and 0/0 = nan. "
                "Form it in log space, from the difference of the log-probabilities.",
                lambda new, old, advantages, clip_eps: _surrogate(new.exp() / old.exp(), advantages, clip_eps)),
        Mistake("the ratio is pi_new / pi_old, a quotient of probabilities, not the quotient of the "
                "log-probs.", lambda new, old, advantages, clip_eps: _surrogate(new / old, advantages, clip_eps)),
        Mistake("you forgot the exp: new_log_probs - old_log_probs is the LOG of the ratio.",
                lambda new, old, advantages, clip_eps: _surrogate(new - old, advantages, clip_eps)),
        Mistake("the ratio is upside down: it is pi_new over pi_old.",
                lambda new, old, advantages, clip_eps: _surrogate((old - new).exp(), advantages, clip_eps)),
        Mistake("max instead of min: PPO takes the pessimistic MIN of the unclipped and clipped surrogates.",
                lambda new, old, advantages, clip_eps:
                _surrogate((new - old).exp(), advantages, clip_eps, reduce=torch.max)),
        Mistake("you clip the advantage instead of the ratio: the ratio is what must stay within "
                "[1 - eps, 1 + eps].",
                lambda new, old, advantages, clip_eps:
                _surrogate((new - old).exp(), advantages, clip_eps, clip_advantage=True)),
        Mistake("loss sign flipped: this is a LOSS to minimise, the negative of the clipped objective.",
                lambda new, old, advantages, clip_eps: -_surrogate((new - old).exp(), advantages, clip_eps)),
        Mistake("you never clip: the clipped surrogate (the ratio clipped to [1 - eps, 1 + eps], times the "
                "advantage) is missing.",
                lambda new, old, advantages, clip_eps: -((new - old).exp() * advantages).mean()),
        Mistake("you only kept the clipped term: PPO takes the smaller of the unclipped and the clipped "
                "surrogate.",
                lambda new, old, advantages, clip_eps:
                -(torch.clamp((new - old).exp(), 1 - clip_eps, 1 + clip_eps) * advantages).mean()),
    ],
)


def _k3(log_ratio: Tensor) -> Tensor:
    return ((log_ratio.exp() - 1) - log_ratio).mean()


def _cases_approx_kl() -> list[Case]:
    g = torch.Generator().manual_seed(13)

    def random_case(description, batch, scale, dtype=torch.float32):
        old_log_probs = _log_probs(g, batch, dtype=dtype) - 0.3
        new_log_probs = (old_log_probs + _randn(g, batch, dtype=dtype, scale=scale)).clamp(max=-0.01)
        return Case(description, dict(old_log_probs=old_log_probs, new_log_probs=new_log_probs))
    return [
        Case("B=1", dict(old_log_probs=_t([-1.0]), new_log_probs=_t([-0.8]))),
        Case("identical policies (KL = 0)", dict(old_log_probs=_t([-1.0, -2.0, -0.5]),
                                                 new_log_probs=_t([-1.0, -2.0, -0.5]))),
        Case("B=4", dict(old_log_probs=_t([-1.0, -2.0, -0.5, -3.0]), new_log_probs=_t([-1.2, -1.5, -0.6, -2.0]))),
        random_case("float64 (B=10)", 10, 0.3, torch.float64),
        random_case("random, small policy change (B=64)", 64, 0.1),
        random_case("random, large policy change (B=16)", 16, 0.7),
    ]


APPROX_KL = Exercise(
    name="approx_kl",
    reference=diagnostics.approx_kl,
    make_cases=_cases_approx_kl,
    output="number",
    concept="the k3 estimate (see the lesson) of the KL divergence between the old and the new policy, from "
            "the log-probabilities of the sampled actions: a batch average, never negative, 0 for identical "
            "policies.",
    mistakes=[
        Mistake("KL with the wrong sign of the log-ratio: log r is the log of pi_new / pi_old (you used its "
                "negative, old minus new).", lambda old, new: _k3(old - new)),
        Mistake("your KL is negative: the k3 estimator is never negative; you flipped its sign.",
                lambda old, new: -_k3(new - old)),
        Mistake("that is the k1 estimator (the average log-ratio), which is noisy and can be negative: use the "
                "k3 estimator of the lesson.", lambda old, new: (old - new).mean()),
        Mistake("the log term must be subtracted from (r - 1), not added.",
                lambda old, new: ((new - old).exp() - 1 + (new - old)).mean()),
        Mistake("that is the k2 estimator (half the squared log-ratio): use the k3 estimator of the lesson.",
                lambda old, new: (0.5 * (new - old) ** 2).mean()),
    ],
)


def _cases_clip_fraction() -> list[Case]:
    g = torch.Generator().manual_seed(14)
    return [
        Case("B=1, ratio inside the range", dict(ratio=_t([1.05]), clip_eps=0.2)),
        Case("B=1, ratio above the range", dict(ratio=_t([1.5]), clip_eps=0.2)),
        Case("ratios above, below and inside (B=6)", dict(ratio=_t([0.5, 0.9, 1.0, 1.1, 1.3, 2.0]), clip_eps=0.2)),
        Case("float64 (B=20)", dict(ratio=_randn(g, 20, dtype=torch.float64, scale=0.2).exp(), clip_eps=0.15)),
        Case("random (B=50)", dict(ratio=_randn(g, 50, scale=0.3).exp(), clip_eps=0.2)),
        Case("random (B=100)", dict(ratio=_randn(g, 100, scale=0.15).exp(), clip_eps=0.1)),
    ]


CLIP_FRACTION = Exercise(
    name="clip_fraction",
    reference=diagnostics.clip_fraction,
    make_cases=_cases_clip_fraction,
    output="number",
    concept="the fraction (a number between 0 and 1) of the ratios that lie outside [1 - clip_eps, "
            "1 + clip_eps], on either side.",
    mistakes=[
        Mistake("ratios below 1 - clip_eps are clipped too: count the ratios outside the range on both sides.",
                lambda ratio, clip_eps: (ratio > 1 + clip_eps).float().mean()),
        Mistake("you measured the fraction INSIDE the range: the clip fraction counts the ratios outside it.",
                lambda ratio, clip_eps: ((ratio - 1).abs() <= clip_eps).float().mean()),
        Mistake("that is a count: a fraction divides it by the batch size.",
                lambda ratio, clip_eps: ((ratio - 1).abs() > clip_eps).float().sum()),
        Mistake("clip_eps is a distance from 1: compare how far each ratio is from 1 with clip_eps, not the "
                "ratio itself.",
                lambda ratio, clip_eps: (ratio.abs() > clip_eps).float().mean()),
    ],
)


def _residual_ratio(values: Tensor, returns_: Tensor) -> Tensor:
    return (returns_ - values).var() / returns_.var()


def _cases_explained_variance() -> list[Case]:
    g = torch.Generator().manual_seed(15)
    random_returns = _randn(g, 50, scale=3.0)
    returns_2d = _randn(g, 8, 4, scale=2.0)
    returns_64 = _randn(g, 20, dtype=torch.float64, scale=5.0)
    return [
        Case("B=2", dict(values=_t([1.0, 2.0]), returns=_t([1.0, 3.0]))),
        Case("a perfect critic (values == returns)", dict(values=_t([1.0, 2.0, 3.0, 4.0]),
                                                          returns=_t([1.0, 2.0, 3.0, 4.0]))),
        Case("a critic that predicts the mean return", dict(values=_t([3.0, 3.0, 3.0]), returns=_t([1.0, 2.0, 6.0]))),
        Case("a critic worse than the mean", dict(values=_t([3.0, 2.0, 1.0]), returns=_t([1.0, 2.0, 3.0]))),
        Case("random, a decent critic (B=50)", dict(values=random_returns + _randn(g, 50), returns=random_returns)),
        Case("[T, N] = [8, 4] inputs", dict(values=returns_2d * 0.5 + _randn(g, 8, 4), returns=returns_2d)),
        Case("float64 (B=20)", dict(values=returns_64 + _randn(g, 20, dtype=torch.float64, scale=2.0),
                                    returns=returns_64)),
    ]


EXPLAINED_VARIANCE = Exercise(
    name="explained_variance",
    reference=diagnostics.explained_variance,
    make_cases=_cases_explained_variance,
    output="number",
    concept="the fraction of the variance of the returns that the critic's values explain: 1 for a perfect "
            "critic, 0 for one that always predicts the mean return, negative for a worse one; it compares the "
            "variance of the residuals (returns - values) with the variance of the returns.",
    mistakes=[
        Mistake("explained variance upside down: the residual variance goes on top of the fraction, the "
                "variance of the returns below.", lambda values, returns_: 1 - 1 / _residual_ratio(values, returns_)),
        Mistake("Var[returns - values] / Var[returns] is the UNexplained fraction: subtract it from 1.",
                _residual_ratio),
        Mistake("divide by the variance of the returns (the targets), not of the values.",
                lambda values, returns_: 1 - (returns_ - values).var() / values.var()),
        Mistake("the ratio of the variances of values and returns is not explained variance: use the variance "
                "of the residual returns - values.", lambda values, returns_: values.var() / returns_.var()),
    ],
)

# --------------------------------------------------------------------------------------------------
# minibatch_indices (any shuffle is fine, so it has its own check)
# --------------------------------------------------------------------------------------------------

def _minibatch_problem(chunks: Any, batch_size: int, minibatch_size: int) -> tuple[str, str] | None:
    """(problem, hint) for a result that is not a shuffled partition into ceil(batch/mb) minibatches."""
    if chunks is None:
        return "your function returned None.", "did you forget the `return` statement?"
    if isinstance(chunks, Tensor) or not isinstance(chunks, list | tuple):
        return (f"expected a list of index tensors, got a {type(chunks).__name__}.",
                "return a list of 1-D index tensors, one per minibatch.")
    if not all(isinstance(c, Tensor) and c.dim() == 1 and not c.is_floating_point() and c.dtype != torch.bool
               for c in chunks):
        return ("every minibatch must be a 1-D tensor of integer indices.",
                "cut a permutation tensor into pieces; don't convert them to lists or floats.")
    flat = torch.cat([c.cpu().long() for c in chunks]) if chunks else torch.zeros(0, dtype=torch.long)
    if flat.unique().numel() != flat.numel():
        return ("some indices appear more than once.",
                "the minibatches overlap: every index must be in exactly one minibatch. Shuffle without "
                "replacement (a random permutation), then cut it into pieces.")
    if sorted(flat.tolist()) != list(range(batch_size)):
        return ("some indices of range(batch_size) never appear (or indices are out of range).",
                "every index must be in exactly one minibatch: don't drop the last, smaller minibatch.")
    if any(c.numel() > minibatch_size for c in chunks):
        return ("a minibatch is larger than minibatch_size.",
                "minibatch_size is the size of each minibatch, not the number of minibatches: make "
                "ceil(batch_size / minibatch_size) minibatches of at most minibatch_size indices.")
    expected_count = -(-batch_size // minibatch_size)
    if len(chunks) != expected_count:
        return (f"expected ceil({batch_size} / {minibatch_size}) = {expected_count} minibatches, got {len(chunks)}.",
                "make ceil(batch_size / minibatch_size) minibatches (you made minibatch_size of them, or "
                "needlessly small ones).")
    if batch_size >= 8 and flat.tolist() == list(range(batch_size)):
        return ("the indices come in their original order.",
                "not shuffled: each epoch must visit the batch in a new, random order (a random permutation "
                "of the indices).")
    return None


def _call_minibatch(fn: Callable[..., Any], batch_size: int, minibatch_size: int, seed: int,
                    global_seed: int) -> Any:
    """Call with a generator seeded ``seed``, on a temporarily re-seeded global RNG (restored after)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(global_seed)
        return _call_learner(fn, "minibatch_indices", [batch_size, minibatch_size, generator],
                             ["batch_size", "minibatch_size", "generator"])


def _order(chunks: list[Tensor]) -> list[int]:
    return torch.cat([c.cpu().long() for c in chunks]).tolist()


def check_minibatch_indices(fn: Callable[..., Any]) -> None:
    """Check ``minibatch_indices(batch_size, minibatch_size, generator) -> list[Tensor]``.

    Not compared with the reference element by element (any shuffle is fine): the result must be a
    partition of ``range(batch_size)`` into ``ceil(batch_size / minibatch_size)`` minibatches of at
    most ``minibatch_size`` indices, shuffled, reproducible with the same seeded generator, and
    different for a different generator or the next call.
    """
    name = "minibatch_indices"
    sizes = [(1, 1), (5, 8), (7, 7), (10, 4), (13, 5), (16, 4), (64, 16), (100, 32)]
    for number, (batch_size, minibatch_size) in enumerate(sizes):
        chunks = _call_minibatch(fn, batch_size, minibatch_size, seed=100 + number, global_seed=number)
        found = _minibatch_problem(chunks, batch_size, minibatch_size)
        if found is not None:
            problem, hint = found
            case = Case(f"batch_size={batch_size}, minibatch_size={minibatch_size}",
                        dict(batch_size=batch_size, minibatch_size=minibatch_size,
                             generator=torch.Generator().manual_seed(100 + number)))
            raise AssertionError(_message(
                name, problem, hint, True, case,
                expected=f"a shuffled partition of range({batch_size}) into ceil({batch_size} / {minibatch_size}) = "
                         f"{-(-batch_size // minibatch_size)} minibatch(es) of at most {minibatch_size} indices",
                received=chunks))
    batch_size, minibatch_size = 16, 4
    case = Case(f"batch_size={batch_size}, minibatch_size={minibatch_size}, called several times",
                dict(batch_size=batch_size, minibatch_size=minibatch_size))
    first = _order(_call_minibatch(fn, batch_size, minibatch_size, seed=7, global_seed=1))
    same_seed = _order(_call_minibatch(fn, batch_size, minibatch_size, seed=7, global_seed=2))
    if first != same_seed:
        raise AssertionError(_message(
            name, "two generators seeded with the same seed gave different minibatches.",
            "not reproducible: draw the permutation from the generator you are given, not from the global "
            "random state.", True, case,
            expected=f"the same order twice: {first}", received=f"{first} then {same_seed}"))
    other_seed = _order(_call_minibatch(fn, batch_size, minibatch_size, seed=8, global_seed=1))
    generator = torch.Generator().manual_seed(9)
    with torch.random.fork_rng(devices=[]):
        again = [_order(_call_learner(fn, name, [batch_size, minibatch_size, generator])) for _ in range(2)]
    if first == other_seed or again[0] == again[1]:
        raise AssertionError(_message(
            name, "the minibatches come out in the same order for different generators or successive calls.",
            "the shuffle is the same every call: don't re-seed inside the function; draw from the generator "
            "you are given so each epoch gets a new order.", True, case,
            expected="a new order for another generator and for the next call with the same generator",
            received=f"seed 7: {first}; seed 8: {other_seed}; two successive calls: {again[0]} and {again[1]}"))
    print(f"✓ {name}: {len(sizes) + 4} cases passed")


# --------------------------------------------------------------------------------------------------
# The checks of this chapter
# --------------------------------------------------------------------------------------------------

EXERCISES: list[Exercise] = [CLIPPED_SURROGATE_LOSS, APPROX_KL, CLIP_FRACTION, EXPLAINED_VARIANCE]

check_clipped_surrogate_loss = _make_check(CLIPPED_SURROGATE_LOSS)
check_approx_kl = _make_check(APPROX_KL)
check_clip_fraction = _make_check(CLIP_FRACTION)
check_explained_variance = _make_check(EXPLAINED_VARIANCE)

CHECKS: dict[str, Callable[[Callable[..., Any]], None]] = {
    "clipped_surrogate_loss": check_clipped_surrogate_loss,
    "approx_kl": check_approx_kl,
    "clip_fraction": check_clip_fraction,
    "explained_variance": check_explained_variance,
    "minibatch_indices": check_minibatch_indices,
}
