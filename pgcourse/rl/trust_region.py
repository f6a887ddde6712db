"""The math of TRPO (Schulman et al. 2015, "Trust Region Policy Optimization"), as small pure functions.

TRPO solves, at every update,

.. math::

    \\max_\\theta \\; g^\\top (\\theta - \\theta_{old})
    \\quad \\text{s.t.} \\quad \\tfrac12 (\\theta - \\theta_{old})^\\top F (\\theta - \\theta_{old}) \\le \\delta

where :math:`g = \\nabla_\\theta L(\\theta_{old})` is the gradient of the surrogate
:math:`L(\\theta) = \\mathbb{E}[\\rho_\\theta A]` and :math:`F` is the Fisher information matrix, the
Hessian of :math:`\\bar{D}_{KL}(\\pi_{old} \\| \\pi_\\theta)` at :math:`\\theta_{old}`. The solution is the
natural gradient :math:`s = F^{-1} g` scaled to the constraint's edge,
:math:`\\theta = \\theta_{old} + \\sqrt{2\\delta / (s^\\top F s)}\\, s`, then shrunk by a backtracking line
search until the real KL is within :math:`\\delta` and the surrogate improves. In practice both the solve and the
step length use the damped matrix :math:`F + \\lambda I` (``cg_damping``), so the undamped quadratic estimate
:math:`\\tfrac12 \\beta^2 s^\\top F s` of the full step's KL is a little below :math:`\\delta`.

:math:`F` has as many rows as the policy has parameters (~4,500 for a 64-64 CartPole policy, millions for
large nets), so it is never formed: :func:`fisher_vector_product` computes :math:`Fv` by differentiating
the KL twice (Pearlmutter's trick), and :func:`conjugate_gradient` solves :math:`Fs = g` with products
alone. These functions are what chapter 07's exercises re-implement; ``algorithms/trpo.py`` calls them.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


def flat_grad(output: Tensor, parameters: Sequence[torch.nn.Parameter], create_graph: bool = False,
              retain_graph: bool | None = None) -> Tensor:
    """The gradient of the scalar ``output`` with respect to ``parameters``, concatenated: ``[P]``.

    A parameter ``output`` does not depend on contributes zeros (e.g. a Gaussian policy's ``log_std`` in a
    loss that uses the mean only).
    """
    grads = torch.autograd.grad(output, list(parameters), create_graph=create_graph, retain_graph=retain_graph,
                                allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, parameters)])


def assign_flat_(parameters: Sequence[torch.nn.Parameter], flat: Tensor) -> None:
    """Write the flat vector ``flat`` ``[P]`` into ``parameters`` in place (the inverse of concatenating them).

    Unlike ``torch.nn.utils.vector_to_parameters``, which makes every parameter a *view* into one new vector,
    each parameter keeps its own storage: a run resumed from a checkpoint (separate tensors) then computes
    exactly what the uninterrupted run computes (views into one buffer can round differently in CPU kernels).
    """
    offset = 0
    with torch.no_grad():
        for parameter in parameters:
            count = parameter.numel()
            parameter.copy_(flat[offset:offset + count].view_as(parameter))
            offset += count
    if offset != flat.numel():
        raise ValueError(f"flat has {flat.numel()} values but the parameters hold {offset}")


def categorical_kl(old_logits: Tensor, new_logits: Tensor) -> Tensor:
    """:math:`D_{KL}(\\pi_{old}(\\cdot|s) \\| \\pi_{new}(\\cdot|s)) = \\sum_a p_{old}(a) (\\log p_{old}(a) - \\log p_{new}(a))`
    per state: ``[B, n_actions]`` logits in, ``[B]`` out. ``old_logits`` should be detached (a constant)."""
    old_log_p = torch.log_softmax(old_logits, dim=-1)  # [B, n]
    new_log_p = torch.log_softmax(new_logits, dim=-1)  # [B, n]
    return (old_log_p.exp() * (old_log_p - new_log_p)).sum(-1)  # [B]


def gaussian_kl(old_mean: Tensor, old_log_std: Tensor, new_mean: Tensor, new_log_std: Tensor) -> Tensor:
    """KL between diagonal Gaussians, summed over the ``D`` action dimensions: ``[B, D]`` (the log-stds
    broadcast, e.g. ``[D]``) in, ``[B]`` out:

    .. math:: \\sum_d \\log\\frac{\\sigma_{new}}{\\sigma_{old}} + \\frac{\\sigma_{old}^2 + (\\mu_{old} - \\mu_{new})^2}{2\\sigma_{new}^2} - \\frac12
    """
    old_var, new_var = (2 * old_log_std).exp(), (2 * new_log_std).exp()
    per_dim = new_log_std - old_log_std + (old_var + (old_mean - new_mean) ** 2) / (2 * new_var) - 0.5  # [B, D]
    return per_dim.sum(-1)  # [B]


def fisher_vector_product(kl_grad: Tensor, parameters: Sequence[torch.nn.Parameter], vector: Tensor,
                          damping: float) -> Tensor:
    """:math:`(F + \\lambda I) v` without forming :math:`F`: ``[P]``.

    Args:
        kl_grad: :math:`\\nabla_\\theta \\bar{D}_{KL}(\\pi_{old} \\| \\pi_\\theta)` at :math:`\\theta_{old}`,
            flattened ``[P]``, computed with ``create_graph=True`` so it can be differentiated again. (Its value
            is zero: the KL is smallest where the two policies agree. Its *derivative* is the Fisher matrix.)
        parameters: the policy's parameters :math:`\\theta`, in the order ``kl_grad`` was flattened.
        vector: :math:`v`, ``[P]``, a constant.
        damping: :math:`\\lambda \\ge 0`, added to every eigenvalue so conjugate gradient stays stable where
            :math:`F` is nearly singular.

    Returns:
        :math:`\\nabla_\\theta (\\nabla_\\theta \\bar{D}_{KL} \\cdot v) + \\lambda v = F v + \\lambda v`. The graph of
        ``kl_grad`` is kept, so this can be called again for the next vector.
    """
    gradient_dot_vector = (kl_grad * vector.detach()).sum()  # scalar
    return flat_grad(gradient_dot_vector, parameters, retain_graph=True) + damping * vector  # [P]


@dataclass(frozen=True)
class CGResult:
    """What :func:`conjugate_gradient` found: ``x`` with ``A x ≈ b``, the residual's norm and the iterations run."""

    x: Tensor
    residual_norm: float
    iterations: int


def conjugate_gradient(matrix_vector_product: Callable[[Tensor], Tensor], b: Tensor, iterations: int = 10,
                       residual_tol: float = 1e-10) -> CGResult:
    """Solve :math:`A x = b` for a symmetric positive-definite :math:`A` known only through ``A @ v``.

    Starts from :math:`x_0 = 0` (residual :math:`r_0 = b`); each iteration takes one product and moves along a
    search direction :math:`A`-conjugate to all earlier ones, so in exact arithmetic it is exact after
    :math:`P` iterations; TRPO stops after ~10 (an approximate natural gradient is enough).

    Args:
        matrix_vector_product: :math:`v \\mapsto A v` (for TRPO, :func:`fisher_vector_product` with damping).
        b: ``[P]`` right-hand side (for TRPO, the surrogate's gradient :math:`g`).
        iterations: the most products to take.
        residual_tol: stop once :math:`\\|r\\|^2` falls below this.
    """
    x = torch.zeros_like(b)  # [P]
    residual = b.clone()  # r = b - A x, with x = 0
    direction = b.clone()  # p
    residual_sq = float(residual @ residual)
    done = 0
    for _ in range(iterations):
        if residual_sq < residual_tol:
            break
        product = matrix_vector_product(direction)  # A p, [P]
        step = residual_sq / float(direction @ product)  # alpha = r.r / p.A p
        x = x + step * direction
        residual = residual - step * product
        new_residual_sq = float(residual @ residual)
        direction = residual + (new_residual_sq / residual_sq) * direction  # beta = r'.r' / r.r
        residual_sq = new_residual_sq
        done += 1
    return CGResult(x, math.sqrt(residual_sq), done)


def max_step_length(direction: Tensor, fisher_direction: Tensor, max_kl: float) -> float:
    """:math:`\\beta = \\sqrt{2\\delta / (s^\\top F s)}`: the step along ``direction`` :math:`s` whose quadratic
    KL estimate :math:`\\tfrac12 \\beta^2 s^\\top F s` equals ``max_kl`` :math:`\\delta`. ``fisher_direction`` is
    :math:`F s` ``[P]``; TRPO passes the damped product :math:`(F + \\lambda I) s` that conjugate gradient used, so
    the damped estimate equals :math:`\\delta` and the undamped one is a little below."""
    curvature = float(direction @ fisher_direction)  # s^T F s
    if not curvature > 0:
        raise ValueError(f"s^T F s = {curvature:.3g} must be > 0 (the damped Fisher matrix is positive definite)")
    return math.sqrt(2.0 * max_kl / curvature)


def quadratic_form_is_zero(direction: Tensor, fisher_direction: Tensor) -> bool:
    """Whether :math:`s^\\top F s` is zero to the precision it is computed in: then there is no step to take.

    Computed in the vectors' floating-point type (machine epsilon :math:`\\varepsilon` = ``torch.finfo(dtype).eps``,
    1.2e-7 in float32), a dot product of length :math:`P` may be off by up to
    :math:`P \\varepsilon \\sum_i |s_i (F s)_i| \\le P \\varepsilon \\|s\\| \\|F s\\|` (Cauchy-Schwarz). A value
    below even one rounding of the largest the product could be,

    .. math:: |s^\\top F s| \\le \\varepsilon \\, \\|s\\| \\, \\|F s\\|,

    cannot be told from 0, and :math:`\\beta = \\sqrt{2\\delta / s^\\top F s}` would be infinite or noise. This is
    what a zero policy gradient gives (every advantage equal, e.g. a reward that ignores the action): conjugate
    gradient starts at :math:`s = 0`, and a gradient with :math:`\\|g\\|^2` below its ``residual_tol`` leaves it
    there, so both sides are 0. The test is relative (scaling :math:`s` or :math:`F` does not change it), and with
    the damped :math:`F + \\lambda I` TRPO passes it can hold for :math:`s \\ne 0` only if the largest eigenvalue of
    :math:`F` exceeds :math:`\\lambda / \\varepsilon` (8e5 for ``cg_damping = 0.1``): it does not stop a healthy
    step. A clearly negative or a non-finite :math:`s^\\top F s` is not "zero" but a bug (the KL's Hessian is
    positive semi-definite), and :func:`max_step_length` raises on it.
    """
    curvature = float(direction @ fisher_direction)  # s^T F s
    bound = torch.finfo(direction.dtype).eps * float(direction.norm()) * float(fisher_direction.norm())
    return math.isfinite(curvature) and abs(curvature) <= bound


@dataclass(frozen=True)
class LineSearchResult:
    """The accepted fraction of the full step (0.0: none accepted, the policy is left as it was), the number
    of candidate steps tried, and the surrogate improvement and KL at the accepted (or last tried) step.
    :data:`NO_STEP` (0 steps tried) is the result when there was no step to search along."""

    fraction: float
    steps_tried: int
    improvement: float
    kl: float

    @property
    def accepted(self) -> bool:
        return self.fraction > 0.0


NO_STEP = LineSearchResult(0.0, 0, 0.0, 0.0)  # no search: a zero step (quadratic_form_is_zero), nothing tried


def backtracking_line_search(evaluate: Callable[[float], tuple[float, float]], expected_improvement: float,
                             max_kl: float, max_backtracks: int = 10, shrink: float = 0.5,
                             accept_ratio: float = 0.1) -> LineSearchResult:
    """Try the fractions ``1, shrink, shrink^2, …`` of the full step until one keeps the real KL within
    ``max_kl`` and improves the surrogate by more than ``accept_ratio`` times the first-order prediction.

    Args:
        evaluate: ``fraction -> (surrogate improvement, mean KL(pi_old || pi_new))`` with the parameters set to
            :math:`\\theta_{old} + \\text{fraction} \\cdot \\beta s` (the caller puts them back).
        expected_improvement: :math:`g^\\top \\beta s`, the improvement a linear surrogate predicts for the
            full step (> 0).
        max_kl: :math:`\\delta`.
        max_backtracks: how many fractions to try at most.
        shrink: the factor between tries, in (0, 1).
        accept_ratio: a try is accepted when its real improvement exceeds this share of the prediction.
    """
    if not 0.0 < shrink < 1.0:
        raise ValueError(f"shrink={shrink!r} is invalid: expected a number in (0, 1)")
    improvement, kl = float("nan"), float("nan")
    for tried in range(1, max_backtracks + 1):
        fraction = shrink ** (tried - 1)
        improvement, kl = evaluate(fraction)
        if (math.isfinite(improvement) and math.isfinite(kl) and kl <= max_kl
                and improvement > accept_ratio * expected_improvement * fraction):
            return LineSearchResult(fraction, tried, improvement, kl)
    return LineSearchResult(0.0, max_backtracks, improvement, kl)


__all__ = ["flat_grad", "categorical_kl", "gaussian_kl", "fisher_vector_product", "CGResult", "conjugate_gradient",
           "quadratic_form_is_zero", "max_step_length", "LineSearchResult", "NO_STEP", "backtracking_line_search"]
