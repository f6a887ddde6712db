"""Checks of chapter 04 (PPO): clipped_surrogate_loss, approx_kl, clip_fraction, explained_variance,
minibatch_indices, ppo_epochs (the epoch/minibatch loop with KL early stopping).

``minibatch_indices`` is random by design, so it has its own check: any shuffle passes, as long as
it is a reproducible partition of the batch.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ...rl import batching, diagnostics, distributions, losses
from .harness import Case, Exercise, Mistake, _call_learner, _fmt, _log_probs, _make_check, _message, _randn, _t


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
                  advantages=_t([1.0, 2.0, -1.5, -0.5, 0.5]), clip_eps=0.2)),
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
        Mistake("the loss averages over the batch (.mean()), not .sum(): its scale must not grow with the batch size.",
                lambda new, old, advantages, clip_eps: _surrogate((new - old).exp(), advantages, clip_eps) * len(new)),
        Mistake("you clipped the product ratio * advantage: clip the RATIO to [1 - eps, 1 + eps], then multiply by "
                "the advantage.",
                lambda new, old, advantages, clip_eps: -torch.min((new - old).exp() * advantages, torch.clamp(
                    (new - old).exp() * advantages, 1 - clip_eps, 1 + clip_eps)).mean()),
        Mistake("you only kept the clipped term: PPO takes the smaller of the unclipped and the clipped "
                "surrogate.",
                lambda new, old, advantages, clip_eps:
                -(torch.clamp((new - old).exp(), 1 - clip_eps, 1 + clip_eps) * advantages).mean()),
        # min(r, clip(r)) * A: right where A > 0, the unclipped ratio where A < 0 and r < 1 - eps, the clipped one
        # where A < 0 and r > 1 + eps (a student's try, told 'you never clip' on the four-region case, issue 49)
        Mistake("you took the min of the two ratios (the ratio and its clipped copy) and then multiplied by the "
                "advantage: that is right only where the advantage is positive. PPO takes the min of the two "
                "surrogates, each ratio already multiplied by the advantage (for a negative advantage the larger "
                "ratio gives the smaller surrogate).",
                lambda new, old, advantages, clip_eps: -(torch.min(
                    (new - old).exp(), torch.clamp((new - old).exp(), 1 - clip_eps, 1 + clip_eps)) * advantages).mean()),
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
        Case("tiny probabilities: log-probs around -150, as with many action dims (B=3)",
             dict(old_log_probs=_t([-150.0, -160.0, -140.0]), new_log_probs=_t([-149.9, -160.15, -139.95]))),
        Case("new_log_probs carry a gradient (as during training)",
             dict(old_log_probs=_t([-1.0, -2.0, -0.5]), new_log_probs=_t([-0.9, -2.2, -0.5], requires_grad=True))),
    ]


APPROX_KL = Exercise(
    name="approx_kl",
    reference=diagnostics.approx_kl,
    make_cases=_cases_approx_kl,
    output="number",
    detached_output_hint="the KL is a diagnostic the loop reads, never part of a loss: detach the log-ratio "
                         "(or compute it with autograd off), as the package's approx_kl does.",
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
        Mistake("you form the ratio from raw probabilities: small probabilities underflow to 0 and 0/0 = nan. Form "
                "it in log space, r = exp(new_log_probs - old_log_probs).",
                lambda old, new: ((new.exp() / old.exp() - 1) - (new - old)).mean()),
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
        Case("ratios exactly on the boundaries 0.75 and 1.25 (clip_eps=0.25): clamp leaves them, so they are not "
             "clipped", dict(ratio=_t([0.75, 1.25, 0.7, 1.3, 1.0]), clip_eps=0.25)),
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
        Mistake("a ratio exactly on the boundary 1 +- clip_eps is not clipped (torch.clamp leaves it, and its "
                "gradient still flows): count the ratios strictly outside the range (> clip_eps, not >=).",
                lambda ratio, clip_eps: ((ratio - 1).abs() >= clip_eps).float().mean()),
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
        Case("returns that do not vary (explained variance undefined: nan)",
             dict(values=_t([1.0, 2.0, 3.0]), returns=_t([2.0, 2.0, 2.0]))),
        Case("a critic off by a constant (explained variance does not see an offset: 1)",
             dict(values=_t([6.0, 7.0, 11.0]), returns=_t([1.0, 2.0, 6.0]))),
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
        Mistake("the returns do not vary, so the ratio is undefined: return nan there (you return what the "
                "division gives, -inf or nan by chance).",
                lambda values, returns_: 1 - (returns_ - values).var() / returns_.var()),
        Mistake("the returns do not vary, so the ratio is undefined: return nan there, not 0 (0 reads as a critic "
                "that predicts the mean return, which it may not be).",
                lambda values, returns_: torch.tensor(0.0) if float(returns_.var()) == 0
                else 1 - (returns_ - values).var() / returns_.var()),
        Mistake("explained variance upside down: the residual variance goes on top of the fraction, the "
                "variance of the returns below.", lambda values, returns_: 1 - 1 / _residual_ratio(values, returns_)),
        Mistake("Var[returns - values] / Var[returns] is the UNexplained fraction: subtract it from 1.",
                _residual_ratio),
        Mistake("the mean squared residual is not the residual's variance: a critic off by a constant has the same "
                "explained variance as a perfect one. Take the variance of returns - values.",
                lambda values, returns_: 1 - ((returns_ - values) ** 2).mean() / returns_.var(unbiased=False)),
        Mistake("divide by the variance of the returns (the targets), not of the values.",
                lambda values, returns_: 1 - (returns_ - values).var() / values.var()),
        Mistake("the ratio of the variances of values and returns is not explained variance: use the variance "
                "of the residual returns - values.", lambda values, returns_: values.var() / returns_.var()),
    ],
)

# --------------------------------------------------------------------------------------------------
# minibatch_indices (its properties first, then the package's draw and cut, so it has its own check)
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
        # the hint follows the count the learner made (a floor count was told 'minibatch_size is not the number of
        # minibatches', a mistake it did not make: a student's try, issue 49)
        if len(chunks) == batch_size // minibatch_size:
            return (f"a minibatch is larger than minibatch_size: you made {len(chunks)} minibatch(es), "
                    f"floor({batch_size} / {minibatch_size}).",
                    "the number of minibatches is rounded down, so the indices left over went into minibatches "
                    "larger than minibatch_size: round it up, ceil(batch_size / minibatch_size), and let the last "
                    "minibatch be the smaller one.")
        if len(chunks) == minibatch_size:
            return (f"a minibatch is larger than minibatch_size: you made {len(chunks)} minibatches, as many as "
                    f"minibatch_size.",
                    "minibatch_size is the size of each minibatch, not the number of minibatches: make "
                    "ceil(batch_size / minibatch_size) minibatches of at most minibatch_size indices.")
        return ("a minibatch is larger than minibatch_size.",
                "every minibatch holds at most minibatch_size indices: make ceil(batch_size / minibatch_size) "
                "minibatches, the last one the smaller.")
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


def _same_draw_regrouped(chunks: list[Tensor], expected: list[Tensor]) -> bool:
    """Whether ``chunks`` hold randperm's draw cut another way: its strided slices, or its consecutive parts in
    another order (the learner drew right and grouped wrong)."""
    permutation = torch.cat([c.cpu().long() for c in expected])
    got = [c.cpu().long().tolist() for c in chunks]
    strided = [permutation[i::len(chunks)].tolist() for i in range(len(chunks))]
    return got == strided or sorted(got) == sorted(c.cpu().long().tolist() for c in expected)


def check_minibatch_indices(fn: Callable[..., Any]) -> None:
    """Check ``minibatch_indices(batch_size, minibatch_size, generator) -> list[Tensor]``.

    First the properties, each with its own message: a partition of ``range(batch_size)`` into
    ``ceil(batch_size / minibatch_size)`` minibatches of at most ``minibatch_size`` indices, shuffled,
    reproducible with the same seeded generator, and different for a different generator or the next call.
    Then the package's draw and cut: the order, read across the minibatches, must be that of one ``torch.randperm``
    from the generator, cut as ``torch.tensor_split`` cuts it. Exercise 6's loop and ``pg.train`` reproduce the
    package's run only with those (PPO's batch is its rollout's valid transitions, rarely a multiple of the
    minibatch size), so another valid shuffle or cut is named as such (exercise 04's second read found a shuffle
    that passed here and then failed exercise 6 with a message about the loop; its third read, a cut).
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
    for number, (batch_size, minibatch_size) in enumerate(sizes):  # the draw and the cut the package makes
        chunks = _call_minibatch(fn, batch_size, minibatch_size, seed=100 + number, global_seed=number)
        expected = batching.minibatch_indices(batch_size, minibatch_size, torch.Generator().manual_seed(100 + number))
        case = Case(f"batch_size={batch_size}, minibatch_size={minibatch_size}",
                    dict(batch_size=batch_size, minibatch_size=minibatch_size,
                         generator=torch.Generator().manual_seed(100 + number)))
        if _order(chunks) != _order(expected) and _same_draw_regrouped(chunks, expected):
            raise AssertionError(_message(
                name, "the right draw, but its indices regrouped: the minibatches are not consecutive parts of the "
                "permutation taken in order.",
                "cut the permutation into consecutive pieces and keep them in order (as tensor_split does), not "
                "every n-th index or another order of the pieces: the package's run takes those.", True, case,
                expected=[c.tolist() for c in expected], received=[c.tolist() for c in chunks]))
        if _order(chunks) != _order(expected):
            raise AssertionError(_message(
                name, "a valid shuffle, but not the order that one call of torch's randperm draws from this "
                "generator.",
                "draw the order with one randperm of batch_size from the generator you are given: exercise 6's loop "
                "and the package's run are compared with that draw (another shuffle is as random, but a seed would "
                "no longer give the package's minibatches).", True, case,
                expected=[c.tolist() for c in expected], received=[c.tolist() for c in chunks]))
        sizes_found, sizes_expected = [c.numel() for c in chunks], [c.numel() for c in expected]
        if sizes_found != sizes_expected and sorted(sizes_found) == sorted(sizes_expected):
            raise AssertionError(_message(
                name, f"the right order, cut into nearly equal parts, but with sizes {sizes_found} instead of "
                f"{sizes_expected}.",
                "put the larger parts first, as torch's tensor_split does: exercise 6's loop and the package's run "
                "take exactly those parts.", True, case,
                expected=[c.tolist() for c in expected], received=[c.tolist() for c in chunks]))
        if sizes_found != sizes_expected:
            raise AssertionError(_message(
                name, f"the right order, cut into sizes {sizes_found} instead of {sizes_expected}.",
                "cut it into nearly equal parts, as torch's tensor_split does: PPO trains on the rollout's valid "
                "transitions, a number that varies from update to update, so exercise 6's loop and the package's "
                "run take those parts.", True, case,
                expected=[c.tolist() for c in expected], received=[c.tolist() for c in chunks]))
    print(f"✓ {name}: {2 * len(sizes) + 4} cases passed")


# --------------------------------------------------------------------------------------------------
# ppo_epochs: the epoch / minibatch loop with KL early stopping (a loop with state, so its own check)
# --------------------------------------------------------------------------------------------------

def _linear_log_probs(weights: Tensor, obs: Tensor, actions: Tensor) -> Tensor:
    """[b] log pi(a|s) of a linear softmax policy, logits = obs @ weights ([b, obs_dim] @ [obs_dim, A])."""
    return distributions.categorical_log_prob(obs @ weights, actions)


def reference_ppo_epochs(weights: Tensor, obs: Tensor, actions: Tensor, old_log_probs: Tensor, advantages: Tensor,
                         clip_eps: float, lr: float, update_epochs: int, minibatch_size: int,
                         target_kl: float | None, generator: torch.Generator, *,
                         mistake: str | None = None) -> tuple[Tensor, list[float]]:
    """PPO's update epochs for a linear softmax policy, as ``pgcourse/rl/algorithms/ppo.py`` runs them (actor only).

    For each epoch: one ``minibatch_indices(B, minibatch_size, generator)`` call (a new shuffle); for each
    minibatch, the log-probs under the current weights, the clipped surrogate loss against the stored
    ``old_log_probs`` and one Adam step; the minibatch's approx-KL (k3) is measured with the log-probs of that
    same forward pass, i.e. *before* its step. After the epoch's last minibatch, the epoch's KL is the mean of
    its minibatch KLs; if ``target_kl`` is set and that mean exceeds it, the epochs stop (the epoch that crossed
    it is complete and counted). Returns (trained weights ``[obs_dim, A]``, one KL per epoch run).

    ``mistake`` plays a known wrong loop (the check names it when it reproduces a learner's results).
    """
    weights = weights.detach().clone().requires_grad_(True)  # [obs_dim, A]
    optimizer = torch.optim.Adam([weights], lr=lr)
    batch_size = obs.shape[0]
    count = -(-batch_size // minibatch_size)
    first_shuffle = batching.minibatch_indices(batch_size, minibatch_size, generator) \
        if mistake == "no_reshuffle" else None
    epoch_kls: list[float] = []
    for _ in range(update_epochs):
        if mistake == "adam_per_epoch":
            optimizer = torch.optim.Adam([weights], lr=lr)
        if mistake == "no_reshuffle":
            minibatches = first_shuffle
        elif mistake == "overlapping":
            minibatches = [torch.randint(batch_size, (minibatch_size,), generator=generator) for _ in range(count)]
        else:
            minibatches = batching.minibatch_indices(batch_size, minibatch_size, generator)
        if mistake == "drop_last":
            minibatches = minibatches[:-1]
        anchor = old_log_probs  # [B] pi_old: the policy that collected the batch
        if mistake == "old_per_epoch":
            with torch.no_grad():
                anchor = _linear_log_probs(weights, obs, actions)
        kls: list[float] = []
        stopped = False
        for batch_idx in minibatches:
            new_log_probs = _linear_log_probs(weights, obs[batch_idx], actions[batch_idx])  # [b]
            if mistake == "old_from_current":  # 'old' log-probs of the policy being trained: the ratio is always 1
                anchor = old_log_probs.clone()
                anchor[batch_idx] = new_log_probs.detach()
            if mistake == "stop_before_step" and target_kl is not None:
                if float(diagnostics.approx_kl(anchor[batch_idx], new_log_probs)) > target_kl:
                    stopped = True
                    break
            batch_advantages = advantages[batch_idx]  # [b]
            if mistake == "normalised_per_minibatch":
                batch_advantages = (batch_advantages - batch_advantages.mean()) / (batch_advantages.std() + 1e-8)
            loss = losses.clipped_surrogate_loss(new_log_probs, anchor[batch_idx], batch_advantages, clip_eps)
            if mistake != "no_zero_grad":
                optimizer.zero_grad()
            loss.backward()
            if mistake == "grad_norm_clipped":  # ppo.py's clip (max_grad_norm 0.5), which this exercise leaves out;
                torch.nn.utils.clip_grad_norm_([weights], 0.5)  # one at 1 changes nothing: no gradient here is as large
            optimizer.step()
            if mistake == "kl_after_step":
                with torch.no_grad():
                    new_log_probs = _linear_log_probs(weights, obs[batch_idx], actions[batch_idx])
            if mistake == "kl_swapped":
                kl = diagnostics.approx_kl(new_log_probs.detach(), anchor[batch_idx])
            else:
                kl = diagnostics.approx_kl(anchor[batch_idx], new_log_probs.detach())
            kls.append(float(kl))
            if mistake == "stop_per_minibatch" and target_kl is not None and kls[-1] > target_kl:
                stopped = True  # the epoch's mean KL is that of its minibatches so far
                break
        if kls:
            epoch_kls.append(kls[-1] if mistake == "kl_last_minibatch" else sum(kls) / len(kls))
        if stopped:
            break
        if mistake != "never_stops" and target_kl is not None and epoch_kls[-1] > target_kl:
            break  # the policy moved far enough from pi_old: no further epoch on this batch
    return weights.detach(), epoch_kls


@dataclass(frozen=True)
class _EpochsCase:
    description: str
    batch_size: int
    minibatch_size: int
    update_epochs: int
    target_kl: float | None
    lr: float
    seed: int
    one_hot: bool = False      # obs are one-hot rows: sample i moves only row i of the weights
    obs_dim: int = 4
    n_actions: int = 3
    clip_eps: float = 0.2

    def args(self) -> dict[str, Any]:
        """The call's arguments (fresh tensors and a freshly seeded generator every time)."""
        g = torch.Generator().manual_seed(self.seed)
        obs_dim = self.batch_size if self.one_hot else self.obs_dim
        obs = torch.eye(self.batch_size) if self.one_hot else torch.randn(self.batch_size, obs_dim, generator=g)
        weights = 0.5 * torch.randn(obs_dim, self.n_actions, generator=g)  # [obs_dim, A] pi_old's weights
        with torch.no_grad():
            probs = torch.softmax(obs @ weights, dim=-1)  # [B, A]
            actions = torch.multinomial(probs, 1, generator=g).squeeze(-1)  # [B] sampled from pi_old
            old_log_probs = _linear_log_probs(weights, obs, actions)  # [B]
        advantages = torch.randn(self.batch_size, generator=g)
        advantages = (advantages - advantages.mean()) / advantages.std()  # [B] normalised, as PPO's
        return dict(weights=weights, obs=obs, actions=actions, old_log_probs=old_log_probs, advantages=advantages,
                    clip_eps=self.clip_eps, lr=self.lr, update_epochs=self.update_epochs,
                    minibatch_size=self.minibatch_size, target_kl=self.target_kl,
                    generator=torch.Generator().manual_seed(1000 + self.seed))


# The epoch KLs of these cases stay at least 30% away from target_kl (tests/test_ppo_epochs.py), so a correct
# loop that rounds differently never takes the other decision.
EPOCHS_CASES = [
    _EpochsCase("one-hot observations, 1 epoch of 3 minibatches (each sample moves its own row of the weights)",
                batch_size=12, minibatch_size=4, update_epochs=1, target_kl=None, lr=0.05, seed=30, one_hot=True),
    _EpochsCase("4 epochs of 4 minibatches, target_kl=None (no early stop)",
                batch_size=32, minibatch_size=8, update_epochs=4, target_kl=None, lr=0.05, seed=31),
    _EpochsCase("6 epochs of 4 minibatches, target_kl=0.02: the KL passes it during the run",
                batch_size=32, minibatch_size=8, update_epochs=6, target_kl=0.02, lr=0.05, seed=32),
    _EpochsCase("3 epochs of 2 minibatches, target_kl=1.0: never reached", batch_size=16, minibatch_size=8,
                update_epochs=3, target_kl=1.0, lr=0.02, seed=33),
    _EpochsCase("5 epochs of 4 minibatches, a small target_kl=0.002: the first epoch already passes it",
                batch_size=48, minibatch_size=12, update_epochs=5, target_kl=0.002, lr=0.1, seed=34),
]

# Known wrong loops: (mistake played by the reference, what must match: "weights" and/or "kls", the hint)
EPOCHS_MISTAKES: list[tuple[str, tuple[str, ...], str]] = [
    ("no_zero_grad", ("weights",),
     "the gradients are never zeroed: each minibatch's backward pass adds to the previous ones' gradients. Call "
     "the optimiser's zero_grad before every backward pass."),
    ("adam_per_epoch", ("weights",),
     "Adam is rebuilt every epoch: its moment estimates start again from 0, so the first steps of each epoch are "
     "full-size. Build the optimiser once, before the epochs."),
    ("normalised_per_minibatch", ("weights",),
     "the advantages are standardised again in each minibatch: they come in already normalised over the whole "
     "batch; use them as they are."),
    ("grad_norm_clipped", ("weights",),
     "the gradient's norm is clipped (at 0.5, as ppo.py clips it) before each step: this exercise's steps are plain "
     "Adam steps on the loss's gradient (the check's reference clips nothing but the ratio); leave the clip of the "
     "norm out."),
    ("kl_last_minibatch", ("kls",),
     "the epoch's KL is its last minibatch's: it is the mean of the epoch's minibatch KLs."),
    ("never_stops", ("weights", "kls"),
     "your loop never stops early: after each epoch, compare the epoch's mean approx-KL with target_kl and stop "
     "the epochs when it is larger (a target_kl of None never stops)."),
    ("no_reshuffle", ("weights", "kls"),
     "no reshuffle per epoch: you shuffle once and visit the minibatches in the same order every epoch; draw "
     "a new shuffle (one minibatch_indices call) at the start of every epoch."),
    ("stop_before_step", ("weights",),
     "the KL test sits before the gradient step, inside the minibatch loop, so a minibatch is skipped and the "
     "epoch cut short; the package tests once per epoch, after the epoch's last step, on the mean of the "
     "epoch's minibatch KLs."),
    # two students' tries (issue 49): the stop tested on each minibatch's KL after its step; 'old' log-probs taken
    # from the policy being trained
    ("stop_per_minibatch", ("weights", "kls"),
     "your KL test sits inside the minibatch loop, after each step: you stop as soon as one minibatch's KL exceeds "
     "target_kl, which cuts the epoch short. Test once per epoch, after the epoch's last minibatch, on the mean of "
     "the epoch's minibatch KLs."),
    ("old_from_current", ("weights", "kls"),
     "your ratio is always 1 (and every KL 0): your 'old' log-probs are recomputed from the policy being trained, so "
     "nothing is ever clipped and the early stop never fires. pi_old is the policy that collected the batch: use the "
     "stored old_log_probs, unchanged, in every minibatch and every epoch."),
    ("kl_swapped", ("kls",),
     "KL of the wrong sign/direction: approx_kl takes the OLD log-probs first (k3 of log pi_new - log pi_old); "
     "you passed them the other way round."),
    ("kl_after_step", ("kls",),
     "your KL is measured after the gradient step (log-probs recomputed with the updated weights): the "
     "package measures each minibatch's KL with the log-probs of the forward pass that built the loss, "
     "before the step."),
    ("old_per_epoch", ("weights",),
     "KL and ratio against the wrong policy: your 'old' log-probs are recomputed at the start of each epoch; "
     "pi_old is the policy that collected the batch, so use the stored old_log_probs in every epoch."),
    ("overlapping", ("weights",),
     "overlapping minibatches: indices drawn with replacement (randint) repeat some samples and miss others; "
     "each epoch must visit every sample exactly once (a permutation, as minibatch_indices makes)."),
    ("drop_last", ("weights",),
     "samples missing: your loop skips the last minibatch of every epoch; visit every minibatch that "
     "minibatch_indices returns."),
]

EPOCHS_CONCEPT = ("each epoch draws one new shuffle (minibatch_indices) and takes one clipped-surrogate Adam step "
                  "per minibatch against the stored old log-probs; each minibatch's approx-KL(old, new) is measured "
                  "with the log-probs of that step's forward pass, before the step; after the epoch, the mean of "
                  "its minibatch KLs is the epoch's KL, and the epochs stop when it exceeds target_kl.")

_WEIGHT_TOLERANCE = (1e-3, 1e-5)  # (rtol, atol) after a few Adam steps computed in another operation order
_KL_TOLERANCE = (1e-3, 1e-7)


def _epochs_result(result: Any, shape: tuple[int, ...]) -> tuple[tuple[Tensor, list[float]] | None, str | None]:
    """(weights, kls) from a learner's return value, or a problem saying what was wrong with its form."""
    if result is None:
        return None, "your function returned None. Did you forget the `return` statement?"
    if not isinstance(result, tuple | list) or len(result) != 2:
        return None, ("expected a pair (weights, epoch_kls): the trained weights and the list of the epochs' KLs, "
                      f"got a {type(result).__name__}.")
    weights, kls = result
    if not isinstance(weights, Tensor) or tuple(weights.shape) != shape:
        return None, (f"the first element must be the trained weights, a tensor of shape {shape}, got "
                      f"{_describe(weights)}.")
    if isinstance(kls, Tensor):
        kls = kls.detach().flatten().tolist()
    if not isinstance(kls, list | tuple):
        return None, f"the second element must be a list with one KL per epoch run, got a {type(kls).__name__}."
    numbers = []
    for kl in kls:
        if isinstance(kl, Tensor) and kl.numel() == 1:
            numbers.append(float(kl.detach()))
        elif isinstance(kl, int | float) and not isinstance(kl, bool):
            numbers.append(float(kl))
        else:
            return None, "every epoch's KL must be a number (a float or a one-element tensor)."
    return (weights.detach().float(), numbers), None


def _shown_args(case: _EpochsCase) -> dict[str, Any]:
    """The case's arguments as a failure message shows them: the numbers, and the tensors by shape."""
    shown: dict[str, Any] = {}
    for key, value in case.args().items():
        if isinstance(value, Tensor) and value.numel() > 12:
            kind = "one-hot rows" if key == "obs" and case.one_hot else "seeded values"
            shown[key] = f"{kind}, shape {tuple(value.shape)}, {str(value.dtype).removeprefix('torch.')}"
        else:
            shown[key] = value
    shown["generator"] = f"torch.Generator seeded {1000 + case.seed}"
    return shown


def _describe(value: Any) -> str:
    return f"a tensor of shape {tuple(value.shape)}" if isinstance(value, Tensor) else f"a {type(value).__name__}"


def _same(weights: Tensor, kls: list[float], other: tuple[Tensor, list[float]], fields: tuple[str, ...]) -> bool:
    other_weights, other_kls = other
    if "weights" in fields and not torch.allclose(weights, other_weights.float(), rtol=_WEIGHT_TOLERANCE[0],
                                                  atol=_WEIGHT_TOLERANCE[1]):
        return False
    if "kls" in fields and (len(kls) != len(other_kls) or not torch.allclose(
            torch.tensor(kls, dtype=torch.float64), torch.tensor(other_kls, dtype=torch.float64),
            rtol=_KL_TOLERANCE[0], atol=_KL_TOLERANCE[1])):
        return False
    return True


def _epochs_failure(case: _EpochsCase, weights: Tensor, kls: list[float], learner_generator: torch.Generator,
                    expected: tuple[Tensor, list[float]], reference_generator: torch.Generator,
                    ) -> tuple[str, str | None, bool] | None:
    """(problem, hint, certain) for one case, or None if the learner's loop did what the reference did."""
    if _same(weights, kls, expected, ("weights", "kls")) and \
            torch.equal(learner_generator.get_state(), reference_generator.get_state()):
        return None
    for mistake, fields, hint in EPOCHS_MISTAKES:
        played = reference_ppo_epochs(**case.args(), mistake=mistake)
        if _same(weights, kls, played, fields) and not _same(*played, expected, fields):
            return "your loop's results differ from the reference's, and a known wrong loop reproduces them.", hint, True
    if case.one_hot:
        start = case.args()["weights"]
        untouched = [i for i in range(case.batch_size) if torch.equal(weights[i], start[i])]
        if untouched:
            return (f"samples {untouched} never took part in a gradient step (their rows of the weights did not "
                    "move).", "every epoch must visit every sample of the batch exactly once: use every minibatch "
                    "of a full shuffle (minibatch_indices).", True)
    if len(kls) != len(expected[1]) and _same(weights, kls, expected, ("weights",)):
        return (f"your trained weights match the reference's ({len(expected[1])} epoch(s) run), but you returned "
                f"{len(kls)} KL(s).",
                "return one KL per epoch run, the epoch whose KL fired the early stop included: append the epoch's "
                "mean KL first, then test it against target_kl.", True)
    if len(kls) != len(expected[1]):
        return (f"your loop returned {len(kls)} epoch KL(s), the reference ran {len(expected[1])} epoch(s).",
                "the early stop: after each complete epoch (never before its first step), stop when the mean of the "
                "epoch's minibatch approx-KLs exceeds target_kl; return one KL per epoch run.", False)
    if not torch.equal(learner_generator.get_state(), reference_generator.get_state()):
        return ("your loop drew from the generator differently from one shuffle per epoch.",
                "call minibatch_indices(batch_size, minibatch_size, generator) once at the start of every epoch "
                "run, and draw nothing else from the generator.", False)
    if not _same(weights, kls, expected, ("kls",)):
        return "the epochs' KLs differ from the reference's.", None, False
    return "the trained weights differ from the reference's.", None, False


def check_ppo_epochs(fn: Callable[..., Any]) -> None:
    """Check ``ppo_epochs(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
    minibatch_size, target_kl, generator) -> (weights, epoch_kls)`` against :func:`reference_ppo_epochs`.

    On each case both loops start from the same weights and the same seeded generator; the trained weights
    must agree within Adam's rounding (rtol 1e-3), the epochs' KLs within rtol 1e-3, their number exactly,
    and the generator must be left where the reference leaves it (one shuffle per epoch run). A failure
    names the known wrong loop that reproduces the learner's results (:data:`EPOCHS_MISTAKES`).
    """
    name = "ppo_epochs"
    arg_names = list(EPOCHS_CASES[0].args())
    for case in EPOCHS_CASES:
        args = case.args()
        shape = tuple(args["weights"].shape)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            result = _call_learner(fn, name, list(args.values()), arg_names)
        learner_generator = args["generator"]
        reference_args = case.args()
        expected = reference_ppo_epochs(**reference_args)
        found, problem = _epochs_result(result, shape)
        shown = Case(case.description, _shown_args(case))
        if problem is not None:
            raise AssertionError(_message(name, problem, None, True, shown, concept=EPOCHS_CONCEPT,
                                          expected="(weights, epoch_kls)", received=result))
        weights, kls = found
        failure = _epochs_failure(case, weights, kls, learner_generator, expected, reference_args["generator"])
        if failure is not None:
            problem, hint, certain = failure
            received_kls = "[" + ", ".join(f"{kl:.5g}" for kl in kls) + "]"
            expected_kls = "[" + ", ".join(f"{kl:.5g}" for kl in expected[1]) + "]"
            raise AssertionError(_message(
                name, problem, hint, certain, shown, concept=EPOCHS_CONCEPT,
                expected=f"{len(expected[1])} epoch(s), KLs {expected_kls}; weights {_fmt(expected[0], meta=False)}",
                received=f"{len(kls)} epoch(s), KLs {received_kls}; weights {_fmt(weights, meta=False)}"))
    print(f"✓ {name}: {len(EPOCHS_CASES)} cases passed")


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
    "ppo_epochs": check_ppo_epochs,
}
